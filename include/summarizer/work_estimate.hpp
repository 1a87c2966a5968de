// How much GPU time a plan is expected to take, for admission: Retry-After is computed from the
// work ahead of a caller, not from how many requests are ahead (a 1.5M-character map-reduce and a
// one-paragraph summary are not the same wait). Pure.
#pragma once

#include "summarizer/config.hpp"
#include "summarizer/router.hpp"

namespace summarizer {

// Seconds of one upstream slot the plan's calls take: prompt tokens at the prefill rate plus the
// expected output at the decode rate, for every call (map-reduce: each chunk, then one merge of the
// partials). Rates are the learned ones in `costs` (the model manager's), else the config's
// priors; output is the learned typical length, capped by each call's limit. `max_output_tokens`:
// the request's cap on the summary.
double EstimateWorkSeconds(const Plan& plan, const Config& config, const RouteCosts& costs, int max_output_tokens);

}  // namespace summarizer
