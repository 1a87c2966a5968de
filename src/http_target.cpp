#include "summarizer/http_target.hpp"

#include "summarizer/text.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer {
namespace {

int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool HasControlCharacter(std::string_view s) {
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD.
std::string ReplaceInvalidUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (size_t pos = 0; pos < text.size();) AppendUtf8(out, DecodeCodePoint(text, pos));
    return out;
}

Error BadTarget(std::string message) { return MakeError(ErrorCode::kInvalidRequest, std::move(message)); }

// "http://host:8080/p?q" -> "/p?q"; "http://host" -> "/". Only the two schemes HTTP has.
bool StripAbsoluteForm(std::string_view& target) {
    for (const std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
        if (target.size() < scheme.size()) continue;
        bool same = true;
        for (size_t i = 0; i < scheme.size() && same; ++i) {
            const char c = target[i] >= 'A' && target[i] <= 'Z' ? static_cast<char>(target[i] - 'A' + 'a') : target[i];
            same = c == scheme[i];
        }
        if (!same) continue;
        target.remove_prefix(scheme.size());
        const size_t end = target.find_first_of("/?");
        target.remove_prefix(end == std::string_view::npos ? target.size() : end);
        return true;
    }
    return false;
}

}  // namespace

bool PercentDecode(std::string_view in, bool plus_is_space, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return false;
            const int hi = HexValue(in[i + 1]);
            const int lo = HexValue(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return true;
}

std::string PercentEncode(std::string_view in, bool keep_slash) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(in.size());
    for (const char ch : in) {
        const auto c = static_cast<unsigned char>(ch);
        const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (unreserved) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0x0f]);
        }
    }
    return out;
}

Result<RequestTarget> ParseRequestTarget(std::string_view target) {
    if (target.empty()) return BadTarget("empty request target");
    RequestTarget result;
    if (target == "*") {
        result.path = "*";
        return result;
    }
    if (target.front() != '/' && !StripAbsoluteForm(target)) {
        return BadTarget("request target is not a path (origin-form) or an http URL (absolute-form)");
    }
    if (const size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);

    const size_t question = target.find('?');
    const std::string_view raw_path = target.substr(0, question);
    if (raw_path.empty()) {
        result.path = "/";  // absolute-form without a path: "http://host?x"
    } else if (!PercentDecode(raw_path, false, result.path)) {
        return BadTarget("malformed percent-escape in the path (expected %XX with two hex digits)");
    }
    // Bytes that are no UTF-8 name no endpoint: the routes answer 404 (as for any unknown path)
    // and logs see U+FFFD.
    if (!IsValidUtf8(result.path)) result.path = ReplaceInvalidUtf8(result.path);
    if (HasControlCharacter(result.path)) return BadTarget("the path decodes to a control character");

    if (question == std::string_view::npos) return result;
    std::string_view query = target.substr(question + 1);
    std::string name;
    std::string value;
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view part = query.substr(0, amp);
        query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
        if (part.empty()) continue;
        const size_t eq = part.find('=');
        if (!PercentDecode(part.substr(0, eq), true, name) ||
            !PercentDecode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), true, value)) {
            return BadTarget("malformed percent-escape in the query (expected %XX with two hex digits)");
        }
        result.query[name] = value;
    }
    return result;
}

}  // namespace summarizer
