// Admission control: bounded in-flight, bounded FIFO queue, bounded wait, abandoned places
// freed at once, shutdown, and a Retry-After computed from the measured throughput.
#include "summarizer/admission.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "eventually.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Eventually;

TEST(Admission, BoundsInflightAndQueue) {
    Metrics metrics;
    Admission admission(2, 1, 10s, &metrics);
    EXPECT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    EXPECT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    std::atomic<int> third{-1};
    std::thread waiter([&] { third = static_cast<int>(admission.Enter()); });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    EXPECT_EQ(metrics.queued(), 1);
    EXPECT_EQ(metrics.inflight(), 2);
    EXPECT_EQ(admission.Enter(), AdmitResult::kQueueFull);  // 2 running + 1 waiting
    EXPECT_EQ(third.load(), -1);
    admission.Leave();
    waiter.join();
    EXPECT_EQ(third.load(), static_cast<int>(AdmitResult::kAdmitted));
    EXPECT_EQ(admission.inflight(), 2);
    EXPECT_EQ(admission.queued(), 0);
    admission.Leave();
    admission.Leave();
    EXPECT_EQ(metrics.inflight(), 0);
    EXPECT_EQ(metrics.queued(), 0);
}

TEST(Admission, QueueIsFirstInFirstOut) {
    Admission admission(1, 8, 10s);
    ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    std::mutex mutex;
    std::vector<int> order;
    std::vector<std::thread> waiters;
    for (int i = 0; i < 4; ++i) {
        waiters.emplace_back([&, i] {
            EXPECT_EQ(admission.Enter(), AdmitResult::kAdmitted);
            {
                std::lock_guard lock(mutex);
                order.push_back(i);
            }
            admission.Leave();
        });
        ASSERT_TRUE(Eventually([&] { return admission.queued() == i + 1; }, 2000ms));
    }
    admission.Leave();
    for (auto& t : waiters) t.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(Admission, QueuedWaitIsBounded) {
    Admission admission(1, 4, 150ms);
    ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    auto start = Clock::now();
    EXPECT_EQ(admission.Enter(), AdmitResult::kTimedOut);
    EXPECT_GE(Clock::now() - start, 150ms);
    EXPECT_EQ(admission.queued(), 0);
}

TEST(Admission, ClientGoneWhileQueuedFreesItsPlace) {
    Admission admission(1, 1, 30s);
    ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    std::atomic<bool> connected{true};
    std::atomic<int> outcome{-1};
    std::thread waiter([&] { outcome = static_cast<int>(admission.Enter([&] { return connected.load(); })); });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    EXPECT_EQ(admission.Enter(), AdmitResult::kQueueFull);
    connected = false;
    waiter.join();
    EXPECT_EQ(outcome.load(), static_cast<int>(AdmitResult::kAbandoned));
    EXPECT_EQ(admission.queued(), 0);
    EXPECT_EQ(admission.inflight(), 1) << "an abandoned place never takes a slot";
    // The place is free again: another caller can queue.
    std::thread next([&] { EXPECT_EQ(admission.Enter(), AdmitResult::kAdmitted); });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    admission.Leave();
    next.join();
}

TEST(Admission, RetryAfterIsQueuePositionOverMeasuredThroughput) {
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    Admission admission(2, 0, 10s, nullptr, [&] { return now; });
    // Nothing measured yet: 5 s per request and 2 slots -> 0.4 requests/s -> ceil(1 / 0.4) = 3 s.
    EXPECT_DOUBLE_EQ(admission.Throughput(), 0.4);
    EXPECT_EQ(admission.RetryAfterSeconds(), 3);
    // Twenty completions, one every 500 ms: 2 requests/s.
    for (int i = 0; i < 20; ++i) {
        ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
        now += 500ms;
        admission.Leave();
    }
    EXPECT_NEAR(admission.Throughput(), 20.0 / 9.5, 0.01);
    EXPECT_EQ(admission.RetryAfterSeconds(), 1);
    // Completions older than a minute no longer count; the estimate falls back to durations.
    now += 120s;
    EXPECT_NEAR(admission.Throughput(), 2 / 0.5, 0.01);
}

TEST(Admission, RetryAfterGrowsWithTheQueue) {
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    Admission admission(1, 10, 10s, nullptr, [&] { return now; });
    for (int i = 0; i < 10; ++i) {  // 1 request/s
        ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
        now += 1s;
        admission.Leave();
    }
    const int empty_queue = admission.RetryAfterSeconds();
    ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    std::vector<std::thread> waiters;
    for (int i = 0; i < 5; ++i) waiters.emplace_back([&] { (void)admission.Enter(); });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 5; }, 2000ms));
    EXPECT_EQ(empty_queue, 1);
    EXPECT_EQ(admission.RetryAfterSeconds(), 6);  // position 6 at 1 request/s
    admission.Abort();
    for (auto& t : waiters) t.join();
}

TEST(Admission, ShutdownRefusesNewcomersThenReleasesTheQueue) {
    Admission admission(1, 4, 30s);
    ASSERT_EQ(admission.Enter(), AdmitResult::kAdmitted);
    std::atomic<int> queued_outcome{-1};
    std::thread waiter([&] { queued_outcome = static_cast<int>(admission.Enter()); });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    admission.BeginShutdown();
    EXPECT_EQ(admission.Enter(), AdmitResult::kShuttingDown);
    EXPECT_FALSE(admission.WaitIdle(Clock::now() + 50ms));
    admission.Abort();
    waiter.join();
    EXPECT_EQ(queued_outcome.load(), static_cast<int>(AdmitResult::kShuttingDown));
    admission.Leave();
    EXPECT_TRUE(admission.WaitIdle(Clock::now() + 1s));
}

}  // namespace
}  // namespace summarizer
