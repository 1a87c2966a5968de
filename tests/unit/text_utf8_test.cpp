// UTF-8 validation, code point counting and decoding, blank detection, script statistics and
// the language guess.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "summarizer/text.hpp"

namespace summarizer {
namespace {

TEST(Utf8Test, AcceptsWellFormedTextOfEveryLength) {
    EXPECT_TRUE(IsValidUtf8(""));
    EXPECT_TRUE(IsValidUtf8("plain ASCII, long enough to take the eight-byte fast path."));
    EXPECT_TRUE(IsValidUtf8("日本語のテキスト。"));
    EXPECT_TRUE(IsValidUtf8("emoji 😀 and 👨‍👩‍👧"));
    // The edges of each sequence length: U+007F, U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF.
    EXPECT_TRUE(IsValidUtf8("\x7F"));
    EXPECT_TRUE(IsValidUtf8("\xC2\x80"));
    EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));
    EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));
    EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));  // U+D7FF, just below the surrogates
    EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));  // U+E000, just above them
    EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));
    EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));
    EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));
    EXPECT_TRUE(IsValidUtf8(std::string_view("a\0b", 3)));  // NUL is a valid code point
}

TEST(Utf8Test, RejectsOverlongsSurrogatesOutOfRangeAndTruncatedSequences) {
    const std::vector<std::string> invalid = {
        "\xC0\xAF",              // overlong '/'
        "\xC1\xBF",              // overlong
        "\xE0\x80\xAF",          // overlong 3-byte
        "\xE0\x9F\xBF",          // overlong 3-byte (top of the range)
        "\xF0\x80\x80\xAF",      // overlong 4-byte
        "\xF0\x8F\xBF\xBF",      // overlong 4-byte (top of the range)
        "\xED\xA0\x80",          // U+D800, high surrogate
        "\xED\xBF\xBF",          // U+DFFF, low surrogate
        "\xF4\x90\x80\x80",      // U+110000
        "\xF5\x80\x80\x80",      // lead byte beyond U+10FFFF
        "\xFF",                  //
        "\x80",                  // lone continuation byte
        "\xE3\x81",              // truncated 3-byte sequence
        "\xF0\x9F\x98",          // truncated emoji
        "\xC3",                  // truncated at the very end
        "\xE3\x41\x81",          // continuation byte missing in the middle
    };
    for (const std::string& bytes : invalid) {
        EXPECT_FALSE(IsValidUtf8(bytes)) << "accepted bytes of length " << bytes.size();
        EXPECT_EQ(FindInvalidUtf8(bytes), 0u);
    }
}

TEST(Utf8Test, FindInvalidUtf8ReportsTheFirstBadByteOffset) {
    EXPECT_EQ(FindInvalidUtf8("all good"), std::string_view::npos);
    // Past the eight-byte fast path, and after multi-byte characters.
    const std::string prefix = "0123456789abcdef日本";
    EXPECT_EQ(FindInvalidUtf8(prefix + "\xED\xA0\x80" + "tail"), prefix.size());
    EXPECT_EQ(FindInvalidUtf8(prefix + "ok" + "\xE3\x81"), prefix.size() + 2);
    EXPECT_EQ(FindInvalidUtf8("abc\x80"), 3u);
}

TEST(Utf8Test, CountsCodePointsNotBytes) {
    EXPECT_EQ(CountCodePoints(""), 0u);
    EXPECT_EQ(CountCodePoints("abc"), 3u);
    EXPECT_EQ(CountCodePoints("日本語"), 3u);
    EXPECT_EQ(CountCodePoints("é"), 1u);
    EXPECT_EQ(CountCodePoints("😀"), 1u);
    EXPECT_EQ(CountCodePoints("a😀b日"), 4u);
}

TEST(Utf8Test, DecodeCodePointWalksEverySequenceLength) {
    const std::string_view text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é 日 😀
    size_t pos = 0;
    EXPECT_EQ(DecodeCodePoint(text, pos), U'a');
    EXPECT_EQ(pos, 1u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\u00E9');
    EXPECT_EQ(pos, 3u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\u65E5');
    EXPECT_EQ(pos, 6u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\U0001F600');
    EXPECT_EQ(pos, text.size());
}

TEST(Utf8Test, DecodeCodePointNeverOverrunsOnInvalidInput) {
    const std::string_view text = "\xE3\x81";  // truncated
    size_t pos = 0;
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\uFFFD');
    EXPECT_EQ(pos, 1u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\uFFFD');
    EXPECT_EQ(pos, 2u);
}

TEST(BlankTest, WhitespaceOfEveryKindIsBlank) {
    EXPECT_TRUE(IsBlank(""));
    EXPECT_TRUE(IsBlank(" \t\r\n\v\f"));
    EXPECT_TRUE(IsBlank("\u3000\u3000"));  // ideographic space
    EXPECT_TRUE(IsBlank("\u00A0"));        // no-break space
    EXPECT_TRUE(IsBlank("\u2003\u2028\u202F\uFEFF"));
    EXPECT_FALSE(IsBlank("a"));
    EXPECT_FALSE(IsBlank("  x  "));
    EXPECT_FALSE(IsBlank("\u3000。"));
    EXPECT_FALSE(IsBlank("_"));
}

TEST(TextStatsTest, CountsEachScriptClass) {
    const TextStats stats = ComputeTextStats("Hello, 世界! 123 ã\nテスト　🙂");
    EXPECT_EQ(stats.bytes, std::string_view("Hello, 世界! 123 ã\nテスト　🙂").size());
    EXPECT_EQ(stats.chars, 22u);
    EXPECT_EQ(stats.latin, 6u);        // Hello + ã
    EXPECT_EQ(stats.cjk, 5u);          // 世界 テスト
    EXPECT_EQ(stats.digits, 3u);
    EXPECT_EQ(stats.whitespace, 5u);   // 3 spaces, newline, ideographic space
    EXPECT_EQ(stats.punctuation, 2u);  // , !
    EXPECT_EQ(stats.other, 1u);        // 🙂
    EXPECT_EQ(stats.newlines, 1u);
    EXPECT_EQ(stats.latin + stats.cjk + stats.digits + stats.whitespace + stats.punctuation + stats.other, stats.chars);
}

TEST(TextStatsTest, CjkIncludesKanaHangulCjkPunctuationAndFullWidthForms) {
    const TextStats stats = ComputeTextStats("漢ひカ한、「」ＡＢ１ｶ");
    EXPECT_EQ(stats.cjk, stats.chars);
    EXPECT_DOUBLE_EQ(stats.CjkRatio(), 1.0);
}

TEST(TextStatsTest, LineBreaksCountOnceWhateverTheConvention) {
    EXPECT_EQ(ComputeTextStats("a\nb\r\nc\rd").newlines, 3u);
    EXPECT_EQ(ComputeTextStats("").newlines, 0u);
    EXPECT_DOUBLE_EQ(ComputeTextStats("").CjkRatio(), 0.0);
}

TEST(TextStatsTest, TypographicPunctuationIsPunctuationNotAnotherScript) {
    const TextStats stats = ComputeTextStats("“Yes” — she said…");
    EXPECT_EQ(stats.other, 0u);
    EXPECT_EQ(stats.punctuation, 4u);
}

std::string Guess(std::string_view text) { return GuessLanguage(ComputeTextStats(text), text); }

TEST(GuessLanguageTest, JapaneseWithKanaOrMostlyCjk) {
    EXPECT_EQ(Guess("これは日本語の文章です。"), "ja");
    EXPECT_EQ(Guess("カタカナだけ"), "ja");
    EXPECT_EQ(Guess("漢字漢字漢字"), "ja");  // no kana but all CJK
    // Technical Japanese full of English terms is still Japanese.
    EXPECT_EQ(Guess("Kubernetes の Pod が CrashLoopBackOff になったら kubectl describe pod を実行します。"), "ja");
}

TEST(GuessLanguageTest, EnglishOtherwise) {
    EXPECT_EQ(Guess("This is an English sentence."), "en");
    EXPECT_EQ(Guess(""), "en");
    EXPECT_EQ(Guess("12345 !!!"), "en");
    // A single Japanese word in a long English text does not make it Japanese.
    EXPECT_EQ(Guess("The restaurant is called さくら and it serves the best ramen in the whole city, "
                    "according to every review we could find online last week."),
              "en");
}

}  // namespace
}  // namespace summarizer
