// Ollama's /api/generate lines as the client reads them (ollama_client.hpp): the final object's
// "context" cut before parsing, and the members the service uses read by one SAX handler, fed by
// simdjson's parse of the line or, for a line simdjson refuses, by nlohmann's SAX parser. Pure
// functions, in a file of their own so that the fuzz target links them without the client.
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "simdjson_parse.hpp"
#include "summarizer/ollama_client.hpp"

namespace summarizer {

using json = nlohmann::json;

std::string_view WithoutOllamaContext(std::string_view line, std::string& scratch) {
    // Only where a member starts (after '{' or ','): a key such as "\"context" ends in the same
    // bytes, its first quote escaped. Ollama writes compact JSON; anything else is parsed whole.
    static constexpr std::string_view kKey = "\"context\":[";
    // memmem and memchr (glibc's vectorised search): string_view::find compares byte by byte, and
    // every line of every call is searched.
    const void* found = memmem(line.data(), line.size(), kKey.data(), kKey.size());
    if (found == nullptr) return line;
    const size_t key = static_cast<size_t>(static_cast<const char*>(found) - line.data());
    if (key == 0 || (line[key - 1] != '{' && line[key - 1] != ',')) return line;
    const size_t from = key + kKey.size();
    const void* bracket = std::memchr(line.data() + from, ']', line.size() - from);
    if (bracket == nullptr) return line;
    const size_t close = static_cast<size_t>(static_cast<const char*>(bracket) - line.data());
    // Token ids only (digits, '-', ',', ' '): then that ']' closes the array. By table: a 16K
    // prompt's final line carries ~100 KB of them.
    static constexpr auto kIdByte = [] {
        std::array<bool, 256> table{};
        for (const char c : std::string_view("0123456789-, ")) table[static_cast<unsigned char>(c)] = true;
        return table;
    }();
    for (size_t i = from; i < close; ++i) {
        if (!kIdByte[static_cast<unsigned char>(line[i])]) return line;
    }
    size_t begin = key, end = close + 1;
    // The member must end at once: whitespace or anything else before its ',' or '}' (not
    // compact JSON) is parsed whole.
    if (end >= line.size() || (line[end] != ',' && line[end] != '}')) return line;
    if (line[begin - 1] == ',') {
        --begin;
    } else if (line[end] == ',') {
        ++end;
    }
    scratch.assign(line.substr(0, begin));
    scratch.append(line.substr(end));
    return scratch;
}

namespace {

// SAX events of one line into an OllamaLine: members at depth 1 only.
class OllamaLineReader final : public nlohmann::json_sax<json> {
public:
    explicit OllamaLineReader(OllamaLine& out) : out_(out) {}

    bool null() override {
        return Scalar([&] {
            if (key_ == Key::kError) out_.error = "null";
        });
    }
    bool boolean(bool value) override {
        return Scalar([&] {
            if (key_ == Key::kDone) {
                out_.done = value;
                done_bad_ = false;
            }
            if (key_ == Key::kError) out_.error = value ? "true" : "false";
        });
    }
    bool number_integer(number_integer_t value) override { return Number(static_cast<int64_t>(value), value); }
    bool number_unsigned(number_unsigned_t value) override { return Number(static_cast<int64_t>(value), value); }
    bool number_float(number_float_t value, const string_t&) override {
        // Truncated as get<int64_t>() would; beyond int64's range (where that cast is undefined): 0.
        const bool fits = std::isfinite(value) && std::fabs(value) < 9.2e18;
        return Number(fits ? static_cast<int64_t>(value) : 0, value);
    }
    bool string(string_t& value) override {
        return Scalar([&] {
            switch (key_) {
                case Key::kResponse: out_.response = std::move(value); break;
                case Key::kDoneReason: out_.done_reason = std::move(value); break;
                case Key::kError: out_.error = std::move(value); break;
                default: break;
            }
        });
    }
    bool binary(binary_t&) override { return Scalar([] {}); }
    bool start_object(std::size_t) override { return Open(true); }
    bool end_object() override { return Close(); }
    bool start_array(std::size_t) override { return Open(false); }
    bool end_array() override { return Close(); }
    bool key(string_t& name) override {
        if (depth_ == 1) key_ = KeyOf(name);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

    bool object_seen() const { return object_seen_; }
    // The last "done" was not a boolean.
    bool bad_done() const { return done_bad_; }
    // "error" held an object or an array: its text is the line's member, dumped (see ParseOllamaLine).
    bool error_is_structured() const { return error_structured_; }

private:
    enum class Key { kOther, kError, kResponse, kDone, kDoneReason, kPromptEvalCount, kEvalCount, kTotal, kLoad, kPrefill, kDecode };

    static Key KeyOf(const std::string& name) {
        static const std::map<std::string, Key, std::less<>> kKeys = {
            {"error", Key::kError},
            {"response", Key::kResponse},
            {"done", Key::kDone},
            {"done_reason", Key::kDoneReason},
            {"prompt_eval_count", Key::kPromptEvalCount},
            {"eval_count", Key::kEvalCount},
            {"total_duration", Key::kTotal},
            {"load_duration", Key::kLoad},
            {"prompt_eval_duration", Key::kPrefill},
            {"eval_duration", Key::kDecode},
        };
        auto it = kKeys.find(name);
        return it == kKeys.end() ? Key::kOther : it->second;
    }

    // A value at depth 1 (a member's) is read; deeper ones (inside a nested object or array) are not.
    template <typename F>
    bool Scalar(F&& apply) {
        if (depth_ == 0) return false;  // the line is a bare value, not an object
        if (depth_ == 1) {
            Reset();
            apply();
        }
        return true;
    }
    // A member's earlier value is replaced by a later one of the same name, whatever its type.
    void Reset() {
        switch (key_) {
            case Key::kError:
                out_.error.reset();
                error_structured_ = false;
                break;
            case Key::kResponse: out_.response.clear(); break;
            case Key::kDone:
                out_.done = false;
                done_bad_ = true;  // until a boolean says otherwise
                break;
            case Key::kDoneReason: out_.done_reason.clear(); break;
            case Key::kPromptEvalCount: out_.prompt_eval_count = 0; break;
            case Key::kEvalCount: out_.eval_count = 0; break;
            case Key::kTotal: out_.total_duration = 0; break;
            case Key::kLoad: out_.load_duration = 0; break;
            case Key::kPrefill: out_.prompt_eval_duration = 0; break;
            case Key::kDecode: out_.eval_duration = 0; break;
            case Key::kOther: break;
        }
    }
    // `raw`: the number as parsed, written out as JSON only for an "error" member.
    template <typename Raw>
    bool Number(int64_t value, Raw raw) {
        return Scalar([&] {
            switch (key_) {
                case Key::kPromptEvalCount: out_.prompt_eval_count = value; break;
                case Key::kEvalCount: out_.eval_count = value; break;
                case Key::kTotal: out_.total_duration = value; break;
                case Key::kLoad: out_.load_duration = value; break;
                case Key::kPrefill: out_.prompt_eval_duration = value; break;
                case Key::kDecode: out_.eval_duration = value; break;
                case Key::kError: out_.error = json(raw).dump(); break;
                default: break;
            }
        });
    }
    bool Open(bool object) {
        if (depth_ == 0) {
            if (!object) return false;  // an array, not an object
            object_seen_ = true;
        } else if (depth_ == 1) {
            Reset();
            if (key_ == Key::kError) error_structured_ = true;
        }
        ++depth_;
        return true;
    }
    bool Close() {
        --depth_;
        return true;
    }

    OllamaLine& out_;
    int depth_ = 0;
    Key key_ = Key::kOther;
    bool object_seen_ = false;
    bool done_bad_ = false;
    bool error_structured_ = false;
};

// The reader above, driven by simdjson's document instead of nlohmann's lexer: nlohmann lexes a
// string one byte at a time through two calls each, and the six lines of a short answer cost 86k
// instructions of the request's ~390k (callgrind). simdjson (Debian's libsimdjson-dev) validates
// the whole line (UTF-8 included) before any member is read; a line it refuses or reads in a way
// this path does not mirror (a number beyond 64 bits, a line over kSimdjsonMaxBytes) goes the
// nlohmann way, which also words the error. Values deeper than the members are not walked: the
// reader ignores them.
bool ReadWithSimdjson(std::string_view line, OllamaLineReader& reader) {
    simdjson::dom::element root;
    if (!ParseWithSimdjson(line, root)) return false;
    simdjson::dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS) return false;  // the slow path words it
    reader.start_object(object.size());
    for (const simdjson::dom::key_value_pair member : object) {
        std::string name(member.key);
        reader.key(name);
        const simdjson::dom::element value = member.value;
        switch (value.type()) {
            case simdjson::dom::element_type::ARRAY:
                reader.start_array(0);
                reader.end_array();
                break;
            case simdjson::dom::element_type::OBJECT:
                reader.start_object(0);
                reader.end_object();
                break;
            case simdjson::dom::element_type::INT64: reader.number_integer(int64_t(value)); break;
            case simdjson::dom::element_type::UINT64: reader.number_unsigned(uint64_t(value)); break;
            case simdjson::dom::element_type::DOUBLE: {
                std::string raw;
                reader.number_float(double(value), raw);
                break;
            }
            case simdjson::dom::element_type::STRING: {
                std::string text{std::string_view(value)};
                reader.string(text);
                break;
            }
            case simdjson::dom::element_type::BOOL: reader.boolean(bool(value)); break;
            case simdjson::dom::element_type::NULL_VALUE: reader.null(); break;
        }
    }
    reader.end_object();
    return true;
}

}  // namespace

Result<OllamaLine> ParseOllamaLine(std::string_view line) {
    {
        OllamaLine out;
        OllamaLineReader reader(out);
        if (ReadWithSimdjson(line, reader) && !reader.bad_done() && !reader.error_is_structured()) return out;
    }
    OllamaLine out;
    OllamaLineReader reader(out);
    bool parsed = false;
    try {
        parsed = json::sax_parse(line.begin(), line.end(), &reader);
    } catch (const json::exception&) {
        parsed = false;
    }
    // The reader refuses a bare value or array at once, so a parsed line is an object.
    if (!parsed) {
        // Tell a bare value or an array from broken JSON.
        if (!reader.object_seen() && json::accept(line.begin(), line.end())) {
            return MakeError(ErrorCode::kUpstreamError, "Ollama sent a line that is not an object", true);
        }
        return MakeError(ErrorCode::kUpstreamError, "Ollama sent a malformed line: " + std::string(line.substr(0, 120)),
                         true);
    }
    if (reader.bad_done()) {
        return MakeError(ErrorCode::kUpstreamError,
                         "Ollama sent a line whose \"done\" is not a boolean: " + std::string(line.substr(0, 120)), true);
    }
    if (reader.error_is_structured()) {
        // Rare (Ollama's errors are strings): the member as JSON, read the slow way.
        const json doc = json::parse(line, nullptr, false);
        if (doc.is_object() && doc.contains("error")) out.error = doc["error"].dump();
    }
    return out;
}

}  // namespace summarizer
