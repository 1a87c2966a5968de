#include "summarizer/openapi.hpp"

namespace summarizer {

std::string_view OpenApiDocument() {
    static constexpr std::string_view kDocument = R"JSON({
  "openapi": "3.0.3",
  "info": {
    "title": "summarizer",
    "version": "1.0.0",
    "description": "Summarization service in front of Ollama: routes each text to the 16K bucket, the 60K bucket, or a parallel map-reduce, and never sends a prompt that does not fit.",
    "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"}
  },
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "tags": [{"name": "summarize", "description": "Summaries and plans"}, {"name": "jobs", "description": "Durable summaries: jobs that survive disconnects and restarts (docs/JOBS.md)"}, {"name": "operations", "description": "Health, readiness, status, metrics"}],
  "security": [{}, {"bearerAuth": []}],
  "paths": {
    "/summarize": {
      "post": {
        "tags": ["summarize"],
        "operationId": "summarize",
        "summary": "Summarize a text",
        "description": "JSON body, or text/plain with the options as query parameters. With stream=true or Accept: text/event-stream the answer is Server-Sent Events: meta, progress (map-reduce), delta, then done or error. When Ollama cannot be reached (or the circuit to it is open) and degraded.extractive_fallback is on (the default), the answer is an extractive summary computed in-process: route \"extractive\", model \"none\", degraded true; a stream that had announced another route gets a second meta event with route \"extractive\" before its single delta. With a job store (jobs.cache, the default) the same text with the same options and model configuration is answered from the earlier run (\"cached\": true, no upstream call; a stream gets meta, the summary as one delta, done), or waits for a run of it that is going on; Cache-Control: no-cache forces new work.",
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
          "413": {"$ref": "#/components/responses/PayloadTooLarge"}, "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/InputTooLarge"}, "429": {"$ref": "#/components/responses/Overloaded"},
          "502": {"$ref": "#/components/responses/UpstreamError"}, "503": {"$ref": "#/components/responses/UpstreamUnavailable"},
          "504": {"$ref": "#/components/responses/UpstreamTimeout"}
        }
      }
    },
    "/summarize/plan": {
      "post": {
        "tags": ["summarize"],
        "operationId": "plan",
        "summary": "Show the route a text would take; nothing is generated",
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
          "413": {"$ref": "#/components/responses/PayloadTooLarge"}, "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/InputTooLarge"}
        }
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
          "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
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
          "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"},
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
          "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"},
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
          "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
          "404": {"$ref": "#/components/responses/NotFound"}, "503": {"$ref": "#/components/responses/StoreUnavailable"}
        }
      }
    },
    "/healthz": {
      "get": {"tags": ["operations"], "operationId": "healthz", "summary": "Liveness", "security": [],
              "responses": {"200": {"description": "The process serves", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}
    },
    "/readyz": {
      "get": {"tags": ["operations"], "operationId": "readyz", "summary": "Readiness: Ollama answers and every bucket model exists", "security": [],
              "responses": {"200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                            "503": {"description": "Not ready, with the reason", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}
    },
    "/status": {
      "get": {"tags": ["operations"], "operationId": "status", "summary": "Configuration in force and what Ollama has loaded",
              "responses": {"200": {"description": "Status", "content": {"application/json": {"schema": {"type": "object", "additionalProperties": true}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/metrics": {
      "get": {"tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics",
              "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/openapi.json": {
      "get": {"tags": ["operations"], "operationId": "openapi", "summary": "This document", "security": [],
              "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    },
    "/": {
      "get": {"tags": ["operations"], "operationId": "page", "summary": "A page to paste a text and watch its summary stream", "security": [],
              "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}
    }
  },
  "components": {
    "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "Only when SUMMARIZER_API_KEY is set"}},
    "headers": {
      "RequestId": {"description": "The request id (the client's X-Request-Id if it sent one)", "schema": {"type": "string"}},
      "Location": {"description": "The job's URL: /jobs/{id}", "schema": {"type": "string"}}
    },
    "parameters": {
      "Language": {"name": "language", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "string", "default": "auto"}},
      "Style": {"name": "style", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"}},
      "MaxTokens": {"name": "max_tokens", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "integer", "minimum": 1}},
      "Stream": {"name": "stream", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "boolean", "default": false}},
      "StrategyParam": {"name": "strategy", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"$ref": "#/components/schemas/Strategy"}},
      "RequestId": {"name": "X-Request-Id", "in": "header", "required": false, "description": "Echoed back; generated when absent", "schema": {"type": "string", "maxLength": 128}},
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
      "BadRequest": {"description": "`invalid_json`: the body is not JSON; `invalid_request`: a wrong or unknown field (named in the message), blank text, or bad UTF-8", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "`unauthorized`: an API key is configured (SUMMARIZER_API_KEY) and the request lacks `Authorization: Bearer <key>`", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PayloadTooLarge": {"description": "`payload_too_large`: the body is over server.max_body_bytes", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UnsupportedMediaType": {"description": "`unsupported_media_type`: the Content-Type is neither application/json nor text/plain", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "InputTooLarge": {"description": "`input_too_large`: strategy \"single\" and the text fits no bucket", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamError": {"description": "`upstream_error`: Ollama answered with an error or broke off mid-stream, after retries", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamUnavailable": {"description": "`upstream_unavailable`: Ollama cannot be reached, or a bucket model is missing (the message names the `ollama pull` / `ollama create` command)", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UpstreamTimeout": {"description": "`upstream_timeout`: Ollama did not answer in time", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "`not_found`: no such job (never created, or deleted by retention)", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Conflict": {"description": "`conflict`: the Idempotency-Key was used before for another text or options", "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "StoreUnavailable": {"description": "`store_unavailable`: the job store cannot be used now (its file unwritable, the disk full, the database locked, PostgreSQL unreachable or restarting), or jobs are off (jobs.database = off); the message says which",
                "headers": {"Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer", "minimum": 1}},
                            "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Overloaded": {"description": "`overloaded`: the request queue is full, or no slot became free within server.queue_timeout_s; retry after the Retry-After delay. Map-reduce requests wait in a queue of their own (server.max_batch_inflight, server.max_batch_queue), so a short request is admitted while long ones run",
                     "headers": {"Retry-After": {"description": "Whole seconds to wait: the estimated GPU time of the work running and waiting ahead, over the upstream's slots", "schema": {"type": "integer", "minimum": 1}},
                                 "X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "Strategy": {"type": "string", "enum": ["auto", "single", "map_reduce"], "default": "auto"},
      "Route": {"type": "string", "enum": ["16k", "60k", "map_reduce", "extractive"], "description": "extractive: the degraded in-process answer (never planned by /summarize/plan)"},
      "SummarizeRequest": {
        "type": "object", "additionalProperties": false, "required": ["text"],
        "properties": {
          "text": {"type": "string", "minLength": 1, "description": "UTF-8, not blank"},
          "language": {"type": "string", "default": "auto", "description": "\"auto\" = the input's language, or a code such as \"ja\", \"en\""},
          "style": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"},
          "max_tokens": {"type": "integer", "minimum": 1, "description": "Cap on generated tokens; default config num_predict (1200)"},
          "stream": {"type": "boolean", "default": false},
          "strategy": {"$ref": "#/components/schemas/Strategy"}
        }
      },
      "SummarizeResponse": {
        "type": "object",
        "required": ["summary", "route", "model", "chunks", "levels", "degraded", "usage", "timings", "request_id", "cached"],
        "properties": {
          "summary": {"type": "string"},
          "route": {"$ref": "#/components/schemas/Route"},
          "model": {"type": "string"},
          "chunks": {"type": "integer"},
          "levels": {"type": "integer"},
          "degraded": {"type": "boolean", "description": "true: Ollama was unreachable and the summary is extractive (sentences of the text, route extractive)"},
          "usage": {"type": "object", "required": ["prompt_tokens", "completion_tokens", "upstream_requests"],
                    "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "upstream_requests": {"type": "integer"}}},
          "timings": {"type": "object",
                      "required": ["total_ms", "queue_ms", "ttft_ms", "load_ms", "prefill_tokens_per_s", "decode_tokens_per_s"],
                      "properties": {"total_ms": {"type": "number"}, "queue_ms": {"type": "number"}, "ttft_ms": {"type": "number"},
                                     "load_ms": {"type": "number"}, "prefill_tokens_per_s": {"type": "number"}, "decode_tokens_per_s": {"type": "number"}}},
          "request_id": {"type": "string"},
          "reason": {"type": "string", "description": "Why this route: the plan's reason, and any re-plan after Ollama found a prompt over num_ctx"},
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
          "estimated_prompt_tokens": {"type": "integer"},
          "chunks": {"type": "array", "items": {"type": "object", "required": ["chars", "estimated_tokens"],
                     "properties": {"chars": {"type": "integer"}, "estimated_tokens": {"type": "integer"}}}},
          "reason": {"type": "string"}
        }
      },
      "SummarizeStream": {
        "type": "array",
        "description": "Server-Sent Events, each `event: NAME` and `data: JSON` (one line) followed by a blank line, shown here as {event, data} objects. In this order: meta; progress (map-reduce only, once per finished map or reduce call); delta (pieces of the final summary as they are generated); then done, or error and the stream ends. A client that disconnects cancels its upstream generation at once.",
        "items": {"oneOf": [{"$ref": "#/components/schemas/MetaEvent"}, {"$ref": "#/components/schemas/ProgressEvent"},
                            {"$ref": "#/components/schemas/DeltaEvent"}, {"$ref": "#/components/schemas/DoneEvent"},
                            {"$ref": "#/components/schemas/ErrorEvent"}]}
      },
      "MetaEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "id": {"type": "integer", "description": "A job's events only"},
          "event": {"type": "string", "enum": ["meta"]},
          "data": {"type": "object", "required": ["request_id", "route", "model", "chunks"],
                   "properties": {"request_id": {"type": "string"}, "route": {"$ref": "#/components/schemas/Route"},
                                  "model": {"type": "string"}, "chunks": {"type": "integer"},
                                  "degraded": {"type": "boolean", "description": "true: the extractive fallback (a second meta follows an LLM route's when Ollama turned out unreachable)"},
                                  "replanned": {"type": "string", "description": "A job's events: why it was re-planned when it resumed"}}}
        }
      },
      "ProgressEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {
          "event": {"type": "string", "enum": ["progress"]},
          "data": {"type": "object", "required": ["phase", "done", "total"],
                   "properties": {"phase": {"type": "string", "enum": ["map", "reduce"]}, "done": {"type": "integer"},
                                  "total": {"type": "integer"}}}
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
      "Health": {"type": "object", "required": ["status"],
                 "properties": {"status": {"type": "string", "enum": ["ok", "ready", "unavailable"]},
                                "reason": {"type": "string", "description": "Why the service is not ready, and how to fix it"},
                                "missing_models": {"type": "array", "items": {"type": "string"}},
                                "ollama": {"type": "string", "description": "The Ollama URL in use"},
                                "circuit": {"type": "string", "enum": ["closed", "open", "half_open"], "description": "/readyz when not ready: the circuit breaker to Ollama"},
                                "degraded": {"type": "string", "description": "/readyz: present while summaries are extractive"}}},
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}},
      "ErrorBody": {
        "type": "object", "required": ["code", "message", "request_id"],
        "properties": {
          "code": {"type": "string", "enum": ["invalid_json", "invalid_request", "unauthorized", "payload_too_large", "unsupported_media_type", "input_too_large", "overloaded", "upstream_error", "upstream_unavailable", "upstream_timeout", "not_found", "conflict", "store_unavailable", "internal_error"]},
          "message": {"type": "string"},
          "request_id": {"type": "string", "description": "For a job's error: the job's id"}}
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
        "items": {"oneOf": [{"$ref": "#/components/schemas/JobStateEvent"}, {"$ref": "#/components/schemas/MetaEvent"},
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
          "data": {"type": "object", "required": ["phase", "done", "total", "level", "step"],
                   "properties": {"phase": {"type": "string", "enum": ["single", "map", "reduce"]},
                                  "done": {"type": "integer"}, "total": {"type": "integer"}, "level": {"type": "integer"},
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
      }
    }
  }
})JSON";
    return kDocument;
}

}  // namespace summarizer
