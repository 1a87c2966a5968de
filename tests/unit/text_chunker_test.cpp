// Splitting texts into chunks that fit a token and a character budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/chunker.hpp"
#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

const std::vector<std::string> kEnglishSentences = {
    "The council approved the plan after a long debate. ",
    "Engineers said the corrosion had advanced faster than expected! ",
    "Would the bridge stay open during the works? ",
    "Mr. Okafor voted against it, e.g. because of the financing. ",
    "Construction costs rose by about 11 percent, or 3.5 million dollars. ",
    "She said \"we cannot wait another winter.\" ",
    "A nurse described the extra 25 minutes she now spends commuting each way. ",
};
const std::vector<std::string> kJapaneseSentences = {
    "地方の路線バスの減便が相次いでいる。",
    "運転手の不足が深刻だと担当者は話す。",
    "「今の人数では維持できない」と彼は言った。",
    "本当にそうだろうか？",
    "専門家は住民を含めた議論が欠かせないと指摘する（詳細は後述）。",
    "キャッシュの有効期限は業務の要件によって決まる！",
};

// A random text of about `target_chars` code points: paragraphs of English and Japanese
// sentences, list items, emoji, and now and then a line without any boundary, either short or
// `long_line_chars` code points or more.
std::string RandomText(std::mt19937& rng, size_t target_chars, size_t long_line_chars = 1000) {
    std::string text;
    size_t chars = 0;
    const auto add = [&](const std::string& piece) {
        text += piece;
        chars += CountCodePoints(piece);
    };
    while (chars < target_chars) {
        const unsigned kind = rng() % 10;
        if (kind < 4) {
            for (unsigned i = 0, n = 1 + rng() % 6; i < n; ++i) add(kEnglishSentences[rng() % kEnglishSentences.size()]);
        } else if (kind < 7) {
            for (unsigned i = 0, n = 1 + rng() % 8; i < n; ++i) {
                add(kJapaneseSentences[rng() % kJapaneseSentences.size()]);
            }
        } else if (kind == 7) {
            for (unsigned i = 0, n = 1 + rng() % 4; i < n; ++i) add("- item 😀 number " + std::to_string(rng() % 1000) + "\n");
        } else if (kind == 8) {
            // No sentence end, no line break: only code point cuts are possible in here.
            std::string line;
            const size_t length = rng() % 2 == 0 ? 10 + rng() % 50 : long_line_chars + rng() % 500;
            for (size_t i = 0; i < length; ++i) {
                const unsigned pick = rng() % 6;
                line += pick == 0 ? "あ" : pick == 1 ? "x" : pick == 2 ? "🎉" : pick == 3 ? "漢" : pick == 4 ? " " : "é";
            }
            add(line);
        } else {
            add("Emoji 👍🏽 in a sentence, with 12,345 digits. ");
        }
        add(rng() % 3 == 0 ? "\n\n" : rng() % 2 == 0 ? "\n" : "");
    }
    return text;
}

// Share of a budget that a chunk's own text uses: whichever of tokens and chars binds.
double Load(std::string_view own, const ChunkLimits& limits) {
    return std::max(static_cast<double>(EstimateTokens(own, limits.token_safety)) / static_cast<double>(limits.max_tokens),
                    static_cast<double>(CountCodePoints(own)) / static_cast<double>(limits.max_chars));
}

// Every promise of chunker.hpp, checked on one split.
void ExpectValidChunks(std::string_view text, const ChunkLimits& limits, const std::vector<Chunk>& chunks) {
    ASSERT_FALSE(chunks.empty());
    EXPECT_EQ(chunks.front().begin, 0u);
    EXPECT_EQ(chunks.front().overlap_begin, chunks.front().begin);  // the first chunk has no overlap
    EXPECT_EQ(chunks.back().end, text.size());
    for (size_t k = 0; k < chunks.size(); ++k) {
        const Chunk& chunk = chunks[k];
        SCOPED_TRACE("chunk " + std::to_string(k) + " of " + std::to_string(chunks.size()));
        if (k > 0) {
            EXPECT_EQ(chunk.begin, chunks[k - 1].end);  // tiles without gaps or overlaps
            EXPECT_GE(chunk.overlap_begin, chunks[k - 1].begin);  // repeats only the previous chunk
        }
        ASSERT_LT(chunk.begin, chunk.end);
        ASSERT_LE(chunk.overlap_begin, chunk.begin);
        EXPECT_TRUE(IsCodePointBoundary(text, chunk.begin));
        EXPECT_TRUE(IsCodePointBoundary(text, chunk.overlap_begin));
        const std::string_view covered = ChunkText(text, chunk);
        EXPECT_TRUE(IsValidUtf8(covered));
        EXPECT_EQ(chunk.chars, static_cast<int64_t>(CountCodePoints(covered)));
        EXPECT_EQ(chunk.estimated_tokens, EstimateTokens(covered, limits.token_safety));
        EXPECT_LE(chunk.chars, limits.max_chars);
        // The one exception: a single code point that alone costs more than the budget.
        if (chunk.end - chunk.begin > 4 || CountCodePoints(text.substr(chunk.begin, chunk.end - chunk.begin)) > 1) {
            EXPECT_LE(chunk.estimated_tokens, limits.max_tokens);
        }
        const int64_t overlap_chars =
            static_cast<int64_t>(CountCodePoints(text.substr(chunk.overlap_begin, chunk.begin - chunk.overlap_begin)));
        EXPECT_LE(overlap_chars, limits.overlap_chars);
    }
    std::string joined;
    for (const Chunk& chunk : chunks) joined += text.substr(chunk.begin, chunk.end - chunk.begin);
    EXPECT_EQ(joined, text);
}

TEST(ChunkerTest, EmptyTextHasNoChunks) { EXPECT_TRUE(SplitIntoChunks("", ChunkLimits{}).empty()); }

TEST(ChunkerTest, TextThatFitsIsOneChunk) {
    const std::string text = "A short text. It fits.\n\n短い文章です。";
    const std::vector<Chunk> chunks = SplitIntoChunks(text, ChunkLimits{});
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks[0].begin, 0u);
    EXPECT_EQ(chunks[0].overlap_begin, 0u);
    EXPECT_EQ(chunks[0].end, text.size());
    EXPECT_EQ(chunks[0].chars, static_cast<int64_t>(CountCodePoints(text)));
    EXPECT_EQ(chunks[0].estimated_tokens, EstimateTokens(text));
}

TEST(ChunkerTest, CutsAtParagraphsWhenTheyBalance) {
    // Six equal paragraphs, room for about two and a half: three chunks of two paragraphs.
    std::string paragraph;
    for (int i = 0; i < 8; ++i) paragraph += kEnglishSentences[static_cast<size_t>(i) % kEnglishSentences.size()];
    std::string text;
    for (int i = 0; i < 6; ++i) text += paragraph + "\n\n";
    ChunkLimits limits;
    limits.max_chars = static_cast<int64_t>(CountCodePoints(paragraph + "\n\n") * 5 / 2);
    limits.max_tokens = 1000000;
    const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, chunks);
    ASSERT_EQ(chunks.size(), 3u);
    const std::vector<size_t> paragraphs = ParagraphStarts(text);
    for (const Chunk& chunk : chunks) {
        EXPECT_TRUE(std::binary_search(paragraphs.begin(), paragraphs.end(), chunk.begin)) << chunk.begin;
        EXPECT_EQ(CountCodePoints(text.substr(chunk.begin, chunk.end - chunk.begin)),
                  2 * CountCodePoints(paragraph + "\n\n"));
    }
}

TEST(ChunkerTest, CutsAtSentencesInsideOneLongParagraph) {
    std::string text;
    for (int i = 0; i < 60; ++i) text += kJapaneseSentences[static_cast<size_t>(i) % kJapaneseSentences.size()];
    ChunkLimits limits;
    limits.max_tokens = EstimateTokens(text) / 3;
    const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, chunks);
    EXPECT_GE(chunks.size(), 4u);
    const std::vector<size_t> sentences = SentenceStarts(text);
    for (const Chunk& chunk : chunks) {
        EXPECT_TRUE(std::binary_search(sentences.begin(), sentences.end(), chunk.begin)) << chunk.begin;
    }
}

TEST(ChunkerTest, ASentenceOverTheBudgetIsCutAtCodePoints) {
    // One Japanese "sentence" with emoji and no boundary at all, far over the budget.
    std::string text;
    for (int i = 0; i < 3000; ++i) text += i % 7 == 0 ? "😀" : i % 3 == 0 ? "漢" : "あ";
    ChunkLimits limits;
    limits.max_tokens = 300;
    const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, chunks);
    EXPECT_GE(chunks.size(), static_cast<size_t>(EstimateTokens(text) / 300));
    for (const Chunk& chunk : chunks) {
        EXPECT_TRUE(IsValidUtf8(text.substr(chunk.begin, chunk.end - chunk.begin)));
    }
}

TEST(ChunkerTest, OverlapStartsAtASentenceOfThePreviousChunk) {
    std::string text;
    for (int i = 0; i < 80; ++i) text += kEnglishSentences[static_cast<size_t>(i) % kEnglishSentences.size()];
    ChunkLimits limits;
    limits.max_tokens = 400;
    limits.overlap_chars = 200;
    const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, chunks);
    ASSERT_GE(chunks.size(), 2u);
    const std::vector<size_t> sentences = SentenceStarts(text);
    for (size_t k = 1; k < chunks.size(); ++k) {
        EXPECT_LT(chunks[k].overlap_begin, chunks[k].begin) << "chunk " << k << " has no overlap";
        EXPECT_TRUE(std::binary_search(sentences.begin(), sentences.end(), chunks[k].overlap_begin));
    }
}

TEST(ChunkerTest, SafetyFactorMakesChunksSmaller) {
    std::mt19937 rng(7);
    const std::string text = RandomText(rng, 20000);
    ChunkLimits limits;
    limits.max_tokens = 1500;
    const size_t plain = SplitIntoChunks(text, limits).size();
    limits.token_safety = 1.5;
    const std::vector<Chunk> safer = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, safer);
    EXPECT_GT(safer.size(), plain);
}

ChunkLimits RandomLimits(std::mt19937& rng, int64_t min_tokens, int64_t min_chars) {
    ChunkLimits limits;
    limits.max_tokens = min_tokens + static_cast<int64_t>(rng() % 3000);
    limits.max_chars = min_chars + static_cast<int64_t>(rng() % 8000);
    limits.overlap_chars = rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 150);
    limits.token_safety = rng() % 2 == 0 ? 1.0 : 1.0 + static_cast<double>(rng() % 50) / 100.0;
    return limits;
}

// The property test: hundreds of random texts and limits, every promise checked, and chunks
// balanced (none under half the average) and not more numerous than needed. Balance needs
// sentences that are small next to the budget: a line without boundaries is either short or
// longer than a whole chunk (then it is cut at code points).
TEST(ChunkerPropertyTest, RandomTextsAndLimits) {
    for (unsigned seed = 1; seed <= 300; ++seed) {
        std::mt19937 rng(seed);
        const ChunkLimits limits = RandomLimits(rng, 400, 800);
        const std::string text =
            RandomText(rng, 500 + rng() % 15000, static_cast<size_t>(limits.max_chars) + 1);
        SCOPED_TRACE("seed " + std::to_string(seed));

        const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
        ExpectValidChunks(text, limits, chunks);
        if (::testing::Test::HasFailure()) return;

        std::vector<double> loads;
        for (const Chunk& chunk : chunks) loads.push_back(Load(text.substr(chunk.begin, chunk.end - chunk.begin), limits));
        double total = 0.0;
        for (const double load : loads) total += load;
        const double average = total / static_cast<double>(loads.size());
        if (chunks.size() > 1) {
            const double smallest = *std::min_element(loads.begin(), loads.end());
            EXPECT_GE(smallest, 0.5 * average) << "unbalanced: " << chunks.size() << " chunks";
        }
        // Not needlessly many: a perfect packing needs at least `total` chunks; allow for cuts at
        // good boundaries, and for the room kept for overlaps (up to half a chunk when the
        // overlap is long for the budget).
        const double slack = limits.overlap_chars > 0 ? 2 * 1.25 : 1.25;
        EXPECT_LE(static_cast<double>(chunks.size()), std::ceil(total * slack) + 1.0);
    }
}

// Tiny budgets, where sentences and even words are over budget: still every promise holds.
TEST(ChunkerPropertyTest, TinyBudgets) {
    for (unsigned seed = 1; seed <= 100; ++seed) {
        std::mt19937 rng(seed);
        ChunkLimits limits;
        limits.max_tokens = 5 + static_cast<int64_t>(rng() % 200);
        limits.max_chars = 10 + static_cast<int64_t>(rng() % 400);
        limits.overlap_chars = static_cast<int64_t>(rng() % 40);
        limits.token_safety = 1.0 + static_cast<double>(rng() % 50) / 100.0;
        const std::string text = RandomText(rng, 100 + rng() % 3000, 100);
        SCOPED_TRACE("seed " + std::to_string(seed));
        ExpectValidChunks(text, limits, SplitIntoChunks(text, limits));
        if (::testing::Test::HasFailure()) return;
    }
}

// Speed is measured in bench/micro_bench.cpp (no timing asserts here); this checks the promises at size.
TEST(ChunkerScaleTest, SplitsOnePointFiveMillionChars) {
    std::mt19937 rng(99);
    const std::string text = RandomText(rng, 1500000);
    ChunkLimits limits;
    limits.overlap_chars = 500;
    const std::vector<Chunk> chunks = SplitIntoChunks(text, limits);
    ExpectValidChunks(text, limits, chunks);
    EXPECT_GT(chunks.size(), 20u);
}

}  // namespace
}  // namespace summarizer
