#include "lib/verdict.hpp"

#include <cstddef>

#include "lib/run.hpp"
#include "lib/summary.hpp"

namespace summarizer::bench {

Verdict Judge(const CaseSummary& summary, const Targets& targets) {
    Verdict verdict;
    if (summary.runs_ok == 0) {
        verdict.reasons.push_back("all runs failed");
        return verdict;
    }
    if (summary.ttft_p50_s && !(*summary.ttft_p50_s < targets.ttft_s)) verdict.reasons.push_back("TTFT");
    if (summary.decode_tps_p50 && !(*summary.decode_tps_p50 > targets.decode_tps)) verdict.reasons.push_back("decode");
    if (summary.prefill_tps_p50 && !(*summary.prefill_tps_p50 > targets.prefill_tps)) {
        verdict.reasons.push_back("prefill");
    }
    verdict.pass = verdict.reasons.empty();
    return verdict;
}

void ApplyTargets(BenchReport& report, const Targets& targets) {
    report.config.targets = targets;
    for (auto& c : report.cases) c.summary.verdict = Judge(c.summary, targets);
}

std::string VerdictText(const Verdict& verdict) {
    if (verdict.pass) return "PASS";
    std::string text = "FAIL";
    for (size_t i = 0; i < verdict.reasons.size(); ++i) text += (i == 0 ? " (" : ", ") + verdict.reasons[i];
    return verdict.reasons.empty() ? text : text + ")";
}

}  // namespace summarizer::bench
