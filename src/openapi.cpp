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
  "tags": [{"name": "summarize", "description": "Summaries and plans"}, {"name": "operations", "description": "Health, readiness, status, metrics"}],
  "security": [{}, {"bearerAuth": []}],
  "paths": {
    "/summarize": {
      "post": {
        "tags": ["summarize"],
        "operationId": "summarize",
        "summary": "Summarize a text",
        "description": "JSON body, or text/plain with the options as query parameters. With stream=true or Accept: text/event-stream the answer is Server-Sent Events: meta, progress (map-reduce), delta, then done or error. When Ollama cannot be reached (or the circuit to it is open) and degraded.extractive_fallback is on (the default), the answer is an extractive summary computed in-process: route \"extractive\", model \"none\", degraded true; a stream that had announced another route gets a second meta event with route \"extractive\" before its single delta.",
        "parameters": [
          {"$ref": "#/components/parameters/Language"}, {"$ref": "#/components/parameters/Style"},
          {"$ref": "#/components/parameters/MaxTokens"}, {"$ref": "#/components/parameters/Stream"},
          {"$ref": "#/components/parameters/StrategyParam"}, {"$ref": "#/components/parameters/RequestId"}
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
    "/healthz": {
      "get": {"tags": ["operations"], "operationId": "healthz", "summary": "Liveness", "security": [],
              "responses": {"200": {"description": "The process serves", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}
    },
    "/readyz": {
      "get": {"tags": ["operations"], "operationId": "readyz", "summary": "Readiness: for every bucket, an upstream answers and has its model (ready while at least one upstream serves each)", "security": [],
              "responses": {"200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                            "503": {"description": "Not ready, with the reason", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}
    },
    "/status": {
      "get": {"tags": ["operations"], "operationId": "status", "summary": "Configuration in force, what Ollama has loaded, and every upstream of the pool",
              "responses": {"200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
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
      "RequestId": {"description": "The request id (the client's X-Request-Id if it sent one)", "schema": {"type": "string"}}
    },
    "parameters": {
      "Language": {"name": "language", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "string", "default": "auto"}},
      "Style": {"name": "style", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"}},
      "MaxTokens": {"name": "max_tokens", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "integer", "minimum": 1}},
      "Stream": {"name": "stream", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"type": "boolean", "default": false}},
      "StrategyParam": {"name": "strategy", "in": "query", "required": false, "description": "text/plain bodies only", "schema": {"$ref": "#/components/schemas/Strategy"}},
      "RequestId": {"name": "X-Request-Id", "in": "header", "required": false, "description": "Echoed back; generated when absent", "schema": {"type": "string", "maxLength": 128}}
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
      "Overloaded": {"description": "`overloaded`: the request queue is full, or no slot became free within server.queue_timeout_s; retry after the Retry-After delay",
                     "headers": {"Retry-After": {"description": "Whole seconds to wait: the queue position over the measured throughput", "schema": {"type": "integer", "minimum": 1}},
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
        "required": ["summary", "route", "model", "chunks", "levels", "degraded", "usage", "timings", "request_id"],
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
          "reason": {"type": "string", "description": "Why this route: the plan's reason, and any re-plan after Ollama found a prompt over num_ctx"}
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
          "event": {"type": "string", "enum": ["meta"]},
          "data": {"type": "object", "required": ["request_id", "route", "model", "chunks"],
                   "properties": {"request_id": {"type": "string"}, "route": {"$ref": "#/components/schemas/Route"},
                                  "model": {"type": "string"}, "chunks": {"type": "integer"},
                                  "degraded": {"type": "boolean", "description": "true: the extractive fallback (a second meta follows an LLM route's when Ollama turned out unreachable)"}}}
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
        "properties": {"event": {"type": "string", "enum": ["done"]}, "data": {"$ref": "#/components/schemas/SummarizeResponse"}}
      },
      "ErrorEvent": {
        "type": "object", "required": ["event", "data"],
        "properties": {"event": {"type": "string", "enum": ["error"]}, "data": {"$ref": "#/components/schemas/Error"}}
      },
      "Health": {"type": "object", "required": ["status"],
                 "properties": {"status": {"type": "string", "enum": ["ok", "ready", "unavailable"]},
                                "reason": {"type": "string", "description": "Why the service is not ready, and how to fix it"},
                                "missing_models": {"type": "array", "items": {"type": "string"}},
                                "ollama": {"type": "string", "description": "The Ollama URL in use"},
                                "circuit": {"type": "string", "enum": ["closed", "open", "half_open"], "description": "/readyz when not ready: the circuit breakers to the upstreams (open when every upstream's is)"},
                                "degraded": {"type": "string", "description": "/readyz: present while summaries are extractive"},
                                "upstreams": {"type": "object", "additionalProperties": {"type": "string"}, "description": "/readyz with several upstreams: each one's state, \"ready\" or why not"}}},
      "Status": {"type": "object", "additionalProperties": true,
                 "properties": {"upstreams": {"type": "array", "items": {"$ref": "#/components/schemas/UpstreamStatus"}, "description": "Every upstream of the pool, in the configured order (one named ollama when only OLLAMA_HOST is set)"},
                                "token_counts": {"type": "object", "description": "Exact prompt token counts asked of the engines' tokenizers (POST /tokenize)",
                                                 "properties": {"engine": {"type": "integer"}, "cache": {"type": "integer"}, "estimated": {"type": "integer"}, "cached_entries": {"type": "integer"}}}}},
      "UpstreamStatus": {"type": "object", "required": ["name", "kind", "url", "health", "circuit", "slots", "inflight", "buckets", "loaded"],
                         "properties": {"name": {"type": "string"},
                                        "kind": {"type": "string", "enum": ["ollama", "openai"]},
                                        "url": {"type": "string"},
                                        "engine": {"type": "string", "description": "ollama, vllm, llama.cpp, sglang or unknown"},
                                        "model": {"type": "string", "nullable": true, "description": "openai: the model it serves"},
                                        "health": {"type": "string", "enum": ["up", "avoided", "unknown"], "description": "avoided: it failed a call lately and is probed until it answers; other upstreams take its calls"},
                                        "circuit": {"type": "string", "enum": ["closed", "open", "half_open"]},
                                        "slots": {"type": "integer"}, "inflight": {"type": "integer"},
                                        "calls": {"type": "integer"}, "failures": {"type": "integer"},
                                        "failovers": {"type": "integer", "description": "Calls that failed here before any text reached the client and were retried on another upstream"},
                                        "context_tokens": {"type": "integer", "nullable": true, "description": "The context the engine states (vLLM max_model_len, llama.cpp n_ctx per slot)"},
                                        "counts_tokens": {"type": "boolean", "description": "Answers POST /tokenize"},
                                        "buckets": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "num_ctx": {"type": "integer"}, "loaded": {"type": "boolean"}, "pending_calls": {"type": "integer"}, "learned": {"type": "object", "additionalProperties": true}}}},
                                        "loaded": {"type": "array", "items": {"type": "string"}},
                                        "last_error": {"type": "string", "nullable": true},
                                        "reload_ms": {"type": "number"}, "reloads_seen": {"type": "integer"}}},
      "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"],
          "properties": {
            "code": {"type": "string", "enum": ["invalid_json", "invalid_request", "unauthorized", "payload_too_large", "unsupported_media_type", "input_too_large", "overloaded", "upstream_error", "upstream_unavailable", "upstream_timeout", "not_found", "internal_error"]},
            "message": {"type": "string"},
            "request_id": {"type": "string"}}}}
      }
    }
  }
})JSON";
    return kDocument;
}

}  // namespace summarizer
