// The HTTP API's data layer (pure, no sockets): parsing and validating a /summarize request
// from its content type, body and query, and the JSON documents the contract
// (../shared/design/API.md) defines. http_server.cpp is the only caller besides tests/fuzzers.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/router.hpp"
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

// HTTP status of an error code (the table in API.md).
int HttpStatusFor(ErrorCode code);

// {"error": {"code", "message", "request_id"}}
nlohmann::json ErrorJson(const Error& error, std::string_view request_id);

// The 200 response of /summarize (also the data of the SSE `done` event).
nlohmann::json ResponseJson(const SummarizeResponse& response);

// The 200 response of /summarize/plan.
nlohmann::json PlanJson(const Plan& plan);

// One Server-Sent Event: "event: NAME\ndata: JSON\n\n" (JSON has no raw newlines).
std::string FormatSseEvent(std::string_view event, const nlohmann::json& data);

}  // namespace summarizer
