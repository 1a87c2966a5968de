#include "summarizer/admission.hpp"

#include <algorithm>
#include <cmath>

namespace summarizer {
namespace {
constexpr auto kThroughputWindow = std::chrono::seconds(60);
constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr size_t kMaxSamples = 4096;
}  // namespace

Admission::Admission(int max_inflight, int max_queue, std::chrono::milliseconds max_wait, Metrics* metrics,
                     std::function<Clock::time_point()> now)
    : max_inflight_(std::max(1, max_inflight)),
      max_queue_(std::max(0, max_queue)),
      max_wait_(max_wait),
      metrics_(metrics),
      now_(std::move(now)) {}

AdmitResult Admission::Enter(const std::function<bool()>& still_wanted) {
    Id ignored = 0;
    return Enter(0, &ignored, still_wanted);
}

AdmitResult Admission::AdmitLocked(double work_s, Id* id) {
    ++inflight_;
    *id = next_id_++;
    running_.emplace(*id, Running{now_(), work_s});
    if (metrics_) metrics_->AddInflight(1);
    return AdmitResult::kAdmitted;
}

AdmitResult Admission::TryEnter(double work_s, Id* id) {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return AdmitResult::kShuttingDown;
    if (inflight_ < max_inflight_ && waiting_.empty()) return AdmitLocked(work_s, id);
    return AdmitResult::kQueueFull;
}

AdmitResult Admission::Enter(double work_s, Id* id, const std::function<bool()>& still_wanted) {
    std::unique_lock lock(mutex_);
    if (shutting_down_) return AdmitResult::kShuttingDown;
    if (inflight_ < max_inflight_ && waiting_.empty()) return AdmitLocked(work_s, id);
    if (queued_ >= max_queue_) return AdmitResult::kQueueFull;

    const uint64_t ticket = next_ticket_++;
    waiting_.push_back(Waiting{ticket, work_s});
    ++queued_;
    if (metrics_) metrics_->AddQueued(1);
    const auto deadline = now_() + max_wait_;
    AdmitResult outcome = AdmitResult::kAdmitted;
    for (;;) {
        if (aborted_) {
            outcome = AdmitResult::kShuttingDown;
            break;
        }
        if (waiting_.front().ticket == ticket && inflight_ < max_inflight_) break;
        if (now_() >= deadline) {
            outcome = AdmitResult::kTimedOut;
            break;
        }
        cv_.wait_for(lock, kPollInterval);
        if (still_wanted) {
            lock.unlock();
            const bool wanted = still_wanted();
            lock.lock();
            if (!wanted) {
                outcome = AdmitResult::kAbandoned;
                break;
            }
        }
    }
    waiting_.erase(
        std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiting& w) { return w.ticket == ticket; }));
    --queued_;
    if (metrics_) metrics_->AddQueued(-1);
    cv_.notify_all();  // the next in line may be at the front now
    if (outcome != AdmitResult::kAdmitted) return outcome;
    return AdmitLocked(work_s, id);
}

void Admission::SetWork(Id id, double work_s) {
    std::lock_guard lock(mutex_);
    if (auto it = running_.find(id); it != running_.end()) it->second.work_s = work_s;
}

void Admission::Leave() {
    Id oldest = 0;
    {
        std::lock_guard lock(mutex_);
        if (!running_.empty()) oldest = running_.begin()->first;
    }
    Leave(oldest);
}

void Admission::Leave(Id id) {
    {
        std::lock_guard lock(mutex_);
        --inflight_;
        if (metrics_) metrics_->AddInflight(-1);
        const auto now = now_();
        if (auto it = running_.find(id); it != running_.end()) {
            const double seconds = std::chrono::duration<double>(now - it->second.start).count();
            running_.erase(it);
            mean_seconds_ = mean_seconds_ == 0 ? seconds : 0.8 * mean_seconds_ + 0.2 * seconds;
        }
        done_.push_back(now);
        while (done_.size() > kMaxSamples || (!done_.empty() && now - done_.front() > kThroughputWindow)) {
            done_.pop_front();
        }
    }
    cv_.notify_all();
}

double Admission::ThroughputLocked() const {
    const auto now = now_();
    size_t recent = 0;
    Clock::time_point oldest = now;
    for (auto it = done_.rbegin(); it != done_.rend() && now - *it <= kThroughputWindow; ++it) {
        ++recent;
        oldest = *it;
    }
    // The span starts at the oldest completion counted, or a second ago at least: a burst of
    // completions in the same millisecond is not an infinite rate.
    const double span = std::max(1.0, std::chrono::duration<double>(now - oldest).count());
    if (recent >= 3) return static_cast<double>(recent) / span;
    const double per_request = mean_seconds_ > 0 ? mean_seconds_ : 5.0;
    return max_inflight_ / per_request;
}

double Admission::Throughput() const {
    std::lock_guard lock(mutex_);
    return ThroughputLocked();
}

// What the running callers have left (each at least a tenth of its estimate: estimates are
// rough, and a caller past its estimate is not done) plus what waits. A caller without an
// estimate counts as the mean of those with one.
double Admission::WorkAheadLocked() const {
    double known = 0;
    int with_estimate = 0;
    auto count = [&](double work_s) {
        if (work_s <= 0) return;
        known += work_s;
        ++with_estimate;
    };
    for (const auto& [id, r] : running_) count(r.work_s);
    for (const auto& w : waiting_) count(w.work_s);
    if (with_estimate == 0) return 0;
    const double mean = known / with_estimate;
    const auto now = now_();
    double ahead = 0;
    for (const auto& [id, r] : running_) {
        const double work = r.work_s > 0 ? r.work_s : mean;
        const double elapsed = std::chrono::duration<double>(now - r.start).count();
        ahead += std::max(work - elapsed, 0.1 * work);
    }
    for (const auto& w : waiting_) ahead += w.work_s > 0 ? w.work_s : mean;
    return ahead;
}

double Admission::WorkAheadSeconds() const {
    std::lock_guard lock(mutex_);
    return WorkAheadLocked();
}

void Admission::SetParallelism(double parallel) {
    std::lock_guard lock(mutex_);
    parallelism_ = std::max(1.0, parallel);
}

int Admission::RetryAfterSeconds() const {
    std::lock_guard lock(mutex_);
    double wait = 0;
    if (const double ahead = WorkAheadLocked(); ahead > 0) {
        wait = ahead / parallelism_;
    } else {
        const double position = static_cast<double>(queued_ + 1);
        wait = position / std::max(ThroughputLocked(), 1e-6);
    }
    return static_cast<int>(std::clamp(std::ceil(wait), 1.0, 3600.0));
}

void Admission::BeginShutdown() {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
}

void Admission::Abort() {
    {
        std::lock_guard lock(mutex_);
        shutting_down_ = true;
        aborted_ = true;
    }
    cv_.notify_all();
}

bool Admission::WaitIdle(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    // Real time here, whatever clock measures throughput: this is the shutdown grace period.
    while (inflight_ > 0 || queued_ > 0) {
        if (Clock::now() >= deadline) return false;
        cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return true;
}

int Admission::inflight() const {
    std::lock_guard lock(mutex_);
    return inflight_;
}

int Admission::queued() const {
    std::lock_guard lock(mutex_);
    return queued_;
}

}  // namespace summarizer
