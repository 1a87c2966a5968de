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

UpstreamScheduler::UpstreamScheduler(SchedulerOptions options) : options_(std::move(options)) {
    options_.slots = std::max(1, options_.slots);
    std::vector<SchedulerHost> specs = options_.hosts;
    if (specs.empty()) specs.push_back(SchedulerHost{"", options_.slots, options_.prefill_gate, false, {}});
    for (auto& spec : specs) {
        spec.slots = std::max(1, spec.slots);
        hosts_.push_back(Host{spec});
    }
}

UpstreamScheduler::Lease::Lease(Lease&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      id_(other.id_),
      host_(other.host_),
      key_(std::move(other.key_)),
      first_token_(other.first_token_) {}

UpstreamScheduler::Lease& UpstreamScheduler::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        Release();
        owner_ = std::exchange(other.owner_, nullptr);
        id_ = other.id_;
        host_ = other.host_;
        key_ = std::move(other.key_);
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

UpstreamScheduler::View UpstreamScheduler::LookLocked() const {
    View v;
    v.now = Clock::now();
    const auto gate_max = std::chrono::milliseconds(options_.prefill_gate_max_ms);
    for (size_t h = 0; h < hosts_.size(); ++h) {
        const Host& host = hosts_[h];
        const HostCondition condition = options_.condition ? options_.condition(h) : HostCondition::kUp;
        bool open = condition != HostCondition::kDown && static_cast<int>(host.running.size()) < host.spec.slots;
        if (open && host.spec.prefill_gate) {
            for (const auto& r : host.running) {
                if (r.in_prefill && v.now - r.started < gate_max) open = false;
            }
        }
        v.condition.push_back(condition);
        v.open.push_back(open);
    }
    return v;
}

bool UpstreamScheduler::LoadedLocked(size_t h, const std::string& model) const {
    return hosts_[h].spec.resident || hosts_[h].current_model == model;
}

const std::string& UpstreamScheduler::KeyLocked(const View& v, size_t h, const Waiter& w) const {
    const Host& host = hosts_[h];
    if (w.rides.empty() || host.spec.resident || host.current_model.empty() || host.current_model == w.model) {
        return w.model;
    }
    const auto& serves = host.spec.serves;
    if (!serves.empty() && std::find(serves.begin(), serves.end(), host.current_model) == serves.end()) return w.model;
    if (std::find(w.rides.begin(), w.rides.end(), host.current_model) == w.rides.end()) return w.model;
    // A ride stands in for a reload, not for a wait: while another host has the call's own bucket
    // loaded, the call goes there (its larger bucket's slots stay free for the calls that need it).
    for (size_t other = 0; other < hosts_.size(); ++other) {
        if (other != h && CandidateLocked(v, other, w) && LoadedLocked(other, w.model)) return w.model;
    }
    return host.current_model;
}

bool UpstreamScheduler::CandidateLocked(const View& v, size_t h, const Waiter& w) const {
    const auto& serves = hosts_[h].spec.serves;
    return v.condition[h] != HostCondition::kDown &&
           (serves.empty() || std::find(serves.begin(), serves.end(), w.model) != serves.end()) &&
           std::find(w.exclude.begin(), w.exclude.end(), h) == w.exclude.end();
}

bool UpstreamScheduler::AllowedLocked(const View& v, size_t h, const Waiter& w) const {
    if (!v.open[h] || !CandidateLocked(v, h, w)) return false;
    if (hosts_.size() == 1) return true;
    if (v.condition[h] == HostCondition::kAvoid) {
        // A host that failed lately takes a call only when no healthy host could.
        for (size_t other = 0; other < hosts_.size(); ++other) {
            if (CandidateLocked(v, other, w) && v.condition[other] == HostCondition::kUp) return false;
        }
    }
    // Nothing to evict, or nothing to swap: start here.
    if (LoadedLocked(h, KeyLocked(v, h, w)) || hosts_[h].current_model.empty()) return true;
    // This host would have to load the call's model: not while another host that has it loaded takes
    // it now, nor (affinity) while such a host is busy and the call has not waited switch_max_wait_ms.
    for (size_t other = 0; other < hosts_.size(); ++other) {
        if (other == h || !CandidateLocked(v, other, w) || !LoadedLocked(other, KeyLocked(v, other, w))) continue;
        if (v.condition[other] == HostCondition::kAvoid && v.condition[h] == HostCondition::kUp) continue;
        if (v.open[other]) return false;
        // Whatever the routing policy: across hosts, a swap here is a reload that a short wait for the
        // host that has the bucket avoids (and the evicted bucket's next calls would pay again).
        if (v.now - w.since < std::chrono::milliseconds(options_.switch_max_wait_ms)) return false;
    }
    return true;
}

const UpstreamScheduler::Waiter* UpstreamScheduler::PickLocked(const View& v, size_t h) const {
    if (waiting_.empty() || !v.open[h]) return nullptr;
    const Host& host = hosts_[h];
    const auto batch_max = std::chrono::milliseconds(options_.batch_max_wait_ms);
    const auto urgent = [&](const Waiter& w) { return w.interactive || v.now - w.since >= batch_max; };
    // The first urgent waiter that `eligible` accepts, else the first it accepts: waiting_ is in
    // arrival order, so within a class calls start first come, first served.
    const auto best = [&](const auto& eligible) -> const Waiter* {
        const Waiter* first = nullptr;
        for (const auto& w : waiting_) {
            if (!eligible(w) || !AllowedLocked(v, h, w)) continue;
            if (urgent(w)) return &w;
            if (first == nullptr) first = &w;
        }
        return first;
    };
    if (options_.bucket_affinity && !host.spec.resident && !host.current_model.empty()) {
        const auto is_current = [&](const Waiter& w) { return KeyLocked(v, h, w) == host.current_model; };
        const auto is_other = [&](const Waiter& w) { return KeyLocked(v, h, w) != host.current_model; };
        const auto oldest_other = std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiter& w) {
            return is_other(w) && AllowedLocked(v, h, w);
        });
        if (oldest_other != waiting_.end()) {
            // Waiting counts from the last switch: the calls left behind by a switch do not force
            // an immediate switch back.
            const auto waited_since = std::max(oldest_other->since, host.current_since);
            if (v.now - waited_since >= std::chrono::milliseconds(options_.switch_max_wait_ms)) return best(is_other);
        }
        if (const Waiter* w = best(is_current)) return w;
    }
    return best([](const Waiter&) { return true; });
}

std::optional<size_t> UpstreamScheduler::PlaceLocked(const View& v, const Waiter& w) const {
    std::optional<size_t> chosen;
    const auto better = [&](size_t a, size_t b) {  // a before b?
        const bool loaded_a = LoadedLocked(a, KeyLocked(v, a, w)), loaded_b = LoadedLocked(b, KeyLocked(v, b, w));
        if (loaded_a != loaded_b) return loaded_a;
        const bool up_a = v.condition[a] == HostCondition::kUp, up_b = v.condition[b] == HostCondition::kUp;
        if (up_a != up_b) return up_a;
        // Least loaded relative to its slots (cross-multiplied: no rounding).
        const auto load_a = static_cast<int64_t>(hosts_[a].running.size()) * hosts_[b].spec.slots;
        const auto load_b = static_cast<int64_t>(hosts_[b].running.size()) * hosts_[a].spec.slots;
        if (load_a != load_b) return load_a < load_b;
        if (hosts_[a].started != hosts_[b].started) return hosts_[a].started < hosts_[b].started;
        return a < b;
    };
    for (size_t h = 0; h < hosts_.size(); ++h) {
        if (PickLocked(v, h) != &w) continue;
        if (!chosen || better(h, *chosen)) chosen = h;
    }
    return chosen;
}

std::string UpstreamScheduler::HopelessLocked(const View& v, const Waiter& w) const {
    std::string why;
    for (size_t h = 0; h < hosts_.size(); ++h) {
        if (CandidateLocked(v, h, w)) return "";
        const auto& spec = hosts_[h].spec;
        std::string state;
        if (!spec.serves.empty() && std::find(spec.serves.begin(), spec.serves.end(), w.model) == spec.serves.end()) {
            state = "does not serve it";
        } else if (std::find(w.exclude.begin(), w.exclude.end(), h) != w.exclude.end()) {
            state = "failed this call";
        } else {
            state = "circuit open";
        }
        why += (why.empty() ? "" : ", ") + (spec.name.empty() ? "the upstream" : spec.name) + " " + state;
    }
    return "no upstream can take a call for " + w.model + " now (" + why + ")";
}

Result<UpstreamScheduler::Lease> UpstreamScheduler::Acquire(const std::string& model, bool interactive,
                                                            const CancelToken& cancel) {
    return Acquire(CallSpec{model, interactive, {}, {}}, cancel);
}

Result<UpstreamScheduler::Lease> UpstreamScheduler::Acquire(const CallSpec& call, const CancelToken& cancel) {
    std::unique_lock lock(mutex_);
    const uint64_t id = next_id_++;
    auto self = waiting_.insert(waiting_.end(), Waiter{id, call.model, call.interactive, Clock::now(), call.exclude, call.rides});
    for (;;) {
        if (cancel.cancelled()) {
            waiting_.erase(self);
            cv_.notify_all();  // this waiter may have been the one picked
            return MakeError(ErrorCode::kCancelled, "cancelled while waiting for an upstream slot");
        }
        const View v = LookLocked();
        if (std::string why = HopelessLocked(v, *self); !why.empty()) {
            waiting_.erase(self);
            cv_.notify_all();
            return MakeError(ErrorCode::kUpstreamUnreachable, why, /*retryable=*/true);
        }
        if (const auto h = PlaceLocked(v, *self)) {
            Host& host = hosts_[*h];
            std::string key = KeyLocked(v, *h, *self);
            if (host.current_model != key) {
                if (!host.current_model.empty() && !host.spec.resident) ++host.switches;
                host.current_model = key;
                host.current_since = v.now;
            }
            if (key != call.model) ++host.rides;
            host.running.push_back(Running{id, key, host.spec.prefill_gate, v.now});
            waiting_.erase(self);
            ++started_;
            ++host.started;
            cv_.notify_all();  // without the gate, the next waiter may start at once too
            return Lease(this, id, *h, std::move(key));
        }
        cv_.wait_for(lock, kPollInterval);
    }
}

void UpstreamScheduler::NoteLoaded(size_t host, const std::string& model) {
    {
        std::lock_guard lock(mutex_);
        if (host >= hosts_.size() || hosts_[host].current_model == model) return;
        hosts_[host].current_model = model;
        hosts_[host].current_since = Clock::now();
    }
    cv_.notify_all();
}

void UpstreamScheduler::Wake() { cv_.notify_all(); }

void UpstreamScheduler::ReleaseSlot(uint64_t id) {
    {
        std::lock_guard lock(mutex_);
        for (auto& host : hosts_) host.running.remove_if([id](const Running& r) { return r.id == id; });
    }
    cv_.notify_all();
}

void UpstreamScheduler::FirstToken(uint64_t id) {
    {
        std::lock_guard lock(mutex_);
        bool found = false;
        for (auto& host : hosts_) {
            auto it = std::find_if(host.running.begin(), host.running.end(), [id](const Running& r) { return r.id == id; });
            if (it == host.running.end()) continue;
            found = it->in_prefill;
            it->in_prefill = false;
            break;
        }
        if (!found) return;
    }
    cv_.notify_all();
}

SchedulerStats UpstreamScheduler::stats() const {
    std::lock_guard lock(mutex_);
    SchedulerStats s;
    for (const auto& host : hosts_) {
        s.active += static_cast<int>(host.running.size());
        s.model_switches += host.switches;
        s.rides += host.rides;
    }
    s.waiting = static_cast<int>(waiting_.size());
    s.started = started_;
    s.current_model = hosts_[0].current_model;
    return s;
}

SchedulerHostStats UpstreamScheduler::host_stats(size_t h) const {
    std::lock_guard lock(mutex_);
    const Host& host = hosts_.at(h);
    return SchedulerHostStats{static_cast<int>(host.running.size()), host.spec.slots, host.started, host.switches,
                              host.current_model};
}

int UpstreamScheduler::Pending(const std::string& model) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& host : hosts_) {
        n += static_cast<int>(std::count_if(host.running.begin(), host.running.end(),
                                            [&](const Running& r) { return r.model == model; }));
    }
    return n + static_cast<int>(std::count_if(waiting_.begin(), waiting_.end(),
                                              [&](const Waiter& w) { return w.model == model; }));
}

int UpstreamScheduler::Waiting(const std::string& model) const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(
        std::count_if(waiting_.begin(), waiting_.end(), [&](const Waiter& w) { return w.model == model; }));
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
