// Admission control for summarize requests: at most `max_inflight` run at once, at most
// `max_queue` wait for a slot (FIFO), each for at most `max_wait`; beyond that the caller is told
// to come back later (429 with Retry-After). A queued caller whose client went away leaves the
// queue at once. Shutdown refuses new callers; Abort also releases the queued ones.
// Retry-After is the position a refused request would have in the queue divided by the measured
// throughput (completions per second over the last minute). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
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

    // `metrics` (optional) gets the in-flight and queued gauges; `now` is the clock (tests).
    Admission(int max_inflight, int max_queue, std::chrono::milliseconds max_wait, Metrics* metrics = nullptr,
              std::function<Clock::time_point()> now = [] { return Clock::now(); });

    // Blocks while queued; `still_wanted` (optional) is polled about every 50 ms and returning
    // false abandons the place in the queue.
    AdmitResult Enter(const std::function<bool()>& still_wanted = {});
    // One admitted request finished (counts towards the measured throughput).
    void Leave();

    // Whole seconds a request refused now should wait: ceil((queued + 1) / throughput), 1..3600.
    int RetryAfterSeconds() const;
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
    double ThroughputLocked() const;

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
    std::deque<uint64_t> waiting_;         // tickets, FIFO
    std::deque<Clock::time_point> done_;   // completion times within the last minute
    std::deque<Clock::time_point> starts_; // admission times of running requests (oldest first, approx.)
    double mean_seconds_ = 0;              // EWMA of request durations
    bool shutting_down_ = false;
    bool aborted_ = false;
};

}  // namespace summarizer
