// The HTTP API over a Service, as one table of routes (src/routes.cpp). Around every route:
// the request id, CORS, the API key, 404 and 405, one exception boundary (a stray exception is a
// JSON 500), the access log line and the request metrics. Sees only the transport-independent
// types of http_types.hpp; a transport (http_server.cpp) calls Handle() on a worker thread.
// Streamed summaries (SSE) get a comment line after server.sse_heartbeat_s of silence.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "summarizer/config.hpp"
#include "summarizer/http_types.hpp"
#include "summarizer/service.hpp"
#include "summarizer/sse_heartbeat.hpp"

namespace summarizer {

struct ParsedRequest;

class ApiRoutes {
public:
    // `config` and `service` outlive the routes. `transport_metrics` (optional) renders the
    // transport's own Prometheus families, appended to GET /metrics.
    ApiRoutes(const Config& config, Service& service, std::function<std::string()> transport_metrics = {});
    // Waits for the streams' work still running on the service's stream pool (it writes the
    // access log through the routes): the transport has closed their connections, which cancels it.
    ~ApiRoutes();
    ApiRoutes(const ApiRoutes&) = delete;
    ApiRoutes& operator=(const ApiRoutes&) = delete;

    // Every request the transport read completely. May block (a summary takes minutes).
    HttpResponse Handle(HttpRequest& request);

    // A request the transport answered itself (400 malformed, 413 too large, 431 headers too
    // large): its access log line and, for /summarize paths, the request metrics. `request`
    // holds what could be read (method, path, remote address, the X-Request-Id it was answered
    // with). Does not block.
    void RecordTransportError(const HttpRequest& request, int status);

    struct Context;  // one request's id, arrival and access-log line (routes.cpp)

private:
    HttpResponse Dispatch(HttpRequest& request, Context& context);
    HttpResponse Healthz(HttpRequest& request, Context& context);
    HttpResponse Readyz(HttpRequest& request, Context& context);
    HttpResponse Status(HttpRequest& request, Context& context);
    HttpResponse Metrics(HttpRequest& request, Context& context);
    HttpResponse OpenApi(HttpRequest& request, Context& context);
    HttpResponse Page(HttpRequest& request, Context& context);
    HttpResponse Summarize(HttpRequest& request, Context& context);
    HttpResponse Plan(HttpRequest& request, Context& context);
    HttpResponse SummaryResponse(const Result<SummarizeResponse>& result, Context& context);
    HttpResponse NotAdmitted(const Error& error, Context& context);
    // What a stream runs on the stream pool; empty: Service::Summarize under the ticket.
    using StreamWork = std::function<Result<SummarizeResponse>(const SummarizeRequest&, const SummarizeEvents&,
                                                               std::chrono::steady_clock::time_point arrival)>;
    // `ticket` (may be null when `work` needs none) is held until the work ends.
    HttpResponse Stream(HttpRequest& request, Context& context, std::unique_ptr<WorkTicket> ticket,
                        SummarizeRequest summarize, StreamWork work = {});
    void Finish(HttpResponse& response, Context& context);

    // Durable jobs and the result cache (job_routes.cpp).
    HttpResponse PostJob(HttpRequest& request, Context& context);
    HttpResponse GetJob(HttpRequest& request, Context& context);
    HttpResponse DeleteJob(HttpRequest& request, Context& context);
    HttpResponse JobEvents(HttpRequest& request, Context& context);
    HttpResponse SummarizeThroughJobs(HttpRequest& request, Context& context, Jobs& jobs, ParsedRequest parsed);

    const Config& config_;
    Service& service_;
    std::function<std::string()> transport_metrics_;
    std::unique_ptr<SseHeartbeat> heartbeat_;  // fills the silences of every stream

    // Stream works posted and not yet ended (the destructor waits for 0).
    std::mutex streams_mutex_;
    std::condition_variable streams_ended_;
    int streams_running_ = 0;  // guarded by streams_mutex_
};

}  // namespace summarizer
