#include "summarizer/circuit_breaker.hpp"

#include <cmath>

#include <spdlog/spdlog.h>

namespace summarizer {

bool IsUpstreamUnreachable(const Error& error) {
    // A server that says "model not found" is reachable (kUpstreamUnavailable): falling back would
    // hide a set-up mistake.
    return error.code == ErrorCode::kUpstreamUnreachable;
}

std::string_view CircuitStateName(CircuitState state) {
    switch (state) {
        case CircuitState::kClosed: return "closed";
        case CircuitState::kOpen: return "open";
        case CircuitState::kHalfOpen: return "half_open";
    }
    return "closed";
}

CircuitBreaker::CircuitBreaker(LlmEngine& inner, CircuitBreakerOptions options,
                               std::function<Clock::time_point()> now)
    : inner_(inner), options_(std::move(options)), now_(std::move(now)) {}

bool CircuitBreaker::Admit(bool* probe, Error* refusal) {
    *probe = false;
    if (options_.failure_threshold <= 0) return true;
    std::lock_guard lock(mutex_);
    if (!open_) return true;
    const auto now = now_();
    const auto reopen = opened_at_ + options_.open_duration;
    if (now >= reopen && !probing_) {
        probing_ = true;
        *probe = true;
        return true;
    }
    *refusal = RefusalLocked();
    return false;
}

Error CircuitBreaker::RefusalLocked() const {
    const auto reopen = opened_at_ + options_.open_duration;
    const double wait_s = std::max(0.0, std::chrono::duration<double>(reopen - now_()).count());
    std::string when = probing_ ? "a probe call is checking it now"
                                : "the next probe is in " + std::to_string(static_cast<int>(std::ceil(wait_s))) + " s";
    return MakeError(ErrorCode::kUpstreamUnreachable,
                     options_.upstream_name + " is unreachable (" + std::to_string(consecutive_failures_) +
                         " connection failures in a row; last: " + last_failure_ + "); failing fast while the "
                         "circuit is open, " + when,
                     /*retryable=*/true);
}

Error CircuitBreaker::RefusalError() const {
    std::lock_guard lock(mutex_);
    return RefusalLocked();
}

void CircuitBreaker::Record(bool probe, const Error* error, bool count) {
    if (options_.failure_threshold <= 0) return;
    std::lock_guard lock(mutex_);
    if (probe) probing_ = false;
    // Neither a cancelled call nor one the engine cannot do (answered locally) says anything about the server.
    if (error && (error->code == ErrorCode::kCancelled || error->code == ErrorCode::kUnsupported)) return;
    if (error && IsUpstreamUnreachable(*error)) {
        last_failure_ = error->message;
        if (!count && !probe) return;  // a retry of a call counted already
        ++consecutive_failures_;
        if (probe || (!open_ && consecutive_failures_ >= options_.failure_threshold)) {
            if (!open_) {
                ++opens_;
                spdlog::warn("circuit open: {} unreachable after {} consecutive failures; failing fast for {} ms",
                             options_.upstream_name, consecutive_failures_, options_.open_duration.count());
            }
            open_ = true;
            opened_at_ = now_();
        }
        return;
    }
    if (open_) spdlog::info("circuit closed: {} answers again", options_.upstream_name);
    open_ = false;
    consecutive_failures_ = 0;
    last_failure_.clear();
}

template <typename T, typename Call>
Result<T> CircuitBreaker::Guard(Call&& call, bool count) {
    bool probe = false;
    Error refusal;
    if (!Admit(&probe, &refusal)) return refusal;
    Result<T> result = call();
    Record(probe, result.ok() ? nullptr : &result.error(), count);
    return result;
}

Result<GenerateResult> CircuitBreaker::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                                const CancelToken& cancel) {
    return Guard<GenerateResult>([&] { return inner_.Generate(request, on_token, cancel); });
}

Result<GenerateResult> CircuitBreaker::GenerateRetry(const GenerateRequest& request, const TokenCallback& on_token,
                                                     const CancelToken& cancel) {
    return Guard<GenerateResult>([&] { return inner_.Generate(request, on_token, cancel); }, /*count=*/false);
}

Result<int64_t> CircuitBreaker::CountTokens(const std::string& model, const std::string& text) {
    return Guard<int64_t>([&] { return inner_.CountTokens(model, text); });
}

Result<int64_t> CircuitBreaker::ContextSize(const std::string& model) {
    return Guard<int64_t>([&] { return inner_.ContextSize(model); });
}

Result<EngineHealth> CircuitBreaker::Health() {
    return Guard<EngineHealth>([&] { return inner_.Health(); });
}

CircuitState CircuitBreaker::state() const {
    std::lock_guard lock(mutex_);
    if (!open_) return CircuitState::kClosed;
    if (probing_ || now_() >= opened_at_ + options_.open_duration) return CircuitState::kHalfOpen;
    return CircuitState::kOpen;
}

std::string CircuitBreaker::last_failure() const {
    std::lock_guard lock(mutex_);
    return last_failure_;
}

int64_t CircuitBreaker::opens() const {
    std::lock_guard lock(mutex_);
    return opens_;
}

}  // namespace summarizer
