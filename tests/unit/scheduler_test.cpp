// The upstream scheduler: slot limit, prefill gate, interactive before batch without starvation,
// bucket affinity with a bounded switch wait, cancellation while waiting, and the
// ScheduledEngine decorator (first token opens the gate even for calls without a callback).
// Each test drives the scheduler step by step: it holds leases itself and waits until the
// scheduler reports a call as waiting before queueing the next, so start orders are exact.
#include "summarizer/scheduler.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "fake_backend.hpp"
#include "summarizer/summarizer.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using Lease = UpstreamScheduler::Lease;
using testing::Eventually;

// Polls `condition` until it holds or a generous deadline passes.
SchedulerOptions Options(int slots, bool gate) {
    SchedulerOptions o;
    o.slots = slots;
    o.prefill_gate = gate;
    return o;
}

// Calls queued from background threads; each records its name when it starts and keeps its
// lease until the test lets it go (or releases at once, for ordering tests).
class Callers {
public:
    explicit Callers(UpstreamScheduler& scheduler) : scheduler_(scheduler) {}
    ~Callers() {
        ReleaseAll();
        for (auto& t : threads_) t.join();
    }

    // Queues a call and returns once the scheduler counts it as waiting or it has started.
    void Queue(const std::string& name, const std::string& model, bool interactive, bool hold = false,
               CancelToken cancel = CancelToken()) {
        const int64_t before_started = scheduler_.stats().started;
        const int before_waiting = scheduler_.stats().waiting;
        threads_.emplace_back([=, this] {
            auto lease = scheduler_.Acquire(model, interactive, cancel);
            std::unique_lock lock(mutex_);
            if (!lease.ok()) {
                errors_.push_back(name + ":" + std::string(ErrorCodeName(lease.error().code)));
                cv_.notify_all();
                return;
            }
            order_.push_back(name);
            cv_.notify_all();
            if (hold) cv_.wait(lock, [&] { return released_all_ || released_.count(name) > 0; });
        });
        EXPECT_TRUE(Eventually([&] {
            auto s = scheduler_.stats();
            return s.waiting > before_waiting || s.started > before_started;
        }));
    }
    void Release(const std::string& name) {
        std::lock_guard lock(mutex_);
        released_.insert(name);
        cv_.notify_all();
    }
    void ReleaseAll() {
        std::lock_guard lock(mutex_);
        released_all_ = true;
        cv_.notify_all();
    }
    bool WaitForStarts(size_t n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 5s, [&] { return order_.size() >= n; });
    }
    bool WaitForErrors(size_t n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 5s, [&] { return errors_.size() >= n; });
    }
    std::vector<std::string> order() {
        std::lock_guard lock(mutex_);
        return order_;
    }
    std::vector<std::string> errors() {
        std::lock_guard lock(mutex_);
        return errors_;
    }

private:
    UpstreamScheduler& scheduler_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> order_, errors_;
    std::set<std::string> released_;
    bool released_all_ = false;
    std::vector<std::thread> threads_;
};

TEST(UpstreamScheduler, AtMostSlotsCallsRunAndAFreedSlotGoesToTheNext) {
    UpstreamScheduler scheduler(Options(2, false));
    auto a = scheduler.Acquire("m", false, CancelToken());
    auto b = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(scheduler.stats().active, 2);
    {
        Callers callers(scheduler);
        callers.Queue("c", "m", false);
        std::this_thread::sleep_for(30ms);  // c must stay queued however long we wait
        EXPECT_TRUE(callers.order().empty());
        EXPECT_EQ(scheduler.stats().waiting, 1);
        EXPECT_EQ(scheduler.stats().active, 2);
        a->Release();
        ASSERT_TRUE(callers.WaitForStarts(1));
        EXPECT_EQ(callers.order(), std::vector<std::string>{"c"});
    }
    EXPECT_EQ(scheduler.stats().started, 3);
    EXPECT_EQ(scheduler.stats().active, 1);  // b still holds its slot
    b->Release();
    EXPECT_EQ(scheduler.stats().active, 0);
}

TEST(UpstreamScheduler, ManyThreadsNeverExceedTheSlots) {
    UpstreamScheduler scheduler(Options(3, false));
    std::atomic<int> running{0}, max_running{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 12; ++i) {
        threads.emplace_back([&, i] {
            auto lease = scheduler.Acquire("m", i % 2 == 0, CancelToken());
            ASSERT_TRUE(lease.ok());
            int now = ++running;
            int seen = max_running.load();
            while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::sleep_for(3ms);
            --running;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_LE(max_running.load(), 3);
    EXPECT_GE(max_running.load(), 1);
    EXPECT_EQ(scheduler.stats().started, 12);
    EXPECT_EQ(scheduler.stats().active, 0);
    EXPECT_EQ(scheduler.stats().waiting, 0);
}

TEST(UpstreamScheduler, PrefillGateHoldsTheNextCallUntilTheFirstToken) {
    UpstreamScheduler scheduler(Options(3, true));
    auto a = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(a.ok());
    Callers callers(scheduler);
    callers.Queue("b", "m", false, /*hold=*/true);
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(callers.order().empty()) << "a free slot, but a is still prefilling";
    a->MarkFirstToken();
    ASSERT_TRUE(callers.WaitForStarts(1));
    EXPECT_EQ(scheduler.stats().active, 2);  // a decodes while b prefills
}

TEST(UpstreamScheduler, ReleasingBeforeAnyTokenOpensTheGate) {
    UpstreamScheduler scheduler(Options(2, true));
    auto a = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(a.ok());
    Callers callers(scheduler);
    callers.Queue("b", "m", false);
    a->Release();  // e.g. the call failed before its first token
    ASSERT_TRUE(callers.WaitForStarts(1));
}

TEST(UpstreamScheduler, ASilentCallStopsHoldingTheGateAfterItsMaximum) {
    SchedulerOptions o = Options(2, true);
    o.prefill_gate_max_ms = 50;
    UpstreamScheduler scheduler(o);
    auto a = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(a.ok());
    Callers callers(scheduler);
    callers.Queue("b", "m", false, true);
    ASSERT_TRUE(callers.WaitForStarts(1)) << "a never produced a token; b must not wait forever";
    EXPECT_EQ(scheduler.stats().active, 2);
}

TEST(UpstreamScheduler, InteractiveCallsGoBeforeBatchCallsWhichKeepArrivalOrder) {
    UpstreamScheduler scheduler(Options(1, false));
    auto hold = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    callers.Queue("map1", "m", false);
    callers.Queue("map2", "m", false);
    callers.Queue("final", "m", true);
    callers.Queue("map3", "m", false);
    callers.Queue("single", "m", true);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(5));
    EXPECT_EQ(callers.order(), (std::vector<std::string>{"final", "single", "map1", "map2", "map3"}));
}

TEST(UpstreamScheduler, ABatchCallThatWaitedTooLongIsServedInTurn) {
    SchedulerOptions o = Options(1, false);
    o.batch_max_wait_ms = 60;
    UpstreamScheduler scheduler(o);
    auto hold = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    callers.Queue("old-map", "m", false);
    std::this_thread::sleep_for(120ms);  // longer than batch_max_wait_ms
    callers.Queue("interactive", "m", true);
    callers.Queue("young-map", "m", false);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(3));
    EXPECT_EQ(callers.order(), (std::vector<std::string>{"old-map", "interactive", "young-map"}));
}

TEST(UpstreamScheduler, WithoutAffinityCallsStartInArrivalOrderWhateverTheModel) {
    UpstreamScheduler scheduler(Options(1, false));
    auto hold = scheduler.Acquire("m16", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    callers.Queue("x60", "m60", false);
    callers.Queue("y16", "m16", false);
    callers.Queue("z16", "m16", false);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(3));
    EXPECT_EQ(callers.order(), (std::vector<std::string>{"x60", "y16", "z16"}));
    EXPECT_EQ(scheduler.stats().model_switches, 2);
}

TEST(UpstreamScheduler, AffinityRunsTheCurrentModelsCallsFirst) {
    SchedulerOptions o = Options(1, false);
    o.bucket_affinity = true;
    UpstreamScheduler scheduler(o);
    auto hold = scheduler.Acquire("m16", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    callers.Queue("x60", "m60", true);  // even an interactive call for the other model waits its turn
    callers.Queue("y16", "m16", false);
    callers.Queue("z16", "m16", false);
    EXPECT_EQ(scheduler.Pending("m16"), 3);
    EXPECT_EQ(scheduler.Pending("m60"), 1);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(3));
    EXPECT_EQ(callers.order(), (std::vector<std::string>{"y16", "z16", "x60"}));
    auto stats = scheduler.stats();
    EXPECT_EQ(stats.model_switches, 1);
    EXPECT_EQ(stats.current_model, "m60");
}

TEST(UpstreamScheduler, AffinitySwitchesWhenTheOtherModelWaitedTooLong) {
    SchedulerOptions o = Options(1, false);
    o.bucket_affinity = true;
    o.switch_max_wait_ms = 150;
    UpstreamScheduler scheduler(o);
    auto hold = scheduler.Acquire("m16", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    callers.Queue("x60", "m60", false);
    std::this_thread::sleep_for(300ms);  // longer than switch_max_wait_ms
    callers.Queue("y16", "m16", false);
    callers.Queue("w60", "m60", false);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(3));
    // x60 forced the switch; w60 then rides on the new current model before y16 goes back.
    EXPECT_EQ(callers.order(), (std::vector<std::string>{"x60", "w60", "y16"}));
}

TEST(UpstreamScheduler, CancelWhileWaitingReturnsCancelledPromptly) {
    UpstreamScheduler scheduler(Options(1, false));
    auto hold = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(hold.ok());
    Callers callers(scheduler);
    CancelToken parent;
    callers.Queue("cancelled", "m", false, false, parent.Child());
    const auto t0 = std::chrono::steady_clock::now();
    parent.Cancel();
    ASSERT_TRUE(callers.WaitForErrors(1));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_EQ(callers.errors(), std::vector<std::string>{"cancelled:cancelled"});
    EXPECT_EQ(scheduler.stats().waiting, 0);
    EXPECT_EQ(scheduler.stats().active, 1);
    // The slot is still usable by others.
    callers.Queue("next", "m", false);
    hold->Release();
    ASSERT_TRUE(callers.WaitForStarts(1));
    EXPECT_EQ(callers.order(), std::vector<std::string>{"next"});
}

TEST(UpstreamScheduler, AlreadyCancelledCallNeverStarts) {
    UpstreamScheduler scheduler(Options(4, false));
    CancelToken cancel;
    cancel.Cancel();
    auto lease = scheduler.Acquire("m", true, cancel);
    ASSERT_FALSE(lease.ok());
    EXPECT_EQ(lease.error().code, ErrorCode::kCancelled);
    EXPECT_EQ(scheduler.stats().started, 0);
}

TEST(UpstreamScheduler, MovedLeaseReleasesOnce) {
    UpstreamScheduler scheduler(Options(1, false));
    {
        auto a = scheduler.Acquire("m", false, CancelToken());
        ASSERT_TRUE(a.ok());
        Lease moved = std::move(*a);
        EXPECT_EQ(scheduler.stats().active, 1);
        Lease again;
        again = std::move(moved);
        EXPECT_EQ(scheduler.stats().active, 1);
    }
    EXPECT_EQ(scheduler.stats().active, 0);
    auto b = scheduler.Acquire("m", false, CancelToken());
    ASSERT_TRUE(b.ok());
}

// A backend whose calls send one token and then wait until the test lets them finish.
class GatedBackend : public testing::FakeLlmEngine {
public:
    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override {
        {
            std::lock_guard lock(mutex_);
            ++started_;
            max_active_ = std::max(max_active_, ++active_);
        }
        cv_.notify_all();
        if (emit_token && on_token) on_token("t");
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return open_ || cancel.cancelled(); });
        --active_;
        if (fail) return MakeError(ErrorCode::kUpstreamError, "boom");
        return Default(request);
    }
    void Open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    bool WaitForStarted(int n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 5s, [&] { return started_ >= n; });
    }
    int started() {
        std::lock_guard lock(mutex_);
        return started_;
    }
    int max_active() {
        std::lock_guard lock(mutex_);
        return max_active_;
    }
    bool emit_token = true;
    bool fail = false;

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int started_ = 0, active_ = 0, max_active_ = 0;
    bool open_ = false;
};

TEST(ScheduledEngine, FirstTokenOfACallWithoutCallbackOpensTheGate) {
    GatedBackend inner;
    UpstreamScheduler scheduler(Options(2, true));
    ScheduledEngine backend(inner, scheduler);
    GenerateRequest request;
    request.model = "m";
    request.interactive = false;
    auto first = std::async(std::launch::async, [&] { return backend.Generate(request, nullptr, CancelToken()); });
    auto second = std::async(std::launch::async, [&] { return backend.Generate(request, nullptr, CancelToken()); });
    auto third = std::async(std::launch::async, [&] { return backend.Generate(request, nullptr, CancelToken()); });
    // Two calls start (the first's token opened the gate for the second) but never a third.
    ASSERT_TRUE(inner.WaitForStarted(2));
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(inner.started(), 2);
    EXPECT_EQ(scheduler.stats().waiting, 1);
    inner.Open();
    EXPECT_TRUE(first.get().ok());
    EXPECT_TRUE(second.get().ok());
    EXPECT_TRUE(third.get().ok());
    EXPECT_EQ(inner.max_active(), 2);
    EXPECT_EQ(scheduler.stats().active, 0);
}

TEST(ScheduledEngine, ForwardsTokensAndFreesTheSlotOnError) {
    GatedBackend inner;
    inner.fail = true;
    inner.Open();
    UpstreamScheduler scheduler(Options(1, true));
    ScheduledEngine backend(inner, scheduler);
    GenerateRequest request;
    request.model = "m";
    std::string seen;
    auto result = backend.Generate(
        request, [&](std::string_view p) { seen += p; }, CancelToken());
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kUpstreamError);
    EXPECT_EQ(seen, "t");
    EXPECT_EQ(scheduler.stats().active, 0);
    inner.fail = false;
    EXPECT_TRUE(backend.Generate(request, nullptr, CancelToken()).ok());
}

TEST(ScheduledEngine, CancelledWhileQueuedNeverReachesTheBackend) {
    GatedBackend inner;
    UpstreamScheduler scheduler(Options(1, false));
    ScheduledEngine backend(inner, scheduler);
    GenerateRequest request;
    request.model = "m";
    auto running = std::async(std::launch::async, [&] { return backend.Generate(request, nullptr, CancelToken()); });
    ASSERT_TRUE(inner.WaitForStarted(1));
    CancelToken cancel;
    auto queued = std::async(std::launch::async, [&] { return backend.Generate(request, nullptr, cancel); });
    ASSERT_TRUE(Eventually([&] { return scheduler.stats().waiting == 1; }));
    cancel.Cancel();
    auto result = queued.get();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kCancelled);
    EXPECT_EQ(inner.started(), 1);
    inner.Open();
    EXPECT_TRUE(running.get().ok());
}

TEST(SchedulerOptionsFromConfig, SlotsFromNumParallelAffinityFromTheCostPolicy) {
    Config config;
    config.ollama.num_parallel = 4;
    config.scheduler.prefill_gate = false;
    config.scheduler.batch_max_wait_ms = 1234;
    config.scheduler.switch_max_wait_ms = 567;
    auto o = SchedulerOptionsFromConfig(config);
    EXPECT_EQ(o.slots, 4);
    EXPECT_FALSE(o.prefill_gate);
    EXPECT_EQ(o.batch_max_wait_ms, 1234);
    EXPECT_EQ(o.switch_max_wait_ms, 567);
    EXPECT_FALSE(o.bucket_affinity);
    config.routing.policy = "cost";
    EXPECT_TRUE(SchedulerOptionsFromConfig(config).bucket_affinity);
}

// The summarizer marks which calls a client waits on, and a map-reduce through the scheduler keeps
// within its slots and its document order.
TEST(SummarizerThroughScheduler, MarksInteractiveCallsAndKeepsWithinTheSlots) {
    Config config;
    config.routing.hierarchical_chunk_max_chars = 3000;
    config.ollama.num_parallel = 2;
    config.map_reduce.concurrency = 6;  // more threads than slots: the scheduler must hold them back
    testing::FakeLlmEngine inner;
    std::atomic<int> active{0}, max_active{0};
    inner.SetResponder([&](const GenerateRequest& r, int) -> Result<GenerateResult> {
        int now = ++active;
        int seen = max_active.load();
        while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(2ms);
        --active;
        return testing::FakeLlmEngine::Default(r);
    });
    UpstreamScheduler scheduler(SchedulerOptionsFromConfig(config));
    ScheduledEngine backend(inner, scheduler);
    Summarizer summarizer(config, backend);

    std::string text;
    for (int i = 0; i < 1500; ++i) text += "Sentence " + std::to_string(i) + " talks about the plan and its budget. ";
    SummarizeRequest request;
    request.text = text;
    request.strategy = Strategy::kMapReduce;
    auto response = summarizer.Run(request, {}, CancelToken());
    ASSERT_TRUE(response.ok()) << response.error().message;
    ASSERT_GT(response->chunks, 3);
    EXPECT_LE(max_active.load(), 2);
    int maps = 0, finals = 0;
    for (const auto& r : inner.requests()) {
        if (r.tag.rfind("map ", 0) == 0) {
            ++maps;
            EXPECT_FALSE(r.interactive) << r.tag;
        } else if (r.tag == "reduce final") {
            ++finals;
            EXPECT_TRUE(r.interactive);
        } else {
            EXPECT_FALSE(r.interactive) << r.tag;  // intermediate reduce
        }
    }
    EXPECT_EQ(maps, response->chunks);
    EXPECT_EQ(finals, 1);
    // The final reduce lists the chunk summaries in document order.
    const std::string final_prompt = inner.requests().back().prompt;
    size_t last = 0;
    for (int i = 1; i <= response->chunks; ++i) {
        size_t at = final_prompt.find("summary of map " + std::to_string(i) + "/");
        ASSERT_NE(at, std::string::npos) << i;
        EXPECT_GE(at, last);
        last = at;
    }

    request.text = "A short text about one thing.";
    request.strategy = Strategy::kAuto;
    ASSERT_TRUE(summarizer.Run(request, {}, CancelToken()).ok());
    EXPECT_EQ(inner.requests().back().tag, "single");
    EXPECT_TRUE(inner.requests().back().interactive);
}

}  // namespace
}  // namespace summarizer
