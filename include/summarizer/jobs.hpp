// Durable jobs (issue #15) over a JobStore and a Service: what POST /jobs, GET /jobs/{id}, its
// events, DELETE /jobs/{id}, the result cache of POST /summarize and the job runner need.
//
// Running a job (here, in every replica that shares the store):
// - Claim: runner threads (jobs.max_running) take a slot in the service's lane of long work when
//   one is free, then claim the oldest queued job, or a running one whose lease ran out (its owner
//   died), for `owner()` (host name, pid and 32 random bits) with a lease of jobs.lease_ms.
//   PostgreSQL claims with FOR UPDATE SKIP LOCKED. A process that holds the lock file beside a
//   SQLite file (<file>.lock) is its only user and ends the leases of dead processes at start.
// - Heartbeat: one thread renews every held lease each jobs.lease_ms / 3; a lost lease (another
//   replica took the job over) or a cancel request (DELETE from any replica) stops the job's
//   upstream calls.
// - Resume: a job with a saved plan continues from its committed steps (map partials, merges),
//   none of which is recomputed. If the input no longer plans the same (the config changed), it is
//   re-planned, the map partials of unchanged chunks are kept, and the job says why ("replanned").
// - Commit before announce: each finished step is committed with its progress event in one
//   transaction before the executor lets its event out; a step the store cannot take (it is down,
//   full, locked) stops the job, which resumes from its last committed step when its lease runs
//   out.
// - End: done (the result, cached by content hash), failed (the error), cancelled; a job whose
//   upstream was unreachable or busy goes back to the queue (and the runner backs off); on
//   shutdown running jobs get the service's grace period, then their leases are released.
//
// POST /summarize with jobs.cache: a done job with the same content hash answers at once
// ("cached": true); a queued or running one is waited for; otherwise the request runs as a job of
// its own (in the request's thread, with the extractive fallback), so that identical requests at
// once share one run and a client that retries after a proxy time-out finds the work going on.
// `Cache-Control: no-cache` forces new work.
//
// Thread-safe. Store failures are values: StoreResult from the store-facing calls, Error (kNotFound,
// kStoreUnavailable, kConflict, kInternal) from the request-facing ones.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "summarizer/config.hpp"
#include "summarizer/job_store.hpp"
#include "summarizer/service.hpp"
#include "summarizer/task_pool.hpp"

namespace summarizer {

// Opens the job store (possibly again, while it is unavailable).
using JobStoreOpener = std::function<StoreResult<std::unique_ptr<JobStore>>()>;

// The HTTP error for a store failure: kNotFound -> 404, kUnavailable -> 503 (Retry-After),
// kConflict -> 409, kCorrupt and kInternal -> 500.
Error StoreErrorToError(const StoreError& error);

// The SSE events a job's stream ends with.
bool IsTerminalJobEvent(std::string_view name);

class Jobs {
public:
    using Clock = std::chrono::steady_clock;

    // Attaches itself to `service` (Service::jobs()). `config` and `service` outlive it. `open` is
    // called by Start() and, while it fails with kUnavailable, again every few seconds.
    Jobs(const Config& config, Service& service, JobStoreOpener open);
    // Uses `store` (which outlives it) as it is.
    Jobs(const Config& config, Service& service, JobStore& store);
    ~Jobs();
    Jobs(const Jobs&) = delete;
    Jobs& operator=(const Jobs&) = delete;

    // Opens the store if needed (kCorrupt and kInternal are returned: start-up must stop; a
    // kUnavailable store is retried in the background and requests get 503 meanwhile), then starts
    // the runners, the heartbeat and retention.
    StoreStatus Start();
    // No more claims; running jobs are cancelled and their leases released (a graceful shutdown
    // lets them run within its grace period first: Service::WaitIdle). Idempotent.
    void Stop();
    // A runner looks for work now (a job was just submitted here).
    void Wake();

    // --- Requests --------------------------------------------------------------------------------
    std::string ContentHash(const SummarizeRequest& request) const;
    // A new queued job, or the one an Idempotency-Key or the content hash finds (see JobStore::Submit).
    Result<Submission> Submit(const SummarizeRequest& request, const std::string& idempotency_key, bool force_new);
    Result<Job> Get(const std::string& id);
    // Cancels a queued job at once, asks the owner of a running one to stop (this process's own at
    // once); a finished one stays as it is. Returns the state after the call.
    Result<JobState> Cancel(const std::string& id);
    Result<std::vector<Event>> Events(const std::string& id, int64_t after_seq, int limit = 1000);
    // A counter that grows whenever this process commits an event; WaitForNews returns when it
    // passes `seen` or after `timeout` (events of other replicas are found by polling).
    uint64_t news() const;
    void WaitForNews(uint64_t seen, std::chrono::milliseconds timeout);

    // --- POST /summarize through the store -------------------------------------------------------
    bool cache_enabled() const { return config_.jobs.cache; }
    // A queued, running or done job with the request's content hash (a store failure is logged and
    // counts as none: the cache must never fail a summary).
    std::optional<Job> FindReusable(const SummarizeRequest& request);
    // Runs `request` for its client: `existing` (from FindReusable) is awaited, its result answered
    // with "cached": true; else (or if it ended without a result) the request runs as a job of its
    // own under `ticket` (admitted here if null; it outlives the call). Errors as Service::Summarize, and kCancelled
    // when the client went away.
    Result<SummarizeResponse> Summarize(const SummarizeRequest& request, const SummarizeEvents& events,
                                        const CancelToken& client_gone, bool force_new,
                                        const std::optional<Job>& existing, const WorkTicket* ticket,
                                        Clock::time_point arrival);

    // --- Operations ------------------------------------------------------------------------------
    // /status: {"database", "available", "error", "owner", "jobs": {state: n}, "content_bytes",
    // "database_bytes", "running_here"}.
    nlohmann::json StatusJson();
    // Prometheus text: jobs by state, store bytes, cache hits, resumes, re-plans, store errors.
    std::string RenderMetrics();
    const std::string& owner() const { return owner_; }
    // Where SSE streams of job events run (a thread each while it streams).
    TaskPool& event_pool() { return event_pool_; }
    const JobsConfig& settings() const { return config_.jobs; }
    // Jobs this process runs now.
    int running_here() const;
    // Stop() was called or the service shuts down: event streams end (clients reconnect elsewhere).
    bool shutting_down() const { return stopping_ || service_.stopping(); }

    struct Held;      // a job this process runs (jobs.cpp)
    class Execution;  // one run of a claimed job (job_execution.cpp)

private:
    JobStore* store();  // null while unavailable
    Error Unavailable() const;
    void RunnerLoop(int index);
    void HeartbeatLoop();
    void MaintenanceLoop();
    bool TryOpen();
    void ReclaimIfSoleOwner();
    void NotifyNews();
    std::shared_ptr<Held> Hold(const std::string& id, const CancelToken& parent, bool sync);
    void Drop(const std::string& id);
    // Waits for job `id` and answers with its result: an earlier or concurrent run of the same
    // content ("cached": true), or, `own_run`, the job this very request submitted, which a runner
    // claimed before the request could ("cached": false, the run's own timings).
    Result<SummarizeResponse> Await(const std::string& id, const SummarizeRequest& request,
                                    const SummarizeEvents& events, const CancelToken& client_gone,
                                    Clock::time_point arrival, bool own_run = false);
    Result<SummarizeResponse> RunSynchronously(const WorkTicket& ticket, const SummarizeRequest& request,
                                               const SummarizeEvents& events, bool force_new,
                                               Clock::time_point arrival);
    // Runs a claimed job to its end under `ticket`. With `sync_request`, for a waiting /summarize
    // client; `adopted`: a queued job someone else submitted with the same content, which that
    // client runs (if the client leaves or gets an extractive answer, the job goes back to the queue).
    Result<SummarizeResponse> Run(Job job, const WorkTicket& ticket, const SummarizeRequest* sync_request,
                                  const SummarizeEvents& events, Clock::time_point arrival, bool adopted = false);

    const Config& config_;
    Service& service_;
    JobStoreOpener open_;
    std::string owner_;

    mutable std::mutex store_mutex_;
    std::unique_ptr<JobStore> own_store_;
    std::atomic<JobStore*> store_{nullptr};
    std::string open_error_;    // why the store is not available (under store_mutex_)
    int sole_owner_lock_ = -1;  // the <file>.lock descriptor held while this process is the SQLite file's only user

    mutable std::mutex held_mutex_;
    std::map<std::string, std::shared_ptr<Held>> held_;

    mutable std::mutex news_mutex_;
    std::condition_variable news_cv_;
    uint64_t news_ = 0;

    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    bool wake_ = false;
    std::atomic<bool> stopping_{false};
    bool started_ = false;

    // Counters for /metrics.
    std::atomic<int64_t> cache_hits_{0}, submitted_{0}, resumed_{0}, replanned_{0}, steps_recorded_{0},
        store_errors_{0}, released_{0};

    TaskPool event_pool_;
    std::vector<std::thread> runners_;
    std::thread heartbeat_;
    std::thread maintenance_;
};

}  // namespace summarizer
