#include "upstream_http.hpp"

#include "summarizer/task_pool.hpp"

namespace summarizer::upstream_http {

double MsSince(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Endpoint SplitUrl(const std::string& url) {
    Endpoint e;
    const auto scheme_end = url.find("://");
    const auto slash = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    e.base_url = url.substr(0, slash);
    if (slash != std::string::npos) e.path_prefix = url.substr(slash);
    return e;
}

std::unique_ptr<httplib::Client> MakeClient(const Endpoint& endpoint, std::chrono::milliseconds read_timeout,
                                            bool keep_alive) {
    auto client = std::make_unique<httplib::Client>(endpoint.base_url);
    client->set_tcp_nodelay(true);
    client->set_keep_alive(keep_alive);
    client->set_connection_timeout(std::chrono::milliseconds(endpoint.connect_timeout_ms));
    client->set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read_timeout));
    client->set_write_timeout(std::chrono::seconds(30));
    if (!endpoint.api_key.empty()) client->set_bearer_token_auth(endpoint.api_key);
    return client;
}

Watchdog::Watchdog() : thread_([this] { Loop(); }) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

uint64_t Watchdog::Add(const Call& call) {
    uint64_t id;
    bool asleep;
    {
        std::lock_guard lock(mutex_);
        id = ++next_id_;
        calls_.emplace(id, call);
        asleep = asleep_;
    }
    // A ticking watchdog sees the call within a tick; waking it for every call would cost a context
    // switch per request.
    if (asleep) wake_.notify_all();
    return id;
}

void Watchdog::Remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    calls_.erase(id);
}

void Watchdog::Loop() {
    std::unique_lock lock(mutex_);
    auto last_busy = Clock::now();
    while (!stopping_) {
        if (!calls_.empty()) {
            last_busy = Clock::now();
        } else if (Clock::now() - last_busy > kIdleAfter) {
            asleep_ = true;
            wake_.wait(lock, [&] { return stopping_ || !calls_.empty(); });
            asleep_ = false;
            last_busy = Clock::now();
            continue;
        }
        wake_.wait_for(lock, kTick);
        // This thread's exception boundary: a stray exception is logged and the watchdog goes on.
        (void)CatchAll("upstream watchdog", [&]() -> std::optional<Error> {
            CheckCalls();
            return std::nullopt;
        });
    }
}

void Watchdog::CheckCalls() {
    for (auto& [id, call] : calls_) {
        if (call.stopped) continue;
        const Deadlines& d = *call.deadlines;
        StopReason reason = StopReason::kNone;
        const double elapsed_s = MsSince(call.start) / 1000.0;
        const int64_t last = call.last_piece_ns->load();
        if (call.cancel->cancelled()) {
            reason = StopReason::kCancelled;
        } else if (elapsed_s > d.total_timeout_s) {
            reason = StopReason::kTotalTimeout;
        } else if (last == 0 && elapsed_s > d.first_token_timeout_s) {
            reason = StopReason::kFirstTokenTimeout;
        } else if (last > 0 && elapsed_s - static_cast<double>(last) / 1e9 > d.idle_timeout_s) {
            reason = StopReason::kIdleTimeout;
        }
        if (reason != StopReason::kNone) {
            *call.stop_reason = reason;
            call.stopped = true;
            call.client->stop();  // shuts the socket down
        }
    }
}

std::unique_ptr<httplib::Client> ClientPool::Take() {
    {
        std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            auto client = std::move(idle_.back());
            idle_.pop_back();
            return client;
        }
    }
    return MakeClient(endpoint_, read_timeout_, true);
}

void ClientPool::Return(std::unique_ptr<httplib::Client> client) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(client));
}

std::optional<Error> StopError(StopReason reason, const Deadlines& d, const std::string& who) {
    switch (reason) {
        case StopReason::kCancelled: return MakeError(ErrorCode::kCancelled, "cancelled; upstream connection closed");
        case StopReason::kFirstTokenTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             who + " sent nothing for " + std::to_string(d.first_token_timeout_s) +
                                 " s (ollama.first_token_timeout_s)",
                             true);
        case StopReason::kIdleTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             who + " went silent for " + std::to_string(d.idle_timeout_s) +
                                 " s mid-stream (ollama.idle_timeout_s)",
                             true);
        case StopReason::kTotalTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             "the " + who + " call took over " + std::to_string(d.total_timeout_s) +
                                 " s (ollama.total_timeout_s)",
                             false);
        case StopReason::kNone: break;
    }
    return std::nullopt;
}

}  // namespace summarizer::upstream_http
