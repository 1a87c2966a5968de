#include "summarizer/http_server.hpp"

#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/admission.hpp"
#include "summarizer/api.hpp"
#include "summarizer/circuit_breaker.hpp"
#include "summarizer/extractive.hpp"
#include "summarizer/model_manager.hpp"
#include "summarizer/openapi.hpp"
#include "summarizer/scheduler.hpp"
#include "summarizer/summarizer.hpp"
#include "summarizer/web_page.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string NewRequestId() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count())};
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

// A client's X-Request-Id is echoed if it is short and printable; otherwise we make one.
std::string RequestIdFor(const httplib::Request& req) {
    std::string id = req.get_header_value("X-Request-Id");
    bool ok = !id.empty() && id.size() <= 128 &&
              std::all_of(id.begin(), id.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
    return ok ? id : NewRequestId();
}

// Compares over the key's whole length whatever the input, so timing reveals nothing of it.
bool ConstantTimeEquals(std::string_view given, std::string_view key) {
    unsigned char diff = given.size() != key.size() ? 1 : 0;
    for (size_t i = 0; i < key.size(); ++i) {
        diff |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^ key[i]);
    }
    return diff == 0;
}

// The accepted socket of a request: httplib 0.11 does not expose it (nor is_connection_closed),
// so it is found by its two ports among this process's descriptors. -1 if not found.
int FindRequestSocket(const httplib::Request& req) {
    if (req.remote_port <= 0 || req.local_port <= 0) return -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const int fd = std::atoi(entry.path().filename().c_str());
        sockaddr_storage local{}, peer{};
        socklen_t local_len = sizeof local, peer_len = sizeof peer;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
            getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
            continue;
        }
        auto port_of = [](const sockaddr_storage& a) -> int {
            if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
            if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
            return -1;
        };
        if (port_of(local) == req.local_port && port_of(peer) == req.remote_port) return fd;
    }
    return -1;
}

// True while the client of a queued request is still connected: its socket has neither been
// closed by the peer (a zero-byte read) nor failed. Data waiting (a pipelined request) is fine.
bool SocketStillOpen(int fd) {
    if (fd < 0) return true;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLERR | POLLNVAL)) return false;
    char byte = 0;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

constexpr int kListenBacklog = 1024;

// httplib's stop() also aborts every chunked response at its next write (it treats "no listening
// socket" as "shutting down"), which would cut the streams a graceful shutdown wants to finish.
// StopAccepting() only shuts the listening socket down: accept() fails, listen_after_bind()
// closes it and returns once the running requests are done, streams included.
class DrainableServer : public httplib::Server {
public:
    // httplib 0.11 listens with a backlog of 5: a burst of clients overflows it, and a connection
    // whose handshake the kernel dropped can hang for a minute before it is reset. Listening again
    // on the bound socket raises the backlog (Linux caps it at net.core.somaxconn).
    void RaiseBacklog(int backlog) {
        const auto sock = svr_sock_.load();
        if (sock != INVALID_SOCKET) ::listen(sock, backlog);
    }
    void StopAccepting() {
        const auto sock = svr_sock_.load();
        if (sock != INVALID_SOCKET) ::shutdown(sock, SHUT_RDWR);
    }
};

// Events produced by the summarizing thread and written by the HTTP thread.
struct StreamState {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> events;
    bool finished = false;
    CancelToken cancel;
    bool worker_done = false;  // the summarizing job has returned and touches nothing any more
    size_t bytes_out = 0;  // written by the HTTP thread only

    void Push(std::string event) {
        {
            std::lock_guard lock(mutex);
            events.push_back(std::move(event));
        }
        cv.notify_one();
    }
    void Finish() {
        {
            std::lock_guard lock(mutex);
            finished = true;
        }
        cv.notify_one();
    }
    void WorkerDone() {
        {
            std::lock_guard lock(mutex);
            worker_done = true;
        }
        cv.notify_all();
    }
    void WaitForWorker() {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return worker_done; });
    }
};

// Threads that run streamed summaries, started on demand and kept. Admission bounds the streams
// in flight, so with that many threads a job never waits, and no stream pays for a new thread.
class WorkerPool {
public:
    explicit WorkerPool(int max_threads) : max_threads_(static_cast<size_t>(std::max(1, max_threads))) {}
    ~WorkerPool() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    void Post(std::function<void()> job) {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
        if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
            threads_.emplace_back([this] { Loop(); });
        } else {
            cv_.notify_one();
        }
    }

private:
    void Loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            job = nullptr;
            lock.lock();
        }
    }

    const size_t max_threads_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool stopping_ = false;
};

// One access-log line per request. httplib runs a request's pre-routing, handler and logger on one
// worker thread, so this thread's state belongs to the request being served.
struct RequestLogState {
    Clock::time_point arrival{};
    bool logged = false;  // a handler wrote (or, for a stream, will write) the line itself
};
thread_local RequestLogState t_request_log;

// What one access-log line says. `text` is logged only with server.log_text (a debug option).
struct AccessLogEntry {
    std::string_view id, method, path, remote, route;
    int status = 0;
    size_t bytes_in = 0, bytes_out = 0;
    double seconds = 0, ttft_ms = 0;
    bool stream = false;
    std::string_view text;
};

}  // namespace

struct HttpServer::Impl {
    const Config& config;
    Metrics metrics;
    // Fails fast while Ollama is unreachable; every request's upstream call goes through it. The
    // model manager's own calls (preloads, /api/ps) do not: the circuit counts request traffic only.
    CircuitBreaker breaker;
    LlmEngine& backend;          // `breaker`
    UpstreamScheduler scheduler;  // one per process: every request's upstream calls share Ollama's slots
    ScheduledEngine scheduled;
    ModelManager manager;      // VRAM/keep_alive policy; learns from every call through `tracked`
    TrackedEngine tracked;    // outside the scheduler: its pending counts include waiting calls
    Summarizer summarizer;
    Admission admission;
    DrainableServer server;
    int port = 0;
    WorkerPool stream_workers;  // last: its jobs use the members above

    // Cancel tokens of the requests running now, cancelled when the shutdown grace runs out.
    std::mutex active_mutex;
    std::map<uint64_t, CancelToken> active;
    uint64_t next_active = 0;
    std::atomic<bool> stopping{false};
    std::atomic<bool> run_called{false};

    Impl(const Config& c, OllamaClient& b)
        : config(c),
          breaker(b, CircuitBreakerOptions{c.ollama.circuit_failure_threshold,
                                           std::chrono::milliseconds(c.ollama.circuit_open_ms),
                                           "Ollama at " + c.ollama.url}),
          backend(breaker),
          scheduler(SchedulerOptionsFromConfig(c)),
          scheduled(backend, scheduler),
          manager(c, b, &metrics),
          tracked(scheduled, manager),
          summarizer(c, tracked, MakeObserver()),
          admission(c.MaxInflight(), c.server.max_queue, std::chrono::seconds(c.server.queue_timeout_s), &metrics),
          stream_workers(c.MaxInflight()) {}

    uint64_t Track(const CancelToken& token) {
        std::lock_guard lock(active_mutex);
        active.emplace(next_active, token);
        return next_active++;
    }
    void Untrack(uint64_t key) {
        std::lock_guard lock(active_mutex);
        active.erase(key);
    }
    int CancelActive() {
        std::lock_guard lock(active_mutex);
        for (auto& [key, token] : active) token.Cancel();
        return static_cast<int>(active.size());
    }

    Error ShutdownError() const {
        return MakeError(ErrorCode::kUpstreamUnavailable,
                         "summarizer is shutting down; the request was cancelled after server.shutdown_grace_s = " +
                             std::to_string(config.server.shutdown_grace_s) + " s. Retry it");
    }

    // The in-process answer when Ollama cannot be reached: extractive, marked degraded.
    // `started`: when the request left the queue (queue_ms is the wait for a slot, as on the LLM route).
    SummarizeResponse ExtractiveResponse(const SummarizeRequest& request, Clock::time_point arrival,
                                         Clock::time_point started, const std::string& why) {
        ExtractiveOptions options;
        options.style = request.style;
        options.max_chars = static_cast<size_t>(config.degraded.extractive_max_chars);
        const TextStats stats = ComputeTextStats(request.text);
        if (request.max_tokens > 0) {
            // A client's token cap, in characters: ~2 per token for CJK text, ~4 otherwise.
            const size_t per_token = stats.CjkRatio() > 0.3 ? 2 : 4;
            options.max_chars = std::min(options.max_chars, static_cast<size_t>(request.max_tokens) * per_token);
        }
        auto extract = SummarizeExtractive(request.text, options);
        SummarizeResponse r;
        r.summary = std::move(extract.text);
        r.route = std::string(kExtractiveRoute);
        r.model = "none";
        r.chunks = 1;
        r.levels = 0;
        r.request_id = request.request_id;
        r.degraded = true;
        r.language = Summarizer::ResolveLanguage(request, stats);
        r.reason = "extractive fallback: " + why;
        const auto finished = Clock::now();
        r.timings.total_ms = std::chrono::duration<double, std::milli>(finished - arrival).count();
        r.timings.queue_ms = std::chrono::duration<double, std::milli>(started - arrival).count();
        r.timings.ttft_ms = r.timings.total_ms;
        spdlog::warn("{}: answered with an extractive summary ({} of {} sentences): {}", request.request_id,
                     extract.picked.size(), extract.sentences, why);
        return r;
    }

    // Runs the LLM route; when Ollama cannot be reached (and nothing was streamed yet), falls back
    // to the extractive summary if the configuration allows it.
    Result<SummarizeResponse> RunWithFallback(const SummarizeRequest& request, const SummarizeEvents& events,
                                              const CancelToken& cancel, Clock::time_point arrival,
                                              const std::atomic<bool>* delta_sent) {
        const bool fallback = config.degraded.extractive_fallback;
        const auto started = Clock::now();
        if (fallback && breaker.state() == CircuitState::kOpen) {
            return ExtractiveResponse(request, arrival, started,
                                      "the circuit to Ollama is open (" + breaker.last_failure() + ")");
        }
        auto result = summarizer.Run(request, events, cancel, arrival);
        if (!result.ok() && fallback && IsUpstreamUnreachable(result.error()) && !cancel.cancelled() &&
            !(delta_sent && delta_sent->load())) {
            return ExtractiveResponse(request, arrival, started, result.error().message);
        }
        return result;
    }

    SummarizerObserver MakeObserver() {
        SummarizerObserver o;
        o.on_upstream_call = [this](const GenerateRequest& g, const Result<GenerateResult>& r, double ms) {
            std::string outcome = "ok";
            if (!r.ok()) {
                switch (r.error().code) {
                    case ErrorCode::kUpstreamTimeout: outcome = "timeout"; break;
                    case ErrorCode::kUpstreamUnreachable:
                    case ErrorCode::kUpstreamUnavailable:
                    case ErrorCode::kUpstreamBusy: outcome = "unavailable"; break;
                    case ErrorCode::kCancelled: outcome = "cancelled"; break;
                    case ErrorCode::kContextOverflow: outcome = "overflow"; break;
                    default: outcome = "error";
                }
            }
            metrics.ObserveUpstream(outcome, ms / 1000.0, r.ok() ? r->prompt_tokens : 0,
                                    r.ok() ? r->output_tokens : 0);
            // A warm model reports a load_duration of milliseconds; loading gemma3:4b takes seconds.
            constexpr int64_t kColdLoadNs = 500'000'000;
            if (r.ok() && r->load.count() >= kColdLoadNs) {
                metrics.ObserveLoad(g.model, std::chrono::duration<double>(r->load).count());
            }
        };
        o.on_overflow = [this] { metrics.CountOverflow(); };
        o.route_costs = [this] { return manager.CurrentCosts(); };
        return o;
    }

    void SendJson(httplib::Response& res, int status, const json& body) {
        res.status = status;
        res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    }
    void SendError(httplib::Response& res, const Error& error, const std::string& request_id) {
        SendJson(res, HttpStatusFor(error.code), ErrorJson(error, request_id));
    }

    void AccessLog(const AccessLogEntry& e) {
        t_request_log.logged = true;
        const bool probe = e.path == "/healthz" || e.path == "/readyz" || e.path == "/metrics";
        const auto level = probe && e.status < 400 ? spdlog::level::debug : spdlog::level::info;
        if (!spdlog::should_log(level)) return;
        const bool with_text = config.server.log_text && !e.text.empty();
        if (config.server.log_json) {
            json line = {{"request_id", e.id},       {"method", e.method},       {"path", e.path},
                         {"status", e.status},       {"route", e.route},         {"stream", e.stream},
                         {"bytes_in", e.bytes_in},   {"bytes_out", e.bytes_out}, {"total_ms", std::round(e.seconds * 1e4) / 10},
                         {"ttft_ms", e.ttft_ms},     {"remote", e.remote}};
            if (with_text) line["text"] = e.text;
            spdlog::log(level, "{}", line.dump(-1, ' ', false, json::error_handler_t::replace));
        } else {
            spdlog::log(level, "{} {} {} {}{} status={} route={} in={}B out={}B total_ms={:.1f} ttft_ms={:.1f}{}{}", e.id,
                        e.remote, e.method, e.path, e.stream ? " stream" : "", e.status, e.route, e.bytes_in, e.bytes_out,
                        e.seconds * 1000, e.ttft_ms, with_text ? " text=" : "", with_text ? e.text : "");
        }
    }

    void AccessLog(const httplib::Request& req, const httplib::Response& res, const std::string& route,
                   double seconds, double ttft_ms) {
        AccessLog(AccessLogEntry{.id = res.get_header_value("X-Request-Id"), .method = req.method, .path = req.path,
                                 .remote = req.remote_addr, .route = route, .status = res.status,
                                 .bytes_in = req.body.size(), .bytes_out = res.body.size(), .seconds = seconds,
                                 .ttft_ms = ttft_ms, .text = req.path.rfind("/summarize", 0) == 0 ? req.body : ""});
    }

    HttpInput InputOf(const httplib::Request& req) {
        HttpInput in;
        in.content_type = req.get_header_value("Content-Type");
        in.accept = req.get_header_value("Accept");
        in.body = req.body;
        for (const auto& [k, v] : req.params) in.query[k] = v;
        return in;
    }

    void HandlePlan(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        const auto arrival = Clock::now();
        auto parsed = ParseSummarizeRequest(InputOf(req), config);
        if (!parsed.ok()) {
            SendError(res, parsed.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        auto plan = summarizer.MakePlan(parsed->request);
        if (!plan.ok()) {
            SendError(res, plan.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        SendJson(res, 200, PlanJson(*plan));
        Finish(req, res, RouteName(*plan), arrival, 0);
    }

    void HandleSummarize(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        const auto arrival = Clock::now();
        auto parsed = ParseSummarizeRequest(InputOf(req), config);
        if (!parsed.ok()) {
            SendError(res, parsed.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        parsed->request.request_id = id;
        int fd = -2;  // looked up only if the request has to wait
        auto still_wanted = [&] {
            if (fd == -2) fd = FindRequestSocket(req);
            return SocketStillOpen(fd);
        };
        switch (admission.Enter(still_wanted)) {
            case AdmitResult::kAdmitted: break;
            case AdmitResult::kQueueFull:
            case AdmitResult::kTimedOut: {
                const bool full = admission.queued() >= config.server.max_queue;
                res.set_header("Retry-After", std::to_string(admission.RetryAfterSeconds()));
                SendError(res, MakeError(ErrorCode::kOverloaded,
                                         full ? "the request queue is full (server.max_queue = " +
                                                    std::to_string(config.server.max_queue) +
                                                    "); retry after the Retry-After delay"
                                              : "no slot became free within server.queue_timeout_s = " +
                                                    std::to_string(config.server.queue_timeout_s) +
                                                    " s; retry after the Retry-After delay"),
                          id);
                return Finish(req, res, "none", arrival, 0);
            }
            case AdmitResult::kAbandoned:
                res.status = 499;  // for the log and metrics: nobody reads the answer
                res.set_header("Connection", "close");
                return Finish(req, res, "none", arrival, 0);
            case AdmitResult::kShuttingDown:
                res.set_header("Connection", "close");
                SendError(res, MakeError(ErrorCode::kUpstreamUnavailable,
                                         "summarizer is shutting down and takes no new requests; retry"),
                          id);
                return Finish(req, res, "none", arrival, 0);
        }
        if (parsed->stream) return StartStream(req, res, std::move(parsed->request), arrival);

        CancelToken cancel;
        const uint64_t active_key = Track(cancel);
        auto result = RunWithFallback(parsed->request, {}, cancel, arrival, nullptr);
        Untrack(active_key);
        admission.Leave();
        if (!result.ok()) {
            bool shutdown = stopping && result.error().code == ErrorCode::kCancelled;
            if (shutdown) res.set_header("Connection", "close");
            SendError(res, shutdown ? ShutdownError() : result.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        SendJson(res, 200, ResponseJson(*result));
        metrics.ObserveTtft(result->route, result->timings.ttft_ms / 1000.0);
        Finish(req, res, result->route, arrival, result->timings.ttft_ms);
    }

    void Finish(const httplib::Request& req, const httplib::Response& res, const std::string& route,
                Clock::time_point arrival, double ttft_ms) {
        double seconds = SecondsSince(arrival);
        metrics.ObserveRequest(req.path, route, res.status, seconds);
        AccessLog(req, res, route, seconds, ttft_ms);
    }

    void StartStream(const httplib::Request& req, httplib::Response& res, SummarizeRequest request,
                     Clock::time_point arrival) {
        auto state = std::make_shared<StreamState>();
        const std::string id = request.request_id;
        t_request_log.logged = true;  // the releaser writes the line when the stream ends
        auto route = std::make_shared<std::string>("none");
        auto ttft = std::make_shared<double>(0);
        auto status = std::make_shared<int>(200);
        const uint64_t active_key = Track(state->cancel);
        stream_workers.Post([this, state, request = std::move(request), arrival, route, ttft, status] {
            SummarizeEvents events;
            std::atomic<bool> delta_sent{false};
            events.on_plan = [&](const Plan& plan) {
                state->Push(FormatSseEvent("meta", {{"request_id", request.request_id},
                                                    {"route", RouteName(plan)},
                                                    {"model", plan.model},
                                                    {"chunks", plan.kind == RouteKind::kMapReduce ? plan.chunks.size() : 1},
                                                    {"degraded", false}}));
            };
            events.on_progress = [&](std::string_view phase, int done, int total) {
                state->Push(FormatSseEvent("progress", {{"phase", phase}, {"done", done}, {"total", total}}));
            };
            events.on_delta = [&](std::string_view piece) {
                delta_sent = true;
                state->Push(FormatSseEvent("delta", {{"text", piece}}));
            };
            auto result = RunWithFallback(request, events, state->cancel, arrival, &delta_sent);
            if (result.ok()) {
                if (result->degraded) {
                    // A (second) meta tells the client the route changed, then the summary in one delta.
                    state->Push(FormatSseEvent("meta", {{"request_id", request.request_id},
                                                        {"route", result->route},
                                                        {"model", result->model},
                                                        {"chunks", 1},
                                                        {"degraded", true}}));
                    state->Push(FormatSseEvent("delta", {{"text", result->summary}}));
                }
                *route = result->route;
                *ttft = result->timings.ttft_ms;
                state->Push(FormatSseEvent("done", ResponseJson(*result)));
            } else {
                const bool shutdown = stopping && result.error().code == ErrorCode::kCancelled;
                const Error& error = shutdown ? ShutdownError() : result.error();
                *status = HttpStatusFor(error.code);
                state->Push(FormatSseEvent("error", ErrorJson(error, request.request_id)));
            }
            state->Finish();
            state->WorkerDone();
        });
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
        res.set_chunked_content_provider(
            "text/event-stream",
            [state](size_t, httplib::DataSink& sink) {
                std::unique_lock lock(state->mutex);
                for (;;) {
                    if (!state->events.empty()) {
                        // Everything queued goes out in one write (one chunk, one send()).
                        std::string batch = std::move(state->events.front());
                        state->events.pop_front();
                        for (; !state->events.empty(); state->events.pop_front()) batch += state->events.front();
                        lock.unlock();
                        if (!sink.write(batch.data(), batch.size())) {
                            state->cancel.Cancel();
                            return false;
                        }
                        state->bytes_out += batch.size();
                        return true;
                    }
                    if (state->finished) {
                        lock.unlock();
                        sink.done();
                        return true;
                    }
                    state->cv.wait_for(lock, std::chrono::milliseconds(10));
                    if (state->events.empty() && !state->finished) {
                        lock.unlock();
                        bool writable = sink.is_writable();
                        lock.lock();
                        if (!writable) {
                            state->cancel.Cancel();  // the client went away: stop the GPU work now
                            return false;
                        }
                    }
                }
            },
            [this, state, remote = req.remote_addr, bytes_in = req.body.size(),
             text = config.server.log_text ? req.body : std::string(), arrival, route, ttft, status, id, active_key](bool success) {
                if (!success) state->cancel.Cancel();
                state->WaitForWorker();
                Untrack(active_key);
                admission.Leave();
                double seconds = SecondsSince(arrival);
                int shown = success ? *status : 499;  // 499: the client closed the connection (nginx's code)
                metrics.ObserveRequest("/summarize", *route, shown, seconds);
                if (*ttft > 0) metrics.ObserveTtft(*route, *ttft / 1000.0);
                AccessLog(AccessLogEntry{.id = id, .method = "POST", .path = "/summarize", .remote = remote,
                                         .route = *route, .status = shown, .bytes_in = bytes_in,
                                         .bytes_out = state->bytes_out, .seconds = seconds, .ttft_ms = *ttft,
                                         .stream = true, .text = text});
                if (!success) spdlog::info("{} client disconnected; upstream cancelled", id);
            });
    }

    void HandleReady(httplib::Response& res) {
        if (stopping) return SendJson(res, 503, {{"status", "unavailable"}, {"reason", "shutting down"}});
        // Through the breaker: an open circuit answers at once (and a half-open one probes).
        auto health = backend.Health();
        if (!health.ok()) {
            json body = {{"status", "unavailable"},
                         {"reason", health.error().message},
                         {"circuit", std::string(CircuitStateName(breaker.state()))}};
            if (config.degraded.extractive_fallback && IsUpstreamUnreachable(health.error())) {
                body["degraded"] = "summaries are extractive (route \"extractive\") until Ollama answers";
            }
            return SendJson(res, 503, body);
        }
        std::vector<std::string> missing;
        std::string fix;
        for (const auto& bucket : config.buckets) {
            bool found = std::any_of(health->models.begin(), health->models.end(), [&](const std::string& name) {
                return name == bucket.model || name == bucket.model + ":latest";
            });
            if (!found) {
                missing.push_back(bucket.model);
                if (!fix.empty()) fix += " && ";
                fix += "ollama create " + bucket.model + " -f config/Modelfile." + bucket.name;
            }
        }
        if (!missing.empty()) {
            std::string list;
            for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
            return SendJson(res, 503, {{"status", "unavailable"},
                                       {"reason", "bucket model(s) missing on the Ollama server: " + list + ". Run: " +
                                                      "ollama pull gemma3:4b && " + fix},
                                       {"missing_models", missing}});
        }
        SendJson(res, 200, {{"status", "ready"}, {"ollama", config.ollama.url}});
    }

    // Renders what the model manager gathered (config in force, footprints, /api/ps, costs).
    void HandleStatus(httplib::Response& res) {
        const ManagerStatus st = manager.Status();
        json doc;
        doc["config"] = json::parse(ConfigToJson(config));
        doc["policy"] = st.policy;
        auto loaded_json = [](const LoadedModel& m) {
            return json{{"name", m.name},
                        {"size_bytes", m.size_bytes},
                        {"size_vram_bytes", m.size_vram_bytes},
                        {"context_length", m.context_length},
                        {"expires_at", m.expires_at},
                        {"spilling_to_cpu", m.size_vram_bytes < m.size_bytes}};
        };
        json buckets = json::array();
        for (const auto& b : st.buckets) {
            json entry = {{"name", b.name},
                          {"model", b.model},
                          {"num_ctx", b.num_ctx},
                          {"keep_alive", b.keep_alive},
                          {"hot", b.name == st.hot_bucket},
                          {"estimated_vram_mb", std::round(b.estimated_vram_mb)},
                          {"fits_vram_budget", b.fits_vram_budget},
                          {"loaded", b.loaded},
                          {"measured", nullptr},
                          {"spilling_to_cpu", b.spilling},
                          {"spills_seen", b.spills_seen},
                          {"pending_calls", b.pending_calls},
                          {"learned", {{"calls", b.calls},
                                       {"prefill_tokens_per_s", std::round(b.prefill_tokens_per_s * 10) / 10},
                                       {"decode_tokens_per_s", std::round(b.decode_tokens_per_s * 10) / 10},
                                       {"mean_call_ms", std::round(b.mean_call_ms)}}}};
            if (b.measured) {
                entry["measured"] = {{"size_bytes", b.measured->size_bytes},
                                     {"size_vram_bytes", b.measured->size_vram_bytes},
                                     {"size_mb", std::round(b.measured->size_bytes / 1048576.0)},
                                     {"size_vram_mb", std::round(b.measured->size_vram_bytes / 1048576.0)},
                                     {"context_length", b.measured->context_length},
                                     {"expires_at", b.measured->expires_at},
                                     {"spilling_to_cpu", b.measured->spilling_to_cpu}};
            }
            buckets.push_back(entry);
        }
        doc["buckets"] = buckets;
        doc["vram"] = {{"budget_mb", config.vram.budget_mb},
                       {"reserve_mb", config.vram.reserve_mb},
                       {"usable_mb", config.vram.budget_mb - config.vram.reserve_mb},
                       {"kv_cache_type", config.vram.kv_cache_type},
                       {"num_parallel", config.ollama.num_parallel},
                       {"preload_hot_bucket", st.preload_hot_bucket},
                       {"hot_bucket", st.hot_bucket},
                       {"preloads", st.preloads},
                       {"last_preload", st.last_preload},
                       {"warnings", st.warnings}};
        doc["thresholds"] = {{"hierarchical_threshold_chars", config.routing.hierarchical_threshold_chars},
                             {"hierarchical_chunk_max_chars", config.routing.hierarchical_chunk_max_chars},
                             {"safety_margin_tokens", config.routing.safety_margin_tokens},
                             {"policy", config.routing.policy}};
        doc["costs"] = {{"reload_ms", std::round(st.reload_ms)},
                        {"reloads_seen", st.reloads_seen},
                        {"output_tokens", std::round(st.output_tokens)},
                        {"spill_slowdown", st.spill_slowdown},
                        {"slots", st.slots}};
        json ollama = {{"url", config.ollama.url}, {"reachable", st.ollama_reachable}};
        if (st.ollama_reachable) {
            json list = json::array();
            for (const auto& m : st.loaded) list.push_back(loaded_json(m));
            ollama["loaded"] = list;
        } else {
            ollama["error"] = st.ollama_error;
        }
        doc["ollama"] = ollama;
        doc["inflight"] = metrics.inflight();
        doc["queued"] = metrics.queued();
        SendJson(res, 200, doc);
    }

    // CORS headers for an allowed Origin; true if the origin is allowed (or none was sent).
    bool ApplyCors(const httplib::Request& req, httplib::Response& res) {
        std::string origin = req.get_header_value("Origin");
        if (origin.empty()) return true;
        for (const auto& allowed : config.server.cors_origins) {
            if (allowed == "*" || allowed == origin) {
                res.set_header("Access-Control-Allow-Origin", allowed == "*" ? "*" : origin);
                res.set_header("Vary", "Origin");
                res.set_header("Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
                return true;
            }
        }
        return false;
    }

    bool Authorized(const httplib::Request& req) {
        if (config.server.api_key.empty()) return true;
        std::string header = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        std::string token = header.rfind(prefix, 0) == 0 ? header.substr(prefix.size()) : "";
        return ConstantTimeEquals(token, config.server.api_key);
    }

    void Setup() {
        server.new_task_queue = [n = config.server.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
        server.set_tcp_nodelay(true);
        server.set_read_timeout(std::chrono::seconds(config.server.read_timeout_s));
        server.set_write_timeout(std::chrono::seconds(config.server.write_timeout_s));
        server.set_payload_max_length(static_cast<size_t>(config.server.max_body_bytes));
        server.set_keep_alive_max_count(1000);
        // An idle connection holds a worker thread: cut it as soon as a silent client would be.
        server.set_keep_alive_timeout(std::min(5, config.server.read_timeout_s));

        server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            t_request_log = RequestLogState{Clock::now(), false};
            std::string id = RequestIdFor(req);
            res.set_header("X-Request-Id", id);
            bool origin_ok = ApplyCors(req, res);
            if (req.method == "OPTIONS") {
                if (!origin_ok) {
                    SendError(res, MakeError(ErrorCode::kUnauthorized, "origin not allowed (server.cors_origins)"), id);
                    res.status = 403;
                    return httplib::Server::HandlerResponse::Handled;
                }
                res.status = 204;
                res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
                res.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id, Accept");
                res.set_header("Access-Control-Max-Age", "600");
                return httplib::Server::HandlerResponse::Handled;
            }
            bool exempt = req.path == "/healthz" || req.path == "/readyz" || req.path == "/" ||
                          req.path == "/openapi.json";
            if (!exempt && !Authorized(req)) {
                res.set_header("WWW-Authenticate", "Bearer");
                SendError(res, MakeError(ErrorCode::kUnauthorized,
                                         "missing or wrong API key: send `Authorization: Bearer <key>`"), id);
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        // Fills a JSON body for errors httplib produced itself (413, 404, 400 on a bad request line).
        server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                             httplib::Response& res) {
            if (!res.body.empty() || res.status == 204) return httplib::Server::HandlerResponse::Unhandled;
            std::string id = res.get_header_value("X-Request-Id");
            if (id.empty()) {
                id = RequestIdFor(req);
                res.set_header("X-Request-Id", id);
            }
            Error error;
            if (res.status == 413) {
                error = MakeError(ErrorCode::kPayloadTooLarge,
                                  "the body is over server.max_body_bytes = " + std::to_string(config.server.max_body_bytes) +
                                      " bytes; send a smaller text or raise SUMMARIZER_MAX_BODY_BYTES");
            } else if (res.status == 404) {
                error = MakeError(ErrorCode::kInvalidRequest, "no such endpoint: " + req.method + " " + req.path +
                                                              " (see GET /openapi.json)");
            } else if (res.status == 405) {
                error = MakeError(ErrorCode::kInvalidRequest, "method not allowed on " + req.path);
            } else {
                error = MakeError(ErrorCode::kInvalidRequest, "bad HTTP request: malformed request line, headers, chunked or multipart body");
            }
            json body = ErrorJson(error, id);
            if (res.status == 404) body["error"]["code"] = "not_found";
            res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
            return httplib::Server::HandlerResponse::Handled;
        }));
        server.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown";
            try {
                if (ep) std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            spdlog::error("unhandled exception: {}", what);
            SendError(res, MakeError(ErrorCode::kInternal, "internal error: " + what),
                      res.get_header_value("X-Request-Id"));
        });

        // Requests no handler logged (ops endpoints, the page, 401s, 404s, 413s) get their line here.
        server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
            RequestLogState state = std::exchange(t_request_log, RequestLogState{});
            if (state.logged) return;
            double seconds = state.arrival == Clock::time_point{} ? 0 : SecondsSince(state.arrival);
            if (req.path.rfind("/summarize", 0) == 0) metrics.ObserveRequest(req.path, "none", res.status, seconds);
            AccessLog(req, res, "none", seconds, 0);
        });

        auto id_of = [](const httplib::Response& res) { return res.get_header_value("X-Request-Id"); };
        server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
            SendJson(res, 200, {{"status", "ok"}});
        });
        server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { HandleReady(res); });
        server.Get("/status", [this](const httplib::Request&, httplib::Response& res) { HandleStatus(res); });
        server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            const CircuitState circuit = breaker.state();
            std::string text = metrics.Render();
            text += "# HELP summarizer_circuit_state Circuit to Ollama: 0 closed, 1 open (failing fast), 2 half-open.\n"
                    "# TYPE summarizer_circuit_state gauge\n"
                    "summarizer_circuit_state " +
                    std::to_string(circuit == CircuitState::kClosed ? 0 : circuit == CircuitState::kOpen ? 1 : 2) +
                    "\n# HELP summarizer_circuit_opens_total Times the circuit to Ollama opened.\n"
                    "# TYPE summarizer_circuit_opens_total counter\n"
                    "summarizer_circuit_opens_total " + std::to_string(breaker.opens()) + "\n";
            res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
        });
        server.Get("/openapi.json", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(OpenApiDocument()), "application/json");
        });
        server.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(WebPageHtml()), "text/html; charset=utf-8");
        });
        server.Post("/summarize", [this, id_of](const httplib::Request& req, httplib::Response& res) {
            HandleSummarize(req, res, id_of(res));
        });
        server.Post("/summarize/plan", [this, id_of](const httplib::Request& req, httplib::Response& res) {
            HandlePlan(req, res, id_of(res));
        });
    }
};

HttpServer::HttpServer(const Config& config, OllamaClient& ollama) : impl_(std::make_unique<Impl>(config, ollama)) {
    impl_->Setup();
}

HttpServer::~HttpServer() { Stop(0); }

Result<int> HttpServer::Bind() {
    const auto& cfg = impl_->config.server;
    if (cfg.port == 0) {
        int port = impl_->server.bind_to_any_port(cfg.host);
        if (port <= 0) return MakeError(ErrorCode::kInternal, "cannot bind " + cfg.host);
        impl_->port = port;
    } else {
        if (!impl_->server.bind_to_port(cfg.host, cfg.port)) {
            return MakeError(ErrorCode::kInternal, "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                                                       " (in use? set --port or SUMMARIZER_PORT)");
        }
        impl_->port = cfg.port;
    }
    impl_->server.RaiseBacklog(kListenBacklog);
    impl_->manager.Start();  // the VRAM check and the hot bucket's preload, once we serve
    return impl_->port;
}

bool HttpServer::Run() {
    impl_->run_called = true;
    if (impl_->stopping) return true;
    // After StopAccepting() httplib reports the closed listening socket as a failure: it is not.
    return impl_->server.listen_after_bind() || impl_->stopping;
}

void HttpServer::Stop(int grace_s) {
    if (!impl_) return;
    Impl& impl = *impl_;
    const bool first = !impl.stopping.exchange(true);
    // No new connections; requests arriving on open keep-alive connections get 503.
    impl.admission.BeginShutdown();
    if (first && impl.run_called) {
        // Run() may be about to listen: wait (briefly) until it does, so the shutdown reaches it.
        for (int i = 0; i < 500 && !impl.server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (impl.server.is_running()) impl.server.StopAccepting();
    }
    if (!first) {
        impl.admission.Abort();
        impl.CancelActive();
        return;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(std::max(0, grace_s));
    if (impl.admission.inflight() + impl.admission.queued() > 0) {
        spdlog::info("shutting down: waiting up to {} s for {} running and {} queued request(s)", grace_s,
                     impl.admission.inflight(), impl.admission.queued());
    }
    if (!impl.admission.WaitIdle(deadline)) {
        impl.admission.Abort();
        int cancelled = impl.CancelActive();
        spdlog::warn("shutdown grace of {} s is over: cancelled {} request(s) upstream", grace_s, cancelled);
        // Cancelled calls close their upstream sockets within milliseconds; let the handlers answer.
        impl.admission.WaitIdle(Clock::now() + std::chrono::seconds(5));
    }
}

Metrics& HttpServer::metrics() { return impl_->metrics; }

}  // namespace summarizer
