// A circuit breaker around an LlmEngine: after `failure_threshold` consecutive calls that
// could not reach the server (IsUpstreamUnreachable), the circuit opens and every call fails
// fast with kUpstreamUnreachable instead of waiting for connect time-outs and retries. After
// `open_duration` one call is let through as a probe (half-open): its success, or any answer
// from the server (even an error status), closes the circuit; another connection failure
// re-opens it for another `open_duration`. While a probe runs, other calls fail fast.
// Cancelled calls change nothing. Thread-safe; `inner` must outlive the breaker.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "summarizer/llm_engine.hpp"

namespace summarizer {

// True for failures that mean "the server cannot be reached" (kUpstreamUnreachable: connection
// refused, connect time-out, or an open circuit), as opposed to answers from it (error status,
// missing model, a broken stream) or time-outs of a server that accepted the call.
bool IsUpstreamUnreachable(const Error& error);

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState state);

struct CircuitBreakerOptions {
    int failure_threshold = 3;                            // 0 disables the breaker
    std::chrono::milliseconds open_duration{10000};       // fail fast this long before probing
    std::string upstream_name = "Ollama";                 // for messages
};

class CircuitBreaker : public LlmEngine {
public:
    using Clock = std::chrono::steady_clock;
    CircuitBreaker(LlmEngine& inner, CircuitBreakerOptions options,
                   std::function<Clock::time_point()> now = [] { return Clock::now(); });

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;
    Result<int64_t> CountTokens(const std::string& model, const std::string& text) override;
    Result<int64_t> ContextSize(const std::string& model) override;
    Result<EngineHealth> Health() override;
    // A retry of a call whose connection failure was counted already (the pool retries a call on
    // the same upstream): a failure is not counted again, so the circuit opens after that many
    // failed calls, not attempts. A half-open probe's failure still re-opens it.
    Result<GenerateResult> GenerateRetry(const GenerateRequest& request, const TokenCallback& on_token,
                                         const CancelToken& cancel);

    // kOpen until the open duration has passed, then kHalfOpen until a probe decides.
    CircuitState state() const;
    // The last connection failure, for /readyz ("" when closed).
    std::string last_failure() const;
    // Times the circuit went from closed (or half-open) to open.
    int64_t opens() const;
    // What a call refused by the open circuit gets (kUpstreamUnreachable, saying when it probes next).
    Error RefusalError() const;

private:
    Error RefusalLocked() const;
    // Whether a call may go through; sets *probe when it is the half-open probe.
    bool Admit(bool* probe, Error* refusal);
    void Record(bool probe, const Error* error, bool count = true);

    template <typename T, typename Call>
    Result<T> Guard(Call&& call, bool count = true);

    LlmEngine& inner_;
    const CircuitBreakerOptions options_;
    const std::function<Clock::time_point()> now_;
    mutable std::mutex mutex_;
    bool open_ = false;
    bool probing_ = false;
    int consecutive_failures_ = 0;
    Clock::time_point opened_at_{};
    std::string last_failure_;
    int64_t opens_ = 0;
};

}  // namespace summarizer
