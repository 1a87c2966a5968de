// `summarizer serve`: the HTTP transport (cpp-httplib, the one file that includes httplib.h for
// serving) in front of ApiRoutes over a Service. The transport turns sockets into HttpRequest
// and HttpResponse (http_types.hpp) and back, streams SSE responses, and notices clients that
// go away; everything else is the routes' and the service's.
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
    // Serves until Stop(); returns false if the server failed.
    bool Run();
    // Stops accepting; in-flight requests get `grace_s` seconds, then are cancelled upstream.
    // A second call cancels them at once.
    void Stop(int grace_s = 0);

    Metrics& metrics();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace summarizer
