#include "summarizer/routes.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "route_helpers.hpp"
#include "summarizer/api.hpp"
#include "summarizer/jobs.hpp"
#include "summarizer/openapi.hpp"
#include "summarizer/task_pool.hpp"
#include "summarizer/web_page.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A client's X-Request-Id is echoed if it is short and printable; otherwise we make one.
std::string RequestIdFor(const HttpRequest& req) {
    std::string id = req.Header("X-Request-Id");
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

using route_helpers::Dump;
using route_helpers::ErrorResponse;
using route_helpers::InputOf;
using route_helpers::JsonResponse;
using route_helpers::LogLine;

void WriteAccessLog(const Config& config, const LogLine& e) {
    const bool probe = e.path == "/healthz" || e.path == "/readyz" || e.path == "/metrics";
    const auto level = probe && e.status < 400 ? spdlog::level::debug : spdlog::level::info;
    if (!spdlog::should_log(level)) return;
    const bool with_text = config.server.log_text && !e.text.empty();
    if (config.server.log_json) {
        json line = {{"request_id", e.id},     {"method", e.method},       {"path", e.path},
                     {"status", e.status},     {"route", e.route},         {"stream", e.stream},
                     {"bytes_in", e.bytes_in}, {"bytes_out", e.bytes_out}, {"total_ms", std::round(e.seconds * 1e4) / 10},
                     {"ttft_ms", e.ttft_ms},   {"remote", e.remote}};
        if (with_text) line["text"] = e.text;
        spdlog::log(level, "{}", Dump(line));
    } else {
        spdlog::log(level, "{} {} {} {}{} status={} route={} in={}B out={}B total_ms={:.1f} ttft_ms={:.1f}{}{}", e.id,
                    e.remote, e.method, e.path, e.stream ? " stream" : "", e.status, e.route, e.bytes_in, e.bytes_out,
                    e.seconds * 1000, e.ttft_ms, with_text ? " text=" : "", with_text ? e.text : "");
    }
}

// The request metrics (for /summarize and /summarize/plan) and the access log line.
void RecordRequest(const Config& config, Service& service, const LogLine& line) {
    // Only the API's own paths become label values: a client must not grow the metric at will.
    if (line.path == "/summarize" || line.path == "/summarize/plan") {
        service.metrics().ObserveRequest(line.path, line.route, line.status, line.seconds);
    }
    WriteAccessLog(config, line);
}

// A stream's access log line is written once both its producer and its connection are done.
struct StreamLog {
    std::mutex mutex;
    LogLine line;
    int parts_done = 0;
    // Returns true for the second of the two parts: it writes the line.
    bool Done() {
        std::lock_guard lock(mutex);
        return ++parts_done == 2;
    }
};

enum class Access { kOpen, kKey };

// The Access-Control-Allow-Origin value for a browser origin in server.cors_origins; nullopt when
// the origin is not allowed (or the request sent none).
std::optional<std::string> AllowedOrigin(const Config& config, const std::string& origin) {
    if (origin.empty()) return std::nullopt;
    for (const auto& allowed : config.server.cors_origins) {
        if (allowed == "*") return std::string("*");
        if (allowed == origin) return origin;
    }
    return std::nullopt;
}  // kOpen: no API key needed (health probes, the page, the contract)

}  // namespace

ApiRoutes::Context::Context(const HttpRequest& req, const Config& config)
    : id(RequestIdFor(req)), arrival(Clock::now()) {
    line.id = id;
    line.method = req.method;
    line.path = req.path;
    line.remote = req.remote_addr;
    line.bytes_in = req.body.size();
    if (config.server.log_text && req.path.rfind("/summarize", 0) == 0) line.text = req.body;
}

namespace {

struct RouteEntry {
    std::string_view method;
    std::string_view path;  // "{id}" matches one non-empty path segment
    Access access;
    HttpResponse (ApiRoutes::*handler)(HttpRequest&, ApiRoutes::Context&);
};

// Whether `path` matches `pattern`; the segment "{id}" stands for any one segment, which
// goes to `id`.
bool MatchPath(std::string_view pattern, std::string_view path, std::string& id) {
    const size_t at = pattern.find("{id}");
    if (at == std::string_view::npos) return pattern == path;
    const std::string_view before = pattern.substr(0, at), after = pattern.substr(at + 4);
    if (path.size() <= before.size() + after.size() || path.substr(0, before.size()) != before ||
        path.substr(path.size() - after.size()) != after) {
        return false;
    }
    const std::string_view segment = path.substr(before.size(), path.size() - before.size() - after.size());
    if (segment.find('/') != std::string_view::npos) return false;
    id = std::string(segment);
    return true;
}

}  // namespace

ApiRoutes::ApiRoutes(const Config& config, Service& service, std::function<std::string()> transport_metrics)
    : config_(config),
      service_(service),
      transport_metrics_(std::move(transport_metrics)),
      heartbeat_(std::make_unique<SseHeartbeat>(std::chrono::seconds(config.server.sse_heartbeat_s))) {}

ApiRoutes::~ApiRoutes() {
    std::unique_lock lock(streams_mutex_);
    streams_ended_.wait(lock, [this] { return streams_running_ == 0; });
}

HttpResponse ApiRoutes::Handle(HttpRequest& request) {
    Context context(request, config_);
    HttpResponse res;
    auto failure = CatchAll(request.method + " " + request.path, [&]() -> std::optional<Error> {
        res = Dispatch(request, context);
        return std::nullopt;
    });
    if (failure) res = ErrorResponse(*failure, context.id);
    res.SetHeader("X-Request-Id", context.id);
    if (auto allow = AllowedOrigin(config_, request.Header("Origin"))) {
        res.SetHeader("Access-Control-Allow-Origin", *allow);
        res.SetHeader("Vary", "Origin");
        res.SetHeader("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, Location");
    }
    if (!res.on_complete) Finish(res, context);
    return res;
}

HttpResponse ApiRoutes::Dispatch(HttpRequest& request, Context& context) {
    static constexpr std::array<RouteEntry, 12> kRoutes{{
        {"GET", "/healthz", Access::kOpen, &ApiRoutes::Healthz},
        {"GET", "/readyz", Access::kOpen, &ApiRoutes::Readyz},
        {"GET", "/status", Access::kKey, &ApiRoutes::Status},
        {"GET", "/metrics", Access::kKey, &ApiRoutes::Metrics},
        {"GET", "/openapi.json", Access::kOpen, &ApiRoutes::OpenApi},
        {"GET", "/", Access::kOpen, &ApiRoutes::Page},
        {"POST", "/summarize", Access::kKey, &ApiRoutes::Summarize},
        {"POST", "/summarize/plan", Access::kKey, &ApiRoutes::Plan},
        {"POST", "/jobs", Access::kKey, &ApiRoutes::PostJob},  // job_routes.cpp
        {"GET", "/jobs/{id}", Access::kKey, &ApiRoutes::GetJob},
        {"DELETE", "/jobs/{id}", Access::kKey, &ApiRoutes::DeleteJob},
        {"GET", "/jobs/{id}/events", Access::kKey, &ApiRoutes::JobEvents},
    }};
    if (request.method == "OPTIONS") {
        const std::string origin = request.Header("Origin");
        if (!origin.empty() && !AllowedOrigin(config_, origin)) return ErrorResponse(MakeError(ErrorCode::kForbidden, "origin not allowed (server.cors_origins)"), context.id);
        HttpResponse res;
        res.status = 204;
        res.content_type.clear();
        res.SetHeader("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        res.SetHeader(
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, X-Request-Id, Accept, Idempotency-Key, Cache-Control, Last-Event-ID");
        res.SetHeader("Access-Control-Max-Age", "600");
        return res;
    }
    std::string allowed;
    for (const auto& route : kRoutes) {
        if (!MatchPath(route.path, request.path, context.path_id)) continue;
        const bool head = request.method == "HEAD" && route.method == "GET";
        if (route.method != request.method && !head) {
            allowed += (allowed.empty() ? "" : ", ") + std::string(route.method);
            continue;
        }
        if (route.access == Access::kKey && !config_.server.api_key.empty()) {
            const std::string header = request.Header("Authorization");
            const std::string token = header.rfind("Bearer ", 0) == 0 ? header.substr(7) : "";
            if (!ConstantTimeEquals(token, config_.server.api_key)) {
                HttpResponse res = ErrorResponse(
                    MakeError(ErrorCode::kUnauthorized, "missing or wrong API key: send `Authorization: Bearer <key>`"),
                    context.id);
                res.SetHeader("WWW-Authenticate", "Bearer");
                return res;
            }
        }
        return (this->*route.handler)(request, context);
    }
    if (!allowed.empty()) {
        HttpResponse res = ErrorResponse(MakeError(ErrorCode::kMethodNotAllowed, request.method + " is not allowed on " +
                                                                                     request.path + "; use " + allowed),
                                         context.id);
        res.SetHeader("Allow", allowed);
        return res;
    }
    return ErrorResponse(MakeError(ErrorCode::kNotFound,
                                   "no such endpoint: " + request.method + " " + request.path + " (see GET /openapi.json)"),
                         context.id);
}

void ApiRoutes::RecordTransportError(const HttpRequest& request, int status) {
    Context context(request, config_);
    context.line.status = status;
    context.line.seconds = 0;
    RecordRequest(config_, service_, context.line);
}

// The access log line and the request metrics, once the transport has written the response.
void ApiRoutes::Finish(HttpResponse& response, Context& context) {
    context.line.status = response.status;
    response.on_complete = [this, line = std::move(context.line), arrival = context.arrival](
                               const ResponseOutcome& outcome) mutable {
        line.bytes_out = outcome.bytes_out;
        line.seconds = std::chrono::duration<double>(Clock::now() - arrival).count();
        RecordRequest(config_, service_, line);
    };
}

HttpResponse ApiRoutes::Healthz(HttpRequest&, Context&) { return JsonResponse(200, {{"status", "ok"}}); }

HttpResponse ApiRoutes::Readyz(HttpRequest&, Context&) {
    const Readiness r = service_.Ready();
    return JsonResponse(r.ready ? 200 : 503, ReadyJson(r));
}

HttpResponse ApiRoutes::Status(HttpRequest&, Context&) {
    json doc = StatusJson(service_.Status(), config_);
    doc["jobs"] = service_.jobs() ? service_.jobs()->StatusJson() : json{{"enabled", false}};
    return JsonResponse(200, doc);
}

HttpResponse ApiRoutes::Metrics(HttpRequest&, Context&) {
    HttpResponse res;
    res.body = service_.RenderMetrics();
    if (Jobs* jobs = service_.jobs()) res.body += jobs->RenderMetrics();
    if (transport_metrics_) res.body += transport_metrics_();
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
}

HttpResponse ApiRoutes::OpenApi(HttpRequest&, Context&) {
    HttpResponse res;
    res.body = std::string(OpenApiDocument());
    return res;
}

HttpResponse ApiRoutes::Page(HttpRequest&, Context&) {
    HttpResponse res;
    res.body = std::string(WebPageHtml());
    res.content_type = "text/html; charset=utf-8";
    return res;
}

HttpResponse ApiRoutes::Plan(HttpRequest& request, Context& context) {
    auto parsed = ParseSummarizeRequest(InputOf(request), config_);
    if (!parsed.ok()) return ErrorResponse(parsed.error(), context.id);
    auto plan = service_.MakePlan(parsed->request);
    if (!plan.ok()) return ErrorResponse(plan.error(), context.id);
    context.line.route = RouteName(*plan);
    return JsonResponse(200, PlanJson(*plan));
}

HttpResponse ApiRoutes::Summarize(HttpRequest& request, Context& context) {
    auto parsed = ParseSummarizeRequest(InputOf(request), config_);
    if (!parsed.ok()) return ErrorResponse(parsed.error(), context.id);
    parsed->request.request_id = context.id;
    if (Jobs* jobs = service_.jobs(); jobs && jobs->cache_enabled()) {
        return SummarizeThroughJobs(request, context, *jobs, std::move(parsed.value()));  // job_routes.cpp
    }
    auto ticket = service_.Admit(request.client_gone, parsed->request);
    if (!ticket.ok()) return NotAdmitted(ticket.error(), context);
    if (parsed->stream) {
        return Stream(request, context, std::make_unique<WorkTicket>(std::move(ticket.value())),
                      std::move(parsed->request));
    }
    return SummaryResponse(service_.Summarize(*ticket, parsed->request, {}, context.arrival), context);
}

HttpResponse ApiRoutes::NotAdmitted(const Error& error, Context& context) {
    if (error.code == ErrorCode::kCancelled) {
        HttpResponse gone;
        gone.status = 499;  // for the log and metrics: nobody reads the answer
        gone.close_connection = true;
        return gone;
    }
    HttpResponse res = ErrorResponse(error, context.id);
    res.close_connection = service_.stopping();
    return res;
}

HttpResponse ApiRoutes::SummaryResponse(const Result<SummarizeResponse>& result, Context& context) {
    if (!result.ok()) {
        HttpResponse res = ErrorResponse(result.error(), context.id);
        res.close_connection = service_.stopping();
        return res;
    }
    context.line.route = result->route;
    context.line.ttft_ms = result->timings.ttft_ms;
    service_.metrics().ObserveTtft(result->route, result->timings.ttft_ms / 1000.0);
    HttpResponse res;
    res.body = ResponseJsonText(*result);
    return res;
}

}  // namespace summarizer

namespace summarizer {

// A streamed summary: the work runs on the service's stream pool and pushes SSE events into the
// response's EventStream; the connection writes them as they come. The admission slot is held
// until the work ends; the log line is written when both the work and the connection are done.
HttpResponse ApiRoutes::Stream(HttpRequest& request, Context& context, std::unique_ptr<WorkTicket> ticket,
                               SummarizeRequest summarize, StreamWork work) {
    auto stream = std::make_shared<EventStream>();
    auto log = std::make_shared<StreamLog>();
    log->line = context.line;
    log->line.stream = true;
    log->line.status = 200;
    std::shared_ptr<WorkTicket> held = std::move(ticket);
    if (!work) {
        // A plain pointer: the ticket must go (leave admission) when the work ends, below.
        work = [this, ticket_ptr = held.get()](const SummarizeRequest& r, const SummarizeEvents& events,
                                               Clock::time_point arrival) {
            return service_.Summarize(*ticket_ptr, r, events, arrival);
        };
    }
    const auto arrival = context.arrival;
    auto finish_log = [this, log, arrival] {
        log->line.seconds = std::chrono::duration<double>(Clock::now() - arrival).count();
        RecordRequest(config_, service_, log->line);
        if (log->line.ttft_ms > 0) service_.metrics().ObserveTtft(log->line.route, log->line.ttft_ms / 1000.0);
    };
    {
        std::lock_guard lock(streams_mutex_);
        ++streams_running_;
    }
    service_.stream_pool().Post([this, stream, log, held, work = std::move(work), summarize = std::move(summarize),
                                 arrival, finish_log]() mutable {
        // Last out: the routes may go once no work runs (the server waits for admission, not this).
        struct Ended {
            ApiRoutes* routes;
            ~Ended() {
                std::lock_guard lock(routes->streams_mutex_);
                if (--routes->streams_running_ == 0) routes->streams_ended_.notify_all();
            }
        } ended{this};
        SummarizeEvents events;
        events.on_plan = [&](const summarizer::Plan& plan) {
            {
                std::lock_guard lock(log->mutex);
                log->line.route = RouteName(plan);
            }
            stream->Push(FormatSseEvent("meta", MetaEventJson(plan, summarize.request_id)));
        };
        events.on_progress = [&](const ProgressUpdate& p) {
            stream->Push(FormatSseEvent("progress", {{"phase", p.phase},
                                                     {"done", p.done},
                                                     {"total", p.total},
                                                     {"level", p.level},
                                                     {"remaining_ms", p.remaining_ms}}));
        };
        events.on_delta = [&](std::string_view piece) { stream->Push(FormatSseEvent("delta", {{"text", piece}})); };
        Result<SummarizeResponse> result = MakeError(ErrorCode::kInternal, "no result");
        if (auto failure = CatchAll("stream " + summarize.request_id, [&]() -> std::optional<Error> {
                result = work(summarize, events, arrival);
                return std::nullopt;
            })) {
            result = *failure;
        }
        {
            std::lock_guard lock(log->mutex);
            if (result.ok()) {
                log->line.route = result->route;
                log->line.ttft_ms = result->timings.ttft_ms;
            } else {
                log->line.status = HttpStatusFor(result.error().code);
            }
        }
        stream->Push(result.ok() ? FormatSseEvent("done", ResponseJson(*result))
                                 : FormatSseEvent("error", ErrorJson(result.error(), summarize.request_id)));
        stream->Finish();
        held.reset();  // leaves admission: the work is over
        if (log->Done()) finish_log();
    });
    heartbeat_->Watch(stream);
    HttpResponse res;
    res.status = 200;
    res.content_type = "text/event-stream";
    res.stream = stream;
    res.SetHeader("Cache-Control", "no-cache");
    res.SetHeader("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
    res.on_complete = [log, finish_log, id = context.id, cancel = request.client_gone](const ResponseOutcome& outcome) {
        {
            std::lock_guard lock(log->mutex);
            log->line.bytes_out = outcome.bytes_out;
            if (!outcome.completed) {
                log->line.status = 499;  // the client closed the connection (nginx's code)
                spdlog::info("{} client disconnected; upstream cancelled", id);
            }
        }
        if (!outcome.completed) cancel.Cancel();
        if (log->Done()) finish_log();
    };
    return res;
}

}  // namespace summarizer
