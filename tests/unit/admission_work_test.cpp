// Admission by work: callers bring their estimated GPU seconds; Retry-After is what the running
// callers have left plus what waits, over the parallel capacity; TryEnter never waits; a caller
// leaves by its id.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "eventually.hpp"
#include "summarizer/admission.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Eventually;

TEST(AdmissionWork, RetryAfterIsTheWorkAheadOverTheParallelism) {
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    Admission admission(1, 4, 10s, nullptr, [&] { return now; });
    Admission::Id running = 0;
    ASSERT_EQ(admission.Enter(100, &running), AdmitResult::kAdmitted);
    EXPECT_EQ(admission.RetryAfterSeconds(), 100);
    std::thread waiter([&] {
        Admission::Id id = 0;
        if (admission.Enter(50, &id) == AdmitResult::kAdmitted) admission.Leave(id);
    });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    EXPECT_EQ(admission.RetryAfterSeconds(), 150) << "100 s running + 50 s waiting, one at a time";
    now += 30s;
    EXPECT_EQ(admission.RetryAfterSeconds(), 120) << "the running one has 70 s left";
    admission.SetParallelism(2);
    EXPECT_EQ(admission.RetryAfterSeconds(), 60);
    admission.SetParallelism(1);
    now += 200s;  // past its estimate: a tenth of it is still counted
    EXPECT_EQ(admission.RetryAfterSeconds(), 60);
    admission.Abort();
    waiter.join();
}

TEST(AdmissionWork, AnUnknownCallerCountsAsTheMeanOfTheKnownOnes) {
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    Admission admission(3, 4, 10s, nullptr, [&] { return now; });
    Admission::Id a = 0, b = 0, c = 0;
    ASSERT_EQ(admission.Enter(40, &a), AdmitResult::kAdmitted);
    ASSERT_EQ(admission.Enter(20, &b), AdmitResult::kAdmitted);
    ASSERT_EQ(admission.Enter(0, &c), AdmitResult::kAdmitted);
    EXPECT_DOUBLE_EQ(admission.WorkAheadSeconds(), 90);
    admission.SetWork(c, 60);
    EXPECT_DOUBLE_EQ(admission.WorkAheadSeconds(), 120);
    admission.Leave(a);
    EXPECT_DOUBLE_EQ(admission.WorkAheadSeconds(), 80) << "the one that left was the 40 s one";
    admission.Leave(b);
    admission.Leave(c);
    EXPECT_EQ(admission.inflight(), 0);
}

TEST(AdmissionWork, WithoutEstimatesRetryAfterIsTheQueueOverThroughputAsBefore) {
    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    Admission admission(2, 0, 10s, nullptr, [&] { return now; });
    EXPECT_DOUBLE_EQ(admission.WorkAheadSeconds(), 0);
    EXPECT_EQ(admission.RetryAfterSeconds(), 3);  // 5 s per request, 2 slots: ceil(1 / 0.4)
}

TEST(AdmissionWork, TryEnterNeverWaits) {
    Admission admission(1, 4, 10s);
    Admission::Id first = 0, second = 0;
    ASSERT_EQ(admission.TryEnter(10, &first), AdmitResult::kAdmitted);
    const auto start = Clock::now();
    EXPECT_EQ(admission.TryEnter(10, &second), AdmitResult::kQueueFull);
    EXPECT_LT(Clock::now() - start, 50ms);
    std::promise<void> release;
    std::thread waiter([&, hold = release.get_future()] {
        Admission::Id id = 0;
        if (admission.Enter(5, &id) != AdmitResult::kAdmitted) return;
        hold.wait();  // holds its slot until the check below is done
        admission.Leave(id);
    });
    ASSERT_TRUE(Eventually([&] { return admission.queued() == 1; }, 2000ms));
    admission.Leave(first);
    // A waiting caller goes first: TryEnter does not jump the queue.
    EXPECT_EQ(admission.TryEnter(10, &second), AdmitResult::kQueueFull);
    release.set_value();
    waiter.join();
    EXPECT_EQ(admission.TryEnter(10, &second), AdmitResult::kAdmitted);
    admission.BeginShutdown();
    EXPECT_EQ(admission.TryEnter(10, &first), AdmitResult::kShuttingDown);
    admission.Leave(second);
}

}  // namespace
}  // namespace summarizer
