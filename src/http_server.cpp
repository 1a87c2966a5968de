#include "summarizer/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "summarizer/event_server.hpp"
#include "summarizer/routes.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

// After the service is idle (or its work cancelled), the connections still get this long to
// write the answers their requests ended with (a 503, a stream's last events).
constexpr auto kFinalWritesGrace = std::chrono::seconds(2);
// Handler threads beyond what admission can block at once: room for /healthz, /metrics, plans.
constexpr int kQuickEndpointThreads = 16;

// Handler threads: every request admission can hold at once (running or queued: a JSON summary
// blocks its thread throughout), plus room for the quick endpoints.
int HandlerThreads(const Config& config) {
    const int blocking = config.MaxInflight() + config.server.max_queue;
    if (config.server.threads <= 0) return blocking + kQuickEndpointThreads;
    if (config.server.threads < blocking + 2) {
        spdlog::warn("server.threads = {} is below server.max_inflight + server.max_queue ({}): when that many "
                     "summaries run or wait, /healthz and other quick requests wait behind them",
                     config.server.threads, blocking);
    }
    return config.server.threads;
}

EventServerOptions TransportOptions(const Config& config) {
    const ServerConfig& s = config.server;
    EventServerOptions o;
    o.host = s.host;
    o.port = s.port;
    o.io_threads = s.io_threads;
    o.worker_threads = HandlerThreads(config);
    o.header_timeout = std::chrono::seconds(s.header_timeout_s);
    o.body_timeout = std::chrono::seconds(s.body_timeout_s);
    o.body_min_rate_bytes_per_s = static_cast<size_t>(s.body_min_bytes_per_s);
    o.max_body_bytes = static_cast<size_t>(s.max_body_bytes);
    o.max_header_bytes = static_cast<size_t>(s.max_header_bytes);
    o.keep_alive_timeout = std::chrono::seconds(s.keep_alive_timeout_s);
    o.write_timeout = std::chrono::seconds(s.write_timeout_s);
    o.max_connections = static_cast<size_t>(s.max_connections);
    o.max_connections_per_address = static_cast<size_t>(s.max_connections_per_address);
    // Soft open-file limit raised to the hard one (as Go's runtime does): Debian's soft 1,024
    // would cap the connections far below max_connections. Logged when it still does.
    o.raise_open_file_limit = true;
    return o;
}

// The transport's counters as Prometheus families.
std::string RenderTransportMetrics(const EventServerStats& s) {
    std::string out;
    auto family = [&](const char* name, const char* type, const char* help) {
        out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ");
        out.append(type).append("\n");
    };
    auto sample = [&](const char* name, const std::string& labels, uint64_t value) {
        out.append(name).append(labels).append(" ").append(std::to_string(value)).append("\n");
    };
    family("summarizer_http_connections_open", "gauge", "Client connections open now.");
    sample("summarizer_http_connections_open", "", s.open_connections);
    family("summarizer_http_connections_accepted_total", "counter", "Client connections accepted.");
    sample("summarizer_http_connections_accepted_total", "", s.accepted);
    family("summarizer_http_connections_closed_total", "counter",
           "Client connections the server closed before their client did: refused (a cap was reached and every "
           "connection concerned was busy), evicted (closed to make room at a cap: the oldest not yet answered, "
           "then the longest idle), or a deadline (header, body, keep-alive idle, write).");
    const std::pair<const char*, uint64_t> closed[] = {
        {"refused", s.refused},           {"evicted", s.evicted},         {"header_timeout", s.header_timeouts},
        {"body_timeout", s.body_timeouts}, {"idle_timeout", s.idle_timeouts}, {"write_timeout", s.write_timeouts}};
    for (const auto& [reason, value] : closed) {
        sample("summarizer_http_connections_closed_total", std::string("{reason=\"") + reason + "\"}", value);
    }
    family("summarizer_http_requests_total", "counter", "Complete requests handed to the routes.");
    sample("summarizer_http_requests_total", "", s.requests);
    family("summarizer_http_requests_rejected_total", "counter",
           "Requests the transport answered itself: 400 (malformed), 413 (body too large), 431 (headers too large).");
    sample("summarizer_http_requests_rejected_total", "", s.rejected);
    family("summarizer_http_clients_gone_total", "counter",
           "Requests whose client went away before the response was complete; their work was cancelled.");
    sample("summarizer_http_clients_gone_total", "", s.clients_gone);
    return out;
}

}  // namespace

struct HttpServer::Impl {
    Impl(const Config& c, Service& s)
        : config(c),
          service(s),
          routes(c, s, [this] { return RenderTransportMetrics(events.stats()); }),
          events(WithRejectionLog(TransportOptions(c)), [this](HttpRequest& request) { return routes.Handle(request); }) {}

    EventServerOptions WithRejectionLog(EventServerOptions options) {
        options.on_rejected = [this](const RejectedRequest& rejected) {
            HttpRequest request;
            request.method = rejected.method;
            request.path = rejected.target.substr(0, rejected.target.find('?'));
            request.remote_addr = rejected.remote_addr;
            request.remote_port = rejected.remote_port;
            request.headers.emplace("X-Request-Id", rejected.request_id);
            routes.RecordTransportError(request, rejected.status);
        };
        return options;
    }

    const Config& config;
    Service& service;
    ApiRoutes routes;
    EventServer events;  // after routes: its threads call them

    std::mutex run_mutex;  // Run()'s start against Stop()
    bool stopping = false;  // guarded by run_mutex
};

HttpServer::HttpServer(const Config& config, Service& service) : impl_(std::make_unique<Impl>(config, service)) {}

HttpServer::~HttpServer() { Stop(0); }

Result<int> HttpServer::Bind() {
    auto port = impl_->events.Bind();
    if (!port.ok()) {
        return MakeError(ErrorCode::kInternal, port.error().message + " (in use? set --port or SUMMARIZER_PORT)");
    }
    impl_->service.Start();  // the VRAM check and the hot bucket's preload, once we serve
    return port;
}

bool HttpServer::Run() {
    {
        std::lock_guard lock(impl_->run_mutex);
        if (impl_->stopping) return true;
        if (auto started = impl_->events.Start(); !started.ok()) {
            spdlog::error("cannot serve: {}", started.error().message);
            return false;
        }
    }
    impl_->events.Wait();
    return true;
}

void HttpServer::Stop(int grace_s) {
    if (!impl_) return;
    Impl& impl = *impl_;
    bool first = false;
    {
        std::lock_guard lock(impl.run_mutex);
        first = !impl.stopping;
        impl.stopping = true;
    }
    // New requests (on connections still open) are refused with 503.
    impl.service.BeginShutdown();
    if (!first) {
        impl.service.CancelAll();
        return;
    }
    // No new connections; idle ones are closed; requests under way go on.
    impl.events.StopAccepting();
    const auto deadline = Clock::now() + std::chrono::seconds(std::max(0, grace_s));
    if (impl.service.inflight() + impl.service.queued() > 0) {
        spdlog::info("shutting down: waiting up to {} s for {} running and {} queued request(s)", grace_s,
                     impl.service.inflight(), impl.service.queued());
    }
    if (!impl.service.WaitIdle(deadline)) {
        const int cancelled = impl.service.CancelAll();
        spdlog::warn("shutdown grace of {} s is over: cancelled {} request(s) upstream", grace_s, cancelled);
        // Cancelled calls close their upstream sockets within milliseconds; let the handlers answer.
        impl.service.WaitIdle(Clock::now() + std::chrono::seconds(5));
    }
    // What is left is writing: every request has its answer. Then every connection is closed.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    impl.events.Stop(std::max<std::chrono::milliseconds>(left, kFinalWritesGrace));
}

Metrics& HttpServer::metrics() { return impl_->service.metrics(); }

}  // namespace summarizer
