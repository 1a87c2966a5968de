// The circuit breaker: opens after N consecutive connection failures, fails fast while open,
// lets one probe through after the open duration, closes on any answer from the server.
#include "summarizer/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "fake_backend.hpp"

namespace summarizer {
namespace {

using testing::FakeLlmEngine;
using Clock = std::chrono::steady_clock;

Error Refused() { return MakeError(ErrorCode::kUpstreamUnreachable, "cannot connect to Ollama", true); }

struct Harness {
    FakeLlmEngine inner;
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    CircuitBreaker breaker{inner, CircuitBreakerOptions{3, std::chrono::milliseconds(1000), "Ollama"},
                           [this] { return now; }};
    std::atomic<bool> down{true};

    Harness() {
        inner.SetResponder([this](const GenerateRequest& r, int) -> Result<GenerateResult> {
            if (down) return Refused();
            return FakeLlmEngine::Default(r);
        });
    }
    Result<GenerateResult> Call() { return breaker.Generate(GenerateRequest{}, nullptr, CancelToken{}); }
    size_t calls() const { return inner.requests().size(); }
};

TEST(CircuitBreaker, ClassifiesUnreachableErrors) {
    EXPECT_TRUE(IsUpstreamUnreachable(Refused()));
    EXPECT_FALSE(IsUpstreamUnreachable(MakeError(ErrorCode::kUpstreamUnavailable, "model 'x' not found")));
    EXPECT_FALSE(IsUpstreamUnreachable(MakeError(ErrorCode::kUpstreamError, "500", true)));
    EXPECT_FALSE(IsUpstreamUnreachable(MakeError(ErrorCode::kUpstreamTimeout, "slow", true)));
}

TEST(CircuitBreaker, OpensAfterThresholdAndFailsFast) {
    Harness h;
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
        EXPECT_FALSE(h.Call().ok());
    }
    EXPECT_EQ(h.calls(), 3u);
    EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
    EXPECT_EQ(h.breaker.opens(), 1);
    auto fast = h.Call();
    ASSERT_FALSE(fast.ok());
    EXPECT_EQ(fast.error().code, ErrorCode::kUpstreamUnreachable);
    EXPECT_TRUE(IsUpstreamUnreachable(fast.error()));
    EXPECT_NE(fast.error().message.find("circuit is open"), std::string::npos) << fast.error().message;
    EXPECT_EQ(h.calls(), 3u) << "an open circuit must not call the server";
    EXPECT_FALSE(h.breaker.Health().ok());
    EXPECT_FALSE(h.breaker.last_failure().empty());
}

// The pool retries a call on the same upstream through GenerateRetry: the threshold counts calls, so
// one call and its retries are one failure, and three calls are needed to open the circuit.
TEST(CircuitBreaker, RetriesOfACountedCallAreNotCountedAgain) {
    Harness h;
    const auto retry = [&] { return h.breaker.GenerateRetry(GenerateRequest{}, nullptr, CancelToken{}); };
    for (int call = 0; call < 2; ++call) {
        EXPECT_FALSE(h.Call().ok());
        EXPECT_FALSE(retry().ok());
        EXPECT_FALSE(retry().ok());
    }
    EXPECT_EQ(h.calls(), 6u);
    EXPECT_EQ(h.breaker.state(), CircuitState::kClosed) << "two failed calls (six attempts) stay under 3";
    EXPECT_FALSE(h.breaker.last_failure().empty()) << "a retry's failure is still the last one";
    EXPECT_FALSE(h.Call().ok());
    EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
    // Half-open, a retry that is the probe re-opens it on failure.
    h.now += std::chrono::milliseconds(1001);
    EXPECT_FALSE(retry().ok());
    EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
    EXPECT_EQ(h.calls(), 8u);
}

TEST(CircuitBreaker, HalfOpenProbeReopensOnFailureAndClosesOnSuccess) {
    Harness h;
    for (int i = 0; i < 3; ++i) (void)h.Call();
    h.now += std::chrono::milliseconds(1001);
    EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
    EXPECT_FALSE(h.Call().ok());  // the probe fails: open again
    EXPECT_EQ(h.calls(), 4u);
    EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
    EXPECT_FALSE(h.Call().ok());
    EXPECT_EQ(h.calls(), 4u);
    h.now += std::chrono::milliseconds(1001);
    h.down = false;
    EXPECT_TRUE(h.Call().ok());  // the probe succeeds: closed
    EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
    EXPECT_TRUE(h.Call().ok());
    EXPECT_EQ(h.calls(), 6u);
    EXPECT_TRUE(h.breaker.last_failure().empty());
}

TEST(CircuitBreaker, AnyAnswerFromTheServerResetsTheCount) {
    Harness h;
    int index = 0;
    h.inner.SetResponder([&](const GenerateRequest&, int) -> Result<GenerateResult> {
        // two refusals, one 500 (the server is there), two refusals: never three in a row
        return ++index == 3 ? Result<GenerateResult>(MakeError(ErrorCode::kUpstreamError, "500", true))
                            : Result<GenerateResult>(Refused());
    });
    for (int i = 0; i < 5; ++i) (void)h.Call();
    EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
    (void)h.Call();
    EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, CancelledCallsChangeNothing) {
    Harness h;
    h.inner.SetResponder([](const GenerateRequest&, int) -> Result<GenerateResult> {
        return MakeError(ErrorCode::kCancelled, "gone");
    });
    for (int i = 0; i < 10; ++i) (void)h.Call();
    EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, OnlyOneProbeAtATime) {
    Harness h;
    for (int i = 0; i < 3; ++i) (void)h.Call();
    h.now += std::chrono::milliseconds(1001);
    std::atomic<bool> release{false};
    std::atomic<bool> entered{false};
    h.inner.SetResponder([&](const GenerateRequest& r, int) -> Result<GenerateResult> {
        entered = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return FakeLlmEngine::Default(r);
    });
    std::thread probe([&] { EXPECT_TRUE(h.Call().ok()); });
    while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto other = h.Call();
    EXPECT_FALSE(other.ok());
    EXPECT_NE(other.error().message.find("probe"), std::string::npos);
    release = true;
    probe.join();
    EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, ThresholdZeroDisablesIt) {
    FakeLlmEngine inner;
    inner.SetResponder([](const GenerateRequest&, int) -> Result<GenerateResult> { return Refused(); });
    CircuitBreaker breaker(inner, CircuitBreakerOptions{0, std::chrono::milliseconds(1000), "Ollama"});
    for (int i = 0; i < 10; ++i) (void)breaker.Generate(GenerateRequest{}, nullptr, CancelToken{});
    EXPECT_EQ(inner.requests().size(), 10u);
    EXPECT_EQ(breaker.state(), CircuitState::kClosed);
}

}  // namespace
}  // namespace summarizer
