// Verdicts: a case against the record's targets (TTFT P50 below, decode and prefill P50 above).
#pragma once

#include <string>
#include <vector>

#include "lib/config.hpp"

namespace summarizer::bench {

struct Verdict {
    bool pass = false;
    std::vector<std::string> reasons;  // why not: "TTFT", "decode", "prefill", "all runs failed"
};

struct CaseSummary;
struct BenchReport;

// PASS when every target the case's P50s report is met; "all runs failed" when none succeeded.
Verdict Judge(const CaseSummary& summary, const Targets& targets);

// Re-judges every case against other targets (the samples stay as they are).
void ApplyTargets(BenchReport& report, const Targets& targets);

// "PASS", or "FAIL (TTFT, decode)".
std::string VerdictText(const Verdict& verdict);

}  // namespace summarizer::bench
