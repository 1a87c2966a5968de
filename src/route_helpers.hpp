// Small pieces every route handler file uses (routes.cpp, job_routes.cpp). Private to src/.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "summarizer/api.hpp"
#include "summarizer/http_types.hpp"
#include "summarizer/routes.hpp"

namespace summarizer::route_helpers {

inline std::string Dump(const nlohmann::json& body) {
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline HttpResponse JsonResponse(int status, const nlohmann::json& body) {
    HttpResponse res;
    res.status = status;
    res.body = Dump(body);
    return res;
}

inline HttpResponse ErrorResponse(const Error& error, std::string_view request_id) {
    HttpResponse res = JsonResponse(HttpStatusFor(error.code), ErrorJson(error, request_id));
    if (error.retry_after_s > 0) res.SetHeader("Retry-After", std::to_string(error.retry_after_s));
    return res;
}

inline HttpInput InputOf(const HttpRequest& req) {
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

}  // namespace summarizer::route_helpers

namespace summarizer {

// One request's id, arrival and access-log line.
struct ApiRoutes::Context {
    std::string id;
    std::chrono::steady_clock::time_point arrival;
    route_helpers::LogLine line;  // what the access log line will say; route and ttft filled by the route
    std::string path_id;          // the {id} of a path such as /jobs/{id}

    Context(const HttpRequest& req, const Config& config);
};

}  // namespace summarizer
