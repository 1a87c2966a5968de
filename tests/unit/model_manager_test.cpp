// ModelManager against the in-process fake backend: the VRAM check, learning, pending counts,
// the hot bucket's restore, spill detection.
#include "summarizer/model_manager.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "fake_backend.hpp"

namespace summarizer {
namespace {

using testing::FakeLlmEngine;

// Records the loads the manager sends.
class LoadRecordingBackend : public FakeLlmEngine {
public:
    struct LoadCall {
        std::string model;
        int num_ctx;
        std::string keep_alive;
    };
    Result<GenerateResult> Load(const std::string& model, int num_ctx, const std::string& keep_alive) override {
        std::lock_guard lock(load_mutex_);
        loads_.push_back({model, num_ctx, keep_alive});
        loaded = {LoadedModel{model + ":latest", 4'000'000'000, 4'000'000'000, num_ctx, "2026-12-03T01:00:00Z"}};
        GenerateResult r;
        r.finish_reason = "load";
        r.load = std::chrono::nanoseconds(load_ns);
        return r;
    }
    std::vector<LoadCall> loads() const {
        std::lock_guard lock(load_mutex_);
        return loads_;
    }
    int64_t load_ns = 0;

private:
    mutable std::mutex load_mutex_;
    std::vector<LoadCall> loads_;
};

GenerateRequest RequestFor(const Config& config, size_t bucket) {
    GenerateRequest g;
    g.model = config.buckets[bucket].model;
    g.context_tokens = config.buckets[bucket].num_ctx;
    g.keep_alive = config.buckets[bucket].keep_alive;
    g.prompt = std::string(4000, 'x');
    return g;
}

GenerateResult Timed(int64_t prompt_tokens, int64_t out_tokens, double prefill_tok_s, double decode_tok_s,
                     double load_ms) {
    GenerateResult r;
    r.text = "ok";
    r.prompt_tokens = prompt_tokens;
    r.output_tokens = out_tokens;
    r.prefill = std::chrono::nanoseconds(static_cast<int64_t>(prompt_tokens / prefill_tok_s * 1e9));
    r.decode = std::chrono::nanoseconds(static_cast<int64_t>(out_tokens / decode_tok_s * 1e9));
    r.load = std::chrono::nanoseconds(static_cast<int64_t>(load_ms * 1e6));
    r.total = r.prefill + r.decode + r.load;
    return r;
}

TEST(ModelManager, DefaultConfigFitsTheBudget) {
    Config config;
    EXPECT_TRUE(ModelManager::CheckVramBudget(config).empty());
    config.vram.kv_cache_type = "q8_0";
    config.ollama.num_parallel = 4;
    EXPECT_TRUE(ModelManager::CheckVramBudget(config).empty());
}

TEST(ModelManager, F16WithFourSlotsWarnsAboutThe60kBucketAndNamesTheFix) {
    Config config;
    config.vram.kv_cache_type = "f16";
    config.ollama.num_parallel = 4;
    auto warnings = ModelManager::CheckVramBudget(config);
    ASSERT_EQ(warnings.size(), 1u);
    const std::string& w = warnings[0];
    EXPECT_NE(w.find("bucket 60k (gemma3-4b-60k, num_ctx 61440 x 4 slot(s), KV cache f16)"), std::string::npos) << w;
    EXPECT_NE(w.find("needs ~9,660 MiB of VRAM but 7,788 MiB are usable"), std::string::npos) << w;
    EXPECT_NE(w.find("OLLAMA_KV_CACHE_TYPE=q8_0 with OLLAMA_FLASH_ATTENTION=1"), std::string::npos) << w;
    EXPECT_NE(w.find("OLLAMA_NUM_PARALLEL=2"), std::string::npos) << w;
    EXPECT_NE(w.find("num_ctx <= 40960"), std::string::npos) << w;
}

TEST(ModelManager, StartPreloadsTheHotBucketWithItsKeepAlive) {
    Config config;
    LoadRecordingBackend backend;
    ModelManager manager(config, backend);
    manager.Start();
    manager.WaitIdle();
    auto loads = backend.loads();
    ASSERT_EQ(loads.size(), 1u);
    EXPECT_EQ(loads[0].model, "gemma3-4b-16k");
    EXPECT_EQ(loads[0].num_ctx, 16384);
    EXPECT_EQ(loads[0].keep_alive, "24h");
    EXPECT_TRUE(manager.CurrentCosts().buckets[0].loaded);
    EXPECT_EQ(manager.Status().preloads, 1);
}

// The hot bucket is data: any bucket can be it, and with none marked nothing is preloaded or restored.
TEST(ModelManager, TheHotBucketIsWhicheverTheConfigMarks) {
    Config config;
    config.vram.restore_idle_ms = 20;
    config.buckets[0].hot = false;
    config.buckets[1].hot = true;
    LoadRecordingBackend backend;
    backend.load_ns = 2'000'000'000;
    ModelManager manager(config, backend);
    TrackedEngine tracked(backend, manager);
    manager.Start();
    manager.WaitIdle();
    ASSERT_EQ(backend.loads().size(), 1u);
    EXPECT_EQ(backend.loads()[0].model, "gemma3-4b-60k");
    EXPECT_EQ(manager.Status().hot_bucket, "60k");
    ASSERT_TRUE(tracked.Generate(RequestFor(config, 0), nullptr, {}).ok());  // the 16k bucket, now the other one
    manager.WaitIdle();
    ASSERT_EQ(backend.loads().size(), 2u);
    EXPECT_EQ(backend.loads()[1].model, "gemma3-4b-60k");  // restored

    Config none;
    none.buckets[0].hot = false;
    LoadRecordingBackend quiet;
    ModelManager unmanaged(none, quiet);
    TrackedEngine quiet_tracked(quiet, unmanaged);
    unmanaged.Start();
    unmanaged.WaitIdle();
    ASSERT_TRUE(quiet_tracked.Generate(RequestFor(none, 1), nullptr, {}).ok());
    unmanaged.WaitIdle();
    EXPECT_TRUE(quiet.loads().empty());
    EXPECT_EQ(unmanaged.Status().hot_bucket, "");
}

TEST(ModelManager, NoPreloadWhenDisabled) {
    Config config;
    config.vram.preload_hot_bucket = false;
    LoadRecordingBackend backend;
    ModelManager manager(config, backend);
    manager.Start();
    manager.WaitIdle();
    EXPECT_TRUE(backend.loads().empty());
}

TEST(ModelManager, LearnsReloadTimeAndRatesFromCalls) {
    Config config;
    config.vram.preload_hot_bucket = false;
    FakeLlmEngine backend;
    backend.SetResponder([](const GenerateRequest&, int index) -> Result<GenerateResult> {
        return Timed(2000, 300, 2500, 50, index == 0 ? 3200 : 5);
    });
    // What /api/ps shows once the 60K call has loaded its runner (the manager reads it after a load).
    backend.loaded = {LoadedModel{"gemma3-4b-60k:latest", 5'000'000'000, 5'000'000'000, 61440, ""}};
    ModelManager manager(config, backend);
    TrackedEngine tracked(backend, manager);
    for (int i = 0; i < 3; ++i) {
        auto r = tracked.Generate(RequestFor(config, 1), nullptr, CancelToken{});
        ASSERT_TRUE(r.ok());
    }
    manager.WaitIdle();
    RouteCosts costs = manager.CurrentCosts();
    EXPECT_NEAR(costs.reload_ms, 3200, 1);  // only the first call loaded a runner
    EXPECT_TRUE(costs.buckets[1].loaded);
    EXPECT_FALSE(costs.buckets[0].loaded);   // one runner per weights file
    EXPECT_NEAR(costs.buckets[1].prefill_tokens_per_s, 2500, 1);
    EXPECT_NEAR(costs.buckets[1].decode_tokens_per_s, 50, 0.1);
    EXPECT_NEAR(costs.buckets[1].mean_call_ms, 2000.0 / 2500 * 1000 + 300.0 / 50 * 1000, 10);
    EXPECT_NEAR(costs.output_tokens, 300, 0.1);
    // The 16K bucket has no samples: the configured priors.
    EXPECT_EQ(costs.buckets[0].prefill_tokens_per_s, config.routing.cost_prefill_tokens_per_s);
    EXPECT_EQ(costs.buckets[0].decode_tokens_per_s, config.routing.cost_decode_tokens_per_s);
    EXPECT_EQ(manager.Status().reloads_seen, 1);
}

TEST(ModelManager, CountsPendingCallsPerBucket) {
    Config config;
    FakeLlmEngine backend;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> entered{0};
    backend.SetResponder([&](const GenerateRequest&, int) -> Result<GenerateResult> {
        ++entered;
        released.wait();
        return Timed(100, 10, 1000, 10, 0);
    });
    ModelManager manager(config, backend);
    TrackedEngine tracked(backend, manager);
    auto a = std::async(std::launch::async, [&] { return tracked.Generate(RequestFor(config, 1), nullptr, {}); });
    auto b = std::async(std::launch::async, [&] { return tracked.Generate(RequestFor(config, 1), nullptr, {}); });
    while (entered < 2) std::this_thread::yield();
    EXPECT_EQ(manager.CurrentCosts().buckets[1].pending, 2);
    EXPECT_EQ(manager.CurrentCosts().buckets[0].pending, 0);
    release.set_value();
    ASSERT_TRUE(a.get().ok());
    ASSERT_TRUE(b.get().ok());
    EXPECT_EQ(manager.CurrentCosts().buckets[1].pending, 0);
}

TEST(ModelManager, RestoresTheHotBucketAfterTheLargeOneIsDone) {
    Config config;
    config.vram.restore_idle_ms = 20;
    LoadRecordingBackend backend;
    backend.load_ns = 2'000'000'000;
    ModelManager manager(config, backend);
    TrackedEngine tracked(backend, manager);
    manager.Start();
    manager.WaitIdle();
    ASSERT_EQ(backend.loads().size(), 1u);  // the start-up preload
    ASSERT_TRUE(tracked.Generate(RequestFor(config, 1), nullptr, {}).ok());
    manager.WaitIdle();
    auto loads = backend.loads();
    ASSERT_EQ(loads.size(), 2u);
    EXPECT_EQ(loads[1].model, "gemma3-4b-16k");
    EXPECT_EQ(loads[1].num_ctx, 16384);
    EXPECT_EQ(loads[1].keep_alive, "24h");
    EXPECT_TRUE(manager.CurrentCosts().buckets[0].loaded);
    EXPECT_NE(manager.Status().last_preload.find("restore after the 60k bucket"), std::string::npos);
    // A call on the hot bucket needs no restore.
    ASSERT_TRUE(tracked.Generate(RequestFor(config, 0), nullptr, {}).ok());
    manager.WaitIdle();
    EXPECT_EQ(backend.loads().size(), 2u);
}

TEST(ModelManager, NoRestoreWhileTheLargeBucketStillHasCalls) {
    Config config;
    config.vram.restore_idle_ms = 20;
    LoadRecordingBackend backend;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> calls{0};
    backend.SetResponder([&](const GenerateRequest&, int index) -> Result<GenerateResult> {
        ++calls;
        if (index == 0) released.wait();  // the first call stays pending
        return Timed(100, 10, 1000, 10, 0);
    });
    ModelManager manager(config, backend);
    TrackedEngine tracked(backend, manager);
    auto slow = std::async(std::launch::async, [&] { return tracked.Generate(RequestFor(config, 1), nullptr, {}); });
    while (calls < 1) std::this_thread::yield();
    ASSERT_TRUE(tracked.Generate(RequestFor(config, 1), nullptr, {}).ok());
    manager.WaitIdle();
    EXPECT_TRUE(backend.loads().empty()) << "restored while a 60k call was pending";
    release.set_value();
    ASSERT_TRUE(slow.get().ok());
    manager.WaitIdle();
    ASSERT_EQ(backend.loads().size(), 1u);
    EXPECT_EQ(backend.loads()[0].model, "gemma3-4b-16k");
}

TEST(ModelManager, FlagsAndCountsASpillingBucketOncePerLoad) {
    Config config;
    FakeLlmEngine backend;
    backend.loaded = {LoadedModel{"gemma3-4b-60k:latest", 5'000'000'000, 4'000'000'000, 61440, "2026-12-02T03:00:00Z"}};
    Metrics metrics;
    ModelManager manager(config, backend, &metrics);
    manager.RefreshLoaded();
    manager.RefreshLoaded();
    ManagerStatus status = manager.Status();
    ASSERT_EQ(status.buckets.size(), 2u);
    const BucketStatus& b = status.buckets[1];
    EXPECT_TRUE(b.loaded);
    EXPECT_TRUE(b.spilling);
    EXPECT_EQ(b.spills_seen, 1);
    ASSERT_TRUE(b.measured.has_value());
    EXPECT_EQ(b.measured->size_bytes, 5'000'000'000);
    EXPECT_EQ(b.measured->size_vram_bytes, 4'000'000'000);
    EXPECT_EQ(b.measured->context_length, 61440);
    EXPECT_EQ(b.measured->expires_at, "2026-12-02T03:00:00Z");
    EXPECT_FALSE(status.buckets[0].spilling);
    EXPECT_TRUE(manager.CurrentCosts().buckets[1].spilling);
    EXPECT_NE(metrics.Render().find("summarizer_vram_spills_total{bucket=\"60k\"} 1"), std::string::npos)
        << metrics.Render();
    // Unloaded, then loaded again and still spilling: a second event.
    backend.loaded.clear();
    manager.RefreshLoaded();
    backend.loaded = {LoadedModel{"gemma3-4b-60k:latest", 5'000'000'000, 4'000'000'000, 61440, ""}};
    manager.RefreshLoaded();
    EXPECT_EQ(manager.Status().buckets[1].spills_seen, 2);
    EXPECT_NE(metrics.Render().find("summarizer_vram_spills_total{bucket=\"60k\"} 2"), std::string::npos);
}

// An /api/ps whose first read is held until released, answering what was loaded when it was asked.
class HeldListBackend : public FakeLlmEngine {
public:
    Result<std::vector<LoadedModel>> ListLoaded() override {
        std::unique_lock lock(mutex_);
        std::vector<LoadedModel> snapshot = loaded;
        if (hold_next_) {
            hold_next_ = false;
            held_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return !held_; });
        }
        return snapshot;
    }
    void HoldNext() {
        std::lock_guard lock(mutex_);
        hold_next_ = true;
    }
    void WaitHeld() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return held_; });
    }
    void Release() {
        std::lock_guard lock(mutex_);
        held_ = false;
        cv_.notify_all();
    }
    void SetLoaded(std::vector<LoadedModel> models) {
        std::lock_guard lock(mutex_);
        loaded = std::move(models);
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool hold_next_ = false;
    bool held_ = false;
};

// The manager's own refresh asked /api/ps before the 60K bucket was loaded and answers after a
// /status read saw it loaded: the older answer must not unload it (and, seen again, count its
// spill a second time).
TEST(ModelManager, AnOlderApiPsReadDoesNotOverwriteANewerOne) {
    Config config;
    HeldListBackend backend;
    ModelManager manager(config, backend);
    backend.HoldNext();
    auto stale = std::async(std::launch::async, [&] { manager.RefreshLoaded(); });  // asks: nothing loaded
    backend.WaitHeld();
    backend.SetLoaded({LoadedModel{"gemma3-4b-60k:latest", 5'000'000'000, 4'000'000'000, 61440, ""}});
    ManagerStatus first = manager.Status();  // asks later: the 60K bucket, spilling
    EXPECT_TRUE(first.buckets[1].loaded);
    EXPECT_EQ(first.buckets[1].spills_seen, 1);
    backend.Release();
    stale.get();
    EXPECT_TRUE(manager.CurrentCosts().buckets[1].spilling);
    ManagerStatus again = manager.Status();
    EXPECT_TRUE(again.buckets[1].loaded);
    EXPECT_EQ(again.buckets[1].spills_seen, 1);
}

TEST(ModelManager, EstimatedSpillCountsUntilMeasured) {
    Config config;
    config.ollama.num_parallel = 4;  // f16: the 60K bucket does not fit
    FakeLlmEngine backend;
    ModelManager manager(config, backend);
    EXPECT_TRUE(manager.CurrentCosts().buckets[1].spilling);
    EXPECT_FALSE(manager.CurrentCosts().buckets[0].spilling);
    backend.loaded = {LoadedModel{"gemma3-4b-60k", 7'000'000'000, 7'000'000'000, 61440 * 4, ""}};
    manager.RefreshLoaded();
    EXPECT_FALSE(manager.CurrentCosts().buckets[1].spilling);  // measured: it fits after all
}

}  // namespace
}  // namespace summarizer
