#include "summarizer/openai_client.hpp"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/json_text.hpp"
#include "summarizer/sse.hpp"
#include "upstream_http.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using upstream_http::Clock;
using upstream_http::Deadlines;
using upstream_http::Endpoint;
using upstream_http::MsSince;
using upstream_http::StopReason;
using Ns = std::chrono::nanoseconds;

std::string Lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

// The first integer at or after `from` in `text` (digits with optional thousands commas); 0 when none
// starts within a few characters.
int64_t NumberAfter(std::string_view text, size_t from) {
    size_t i = from;
    while (i < text.size() && i < from + 8 && !std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    int64_t value = 0;
    bool any = false;
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (std::isdigit(static_cast<unsigned char>(c))) {
            value = value * 10 + (c - '0');
            any = true;
        } else if (c != ',' || !any) {
            break;
        }
    }
    return any ? value : 0;
}

// The integer right after the first occurrence of `phrase` in `lower`; 0 when absent.
int64_t NumberAfterPhrase(std::string_view lower, std::string_view phrase) {
    const size_t at = lower.find(phrase);
    return at == std::string_view::npos ? 0 : NumberAfter(lower, at + phrase.size());
}

// The integer right before `phrase` ("(12000 in the messages"), scanning back over one space.
int64_t NumberBefore(std::string_view lower, std::string_view phrase) {
    const size_t at = lower.find(phrase);
    if (at == std::string_view::npos || at == 0) return 0;
    size_t end = at;
    while (end > 0 && lower[end - 1] == ' ') --end;
    size_t begin = end;
    while (begin > 0 && (std::isdigit(static_cast<unsigned char>(lower[begin - 1])) || lower[begin - 1] == ',')) --begin;
    return begin < end ? NumberAfter(lower, begin) : 0;
}

// The error message of a body: {"error": {"message"}} (vLLM, llama.cpp), {"message"} (older vLLM,
// SGLang), {"error": "..."}, {"detail": ...} (FastAPI validation); else the body's start.
std::string ErrorText(const std::string& body) {
    try {
        const auto doc = json::parse(body);
        if (doc.is_object()) {
            if (auto e = doc.find("error"); e != doc.end()) {
                if (e->is_string()) return e->get<std::string>();
                if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) {
                    return (*e)["message"].get<std::string>();
                }
            }
            if (auto m = doc.find("message"); m != doc.end() && m->is_string()) return m->get<std::string>();
            if (auto d = doc.find("detail"); d != doc.end()) return d->is_string() ? d->get<std::string>() : d->dump();
        }
    } catch (const json::exception&) {
    }
    return body.substr(0, 300);
}

int64_t IntField(const json& doc, const char* key) {
    auto it = doc.find(key);
    return it != doc.end() && it->is_number() ? it->get<int64_t>() : 0;
}

double NumberField(const json& doc, const char* key) {
    auto it = doc.find(key);
    return it != doc.end() && it->is_number() ? it->get<double>() : 0.0;
}

Ns Millis(double ms) { return std::chrono::duration_cast<Ns>(std::chrono::duration<double, std::milli>(ms)); }

std::string Who(const OpenAiClientOptions& o) { return "upstream " + o.name + " (" + o.url + ")"; }

// A call that could not connect (`connect_failed`) or broke off; `detail` says how.
Error TransportError(bool connect_failed, const std::string& detail, const OpenAiClientOptions& o) {
    if (connect_failed) {
        return MakeError(ErrorCode::kUpstreamUnreachable,
                         "cannot connect to " + Who(o) + " (" + detail + "): is the engine running? (upstreams." + o.name +
                             ".url)",
                         /*retryable=*/true);
    }
    return MakeError(ErrorCode::kUpstreamError, Who(o) + " broke off the response (" + detail + ")",
                     /*retryable=*/true);
}

Error TransportError(httplib::Error error, const OpenAiClientOptions& o) {
    return TransportError(upstream_http::ConnectFailed(error), httplib::to_string(error), o);
}

Error TransportError(const upstream_http::StreamConnection::Outcome& outcome, const OpenAiClientOptions& o) {
    return TransportError(outcome.connect_failed, outcome.detail, o);
}

Endpoint EndpointOf(const OpenAiClientOptions& o) {
    Endpoint e = upstream_http::SplitUrl(o.url);
    e.api_key = o.api_key;
    e.connect_timeout_ms = o.connect_timeout_ms;
    return e;
}

// One GET or POST of a small JSON document.
Result<json> JsonCall(const OpenAiClientOptions& o, const std::string& method, const std::string& path,
                      const json* body, std::chrono::milliseconds timeout, int* status_out = nullptr) {
    const Endpoint e = EndpointOf(o);
    auto client = upstream_http::MakeClient(e, timeout);
    const std::string full = e.path_prefix + path;
    auto res = method == "GET" ? client->Get(full.c_str())
                               : client->Post(full.c_str(), body ? body->dump() : "{}", "application/json");
    if (!res) return TransportError(res.error(), o);
    if (status_out) *status_out = res->status;
    if (res->status != 200) return ErrorFromOpenAiStatus(res->status, res->body, Who(o), "");
    if (res->body.empty()) return json::object();
    try {
        return json::parse(res->body);
    } catch (const json::exception& ex) {
        return MakeError(ErrorCode::kUpstreamError, Who(o) + " sent malformed JSON for " + path + ": " + ex.what());
    }
}

// What one streamed call has gathered.
struct StreamState {
    GenerateResult result;
    bool done_seen = false;
    bool usage_seen = false;
    std::optional<Error> error;
    int64_t timing_prompt_tokens = -1, timing_output_tokens = -1;
    double prompt_ms = -1, predicted_ms = -1;
};

// Reads one `data:` payload; false stops the stream.
bool TakeChunk(std::string_view data, StreamState& s, Clock::time_point start, const TokenCallback& on_token,
               const std::string& who) {
    while (!data.empty() && (data.back() == ' ' || data.back() == '\r')) data.remove_suffix(1);
    if (data == "[DONE]") {
        s.done_seen = true;
        return true;
    }
    json doc;
    try {
        doc = json::parse(data);
    } catch (const json::exception&) {
        s.error = MakeError(ErrorCode::kUpstreamError, who + " sent a malformed event: " + std::string(data.substr(0, 120)),
                            true);
        return false;
    }
    if (!doc.is_object()) return true;
    if (auto e = doc.find("error"); e != doc.end()) {
        const std::string text = ErrorText(doc.dump());
        if (auto overflow = ParseContextOverflow(doc.dump())) {
            Error err = MakeError(ErrorCode::kContextOverflow, who + " refused the prompt: " + text);
            err.overflow_prompt_tokens = overflow->prompt_tokens;
            s.error = err;
        } else {
            s.error = MakeError(ErrorCode::kUpstreamError, who + " failed mid-stream: " + text, true);
        }
        return false;
    }
    for (const auto& choice : doc.value("choices", json::array())) {
        if (!choice.is_object()) continue;
        const json delta = choice.value("delta", json::object());
        if (auto c = delta.find("content"); c != delta.end() && c->is_string() && !c->get_ref<const std::string&>().empty()) {
            const std::string& piece = c->get_ref<const std::string&>();
            if (s.result.text.empty()) s.result.ttft = std::chrono::duration_cast<Ns>(Clock::now() - start);
            s.result.text += piece;
            if (on_token) on_token(piece);
        }
        if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
            s.result.finish_reason = f->get<std::string>();
        }
    }
    if (auto u = doc.find("usage"); u != doc.end() && u->is_object()) {
        s.usage_seen = true;
        s.result.prompt_tokens = IntField(*u, "prompt_tokens");
        s.result.output_tokens = IntField(*u, "completion_tokens");
    }
    if (auto t = doc.find("timings"); t != doc.end() && t->is_object()) {  // llama.cpp
        s.timing_prompt_tokens = IntField(*t, "prompt_n") + IntField(*t, "cache_n");
        s.timing_output_tokens = IntField(*t, "predicted_n");
        s.prompt_ms = NumberField(*t, "prompt_ms");
        s.predicted_ms = NumberField(*t, "predicted_ms");
    }
    return true;
}

// Counts and durations from what the stream said, measured where it said nothing.
void FinishResult(StreamState& s) {
    GenerateResult& r = s.result;
    if (!s.usage_seen && s.timing_prompt_tokens >= 0) {
        r.prompt_tokens = s.timing_prompt_tokens;
        r.output_tokens = s.timing_output_tokens;
    }
    r.total = r.wall;
    if (s.prompt_ms >= 0) {
        r.prefill = Millis(s.prompt_ms);
        r.decode = Millis(s.predicted_ms);
    } else if (r.ttft.count() > 0) {
        // vLLM and SGLang report no timings: the first piece closes the prefill (queueing included).
        r.prefill = r.ttft;
        r.decode = r.wall - r.ttft;
    }
    if (r.finish_reason.empty()) r.finish_reason = "stop";
}

}  // namespace

std::string_view OpenAiFlavorName(OpenAiFlavor flavor) {
    switch (flavor) {
        case OpenAiFlavor::kVllm: return "vllm";
        case OpenAiFlavor::kLlamaCpp: return "llama.cpp";
        case OpenAiFlavor::kSglang: return "sglang";
        case OpenAiFlavor::kUnknown: break;
    }
    return "unknown";
}

std::optional<ContextOverflow> ParseContextOverflow(std::string_view body) {
    const std::string lower = Lower(body);
    ContextOverflow o;
    if (lower.find("exceed_context_size_error") != std::string::npos ||
        lower.find("exceeds the available context size") != std::string::npos) {
        // llama.cpp: {"error": {"type": "exceed_context_size_error", "n_prompt_tokens": N, "n_ctx": M, "message":
        // "request (N tokens) exceeds the available context size (M tokens), try increasing it"}}
        try {
            const auto doc = json::parse(body);
            const json& e = doc.contains("error") && doc["error"].is_object() ? doc["error"] : doc;
            o.prompt_tokens = IntField(e, "n_prompt_tokens");
            o.context_tokens = IntField(e, "n_ctx");
        } catch (const json::exception&) {
        }
        if (o.prompt_tokens == 0) o.prompt_tokens = NumberAfterPhrase(lower, "request (");
        if (o.context_tokens == 0) o.context_tokens = NumberAfterPhrase(lower, "available context size (");
        return o;
    }
    if (lower.find("maximum context length is") != std::string::npos) {
        // vLLM, in the wordings of its versions.
        o.context_tokens = NumberAfterPhrase(lower, "maximum context length is");
        o.prompt_tokens = NumberAfterPhrase(lower, "your request has");
        if (o.prompt_tokens == 0) o.prompt_tokens = NumberBefore(lower, "in the messages");
        if (o.prompt_tokens == 0) o.prompt_tokens = NumberAfterPhrase(lower, "contains at least");
        return o;
    }
    if (lower.find("longer than the model's context length") != std::string::npos) {
        // SGLang: "The input (N tokens) is longer than the model's context length (M tokens)."
        o.prompt_tokens = NumberAfterPhrase(lower, "the input (");
        o.context_tokens = NumberAfterPhrase(lower, "context length (");
        return o;
    }
    return std::nullopt;
}

Error ErrorFromOpenAiStatus(int status, const std::string& body, const std::string& who, const std::string& model) {
    const std::string text = ErrorText(body);
    const std::string prefix = who + " answered " + std::to_string(status) + ": " + text;
    if (status == 400 || status == 413 || status == 422) {
        if (auto overflow = ParseContextOverflow(body)) {
            Error e = MakeError(ErrorCode::kContextOverflow, prefix);
            e.overflow_prompt_tokens = overflow->prompt_tokens;
            return e;
        }
    }
    if (status == 404) {
        return MakeError(ErrorCode::kUpstreamUnavailable,
                         prefix + (model.empty() ? "" : ". The model asked for is " + model +
                                                            "; GET /v1/models lists what the server serves"));
    }
    if (status == 401 || status == 403) {
        return MakeError(ErrorCode::kUpstreamError, prefix + " (check the upstream's api_key)");
    }
    if (status == 429 || status == 503) return MakeError(ErrorCode::kUpstreamBusy, prefix, /*retryable=*/true);
    const bool transient = status == 500 || status == 502 || status == 504;
    return MakeError(ErrorCode::kUpstreamError, prefix, transient);
}

std::string BuildChatBody(const GenerateRequest& request, OpenAiFlavor flavor) {
    json body = {
        {"model", request.model},
        {"stream", true},
        // The usage chunk (choices: []) before [DONE]: the token counts.
        {"stream_options", {{"include_usage", true}}},
        {"temperature", request.temperature},
    };
    if (request.max_output_tokens > 0) body["max_tokens"] = request.max_output_tokens;
    if (flavor == OpenAiFlavor::kLlamaCpp) {
        body["repeat_penalty"] = request.repeat_penalty;
        body["cache_prompt"] = true;
    } else if (flavor == OpenAiFlavor::kVllm || flavor == OpenAiFlavor::kSglang) {
        body["repetition_penalty"] = request.repeat_penalty;
    }
    // The one message first, its content (the prompt: most of the bytes) without a document.
    std::string out = "{\"messages\":[{\"content\":";
    out.reserve(request.system.size() + request.prompt.size() + 256);
    AppendJsonString(out, request.system.empty() ? request.prompt : request.system + "\n\n" + request.prompt);
    out += ",\"role\":\"user\"}],";
    out += std::string_view(body.dump(-1, ' ', false, json::error_handler_t::replace)).substr(1);
    return out;
}

OpenAiClient::OpenAiClient(OpenAiClientOptions options)
    : options_(std::move(options)),
      pool_(std::make_unique<upstream_http::ConnectionPool>(EndpointOf(options_))),
      watchdog_(std::make_unique<upstream_http::Watchdog>()) {}

OpenAiClient::~OpenAiClient() = default;

OpenAiServerInfo OpenAiClient::info() const {
    std::lock_guard lock(mutex_);
    return info_;
}

Result<GenerateResult> OpenAiClient::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                              const CancelToken& cancel) {
    if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled before sending");
    const std::string who = Who(options_);
    const auto start = Clock::now();
    auto connection = pool_->Take();
    std::atomic<int64_t> last_piece_ns{0};
    std::atomic<StopReason> stop_reason{StopReason::kNone};
    const Deadlines deadlines{options_.first_token_timeout_s, options_.idle_timeout_s, options_.total_timeout_s};
    const uint64_t watch = watchdog_->Add({&deadlines, &cancel, connection.get(), start, &last_piece_ns, &stop_reason});

    StreamState s;
    SseReader reader;
    const auto feed = [&](const std::vector<SseEvent>& events) {
        for (const auto& event : events) {
            last_piece_ns = std::max<int64_t>(1, static_cast<int64_t>(MsSince(start) * 1e6));
            if (!TakeChunk(event.data, s, start, on_token, who)) return false;
        }
        return !cancel.cancelled();
    };
    const auto outcome = connection->Post(
        upstream_http::SplitUrl(options_.url).path_prefix + "/v1/chat/completions", BuildChatBody(request, info().flavor),
        "text/event-stream", cancel,
        [&](const char* data, size_t length) { return feed(reader.Feed(std::string_view(data, length))); });
    const bool sent = outcome.ok;
    const int status = outcome.status;
    watchdog_->Remove(watch);
    // A response read to its end leaves the connection to the next call, whatever it said.
    pool_->Return(std::move(connection));
    s.result.wall = std::chrono::duration_cast<Ns>(Clock::now() - start);
    if (sent && status == 200 && !s.done_seen && !s.error) feed(reader.Finish());

    if (auto stopped = upstream_http::StopError(stop_reason.load(), deadlines, who)) return *stopped;
    if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled; upstream connection closed");
    if (s.error) return *s.error;
    if (status != 0 && status != 200) return ErrorFromOpenAiStatus(status, outcome.error_body, who, request.model);
    if (!sent) {
        if (status == 200) {
            return MakeError(ErrorCode::kUpstreamError,
                             who + " closed the connection mid-stream (" + outcome.detail + ") after " +
                                 std::to_string(s.result.text.size()) + " bytes",
                             true);
        }
        return TransportError(outcome, options_);
    }
    if (!s.done_seen) return MakeError(ErrorCode::kUpstreamError, who + "'s stream ended without data: [DONE]", true);
    FinishResult(s);
    return std::move(s.result);
}

Result<OpenAiServerInfo> OpenAiClient::Discover() {
    const auto timeout = std::chrono::milliseconds(std::max(2000, options_.connect_timeout_ms));
    auto models = JsonCall(options_, "GET", "/v1/models", nullptr, timeout);
    if (!models.ok()) return models.error();
    OpenAiServerInfo found;
    for (const auto& m : models->value("data", json::array())) {
        if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
        found.models.push_back(m["id"].get<std::string>());
        const std::string owner = m.value("owned_by", "");
        if (owner == "llamacpp") found.flavor = OpenAiFlavor::kLlamaCpp;
        if (owner == "sglang") found.flavor = OpenAiFlavor::kSglang;
        if (found.context_tokens == 0 && m.contains("max_model_len") && m["max_model_len"].is_number()) {
            found.context_tokens = m["max_model_len"].get<int64_t>();
            if (found.flavor == OpenAiFlavor::kUnknown) found.flavor = OpenAiFlavor::kVllm;
        }
    }
    if (found.flavor == OpenAiFlavor::kLlamaCpp || found.context_tokens == 0) {
        // llama.cpp: the context of one slot (n_ctx / parallel slots) and the slots.
        auto props = JsonCall(options_, "GET", "/props", nullptr, timeout);
        if (props.ok() && props->is_object() && props->contains("default_generation_settings")) {
            const json& settings = (*props)["default_generation_settings"];
            if (settings.is_object() && settings.contains("n_ctx") && settings["n_ctx"].is_number()) {
                found.context_tokens = settings["n_ctx"].get<int64_t>();
            }
            found.slots = static_cast<int>(IntField(*props, "total_slots"));
            found.flavor = OpenAiFlavor::kLlamaCpp;
        }
    }
    std::lock_guard lock(mutex_);
    info_ = found;
    return found;
}

Result<int64_t> OpenAiClient::ContextSize(const std::string&) {
    OpenAiServerInfo known = info();
    if (known.context_tokens == 0) {
        auto found = Discover();
        if (!found.ok()) return found.error();
        known = *found;
    }
    if (known.context_tokens == 0) {
        return MakeError(ErrorCode::kUnsupported, Who(options_) + " states no context size (neither /v1/models "
                                                                  "max_model_len nor /props n_ctx)");
    }
    return known.context_tokens;
}

Result<EngineHealth> OpenAiClient::Health() {
    const auto timeout = std::chrono::milliseconds(std::max(2000, options_.connect_timeout_ms));
    int status = 0;
    auto health = JsonCall(options_, "GET", "/health", nullptr, timeout, &status);
    if (!health.ok() && status == 0) return health.error();  // not answering at all
    if (!health.ok()) {
        // llama.cpp answers 503 "Loading model" until its model is in memory.
        Error e = health.error();
        e.code = ErrorCode::kUpstreamUnavailable;
        return e;
    }
    auto found = Discover();
    if (!found.ok()) return found.error();
    return EngineHealth{found->models};
}

Result<int64_t> OpenAiClient::CountTokens(const std::string& model, const std::string& text) {
    OpenAiFlavor flavor;
    {
        std::lock_guard lock(mutex_);
        if (tokenize_unsupported_) return MakeError(ErrorCode::kUnsupported, Who(options_) + " has no /tokenize");
        flavor = info_.flavor;
    }
    if (flavor == OpenAiFlavor::kUnknown) {
        auto found = Discover();
        if (!found.ok()) return found.error();
        flavor = found->flavor;
    }
    if (flavor == OpenAiFlavor::kUnknown) {
        return MakeError(ErrorCode::kUnsupported, Who(options_) + " is neither vLLM, SGLang nor llama.cpp: no /tokenize");
    }
    return Tokenize(flavor, model, text);
}

Result<int64_t> OpenAiClient::Tokenize(OpenAiFlavor flavor, const std::string& model, const std::string& text) {
    json body = flavor == OpenAiFlavor::kLlamaCpp ? json{{"content", text}, {"add_special", false}}
                                                  : json{{"model", model}, {"prompt", text}, {"add_special_tokens", false}};
    int status = 0;
    auto doc = JsonCall(options_, "POST", "/tokenize", &body, std::chrono::milliseconds(options_.tokenize_timeout_ms),
                        &status);
    if (!doc.ok()) {
        if (status == 404 || status == 405) {
            std::lock_guard lock(mutex_);
            tokenize_unsupported_ = true;
            return MakeError(ErrorCode::kUnsupported, doc.error().message);
        }
        return doc.error();
    }
    if (doc->contains("count") && (*doc)["count"].is_number()) return (*doc)["count"].get<int64_t>();
    if (doc->contains("tokens") && (*doc)["tokens"].is_array()) return static_cast<int64_t>((*doc)["tokens"].size());
    return MakeError(ErrorCode::kUpstreamError, Who(options_) + "'s /tokenize answer has neither count nor tokens");
}

}  // namespace summarizer
