// The service's own HTTP request and response types, independent of the library that does the
// socket work. Routes (src/routes.cpp) see only these; a transport (src/http_server.cpp) turns
// bytes into an HttpRequest, runs the handler on a worker thread, and writes the HttpResponse.
// A streamed response (SSE) is an EventStream: the worker that produces events pushes into it,
// the transport drains it, either blocking (a thread per connection) or on a wake-up callback
// (an event loop).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "summarizer/llm_engine.hpp"

namespace summarizer {

// Header names compare case-insensitively (RFC 9110).
struct CaseInsensitiveLess {
    bool operator()(std::string_view a, std::string_view b) const;
};
using HttpHeaders = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct HttpRequest {
    std::string method;                        // "GET", "POST", ...
    std::string path;                          // decoded path, no query: "/summarize"
    std::map<std::string, std::string> query;  // decoded query parameters
    HttpHeaders headers;
    std::string body;
    std::string remote_addr;                   // peer address, for logs and per-client limits
    int remote_port = 0;
    // Cancelled by the transport when the client goes away before the response is complete
    // (closed or reset connection). Handlers hand it (or a child) to the work they start.
    CancelToken client_gone;

    // The first value of header `name`, or "" if absent.
    std::string Header(std::string_view name) const;
};

// Events from a producer thread to the connection that writes them. Thread-safe.
// Producer: Push() any number of times, then Finish() once. Consumer: Take() until it reports
// kFinished; or, in an event loop, SetWakeup() and call TryTake() whenever it is woken.
class EventStream {
public:
    enum class TakeResult { kData, kFinished, kEmpty };

    // Bytes pushed after Finish() are dropped.
    void Push(std::string bytes);
    void Finish();

    // Moves everything queued into `out` (appending). kEmpty after `wait` without data.
    TakeResult Take(std::string& out, std::chrono::milliseconds wait);
    // Take() without waiting.
    TakeResult TryTake(std::string& out) { return Take(out, std::chrono::milliseconds(0)); }
    // Called (on the producer's thread, without the stream's lock held) after each Push() and
    // after Finish(). Replaces any earlier callback; set it before the first TryTake().
    void SetWakeup(std::function<void()> wakeup);

    // Whether the producer has finished (data may still be queued).
    bool finished() const;
    // When bytes were last pushed (or the stream was made), for a heartbeat that fills silences.
    std::chrono::steady_clock::time_point last_push() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;
    bool finished_ = false;
    std::function<void()> wakeup_;
    std::chrono::steady_clock::time_point last_push_ = std::chrono::steady_clock::now();
};

// What the transport reports when a response has been written (or abandoned).
struct ResponseOutcome {
    bool completed = false;  // every byte was written; false: the client went away or a write failed
    size_t bytes_out = 0;    // body bytes written
};

struct HttpResponse {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // in order; Content-Type below
    std::string content_type = "application/json";
    std::string body;
    // Set: the body is streamed from it (chunked, no Content-Length, never compressed) and `body`
    // is ignored. The transport calls client_gone.Cancel() on the request if the client leaves.
    std::shared_ptr<EventStream> stream;
    // Set: called once, on a transport thread, when the response is done (for the access log and
    // metrics). Must not block for long.
    std::function<void(const ResponseOutcome&)> on_complete;
    // The connection is closed after this response (no keep-alive).
    bool close_connection = false;

    void SetHeader(std::string name, std::string value);
    std::string Header(std::string_view name) const;
};

// The handler a transport calls for every complete request, on a worker thread. It may block
// (summarizing a text takes seconds to minutes); it must not throw (the routes have their own
// exception boundary, and a transport still catches and answers 500).
using HttpHandler = std::function<HttpResponse(HttpRequest& request)>;

}  // namespace summarizer
