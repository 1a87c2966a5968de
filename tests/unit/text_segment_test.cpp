// Paragraph and sentence boundaries in English and Japanese.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/text.hpp"

namespace summarizer {
namespace {

// The pieces of `text` between consecutive offsets: easier to read in a failure than numbers.
std::vector<std::string> Pieces(std::string_view text, const std::vector<size_t>& starts) {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < starts.size(); ++i) {
        const size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
        pieces.emplace_back(text.substr(starts[i], end - starts[i]));
    }
    return pieces;
}

using Strings = std::vector<std::string>;

TEST(ParagraphStartsTest, SplitsAtBlankLinesKeepingTrailingBlankLinesWithTheParagraph) {
    const std::string text = "First paragraph,\nstill first.\n\nSecond one.\n \t \n\n  Third, indented.\n";
    EXPECT_EQ(Pieces(text, ParagraphStarts(text)),
              (Strings{"First paragraph,\nstill first.\n\n", "Second one.\n \t \n\n", "  Third, indented.\n"}));
}

TEST(ParagraphStartsTest, ListItemsStartParagraphsEvenWithoutBlankLines) {
    const std::string text =
        "Shopping:\n- milk\n* eggs\n+ bread\n1. first\n12) twelfth\n(3) third\n• bullet\n# Heading\nplain line\n";
    EXPECT_EQ(Pieces(text, ParagraphStarts(text)),
              (Strings{"Shopping:\n", "- milk\n", "* eggs\n", "+ bread\n", "1. first\n", "12) twelfth\n",
                       "(3) third\n", "• bullet\n", "# Heading\nplain line\n"}));
}

TEST(ParagraphStartsTest, JapaneseListMarkers) {
    const std::string text = "持ち物：\n・パスポート\n・充電器\n１．予約を確認する\n①出発\n本文です。";
    EXPECT_EQ(Pieces(text, ParagraphStarts(text)),
              (Strings{"持ち物：\n", "・パスポート\n", "・充電器\n", "１．予約を確認する\n", "①出発\n本文です。"}));
}

TEST(ParagraphStartsTest, NotListItems) {
    // A hyphenated word, a negative number, a decimal and emphasis are not list markers.
    const std::string text = "Intro\n-5 degrees\n3.14 is pi\n*emphasis*\nwell-known\n";
    EXPECT_EQ(ParagraphStarts(text), std::vector<size_t>{0});
}

TEST(ParagraphStartsTest, CrLfBlankLines) {
    const std::string text = "one\r\n\r\ntwo\r\n";
    EXPECT_EQ(Pieces(text, ParagraphStarts(text)), (Strings{"one\r\n\r\n", "two\r\n"}));
}

TEST(ParagraphStartsTest, EmptyAndBlankTextHaveOnlyTheStart) {
    EXPECT_EQ(ParagraphStarts(""), std::vector<size_t>{0});
    EXPECT_EQ(ParagraphStarts("\n\n\n"), std::vector<size_t>{0});
    EXPECT_EQ(ParagraphStarts("text\n\n"), std::vector<size_t>{0});
}

TEST(SentenceStartsTest, EnglishSentencesKeepTheirTrailingSpace) {
    const std::string text = "It rained. Did it stop? Yes!  Finally.";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)), (Strings{"It rained. ", "Did it stop? ", "Yes!  ", "Finally."}));
}

TEST(SentenceStartsTest, AbbreviationsInitialsAndDecimalsDoNotEndSentences) {
    const std::string text =
        "Mr. Smith paid $3.14 for it, e.g. a coffee. Dr. Jones met J. R. Tolkien at 5 p.m. on Sunday. "
        "Prices rose approx. five percent vs. last year. The U.S. economy grew.";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"Mr. Smith paid $3.14 for it, e.g. a coffee. ",
                       "Dr. Jones met J. R. Tolkien at 5 p.m. on Sunday. ",
                       "Prices rose approx. five percent vs. last year. ", "The U.S. economy grew."}));
}

TEST(SentenceStartsTest, ClosingQuotesAndBracketsStayWithTheirSentence) {
    const std::string text = "He said \"Stop.\" Then he left. (It was late.) She stayed.";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"He said \"Stop.\" ", "Then he left. ", "(It was late.) ", "She stayed."}));
}

TEST(SentenceStartsTest, EllipsisAndRepeatedMarks) {
    const std::string text = "Wait... What?! No way… Really.";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)), (Strings{"Wait... ", "What?! ", "No way… ", "Really."}));
}

TEST(SentenceStartsTest, JapaneseSentenceEndsWithoutSpaces) {
    const std::string text = "今日は晴れです。明日は雨でしょう！本当ですか？はい。";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"今日は晴れです。", "明日は雨でしょう！", "本当ですか？", "はい。"}));
}

TEST(SentenceStartsTest, JapaneseClosingBracketsFollowTheirSentence) {
    const std::string text = "「行きましょう。」彼は言った。『本当に？』（注：後述。）【重要！】彼は\"はい。\"と答えた。";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"「行きましょう。」", "彼は言った。", "『本当に？』", "（注：後述。）", "【重要！】",
                       "彼は\"はい。\"", "と答えた。"}));
}

TEST(SentenceStartsTest, RepeatedJapaneseMarksAreOneEnd) {
    const std::string text = "えっ！？本当？！すごい。。次";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)), (Strings{"えっ！？", "本当？！", "すごい。。", "次"}));
}

TEST(SentenceStartsTest, EveryLineStartsASentence) {
    const std::string text = "見出し\n本文の一行目\n  indented line\n\n\nlast";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"見出し\n", "本文の一行目\n", "  indented line\n\n\n", "last"}));
}

TEST(SentenceStartsTest, ASentenceEndBeforeALineBreakStartsTheNextLineAtItsBeginning) {
    // Whatever ends a line, the next sentence starts at the next non-blank line's first byte.
    const std::string text = "One.\n  Two。\n\n  Three";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)), (Strings{"One.\n", "  Two。\n\n", "  Three"}));
}

TEST(SentenceStartsTest, MixedEnglishAndJapanese) {
    const std::string text = "Pod を再起動します。Then run kubectl again. 結果を確認してください。";
    EXPECT_EQ(Pieces(text, SentenceStarts(text)),
              (Strings{"Pod を再起動します。", "Then run kubectl again. ", "結果を確認してください。"}));
}

TEST(SentenceStartsTest, NoBoundaryAtTheVeryEnd) {
    EXPECT_EQ(SentenceStarts("Done. "), std::vector<size_t>{0});
    EXPECT_EQ(SentenceStarts("終わり。"), std::vector<size_t>{0});
    EXPECT_EQ(SentenceStarts(""), std::vector<size_t>{0});
}

// Random soup of the characters the rules look at: every result must still be a valid list of
// offsets (0 first, strictly increasing, inside the text, on code point boundaries).
TEST(SegmentPropertyTest, OffsetsAreIncreasingCodePointBoundaries) {
    const std::vector<std::string> alphabet = {"a",  "Mr", "e.g", ".",  "!",  "?",  " ",   "\n", "\n\n", "- ",
                                               "1.", "3",  "。", "！", "？", "」", "』", "）", "・",   "\u3000",
                                               "日", "か", "😀", "\"", "…",  "\t", "\r\n", "#",  "①",   "é"};
    std::mt19937 rng(12345);
    for (int round = 0; round < 500; ++round) {
        std::string text;
        const int length = static_cast<int>(rng() % 200);
        for (int i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
        for (const auto& starts : {ParagraphStarts(text), SentenceStarts(text)}) {
            ASSERT_FALSE(starts.empty());
            EXPECT_EQ(starts.front(), 0u);
            for (size_t i = 0; i < starts.size(); ++i) {
                ASSERT_TRUE(IsCodePointBoundary(text, starts[i])) << text;
                if (i > 0) {
                    ASSERT_GT(starts[i], starts[i - 1]) << text;
                    ASSERT_LT(starts[i], text.size()) << text;
                }
            }
        }
    }
}

}  // namespace
}  // namespace summarizer
