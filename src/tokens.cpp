#include "summarizer/tokens.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

// The estimate is a weighted sum of run features. The text is cut into runs of one character
// class; each run costs what Gemma 3's BPE tends to spend on it: about one token per English
// word (its leading space included), one per digit, one per newline run, a Japanese word of one
// or two kanji per token, byte fallback for characters outside the vocabulary, ...
//
// The features MUST stay identical to tools/calibrate/features.mjs: tools/calibrate/fit.mjs fits
// kCoefficients on them against the real tokenizer (fixture: tests/fixtures/token_calibration.json)
// and prints the values to paste below. The fit aims at +5% so that the estimate errs on the
// safe side: an over-estimate costs a smaller chunk, an under-estimate a truncated prompt.

namespace summarizer {
namespace {

enum class CharClass : uint8_t {
    kLatin,
    kDigit,
    kSpace,
    kNewline,
    kPunct,
    kHiragana,
    kKatakana,
    kHan,
    kCjkSymbol,
    kOtherLetter,
    kEmoji,
    kByteFallback,
    kSymbol,
    kHangul,
};

// Fitted by tools/calibrate/fit.mjs (bias +5%), one field per feature of features.mjs.
struct Coefficients {
    double latin_runs;           // per word of Latin letters
    double latin_long_chars;     // per letter beyond kLatinLongWord in a word
    double latin_humps;          // per lower->upper change inside a word (camelCase)
    double space_runs;           // per whitespace run not absorbed into the next token
    double punct_runs;           // per run of ASCII punctuation
    double punct_chars;          // per punctuation character outside repeated runs
    double hiragana_chars;
    double hiragana_runs;
    double katakana_runs;
    double katakana_chars;
    double han_single_runs;      // a lone kanji between kana
    double han_multi_runs;       // a kanji compound
    double han_long_chars;       // per kanji beyond kHanLongRun in a compound
    double latin_accented_runs;  // words with non-ASCII Latin letters (German, French, ...) split more
    double hangul_chars;
    double other_letter_chars;   // Cyrillic, Greek, Arabic, ...
    double other_letter_runs;
    double known;                // scale of the tokens known without fitting (bias)
};

constexpr Coefficients kCoefficients = {
    .latin_runs = 0.9937,
    .latin_long_chars = 0.2054,
    .latin_humps = 0.7424,
    .space_runs = 1.0170,
    .punct_runs = 1.0200,
    .punct_chars = 0.1126,
    .hiragana_chars = 0.1577,
    .hiragana_runs = 0.7847,
    .katakana_runs = 0.7886,
    .katakana_chars = 0.0812,
    .han_single_runs = 1.3989,
    .han_multi_runs = 0.9020,
    .han_long_chars = 0.7964,
    .latin_accented_runs = 1.5723,
    .hangul_chars = 0.7555,
    .other_letter_chars = 0.1030,
    .other_letter_runs = 0.9950,
    .known = 1.0500,
};

constexpr size_t kLatinLongWord = 7;         // letters beyond this in a word start to cost extra pieces
constexpr size_t kHanLongRun = 2;            // kanji beyond this in a run start to cost extra pieces
constexpr size_t kRepeatRunChars = 16;       // "----------------" is one token
constexpr size_t kWhitespaceRunChars = 31;   // the longest whitespace token
constexpr size_t kMinRepeatRun = 3;          // "...", "***", "===" merge; "()" does not

constexpr CharClass Classify(char32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return CharClass::kLatin;
        if (cp >= '0' && cp <= '9') return CharClass::kDigit;
        if (cp == '\n' || cp == '\r') return CharClass::kNewline;
        if (cp == ' ' || cp == '\t' || cp == '\v' || cp == '\f') return CharClass::kSpace;
        if (cp > 0x20 && cp < 0x7F) return CharClass::kPunct;
        return CharClass::kSymbol;  // control characters
    }
    if ((cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x1E00 && cp <= 0x1EFF)) {
        return CharClass::kLatin;
    }
    // Unicode spaces are not in Gemma's vocabulary: NBSP costs 2 tokens, U+3000 costs 3.
    if (cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F) {
        return CharClass::kByteFallback;
    }
    if (cp >= 0x3040 && cp <= 0x309F) return CharClass::kHiragana;
    if ((cp >= 0x30A0 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF)) return CharClass::kKatakana;
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF)) {
        return CharClass::kHan;
    }
    if ((cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFFEF) || (cp >= 0x3200 && cp <= 0x33FF)) {
        return CharClass::kCjkSymbol;
    }
    if ((cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F)) {
        return CharClass::kHangul;
    }
    if ((cp >= 0x0370 && cp <= 0x0EFF) || (cp >= 0x10A0 && cp <= 0x10FF)) {
        return CharClass::kOtherLetter;  // Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, Thai, Lao, Georgian
    }
    if ((cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) || cp == 0x200D || cp == 0xFE0F) {
        return CharClass::kEmoji;
    }
    if (cp >= 0x10000) {
        return CharClass::kByteFallback;  // rare kanji (extension B+) and symbols: UTF-8 bytes
    }
    return CharClass::kSymbol;
}

// Accumulates the cost of one run of a single class; flushed when the class changes.
class RunCoster {
public:
    double total() const { return fitted_ + known_ * kCoefficients.known; }

    void Add(CharClass cls, char32_t cp) {
        if (length_ > 0 && cls != cls_) {
            Flush(cls);
        }
        if (length_ == 0) {
            StartRun(cls, cp);
        }
        ++length_;
        switch (cls_) {
            case CharClass::kLatin:
                if (cp >= 0x80) has_non_ascii_ = true;
                if (previous_was_lower_ && cp >= 'A' && cp <= 'Z') ++humps_;
                previous_was_lower_ = cp >= 'a' && cp <= 'z';
                break;
            case CharClass::kNewline:
                if (cp == '\r') ++carriage_returns_;
                break;
            case CharClass::kPunct:
                AddPunct(cp);
                break;
            case CharClass::kByteFallback:
                known_ += static_cast<double>(Utf8EncodedLength(cp));
                break;
            default:
                break;
        }
    }

    // The ASCII letters from `pos` on, the first one included, as Add would take them one by one
    // (one Add for the first, which may end the run before; the rest extend a Latin run): English
    // is mostly such runs, and this loop is most of the estimate's time. Returns where they end.
    size_t AddAsciiLetters(std::string_view text, size_t pos) {
        const auto first = static_cast<unsigned char>(text[pos]);
        Add(CharClass::kLatin, first);
        for (++pos; pos < text.size(); ++pos) {
            const auto c = static_cast<unsigned char>(text[pos]);
            const bool lower = c >= 'a' && c <= 'z';
            if (!lower && !(c >= 'A' && c <= 'Z')) break;
            ++length_;
            if (previous_was_lower_ && !lower) ++humps_;
            previous_was_lower_ = lower;
        }
        return pos;
    }

    // Ends the last run: nothing follows it.
    void Finish() {
        if (length_ > 0) {
            Flush(std::nullopt);
        }
    }

private:
    void StartRun(CharClass cls, char32_t cp) {
        cls_ = cls;
        first_ = cp;
        length_ = 0;
        has_non_ascii_ = false;
        previous_was_lower_ = false;
        humps_ = 0;
        carriage_returns_ = 0;
        repeat_char_ = 0;
        repeat_length_ = 0;
    }

    void AddPunct(char32_t cp) {
        if (repeat_length_ > 0 && cp == repeat_char_) {
            ++repeat_length_;
            return;
        }
        FlushRepeat();
        repeat_char_ = cp;
        repeat_length_ = 1;
    }

    void FlushRepeat() {
        if (repeat_length_ >= kMinRepeatRun) {
            known_ += static_cast<double>((repeat_length_ + kRepeatRunChars - 1) / kRepeatRunChars);
        } else {
            fitted_ += kCoefficients.punct_chars * static_cast<double>(repeat_length_);
        }
        repeat_length_ = 0;
    }

    // `next` is the class of the character after the run (none at the end of the text): a space
    // is free only when a token follows that takes it as its leading space.
    void Flush(std::optional<CharClass> next) {
        const auto length = static_cast<double>(length_);
        const auto extra_whitespace_tokens = static_cast<double>((length_ - 1) / kWhitespaceRunChars);
        switch (cls_) {
            case CharClass::kLatin:
                fitted_ += kCoefficients.latin_runs +
                           kCoefficients.latin_long_chars * static_cast<double>(length_ > kLatinLongWord
                                                                                    ? length_ - kLatinLongWord
                                                                                    : 0) +
                           kCoefficients.latin_humps * static_cast<double>(humps_) +
                           (has_non_ascii_ ? kCoefficients.latin_accented_runs : 0.0);
                break;
            case CharClass::kDigit:
                known_ += length;  // Gemma splits numbers into single digits
                break;
            case CharClass::kSpace: {
                // One plain space before a word or a symbol is part of that token (" world", " (").
                const bool absorbed = length_ == 1 && first_ == ' ' && next.has_value() &&
                                      *next != CharClass::kDigit && *next != CharClass::kEmoji &&
                                      *next != CharClass::kNewline && *next != CharClass::kByteFallback;
                if (!absorbed) {
                    fitted_ += kCoefficients.space_runs * (1.0 + extra_whitespace_tokens);
                }
                break;
            }
            case CharClass::kNewline:
                known_ += 1.0 + extra_whitespace_tokens + static_cast<double>(carriage_returns_);
                break;
            case CharClass::kPunct:
                FlushRepeat();
                fitted_ += kCoefficients.punct_runs;
                break;
            case CharClass::kHiragana:
                fitted_ += kCoefficients.hiragana_runs + kCoefficients.hiragana_chars * length;
                break;
            case CharClass::kKatakana:
                fitted_ += kCoefficients.katakana_runs + kCoefficients.katakana_chars * length;
                break;
            case CharClass::kHan:
                if (length_ == 1) {
                    fitted_ += kCoefficients.han_single_runs;
                } else {
                    fitted_ += kCoefficients.han_multi_runs +
                               kCoefficients.han_long_chars * static_cast<double>(length_ > kHanLongRun
                                                                                      ? length_ - kHanLongRun
                                                                                      : 0);
                }
                break;
            case CharClass::kHangul:
                fitted_ += kCoefficients.hangul_chars * length;
                break;
            case CharClass::kOtherLetter:
                fitted_ += kCoefficients.other_letter_runs + kCoefficients.other_letter_chars * length;
                break;
            case CharClass::kByteFallback:
                break;  // counted per character
            case CharClass::kCjkSymbol:
            case CharClass::kEmoji:
            case CharClass::kSymbol:
                known_ += length;  // one token each
                break;
        }
        length_ = 0;
    }

    double fitted_ = 0.0;  // tokens already scaled by their fitted coefficient
    double known_ = 0.0;   // tokens counted exactly, scaled by kCoefficients.known at the end

    CharClass cls_ = CharClass::kSymbol;
    char32_t first_ = 0;
    size_t length_ = 0;
    bool has_non_ascii_ = false;
    bool previous_was_lower_ = false;
    size_t humps_ = 0;
    size_t carriage_returns_ = 0;
    char32_t repeat_char_ = 0;
    size_t repeat_length_ = 0;
};

// ASCII classes by table: most input is mostly ASCII, and this loop is the hot path.
struct AsciiClassTable {
    CharClass classes[128];
    constexpr AsciiClassTable() : classes() {
        for (char32_t cp = 0; cp < 128; ++cp) classes[cp] = Classify(cp);
    }
};
constexpr AsciiClassTable kAsciiClasses;

}  // namespace

double EstimateTokenCost(std::string_view text) {
    RunCoster coster;
    size_t pos = 0;
    while (pos < text.size()) {
        const auto byte = static_cast<unsigned char>(text[pos]);
        if (byte < 0x80) {
            const CharClass cls = kAsciiClasses.classes[byte];
            if (cls == CharClass::kLatin) {
                pos = coster.AddAsciiLetters(text, pos);
                continue;
            }
            ++pos;
            coster.Add(cls, byte);
            continue;
        }
        const char32_t cp = DecodeCodePoint(text, pos);
        coster.Add(Classify(cp), cp);
    }
    coster.Finish();
    return coster.total();
}

int64_t EstimateTokens(std::string_view text) { return EstimateTokens(text, 1.0); }

int64_t EstimateTokens(std::string_view text, double safety) {
    const double cost = EstimateTokenCost(text) * std::max(1.0, safety);
    // A hair below an integer is that integer: keeps ceil() stable against summation order.
    return static_cast<int64_t>(std::ceil(cost - 1e-9));
}

}  // namespace summarizer
