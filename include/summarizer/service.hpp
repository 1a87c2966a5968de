// The one composition root: the server and the CLI both summarize through a Service, so the same
// text gets the same route, re-plans, retries, fallback and report whichever way it came in.
// It builds the upstream chain, innermost first:
//   per upstream: engine (OllamaClient or OpenAiClient) -> CircuitBreaker -> ModelManager tracking,
//   one UpstreamScheduler placing every call on an upstream (UpstreamPool) -> Summarizer
// (a breaker fails fast while its upstream is unreachable and counts request traffic only; the
// scheduler shares the upstreams' slots among every request's calls and picks the upstream; the
// tracking feeds each host's VRAM policy and the cost router; a call that failed before any text
// reached the client is retried on another upstream) and owns what is not HTTP: admission (two
// bounded lanes, short requests and long work, with a Retry-After from the work ahead), the extractive fallback when no upstream can be reached, the
// cancellation of active work (client gone, shutdown), readiness, status and metrics. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "summarizer/admission.hpp"
#include "summarizer/circuit_breaker.hpp"
#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/metrics.hpp"
#include "summarizer/model_manager.hpp"
#include "summarizer/scheduler.hpp"
#include "summarizer/summarizer.hpp"
#include "summarizer/task_pool.hpp"
#include "summarizer/token_counter.hpp"
#include "summarizer/upstream_pool.hpp"

namespace summarizer {

class Jobs;
class Service;

// An admitted request: it holds an admission slot, and its cancel token is in the set that a
// shutdown cancels, until it is destroyed. Move-only.
class WorkTicket {
public:
    WorkTicket(WorkTicket&& other) noexcept;
    WorkTicket& operator=(WorkTicket&&) = delete;
    WorkTicket(const WorkTicket&) = delete;
    ~WorkTicket();

    // Cancelled when the request's client goes away or a shutdown's grace runs out.
    const CancelToken& cancel() const { return cancel_; }
    // Admitted in the lane of long work (map-reduce, jobs).
    bool batch() const { return batch_; }

private:
    friend class Service;
    WorkTicket(Service* service, uint64_t key, CancelToken cancel, bool batch, uint64_t admission_id)
        : service_(service), key_(key), cancel_(std::move(cancel)), batch_(batch), admission_id_(admission_id) {}
    Service* service_;
    uint64_t key_;
    CancelToken cancel_;
    bool batch_ = false;
    uint64_t admission_id_ = 0;
    // The plan Admit made to pick the lane, kept for Summarize when it still holds (same request,
    // and no wait in the queue under the cost policy, whose choice depends on the moment).
    std::optional<Plan> plan_;
    size_t planned_for_ = 0;  // PlanKey of the request it was made for
};

// How a durable job runs through Service::Summarize (jobs.hpp): the state it starts from (resumed
// from its committed steps, or fresh), a hook that commits each finished step before its event
// goes out, the job's own cancel token, and whether the extractive fallback may answer instead.
struct ExecutionHooks {
    std::function<Result<ExecutionState>()> prepare;  // empty: a fresh state (Start)
    std::function<void(const StepId& step, const StepOutput& output, const ExecutionState& state)> on_step;
    const CancelToken* cancel = nullptr;  // must be a child of the ticket's; null: the ticket's
    bool allow_fallback = true;
};

// /readyz: ready while, for every bucket, some upstream answers and has its model.
struct Readiness {
    bool ready = false;
    bool shutting_down = false;
    std::string reason;                       // why not
    std::string circuit;                      // "closed", "open", "half_open" (over the upstreams)
    bool extractive_instead = false;          // not ready, but answers come from the extractive fallback
    std::vector<std::string> missing_models;
    std::string upstream_url;                 // the first upstream's
    std::vector<std::pair<std::string, std::string>> upstreams;  // name -> "ready" or why not (several upstreams)
};

// /status: the configuration in force and what the model managers gathered.
struct ServiceStatus {
    ManagerStatus manager;                    // the first upstream's (the single-host fields of /status)
    std::vector<UpstreamStatus> upstreams;    // every upstream
    TokenCounterStats token_counts;           // exact counts asked for, answered, cached
    int64_t inflight = 0;
    int64_t queued = 0;
};

class Service {
public:
    using Clock = std::chrono::steady_clock;

    // Talks to the upstreams of config.Upstreams() (the Ollama at config.ollama.url when none is
    // listed). The config is copied, with what the upstreams said applied (UpstreamPool).
    explicit Service(const Config& config);
    // Talks to `engine` as its one upstream; `host` (may be null: no residency control) gets loads
    // and /api/ps reads. Both outlive the service.
    Service(const Config& config, LlmEngine& engine, ModelHost* host);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // The server's background work: the VRAM check (logged) and the hot bucket's preload.
    void Start();
    // The state the cost policy weighs, read once (for one-shot use such as the CLI).
    void RefreshUpstreamState();

    // Waits for an admission slot (bounded queue). `client_gone` cancels the wait and, after
    // admission, the work; `still_wanted` (optional) is polled while queued. Errors:
    // kOverloaded (429, retry_after_s set), kCancelled (the client left while queued),
    // kUpstreamUnavailable (503: shutting down).
    Result<WorkTicket> Admit(const CancelToken& client_gone, const std::function<bool()>& still_wanted = {});
    // The same for a request the service plans first: map-reduce waits in the lane of long work
    // (server.max_batch_inflight and max_batch_queue), a single pass in the short lane, each with
    // its estimated GPU time for Retry-After.
    Result<WorkTicket> Admit(const CancelToken& client_gone, const SummarizeRequest& request,
                             const std::function<bool()>& still_wanted = {});
    // A slot in the lane of long work if one is free now and no map-reduce request waits for one
    // (a job runner's: jobs wait in the store, not here); nullopt otherwise or when shutting down.
    std::optional<WorkTicket> TryAdmitBatch();
    // The ticket's work, once known (a job learns its plan after it was admitted).
    void SetWork(const WorkTicket& ticket, double work_s);
    // Estimated GPU seconds of a plan (work_estimate.hpp) with the learned rates.
    double EstimateWork(const Plan& plan, const SummarizeRequest& request);

    // Summarizes an admitted request. Falls back to an extractive summary (route "extractive",
    // degraded) when Ollama cannot be reached and nothing was streamed yet, if configured; the
    // events then get a plan of kind kExtractive and the summary as one delta. A busy or
    // unreachable upstream's error carries retry_after_s. A request cancelled by a shutdown
    // gets a 503 error saying so.
    // `hooks` (optional): a durable job's state, step commits, cancel token and fallback rule.
    Result<SummarizeResponse> Summarize(const WorkTicket& ticket, const SummarizeRequest& request,
                                        const SummarizeEvents& events, Clock::time_point arrival = Clock::now(),
                                        const ExecutionHooks* hooks = nullptr);

    // The plan a request would get; nothing is generated.
    Result<Plan> MakePlan(const SummarizeRequest& request) const;
    // The state a request starts from, planned with the token safety factor `safety` (a resumed
    // job compares it with the plan it saved).
    Result<ExecutionState> Start(const SummarizeRequest& request, double safety = 1.0) const;

    // The durable jobs (jobs.hpp) that serve POST /jobs and the result cache, when the server has
    // a job store; null otherwise. The Jobs attaches itself and detaches before it is destroyed.
    void AttachJobs(Jobs* jobs) { jobs_ = jobs; }
    Jobs* jobs() const { return jobs_; }

    Readiness Ready();
    ServiceStatus Status();
    // The Prometheus text of every metric, the circuit's included.
    std::string RenderMetrics();
    Metrics& metrics() { return metrics_; }

    // Where streamed summaries run (a thread each, bounded by admission).
    TaskPool& stream_pool() { return stream_pool_; }
    // The upstreams (placement, health, per-upstream state).
    UpstreamPool& pool() { return *pool_; }
    // The configuration in force: the one given, with what the upstreams said (contexts, slots).
    const Config& config() const { return config_; }

    // Shutdown: new requests are refused; queued and running ones may finish.
    void BeginShutdown();
    bool stopping() const { return stopping_; }
    // Waits until nothing runs or waits, up to `deadline`; true when idle.
    bool WaitIdle(Clock::time_point deadline);
    // Refuses the queued requests and cancels the running ones; returns how many ran.
    int CancelAll();
    int inflight() const { return admission_.inflight() + batch_admission_.inflight(); }
    int queued() const { return admission_.queued() + batch_admission_.queued(); }

private:
    friend class WorkTicket;
    Service(const Config& config, LlmEngine* engine, ModelHost* host);
    void Release(uint64_t key, bool batch, uint64_t admission_id);
    Result<WorkTicket> Enter(Admission& lane, bool batch, double work_s, const CancelToken& client_gone,
                             const std::function<bool()>& still_wanted);
    SummarizerObserver MakeObserver();
    SummarizeResponse Extractive(const SummarizeRequest& request, Clock::time_point arrival, Clock::time_point started,
                                 const std::string& why, const SummarizeEvents& events);
    Error ShutdownError() const;

    Metrics metrics_;
    std::unique_ptr<UpstreamPool> pool_;      // every upstream, placement, retries on another one
    const Config config_;                     // pool_->effective_config()
    std::unique_ptr<TokenCounter> counter_;   // exact counts, when an upstream can count
    TaskPool call_pool_;         // the parallel calls of map and merge levels
    Summarizer summarizer_;
    Admission admission_;        // short requests (single pass)
    Admission batch_admission_;  // long work: map-reduce requests and jobs
    Jobs* jobs_ = nullptr;
    TaskPool stream_pool_;       // last: its jobs use the members above

    std::mutex active_mutex_;
    std::map<uint64_t, CancelToken> active_;
    uint64_t next_active_ = 0;
    std::atomic<bool> stopping_{false};
};

}  // namespace summarizer
