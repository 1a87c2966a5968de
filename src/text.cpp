#include "summarizer/text.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace summarizer {
namespace {

bool IsAsciiLetter(char32_t cp) { return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'); }
bool IsAsciiDigit(char32_t cp) { return cp >= '0' && cp <= '9'; }
bool IsAsciiLower(char32_t cp) { return cp >= 'a' && cp <= 'z'; }

bool IsUnicodeWhitespace(char32_t cp) {
    if (cp < 0x80) {
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    }
    // White_Space property, plus the zero-width space and BOM: a text made only of those is
    // empty to a reader, so IsBlank must say so.
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

bool IsLatinLetter(char32_t cp) {
    if (cp < 0x80) {
        return IsAsciiLetter(cp);
    }
    return (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x250 && cp <= 0x2AF) ||
           (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0x2C60 && cp <= 0x2C7F) || (cp >= 0xA720 && cp <= 0xA7FF) ||
           (cp >= 0xAB30 && cp <= 0xAB6F) || (cp >= 0xFB00 && cp <= 0xFB06);
}

bool IsHiragana(char32_t cp) { return cp >= 0x3040 && cp <= 0x309F; }
bool IsKatakana(char32_t cp) {
    return (cp >= 0x30A0 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0xFF66 && cp <= 0xFF9D);
}
bool IsKana(char32_t cp) { return IsHiragana(cp) || IsKatakana(cp); }

bool IsCjk(char32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) ||    // CJK Unified Ideographs
           (cp >= 0x3400 && cp <= 0x4DBF) ||    // Extension A
           (cp >= 0xF900 && cp <= 0xFAFF) ||    // Compatibility Ideographs
           (cp >= 0x20000 && cp <= 0x3134F) ||  // Extensions B..G
           (cp >= 0x2E80 && cp <= 0x2FDF) ||    // radicals
           (cp >= 0x3000 && cp <= 0x303F) ||    // CJK symbols and punctuation
           (cp >= 0x3040 && cp <= 0x30FF) ||    // Hiragana, Katakana
           (cp >= 0x3100 && cp <= 0x31FF) ||    // Bopomofo, Hangul compatibility jamo, kanbun, strokes
           (cp >= 0x3200 && cp <= 0x33FF) ||    // enclosed CJK, compatibility (㈱, ㎡)
           (cp >= 0xFE30 && cp <= 0xFE4F) ||    // CJK compatibility forms
           (cp >= 0xFF00 && cp <= 0xFFEF) ||    // full-width and half-width forms
           (cp >= 0xAC00 && cp <= 0xD7AF) ||    // Hangul syllables
           (cp >= 0x1100 && cp <= 0x11FF) ||    // Hangul jamo
           (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xD7B0 && cp <= 0xD7FF);
}

bool IsAsciiPunctuation(char32_t cp) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
}

// Typographic punctuation of Latin text (“ ” ‘ ’ – — … • ¡ ¿ « » § °): counted with ASCII
// punctuation so that English with curly quotes does not look like another script.
bool IsLatinPunctuation(char32_t cp) {
    return (cp >= 0xA1 && cp <= 0xBF && cp != 0xAA && cp != 0xBA) || cp == 0xD7 || cp == 0xF7 ||
           (cp >= 0x2010 && cp <= 0x2027) || (cp >= 0x2030 && cp <= 0x205E);
}

// Characters that may follow a sentence end and still belong to that sentence.
bool IsClosingPunctuation(char32_t cp) {
    switch (cp) {
        case '"': case '\'': case ')': case ']': case '}':
        case 0x2019: case 0x201D:                // ’ ”
        case 0x00BB:                             // »
        case 0x300D: case 0x300F: case 0x3011:   // 」 』 】
        case 0x3009: case 0x300B: case 0x3015:   // 〉 》 〕
        case 0x3017: case 0x3019: case 0x301B:   // 〗 〙 〛
        case 0x301E: case 0x301F:                // 〞 〟
        case 0xFF09: case 0xFF3D: case 0xFF5D:   // ） ］ ｝
        case 0xFF02: case 0xFF07:                // ＂ ＇
        case 0xFF63:                             // ｣
            return true;
        default:
            return false;
    }
}

bool IsJapaneseSentenceEnd(char32_t cp) {
    return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF61 ||  // 。 ！ ？ ｡
           cp == 0xFF0E;                                                     // ．(full-width full stop)
}

// Words after which a period does not end a sentence. Lower case; compared case-insensitively.
constexpr std::array<std::string_view, 44> kAbbreviations = {
    "mr",   "mrs",  "ms",   "dr",   "prof", "sr",   "jr",   "st",   "mt",   "vs",   "etc",
    "cf",   "al",   "inc",  "ltd",  "co",   "corp", "no",   "nos",  "vol",  "fig",  "figs",
    "approx", "dept", "est", "gen", "gov",  "rev",  "sen",  "rep",  "sgt",  "capt", "col",
    "lt",   "jan",  "feb",  "mar",  "apr",  "aug",  "sep",  "sept", "oct",  "nov",  "dec",
};

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (x != b[i]) {
            return false;
        }
    }
    return true;
}

// True if the '.' at `dot` closes an abbreviation ("Mr.", "e.g.", "U.S.", "J.") rather than a
// sentence. Only looks at the ASCII word right before the dot.
bool IsAbbreviationDot(std::string_view text, size_t dot) {
    size_t word_begin = dot;
    bool has_inner_dot = false;
    while (word_begin > 0) {
        const char c = text[word_begin - 1];
        if (IsAsciiLetter(static_cast<unsigned char>(c))) {
            --word_begin;
        } else if (c == '.' && word_begin >= 2 && IsAsciiLetter(static_cast<unsigned char>(text[word_begin - 2]))) {
            has_inner_dot = true;  // "e.g", "U.S", "i.e"
            --word_begin;
        } else {
            break;
        }
    }
    const std::string_view word = text.substr(word_begin, dot - word_begin);
    if (word.empty()) {
        return false;  // "3." or "...": not an abbreviation
    }
    if (has_inner_dot || word.size() == 1) {
        return true;  // dotted abbreviations and initials
    }
    return std::any_of(kAbbreviations.begin(), kAbbreviations.end(),
                       [&](std::string_view abbreviation) { return EqualsIgnoreAsciiCase(word, abbreviation); });
}

// A line's content after its indentation: the byte offset of the first non-space/tab byte.
size_t SkipIndentation(std::string_view text, size_t pos) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) {
        ++pos;
    }
    return pos;
}

// True if the line whose content (after indentation) starts at `pos` is a list item or a heading:
// "- ", "* ", "+ ", "• ", "・", "1. ", "1) ", "１．", "(1) ", "# ".
bool IsListItemOrHeading(std::string_view text, size_t pos) {
    const std::string_view rest = text.substr(pos);
    const auto followed_by_space = [&](size_t n) {
        return rest.size() > n && (rest[n] == ' ' || rest[n] == '\t');
    };
    if (rest.empty()) {
        return false;
    }
    if ((rest[0] == '-' || rest[0] == '*' || rest[0] == '+') && followed_by_space(1)) {
        return true;
    }
    if (rest[0] == '#') {
        size_t hashes = 0;
        while (hashes < rest.size() && rest[hashes] == '#') ++hashes;
        return hashes <= 6 && followed_by_space(hashes);
    }
    if (rest.starts_with("\u2022") || rest.starts_with("\u30FB") || rest.starts_with("\u25A0") ||
        rest.starts_with("\u25CF") || rest.starts_with("\u25C6")) {  // • ・ ■ ● ◆
        return true;
    }
    size_t digits = 0;
    while (digits < rest.size() && digits < 4 && IsAsciiDigit(static_cast<unsigned char>(rest[digits]))) ++digits;
    if (digits > 0 && digits < rest.size() && (rest[digits] == '.' || rest[digits] == ')') &&
        followed_by_space(digits + 1)) {
        return true;
    }
    if (rest[0] == '(' && digits == 0) {
        size_t inner = 1;
        while (inner < rest.size() && inner < 4 && IsAsciiDigit(static_cast<unsigned char>(rest[inner]))) ++inner;
        if (inner > 1 && inner < rest.size() && rest[inner] == ')') {
            return true;
        }
    }
    // Full-width numbering: "１．" / "１）" / "①".
    size_t pos_in_rest = 0;
    char32_t first = DecodeCodePoint(rest, pos_in_rest);
    if (first >= 0x2460 && first <= 0x2473) {  // ① .. ⑳
        return true;
    }
    if (first >= 0xFF10 && first <= 0xFF19 && pos_in_rest < rest.size()) {
        const char32_t second = DecodeCodePoint(rest, pos_in_rest);
        return second == 0xFF0E || second == 0xFF09 || second == 0x3001;  // ． ） 、
    }
    return false;
}

// True if the line starting at byte `line_begin` holds only whitespace up to its '\n' (or the end).
// Sets `line_end` to the offset just past that '\n' (or text.size()).
bool IsBlankLine(std::string_view text, size_t line_begin, size_t& line_end) {
    size_t newline = text.find('\n', line_begin);
    line_end = newline == std::string_view::npos ? text.size() : newline + 1;
    const size_t content_end = newline == std::string_view::npos ? text.size() : newline;
    return IsBlank(text.substr(line_begin, content_end - line_begin));
}

void AppendIfIncreasing(std::vector<size_t>& offsets, size_t offset, size_t text_size) {
    if (offset < text_size && (offsets.empty() || offset > offsets.back())) {
        offsets.push_back(offset);
    }
}

}  // namespace

bool IsBlank(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        if (!IsUnicodeWhitespace(DecodeCodePoint(text, pos))) {
            return false;
        }
    }
    return true;
}

namespace {

// The counter of TextStats a character adds to (newlines aside).
enum class StatClass : uint8_t { kWhitespace, kLatin, kDigit, kPunctuation, kCjk, kOther };

StatClass StatClassOf(char32_t cp) {
    // U+3000 is in the CJK punctuation block but is a space: whitespace wins, as in IsBlank.
    if (IsUnicodeWhitespace(cp)) return StatClass::kWhitespace;
    if (IsLatinLetter(cp)) return StatClass::kLatin;
    if (IsAsciiDigit(cp)) return StatClass::kDigit;
    if (IsAsciiPunctuation(cp) || IsLatinPunctuation(cp)) return StatClass::kPunctuation;
    if (IsCjk(cp)) return StatClass::kCjk;
    return StatClass::kOther;
}

// ASCII by table, from the same function: every request's text goes through this loop (twice).
const std::array<StatClass, 128> kAsciiStatClasses = [] {
    std::array<StatClass, 128> table{};
    for (char32_t cp = 0; cp < 128; ++cp) table[cp] = StatClassOf(cp);
    return table;
}();

}  // namespace

TextStats ComputeTextStats(std::string_view text) {
    std::array<size_t, 6> counts{};
    TextStats stats;
    stats.bytes = text.size();
    size_t pos = 0;
    char32_t previous = 0;
    while (pos < text.size()) {
        const auto byte = static_cast<unsigned char>(text[pos]);
        const char32_t cp = byte < 0x80 ? text[pos++] : DecodeCodePoint(text, pos);
        ++stats.chars;
        // "\r\n" is one line break; a lone "\r" (old Mac files) is one too.
        if (cp == '\n' ? previous != '\r' : cp == '\r') {
            ++stats.newlines;
        }
        previous = cp;
        ++counts[static_cast<size_t>(cp < 0x80 ? kAsciiStatClasses[cp] : StatClassOf(cp))];
    }
    stats.whitespace = counts[static_cast<size_t>(StatClass::kWhitespace)];
    stats.latin = counts[static_cast<size_t>(StatClass::kLatin)];
    stats.digits = counts[static_cast<size_t>(StatClass::kDigit)];
    stats.punctuation = counts[static_cast<size_t>(StatClass::kPunctuation)];
    stats.cjk = counts[static_cast<size_t>(StatClass::kCjk)];
    stats.other = counts[static_cast<size_t>(StatClass::kOther)];
    return stats;
}

std::string GuessLanguage(const TextStats& stats, std::string_view text) {
    const size_t letters = stats.latin + stats.cjk;
    if (stats.cjk == 0 || letters == 0) {
        return "en";
    }
    // Mostly CJK (Japanese without kana is rare; Chinese gets the Japanese prompt, closer than English).
    if (stats.cjk * 2 >= letters) {
        return "ja";
    }
    // Kana only occur in Japanese; a stray kana word in an English text should not flip it, so
    // Japanese also needs a real share of the letters.
    if (stats.cjk * 10 < letters) {
        return "en";
    }
    size_t pos = 0;
    while (pos < text.size()) {
        if (IsKana(DecodeCodePoint(text, pos))) {
            return "ja";
        }
    }
    return "en";
}

std::vector<size_t> ParagraphStarts(std::string_view text) {
    std::vector<size_t> starts = {0};
    bool after_blank_line = false;
    size_t line_begin = 0;
    while (line_begin < text.size()) {
        size_t line_end = 0;
        const bool blank = IsBlankLine(text, line_begin, line_end);
        if (!blank && line_begin > 0) {
            if (after_blank_line || IsListItemOrHeading(text, SkipIndentation(text, line_begin))) {
                AppendIfIncreasing(starts, line_begin, text.size());
            }
        }
        after_blank_line = blank;
        line_begin = line_end;
    }
    return starts;
}

std::vector<size_t> SentenceStarts(std::string_view text) {
    std::vector<size_t> starts = {0};
    // Trailing whitespace stays with the sentence it follows; the next one starts at its first
    // visible character. A line break in between is left to the line rule below, so that a line's
    // start is the same offset whatever ends the line before it. Returns npos in that case.
    const auto next_sentence_start = [&](size_t pos) {
        while (pos < text.size()) {
            size_t next = pos;
            const char32_t cp = DecodeCodePoint(text, next);
            if (cp == '\n' || cp == '\r') {
                return std::string_view::npos;
            }
            if (!IsUnicodeWhitespace(cp)) {
                break;
            }
            pos = next;
        }
        return pos;
    };
    const auto skip_closing = [&](size_t pos) {
        while (pos < text.size()) {
            size_t next = pos;
            if (!IsClosingPunctuation(DecodeCodePoint(text, next))) {
                break;
            }
            pos = next;
        }
        return pos;
    };

    size_t pos = 0;
    while (pos < text.size()) {
        const size_t cp_begin = pos;
        const char32_t cp = DecodeCodePoint(text, pos);
        if (cp == '\n') {
            // Every line starts a sentence: headings, list items and Japanese lines without 。.
            // The start is the line's beginning (indentation included, as in ParagraphStarts).
            size_t line_begin = pos;
            size_t line_end = 0;
            while (line_begin < text.size() && IsBlankLine(text, line_begin, line_end)) {
                line_begin = line_end;
            }
            AppendIfIncreasing(starts, line_begin, text.size());
        } else if (IsJapaneseSentenceEnd(cp)) {
            // Repeated marks ("！？", "。」") and closing brackets stay with the sentence.
            size_t end = pos;
            while (end < text.size()) {
                size_t next = end;
                const char32_t following = DecodeCodePoint(text, next);
                if (!IsJapaneseSentenceEnd(following) && !IsClosingPunctuation(following) && following != '!' &&
                    following != '?') {
                    break;
                }
                end = next;
            }
            const size_t next_start = next_sentence_start(end);
            if (next_start != std::string_view::npos) {
                AppendIfIncreasing(starts, next_start, text.size());
            }
            pos = end;
        } else if (cp == '.' || cp == '!' || cp == '?' || cp == 0x2026) {  // … too
            size_t end = pos;
            while (end < text.size() && (text[end] == '.' || text[end] == '!' || text[end] == '?')) ++end;
            end = skip_closing(end);
            const size_t next_start = next_sentence_start(end);
            pos = end;
            if (next_start == end || next_start == std::string_view::npos || next_start >= text.size()) {
                continue;  // "3.14", "example.com", a line break (handled above), or the end
            }
            if (cp == '.' && end == cp_begin + 1 && IsAbbreviationDot(text, cp_begin)) {
                continue;  // "Mr. Smith", "e.g. this"
            }
            size_t peek = next_start;
            if (IsAsciiLower(DecodeCodePoint(text, peek))) {
                continue;  // a lower-case continuation: "approx. five", "... and then"
            }
            AppendIfIncreasing(starts, next_start, text.size());
        }
    }
    return starts;
}

}  // namespace summarizer
