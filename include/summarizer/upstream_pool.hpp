// The pool of upstreams (docs/UPSTREAMS.md): every inference server the service uses, as one
// LlmEngine. Per upstream it holds the engine client (OllamaClient or OpenAiClient), a circuit
// breaker, a health view and a ModelManager (the VRAM and keep_alive policy of an Ollama host; for an
// OpenAI-compatible engine only its learned rates). One UpstreamScheduler places every call:
//   Generate -> scheduler (placement: serves the bucket, free slot, healthy; bucket loaded first, then
//   least loaded) -> that host's manager tracking -> its breaker -> its client.
// A call that cannot connect, is refused as busy, gets a 5xx, times out or breaks off before any of
// its text reached the caller is retried on another upstream that serves its bucket (at once), and on
// the same one only after a backoff once none is left (ollama.max_retries, retry_backoff_ms,
// retry_budget_s: one upstream behaves as before). A host that failed is avoided while another can
// serve and probed at once, then every 250 ms until it answers; every host is probed every
// pool.probe_interval_ms. A circuit that opened (ollama.circuit_failure_threshold) closes through a
// call or a probe after ollama.circuit_open_ms; the host is then used again.
// OpenAI-compatible upstreams are asked at construction what they serve (model, context, slots); a
// bucket they serve is planned with min(its num_ctx, the engine's context) (effective_config()).
// Thread-safe. Background work (probes) runs on one thread owned here, started by Start().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "summarizer/circuit_breaker.hpp"
#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/metrics.hpp"
#include "summarizer/model_manager.hpp"
#include "summarizer/router.hpp"
#include "summarizer/scheduler.hpp"

namespace summarizer {

class OllamaClient;
class OpenAiClient;

// One upstream as /status shows it.
struct UpstreamStatus {
    std::string name;
    std::string kind;                  // "ollama", "openai"
    std::string url;
    std::string flavor;                // openai: "vllm", "llama.cpp", "sglang", "unknown"; ollama: "ollama"
    std::string model;                 // openai: the model it serves ("" until known)
    std::string health;                // "up", "avoided" (failed lately, being probed), "unknown" (not probed yet)
    std::string circuit;               // "closed", "open", "half_open"
    std::string last_error;            // of the last failed call or probe ("" after a success)
    int slots = 1;
    int inflight = 0;                  // calls running on it now
    int64_t calls = 0;                 // calls answered (ok or not) since start
    int64_t failures = 0;              // calls that failed
    int64_t failovers = 0;             // calls that failed here and were retried on another upstream
    int64_t context_tokens = 0;        // learned from the engine (openai); 0: not stated
    bool counts_tokens = false;        // answers POST /tokenize
    std::vector<std::string> buckets;  // served
    std::vector<std::string> loaded;   // buckets loaded now (Ollama: as its manager sees; openai: all served)
    std::map<std::string, int64_t> bucket_context;  // num_ctx each served bucket is planned with
    ManagerStatus manager;             // learned rates per bucket, VRAM view (Ollama)
};

// /readyz's view of the pool.
struct PoolReadiness {
    bool ready = false;                          // every bucket has an upstream that answers and has its model
    std::string reason;                          // why not
    std::vector<std::string> missing_models;     // per bucket not served: what is missing (first host's view)
    std::vector<std::pair<std::string, std::string>> upstreams;  // name -> "ready" or why not
    bool reachable = false;                      // some upstream answered
    bool unreachable_only = false;               // not ready only because upstreams cannot be reached
};

// What the pool did with one upstream's calls, for /metrics.
struct UpstreamCounters {
    std::map<std::string, int64_t> outcomes;  // "ok", "error", "timeout", "unavailable", "cancelled", "overflow"
    int64_t failovers = 0;
    int64_t rides = 0;  // calls that ran on a larger bucket loaded here instead of reloading their own
    double seconds = 0;
};

class UpstreamPool : public LlmEngine {
public:
    // The upstreams of config.Upstreams(), clients built from the config (OpenAI-compatible ones are
    // asked what they serve now, each within a few seconds). `config` is copied; `metrics` may be null.
    UpstreamPool(const Config& config, Metrics* metrics);
    // One upstream around `engine` (tests, in-process engines); `host` (may be null: no residency
    // control) gets loads and /api/ps reads. Both outlive the pool.
    UpstreamPool(const Config& config, LlmEngine& engine, ModelHost* host, Metrics* metrics);
    ~UpstreamPool() override;
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    // The managers' start (VRAM check, hot bucket preload) and the probe thread.
    void Start();

    // Placed, tracked, guarded and retried as the header says. The result names its upstream.
    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;
    // From the first usable upstream that can count (OpenAI-compatible); kUnsupported when none can.
    Result<int64_t> CountTokens(const std::string& model, const std::string& text) override;
    // The smallest context an upstream states for a model; kUnsupported when none does.
    Result<int64_t> ContextSize(const std::string& model) override;
    // Through the breakers; the models of every upstream that answers. Fails only when none does.
    Result<EngineHealth> Health() override;

    // Whether some upstream can count tokens (so exact counts are worth asking for).
    bool CanCountTokens() const;

    // The config with what the upstreams said: each bucket's num_ctx at most the smallest context an
    // OpenAI-compatible upstream serving it states, slots as llama.cpp reports them.
    const Config& effective_config() const { return effective_; }

    // The state the cost policy weighs, over every upstream (a bucket is loaded when some usable host
    // has it loaded; slots are the usable hosts' sum).
    RouteCosts CurrentCosts() const;
    // Reads /api/ps of every Ollama upstream now.
    void RefreshLoaded();
    // Every upstream's circuit is open: nothing can be tried.
    bool AllDown() const;
    // For the unlabeled circuit gauge: closed while some upstream is closed, else half-open while some
    // is, else open. Its opens are the sum.
    CircuitState AggregateCircuit() const;
    int64_t CircuitOpens() const;
    std::string LastFailure() const;

    PoolReadiness Ready();
    std::vector<UpstreamStatus> Status();
    // The status of the first upstream's manager (the single-host /status fields).
    ManagerStatus PrimaryManagerStatus();
    // The labeled families (summarizer_upstream_*{upstream="..."}) in Prometheus text.
    std::string RenderMetrics() const;

    size_t size() const { return hosts_.size(); }
    UpstreamScheduler& scheduler() { return *scheduler_; }
    // Blocks until every manager's worker is idle (tests, benchmarks).
    void WaitIdle();

private:
    struct Host;

    void Build(const Config& config, LlmEngine* engine, ModelHost* host);
    void DiscoverOpenAi();
    void MakeEffectiveConfig();
    HostCondition ConditionOf(size_t h) const;
    std::string ModelFor(const Host& host, const GenerateRequest& request) const;
    bool ServesContext(const Host& host, const std::string& bucket) const;
    Result<GenerateResult> Attempt(size_t h, const GenerateRequest& request, const TokenCallback& on_token,
                                   const CancelToken& cancel, bool retry);  // retry: counted in its breaker already
    bool OtherCandidate(const GenerateRequest& request, const std::vector<size_t>& exclude) const;
    void MarkFailed(size_t h, const Error& error);
    void Probe(size_t h);
    void ProbeLoop();
    bool HotKeptElsewhere(size_t h) const;

    // The larger buckets a call for `bucket` may ride (scheduler.ride_loaded_bucket), smallest first;
    // computed once from the config (Build), looked up per call.
    static std::map<std::string, std::vector<std::string>> ComputeRides(const Config& config);
    const std::vector<std::string>& RidesFor(const std::string& bucket) const;

    Config config_;     // as given, upstreams resolved
    std::map<std::string, std::vector<std::string>> rides_;  // bucket -> ComputeRides
    Config effective_;  // what the upstreams said applied
    Metrics* metrics_;
    std::vector<std::unique_ptr<Host>> hosts_;
    std::unique_ptr<UpstreamScheduler> scheduler_;

    mutable std::mutex probe_mutex_;
    std::condition_variable probe_cv_;
    bool probe_now_ = false;
    bool stopping_ = false;
    std::thread prober_;
};

// The key a call is placed by: its bucket, else the bucket whose model it names, else the model.
std::string BucketKey(const Config& config, const GenerateRequest& request);

}  // namespace summarizer
