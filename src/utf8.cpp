#include "summarizer/utf8.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace summarizer {

size_t FindInvalidUtf8(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        // Fast path: eight ASCII bytes at a time (most input is mostly ASCII).
        if (text.size() - pos >= 8) {
            uint64_t block;
            std::memcpy(&block, text.data() + pos, sizeof(block));
            if ((block & 0x8080808080808080ULL) == 0) {
                pos += 8;
                continue;
            }
        }
        const size_t length = Utf8SequenceLength(text, pos);
        if (length == 0) {
            return pos;
        }
        pos += length;
    }
    return std::string_view::npos;
}

bool IsValidUtf8(std::string_view text) { return FindInvalidUtf8(text) == std::string_view::npos; }

size_t CountCodePoints(std::string_view text) {
    size_t count = 0;
    for (const char c : text) {
        count += IsUtf8Continuation(c) ? 0 : 1;
    }
    return count;
}

std::string_view FirstCodePoints(std::string_view text, size_t count) {
    size_t seen = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (!IsUtf8Continuation(text[i]) && seen++ == count) return text.substr(0, i);
    }
    return text;
}

size_t CodePointStartAtOrBefore(std::string_view text, size_t pos) {
    pos = std::min(pos, text.size());
    while (pos > 0 && pos < text.size() && IsUtf8Continuation(text[pos])) --pos;
    return pos;
}

size_t CodePointStartAtOrAfter(std::string_view text, size_t pos) {
    pos = std::min(pos, text.size());
    while (pos < text.size() && IsUtf8Continuation(text[pos])) ++pos;
    return pos;
}

void AppendUtf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace summarizer
