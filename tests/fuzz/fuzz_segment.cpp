// Fuzzes the text layer (include/summarizer/text.hpp) on any bytes.
// UTF-8: FindInvalidUtf8/IsValidUtf8/CountCodePoints/DecodeCodePoint agree with an independent
// decoder written from Unicode Table 3-7, and DecodeCodePoint stays in bounds and makes progress
// on invalid input. Statistics add up. Segmentation (on the input with invalid bytes replaced,
// as the functions require valid UTF-8): paragraph and sentence starts begin at 0, increase
// strictly, lie inside the text on code point boundaries, so the segments cover the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

namespace {

// Length of the well-formed UTF-8 sequence at `pos` and its code point; length 0 if ill-formed.
size_t Decode(std::string_view s, size_t pos, char32_t& cp) {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
    const unsigned char c = b(pos);
    if (c <= 0x7F) {
        cp = c;
        return 1;
    }
    size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; ++i) {
        if (!cont(pos + i)) return 0;
        cp = (cp << 6) | (b(pos + i) & 0x3F);
    }
    // Overlongs, surrogates and beyond U+10FFFF, judged on the decoded value.
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        return 0;
    }
    return n;
}

void CheckStarts(std::string_view text, const std::vector<size_t>& starts, const char* what) {
    FUZZ_CHECK(!starts.empty() && starts.front() == 0, what);
    for (size_t i = 0; i < starts.size(); ++i) {
        if (i > 0) {
            FUZZ_CHECK(starts[i] > starts[i - 1], what);
            FUZZ_CHECK(starts[i] < text.size(), what);  // so every segment is non-empty
        }
        FUZZ_CHECK(starts[i] == text.size() || (static_cast<unsigned char>(text[starts[i]]) & 0xC0) != 0x80,
                   what);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view raw(reinterpret_cast<const char*>(data), size);

    // Reference decode: code points up to the first ill-formed sequence.
    std::vector<char32_t> expected;
    size_t first_bad = std::string_view::npos;
    for (size_t pos = 0; pos < raw.size();) {
        char32_t cp = 0;
        const size_t n = Decode(raw, pos, cp);
        if (n == 0) {
            first_bad = pos;
            break;
        }
        expected.push_back(cp);
        pos += n;
    }
    FUZZ_CHECK(summarizer::FindInvalidUtf8(raw) == first_bad, "FindInvalidUtf8 finds the first ill-formed byte");
    FUZZ_CHECK(summarizer::IsValidUtf8(raw) == (first_bad == std::string_view::npos), "IsValidUtf8");
    if (first_bad == std::string_view::npos) {
        FUZZ_CHECK(summarizer::CountCodePoints(raw) == expected.size(), "CountCodePoints counts code points");
    }

    // DecodeCodePoint walks any bytes: in bounds, 1..4 bytes a step, same code points while valid.
    size_t pos = 0;
    size_t index = 0;
    while (pos < raw.size()) {
        const size_t before = pos;
        const char32_t cp = summarizer::DecodeCodePoint(raw, pos);
        FUZZ_CHECK(pos > before && pos - before <= 4 && pos <= raw.size(), "DecodeCodePoint advances in bounds");
        if (before < first_bad) {
            FUZZ_CHECK(index < expected.size() && cp == expected[index], "DecodeCodePoint decodes valid input");
        }
        ++index;
    }

    // The functions below require valid UTF-8: replace every ill-formed byte, as a caller would.
    std::string text(raw);
    for (size_t bad = summarizer::FindInvalidUtf8(text); bad != std::string::npos;
         bad = summarizer::FindInvalidUtf8(text)) {
        text[bad] = '?';
    }
    FUZZ_CHECK(summarizer::IsValidUtf8(text), "replacing bad bytes gives valid UTF-8");

    const summarizer::TextStats stats = summarizer::ComputeTextStats(text);
    FUZZ_CHECK(stats.bytes == text.size(), "stats.bytes");
    FUZZ_CHECK(stats.chars == summarizer::CountCodePoints(text), "stats.chars");
    FUZZ_CHECK(stats.latin + stats.cjk + stats.digits + stats.whitespace + stats.punctuation + stats.other ==
                   stats.chars,
               "every code point is in exactly one class");
    FUZZ_CHECK(stats.newlines <= stats.chars, "newlines are code points");
    FUZZ_CHECK(stats.CjkRatio() >= 0.0 && stats.CjkRatio() <= 1.0, "CjkRatio is a ratio");
    FUZZ_CHECK(summarizer::IsBlank(text) == (stats.whitespace == stats.chars), "blank means only whitespace");
    const std::string language = summarizer::GuessLanguage(stats, text);
    FUZZ_CHECK(language == "en" || language == "ja", "GuessLanguage answers en or ja");
    FUZZ_CHECK(summarizer::EstimateTokens(text) >= 0, "token estimates are not negative");
    FUZZ_CHECK(text.empty() || summarizer::EstimateTokens(text) >= 1, "a non-empty text costs a token");

    CheckStarts(text, summarizer::ParagraphStarts(text), "ParagraphStarts: 0, increasing, on code points");
    CheckStarts(text, summarizer::SentenceStarts(text), "SentenceStarts: 0, increasing, on code points");
    return 0;
}
