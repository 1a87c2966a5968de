#include "summarizer/routes.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/api.hpp"
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

std::string Dump(const json& body) { return body.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse JsonResponse(int status, const json& body) {
    HttpResponse res;
    res.status = status;
    res.body = Dump(body);
    return res;
}

HttpResponse ErrorResponse(const Error& error, std::string_view request_id) {
    HttpResponse res = JsonResponse(HttpStatusFor(error.code), ErrorJson(error, request_id));
    if (error.retry_after_s > 0) res.SetHeader("Retry-After", std::to_string(error.retry_after_s));
    return res;
}

HttpInput InputOf(const HttpRequest& req) {
    HttpInput in;
    in.content_type = req.Header("Content-Type");
    in.accept = req.Header("Accept");
    in.body = req.body;
    in.query = req.query;
    return in;
}

// What one access-log line says. `text` is logged only with server.log_text (a debug option).
struct LogLine {
    std::string id, method, path, remote, route = "none", text;
    int status = 0;
    size_t bytes_in = 0, bytes_out = 0;
    double seconds = 0, ttft_ms = 0;
    bool stream = false;
};

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

struct ApiRoutes::Context {
    std::string id;
    Clock::time_point arrival;
    LogLine line;  // what the access log line will say; route and ttft filled by the route

    Context(const HttpRequest& req, const Config& config) : id(RequestIdFor(req)), arrival(Clock::now()) {
        line.id = id;
        line.method = req.method;
        line.path = req.path;
        line.remote = req.remote_addr;
        line.bytes_in = req.body.size();
        if (config.server.log_text && req.path.rfind("/summarize", 0) == 0) line.text = req.body;
    }
};

namespace {

struct RouteEntry {
    std::string_view method;
    std::string_view path;
    Access access;
    HttpResponse (ApiRoutes::*handler)(HttpRequest&, ApiRoutes::Context&);
};

}  // namespace

ApiRoutes::ApiRoutes(const Config& config, Service& service) : config_(config), service_(service) {}

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
        res.SetHeader("Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    }
    if (!res.on_complete) Finish(res, context);
    return res;
}

HttpResponse ApiRoutes::Dispatch(HttpRequest& request, Context& context) {
    static constexpr std::array<RouteEntry, 8> kRoutes{{
        {"GET", "/healthz", Access::kOpen, &ApiRoutes::Healthz},
        {"GET", "/readyz", Access::kOpen, &ApiRoutes::Readyz},
        {"GET", "/status", Access::kKey, &ApiRoutes::Status},
        {"GET", "/metrics", Access::kKey, &ApiRoutes::Metrics},
        {"GET", "/openapi.json", Access::kOpen, &ApiRoutes::OpenApi},
        {"GET", "/", Access::kOpen, &ApiRoutes::Page},
        {"POST", "/summarize", Access::kKey, &ApiRoutes::Summarize},
        {"POST", "/summarize/plan", Access::kKey, &ApiRoutes::Plan},
    }};
    if (request.method == "OPTIONS") {
        const std::string origin = request.Header("Origin");
        if (!origin.empty() && !AllowedOrigin(config_, origin)) return ErrorResponse(MakeError(ErrorCode::kForbidden, "origin not allowed (server.cors_origins)"), context.id);
        HttpResponse res;
        res.status = 204;
        res.content_type.clear();
        res.SetHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.SetHeader("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id, Accept");
        res.SetHeader("Access-Control-Max-Age", "600");
        return res;
    }
    std::string allowed;
    for (const auto& route : kRoutes) {
        if (route.path != request.path) continue;
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

HttpResponse ApiRoutes::TransportError(HttpRequest& request, int status) {
    Context context(request, config_);
    Error error;
    if (status == 413) {
        error = MakeError(ErrorCode::kPayloadTooLarge,
                          "the body is over server.max_body_bytes = " + std::to_string(config_.server.max_body_bytes) +
                              " bytes; send a smaller text or raise SUMMARIZER_MAX_BODY_BYTES");
    } else if (status == 408) {
        error = MakeError(ErrorCode::kInvalidRequest, "the request was not received in time; send it faster");
    } else {
        error = MakeError(ErrorCode::kInvalidRequest,
                          "bad HTTP request: malformed request line, headers, chunked or multipart body");
    }
    HttpResponse res = JsonResponse(status, ErrorJson(error, context.id));
    res.SetHeader("X-Request-Id", context.id);
    res.close_connection = true;
    Finish(res, context);
    return res;
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
    return JsonResponse(200, StatusJson(service_.Status(), config_));
}

HttpResponse ApiRoutes::Metrics(HttpRequest&, Context&) {
    HttpResponse res;
    res.body = service_.RenderMetrics();
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
    auto ticket = service_.Admit(request.client_gone);
    if (!ticket.ok()) {
        if (ticket.error().code == ErrorCode::kCancelled) {
            HttpResponse gone;
            gone.status = 499;  // for the log and metrics: nobody reads the answer
            gone.close_connection = true;
            return gone;
        }
        HttpResponse res = ErrorResponse(ticket.error(), context.id);
        res.close_connection = service_.stopping();
        return res;
    }
    if (parsed->stream) return Stream(request, context, std::move(ticket.value()), std::move(parsed->request));
    auto result = service_.Summarize(*ticket, parsed->request, {}, context.arrival);
    if (!result.ok()) {
        HttpResponse res = ErrorResponse(result.error(), context.id);
        res.close_connection = service_.stopping();
        return res;
    }
    context.line.route = result->route;
    context.line.ttft_ms = result->timings.ttft_ms;
    service_.metrics().ObserveTtft(result->route, result->timings.ttft_ms / 1000.0);
    return JsonResponse(200, ResponseJson(*result));
}

}  // namespace summarizer

namespace summarizer {

// A streamed summary: the work runs on the service's stream pool and pushes SSE events into the
// response's EventStream; the connection writes them as they come. The admission slot is held
// until the work ends; the log line is written when both the work and the connection are done.
HttpResponse ApiRoutes::Stream(HttpRequest& request, Context& context, WorkTicket ticket, SummarizeRequest summarize) {
    auto stream = std::make_shared<EventStream>();
    auto log = std::make_shared<StreamLog>();
    log->line = context.line;
    log->line.stream = true;
    log->line.status = 200;
    auto held = std::make_shared<WorkTicket>(std::move(ticket));
    const auto arrival = context.arrival;
    auto finish_log = [this, log, arrival] {
        log->line.seconds = std::chrono::duration<double>(Clock::now() - arrival).count();
        RecordRequest(config_, service_, log->line);
        if (log->line.ttft_ms > 0) service_.metrics().ObserveTtft(log->line.route, log->line.ttft_ms / 1000.0);
    };
    service_.stream_pool().Post([this, stream, log, held, summarize = std::move(summarize), arrival, finish_log]() mutable {
        SummarizeEvents events;
        events.on_plan = [&](const summarizer::Plan& plan) {
            {
                std::lock_guard lock(log->mutex);
                log->line.route = RouteName(plan);
            }
            stream->Push(FormatSseEvent("meta", MetaEventJson(plan, summarize.request_id)));
        };
        events.on_progress = [&](std::string_view phase, int done, int total) {
            stream->Push(FormatSseEvent("progress", {{"phase", phase}, {"done", done}, {"total", total}}));
        };
        events.on_delta = [&](std::string_view piece) { stream->Push(FormatSseEvent("delta", {{"text", piece}})); };
        Result<SummarizeResponse> result = MakeError(ErrorCode::kInternal, "no result");
        if (auto failure = CatchAll("stream " + summarize.request_id, [&]() -> std::optional<Error> {
                result = service_.Summarize(*held, summarize, events, arrival);
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
