// The HTTP API's data layer (pure, no sockets): parsing and validating a /summarize request
// from its content type, body and query, the HTTP status of each error, and every JSON document
// the contract (docs/API.md) defines. The routes (routes.cpp) and the CLI are its callers.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/router.hpp"
#include "summarizer/service.hpp"
#include "summarizer/summarizer.hpp"

namespace summarizer {

struct ParsedRequest {
    SummarizeRequest request;
    bool stream = false;
};

struct HttpInput {
    std::string content_type;                       // the Content-Type header, as sent
    std::string accept;                             // the Accept header
    std::string_view body;
    std::map<std::string, std::string> query;       // query parameters
};

// Errors: kUnsupportedMediaType, kInvalidJson, kInvalidRequest (the message names the field
// and how to fix it).
Result<ParsedRequest> ParseSummarizeRequest(const HttpInput& input, const Config& config);

// A fresh request id: 32 hex digits, random.
std::string NewRequestId();

// HTTP status of an error code (the table in API.md).
int HttpStatusFor(ErrorCode code);

// {"error": {"code", "message", "request_id"}}
nlohmann::json ErrorJson(const Error& error, std::string_view request_id);

// The 200 response of /summarize (also the data of the SSE `done` event).
nlohmann::json ResponseJson(const SummarizeResponse& response);
// The same document as text, written without building it (the JSON answer's hot path; nlohmann
// spent ~45k instructions building and writing it, a sixth of a short request): ResponseJson's
// members in its order, the times in tenths ("12.0").
std::string ResponseJsonText(const SummarizeResponse& response);
// Its inverse, for a response stored as JSON (a job's result); missing fields keep their defaults.
SummarizeResponse ResponseFromJson(const nlohmann::json& doc);

// The 200 response of /summarize/plan.
nlohmann::json PlanJson(const Plan& plan);

// GET /status: the configuration in force, the buckets' footprints and learned costs, /api/ps.
nlohmann::json StatusJson(const ServiceStatus& status, const Config& config);

// GET /readyz's body (200 when r.ready, else 503).
nlohmann::json ReadyJson(const Readiness& r);

// The SSE `meta` event: {"request_id", "route", "model", "chunks", "degraded"}.
nlohmann::json MetaEventJson(const Plan& plan, std::string_view request_id);

// One Server-Sent Event: "event: NAME\ndata: JSON\n\n" (JSON has no raw newlines).
std::string FormatSseEvent(std::string_view event, const nlohmann::json& data);

}  // namespace summarizer
