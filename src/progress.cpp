#include "summarizer/progress.hpp"

#include <algorithm>

namespace summarizer {

TimeLeftEstimator::TimeLeftEstimator(double prefill_tokens_per_s, double decode_tokens_per_s, TimeCalibration prior)
    : ms_per_prompt_token_(1000.0 / std::max(prefill_tokens_per_s, 1e-3)),
      ms_per_output_token_(1000.0 / std::max(decode_tokens_per_s, 1e-3)),
      prior_(prior) {
    prior_.scale = std::clamp(prior_.scale, 1e-6, 1e6);
    prior_.fill = std::clamp(prior_.fill, 0.01, 1.0);
}

double TimeLeftEstimator::RawMs(int64_t prompt_tokens, int64_t output_tokens) const {
    return static_cast<double>(std::max<int64_t>(prompt_tokens, 0)) * ms_per_prompt_token_ +
           static_cast<double>(std::max<int64_t>(output_tokens, 0)) * ms_per_output_token_;
}

void TimeLeftEstimator::Observe(int64_t prompt_tokens, int64_t output_tokens, int64_t output_cap,
                                std::chrono::nanoseconds wall) {
    const double raw = RawMs(prompt_tokens, output_tokens);
    if (raw <= 0) return;
    observed_calls_ += 1;
    observed_raw_ms_ += raw;
    observed_wall_ms_ += std::chrono::duration<double, std::milli>(wall).count();
    if (output_cap > 0) {
        observed_tokens_ += static_cast<double>(std::min(output_tokens, output_cap));
        observed_caps_ += static_cast<double>(output_cap);
    }
}

TimeCalibration TimeLeftEstimator::calibration() const {
    // The prior weighs as much as one average observed call: the first call halves its say, and
    // a few calls make it negligible.
    TimeCalibration c = prior_;
    if (observed_calls_ > 0 && observed_raw_ms_ > 0) {
        const double average_raw = observed_raw_ms_ / observed_calls_;
        c.scale = (observed_wall_ms_ + prior_.scale * average_raw) / (observed_raw_ms_ + average_raw);
    }
    if (observed_caps_ > 0) {
        const double average_cap = observed_caps_ / observed_calls_;
        c.fill = std::clamp((observed_tokens_ + prior_.fill * average_cap) / (observed_caps_ + average_cap), 0.01, 1.0);
    }
    return c;
}

int64_t TimeLeftEstimator::ExpectedOutput(int64_t cap) const {
    return static_cast<int64_t>(static_cast<double>(std::max<int64_t>(cap, 0)) * calibration().fill + 0.5);
}

double TimeLeftEstimator::CallMs(const Call& call) const {
    return RawMs(call.prompt_tokens, call.output_tokens) * calibration().scale;
}

double TimeLeftEstimator::LevelMs(const std::vector<Call>& calls, int parallel) const {
    if (calls.empty()) return 0;
    const double scale = calibration().scale;
    double sum = 0, longest = 0;
    for (const auto& call : calls) {
        const double ms = RawMs(call.prompt_tokens, call.output_tokens);
        sum += ms;
        longest = std::max(longest, ms);
    }
    return std::max(longest, sum / std::max(1, parallel)) * scale;
}

}  // namespace summarizer
