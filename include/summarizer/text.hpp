// Pure text utilities: script mix, blank text, paragraph and sentence boundaries. UTF-8 itself
// (validation, decoding, code point counts) is utf8.hpp, included here for the text layer's users.
// "chars" always means Unicode code points (Python's len()), never bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/utf8.hpp"

namespace summarizer {

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
