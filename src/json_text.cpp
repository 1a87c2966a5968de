#include "summarizer/json_text.hpp"

#include <array>
#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

#include "simdjson_parse.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer {
namespace {

// The escape of each byte nlohmann writes with ensure_ascii off: none for most.
struct EscapeTable {
    std::array<const char*, 256> escape{};
    std::array<std::array<char, 7>, 32> control{};  // "\u00xx" for the control characters
    EscapeTable() {
        static constexpr char kHex[] = "0123456789abcdef";
        for (int c = 0; c < 32; ++c) {
            control[c] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15], '\0'};
            escape[c] = control[c].data();
        }
        escape['\b'] = "\\b";
        escape['\t'] = "\\t";
        escape['\n'] = "\\n";
        escape['\f'] = "\\f";
        escape['\r'] = "\\r";
        escape['"'] = "\\\"";
        escape['\\'] = "\\\\";
    }
};
const EscapeTable kEscapes;

// simdjson's element as nlohmann's parser would have built it; false where they could differ.
bool Convert(const simdjson::dom::element& element, nlohmann::json& out) {
    switch (element.type()) {
        case simdjson::dom::element_type::OBJECT: {
            out = nlohmann::json::object();
            for (const simdjson::dom::key_value_pair member : simdjson::dom::object(element)) {
                // operator[]: a repeated name keeps its last value, as nlohmann's parser does.
                if (!Convert(member.value, out[std::string(member.key)])) return false;
            }
            return true;
        }
        case simdjson::dom::element_type::ARRAY: {
            out = nlohmann::json::array();
            for (const simdjson::dom::element item : simdjson::dom::array(element)) {
                out.push_back(nullptr);
                if (!Convert(item, out.back())) return false;
            }
            return true;
        }
        case simdjson::dom::element_type::INT64: {
            // nlohmann reads a literal without '-' as unsigned ("-0" is signed there, 0 here: the
            // same number either way).
            const int64_t value = int64_t(element);
            if (value >= 0) {
                out = static_cast<uint64_t>(value);
            } else {
                out = value;
            }
            return true;
        }
        case simdjson::dom::element_type::UINT64: out = uint64_t(element); return true;
        case simdjson::dom::element_type::DOUBLE: return false;
        case simdjson::dom::element_type::STRING: out = std::string(std::string_view(element)); return true;
        case simdjson::dom::element_type::BOOL: out = bool(element); return true;
        case simdjson::dom::element_type::NULL_VALUE: out = nullptr; return true;
    }
    return false;
}

}  // namespace

bool ParseWithSimdjson(std::string_view text, simdjson::dom::element& root) {
    if (text.size() > kSimdjsonMaxBytes) return false;
    thread_local simdjson::dom::parser parser;
    thread_local std::string padded;  // the text and simdjson's padding (it reads past the end)
    padded.assign(text);
    padded.resize(text.size() + simdjson::SIMDJSON_PADDING, '\0');
    return parser.parse(padded.data(), text.size(), false).get(root) == simdjson::SUCCESS;
}

std::optional<nlohmann::json> ParseJsonFast(std::string_view text) {
    simdjson::dom::element root;
    if (!ParseWithSimdjson(text, root)) return std::nullopt;
    nlohmann::json out;
    if (!Convert(root, out)) return std::nullopt;
    return out;
}

void AppendJsonString(std::string& out, std::string_view text) {
    if (FindInvalidUtf8(text) != std::string_view::npos) {
        // Rare (a model's output cut inside a character): nlohmann's own replacement rules.
        out += nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return;
    }
    out.reserve(out.size() + text.size() + 2);
    out += '"';
    size_t run = 0;  // start of the bytes not yet appended
    for (size_t i = 0; i < text.size(); ++i) {
        // Eight bytes at a time while none is a control character, '"' or '\\' (bytes >= 0x80
        // are never flagged: ~x clears their top bit).
        while (text.size() - i >= 8) {
            uint64_t x;
            std::memcpy(&x, text.data() + i, sizeof x);
            constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
            const uint64_t quote = x ^ (kOnes * '"'), backslash = x ^ (kOnes * '\\');
            const uint64_t flagged = ((x - kOnes * 0x20) & ~x) | ((quote - kOnes) & ~quote) |
                                     ((backslash - kOnes) & ~backslash);
            if ((flagged & kHigh) != 0) break;
            i += 8;
        }
        if (i >= text.size()) break;
        const char* escape = kEscapes.escape[static_cast<unsigned char>(text[i])];
        if (escape == nullptr) continue;
        out.append(text.data() + run, i - run);
        out += escape;
        run = i + 1;
    }
    out.append(text.data() + run, text.size() - run);
    out += '"';
}

}  // namespace summarizer
