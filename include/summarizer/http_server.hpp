// `summarizer serve`: the HTTP transport in front of ApiRoutes over a Service. The transport is an
// EventServer (event_server.hpp, Boost.Beast): connections that wait (for headers, a body, a
// slow reader of a stream, the next keep-alive request) cost no thread, each under a deadline
// and connection caps from config `server.*`; a complete request runs on a handler thread; a
// client that goes away cancels its request's work at once (docs/SERVER.md). Everything else is
// the routes' and the service's.
#pragma once

#include <memory>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/metrics.hpp"
#include "summarizer/service.hpp"

namespace summarizer {

class HttpServer {
public:
    // `config` and `service` must outlive the server.
    HttpServer(const Config& config, Service& service);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds config.server.host:port (port 0: any free port) and starts the service's background
    // work. Returns the bound port.
    Result<int> Bind();
    // Serves until Stop(); returns false if the server failed. Returns at once after a Stop().
    bool Run();
    // Stops accepting and closes idle connections; in-flight requests get `grace_s` seconds,
    // then are cancelled upstream (they answer 503, a stream ends with an error event); their
    // answers are written, then every connection is closed and Run() returns. Blocks until then.
    // A second call (from another thread) cancels the requests at once. Not from a handler.
    void Stop(int grace_s = 0);

    Metrics& metrics();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace summarizer
