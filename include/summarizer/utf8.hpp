// UTF-8: the one decoder (DecodeCodePoint), the one encoder (AppendUtf8), validation, counting and
// code point boundaries. Everything that walks UTF-8 by code point (the text layer, the extractive
// summary, the fake Ollama, the benches) uses these. Pure; no allocation but in AppendUtf8.
// "Code points" are what the API calls "chars" (Python's len()), never bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace summarizer {

// True for a byte 10xxxxxx: the second to fourth byte of a sequence, never the start of a code point.
constexpr bool IsUtf8Continuation(char byte) { return (static_cast<unsigned char>(byte) & 0xC0) == 0x80; }

// True when `offset` is the end of `text` or a byte that does not continue a sequence (offsets past
// the end are not boundaries).
constexpr bool IsCodePointBoundary(std::string_view text, size_t offset) {
    return offset == text.size() || (offset < text.size() && !IsUtf8Continuation(text[offset]));
}

// True if `text` is well-formed UTF-8 (Unicode Table 3-7: no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view text);

// Byte offset of the first ill-formed sequence, or npos when `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

// Length of the well-formed sequence starting at `pos` (1 to 4), or 0 if it is ill-formed or cut
// short by the end of `text` (Unicode Table 3-7). Precondition: pos < text.size().
inline size_t Utf8SequenceLength(std::string_view text, size_t pos);

// Decodes the code point starting at `pos` and advances `pos` past it. Never reads out of bounds and
// always moves forward: an ill-formed or truncated sequence decodes as U+FFFD and advances one byte;
// at or past the end it returns 0 and leaves `pos` where it is. (Inline: it is the text layer's and
// the token estimator's inner loop.)
inline char32_t DecodeCodePoint(std::string_view text, size_t& pos);

// Number of code points: the bytes that are not continuation bytes (exact for valid UTF-8).
size_t CountCodePoints(std::string_view text);

// The first `count` code points of `text` (all of it when it has fewer).
std::string_view FirstCodePoints(std::string_view text, size_t count);

// The boundary at or before `pos` (clamped to the end): where the code point that `pos` falls in
// starts. Stops at 0 even when `text` starts with continuation bytes.
size_t CodePointStartAtOrBefore(std::string_view text, size_t pos);

// The boundary at or after `pos` (clamped to the end): `pos` moved past continuation bytes.
size_t CodePointStartAtOrAfter(std::string_view text, size_t pos);

// How many bytes `cp` takes in UTF-8 (1 to 4; code points above U+10FFFF count 4).
constexpr size_t Utf8EncodedLength(char32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Appends `cp` encoded as UTF-8. `cp` must be a Unicode scalar value (not a surrogate, <= U+10FFFF).
void AppendUtf8(std::string& out, char32_t cp);

// ---- Inline definitions ----------------------------------------------------------------------

inline size_t Utf8SequenceLength(std::string_view text, size_t pos) {
    const auto byte_at = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte_at(pos);
    if (lead < 0x80) {
        return 1;
    }
    size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) second_min = 0xA0;  // below: overlong
        if (lead == 0xED) second_max = 0x9F;  // above: UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) second_min = 0x90;  // below: overlong
        if (lead == 0xF4) second_max = 0x8F;  // above: > U+10FFFF
    } else {
        return 0;  // continuation byte, overlong lead C0/C1, or F5..FF
    }
    if (text.size() - pos < length) {
        return 0;  // truncated
    }
    const unsigned char second = byte_at(pos + 1);
    if (second < second_min || second > second_max) {
        return 0;
    }
    for (size_t i = 2; i < length; ++i) {
        if (!IsUtf8Continuation(text[pos + i])) {
            return 0;
        }
    }
    return length;
}

inline char32_t DecodeCodePoint(std::string_view text, size_t& pos) {
    constexpr char32_t kReplacementCharacter = 0xFFFD;
    if (pos >= text.size()) {
        return 0;
    }
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0x80) {
        ++pos;
        return lead;
    }
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) {
        ++pos;
        return kReplacementCharacter;
    }
    char32_t cp = length == 2 ? (lead & 0x1F) : length == 3 ? (lead & 0x0F) : (lead & 0x07);
    for (size_t i = 1; i < length; ++i) {
        cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
    }
    pos += length;
    return cp;
}

}  // namespace summarizer
