// Placement across several hosts (UpstreamScheduler with SchedulerOptions::hosts): a call goes to
// a host that serves its bucket, has a free slot and is healthy; a host with the bucket loaded
// first, then the least loaded relative to its slots; a failed host is avoided while a healthy one
// can serve; a host that is down is never used and a call no host can take fails at once; a call
// waits (boundedly) for a busy host that has its bucket rather than swap another;
// the prefill gate holds per host.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "summarizer/scheduler.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using Lease = UpstreamScheduler::Lease;

SchedulerOptions Pool(std::vector<SchedulerHost> hosts, bool affinity = false) {
    SchedulerOptions o;
    o.hosts = std::move(hosts);
    o.bucket_affinity = affinity;
    return o;
}

SchedulerHost Host(std::string name, int slots, std::vector<std::string> serves = {}, bool gate = false,
                   bool resident = false) {
    return SchedulerHost{std::move(name), slots, gate, resident, std::move(serves)};
}

Lease Take(UpstreamScheduler& s, const std::string& bucket, std::vector<size_t> exclude = {}) {
    auto lease = s.Acquire(CallSpec{bucket, false, std::move(exclude)}, CancelToken());
    EXPECT_TRUE(lease.ok()) << lease.error().message;
    return std::move(lease.value());
}

TEST(PoolPlacement, CallsSpreadOverHostsByLoadRelativeToSlots) {
    UpstreamScheduler s(Pool({Host("a", 2), Host("b", 4)}));
    std::vector<Lease> leases;
    std::map<size_t, int> on;
    for (int i = 0; i < 6; ++i) {
        leases.push_back(Take(s, "16k"));
        ++on[leases.back().host()];
    }
    EXPECT_EQ(on[0], 2);  // full: 2 of 2
    EXPECT_EQ(on[1], 4);  // full: 4 of 4
    EXPECT_EQ(s.host_stats(0).active, 2);
    EXPECT_EQ(s.host_stats(1).active, 4);
    // Both full: the next call waits, and takes the first slot freed.
    auto next = std::async(std::launch::async, [&] { return Take(s, "16k").host(); });
    EXPECT_EQ(next.wait_for(100ms), std::future_status::timeout);
    leases[0].Release();
    EXPECT_EQ(next.get(), leases[0].host());
}

TEST(PoolPlacement, EqualHostsTakeTurns) {
    UpstreamScheduler s(Pool({Host("a", 2), Host("b", 2), Host("c", 2)}));
    for (size_t h = 0; h < 3; ++h) s.NoteLoaded(h, "16k");  // the hot bucket preloaded everywhere
    std::map<size_t, int> started;
    for (int i = 0; i < 9; ++i) {
        Lease l = Take(s, "16k");
        ++started[l.host()];
    }  // each released at once: ties go to the host that started fewest
    EXPECT_EQ(started[0], 3);
    EXPECT_EQ(started[1], 3);
    EXPECT_EQ(started[2], 3);
}

TEST(PoolPlacement, OnlyHostsThatServeTheBucketAndNotExcluded) {
    UpstreamScheduler s(Pool({Host("small", 2, {"16k"}), Host("large", 2, {"60k"})}));
    EXPECT_EQ(Take(s, "60k").host(), 1u);
    EXPECT_EQ(Take(s, "16k").host(), 0u);
    auto none = s.Acquire(CallSpec{"16k", false, {0}}, CancelToken());
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, ErrorCode::kUpstreamUnreachable);
    EXPECT_NE(none.error().message.find("small failed this call"), std::string::npos) << none.error().message;
    EXPECT_NE(none.error().message.find("large does not serve it"), std::string::npos) << none.error().message;
}

TEST(PoolPlacement, AHostWithTheBucketLoadedComesFirst) {
    UpstreamScheduler s(Pool({Host("a", 2), Host("b", 2)}));
    s.NoteLoaded(0, "60k");
    s.NoteLoaded(1, "16k");
    EXPECT_EQ(Take(s, "16k").host(), 1u);
    EXPECT_EQ(Take(s, "60k").host(), 0u);
    // An OpenAI-compatible engine keeps its model resident: it counts as loaded for anything it serves.
    UpstreamScheduler r(Pool({Host("ollama", 2), Host("vllm", 2, {}, false, true)}));
    r.NoteLoaded(0, "60k");
    EXPECT_EQ(Take(r, "16k").host(), 1u);
}

TEST(PoolPlacement, AvoidedHostsOnlyWhenNoHealthyOneCanServeAndDownHostsNever) {
    std::atomic<int> a_state{static_cast<int>(HostCondition::kAvoid)};
    SchedulerOptions o = Pool({Host("a", 2), Host("b", 1)});
    o.condition = [&](size_t h) { return h == 0 ? static_cast<HostCondition>(a_state.load()) : HostCondition::kUp; };
    UpstreamScheduler s(o);
    Lease first = Take(s, "16k");
    EXPECT_EQ(first.host(), 1u);
    // b is full: a second call waits for b rather than go to the avoided a...
    auto second = std::async(std::launch::async, [&] { return Take(s, "16k").host(); });
    EXPECT_EQ(second.wait_for(100ms), std::future_status::timeout);
    first.Release();
    EXPECT_EQ(second.get(), 1u);
    // ...unless b cannot serve it at all.
    auto only_a = s.Acquire(CallSpec{"16k", false, {1}}, CancelToken());
    ASSERT_TRUE(only_a.ok());
    EXPECT_EQ(only_a->host(), 0u);
    only_a->Release();
    // A host that is down (circuit open) is never used: excluding b leaves nothing, said at once.
    a_state = static_cast<int>(HostCondition::kDown);
    s.Wake();
    auto none = s.Acquire(CallSpec{"16k", false, {1}}, CancelToken());
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, ErrorCode::kUpstreamUnreachable);
    EXPECT_NE(none.error().message.find("no upstream can take a call for 16k now"), std::string::npos)
        << none.error().message;
}

// With or without affinity (it orders calls on one host; this is placement across hosts).
TEST(PoolPlacement, ACallWaitsForTheHostThatHasItsBucketInsteadOfSwappingAnother) {
    for (const bool affinity : {true, false}) {
        SCOPED_TRACE(affinity ? "affinity" : "no affinity");
        SchedulerOptions o = Pool({Host("a", 1), Host("b", 1)}, affinity);
        o.switch_max_wait_ms = 400;
        UpstreamScheduler s(o);
        s.NoteLoaded(0, "16k");
        s.NoteLoaded(1, "60k");
        Lease busy = Take(s, "16k");  // a: its only slot
        ASSERT_EQ(busy.host(), 0u);
        // b is free but has 60k loaded: the 16k call waits for a rather than make b reload...
        const auto start = std::chrono::steady_clock::now();
        auto waiting = std::async(std::launch::async, [&] { return Take(s, "16k").host(); });
        EXPECT_EQ(waiting.wait_for(150ms), std::future_status::timeout);
        // ...for at most switch_max_wait_ms, then b takes it.
        EXPECT_EQ(waiting.get(), 1u);
        EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms);
        EXPECT_EQ(s.host_stats(1).model_switches, 1);
        // And when a frees its slot first, the waiting call goes there: no swap at all.
        UpstreamScheduler t(o);
        t.NoteLoaded(0, "16k");
        t.NoteLoaded(1, "60k");
        Lease held = Take(t, "16k");
        auto next = std::async(std::launch::async, [&] { return Take(t, "16k").host(); });
        EXPECT_EQ(next.wait_for(100ms), std::future_status::timeout);
        held.Release();
        EXPECT_EQ(next.get(), 0u);
        EXPECT_EQ(t.host_stats(1).model_switches, 0);
    }
}

TEST(PoolPlacement, AHostWithNothingLoadedTakesACallAtOnceEvenWithAffinity) {
    SchedulerOptions o = Pool({Host("a", 1), Host("b", 1)}, /*affinity=*/true);
    o.switch_max_wait_ms = 60000;
    UpstreamScheduler s(o);
    Lease first = Take(s, "16k");
    // Not after the 60 s switch wait: the idle host with nothing loaded takes it (nothing to evict).
    auto second = std::async(std::launch::async, [&] { return Take(s, "16k").host(); });
    ASSERT_EQ(second.wait_for(20s), std::future_status::ready);
    EXPECT_NE(second.get(), first.host());
}

TEST(PoolPlacement, ThePrefillGateHoldsPerHost) {
    UpstreamScheduler s(Pool({Host("a", 2, {}, /*gate=*/true), Host("b", 2, {}, /*gate=*/true)}));
    Lease a1 = Take(s, "16k");
    Lease b1 = Take(s, "16k");  // a is in its prefill: b takes it
    EXPECT_NE(a1.host(), b1.host());
    auto third = std::async(std::launch::async, [&] { return Take(s, "16k").host(); });
    EXPECT_EQ(third.wait_for(100ms), std::future_status::timeout) << "both hosts are prefilling";
    b1.MarkFirstToken();
    EXPECT_EQ(third.get(), b1.host());
}

TEST(PoolPlacement, InteractiveCallsGoFirstOnEveryHost) {
    UpstreamScheduler s(Pool({Host("a", 1), Host("b", 1)}));
    Lease a = Take(s, "16k");
    Lease b = Take(s, "16k");
    std::vector<std::string> order;
    std::mutex m;
    auto queue = [&](const std::string& name, bool interactive) {
        return std::async(std::launch::async, [&, name, interactive] {
            auto lease = s.Acquire(CallSpec{"16k", interactive, {}}, CancelToken());
            std::lock_guard lock(m);
            order.push_back(name);
        });
    };
    auto batch = queue("batch", false);
    ASSERT_TRUE(Eventually([&] { return s.stats().waiting == 1; }));
    auto interactive = queue("interactive", true);
    ASSERT_TRUE(Eventually([&] { return s.stats().waiting == 2; }));
    a.Release();
    interactive.get();
    b.Release();
    batch.get();
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[0], "interactive");
}

// Issue #14 item 9: a call that lists a larger bucket it fits (a ride) runs as that bucket on a host
// that has it loaded instead of making the host swap back; a host without it, a resident engine, or a
// call without rides runs its own bucket.
TEST(PoolPlacement, ACallRidesALargerBucketTheHostHasLoaded) {
    UpstreamScheduler s(Pool({Host("a", 2)}));
    s.NoteLoaded(0, "60k");
    auto riding = s.Acquire(CallSpec{"16k", true, {}, {"60k"}}, CancelToken());
    ASSERT_TRUE(riding.ok());
    EXPECT_EQ(riding->key(), "60k");
    riding->Release();
    EXPECT_EQ(s.stats().model_switches, 0) << "no swap";
    EXPECT_EQ(s.stats().rides, 1);
    EXPECT_EQ(s.host_stats(0).current_model, "60k");
    auto own = s.Acquire(CallSpec{"16k", true, {}, {}}, CancelToken());  // no rides: its own bucket
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(own->key(), "16k");
    own->Release();
    EXPECT_EQ(s.stats().model_switches, 1);
    // 16k loaded now: a ride is only for a larger bucket that is loaded.
    auto back = s.Acquire(CallSpec{"16k", true, {}, {"60k"}}, CancelToken());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->key(), "16k");
    // A resident engine (OpenAI-compatible) has every model loaded: nothing to ride.
    UpstreamScheduler r(Pool({Host("v", 2, {}, false, true)}));
    r.NoteLoaded(0, "60k");
    auto on_resident = r.Acquire(CallSpec{"16k", true, {}, {"60k"}}, CancelToken());
    ASSERT_TRUE(on_resident.ok());
    EXPECT_EQ(on_resident->key(), "16k");
}

// With two hosts, one with 16k and one with 60k loaded, a 16k call does not ride the 60k host: it
// waits for the host with its own bucket (a ride stands in for a reload, not for a wait), and rides
// only once no usable host has 16k loaded.
TEST(PoolPlacement, ARideStandsInForAReloadNotForAWait) {
    std::atomic<bool> a_down{false};
    SchedulerOptions o = Pool({Host("a", 1), Host("b", 1)});
    o.condition = [&](size_t h) { return h == 0 && a_down ? HostCondition::kDown : HostCondition::kUp; };
    UpstreamScheduler s(o);
    s.NoteLoaded(0, "16k");
    s.NoteLoaded(1, "60k");
    Lease busy = Take(s, "16k");
    EXPECT_EQ(busy.host(), 0u);
    auto waiting = std::async(std::launch::async, [&] { return s.Acquire(CallSpec{"16k", true, {}, {"60k"}}, CancelToken()); });
    EXPECT_EQ(waiting.wait_for(100ms), std::future_status::timeout) << "it must wait for host a, not ride b";
    busy.Release();
    auto placed = waiting.get();
    ASSERT_TRUE(placed.ok());
    EXPECT_EQ(placed->host(), 0u);
    EXPECT_EQ(placed->key(), "16k");
    placed->Release();
    a_down = true;  // host a's circuit opens: b's loaded 60k takes the call rather than reload 16k
    auto riding = s.Acquire(CallSpec{"16k", true, {}, {"60k"}}, CancelToken());
    ASSERT_TRUE(riding.ok());
    EXPECT_EQ(riding->host(), 1u);
    EXPECT_EQ(riding->key(), "60k");
    EXPECT_EQ(s.stats().model_switches, 0);
}

}  // namespace
}  // namespace summarizer
