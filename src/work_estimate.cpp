#include "summarizer/work_estimate.hpp"

#include <algorithm>

namespace summarizer {
namespace {

struct Rates {
    double prefill = 3000;
    double decode = 60;
};

Rates RatesFor(const std::string& bucket, const Config& config, const RouteCosts& costs) {
    Rates r{config.routing.cost_prefill_tokens_per_s, config.routing.cost_decode_tokens_per_s};
    const BucketConfig* b = config.FindBucket(bucket);
    if (b == nullptr) return r;
    const size_t i = config.BucketIndex(*b);
    if (i < costs.buckets.size()) {
        r.prefill = std::max(1.0, costs.buckets[i].prefill_tokens_per_s);
        r.decode = std::max(0.1, costs.buckets[i].decode_tokens_per_s);
    }
    return r;
}

// The output a call is expected to write: the learned typical length, at most its cap.
double OutputTokens(const RouteCosts& costs, int cap) {
    return costs.output_tokens > 0 ? std::min<double>(costs.output_tokens, cap) : cap;
}

}  // namespace

double EstimateWorkSeconds(const Plan& plan, const Config& config, const RouteCosts& costs, int max_output_tokens) {
    const Rates rates = RatesFor(plan.bucket, config, costs);
    const int summary_cap = max_output_tokens > 0 ? max_output_tokens : config.generation.num_predict;
    if (plan.kind != RouteKind::kMapReduce) {
        return static_cast<double>(plan.estimated_prompt_tokens) / rates.prefill +
               OutputTokens(costs, summary_cap) / rates.decode;
    }
    const double chunks = static_cast<double>(std::max<size_t>(1, plan.chunks.size()));
    const double map_out = OutputTokens(costs, config.map_reduce.map_num_predict);
    const double map =
        static_cast<double>(plan.estimated_prompt_tokens) / rates.prefill + chunks * map_out / rates.decode;
    const double merge = chunks * map_out / rates.prefill + OutputTokens(costs, summary_cap) / rates.decode;
    return map + merge;
}

}  // namespace summarizer
