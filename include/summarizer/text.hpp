// Pure text utilities: UTF-8 validation, code point counts, script mix, boundaries.
// "chars" always means Unicode code points (Python's len()), never bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer {

// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view text);

// Byte offset of the first invalid UTF-8 sequence, or npos when valid.
size_t FindInvalidUtf8(std::string_view text);

// Number of code points. Precondition: valid UTF-8.
size_t CountCodePoints(std::string_view text);

// Decodes the code point starting at `pos` and advances `pos` past it (valid UTF-8 assumed).
char32_t DecodeCodePoint(std::string_view text, size_t& pos);

// True if the text is empty or only Unicode whitespace.
bool IsBlank(std::string_view text);

// Counts by script class, in code points.
struct TextStats {
    size_t bytes = 0;
    size_t chars = 0;        // code points
    size_t latin = 0;        // ASCII letters and Latin-script letters
    size_t cjk = 0;          // Han, Hiragana, Katakana, Hangul, CJK punctuation, full-width forms
    size_t digits = 0;
    size_t whitespace = 0;
    size_t punctuation = 0;  // ASCII punctuation and symbols
    size_t other = 0;        // everything else (Cyrillic, emoji, ...)
    size_t newlines = 0;

    double CjkRatio() const { return chars ? static_cast<double>(cjk) / chars : 0.0; }
};
TextStats ComputeTextStats(std::string_view text);

// The dominant language guess for prompts: "ja" if there is kana or mostly CJK, else "en".
std::string GuessLanguage(const TextStats& stats, std::string_view text);

// Byte offsets where a new paragraph starts (after a blank line, or at a list item).
// Always includes 0; strictly increasing; each offset is on a code point boundary.
std::vector<size_t> ParagraphStarts(std::string_view text);

// Byte offsets where a new sentence starts, for English and Japanese: after `.!?` followed by
// space, after `。！？` (and closing brackets/quotes that follow them), at line breaks inside
// lists. Always includes 0; strictly increasing; code point boundaries.
std::vector<size_t> SentenceStarts(std::string_view text);

}  // namespace summarizer
