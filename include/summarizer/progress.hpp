// How far a map-reduce execution is, as clients see it (the SSE `progress` event, the CLI's bar),
// and the estimate of the time it still needs. The estimate is a cost model: an upstream call
// takes prompt tokens / prefill rate + output tokens / decode rate, calls of one level run
// `parallel` at once, outputs fill a share of their token cap. It starts from the routing
// policy's rates and is calibrated by every finished call of the request against its wall time
// (queueing, model loads and a slower GPU included), so after the first calls it tracks what this
// deployment really does. Pure: no clock, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

namespace summarizer {

struct ProgressUpdate {
    std::string_view phase;     // "map", "reduce" (an intermediate merge level) or "final" (the last merge)
    int done = 0;               // steps of this phase finished
    int total = 0;              // steps of this phase
    int level = 0;              // 0: map; 1, 2, ...: merge level; final: its level (the response's `levels`)
    int64_t remaining_ms = 0;   // estimated time until the summary is complete, from now
};

// The model's two learned factors; a new request starts from the last one's.
struct TimeCalibration {
    double scale = 1.0;  // wall time of a call / the time the rates predict
    double fill = 0.75;  // tokens an output has / its cap
};

class TimeLeftEstimator {
public:
    struct Call {
        int64_t prompt_tokens = 0;
        int64_t output_tokens = 0;  // expected (ExpectedOutput of the cap)
    };

    // Rates in tokens/s (routing.cost_prefill_tokens_per_s, cost_decode_tokens_per_s); `prior`
    // weighs as much as one observed call.
    TimeLeftEstimator(double prefill_tokens_per_s, double decode_tokens_per_s, TimeCalibration prior = {});

    // A finished call: what it processed, its output cap, and its wall time.
    void Observe(int64_t prompt_tokens, int64_t output_tokens, int64_t output_cap, std::chrono::nanoseconds wall);

    // The tokens an output capped at `cap` is expected to have.
    int64_t ExpectedOutput(int64_t cap) const;
    // Expected wall time of one call, in ms.
    double CallMs(const Call& call) const;
    // Expected wall time of a level of calls run `parallel` at once: their total over the
    // parallel slots, but never less than its longest call.
    double LevelMs(const std::vector<Call>& calls, int parallel) const;

    TimeCalibration calibration() const;

private:
    double RawMs(int64_t prompt_tokens, int64_t output_tokens) const;

    double ms_per_prompt_token_;
    double ms_per_output_token_;
    TimeCalibration prior_;
    double observed_calls_ = 0, observed_wall_ms_ = 0, observed_raw_ms_ = 0;
    double observed_tokens_ = 0, observed_caps_ = 0;
};

}  // namespace summarizer
