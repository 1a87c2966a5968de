// Blank detection, script statistics and the language guess. (UTF-8 itself: base_utf8_test.cpp.)
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "summarizer/text.hpp"

namespace summarizer {
namespace {

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
