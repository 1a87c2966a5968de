// The degraded-mode extractive summarizer: central sentences, document order, the length
// budget, Japanese, determinism and bounded cost on pathological input.
#include "summarizer/extractive.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "summarizer/text.hpp"

namespace summarizer {
namespace {

// Five sentences about a tram line and two unrelated asides: the asides share no terms with
// the rest and must not be picked first.
const char* kTram =
    "The city council approved the new tram line on Tuesday. "
    "My neighbour's cat sleeps on the windowsill all afternoon. "
    "The tram line will connect the central station with the university campus. "
    "Construction of the tram line starts next spring and the line costs 84 million euros. "
    "Pancakes taste better with maple syrup. "
    "Council members argued for three hours about the cost of the tram line before the vote. "
    "The university expects most students to use the tram line every day.";

TEST(Extractive, SplitsTrimsAndCutsSentences) {
    auto sentences = ExtractSentences("  First one.  Second one!\n\nThird line without a stop\n", 600);
    ASSERT_EQ(sentences.size(), 3u);
    EXPECT_EQ(sentences[0], "First one.");
    EXPECT_EQ(sentences[1], "Second one!");
    EXPECT_EQ(sentences[2], "Third line without a stop");
    const std::string words = std::string(50, 'x') + " " + std::string(50, 'y');  // the views point into it
    auto cut = ExtractSentences(words, 60);
    ASSERT_EQ(cut.size(), 1u);
    EXPECT_EQ(cut[0], std::string(50, 'x'));  // cut at the space, not inside a word
}

TEST(Extractive, RanksCentralSentencesAboveAsides) {
    auto sentences = ExtractSentences(kTram, 600);
    ASSERT_EQ(sentences.size(), 7u);
    auto score = RankSentences(sentences);
    ASSERT_EQ(score.size(), 7u);
    for (size_t aside : {1u, 4u}) {
        for (size_t central : {0u, 2u, 3u, 5u}) {
            EXPECT_LT(score[aside], score[central]) << sentences[aside] << " vs " << sentences[central];
        }
    }
}

TEST(Extractive, PicksCentralSentencesInDocumentOrderWithinTheBudget) {
    ExtractiveOptions options;
    options.max_chars = 200;
    auto summary = SummarizeExtractive(kTram, options);
    EXPECT_EQ(summary.sentences, 7u);
    ASSERT_GE(summary.picked.size(), 2u);
    EXPECT_TRUE(std::is_sorted(summary.picked.begin(), summary.picked.end()));
    for (size_t p : summary.picked) {
        EXPECT_NE(p, 1u);
        EXPECT_NE(p, 4u);
    }
    EXPECT_LE(CountCodePoints(summary.text), 200u);
    EXPECT_EQ(summary.text.find("cat"), std::string::npos);
    EXPECT_EQ(summary.text.find("Pancakes"), std::string::npos);
    // Sentences appear verbatim and in document order.
    size_t last = 0;
    auto sentences = ExtractSentences(kTram, 600);
    for (size_t p : summary.picked) {
        size_t at = summary.text.find(std::string(sentences[p]));
        ASSERT_NE(at, std::string::npos);
        EXPECT_GE(at, last);
        last = at;
    }
}

TEST(Extractive, RespectsEveryBudget) {
    for (size_t budget : {1u, 10u, 40u, 80u, 150u, 400u, 5000u}) {
        ExtractiveOptions options;
        options.max_chars = budget;
        for (auto style : {SummaryStyle::kParagraph, SummaryStyle::kBullets}) {
            options.style = style;
            auto summary = SummarizeExtractive(kTram, options);
            EXPECT_FALSE(summary.text.empty()) << budget;
            EXPECT_LE(CountCodePoints(summary.text), std::max<size_t>(budget, 4)) << budget << ": " << summary.text;
            EXPECT_TRUE(IsValidUtf8(summary.text));
        }
    }
    ExtractiveOptions all;
    all.max_chars = 100000;
    EXPECT_EQ(SummarizeExtractive(kTram, all).picked.size(), 7u);  // a big budget keeps everything
}

TEST(Extractive, BulletsAreOneSentencePerLine) {
    ExtractiveOptions options;
    options.max_chars = 300;
    options.style = SummaryStyle::kBullets;
    auto summary = SummarizeExtractive(kTram, options);
    ASSERT_EQ(summary.text.rfind("- ", 0), 0u);
    size_t lines = static_cast<size_t>(std::count(summary.text.begin(), summary.text.end(), '\n')) + 1;
    EXPECT_EQ(lines, summary.picked.size());
}

TEST(Extractive, JapaneseUsesCharacterBigrams) {
    const std::string text =
        "東京都は新しい路面電車の建設計画を発表した。"
        "猫は窓辺で昼寝をしている。"
        "路面電車は中央駅と大学を結ぶ計画である。"
        "路面電車の建設は来年春に始まり、総工費は八十四億円の計画だ。"
        "パンケーキにはメープルシロップが合う。"
        "大学の学生の多くが路面電車を毎日使う見込みだ。";
    auto sentences = ExtractSentences(text, 600);
    ASSERT_EQ(sentences.size(), 6u);
    auto score = RankSentences(sentences);
    EXPECT_LT(score[1], score[2]);
    EXPECT_LT(score[4], score[3]);
    ExtractiveOptions options;
    options.max_chars = 60;
    auto summary = SummarizeExtractive(text, options);
    EXPECT_LE(CountCodePoints(summary.text), 60u);
    EXPECT_NE(summary.text.find("路面電車"), std::string::npos) << summary.text;
    EXPECT_EQ(summary.text.find("猫"), std::string::npos) << summary.text;
    EXPECT_EQ(summary.text.find(' '), std::string::npos) << "Japanese sentences are joined without spaces";
}

TEST(Extractive, IsDeterministic) {
    ExtractiveOptions options;
    options.max_chars = 180;
    auto first = SummarizeExtractive(kTram, options);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(SummarizeExtractive(kTram, options).text, first.text);
    // Identical sentences tie: the earlier one wins, and the copy is not repeated.
    auto twins = SummarizeExtractive("Same words here. Same words here. Same words here.", options);
    ASSERT_EQ(twins.picked.size(), 1u);
    EXPECT_EQ(twins.picked[0], 0u);
}

TEST(Extractive, EmptyAndBlankInputGiveNothing) {
    EXPECT_TRUE(SummarizeExtractive("").text.empty());
    EXPECT_TRUE(SummarizeExtractive(" \n\t ").text.empty());
}

TEST(Extractive, HugeLineWithoutBoundariesIsCutNotHung) {
    std::string line(2'000'000, 'a');
    ExtractiveOptions options;
    options.max_chars = 500;
    auto start = std::chrono::steady_clock::now();
    auto summary = SummarizeExtractive(line, options);
    EXPECT_LE(CountCodePoints(summary.text), 500u);
    EXPECT_FALSE(summary.text.empty());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(Extractive, ManySentencesStayBounded) {
    std::string text;
    for (int i = 0; i < 5000; ++i) text += "Sentence number " + std::to_string(i) + " talks about topic " + std::to_string(i % 17) + ". ";
    ExtractiveOptions options;
    options.max_chars = 400;
    auto summary = SummarizeExtractive(text, options);
    EXPECT_EQ(summary.sentences, 5000u);
    EXPECT_FALSE(summary.picked.empty());
    EXPECT_LE(CountCodePoints(summary.text), 400u);
    EXPECT_TRUE(std::is_sorted(summary.picked.begin(), summary.picked.end()));
}

}  // namespace
}  // namespace summarizer
