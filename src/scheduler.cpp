#include "summarizer/scheduler.hpp"

#include <algorithm>
#include <utility>

namespace summarizer {
namespace {

// Waiters wake at least this often: a CancelToken has no notification, and deadlines (gate,
// batch wait, switch wait) pass without one. Short enough for a prompt kCancelled, long
// enough that dozens of waiting map calls cost nothing.
constexpr auto kPollInterval = std::chrono::milliseconds(5);

}  // namespace

SchedulerOptions SchedulerOptionsFromConfig(const Config& config) {
    SchedulerOptions o;
    o.slots = std::max(1, config.ollama.num_parallel);
    o.prefill_gate = config.scheduler.prefill_gate;
    o.prefill_gate_max_ms = config.scheduler.prefill_gate_max_ms;
    o.bucket_affinity = config.routing.policy == "cost";
    o.switch_max_wait_ms = config.scheduler.switch_max_wait_ms;
    o.batch_max_wait_ms = config.scheduler.batch_max_wait_ms;
    return o;
}

UpstreamScheduler::UpstreamScheduler(SchedulerOptions options) : options_(options) {
    options_.slots = std::max(1, options_.slots);
}

UpstreamScheduler::Lease::Lease(Lease&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), id_(other.id_), first_token_(other.first_token_) {}

UpstreamScheduler::Lease& UpstreamScheduler::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        Release();
        owner_ = std::exchange(other.owner_, nullptr);
        id_ = other.id_;
        first_token_ = other.first_token_;
    }
    return *this;
}

UpstreamScheduler::Lease::~Lease() { Release(); }

void UpstreamScheduler::Lease::MarkFirstToken() {
    if (owner_ == nullptr || first_token_) return;
    first_token_ = true;
    owner_->FirstToken(id_);
}

void UpstreamScheduler::Lease::Release() {
    if (auto* owner = std::exchange(owner_, nullptr)) owner->ReleaseSlot(id_);
}

const UpstreamScheduler::Waiter* UpstreamScheduler::PickLocked(Clock::time_point now) const {
    if (waiting_.empty() || static_cast<int>(running_.size()) >= options_.slots) return nullptr;
    if (options_.prefill_gate) {
        const auto gate_max = std::chrono::milliseconds(options_.prefill_gate_max_ms);
        for (const auto& r : running_) {
            if (r.in_prefill && now - r.started < gate_max) return nullptr;
        }
    }
    const auto batch_max = std::chrono::milliseconds(options_.batch_max_wait_ms);
    const auto urgent = [&](const Waiter& w) { return w.interactive || now - w.since >= batch_max; };
    // The first urgent waiter that `eligible` accepts, else the first it accepts: waiting_ is in
    // arrival order, so within a class calls start first come, first served.
    const auto best = [&](const auto& eligible) -> const Waiter* {
        const Waiter* first = nullptr;
        for (const auto& w : waiting_) {
            if (!eligible(w)) continue;
            if (urgent(w)) return &w;
            if (first == nullptr) first = &w;
        }
        return first;
    };
    if (options_.bucket_affinity && !current_model_.empty()) {
        const auto is_current = [&](const Waiter& w) { return w.model == current_model_; };
        const auto is_other = [&](const Waiter& w) { return w.model != current_model_; };
        const auto oldest_other = std::find_if(waiting_.begin(), waiting_.end(), is_other);
        if (oldest_other != waiting_.end()) {
            // Waiting counts from the last switch: the calls left behind by a switch do not force
            // an immediate switch back.
            const auto waited_since = std::max(oldest_other->since, current_since_);
            if (now - waited_since >= std::chrono::milliseconds(options_.switch_max_wait_ms)) return best(is_other);
        }
        if (const Waiter* w = best(is_current)) return w;
    }
    return best([](const Waiter&) { return true; });
}

Result<UpstreamScheduler::Lease> UpstreamScheduler::Acquire(const std::string& model, bool interactive,
                                                            const CancelToken& cancel) {
    std::unique_lock lock(mutex_);
    const uint64_t id = next_id_++;
    auto self = waiting_.insert(waiting_.end(), Waiter{id, model, interactive, Clock::now()});
    for (;;) {
        if (cancel.cancelled()) {
            waiting_.erase(self);
            cv_.notify_all();  // this waiter may have been the one picked
            return MakeError(ErrorCode::kCancelled, "cancelled while waiting for an upstream slot");
        }
        const auto now = Clock::now();
        if (PickLocked(now) == &*self) {
            if (!current_model_.empty() && current_model_ != model) ++switches_;
            if (current_model_ != model) {
                current_model_ = model;
                current_since_ = now;
            }
            running_.push_back(Running{id, model, options_.prefill_gate, now});
            waiting_.erase(self);
            ++started_;
            cv_.notify_all();  // without the gate, the next waiter may start at once too
            return Lease(this, id);
        }
        cv_.wait_for(lock, kPollInterval);
    }
}

void UpstreamScheduler::ReleaseSlot(uint64_t id) {
    {
        std::lock_guard lock(mutex_);
        running_.remove_if([id](const Running& r) { return r.id == id; });
    }
    cv_.notify_all();
}

void UpstreamScheduler::FirstToken(uint64_t id) {
    {
        std::lock_guard lock(mutex_);
        auto it = std::find_if(running_.begin(), running_.end(), [id](const Running& r) { return r.id == id; });
        if (it == running_.end() || !it->in_prefill) return;
        it->in_prefill = false;
    }
    cv_.notify_all();
}

SchedulerStats UpstreamScheduler::stats() const {
    std::lock_guard lock(mutex_);
    SchedulerStats s;
    s.active = static_cast<int>(running_.size());
    s.waiting = static_cast<int>(waiting_.size());
    s.started = started_;
    s.model_switches = switches_;
    s.current_model = current_model_;
    return s;
}

int UpstreamScheduler::Pending(const std::string& model) const {
    std::lock_guard lock(mutex_);
    const auto count = [&](const auto& list) {
        return static_cast<int>(
            std::count_if(list.begin(), list.end(), [&](const auto& x) { return x.model == model; }));
    };
    return count(waiting_) + count(running_);
}

Result<GenerateResult> ScheduledEngine::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                                  const CancelToken& cancel) {
    auto lease = scheduler_.Acquire(request.model, request.interactive, cancel);
    if (!lease.ok()) return lease.error();
    // Map calls pass no callback; the scheduler still needs their first token to open the gate.
    const TokenCallback marking = [&](std::string_view piece) {
        lease->MarkFirstToken();
        if (on_token) on_token(piece);
    };
    auto result = inner_.Generate(request, marking, cancel);
    lease->Release();  // before the caller's bookkeeping: the next call may start now
    return result;
}

}  // namespace summarizer
