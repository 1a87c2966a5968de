// Admission control for summarize requests: at most `max_inflight` run at once, at most
// `max_queue` wait for a slot (FIFO), each for at most `max_wait`; beyond that the caller is told
// to come back later (429 with Retry-After). A queued caller whose client went away leaves the
// queue at once. Shutdown refuses new callers; Abort also releases the queued ones.
// Retry-After is computed from the work ahead of a refused request when callers say how much
// work they bring (estimated GPU seconds, include/summarizer/work_estimate.hpp): what the running
// ones have left plus what waits, over the parallel capacity. Without any such estimate it is the
// position the request would have in the queue over the measured throughput (completions per
// second over the last minute). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

#include "summarizer/metrics.hpp"

namespace summarizer {

enum class AdmitResult {
    kAdmitted,      // run now; call Leave() when done
    kQueueFull,     // 429: max_inflight running and max_queue waiting
    kTimedOut,      // 429: waited max_wait without getting a slot
    kAbandoned,     // the client went away while queued
    kShuttingDown,  // 503: the server is stopping
};

class Admission {
public:
    using Clock = std::chrono::steady_clock;
    using Id = uint64_t;  // one admitted caller, for Leave(Id) and SetWork

    // `metrics` (optional) gets the in-flight and queued gauges; `now` is the clock (tests).
    Admission(int max_inflight, int max_queue, std::chrono::milliseconds max_wait, Metrics* metrics = nullptr,
              std::function<Clock::time_point()> now = [] { return Clock::now(); });

    // Blocks while queued; `still_wanted` (optional) is polled about every 50 ms and returning
    // false abandons the place in the queue.
    AdmitResult Enter(const std::function<bool()>& still_wanted = {});
    // The same, for a caller that brings `work_s` estimated GPU seconds (0: unknown); `id` gets its
    // id when admitted.
    AdmitResult Enter(double work_s, Id* id, const std::function<bool()>& still_wanted = {});
    // Admitted only if a slot is free and nobody waits; kQueueFull otherwise. Never blocks.
    AdmitResult TryEnter(double work_s, Id* id);
    // An admitted caller's estimate, once it knows it (a job learns its plan after it was admitted).
    void SetWork(Id id, double work_s);
    // One admitted request finished (counts towards the measured throughput). Without an id: the
    // oldest admitted one.
    void Leave();
    void Leave(Id id);

    // Whole seconds a request refused now should wait, 1..3600: with work estimates,
    // ceil((left of the running + queued work) / parallelism); else ceil((queued + 1) / throughput).
    int RetryAfterSeconds() const;
    // GPU seconds the running callers have left (as estimated) plus those of the queued ones; 0
    // when nobody gave an estimate.
    double WorkAheadSeconds() const;
    // How many callers' work proceeds at once (the upstream's slots) for the Retry-After of work.
    void SetParallelism(double parallel);
    // Completions per second over the last minute; before enough completions, an estimate from
    // max_inflight and the mean duration (5 s per request when nothing finished yet).
    double Throughput() const;

    // New callers get kShuttingDown; queued ones keep their place.
    void BeginShutdown();
    // Queued callers get kShuttingDown too.
    void Abort();
    // Waits until nothing runs or waits, up to `deadline`. Returns true when idle.
    bool WaitIdle(Clock::time_point deadline);

    int inflight() const;
    int queued() const;

private:
    struct Running {
        Clock::time_point start;
        double work_s = 0;
    };
    struct Waiting {
        uint64_t ticket = 0;
        double work_s = 0;
    };
    double ThroughputLocked() const;
    double WorkAheadLocked() const;
    AdmitResult AdmitLocked(double work_s, Id* id);

    const int max_inflight_;
    const int max_queue_;
    const std::chrono::milliseconds max_wait_;
    Metrics* metrics_;
    const std::function<Clock::time_point()> now_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    int inflight_ = 0;
    int queued_ = 0;
    uint64_t next_ticket_ = 0;
    std::deque<Waiting> waiting_;          // FIFO
    std::deque<Clock::time_point> done_;   // completion times within the last minute
    std::map<Id, Running> running_;        // admitted callers by id (ids grow: the first is the oldest)
    Id next_id_ = 1;
    double mean_seconds_ = 0;              // EWMA of request durations
    double parallelism_ = 1;
    bool shutting_down_ = false;
    bool aborted_ = false;
};

}  // namespace summarizer
