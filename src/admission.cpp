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
    std::unique_lock lock(mutex_);
    if (shutting_down_) return AdmitResult::kShuttingDown;
    auto admit = [&] {
        ++inflight_;
        starts_.push_back(now_());
        if (metrics_) metrics_->AddInflight(1);
        return AdmitResult::kAdmitted;
    };
    if (inflight_ < max_inflight_ && waiting_.empty()) return admit();
    if (queued_ >= max_queue_) return AdmitResult::kQueueFull;

    const uint64_t ticket = next_ticket_++;
    waiting_.push_back(ticket);
    ++queued_;
    if (metrics_) metrics_->AddQueued(1);
    const auto deadline = now_() + max_wait_;
    AdmitResult outcome = AdmitResult::kAdmitted;
    for (;;) {
        if (aborted_) {
            outcome = AdmitResult::kShuttingDown;
            break;
        }
        if (waiting_.front() == ticket && inflight_ < max_inflight_) break;
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
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), ticket));
    --queued_;
    if (metrics_) metrics_->AddQueued(-1);
    cv_.notify_all();  // the next in line may be at the front now
    if (outcome != AdmitResult::kAdmitted) return outcome;
    return admit();
}

void Admission::Leave() {
    {
        std::lock_guard lock(mutex_);
        --inflight_;
        if (metrics_) metrics_->AddInflight(-1);
        const auto now = now_();
        if (!starts_.empty()) {
            // Durations are approximate (first in, first out), enough for the fallback estimate.
            const double seconds = std::chrono::duration<double>(now - starts_.front()).count();
            starts_.pop_front();
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

int Admission::RetryAfterSeconds() const {
    std::lock_guard lock(mutex_);
    const double position = static_cast<double>(queued_ + 1);
    const double wait = position / std::max(ThroughputLocked(), 1e-6);
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
