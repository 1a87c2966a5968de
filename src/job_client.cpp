#include "summarizer/job_client.hpp"

#include <httplib.h>

#include <thread>

#include "summarizer/sse.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;

httplib::Headers HeadersFor(const JobClientOptions& options) {
    httplib::Headers headers;
    if (!options.api_key.empty()) headers.emplace("Authorization", "Bearer " + options.api_key);
    return headers;
}

std::unique_ptr<httplib::Client> ClientFor(const JobClientOptions& options) {
    auto client = std::make_unique<httplib::Client>(options.url);
    client->set_connection_timeout(options.timeout);
    client->set_read_timeout(options.timeout);
    return client;
}

// The body of a 2xx answer, or the server's error.
Result<json> Answer(const httplib::Result& res, const std::string& url) {
    if (!res) {
        return MakeError(ErrorCode::kUpstreamUnreachable,
                         "cannot reach the summarizer at " + url + " (" + httplib::to_string(res.error()) +
                             "); is `summarizer serve` running? (--url, env SUMMARIZER_URL)");
    }
    json body;
    try {
        body = json::parse(res->body);
    } catch (const json::exception&) {
        return MakeError(ErrorCode::kUpstreamError,
                         "HTTP " + std::to_string(res->status) + " with a body that is not JSON");
    }
    if (res->status >= 200 && res->status < 300) return body;
    const json error = body.value("error", json::object());
    Error e = MakeError(ErrorCode::kUpstreamError, "HTTP " + std::to_string(res->status) + " " +
                                                       error.value("code", std::string("error")) + ": " +
                                                       error.value("message", std::string("")));
    if (res->status == 404) e.code = ErrorCode::kNotFound;
    return e;
}

}  // namespace

JobClient::JobClient(JobClientOptions options) : options_(std::move(options)) {}

Result<json> JobClient::Submit(const std::string& text, const std::map<std::string, std::string>& options,
                               const std::string& idempotency_key, bool no_cache) {
    auto client = ClientFor(options_);
    httplib::Headers headers = HeadersFor(options_);
    if (!idempotency_key.empty()) headers.emplace("Idempotency-Key", idempotency_key);
    if (no_cache) headers.emplace("Cache-Control", "no-cache");
    httplib::Params params(options.begin(), options.end());
    const std::string path = httplib::append_query_params("/jobs", params);
    return Answer(client->Post(path, headers, text, "text/plain; charset=utf-8"), options_.url);
}

Result<json> JobClient::Get(const std::string& id) {
    return Answer(ClientFor(options_)->Get("/jobs/" + id, HeadersFor(options_)), options_.url);
}

Result<json> JobClient::Cancel(const std::string& id) {
    return Answer(ClientFor(options_)->Delete("/jobs/" + id, HeadersFor(options_)), options_.url);
}

Result<std::string> JobClient::Watch(const std::string& id,
                                     const std::function<void(const std::string&, const json&)>& on_event,
                                     int reconnects) {
    std::string last_id;
    int failures = 0;
    for (;;) {
        auto client = ClientFor(options_);
        client->set_read_timeout(std::chrono::seconds(60));  // the server sends a comment every 15 s
        httplib::Headers headers = HeadersFor(options_);
        headers.emplace("Accept", "text/event-stream");
        if (!last_id.empty()) headers.emplace("Last-Event-ID", last_id);
        SseReader reader;
        std::string ended;
        std::string error_body;
        int status = 0;
        auto res = client->Get(
            "/jobs/" + id + "/events", headers,
            [&](const httplib::Response& response) {
                status = response.status;
                return true;
            },
            [&](const char* data, size_t length) {
                if (status != 200) {
                    error_body.append(data, length);
                    return true;
                }
                for (SseEvent& event : reader.Feed(std::string_view(data, length))) {
                    if (!event.id.empty()) last_id = event.id;
                    json payload;
                    try {
                        payload = json::parse(event.data);
                    } catch (const json::exception&) {
                        payload = event.data;
                    }
                    on_event(event.event, payload);
                    if (event.event == "done" || event.event == "error" || event.event == "cancelled")
                        ended = event.event;
                }
                return ended.empty();
            });
        if (!ended.empty()) return ended;
        if (status != 0 && status != 200) {
            httplib::Response fake;
            fake.status = status;
            fake.body = error_body;
            httplib::Result wrapped(std::make_unique<httplib::Response>(fake), httplib::Error::Success);
            auto answer = Answer(wrapped, options_.url);
            return answer.ok() ? MakeError(ErrorCode::kUpstreamError, "HTTP " + std::to_string(status))
                               : answer.error();
        }
        if (++failures > reconnects) {
            return MakeError(ErrorCode::kUpstreamUnreachable,
                             "the event stream of job " + id + " broke off " + std::to_string(failures) + " times" +
                                 (res ? "" : " (" + httplib::to_string(res.error()) + ")"));
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

}  // namespace summarizer
