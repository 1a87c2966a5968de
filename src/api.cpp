#include "summarizer/api.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>
#include <vector>
#include <cmath>

#include "summarizer/json_text.hpp"
#include "summarizer/text.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;

std::string Lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

// "application/json; charset=utf-8" -> "application/json"
std::string MediaType(std::string_view content_type) {
    std::string type = Lower(content_type.substr(0, content_type.find(';')));
    type.erase(0, type.find_first_not_of(" \t"));
    type.erase(type.find_last_not_of(" \t") + 1);
    return type;
}

Error Invalid(std::string message) { return MakeError(ErrorCode::kInvalidRequest, std::move(message)); }

// Whether a multipart/form-data body has the shape RFC 7578 gives it: a boundary parameter, the
// body opening with "--boundary" CRLF and closed by "--boundary--". Forms are refused either way
// (415); a malformed one is a bad request first (400), as it was when the HTTP library parsed forms.
bool IsWellFormedMultipart(std::string_view content_type, std::string_view body) {
    const std::string lower = Lower(content_type);
    const size_t at = lower.find("boundary=");
    if (at == std::string::npos) return false;
    std::string_view boundary = content_type.substr(at + 9);
    boundary = boundary.substr(0, boundary.find(';'));
    while (!boundary.empty() && (boundary.back() == ' ' || boundary.back() == '\t')) boundary.remove_suffix(1);
    if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"') {
        boundary = boundary.substr(1, boundary.size() - 2);
    }
    if (boundary.empty()) return false;
    const std::string open = "--" + std::string(boundary) + "\r\n";
    const std::string close = "\r\n--" + std::string(boundary) + "--";
    return body.substr(0, open.size()) == open && body.find(close) != std::string_view::npos;
}

// The request is a flat object; anything nested deeper than this is not one, and a bounded
// depth keeps the parser's and the destructor's work (recursive in places) small.
constexpr int kMaxJsonDepth = 32;

// Deepest nesting of arrays/objects in a JSON text, strings skipped; stops counting past `limit`.
int JsonDepth(std::string_view body, int limit) {
    int depth = 0, deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

// Rejects text a summary cannot be made of; the message says where the problem is.
std::optional<Error> CheckText(std::string_view text) {
    if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
        return Invalid("text is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) +
                       "); convert it to UTF-8, e.g. `iconv -f SHIFT_JIS -t UTF-8`");
    }
    for (size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v') {
            return Invalid("text contains control character U+" + [&] {
                char buf[8];
                std::snprintf(buf, sizeof buf, "%04X", c);
                return std::string(buf);
            }() + " at byte offset " + std::to_string(i) + "; send plain text (binary files cannot be summarized)");
        }
    }
    if (IsBlank(text)) return Invalid("text is empty or only whitespace; send the text to summarize in \"text\"");
    return std::nullopt;
}

std::optional<Error> SetOption(ParsedRequest& out, const std::string& name, const json& value, const Config& config,
                               bool from_query) {
    auto type_error = [&](const char* expected) {
        return Invalid("field '" + name + "' must be " + expected + (from_query ? " (query parameter)" : ""));
    };
    if (name == "language") {
        if (!value.is_string()) return type_error("a string such as \"auto\", \"en\" or \"ja\"");
        const auto given = value.get<std::string>();
        if (Lower(given) == "auto") {
            out.request.language = "auto";
        } else if (auto lang = NormalizeLanguage(given)) {
            out.request.language = *lang;
        } else {
            const std::string shown = given.size() <= 40 ? given : given.substr(0, 40) + "...";
            return Invalid("field 'language' must be \"auto\" or a language the summary can be written in, as a code "
                           "(\"en\", \"ja\", \"zh\", \"de\", ...) or a name (\"Japanese\"), not \"" + shown + "\"");
        }
    } else if (name == "style") {
        if (!value.is_string()) return type_error("\"paragraph\" or \"bullets\"");
        auto style = value.get<std::string>();
        if (style == "paragraph") out.request.style = SummaryStyle::kParagraph;
        else if (style == "bullets") out.request.style = SummaryStyle::kBullets;
        else return Invalid("field 'style' must be \"paragraph\" or \"bullets\", not \"" + style + "\"");
    } else if (name == "max_tokens") {
        if (!value.is_number_integer()) return type_error("an integer");
        auto v = value.get<int64_t>();
        if (v < 1 || v > config.generation.max_num_predict) {
            return Invalid("field 'max_tokens' must be between 1 and " +
                           std::to_string(config.generation.max_num_predict) + ", not " + std::to_string(v));
        }
        out.request.max_tokens = static_cast<int>(v);
    } else if (name == "stream") {
        if (!value.is_boolean()) return type_error("true or false");
        out.stream = value.get<bool>();
    } else if (name == "strategy") {
        if (!value.is_string()) return type_error("\"auto\", \"single\" or \"map_reduce\"");
        auto s = value.get<std::string>();
        if (s == "auto") out.request.strategy = Strategy::kAuto;
        else if (s == "single") out.request.strategy = Strategy::kSingle;
        else if (s == "map_reduce") out.request.strategy = Strategy::kMapReduce;
        else return Invalid("field 'strategy' must be \"auto\", \"single\" or \"map_reduce\", not \"" + s + "\"");
    } else {
        return Invalid("unknown field '" + name + "'" + (from_query ? " (query parameter)" : "") +
                       "; allowed: text, language, style, max_tokens, stream, strategy");
    }
    return std::nullopt;
}

// Query values are strings; give them the JSON type their field expects.
json QueryValue(const std::string& name, const std::string& raw) {
    if (name == "stream") {
        auto v = Lower(raw);
        if (v == "true" || v == "1") return true;
        if (v == "false" || v == "0") return false;
        return raw;
    }
    if (name == "max_tokens") {
        int64_t v = 0;
        auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
        if (ec == std::errc() && ptr == raw.data() + raw.size()) return v;
        return raw;
    }
    return raw;
}

}  // namespace

Result<ParsedRequest> ParseSummarizeRequest(const HttpInput& input, const Config& config) {
    ParsedRequest out;
    const std::string media = MediaType(input.content_type);
    if (Lower(input.accept).find("text/event-stream") != std::string::npos) out.stream = true;

    if (media == "application/json") {
        if (size_t bad = FindInvalidUtf8(input.body); bad != std::string_view::npos) {
            return Invalid("the body is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")");
        }
        if (JsonDepth(input.body, kMaxJsonDepth) > kMaxJsonDepth) {
            return MakeError(ErrorCode::kInvalidJson, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                                          " levels; send a flat object like {\"text\": \"...\"}");
        }
        json doc;
        try {
            auto fast = ParseJsonFast(input.body);
            doc = fast ? std::move(*fast) : json::parse(input.body);
        } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
            return MakeError(ErrorCode::kInvalidJson, std::string("malformed JSON: ") + e.what() +
                                                          ". Send an object like {\"text\": \"...\"}");
        }
        if (!doc.is_object()) return Invalid("the body must be a JSON object like {\"text\": \"...\"}");
        for (auto it = doc.begin(); it != doc.end(); ++it) {
            if (it.key() == "text") {
                if (!it->is_string()) return Invalid("field 'text' must be a string");
                out.request.text = it->get<std::string>();
            } else if (auto error = SetOption(out, it.key(), *it, config, false)) {
                return *error;
            }
        }
        if (!doc.contains("text")) return Invalid("field 'text' is required: {\"text\": \"...\"}");
        for (const auto& [name, value] : input.query) {
            return Invalid("query parameter '" + name + "' is only read with Content-Type text/plain; put it in the "
                           "JSON body");
        }
    } else if (media == "text/plain") {
        out.request.text = std::string(input.body);
        for (const auto& [name, value] : input.query) {
            if (name == "text") return Invalid("with text/plain the body is the text; drop the 'text' query parameter");
            if (auto error = SetOption(out, name, QueryValue(name, value), config, true)) return *error;
        }
    } else if (media == "multipart/form-data" && !IsWellFormedMultipart(input.content_type, input.body)) {
        return Invalid("malformed multipart/form-data body (forms are not accepted either: send JSON or text/plain)");
    } else {
        return MakeError(ErrorCode::kUnsupportedMediaType,
                         "Content-Type must be application/json or text/plain" +
                             (media.empty() ? std::string(" (none was sent)") : " (got " + media + ")") +
                             "; e.g. curl -H 'Content-Type: application/json' -d '{\"text\": \"...\"}'");
    }
    if (auto error = CheckText(out.request.text)) return *error;
    return out;
}

std::string NewRequestId() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

int HttpStatusFor(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidJson:
        case ErrorCode::kInvalidRequest: return 400;
        case ErrorCode::kUnauthorized: return 401;
        case ErrorCode::kForbidden: return 403;
        case ErrorCode::kNotFound: return 404;
        case ErrorCode::kMethodNotAllowed: return 405;
        case ErrorCode::kConflict:
            return 409;
        case ErrorCode::kPayloadTooLarge: return 413;
        case ErrorCode::kUnsupportedMediaType: return 415;
        case ErrorCode::kInputTooLarge: return 422;
        case ErrorCode::kOverloaded: return 429;
        case ErrorCode::kUpstreamError:
        case ErrorCode::kContextOverflow: return 502;
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamUnavailable:
        case ErrorCode::kUpstreamBusy:
        case ErrorCode::kStoreUnavailable:
            return 503;
        case ErrorCode::kUpstreamTimeout: return 504;
        case ErrorCode::kCancelled: return 499;
        case ErrorCode::kUnsupported:
        case ErrorCode::kInternal: return 500;
    }
    return 500;
}

json ErrorJson(const Error& error, std::string_view request_id) {
    return json{{"error",
                 {{"code", std::string(ErrorCodeName(error.code))},
                  {"message", error.message},
                  {"request_id", std::string(request_id)}}}};
}

namespace {
double Round1(double v) { return std::round(v * 10.0) / 10.0; }
}  // namespace

json ResponseJson(const SummarizeResponse& r) {
    // Member by member: an initializer list copies every value it holds once more (nlohmann's
    // json_ref), which made building this document cost as much as writing it out.
    json usage = json::object();
    usage["prompt_tokens"] = r.usage.prompt_tokens;
    usage["completion_tokens"] = r.usage.completion_tokens;
    usage["upstream_requests"] = r.usage.upstream_requests;
    json timings = json::object();
    timings["total_ms"] = Round1(r.timings.total_ms);
    timings["queue_ms"] = Round1(r.timings.queue_ms);
    timings["ttft_ms"] = Round1(r.timings.ttft_ms);
    timings["load_ms"] = Round1(r.timings.load_ms);
    timings["prefill_tokens_per_s"] = Round1(r.timings.prefill_tokens_per_s);
    timings["decode_tokens_per_s"] = Round1(r.timings.decode_tokens_per_s);
    json doc = json::object();
    doc["summary"] = r.summary;
    doc["route"] = r.route;
    doc["model"] = r.model;
    doc["chunks"] = r.chunks;
    doc["levels"] = r.levels;
    doc["degraded"] = r.degraded;
    doc["usage"] = std::move(usage);
    doc["timings"] = std::move(timings);
    doc["request_id"] = r.request_id;
    doc["reason"] = r.reason;
    doc["cached"] = r.cached;
    return doc;
}

namespace {

// Writes a JSON object member by member, as nlohmann writes these values (ResponseJsonText).
class ObjectText {
public:
    explicit ObjectText(std::string& out) : out_(out) { Begin(); }

    void Bool(std::string_view name, bool value) { Key(name) += value ? "true" : "false"; }
    void Integer(std::string_view name, int64_t value) {
        char buf[24];
        Key(name).append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
    }
    void String(std::string_view name, std::string_view value) { AppendJsonString(Key(name), value); }
    // A Round1 value: tenths, written as "12.0" and "0.3" (non-finite as null, as nlohmann does).
    void Tenths(std::string_view name, double value) {
        Key(name);
        const double rounded = Round1(value);
        if (!std::isfinite(rounded)) {
            out_ += "null";
            return;
        }
        char buf[64];
        const auto written = std::to_chars(buf, buf + sizeof buf, rounded, std::chars_format::fixed, 1);
        if (written.ec != std::errc{}) {
            out_ += json(rounded).dump();
        } else {
            out_.append(buf, written.ptr);
        }
    }
    // A member that is an object: its members follow, until End().
    void Object(std::string_view name) {
        Key(name);
        Begin();
    }
    void End() {
        out_ += '}';
        first_.pop_back();
    }

private:
    void Begin() {
        out_ += '{';
        first_.push_back(true);
    }
    std::string& Key(std::string_view name) {  // the names here need no escaping
        if (!first_.back()) out_ += ',';
        first_.back() = false;
        out_ += '"';
        out_ += name;
        out_ += "\":";
        return out_;
    }

    std::string& out_;
    std::vector<bool> first_;  // per open object: no member written yet
};

}  // namespace

std::string ResponseJsonText(const SummarizeResponse& r) {
    // The members in the order nlohmann keeps them (sorted), as ResponseJson writes out.
    std::string out;
    out.reserve(r.summary.size() + r.reason.size() + 512);
    ObjectText doc(out);
    doc.Bool("cached", r.cached);
    doc.Integer("chunks", r.chunks);
    doc.Bool("degraded", r.degraded);
    doc.Integer("levels", r.levels);
    doc.String("model", r.model);
    doc.String("reason", r.reason);
    doc.String("request_id", r.request_id);
    doc.String("route", r.route);
    doc.String("summary", r.summary);
    doc.Object("timings");
    doc.Tenths("decode_tokens_per_s", r.timings.decode_tokens_per_s);
    doc.Tenths("load_ms", r.timings.load_ms);
    doc.Tenths("prefill_tokens_per_s", r.timings.prefill_tokens_per_s);
    doc.Tenths("queue_ms", r.timings.queue_ms);
    doc.Tenths("total_ms", r.timings.total_ms);
    doc.Tenths("ttft_ms", r.timings.ttft_ms);
    doc.End();
    doc.Object("usage");
    doc.Integer("completion_tokens", r.usage.completion_tokens);
    doc.Integer("prompt_tokens", r.usage.prompt_tokens);
    doc.Integer("upstream_requests", r.usage.upstream_requests);
    doc.End();
    doc.End();
    return out;
}

SummarizeResponse ResponseFromJson(const json& doc) {
    SummarizeResponse r;
    r.summary = doc.value("summary", "");
    r.route = doc.value("route", "");
    r.model = doc.value("model", "");
    r.chunks = doc.value("chunks", 1);
    r.levels = doc.value("levels", 0);
    r.degraded = doc.value("degraded", false);
    r.cached = doc.value("cached", false);
    r.request_id = doc.value("request_id", "");
    r.reason = doc.value("reason", "");
    if (const auto u = doc.find("usage"); u != doc.end() && u->is_object()) {
        r.usage.prompt_tokens = u->value("prompt_tokens", int64_t{0});
        r.usage.completion_tokens = u->value("completion_tokens", int64_t{0});
        r.usage.upstream_requests = u->value("upstream_requests", 0);
    }
    if (const auto t = doc.find("timings"); t != doc.end() && t->is_object()) {
        r.timings.total_ms = t->value("total_ms", 0.0);
        r.timings.queue_ms = t->value("queue_ms", 0.0);
        r.timings.ttft_ms = t->value("ttft_ms", 0.0);
        r.timings.load_ms = t->value("load_ms", 0.0);
        r.timings.prefill_tokens_per_s = t->value("prefill_tokens_per_s", 0.0);
        r.timings.decode_tokens_per_s = t->value("decode_tokens_per_s", 0.0);
    }
    return r;
}

json PlanJson(const Plan& plan) {
    json chunks = json::array();
    for (const auto& c : plan.chunks) chunks.push_back({{"chars", c.chars}, {"estimated_tokens", c.estimated_tokens}});
    return json{
        {"route", RouteName(plan)},
        {"model", plan.model},
        {"num_ctx", plan.num_ctx},
        {"chars", plan.chars},
        {"estimated_prompt_tokens", plan.estimated_prompt_tokens},
        {"chunks", chunks},
        {"reason", plan.reason},
    };
}

std::string FormatSseEvent(std::string_view event, const json& data) {
    std::string out = "event: ";
    out += event;
    out += "\ndata: ";
    // dump() escapes control characters, so the data is a single line.
    out += data.dump(-1, ' ', false, json::error_handler_t::replace);
    out += "\n\n";
    return out;
}

}  // namespace summarizer

namespace summarizer {
namespace {

json LoadedJson(const LoadedModel& m) {
    return json{{"name", m.name},
                {"size_bytes", m.size_bytes},
                {"size_vram_bytes", m.size_vram_bytes},
                {"context_length", m.context_length},
                {"expires_at", m.expires_at},
                {"spilling_to_cpu", m.size_vram_bytes < m.size_bytes}};
}

json BucketStatusJson(const BucketStatus& b, const std::string& hot_bucket) {
    json entry = {{"name", b.name},
                  {"model", b.model},
                  {"num_ctx", b.num_ctx},
                  {"keep_alive", b.keep_alive},
                  {"hot", b.name == hot_bucket},
                  {"estimated_vram_mb", std::round(b.estimated_vram_mb)},
                  {"fits_vram_budget", b.fits_vram_budget},
                  {"loaded", b.loaded},
                  {"measured", nullptr},
                  {"spilling_to_cpu", b.spilling},
                  {"spills_seen", b.spills_seen},
                  {"pending_calls", b.pending_calls},
                  {"learned", {{"calls", b.calls},
                               {"prefill_tokens_per_s", Round1(b.prefill_tokens_per_s)},
                               {"decode_tokens_per_s", Round1(b.decode_tokens_per_s)},
                               {"mean_call_ms", std::round(b.mean_call_ms)}}}};
    if (b.measured) {
        const MeasuredFootprint& m = *b.measured;
        entry["measured"] = {{"size_bytes", m.size_bytes},
                             {"size_vram_bytes", m.size_vram_bytes},
                             {"size_mb", std::round(static_cast<double>(m.size_bytes) / 1048576.0)},
                             {"size_vram_mb", std::round(static_cast<double>(m.size_vram_bytes) / 1048576.0)},
                             {"context_length", m.context_length},
                             {"expires_at", m.expires_at},
                             {"spilling_to_cpu", m.spilling_to_cpu}};
    }
    return entry;
}

json UpstreamJson(const UpstreamStatus& u) {
    json buckets = json::array();
    for (const auto& b : u.manager.buckets) {
        buckets.push_back({{"name", b.name},
                           {"num_ctx", u.bucket_context.count(b.name) ? u.bucket_context.at(b.name) : b.num_ctx},
                           {"loaded", std::find(u.loaded.begin(), u.loaded.end(), b.name) != u.loaded.end()},
                           {"pending_calls", b.pending_calls},
                           {"learned", {{"calls", b.calls},
                                        {"prefill_tokens_per_s", Round1(b.prefill_tokens_per_s)},
                                        {"decode_tokens_per_s", Round1(b.decode_tokens_per_s)},
                                        {"mean_call_ms", std::round(b.mean_call_ms)}}}});
    }
    json entry = {{"name", u.name},
                  {"kind", u.kind},
                  {"url", u.url},
                  {"engine", u.flavor},
                  {"model", u.model.empty() ? json(nullptr) : json(u.model)},
                  {"health", u.health},
                  {"circuit", u.circuit},
                  {"slots", u.slots},
                  {"inflight", u.inflight},
                  {"calls", u.calls},
                  {"failures", u.failures},
                  {"failovers", u.failovers},
                  {"context_tokens", u.context_tokens > 0 ? json(u.context_tokens) : json(nullptr)},
                  {"counts_tokens", u.counts_tokens},
                  {"buckets", buckets},
                  {"loaded", u.loaded},
                  {"last_error", u.last_error.empty() ? json(nullptr) : json(u.last_error)}};
    if (u.kind == "ollama") {
        entry["reload_ms"] = std::round(u.manager.reload_ms);
        entry["reloads_seen"] = u.manager.reloads_seen;
    }
    return entry;
}

}  // namespace

json StatusJson(const ServiceStatus& status, const Config& config) {
    const ManagerStatus& st = status.manager;
    json doc;
    doc["config"] = json::parse(ConfigToJson(config));
    doc["policy"] = st.policy;
    json buckets = json::array();
    for (const auto& b : st.buckets) buckets.push_back(BucketStatusJson(b, st.hot_bucket));
    doc["buckets"] = buckets;
    doc["vram"] = {{"budget_mb", config.vram.budget_mb},
                   {"reserve_mb", config.vram.reserve_mb},
                   {"usable_mb", config.vram.budget_mb - config.vram.reserve_mb},
                   {"kv_cache_type", config.vram.kv_cache_type},
                   {"num_parallel", config.ollama.num_parallel},
                   {"preload_hot_bucket", st.preload_hot_bucket},
                   {"hot_bucket", st.hot_bucket},
                   {"preloads", st.preloads},
                   {"last_preload", st.last_preload},
                   {"warnings", st.warnings}};
    doc["thresholds"] = {{"hierarchical_threshold_chars", config.routing.hierarchical_threshold_chars},
                         {"hierarchical_chunk_max_chars", config.routing.hierarchical_chunk_max_chars},
                         {"safety_margin_tokens", config.routing.safety_margin_tokens},
                         {"policy", config.routing.policy}};
    doc["costs"] = {{"reload_ms", std::round(st.reload_ms)},
                    {"reloads_seen", st.reloads_seen},
                    {"output_tokens", std::round(st.output_tokens)},
                    {"spill_slowdown", st.spill_slowdown},
                    {"slots", st.slots}};
    json ollama = {{"url", config.ollama.url}, {"reachable", st.ollama_reachable}};
    if (st.ollama_reachable) {
        json list = json::array();
        for (const auto& m : st.loaded) list.push_back(LoadedJson(m));
        ollama["loaded"] = list;
    } else {
        ollama["error"] = st.ollama_error;
    }
    doc["ollama"] = ollama;
    json upstreams = json::array();
    for (const auto& u : status.upstreams) upstreams.push_back(UpstreamJson(u));
    doc["upstreams"] = upstreams;
    doc["token_counts"] = {{"engine", status.token_counts.engine},
                           {"cache", status.token_counts.cached},
                           {"estimated", status.token_counts.estimated},
                           {"cached_entries", status.token_counts.entries}};
    doc["inflight"] = status.inflight;
    doc["queued"] = status.queued;
    return doc;
}

json ReadyJson(const Readiness& r) {
    json upstreams = json::object();
    for (const auto& [name, state] : r.upstreams) upstreams[name] = state;
    if (r.ready) {
        json body = {{"status", "ready"}, {"ollama", r.upstream_url}};
        if (!r.upstreams.empty()) body["upstreams"] = upstreams;
        return body;
    }
    json body = {{"status", "unavailable"}, {"reason", r.reason}};
    if (r.shutting_down) return body;
    if (!r.upstreams.empty()) body["upstreams"] = upstreams;
    if (!r.missing_models.empty()) {
        body["missing_models"] = r.missing_models;
        return body;
    }
    body["circuit"] = r.circuit;
    if (r.extractive_instead) body["degraded"] = "summaries are extractive (route \"extractive\") until Ollama answers";
    return body;
}

json MetaEventJson(const Plan& plan, std::string_view request_id) {
    const bool degraded = plan.kind == RouteKind::kExtractive;
    return json{{"request_id", std::string(request_id)},
                {"route", RouteName(plan)},
                {"model", plan.model},
                {"chunks", plan.kind == RouteKind::kMapReduce ? plan.chunks.size() : size_t{1}},
                {"degraded", degraded}};
}

}  // namespace summarizer
