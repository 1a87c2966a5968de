#include "lib/summary.hpp"

#include <cmath>
#include <map>

#include "summarizer/stats.hpp"

namespace summarizer::bench {

CaseSummary SummarizeCase(const std::vector<RunSample>& samples, const Targets& targets) {
    CaseSummary summary;
    std::vector<double> ttft, latency, prefill, decode, prompt_tokens, output_tokens;
    std::map<std::string, int> routes;
    for (const RunSample& sample : samples) {
        if (sample.warmup) {
            if (!sample.ok) ++summary.warmup_failed;
            continue;
        }
        if (!sample.ok) {
            if (summary.runs_failed++ == 0) summary.first_error = sample.error;
            continue;
        }
        ++summary.runs_ok;
        if (sample.ttft_s) ttft.push_back(*sample.ttft_s);
        if (sample.latency_s) latency.push_back(*sample.latency_s);
        if (sample.prefill_tps) prefill.push_back(*sample.prefill_tps);
        if (sample.decode_tps) decode.push_back(*sample.decode_tps);
        if (sample.prompt_tokens) prompt_tokens.push_back(static_cast<double>(*sample.prompt_tokens));
        if (sample.output_tokens) output_tokens.push_back(static_cast<double>(*sample.output_tokens));
        ++routes[sample.route];
    }
    summary.ttft_p50_s = Percentile(ttft, 50);
    summary.ttft_p95_s = Percentile(ttft, 95);
    summary.latency_p50_s = Percentile(latency, 50);
    summary.latency_p95_s = Percentile(latency, 95);
    summary.prefill_tps_p50 = Percentile(prefill, 50);
    summary.decode_tps_p50 = Percentile(decode, 50);
    if (const auto p50 = Percentile(prompt_tokens, 50)) summary.prompt_tokens = std::llround(*p50);
    if (const auto p50 = Percentile(output_tokens, 50)) summary.output_tokens = std::llround(*p50);
    if (!routes.empty()) {
        summary.route.clear();
        for (const auto& [route, count] : routes) summary.route += (summary.route.empty() ? "" : "/") + route;
    }
    summary.verdict = Judge(summary, targets);
    return summary;
}

}  // namespace summarizer::bench
