#include "summarizer/ollama_client.hpp"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/duration.hpp"
#include "summarizer/json_text.hpp"
#include "summarizer/ndjson.hpp"
#include "upstream_http.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string OllamaErrorText(const std::string& body) {
    try {
        auto doc = json::parse(body);
        if (doc.is_object() && doc.contains("error") && doc["error"].is_string()) return doc["error"].get<std::string>();
    } catch (const json::exception&) {
    }
    return body.substr(0, 300);
}

int64_t GetInt(const json& doc, const char* key) {
    auto it = doc.find(key);
    return it != doc.end() && it->is_number() ? it->get<int64_t>() : 0;
}

using upstream_http::Deadlines;
using upstream_http::Endpoint;
using upstream_http::MsSince;
using upstream_http::StopReason;

Endpoint EndpointOf(const OllamaClientOptions& options) {
    Endpoint e;
    e.base_url = options.base_url;
    e.api_key = options.api_key;
    e.connect_timeout_ms = options.connect_timeout_ms;
    return e;
}

std::unique_ptr<httplib::Client> MakeClient(const OllamaClientOptions& options, int read_timeout_s) {
    return upstream_http::MakeClient(EndpointOf(options), std::chrono::seconds(read_timeout_s));
}

// A call that could not connect (`connect_failed`) or broke off; `detail` says how.
Error TransportError(bool connect_failed, const std::string& detail, const std::string& url) {
    if (connect_failed) {
        return MakeError(ErrorCode::kUpstreamUnreachable,
                         "cannot connect to Ollama at " + url + " (" + detail +
                             "): start it (`ollama serve`) or set OLLAMA_HOST",
                         /*retryable=*/true);
    }
    return MakeError(ErrorCode::kUpstreamError, "Ollama at " + url + " broke off the response (" + detail + ")",
                     /*retryable=*/true);
}

Error TransportError(httplib::Error error, const std::string& url) {
    return TransportError(upstream_http::ConnectFailed(error), httplib::to_string(error), url);
}

Error TransportError(const upstream_http::StreamConnection::Outcome& outcome, const std::string& url) {
    return TransportError(outcome.connect_failed, outcome.detail, url);
}

Result<json> GetJson(const OllamaClientOptions& options, const std::string& path) {
    auto client = MakeClient(options, std::max(5, options.idle_timeout_s));
    auto res = client->Get(path.c_str());
    if (!res) return TransportError(res.error(), options.base_url);
    if (res->status != 200) return ErrorFromOllamaStatus(res->status, res->body, "");
    try {
        return json::parse(res->body);
    } catch (const json::exception& e) {
        return MakeError(ErrorCode::kUpstreamError, "Ollama sent malformed JSON for " + path + ": " + e.what());
    }
}

}  // namespace

OllamaClientOptions OllamaClientOptions::FromConfig(const OllamaConfig& config) {
    OllamaClientOptions options;
    options.base_url = NormalizeOllamaHost(config.url).value_or(config.url);
    options.connect_timeout_ms = config.connect_timeout_ms;
    options.first_token_timeout_s = config.first_token_timeout_s;
    options.idle_timeout_s = config.idle_timeout_s;
    options.total_timeout_s = config.total_timeout_s;
    options.max_retries = config.max_retries;
    options.retry_backoff_ms = config.retry_backoff_ms;
    options.retry_budget_s = config.retry_budget_s;
    return options;
}

OllamaClient::OllamaClient(OllamaClientOptions options)
    : options_(std::move(options)),
      pool_(std::make_unique<upstream_http::ConnectionPool>(EndpointOf(options_))),
      watchdog_(std::make_unique<upstream_http::Watchdog>()) {}

OllamaClient::~OllamaClient() = default;

json KeepAliveJson(const std::string& keep_alive) {
    // Ollama reads a keep_alive string as a Go duration ("24h"): a bare number of seconds ("90", "-1") must
    // be a JSON number, or it is refused ("missing unit in duration").
    const size_t b = keep_alive.find_first_not_of(" \t"), e = keep_alive.find_last_not_of(" \t");
    const std::string trimmed = b == std::string::npos ? "" : keep_alive.substr(b, e - b + 1);
    if (auto seconds = ParseBareSeconds(trimmed)) {
        if (*seconds == std::floor(*seconds) && std::abs(*seconds) < 1e15) return static_cast<int64_t>(*seconds);
        return *seconds;
    }
    return trimmed;
}

namespace {

// The "options" object's text. A bucket's options are the same on every call, so each thread keeps
// the last one it wrote (building and writing the document, two doubles included, was half of the
// body's cost once the prompt was written without one).
const std::string& GenerateOptionsText(const GenerateRequest& request) {
    using Key = std::tuple<int64_t, int64_t, int64_t, double, double>;
    thread_local std::optional<Key> last_key;
    thread_local std::string last_text;
    const Key key{request.context_tokens, request.max_output_tokens, request.num_batch, request.temperature,
                  request.repeat_penalty};
    if (last_key != key) {
        const json options = {
            {"num_ctx", request.context_tokens},
            {"num_predict", request.max_output_tokens},
            {"num_batch", request.num_batch},
            {"temperature", request.temperature},
            {"repeat_penalty", request.repeat_penalty},
        };
        last_text = options.dump();
        last_key = key;
    }
    return last_text;
}

}  // namespace

std::string BuildGenerateBody(const GenerateRequest& request) {
    // Written member by member, in the order a json object's dump gives (sorted), the prompt and
    // system without a document (json_text.hpp): they are most of the bytes.
    std::string body;
    body.reserve(request.prompt.size() + request.system.size() + 256);
    body += "{\"keep_alive\":";
    body += KeepAliveJson(request.keep_alive).dump(-1, ' ', false, json::error_handler_t::replace);
    body += ",\"model\":";
    AppendJsonString(body, request.model);
    body += ",\"options\":";
    body += GenerateOptionsText(request);
    body += ",\"prompt\":";
    AppendJsonString(body, request.prompt);
    body += ",\"stream\":true";
    if (!request.system.empty()) {
        body += ",\"system\":";
        AppendJsonString(body, request.system);
    }
    // Ollama >= 0.12.4 refuses an over-long prompt instead of silently cutting its head.
    body += ",\"truncate\":false}";
    return body;
}

Error ErrorFromOllamaStatus(int status, const std::string& body, const std::string& model) {
    std::string text = OllamaErrorText(body);
    std::string prefix = "Ollama answered " + std::to_string(status) + ": " + text;
    if (status == 404) {
        std::string fix = model.empty() ? "" : " Create it: `ollama create " + model + " -f config/Modelfile.<bucket>` "
                                                "(after `ollama pull gemma3:4b`).";
        return MakeError(ErrorCode::kUpstreamUnavailable, prefix + "." + fix);
    }
    if (status == 400 && text.find("exceeds the context length") != std::string::npos) {
        return MakeError(ErrorCode::kContextOverflow, prefix);
    }
    if (status == 503 || status == 429) {
        // "server busy, please try again. maximum pending requests exceeded" (OLLAMA_MAX_QUEUE): the
        // server is fine, its queue is full. Retried; after that the client is told to come back later.
        return MakeError(ErrorCode::kUpstreamBusy, prefix, /*retryable=*/true);
    }
    bool transient = status == 500 || status == 502;
    return MakeError(ErrorCode::kUpstreamError, prefix, transient);
}

Result<GenerateResult> OllamaClient::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                              const CancelToken& cancel) {
    // A transient failure is retried only while nothing has reached the caller: text already
    // streamed to a client cannot be taken back.
    bool delivered = false;
    TokenCallback tracked = [&](std::string_view piece) {
        delivered = true;
        if (on_token) on_token(piece);
    };
    const auto first_attempt = Clock::now();
    for (int attempt = 0;; ++attempt) {
        auto result = GenerateOnce(request, tracked, cancel);
        if (result.ok() || !result.error().retryable || delivered || attempt >= options_.max_retries) return result;
        // Seeded here, on a retry only: a request's thread is often new, and seeding costs more than a call.
        thread_local std::mt19937 rng{std::random_device{}()};
        double backoff_ms = options_.retry_backoff_ms * std::pow(2.0, attempt);
        backoff_ms *= std::uniform_real_distribution<double>(0.5, 1.5)(rng);
        // Attempts are bounded by max_retries, and their total time by the retry budget: a retry
        // that would start after it is not made (each attempt is itself bounded by the time-outs).
        if (MsSince(first_attempt) + backoff_ms > options_.retry_budget_s * 1000.0) {
            spdlog::warn("ollama call {} failed ({}); not retried: the retry budget of {} s is spent", request.tag,
                         result.error().message, options_.retry_budget_s);
            return result;
        }
        spdlog::warn("ollama call {} failed ({}); retry {}/{} in {:.0f} ms", request.tag, result.error().message,
                     attempt + 1, options_.max_retries, backoff_ms);
        auto until = Clock::now() + std::chrono::duration<double, std::milli>(backoff_ms);
        while (Clock::now() < until) {
            if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled while waiting to retry");
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
}

Result<GenerateResult> OllamaClient::GenerateOnce(const GenerateRequest& request, const TokenCallback& on_token,
                                                  const CancelToken& cancel) {
    if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled before sending");
    const auto start = Clock::now();
    auto connection = pool_->Take();

    // The watchdog is the only thread besides this one that touches `connection`, and only to Stop().
    std::atomic<int64_t> last_line_ns{0};  // ns since start of the last line; 0 = none yet
    std::atomic<StopReason> stop_reason{StopReason::kNone};
    const Deadlines deadlines{options_.first_token_timeout_s, options_.idle_timeout_s, options_.total_timeout_s};
    const uint64_t watch = watchdog_->Add({&deadlines, &cancel, connection.get(), start, &last_line_ns, &stop_reason});

    GenerateResult result;
    std::optional<Error> stream_error;
    bool final_seen = false;
    NdjsonReader reader;

    std::string scratch;
    auto on_line = [&](std::string_view line) -> bool {
        last_line_ns = std::max<int64_t>(1, static_cast<int64_t>(MsSince(start) * 1e6));
        auto parsed = ParseOllamaLine(WithoutOllamaContext(line, scratch));
        if (!parsed.ok()) {
            stream_error = parsed.error();
            return false;
        }
        OllamaLine& doc = *parsed;
        if (doc.error) {
            stream_error = MakeError(ErrorCode::kUpstreamError, "Ollama failed mid-stream: " + *doc.error, true);
            return false;
        }
        if (!doc.response.empty()) {
            if (result.text.empty()) result.ttft = std::chrono::duration_cast<GenerateResult::Duration>(Clock::now() - start);
            result.text += doc.response;
            if (on_token) on_token(doc.response);
        }
        if (doc.done) {
            final_seen = true;
            result.finish_reason = std::move(doc.done_reason);
            result.prompt_tokens = doc.prompt_eval_count;
            result.output_tokens = doc.eval_count;
            // Ollama's durations are nanoseconds.
            result.total = std::chrono::nanoseconds(doc.total_duration);
            result.load = std::chrono::nanoseconds(doc.load_duration);
            result.prefill = std::chrono::nanoseconds(doc.prompt_eval_duration);
            result.decode = std::chrono::nanoseconds(doc.eval_duration);
        }
        return !cancel.cancelled();
    };

    const auto outcome = connection->Post(
        "/api/generate", BuildGenerateBody(request), "application/x-ndjson", cancel,
        [&](const char* data, size_t length) { return reader.Feed(std::string_view(data, length), on_line); });
    const bool sent = outcome.ok;
    const int status = outcome.status;
    watchdog_->Remove(watch);
    // A response read to its end leaves the connection to the next call, whatever it said.
    pool_->Return(std::move(connection));
    result.wall = std::chrono::duration_cast<GenerateResult::Duration>(Clock::now() - start);

    // The final object may arrive without a trailing newline.
    if (sent && status == 200 && !final_seen && !stream_error && !reader.pending().empty() && !reader.overflowed()) {
        std::string rest(reader.pending());
        on_line(rest);
    }

    if (auto stopped = upstream_http::StopError(stop_reason.load(), deadlines, "Ollama")) return *stopped;
    if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled; upstream connection closed");
    if (stream_error) return *stream_error;
    if (reader.overflowed()) return MakeError(ErrorCode::kUpstreamError, "Ollama sent a line over 16 MiB", false);
    if (status != 0 && status != 200) return ErrorFromOllamaStatus(status, outcome.error_body, request.model);
    if (!sent) {
        if (status == 200) {
            return MakeError(ErrorCode::kUpstreamError,
                             "Ollama closed the connection mid-stream (" + outcome.detail + ") after " +
                                 std::to_string(result.text.size()) + " bytes",
                             true);
        }
        return TransportError(outcome, options_.base_url);
    }
    if (!final_seen) {
        return MakeError(ErrorCode::kUpstreamError, "Ollama's stream ended without its final (done) object", true);
    }
    return result;
}

Result<EngineHealth> OllamaClient::Health() {
    auto doc = GetJson(options_, "/api/tags");
    if (!doc.ok()) return doc.error();
    EngineHealth health;
    for (const auto& model : doc->value("models", json::array())) {
        if (model.is_object() && model.contains("name") && model["name"].is_string()) {
            health.models.push_back(model["name"].get<std::string>());
        }
    }
    return health;
}

Result<std::vector<LoadedModel>> OllamaClient::ListLoaded() {
    auto doc = GetJson(options_, "/api/ps");
    if (!doc.ok()) return doc.error();
    std::vector<LoadedModel> loaded;
    for (const auto& model : doc->value("models", json::array())) {
        if (!model.is_object()) continue;
        LoadedModel m;
        m.name = model.value("name", "");
        m.size_bytes = GetInt(model, "size");
        m.size_vram_bytes = GetInt(model, "size_vram");
        m.context_length = GetInt(model, "context_length");
        m.expires_at = model.value("expires_at", "");
        loaded.push_back(std::move(m));
    }
    return loaded;
}

Result<GenerateResult> OllamaClient::Load(const std::string& model, int context_tokens, const std::string& keep_alive) {
    auto client = MakeClient(options_, options_.first_token_timeout_s);
    json body = {{"model", model}, {"prompt", ""}, {"stream", false}, {"keep_alive", KeepAliveJson(keep_alive)}};
    if (context_tokens > 0) body["options"] = {{"num_ctx", context_tokens}};
    const auto start = Clock::now();
    auto res = client->Post("/api/generate", body.dump(), "application/json");
    if (!res) return TransportError(res.error(), options_.base_url);
    if (res->status != 200) return ErrorFromOllamaStatus(res->status, res->body, model);
    GenerateResult result;
    result.wall = std::chrono::duration_cast<GenerateResult::Duration>(Clock::now() - start);
    try {
        auto doc = json::parse(res->body);
        result.finish_reason = doc.value("done_reason", "");
        result.load = std::chrono::nanoseconds(GetInt(doc, "load_duration"));
        result.total = std::chrono::nanoseconds(GetInt(doc, "total_duration"));
    } catch (const json::exception& e) {
        return MakeError(ErrorCode::kUpstreamError, std::string("Ollama sent malformed JSON for a load: ") + e.what());
    }
    return result;
}

}  // namespace summarizer
