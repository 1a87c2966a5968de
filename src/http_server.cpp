#include "summarizer/http_server.hpp"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/api.hpp"
#include "summarizer/openapi.hpp"
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

// Bounded concurrency with a bounded queue: beyond both, callers are told to come back later.
class Admission {
public:
    Admission(int max_inflight, int max_queue, Metrics& metrics)
        : max_inflight_(max_inflight), max_queue_(max_queue), metrics_(metrics) {}

    // Blocks while queued. Returns false (do not proceed) when the queue is full.
    bool Enter() {
        std::unique_lock lock(mutex_);
        if (inflight_ >= max_inflight_ && queued_ >= max_queue_) return false;
        ++queued_;
        metrics_.AddQueued(1);
        cv_.wait(lock, [&] { return inflight_ < max_inflight_; });
        --queued_;
        metrics_.AddQueued(-1);
        ++inflight_;
        metrics_.AddInflight(1);
        return true;
    }
    void Leave(double seconds) {
        {
            std::lock_guard lock(mutex_);
            --inflight_;
            metrics_.AddInflight(-1);
            mean_seconds_ = mean_seconds_ == 0 ? seconds : 0.8 * mean_seconds_ + 0.2 * seconds;
        }
        cv_.notify_one();
    }
    // Whole seconds until a queued request would likely start, from measured durations.
    int RetryAfterSeconds() const {
        std::lock_guard lock(mutex_);
        double per_slot = mean_seconds_ > 0 ? mean_seconds_ : 5.0;
        double wait = per_slot * (1.0 + static_cast<double>(queued_) / std::max(1, max_inflight_));
        return std::clamp(static_cast<int>(std::ceil(wait)), 1, 3600);
    }

private:
    const int max_inflight_;
    const int max_queue_;
    Metrics& metrics_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    int inflight_ = 0;
    int queued_ = 0;
    double mean_seconds_ = 0;
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
    LlmBackend& backend;
    Metrics metrics;
    Summarizer summarizer;
    Admission admission;
    httplib::Server server;
    int port = 0;
    WorkerPool stream_workers;  // last: its jobs use the members above

    Impl(const Config& c, LlmBackend& b)
        : config(c),
          backend(b),
          summarizer(c, b, MakeObserver()),
          admission(c.MaxInflight(), c.server.max_queue, metrics),
          stream_workers(c.MaxInflight()) {}

    SummarizerObserver MakeObserver() {
        SummarizerObserver o;
        o.on_upstream_call = [this](const GenerateRequest& g, const Result<GenerateResult>& r, double ms) {
            std::string outcome = "ok";
            if (!r.ok()) {
                switch (r.error().code) {
                    case ErrorCode::kUpstreamTimeout: outcome = "timeout"; break;
                    case ErrorCode::kUpstreamUnavailable: outcome = "unavailable"; break;
                    case ErrorCode::kCancelled: outcome = "cancelled"; break;
                    case ErrorCode::kContextOverflow: outcome = "overflow"; break;
                    default: outcome = "error";
                }
            }
            metrics.ObserveUpstream(outcome, ms / 1000.0, r.ok() ? r->prompt_eval_count : 0,
                                    r.ok() ? r->eval_count : 0);
            // A warm model reports a load_duration of milliseconds; loading gemma3:4b takes seconds.
            constexpr int64_t kColdLoadNs = 500'000'000;
            if (r.ok() && r->load_duration_ns >= kColdLoadNs) metrics.ObserveLoad(g.model, r->load_duration_ns / 1e9);
        };
        o.on_overflow = [this] { metrics.CountOverflow(); };
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
        Finish(req, res, std::string(RouteName(plan->route)), arrival, 0);
    }

    void HandleSummarize(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        const auto arrival = Clock::now();
        auto parsed = ParseSummarizeRequest(InputOf(req), config);
        if (!parsed.ok()) {
            SendError(res, parsed.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        parsed->request.request_id = id;
        if (!admission.Enter()) {
            res.set_header("Retry-After", std::to_string(admission.RetryAfterSeconds()));
            SendError(res, MakeError(ErrorCode::kOverloaded,
                                     "the request queue is full (server.max_queue = " +
                                         std::to_string(config.server.max_queue) + "); retry after the Retry-After delay"),
                      id);
            return Finish(req, res, "none", arrival, 0);
        }
        if (parsed->stream) return StartStream(req, res, std::move(parsed->request), arrival);

        CancelToken cancel;
        auto result = summarizer.Run(parsed->request, {}, cancel, arrival);
        admission.Leave(SecondsSince(arrival));
        if (!result.ok()) {
            SendError(res, result.error(), id);
            return Finish(req, res, "none", arrival, 0);
        }
        SendJson(res, 200, ResponseJson(*result));
        metrics.ObserveTtft(std::string(RouteName(result->route)), result->timings.ttft_ms / 1000.0);
        Finish(req, res, std::string(RouteName(result->route)), arrival, result->timings.ttft_ms);
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
        stream_workers.Post([this, state, request = std::move(request), arrival, route, ttft, status] {
            SummarizeEvents events;
            events.on_plan = [&](const Plan& plan) {
                state->Push(FormatSseEvent("meta", {{"request_id", request.request_id},
                                                    {"route", std::string(RouteName(plan.route))},
                                                    {"model", plan.model},
                                                    {"chunks", plan.route == Route::kMapReduce ? plan.chunks.size() : 1}}));
            };
            events.on_progress = [&](std::string_view phase, int done, int total) {
                state->Push(FormatSseEvent("progress", {{"phase", phase}, {"done", done}, {"total", total}}));
            };
            events.on_delta = [&](std::string_view piece) {
                state->Push(FormatSseEvent("delta", {{"text", piece}}));
            };
            auto result = summarizer.Run(request, events, state->cancel, arrival);
            if (result.ok()) {
                *route = std::string(RouteName(result->route));
                *ttft = result->timings.ttft_ms;
                state->Push(FormatSseEvent("done", ResponseJson(*result)));
            } else {
                *status = HttpStatusFor(result.error().code);
                state->Push(FormatSseEvent("error", ErrorJson(result.error(), request.request_id)));
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
             text = config.server.log_text ? req.body : std::string(), arrival, route, ttft, status, id](bool success) {
                if (!success) state->cancel.Cancel();
                state->WaitForWorker();
                admission.Leave(SecondsSince(arrival));
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
        auto models = backend.ListModels();
        if (!models.ok()) {
            return SendJson(res, 503, {{"status", "unavailable"}, {"reason", models.error().message}});
        }
        std::vector<std::string> missing;
        std::string fix;
        for (const auto& bucket : config.buckets) {
            bool found = std::any_of(models->begin(), models->end(), [&](const std::string& name) {
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

    void HandleStatus(httplib::Response& res) {
        json doc;
        doc["config"] = json::parse(ConfigToJson(config));
        auto loaded = backend.ListLoaded();
        json buckets = json::array();
        const double usable = config.vram.budget_mb - config.vram.reserve_mb;
        for (const auto& b : config.buckets) {
            double estimate = EstimateBucketVramMb(config, b);
            json entry = {{"name", b.name},
                          {"model", b.model},
                          {"num_ctx", b.num_ctx},
                          {"keep_alive", b.keep_alive},
                          {"estimated_vram_mb", std::round(estimate)},
                          {"fits_vram_budget", estimate <= usable},
                          {"loaded", false}};
            if (loaded.ok()) {
                for (const auto& m : *loaded) {
                    if (m.name == b.model || m.name == b.model + ":latest") {
                        entry["loaded"] = true;
                        entry["measured"] = {{"size_bytes", m.size_bytes},
                                             {"size_vram_bytes", m.size_vram_bytes},
                                             {"context_length", m.context_length},
                                             {"expires_at", m.expires_at},
                                             {"spilling_to_cpu", m.size_vram_bytes < m.size_bytes}};
                    }
                }
            }
            buckets.push_back(entry);
        }
        doc["buckets"] = buckets;
        doc["vram"] = {{"budget_mb", config.vram.budget_mb},
                       {"reserve_mb", config.vram.reserve_mb},
                       {"kv_cache_type", config.vram.kv_cache_type},
                       {"num_parallel", config.ollama.num_parallel}};
        doc["thresholds"] = {{"hierarchical_threshold_chars", config.routing.hierarchical_threshold_chars},
                             {"hierarchical_chunk_max_chars", config.routing.hierarchical_chunk_max_chars},
                             {"safety_margin_tokens", config.routing.safety_margin_tokens},
                             {"policy", config.routing.policy}};
        json ollama = {{"url", config.ollama.url}, {"reachable", loaded.ok()}};
        if (loaded.ok()) {
            json list = json::array();
            for (const auto& m : *loaded) {
                list.push_back({{"name", m.name},
                                {"size_bytes", m.size_bytes},
                                {"size_vram_bytes", m.size_vram_bytes},
                                {"context_length", m.context_length},
                                {"expires_at", m.expires_at}});
            }
            ollama["loaded"] = list;
        } else {
            ollama["error"] = loaded.error().message;
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
                error = MakeError(ErrorCode::kInvalidRequest, "bad HTTP request");
            }
            json body = ErrorJson(error, id);
            if (res.status == 404) body["error"]["code"] = "not_found";
            res.set_content(body.dump(), "application/json");
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
            res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
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

HttpServer::HttpServer(const Config& config, LlmBackend& backend) : impl_(std::make_unique<Impl>(config, backend)) {
    impl_->Setup();
}

HttpServer::~HttpServer() { Stop(); }

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
    return impl_->port;
}

bool HttpServer::Run() { return impl_->server.listen_after_bind(); }

void HttpServer::Stop(int) {
    if (impl_ && impl_->server.is_running()) impl_->server.stop();
}

Metrics& HttpServer::metrics() { return impl_->metrics; }

}  // namespace summarizer
