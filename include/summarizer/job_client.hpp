// The CLI's side of durable jobs (`summarizer jobs submit|watch|fetch|cancel`): a small HTTP client
// of a running server's /jobs endpoints. Errors are values: a refused request carries the server's
// error code and message; a server that cannot be reached is kUpstreamUnreachable.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "summarizer/error.hpp"

namespace summarizer {

struct JobClientOptions {
    std::string url = "http://127.0.0.1:8080";  // the server (env SUMMARIZER_URL)
    std::string api_key;                        // sent as `Authorization: Bearer <key>` when set
    std::chrono::seconds timeout{30};           // connect and read time-out of one request
};

class JobClient {
public:
    explicit JobClient(JobClientOptions options);

    // POST /jobs with `text` as text/plain and `options` (language, style, max_tokens, strategy)
    // as query parameters. Returns the 200/202 body ({"id", "state", ...}).
    Result<nlohmann::json> Submit(const std::string& text, const std::map<std::string, std::string>& options,
                                  const std::string& idempotency_key, bool no_cache);
    // GET /jobs/{id}.
    Result<nlohmann::json> Get(const std::string& id);
    // DELETE /jobs/{id}.
    Result<nlohmann::json> Cancel(const std::string& id);
    // GET /jobs/{id}/events until an event ends the job (done, error, cancelled), calling
    // `on_event` for each; reconnects with Last-Event-ID when the connection drops (up to
    // `reconnects` times in a row). Returns the last event's name.
    Result<std::string> Watch(const std::string& id,
                              const std::function<void(const std::string& name, const nlohmann::json& data)>& on_event,
                              int reconnects = 10);

private:
    JobClientOptions options_;
};

}  // namespace summarizer
