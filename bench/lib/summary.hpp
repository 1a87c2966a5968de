// The statistics of a case: P50/P95 (summarizer::Percentile, linear interpolation) of TTFT, latency,
// rates and token counts over its successful measured runs, and its verdict.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lib/client.hpp"
#include "lib/config.hpp"
#include "lib/verdict.hpp"

namespace summarizer::bench {

struct CaseSummary {
    int runs_ok = 0;  // measured runs only
    int runs_failed = 0;
    int warmup_failed = 0;
    std::optional<double> ttft_p50_s, ttft_p95_s;
    std::optional<double> latency_p50_s, latency_p95_s;
    std::optional<double> prefill_tps_p50, decode_tps_p50;
    std::optional<int64_t> prompt_tokens, output_tokens;  // P50, rounded
    std::string route = "-";                              // as chosen by the service; "a/b" if it varied
    std::string first_error;                              // the first failed measured run's message
    Verdict verdict;
};

// Statistics over the successful measured samples (warm-ups and failures are excluded).
CaseSummary SummarizeCase(const std::vector<RunSample>& samples, const Targets& targets);

}  // namespace summarizer::bench
