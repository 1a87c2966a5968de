// The HTTP adapter: routes, validation, auth, CORS, request ids, admission control, SSE.
// The only file that includes httplib.h for serving. Every route runs inside one exception
// boundary that turns a stray exception into a JSON 500.
#pragma once

#include <memory>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/metrics.hpp"
#include "summarizer/ollama_client.hpp"

namespace summarizer {

class HttpServer {
public:
    // `config` and `ollama` must outlive the server.
    HttpServer(const Config& config, OllamaClient& ollama);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds config.server.host:port (port 0: any free port). Returns the bound port.
    Result<int> Bind();
    // Serves until Stop(); returns false if the server failed.
    bool Run();
    // Stops accepting; in-flight requests get `grace_s` seconds, then are cancelled upstream.
    void Stop(int grace_s = 0);

    Metrics& metrics();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace summarizer
