#include "summarizer/openapi.hpp"

namespace summarizer {

// Data, not logic: docs/API.md in OpenAPI's terms. Keep the two equal (scripts/check-openapi.sh).
std::string_view OpenApiDocument() {
    static constexpr std::string_view kDocument = R"JSON({
  "openapi": "3.0.3",
  "info": {
    "title": "summarizer",
    "version": "1.0.0",
    "description": "Summarization service in front of Ollama: routes each text to the smallest bucket (a model with a fixed context window: 16k, then 60k by default) whose context holds it, or to a parallel map-reduce, and never sends a prompt that does not fit. The contract in words is docs/API.md in the repository.\n\nEvery response carries X-Request-Id (the client's, if it sent 1 to 128 printable ASCII characters without spaces; else a new one). With server.api_key set, POST /summarize, POST /summarize/plan, GET /status and GET /metrics need `Authorization: Bearer <key>` (401 `unauthorized` with WWW-Authenticate: Bearer otherwise). Browser origins in server.cors_origins get Access-Control-Allow-Origin, Vary: Origin and Access-Control-Expose-Headers: X-Request-Id, Retry-After on every answer; the preflight of another origin is 403 `forbidden`.\n\nErrors are a status and {\"error\": {\"code\", \"message\", \"request_id\"}}. Besides the answers listed per operation: a path that does not exist is 404 `not_found`; a path that exists with another method is 405 `method_not_allowed` with an Allow header (HEAD is accepted wherever GET is); an exception that reaches an exception boundary (a bug) is 500 `internal_error`; a request the HTTP layer cannot read is 400 (or 408 when it comes too slowly) `invalid_request`, and a body over server.max_body_bytes 413 `payload_too_large`, each closing the connection.",
    "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"}
  },
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "tags": [{"name": "summarize", "description": "Summaries and plans"}, {"name": "jobs", "description": "Durable summaries: jobs that survive disconnects and restarts (docs/JOBS.md)"},
           {"name": "operations", "description": "Health, readiness, status, metrics, this document, the page"},
           {"name": "cors", "description": "Browser preflight requests"}],
  "security": [{}, {"bearerAuth": []}],
  "paths": {
    "/summarize": {
      "post": {
        "tags": ["summarize"],
        "operationId": "summarize",
        "summary": "Summarize a text",
        "description": "JSON body, or text/plain with the options as query parameters (query parameters are refused with a JSON body). With stream=true or Accept: text/event-stream the answer is Server-Sent Events: meta, progress (map-reduce), delta, then done or error; once a stream has started, every later failure (planning included, e.g. `input_too_large`) is an error event in the 200 stream. When Ollama cannot be reached (or the circuit to it is open) and degraded.extractive_fallback is on (the default), the answer is an extractive summary computed in-process: route \"extractive\", model \"none\", degraded true, usage all zero; a stream that had announced another route gets a second meta event with route \"extractive\" before its single delta. A client that closes its connection before its answer is complete, JSON or stream, cancels the request's upstream calls at once. With a job store (jobs.cache, the default) the same text with the same options and model configuration is answered from the earlier run (\"cached\": true, no upstream call; a stream gets meta, the summary as one delta, done), or waits for a run of it that is going on; Cache-Control: no-cache forces new work.",
        "parameters": [
          {"$ref": "#/components/parameters/Language"}, {"$ref": "#/components/parameters/Style"},
          {"$ref": "#/components/parameters/MaxTokens"}, {"$ref": "#/components/parameters/Stream"},
          {"$ref": "#/components/parameters/StrategyParam"}, {"$ref": "#/components/parameters/RequestId"},
          {"$ref": "#/components/parameters/CacheControl"}
        ],
        "requestBody": {"$ref": "#/components/requestBodies/SummarizeBody"},
        "responses": {
          "200": {
            "description": "The summary (JSON), or an SSE stream",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {
              "application/json": {"schema": {"$ref": "#/components/schemas/SummarizeResponse"}},
              "text/event-stream": {"schema": {"$ref": "#/components/schemas/SummarizeStream"}}
            }
          },
          "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
          "405": {"$ref": "#/components/responses/MethodNotAllowed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"}, "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/InputTooLarge"}, "429": {"$ref": "#/components/responses/Overloaded"},
          "502": {"$ref": "#/components/responses/UpstreamError"}, "503": {"$ref": "#/components/responses/UpstreamUnavailable"},
          "504": {"$ref": "#/components/responses/UpstreamTimeout"}
        }
      },
      "options": {
        "tags": ["cors"],
        "operationId": "summarizePreflight",
        "summary": "CORS preflight (answered the same way on every path)",
        "security": [],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "responses": {"204": {"$ref": "#/components/responses/Preflight"}, "403": {"$ref": "#/components/responses/Forbidden"}}
      }
    },
    "/summarize/plan": {
      "post": {
        "tags": ["summarize"],
        "operationId": "plan",
        "summary": "Show the route a text would take; nothing is generated",
        "description": "The same request as POST /summarize (stream is accepted and ignored). Takes no admission slot. Never plans the extractive route.",
        "parameters": [
          {"$ref": "#/components/parameters/Language"}, {"$ref": "#/components/parameters/Style"},
          {"$ref": "#/components/parameters/MaxTokens"}, {"$ref": "#/components/parameters/Stream"},
          {"$ref": "#/components/parameters/StrategyParam"}, {"$ref": "#/components/parameters/RequestId"}
        ],
        "requestBody": {"$ref": "#/components/requestBodies/SummarizeBody"},
        "responses": {
          "200": {"description": "The plan", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Plan"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
          "405": {"$ref": "#/components/responses/MethodNotAllowed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"}, "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/InputTooLarge"}
        }
      },
      "options": {
        "tags": ["cors"],
        "operationId": "planPreflight",
        "summary": "CORS preflight (answered the same way on every path)",
        "security": [],
        "parameters": [{"$ref": "#/components/parameters/Origin"}],
        "responses": {"204": {"$ref": "#/components/responses/Preflight"}, "403": {"$ref": "#/components/responses/Forbidden"}}
      }
    },
    "/jobs": {
      "post": {
        "tags": ["jobs"],
        "operationId": "submitJob",
        "summary": "Submit a text as a durable job",
        "description": "The /summarize body (stream is ignored). The job runs in the background on any replica; it survives a disconnect, a restart or a crash of the process running it (it resumes from its last committed step). 202 with a new job; 200 with an existing one: the job an Idempotency-Key created earlier, or (unless Cache-Control: no-cache) a queued, running or done job for the same content (cached: true). Identical submissions at once make one job.",
        "parameters": [
          {"$ref": "#/components/parameters/Language"}, {"$ref": "#/components/parameters/Style"},
          {"$ref": "#/components/parameters/MaxTokens"}, {"$ref": "#/components/parameters/Stream"},
          {"$ref": "#/components/parameters/StrategyParam"}, {"$ref": "#/components/parameters/RequestId"},
          {"$ref": "#/components/parameters/IdempotencyKey"}, {"$ref": "#/components/parameters/CacheControl"}
        ],
        "requestBody": {"$ref": "#/components/requestBodies/SummarizeBody"},
        "responses": {
          "200": {"description": "An existing job (Idempotency-Key or the same content)", "headers": {"Location": {"$ref": "#/components/headers/Location"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSubmitted"}}}},
          "202": {"description": "A new job, queued", "headers": {"Location": {"$ref": "#/components/headers/Location"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSubmitted"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"},
          "409": {"$ref": "#/components/responses/Conflict"}, "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}, "422": {"$ref": "#/components/responses/InputTooLarge"},
          "503": {"$ref": "#/components/responses/StoreUnavailable"}
        }
      }
    },
    "/jobs/{id}": {
      "parameters": [{"$ref": "#/components/parameters/JobId"}],
      "get": {
        "tags": ["jobs"],
        "operationId": "getJob",
        "summary": "A job's state, progress, and its result or error",
        "responses": {
          "200": {"description": "The job", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"}, "404": {"$ref": "#/components/responses/NotFound"},
          "503": {"$ref": "#/components/responses/StoreUnavailable"}
        }
      },
      "delete": {
        "tags": ["jobs"],
        "operationId": "cancelJob",
        "summary": "Cancel a job",
        "description": "A queued job is cancelled at once (200). A running one is asked to stop (202): its owner, on whichever replica, stops its upstream calls and its events end with cancelled. A finished job stays as it is (200).",
        "responses": {
          "200": {"description": "The job is cancelled, or was finished already", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobCancel"}}}},
          "202": {"description": "The running job is being stopped", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobCancel"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"}, "404": {"$ref": "#/components/responses/NotFound"},
          "503": {"$ref": "#/components/responses/StoreUnavailable"}
        }
      }
    },
    "/jobs/{id}/events": {
      "parameters": [{"$ref": "#/components/parameters/JobId"}],
      "get": {
        "tags": ["jobs"],
        "operationId": "jobEvents",
        "summary": "A job's events: every past one replayed, then live ones, as Server-Sent Events",
        "description": "Each event has an id (1, 2, 3...); a client that reconnects sends the last one it saw as Last-Event-ID (or ?after=) and gets only the ones after it. The stream ends after done, error or cancelled. A comment line every 15 s keeps idle connections open.",
        "parameters": [{"$ref": "#/components/parameters/LastEventId"}, {"$ref": "#/components/parameters/After"}],
        "responses": {
          "200": {"description": "The event stream", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                  "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEventStream"}}}},
          "400": {"$ref": "#/components/responses/BadEventId"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"},
          "404": {"$ref": "#/components/responses/NotFound"}, "503": {"$ref": "#/components/responses/StoreUnavailable"}
        }
      }
    },
    "/healthz": {
      "get": {"tags": ["operations"], "operationId": "healthz", "summary": "Liveness", "security": [],
              "responses": {"200": {"description": "The process serves", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    },
    "/readyz": {
      "get": {"tags": ["operations"], "operationId": "readyz", "summary": "Readiness: for every bucket, an upstream answers and has its model (ready while at least one upstream serves each)", "security": [],
              "description": "Asks Ollama through the circuit breaker (an open circuit answers at once). 503 also while summaries come from the extractive fallback, and while shutting down.",
              "responses": {"200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                            "503": {"description": "Not ready, with the reason and the fix (this body, not an error body)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}}}
    },
    "/status": {
      "get": {"tags": ["operations"], "operationId": "status", "summary": "Configuration in force, buckets and VRAM, what Ollama has loaded, learned costs, and every upstream of the pool",
              "responses": {"200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    },
    "/metrics": {
      "get": {"tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics",
              "responses": {"200": {"description": "Prometheus text format 0.0.4 (text/plain; version=0.0.4; charset=utf-8)", "content": {"text/plain": {"schema": {"type": "string"}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    },
    "/openapi.json": {
      "get": {"tags": ["operations"], "operationId": "openapi", "summary": "This document", "security": [],
              "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    },
    "/": {
      "get": {"tags": ["operations"], "operationId": "page", "summary": "A page to paste a text and watch its summary stream", "security": [],
              "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                            "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    }
  },
  "components": {
    "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "Only when server.api_key (SUMMARIZER_API_KEY) is set"}},
    "headers": {
      "RequestId": {"description": "The request id (the client's X-Request-Id if it sent a usable one)", "schema": {"type": "string"}},
      "RetryAfter": {"description": "Whole seconds to wait (1 to 3600): the position the request would have in the admission queue over the measured throughput", "schema": {"type": "integer", "minimum": 1, "maximum": 3600}},
      "Allow": {"description": "The methods the path has, e.g. POST", "schema": {"type": "string"}},
      "WwwAuthenticate": {"description": "Bearer", "schema": {"type": "string", "enum": ["Bearer"]}},
      "AllowOrigin": {"description": "The request's Origin, or * when server.cors_origins has *; absent when no Origin was sent", "schema": {"type": "string"}},
      "AllowMethods": {"description": "GET, POST, DELETE, OPTIONS", "schema": {"type": "string"}},
      "AllowHeaders": {"description": "Content-Type, Authorization, X-Request-Id, Accept, Idempotency-Key, Cache-Control, Last-Event-ID", "schema": {"type": "string"}},
      "MaxAge": {"description": "Seconds a browser may cache the preflight: 600", "schema": {"type": "integer"}},
      "Location": {"description": "The job's URL: /jobs/{id}", "schema": {"type": "string"}}
    },
    "parameters": {
      "Language": {"name": "language", "in": "query", "required": false, "description": "text/plain bodies only; as the language field of SummarizeRequest", "schema": {"$ref": "#/components/schemas/Language"}},
      "Style": {"name": "style", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"}},
      "MaxTokens": {"name": "max_tokens", "in": "query", "required": false, "description": "text/plain bodies only; 1 to generation.max_num_predict (4096 by default)", "schema": {"type": "integer", "minimum": 1}},
      "Stream": {"name": "stream", "in": "query", "required": false, "description": "text/plain bodies only; true, false, 1 or 0", "schema": {"type": "boolean", "default": false}},
      "StrategyParam": {"name": "strategy", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"$ref": "#/components/schemas/Strategy"}},
      "RequestId": {"name": "X-Request-Id", "in": "header", "required": false, "description": "Echoed back when 1 to 128 printable ASCII characters without spaces; generated otherwise", "schema": {"type": "string", "maxLength": 128}},
      "Origin": {"name": "Origin", "in": "header", "required": false, "description": "The browser origin asking; must be in server.cors_origins (or it is *)", "schema": {"type": "string"}},
      "CacheControl": {"name": "Cache-Control", "in": "header", "required": false, "description": "no-cache: new work, not an earlier run's result", "schema": {"type": "string"}},
      "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": false, "description": "The same key again returns the job it created (409 if it came with another text or options)", "schema": {"type": "string", "maxLength": 255}},
      "JobId": {"name": "id", "in": "path", "required": true, "description": "The job's id: 32 hex digits, random", "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
      "LastEventId": {"name": "Last-Event-ID", "in": "header", "required": false, "description": "Resume after this event id", "schema": {"type": "string"}},
      "After": {"name": "after", "in": "query", "required": false, "description": "Resume after this event id (for clients that cannot send Last-Event-ID)", "schema": {"type": "integer", "minimum": 0}}
    },
    "requestBodies": {
      "SummarizeBody": {
        "required": true,
        "content": {
          "application/json": {"schema": {"$ref": "#/components/schemas/SummarizeRequest"}},
          "text/plain": {"schema": {"type": "string", "description": "The text itself (UTF-8)"}}
        }
      }
    },
    "responses": {
      "BadRequest": {"description": "`invalid_json`: the body is not JSON, a number is out of range, or nesting is deeper than 32 levels; `invalid_request`: a wrong, unknown or missing field (named in the message), blank text, invalid UTF-8, a control character, an unknown language, query parameters with a JSON body, or a multipart/form-data body that is not well-formed multipart", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "`unauthorized`: an API key is configured (server.api_key) and the request lacks `Authorization: Bearer <key>`",
                "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WwwAuthenticate"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Forbidden": {"description": "`forbidden`: the Origin is not in server.cors_origins", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "MethodNotAllowed": {"description": "`method_not_allowed`: the path exists but not with the method used (e.g. GET /summarize); Allow names the methods it has",
                "headers": {"Allow": {"$ref": "#/components/headers/Allow"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PayloadTooLarge": {"description": "`payload_too_large`: the body is over server.max_body_bytes", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UnsupportedMediaType": {"description": "`unsupported_media_type`: the Content-Type is neither application/json nor text/plain (a malformed multipart/form-data body is 400)", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "InputTooLarge": {"description": "`input_too_large`: strategy \"single\" and the text fits no bucket", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamError": {"description": "`upstream_error`: Ollama answered with an error, broke off mid-stream or sent malformed data, after retries; or a prompt was still over num_ctx after the re-plans, or the partial summaries did not converge within map_reduce.max_levels", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamUnavailable": {"description": "`upstream_unavailable`: Ollama is busy (its queue full) after retries, or cannot be reached and the extractive fallback is off, both with Retry-After; or a bucket model is missing (the message names the `ollama create` to run); or the service is shutting down",
                "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamTimeout": {"description": "`upstream_timeout`: Ollama did not answer in time (first token, idle or total time-out)", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "`not_found`: no such job (never created, or deleted by retention)", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "BadEventId": {"description": "`invalid_request`: Last-Event-ID or after is not a whole number", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Conflict": {"description": "`conflict`: the Idempotency-Key was used before for another text or options", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "StoreUnavailable": {"description": "`store_unavailable`: the job store cannot be used now (its file unwritable, the disk full, the database locked, PostgreSQL unreachable or restarting), or jobs are off (jobs.database = off); the message says which",
                "headers": {"Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer", "minimum": 1}},
                            "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Overloaded": {"description": "`overloaded`: the admission queue is full, or no slot became free within server.queue_timeout_s; retry after the Retry-After delay. Map-reduce requests wait in a queue of their own (server.max_batch_inflight, server.max_batch_queue), so a short request is admitted while long ones run",
                     "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}, "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Preflight": {"description": "The origin is allowed (or none was sent); no body",
                    "headers": {"Access-Control-Allow-Origin": {"$ref": "#/components/headers/AllowOrigin"}, "Access-Control-Allow-Methods": {"$ref": "#/components/headers/AllowMethods"},
                                "Access-Control-Allow-Headers": {"$ref": "#/components/headers/AllowHeaders"}, "Access-Control-Max-Age": {"$ref": "#/components/headers/MaxAge"},
                                "X-Request-Id": {"$ref": "#/components/headers/RequestId"}}}
    },
    "schemas": {
      "Strategy": {"type": "string", "enum": ["auto", "single", "map_reduce"], "default": "auto"},
      "Language": {"type": "string", "default": "auto", "description": "\"auto\" (the text's own language: Japanese for a text mostly in CJK script or with a real share of kana, else English), or one of these languages as its code (optionally with a region of 2 or 3 letters or digits: pt-BR, zh_TW, es-419) or its English name, case-insensitive: en English, ja Japanese, zh Chinese, ko Korean, fr French, de German, es Spanish, it Italian, pt Portuguese, ru Russian, nl Dutch, vi Vietnamese, th Thai, id Indonesian, ar Arabic, pl Polish, tr Turkish, sv Swedish, uk Ukrainian, hi Hindi, cs Czech, da Danish, fi Finnish, no Norwegian, el Greek, he Hebrew, hu Hungarian, ro Romanian, ms Malay, bn Bengali. Anything else is 400 invalid_request."},
      "Route": {"type": "string", "description": "A bucket's name for a single pass (16k and 60k by default; the configuration may name others), map_reduce, or extractive (the degraded in-process answer; never planned by /summarize/plan)"},
      "SummarizeRequest": {
        "type": "object", "additionalProperties": false, "required": ["text"],
        "properties": {
          "text": {"type": "string", "minLength": 1, "description": "Valid UTF-8, not blank, no control characters but tab, line feed, carriage return, form feed and vertical tab"},
          "language": {"$ref": "#/components/schemas/Language"},
          "style": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"},
          "max_tokens": {"type": "integer", "minimum": 1, "description": "Cap on the summary's tokens, 1 to generation.max_num_predict (4096 by default); default generation.num_predict (1200)"},
          "stream": {"type": "boolean", "default": false, "description": "true: answer as Server-Sent Events (Accept: text/event-stream does too, unless this says false)"},
          "strategy": {"$ref": "#/components/schemas/Strategy"}
        }
      },
      "SummarizeResponse": {
        "type": "object",
        "required": ["summary", "route", "model", "chunks", "levels", "degraded", "usage", "timings", "request_id", "reason", "cached"],
        "properties": {
          "summary": {"type": "string"},
          "route": {"$ref": "#/components/schemas/Route"},
          "model": {"type": "string", "description": "The model that wrote the final summary; none for extractive"},
          "chunks": {"type": "integer", "description": "Map inputs; 1 for a single pass"},
          "levels": {"type": "integer", "description": "Merge levels, the final merge included; 0 for a single pass"},
          "degraded": {"type": "boolean", "description": "true: Ollama was unreachable and the summary is extractive (sentences of the text, route extractive)"},
          "usage": {"type": "object", "required": ["prompt_tokens", "completion_tokens", "upstream_requests"], "description": "Sums over every upstream call, failed and re-planned ones included",
                    "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "upstream_requests": {"type": "integer"}}},
          "timings": {"type": "object", "description": "Milliseconds from the request's arrival, rounded to 0.1; rates over every call",
                      "required": ["total_ms", "queue_ms", "ttft_ms", "load_ms", "prefill_tokens_per_s", "decode_tokens_per_s"],
                      "properties": {"total_ms": {"type": "number"}, "queue_ms": {"type": "number"}, "ttft_ms": {"type": "number", "description": "To the first token of the final summary"},
                                     "load_ms": {"type": "number"}, "prefill_tokens_per_s": {"type": "number"}, "decode_tokens_per_s": {"type": "number"}}},
          "request_id": {"type": "string"},
          "reason": {"type": "string", "description": "Why this route: the plan's reason, any re-plan after Ollama found a prompt over num_ctx, or extractive fallback: <why>"},
          "cached": {"type": "boolean", "description": "true: the summary of an earlier run of the same text, options and model configuration (usage is that run's; timings are this answer's)"}
        }
      },
      "Plan": {
        "type": "object",
        "required": ["route", "model", "num_ctx", "chars", "estimated_prompt_tokens", "chunks", "reason"],
        "properties": {
          "route": {"$ref": "#/components/schemas/Route"},
          "model": {"type": "string"},
          "num_ctx": {"type": "integer"},
          "chars": {"type": "integer", "description": "Unicode code points"},
          "estimated_prompt_tokens": {"type": "integer", "description": "A single pass: the whole prompt; map-reduce: the sum over the map prompts"},
          "chunks": {"type": "array", "items": {"type": "object", "required": ["chars", "estimated_tokens"],
                     "properties": {"chars": {"type": "integer"}, "estimated_tokens": {"type": "integer"}}}},
          "reason": {"type": "string"}
        }
      },
      "SummarizeStream": {
        "type": "array",
        "description": "Server-Sent Events, each `event: NAME` and `data: JSON` (one line) followed by a blank line, shown here as {event, data} objects. In this order: meta; progress (map-reduce only: when each phase starts and after each of its calls, for the map, each merge level and the final merge, with an estimate of the time left); delta (pieces of the final summary as they are generated); then done, or error and the stream ends. While nothing else is sent for server.sse_heartbeat_s (15 s by default), the stream carries an SSE comment line, `: heartbeat` followed by a blank line, which SSE clients ignore (it keeps proxies from cutting an idle connection). A re-plan after an overflow sends no new meta (done names the route used); a fallback to the extractive summary after an LLM route was announced sends a second meta. A client that disconnects cancels its upstream generation at once.",
        "items": {"oneOf": [{"$ref": "#/components/schemas/MetaEvent"}, {"$ref": "#/components/schemas/ProgressEvent"},
                            {"$ref": "#/components/schemas/DeltaEvent"}, {"$ref": "#/components/schemas/DoneEvent"},
                            {"$ref": "#/components/schemas/ErrorEvent"}]}
      },
      "MetaEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "id": {"type": "integer", "description": "A job's events only"},
          "event": {"type": "string", "enum": ["meta"]},
          "data": {"type": "object", "required": ["request_id", "route", "model", "chunks", "degraded"],
                   "properties": {"request_id": {"type": "string"}, "route": {"$ref": "#/components/schemas/Route"},
                                  "model": {"type": "string", "description": "The planned bucket's model; a call that then rides the larger bucket already loaded is named in done's model"}, "chunks": {"type": "integer"},
                                  "degraded": {"type": "boolean", "description": "true: the extractive fallback (a second meta follows an LLM route's when Ollama turned out unreachable)"}}}
        }
      },
      "JobMetaEvent": {
        "type": "object", "required": ["id", "event", "data"],
        "properties": {
          "id": {"type": "integer"},
          "event": {"type": "string", "enum": ["meta"]},
          "data": {"type": "object", "required": ["request_id", "route", "model", "chunks", "degraded"],
                   "properties": {"request_id": {"type": "string"}, "route": {"$ref": "#/components/schemas/Route"},
                                  "model": {"type": "string"}, "chunks": {"type": "integer"}, "degraded": {"type": "boolean"},
                                  "replanned": {"type": "string", "description": "Why it was re-planned when it resumed (the configuration changed)"}}}
        }
      },
      "ProgressEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "event": {"type": "string", "enum": ["progress"]},
          "data": {"type": "object", "required": ["phase", "done", "total", "level", "remaining_ms"],
                   "properties": {"phase": {"type": "string", "enum": ["map", "reduce", "final"],
                                            "description": "map: the chunk summaries; reduce: an intermediate merge level; final: the merge that writes the summary (its deltas follow)"},
                                  "done": {"type": "integer", "description": "calls of this phase finished"},
                                  "total": {"type": "integer", "description": "calls of this phase (final: 1)"},
                                  "level": {"type": "integer", "description": "0 for map, 1, 2, ... for each merge level; the final merge's level is the response's levels"},
                                  "remaining_ms": {"type": "integer", "description": "estimated milliseconds until the summary is complete: a cost model of the calls left, calibrated by this request's calls so far"}}}
        }
      },
      "DeltaEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "event": {"type": "string", "enum": ["delta"]},
          "data": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
        }
      },
      "DoneEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {"id": {"type": "integer", "description": "A job's events only"}, "event": {"type": "string", "enum": ["done"]}, "data": {"$ref": "#/components/schemas/SummarizeResponse"}}
      },
      "ErrorEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {"id": {"type": "integer", "description": "A job's events only"}, "event": {"type": "string", "enum": ["error"]}, "data": {"$ref": "#/components/schemas/Error"}}
      },
      "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}},
      "Readiness": {"type": "object", "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": ["ready", "unavailable"]},
                                   "ollama": {"type": "string", "description": "200 only: the Ollama URL in use"},
                                   "reason": {"type": "string", "description": "503 only: why the service is not ready, and how to fix it"},
                                   "missing_models": {"type": "array", "items": {"type": "string"}, "description": "503: bucket models missing on the Ollama server"},
                                   "circuit": {"type": "string", "enum": ["closed", "open", "half_open"], "description": "503 when Ollama could not be asked: the circuit breaker to it"},
                                   "degraded": {"type": "string", "description": "With circuit: present while summaries are extractive"},
                                   "upstreams": {"type": "object", "additionalProperties": {"type": "string"}, "description": "With several upstreams: each one's state, \"ready\" or why not"}}},
      "Status": {
        "type": "object",
        "required": ["config", "policy", "buckets", "vram", "thresholds", "costs", "ollama", "inflight", "queued", "jobs", "upstreams", "token_counts"],
        "properties": {
          "config": {"type": "object", "additionalProperties": true, "description": "The effective configuration, as `summarizer config` prints it (the API key as <set>)"},
          "policy": {"type": "string", "enum": ["static", "cost"]},
          "buckets": {"type": "array", "description": "One per configured bucket, smallest context first", "items": {"$ref": "#/components/schemas/BucketStatus"}},
          "vram": {"type": "object",
                   "required": ["budget_mb", "reserve_mb", "usable_mb", "kv_cache_type", "num_parallel", "preload_hot_bucket", "hot_bucket", "preloads", "last_preload", "warnings"],
                   "properties": {"budget_mb": {"type": "integer"}, "reserve_mb": {"type": "integer"}, "usable_mb": {"type": "integer"},
                                  "kv_cache_type": {"type": "string", "enum": ["f16", "q8_0", "q4_0"]}, "num_parallel": {"type": "integer"},
                                  "preload_hot_bucket": {"type": "boolean"}, "hot_bucket": {"type": "string", "description": "Empty when no bucket is hot"},
                                  "preloads": {"type": "integer"}, "last_preload": {"type": "string"},
                                  "warnings": {"type": "array", "items": {"type": "string"}, "description": "The start-up VRAM check: a bucket that will not fit, with the fix"}}},
          "thresholds": {"type": "object", "required": ["hierarchical_threshold_chars", "hierarchical_chunk_max_chars", "safety_margin_tokens", "policy"],
                         "properties": {"hierarchical_threshold_chars": {"type": "integer"}, "hierarchical_chunk_max_chars": {"type": "integer"},
                                        "safety_margin_tokens": {"type": "integer"}, "policy": {"type": "string", "enum": ["static", "cost"]}}},
          "costs": {"type": "object", "required": ["reload_ms", "reloads_seen", "output_tokens", "spill_slowdown", "slots"],
                    "properties": {"reload_ms": {"type": "number"}, "reloads_seen": {"type": "integer"}, "output_tokens": {"type": "number"},
                                   "spill_slowdown": {"type": "number"}, "slots": {"type": "integer"}}},
          "ollama": {"type": "object", "required": ["url", "reachable"],
                     "properties": {"url": {"type": "string"}, "reachable": {"type": "boolean"},
                                    "loaded": {"type": "array", "description": "When reachable: every model loaded now (/api/ps)", "items": {"$ref": "#/components/schemas/LoadedModel"}},
                                    "error": {"type": "string", "description": "When not reachable: why"}}},
          "inflight": {"type": "integer", "description": "Requests summarizing now"},
          "queued": {"type": "integer", "description": "Requests waiting for an admission slot"},
          "jobs": {"type": "object", "additionalProperties": true, "description": "The job store: whether jobs are enabled, its database (a URL's password as <set>), whether it is available, jobs by state, content and database bytes"},
          "upstreams": {"type": "array", "items": {"$ref": "#/components/schemas/UpstreamStatus"}, "description": "Every upstream of the pool, in the configured order (one named ollama when only OLLAMA_HOST is set)"},
          "token_counts": {"type": "object", "description": "Exact prompt token counts asked of the engines' tokenizers (POST /tokenize)",
                           "required": ["engine", "cache", "estimated", "cached_entries"],
                           "properties": {"engine": {"type": "integer"}, "cache": {"type": "integer"}, "estimated": {"type": "integer"}, "cached_entries": {"type": "integer"}}}
        }
      },
      "BucketStatus": {
        "type": "object",
        "required": ["name", "model", "num_ctx", "keep_alive", "hot", "estimated_vram_mb", "fits_vram_budget", "loaded", "measured", "spilling_to_cpu", "spills_seen", "pending_calls", "learned"],
        "properties": {
          "name": {"type": "string"}, "model": {"type": "string"}, "num_ctx": {"type": "integer"}, "keep_alive": {"type": "string"},
          "hot": {"type": "boolean"}, "estimated_vram_mb": {"type": "number"}, "fits_vram_budget": {"type": "boolean"}, "loaded": {"type": "boolean"},
          "measured": {"type": "object", "nullable": true, "description": "The last /api/ps entry seen for the bucket; null until seen loaded",
                       "required": ["size_bytes", "size_vram_bytes", "size_mb", "size_vram_mb", "context_length", "expires_at", "spilling_to_cpu"],
                       "properties": {"size_bytes": {"type": "integer"}, "size_vram_bytes": {"type": "integer"}, "size_mb": {"type": "number"},
                                      "size_vram_mb": {"type": "number"}, "context_length": {"type": "integer"}, "expires_at": {"type": "string"},
                                      "spilling_to_cpu": {"type": "boolean"}}},
          "spilling_to_cpu": {"type": "boolean"}, "spills_seen": {"type": "integer"}, "pending_calls": {"type": "integer"},
          "learned": {"type": "object", "required": ["calls", "prefill_tokens_per_s", "decode_tokens_per_s", "mean_call_ms"],
                      "properties": {"calls": {"type": "integer"}, "prefill_tokens_per_s": {"type": "number"}, "decode_tokens_per_s": {"type": "number"},
                                     "mean_call_ms": {"type": "number"}}}
        }
      },
      "LoadedModel": {
        "type": "object", "required": ["name", "size_bytes", "size_vram_bytes", "context_length", "expires_at", "spilling_to_cpu"],
        "properties": {"name": {"type": "string"}, "size_bytes": {"type": "integer"}, "size_vram_bytes": {"type": "integer"},
                       "context_length": {"type": "integer"}, "expires_at": {"type": "string"}, "spilling_to_cpu": {"type": "boolean"}}
      },
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}},
      "ErrorBody": {
        "type": "object", "required": ["code", "message", "request_id"],
        "properties": {
          "code": {"type": "string", "enum": ["invalid_json", "invalid_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "payload_too_large", "unsupported_media_type", "input_too_large", "overloaded", "internal_error", "upstream_error", "upstream_unavailable", "upstream_timeout", "conflict", "store_unavailable"]},
          "message": {"type": "string", "description": "What was wrong and how to fix it"},
          "request_id": {"type": "string", "description": "The request's id; for a job's error, the job's id"}}
      },
      "JobState": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
      "JobSubmitted": {
        "type": "object", "required": ["id", "state", "status_url", "events_url", "cached"],
        "properties": {
          "id": {"type": "string", "description": "32 hex digits, random: unguessable"},
          "state": {"$ref": "#/components/schemas/JobState"},
          "status_url": {"type": "string", "description": "/jobs/{id}"},
          "events_url": {"type": "string", "description": "/jobs/{id}/events"},
          "cached": {"type": "boolean", "description": "true: an existing job for the same content was returned instead of new work"}
        }
      },
      "JobProgress": {
        "type": "object", "required": ["done", "total", "level"],
        "properties": {"done": {"type": "integer", "description": "steps finished in the current level"},
                       "total": {"type": "integer", "description": "steps of the current level"},
                       "level": {"type": "integer", "description": "0: the map (or the one pass); 1, 2...: merge levels; the last: the final merge"}}
      },
      "Job": {
        "type": "object", "required": ["id", "state", "progress", "elapsed_ms", "created_at", "attempts", "cancel_requested"],
        "properties": {
          "id": {"type": "string"},
          "state": {"$ref": "#/components/schemas/JobState"},
          "progress": {"$ref": "#/components/schemas/JobProgress"},
          "elapsed_ms": {"type": "integer", "description": "From submission to its end (or now)"},
          "created_at": {"type": "string", "format": "date-time"},
          "started_at": {"type": "string", "format": "date-time"},
          "finished_at": {"type": "string", "format": "date-time"},
          "attempts": {"type": "integer", "description": "Times a runner claimed it: more than 1 after a restart, a takeover or a release"},
          "cancel_requested": {"type": "boolean"},
          "owner": {"type": "string", "description": "The process that runs (or last ran) it: host-pid-random"},
          "replanned": {"type": "string", "description": "Why it was re-planned when it resumed (the configuration changed)"},
          "result": {"$ref": "#/components/schemas/SummarizeResponse"},
          "error": {"$ref": "#/components/schemas/ErrorBody"}
        }
      },
      "JobCancel": {
        "type": "object", "required": ["id", "state", "cancel_requested"],
        "properties": {"id": {"type": "string"}, "state": {"$ref": "#/components/schemas/JobState"},
                       "cancel_requested": {"type": "boolean", "description": "true: it was running and its owner is stopping it"}}
      },
      "JobEventStream": {
        "type": "array",
        "description": "Server-Sent Events, each `id: N`, `event: NAME` and `data: JSON`, shown here as {id, event, data} objects: state (queued at submission; running, with the attempt and any resumed steps, whenever a runner claims it; queued again, with the reason, when it is released), meta (its plan, and why it was re-planned), progress (after each step is committed), then done, error or cancelled, and the stream ends.",
        "items": {"oneOf": [{"$ref": "#/components/schemas/JobStateEvent"}, {"$ref": "#/components/schemas/JobMetaEvent"},
                            {"$ref": "#/components/schemas/JobProgressEvent"}, {"$ref": "#/components/schemas/DoneEvent"},
                            {"$ref": "#/components/schemas/ErrorEvent"}, {"$ref": "#/components/schemas/JobCancelledEvent"}]}
      },
      "JobStateEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "id": {"type": "integer"},
          "event": {"type": "string", "enum": ["state"]},
          "data": {"type": "object", "required": ["state"],
                   "properties": {"state": {"$ref": "#/components/schemas/JobState"}, "owner": {"type": "string"},
                                  "attempt": {"type": "integer"}, "resumed_steps": {"type": "integer"},
                                  "reason": {"type": "string"}}}
        }
      },
      "JobProgressEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "id": {"type": "integer"},
          "event": {"type": "string", "enum": ["progress"]},
          "data": {"type": "object", "required": ["phase", "done", "total", "level", "remaining_ms", "step"],
                   "properties": {"phase": {"type": "string", "enum": ["single", "map", "reduce"]},
                                  "done": {"type": "integer"}, "total": {"type": "integer"}, "level": {"type": "integer"},
                                  "remaining_ms": {"type": "integer", "description": "The executor's estimate of the time left, as of the step before this one (0 before the first estimate)"},
                                  "step": {"type": "object", "required": ["kind", "level", "index"],
                                           "properties": {"kind": {"type": "string", "enum": ["single", "map", "merge", "final"]},
                                                          "level": {"type": "integer"}, "index": {"type": "integer"}}}}}
        }
      },
      "JobCancelledEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "id": {"type": "integer"},
          "event": {"type": "string", "enum": ["cancelled"]},
          "data": {"type": "object", "required": ["state"],
                   "properties": {"state": {"type": "string", "enum": ["cancelled"]}, "reason": {"type": "string"}}}
        }
        },
      "UpstreamStatus": {
        "type": "object",
        "required": ["name", "kind", "url", "engine", "model", "health", "circuit", "slots", "inflight", "calls", "failures", "failovers", "context_tokens", "counts_tokens", "buckets", "loaded", "last_error"],
        "properties": {
          "name": {"type": "string"},
          "kind": {"type": "string", "enum": ["ollama", "openai"]},
          "url": {"type": "string"},
          "engine": {"type": "string", "enum": ["ollama", "vllm", "llama.cpp", "sglang", "unknown"], "description": "The server software, as recognised"},
          "model": {"type": "string", "nullable": true, "description": "openai: the model it serves; null for ollama and until known"},
          "health": {"type": "string", "enum": ["up", "avoided", "unknown"], "description": "avoided: it failed a call lately and is probed until it answers; other upstreams take its calls"},
          "circuit": {"type": "string", "enum": ["closed", "open", "half_open"]},
          "slots": {"type": "integer"}, "inflight": {"type": "integer"},
          "calls": {"type": "integer"}, "failures": {"type": "integer"},
          "failovers": {"type": "integer", "description": "Calls that failed here before any text reached the client and were retried on another upstream"},
          "context_tokens": {"type": "integer", "nullable": true, "description": "The context the engine states (vLLM max_model_len, llama.cpp n_ctx per slot); null when not stated"},
          "counts_tokens": {"type": "boolean", "description": "Answers POST /tokenize"},
          "buckets": {"type": "array", "description": "The buckets it serves", "items": {"$ref": "#/components/schemas/UpstreamBucket"}},
          "loaded": {"type": "array", "items": {"type": "string"}, "description": "Buckets loaded there now"},
          "last_error": {"type": "string", "nullable": true, "description": "The last failed call or probe; null after a success"},
          "reload_ms": {"type": "number", "description": "ollama only: learned runner load time"},
          "reloads_seen": {"type": "integer", "description": "ollama only: loads seen"}
        }
      },
      "UpstreamBucket": {
        "type": "object", "required": ["name", "num_ctx", "loaded", "pending_calls", "learned"],
        "properties": {
          "name": {"type": "string"}, "num_ctx": {"type": "integer", "description": "The context it is planned with there"},
          "loaded": {"type": "boolean"}, "pending_calls": {"type": "integer"},
          "learned": {"type": "object", "required": ["calls", "prefill_tokens_per_s", "decode_tokens_per_s", "mean_call_ms"],
                      "properties": {"calls": {"type": "integer"}, "prefill_tokens_per_s": {"type": "number"}, "decode_tokens_per_s": {"type": "number"},
                                     "mean_call_ms": {"type": "number"}}}
        }
      }
    }
  }
})JSON";
    return kDocument;
}

}  // namespace summarizer
