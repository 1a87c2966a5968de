// The token estimate against the real Gemma 3 tokenizer's counts
// (tests/fixtures/token_calibration.json, made by tools/calibrate).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

struct CalibrationText {
    std::string name;
    std::string kind;
    std::string text;
    int64_t chars = 0;
    int64_t tokens = 0;  // the real tokenizer's count
};

const std::vector<CalibrationText>& Calibration() {
    static const std::vector<CalibrationText> texts = [] {
        std::ifstream file(std::string(SUMMARIZER_FIXTURE_DIR) + "/token_calibration.json");
        EXPECT_TRUE(file.good()) << "missing fixture; run tools/calibrate (see its README.md)";
        std::stringstream content;
        content << file.rdbuf();
        std::vector<CalibrationText> parsed;
        for (const auto& entry : nlohmann::json::parse(content.str())) {
            parsed.push_back({entry.at("name"), entry.at("kind"), entry.at("text"), entry.at("chars"),
                              entry.at("tokens")});
        }
        return parsed;
    }();
    return texts;
}

// Concatenates the calibration texts of one kind until `chars` code points, cut at a code point.
std::string TextOfKind(const std::string& kind, size_t chars) {
    std::string all;
    while (CountCodePoints(all) < chars) {
        for (const CalibrationText& entry : Calibration()) {
            if (entry.kind == kind) all += entry.text + "\n\n";
        }
    }
    size_t pos = 0;
    for (size_t i = 0; i < chars; ++i) DecodeCodePoint(all, pos);
    return all.substr(0, pos);
}

TEST(TokenCalibrationTest, FixtureCoversEveryKindWithRealTexts) {
    std::map<std::string, int> per_kind;
    for (const CalibrationText& entry : Calibration()) {
        ++per_kind[entry.kind];
        EXPECT_TRUE(IsValidUtf8(entry.text)) << entry.name;
        EXPECT_EQ(static_cast<int64_t>(CountCodePoints(entry.text)), entry.chars) << entry.name;
        EXPECT_GT(entry.tokens, 0) << entry.name;
    }
    EXPECT_GE(per_kind["english"], 3);
    EXPECT_GE(per_kind["japanese"], 3);
    EXPECT_GE(per_kind["mixed"], 2);
    EXPECT_GE(per_kind["code"], 2);
    EXPECT_GE(per_kind["table"], 2);
}

TEST(TokenCalibrationTest, EveryLongTextIsWithinTenPercentOfTheRealCount) {
    std::map<std::string, std::pair<double, double>> error_range;  // kind -> (min, max)
    for (const CalibrationText& entry : Calibration()) {
        if (entry.chars <= 1000) continue;
        const int64_t estimate = EstimateTokens(entry.text);
        const double error = static_cast<double>(estimate) / static_cast<double>(entry.tokens) - 1.0;
        EXPECT_LE(std::abs(error), 0.10) << entry.name << ": estimate " << estimate << ", real " << entry.tokens;
        auto [it, inserted] = error_range.try_emplace(entry.kind, error, error);
        it->second.first = std::min(it->second.first, error);
        it->second.second = std::max(it->second.second, error);
    }
    for (const auto& [kind, range] : error_range) {
        std::printf("  %-9s error %+.1f%% .. %+.1f%%\n", kind.c_str(), 100 * range.first, 100 * range.second);
    }
}

TEST(TokenCalibrationTest, EstimateErrsOnTheSafeSideOverall) {
    int64_t estimated = 0;
    int64_t real = 0;
    for (const CalibrationText& entry : Calibration()) {
        estimated += EstimateTokens(entry.text);
        real += entry.tokens;
    }
    EXPECT_GE(estimated, real);
    EXPECT_LE(static_cast<double>(estimated), 1.10 * static_cast<double>(real));
}

TEST(TokenEstimateTest, EnglishIsCheapAndJapaneseIsDense) {
    const std::string english = TextOfKind("english", 30000);
    const std::string japanese = TextOfKind("japanese", 30000);
    ASSERT_EQ(CountCodePoints(english), 30000u);
    ASSERT_EQ(CountCodePoints(japanese), 30000u);
    EXPECT_LT(EstimateTokens(english), 8000);
    EXPECT_GT(EstimateTokens(english), 5500);
    EXPECT_GT(EstimateTokens(japanese), 12000);
    EXPECT_LT(EstimateTokens(japanese), 22000);
}

TEST(TokenEstimateTest, SmallCases) {
    EXPECT_EQ(EstimateTokens(""), 0);
    EXPECT_GE(EstimateTokens("a"), 1);
    // Gemma splits numbers into single digits.
    EXPECT_GE(EstimateTokens("1234567890"), 10);
    EXPECT_LE(EstimateTokens("1234567890"), 11);
    // About one token per common English word.
    EXPECT_GE(EstimateTokens("The quick brown fox jumps over the lazy dog"), 9);
    EXPECT_LE(EstimateTokens("The quick brown fox jumps over the lazy dog"), 11);
    // Characters outside the vocabulary fall back to bytes: U+3000 is 3 tokens, NBSP 2.
    EXPECT_GE(EstimateTokens("\u3000"), 3);
    EXPECT_GE(EstimateTokens("\u00A0"), 2);
    EXPECT_GE(EstimateTokens("𠀋"), 4);
    // A long run of one character is few tokens, not one per character.
    EXPECT_LE(EstimateTokens(std::string(64, '-')), 6);
}

TEST(TokenEstimateTest, SafetyScalesTheEstimate) {
    const std::string text = TextOfKind("english", 2000);
    const int64_t plain = EstimateTokens(text);
    EXPECT_EQ(EstimateTokens(text, 1.0), plain);
    EXPECT_NEAR(static_cast<double>(EstimateTokens(text, 1.5)), 1.5 * static_cast<double>(plain), 2.0);
    EXPECT_EQ(EstimateTokens(text, 0.5), plain);  // never below the plain estimate
    EXPECT_EQ(EstimateTokens(text), static_cast<int64_t>(std::ceil(EstimateTokenCost(text) - 1e-9)));
}

TEST(TokenEstimateTest, CostIsNearlyAdditiveOverSentences) {
    for (const std::string kind : {"english", "japanese", "mixed", "code", "table"}) {
        const std::string text = TextOfKind(kind, 6000);
        const std::vector<size_t> starts = SentenceStarts(text);
        double sum = 0.0;
        for (size_t i = 0; i < starts.size(); ++i) {
            const size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
            sum += EstimateTokenCost(std::string_view(text).substr(starts[i], end - starts[i]));
        }
        const double whole = EstimateTokenCost(text);
        EXPECT_GE(sum, whole * 0.999) << kind;  // cutting never makes a text cheaper here
        EXPECT_LE(sum, whole * 1.05) << kind;
    }
}

// Speed is measured in bench/micro_bench.cpp; here: a large input's estimate is the sum of its parts'.
TEST(TokenEstimateTest, LargeInputIsTheSumOfItsParts) {
    const std::string part = TextOfKind("mixed", 3000) + TextOfKind("english", 3000);
    std::string big;
    int parts = 0;
    while (big.size() < 1500000) {
        big += part;
        ++parts;
    }
    const double whole = static_cast<double>(EstimateTokens(big));
    const double sum = static_cast<double>(EstimateTokens(part)) * parts;
    EXPECT_NEAR(whole, sum, sum * 0.02);
}

}  // namespace
}  // namespace summarizer
