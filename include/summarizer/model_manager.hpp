// The VRAM and keep_alive policy: which bucket Ollama should have loaded, and what each costs.
// - At start-up: checks each bucket's estimated footprint (config `vram`) against the VRAM
//   budget and warns, naming the bucket and the fix; preloads the hot bucket (BucketConfig::hot,
//   16K by default) with an empty-prompt load (vram.preload_hot_bucket).
// - After another bucket was used and none of its calls has been pending for
//   vram.restore_idle_ms, loads the hot bucket again, so the next short request does not pay
//   the reload (and a burst of long requests does not ping-pong the runner). Under the "cost"
//   routing policy only when that bucket spills to the CPU: otherwise it stays loaded and the cost
//   router sends short texts to it too (measured: bench/policy_bench.cpp, docs/UPSTREAMS.md).
// - Watches Ollama's /api/ps: the measured footprint of each bucket (size, size_vram,
//   context_length, expires_at). A bucket seen with size_vram < size spills to the CPU: it is
//   flagged, logged and counted (Metrics::CountSpill).
// - Learns from every upstream call what the "cost" routing policy weighs: runner load time
//   (load_duration), prefill and decode rates per bucket, call durations, output lengths, and
//   counts the calls pending per bucket. CurrentCosts() hands that state to the pure router.
// Thread-safe. Background work (loads, /api/ps reads) runs on one worker thread owned here.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/metrics.hpp"
#include "summarizer/router.hpp"

namespace summarizer {

// What /api/ps reported for a bucket the last time it was loaded.
struct MeasuredFootprint {
    int64_t size_bytes = 0;
    int64_t size_vram_bytes = 0;     // < size_bytes: part of the model runs on the CPU
    int64_t context_length = 0;      // num_ctx x slots as the runner was started
    std::string expires_at;          // when Ollama will unload it (keep_alive)
    bool spilling_to_cpu = false;
};

struct BucketStatus {
    std::string name;                // "16k"
    std::string model;
    int num_ctx = 0;
    std::string keep_alive;
    double estimated_vram_mb = 0;    // EstimateBucketVramMb
    bool fits_vram_budget = true;    // estimate <= budget - reserve
    bool loaded = false;             // in /api/ps now (or since the last call/load, between reads)
    std::optional<MeasuredFootprint> measured;  // last /api/ps entry for it (kept after unload)
    bool spilling = false;           // the last measurement showed size_vram < size
    int64_t spills_seen = 0;         // loads seen spilling
    int pending_calls = 0;           // upstream calls waiting or running
    int64_t calls = 0;               // upstream calls finished (learning samples)
    double prefill_tokens_per_s = 0; // learned (or the prior)
    double decode_tokens_per_s = 0;
    double mean_call_ms = 0;
};

struct ManagerStatus {
    std::vector<BucketStatus> buckets;            // in Config::buckets order
    bool ollama_reachable = false;
    std::string ollama_error;
    std::vector<LoadedModel> loaded;              // /api/ps now, every model
    std::vector<std::string> warnings;            // the start-up VRAM check
    std::string policy;                           // routing.policy
    std::string hot_bucket;                       // the bucket kept loaded ("16k")
    bool preload_hot_bucket = false;
    int64_t preloads = 0;                         // empty-prompt loads of the hot bucket sent
    std::string last_preload;                     // "ok 3012 ms", or the error
    double reload_ms = 0;                         // learned (or the prior)
    int64_t reloads_seen = 0;                     // calls/loads that loaded a runner
    double output_tokens = 0;                     // learned mean tokens per call
    double spill_slowdown = 1;
    int slots = 1;
};

// How a pool ties one host's manager to the others. Every member is optional. The functions are
// called without the manager's lock held and must not call back into this manager.
struct ModelManagerHooks {
    // Calls for `bucket` waiting to be placed on a host: pending here too (they may come here).
    std::function<int(const std::string& bucket)> waiting;
    // Another healthy host keeps the hot bucket loaded: no restore here after another bucket ran.
    std::function<bool()> hot_kept_elsewhere;
    // This manager loaded `bucket` outside any call (a preload or a restore).
    std::function<void(const std::string& bucket)> on_loaded;
    // The host loads and unloads models (Ollama). false (OpenAI-compatible engines): every bucket counts
    // as loaded; no VRAM check, preload or restore.
    bool residency = true;
};

class ModelManager {
public:
    // `host` is what loads and /api/ps reads go through; `metrics` may be null. Both outlive
    // the manager. `config.buckets` are the buckets this host serves.
    ModelManager(const Config& config, ModelHost& host, Metrics* metrics = nullptr, ModelManagerHooks hooks = {});
    ~ModelManager();
    ModelManager(const ModelManager&) = delete;
    ModelManager& operator=(const ModelManager&) = delete;

    // The start-up check (logged as warnings) and, if configured, the hot bucket's preload on
    // the worker thread. Call once; returns at once.
    void Start();

    // Buckets whose estimated footprint exceeds the usable VRAM, one message each naming the
    // bucket, the numbers and the fix. Pure function of the config.
    static std::vector<std::string> CheckVramBudget(const Config& config);

    // Call tracking (TrackedEngine calls these around every Generate).
    void OnCallStart(const GenerateRequest& request);
    void OnCallEnd(const GenerateRequest& request, const Result<GenerateResult>& result);

    // The state the cost policy weighs (pending calls, loaded bucket, learned rates, spills).
    RouteCosts CurrentCosts() const;

    // Reads /api/ps now and returns everything /status shows.
    ManagerStatus Status();

    // Reads /api/ps and updates the measured footprints and spill flags (unless a read asked later
    // has already done so).
    void RefreshLoaded();

    // Blocks until the worker has no queued or running task (tests, benchmarks).
    void WaitIdle();

private:
    struct Learned {
        int pending = 0;
        int64_t calls = 0;
        double prefill = 0, decode = 0, call_ms = 0;
        bool loaded = false;
        std::optional<MeasuredFootprint> measured;
        bool spilling = false;
        bool spill_counted = false;   // this load's spill was counted already
        int64_t spills = 0;
    };

    std::optional<size_t> BucketIndexOf(const std::string& model) const;  // requires nothing
    void Post(std::function<void()> task);
    void WorkerLoop();
    void LoadHotBucket(const std::string& why);
    void ApplyLoadedLocked(const std::vector<LoadedModel>& loaded);
    void MarkLoadedLocked(size_t index);
    bool OthersPendingLocked() const;  // a call for a bucket other than the hot one waits or runs
    int PendingLocked(size_t index) const;  // placed here + waiting in the pool
    // Whether the hot bucket is loaded back after bucket `index` ran (vram.preload_hot_bucket): always
    // under the static rule; under the cost policy only when `index` spills to the CPU.
    bool RestoresAfterLocked(size_t index) const;
    bool HotKeptElsewhere() const;
    // /api/ps now, with the ticket that orders it among the reads (see ps_tickets_).
    std::pair<uint64_t, Result<std::vector<LoadedModel>>> ReadLoaded();
    // Applies a read unless a later one was applied. Requires mutex_.
    void ApplyReadLocked(uint64_t ticket, const std::vector<LoadedModel>& loaded);

    const Config& config_;
    ModelHost& host_;
    Metrics* metrics_;
    const ModelManagerHooks hooks_;

    mutable std::mutex mutex_;
    std::vector<Learned> buckets_;
    const std::optional<size_t> hot_;  // Config::HotBucket's index
    double reload_ms_;
    int64_t reloads_seen_ = 0;
    double output_tokens_ = 0;
    int64_t preloads_ = 0;
    std::string last_preload_;
    bool restore_queued_ = false;
    std::optional<size_t> runner_;  // bucket of the last call or load seen (not /api/ps: reads race calls)
    // /api/ps reads run on the manager's thread and on /status's, at once: each takes a ticket before
    // asking, and one whose ticket is older than the last applied one is stale (it was asked before a
    // load the other already saw) and is not applied.
    uint64_t ps_tickets_ = 0;
    uint64_t ps_applied_ = 0;
    std::chrono::steady_clock::time_point other_activity_{};  // last start/end of a non-hot call
    std::vector<std::string> warnings_;

    std::mutex work_mutex_;
    std::condition_variable work_cv_;
    std::deque<std::function<void()>> tasks_;
    bool busy_ = false;
    bool stopping_ = false;
    std::thread worker_;
};

// An LlmEngine that reports every Generate to a ModelManager (pending counts, learning) and
// forwards everything to `inner`.
class TrackedEngine : public ForwardingEngine {
public:
    TrackedEngine(LlmEngine& inner, ModelManager& manager) : ForwardingEngine(inner), manager_(manager) {}

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;

private:
    ModelManager& manager_;
};

}  // namespace summarizer
