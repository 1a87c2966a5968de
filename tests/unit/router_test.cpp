#include "summarizer/router.hpp"

#include <gtest/gtest.h>

#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

const std::string kEnglishParagraph =
    "The committee reviewed the quarterly figures in detail. Revenue rose by 4.2 percent compared with the same "
    "period last year, mostly because of stronger demand in the northern region, while costs grew more slowly than "
    "expected. Several members asked whether the new pricing model would hold once the promotional discounts end "
    "in March.\n\n";
const std::string kJapaneseParagraph =
    "委員会は四半期の数字を詳しく検討した。売上高は前年同期比で四・二パーセント増加し、その主な要因は北部地域での"
    "需要の伸びであった。一方で、費用の増加は予想よりも緩やかだった。複数の委員は、三月に販促割引が終了した後も新しい"
    "価格モデルが維持できるのかを質問した。\n\n";

// Repeats `unit` until the text has `chars` code points (cut on a code point boundary).
std::string TextOfChars(const std::string& unit, size_t chars) {
    std::string out;
    size_t count = 0;
    while (count < chars) {
        size_t pos = 0;
        while (pos < unit.size() && count < chars) {
            size_t start = pos;
            DecodeCodePoint(unit, pos);
            out.append(unit, start, pos - start);
            ++count;
        }
    }
    return out;
}

Plan MustPlan(const std::string& text, Strategy strategy = Strategy::kAuto, std::string language = "en") {
    Config config;
    RouteOptions options;
    options.strategy = strategy;
    options.prompt.language = std::move(language);
    auto plan = PlanRoute(text, ComputeTextStats(text), config, options);
    EXPECT_TRUE(plan.ok()) << plan.error().message;
    return plan.ok() ? plan.value() : Plan{};
}

TEST(Router, ThirtyThousandEnglishCharsFit16k) {
    Plan plan = MustPlan(TextOfChars(kEnglishParagraph, 30000));
    EXPECT_EQ(RouteName(plan), "16k");
    EXPECT_EQ(plan.model, "gemma3-4b-16k");
    EXPECT_EQ(plan.num_ctx, 16384);
    EXPECT_EQ(plan.chars, 30000);
    EXPECT_EQ(plan.chunks.size(), 1u);
    EXPECT_NE(plan.reason.find("fits the 16k bucket"), std::string::npos) << plan.reason;
}

TEST(Router, ThirtyThousandJapaneseCharsDoNotFit16k) {
    Plan plan = MustPlan(TextOfChars(kJapaneseParagraph, 30000), Strategy::kAuto, "ja");
    EXPECT_EQ(RouteName(plan), "60k");
    EXPECT_EQ(plan.num_ctx, 61440);
    EXPECT_EQ(plan.keep_alive, "15m");
    EXPECT_GT(plan.estimated_prompt_tokens, 16384);
}

TEST(Router, SixtyThousandJapaneseCharsAreMeasuredInTokens) {
    // Under the 150,000-char threshold; what decides is whether the tokens fit 61,440.
    std::string text = TextOfChars(kJapaneseParagraph, 60000);
    Plan plan = MustPlan(text, Strategy::kAuto, "ja");
    Config config;
    int64_t needed = plan.estimated_prompt_tokens + config.generation.num_predict + config.routing.safety_margin_tokens;
    EXPECT_EQ(RouteName(plan), needed <= 61440 ? "60k" : "map_reduce") << plan.reason;
    // 140,000 Japanese chars are under the threshold but far over 61,440 tokens.
    Plan big = MustPlan(TextOfChars(kJapaneseParagraph, 140000), Strategy::kAuto, "ja");
    EXPECT_EQ(RouteName(big), "map_reduce") << big.reason;
    EXPECT_NE(big.reason.find("over the 60k bucket"), std::string::npos) << big.reason;
}

TEST(Router, EnglishOverTheThresholdGoesToMapReduceEvenIfItWouldFit60k) {
    Plan under = MustPlan(TextOfChars(kEnglishParagraph, 140000));
    EXPECT_EQ(RouteName(under), "60k") << under.reason;
    Plan over = MustPlan(TextOfChars(kEnglishParagraph, 160000));
    EXPECT_EQ(RouteName(over), "map_reduce") << over.reason;
    EXPECT_NE(over.reason.find("HIERARCHICAL_THRESHOLD_CHARS"), std::string::npos) << over.reason;
}

TEST(Router, NoPlannedPromptExceedsItsContext) {
    Config config;
    for (const auto* unit : {&kEnglishParagraph, &kJapaneseParagraph}) {
        for (size_t chars : {1000u, 20000u, 40000u, 70000u, 150000u, 400000u}) {
            std::string text = TextOfChars(*unit, chars);
            Plan plan = MustPlan(text);
            if (RouteName(plan) != "map_reduce") {
                EXPECT_LE(plan.estimated_prompt_tokens + config.generation.num_predict, plan.num_ctx);
                continue;
            }
            RouteOptions options;
            int64_t overhead = MapPromptOverheadTokens(options.prompt);
            for (const auto& chunk : plan.chunks) {
                EXPECT_LE(EstimateTokens(ChunkText(text, chunk)) + overhead + config.map_reduce.map_num_predict,
                          config.buckets.at(0).num_ctx);
                EXPECT_LE(chunk.chars, config.routing.hierarchical_chunk_max_chars);
            }
        }
    }
}

TEST(Router, StrategySingleRefusesWhatFitsNoBucket) {
    Config config;
    RouteOptions options;
    options.strategy = Strategy::kSingle;
    std::string text = TextOfChars(kJapaneseParagraph, 140000);
    auto plan = PlanRoute(text, ComputeTextStats(text), config, options);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.error().code, ErrorCode::kInputTooLarge);
    EXPECT_NE(plan.error().message.find("map_reduce"), std::string::npos);
    // Over the char threshold but within 60K tokens: single means single.
    std::string english = TextOfChars(kEnglishParagraph, 160000);
    auto single = PlanRoute(english, ComputeTextStats(english), config, options);
    ASSERT_TRUE(single.ok());
    EXPECT_EQ(RouteName(*single), "60k");
}

TEST(Router, StrategyMapReduceAlwaysChunks) {
    Plan plan = MustPlan(TextOfChars(kEnglishParagraph, 5000), Strategy::kMapReduce);
    EXPECT_EQ(RouteName(plan), "map_reduce");
    EXPECT_EQ(plan.chunks.size(), 1u);
}

TEST(Router, ThresholdsComeFromConfig) {
    Config config;
    config.routing.hierarchical_threshold_chars = 10000;
    config.routing.hierarchical_chunk_max_chars = 4000;
    std::string text = TextOfChars(kEnglishParagraph, 20000);
    RouteOptions options;
    options.prompt.max_tokens = 100;
    // 20,000 English chars fit 16K whatever the threshold.
    auto plan = PlanRoute(text, ComputeTextStats(text), config, options);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(RouteName(*plan), "16k");
    config.buckets[0].num_ctx = 4096;
    plan = PlanRoute(text, ComputeTextStats(text), config, options);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(RouteName(*plan), "map_reduce") << plan->reason;
    EXPECT_GE(plan->chunks.size(), 5u);
}

TEST(Router, SafetyFactorShrinksWhatFits) {
    Config config;
    std::string text = TextOfChars(kEnglishParagraph, 55000);
    RouteOptions options;
    auto normal = PlanRoute(text, ComputeTextStats(text), config, options);
    options.token_safety = 1.5;
    auto strict = PlanRoute(text, ComputeTextStats(text), config, options);
    ASSERT_TRUE(normal.ok() && strict.ok());
    EXPECT_GT(strict->estimated_prompt_tokens, normal->estimated_prompt_tokens);
    EXPECT_NE(strict->reason.find("after an overflow"), std::string::npos);
}

// With 2 slots whose prefills run together (no prefill gate), a map phase of an odd number of
// chunks ends with one chunk running alone: the plan takes one more, slightly smaller chunk
// instead, every chunk still within its budgets. Under the gate the second slot runs a prefill
// behind the first all along, so the odd chunk on the first slot ends no later than an even round
// would on the second: the count stays.
TEST(Router, MapChunksFillTheLastRoundOfSlots) {
    Config one_slot;
    Config two_slots;
    two_slots.ollama.num_parallel = 2;
    two_slots.scheduler.prefill_gate = false;
    Config gated = two_slots;
    gated.scheduler.prefill_gate = true;
    RouteOptions options;
    options.prompt.language = "en";
    int checked = 0;
    for (size_t chars = 160000; chars <= 400000 && checked < 2; chars += 20000) {
        const std::string text = TextOfChars(kEnglishParagraph, chars);
        const TextStats stats = ComputeTextStats(text);
        auto natural = PlanRoute(text, stats, one_slot, options);
        auto filled = PlanRoute(text, stats, two_slots, options);
        auto staggered = PlanRoute(text, stats, gated, options);
        ASSERT_TRUE(natural.ok() && filled.ok() && staggered.ok());
        ASSERT_EQ(RouteName(*natural), "map_reduce");
        EXPECT_EQ(filled->chunks.size() % 2, 0u) << chars << ": " << natural->chunks.size() << " -> " << filled->chunks.size();
        EXPECT_LE(filled->chunks.size(), natural->chunks.size() + 1) << chars;
        EXPECT_EQ(staggered->chunks.size(), natural->chunks.size()) << chars;
        int64_t covered = 0;
        for (const auto& c : filled->chunks) {
            EXPECT_LE(c.chars, two_slots.routing.hierarchical_chunk_max_chars);
            EXPECT_LE(c.estimated_tokens + MapPromptOverheadTokens(options.prompt) +
                          two_slots.map_reduce.map_num_predict + two_slots.routing.safety_margin_tokens,
                      two_slots.buckets.at(0).num_ctx);
            covered += c.chars;
        }
        EXPECT_EQ(covered, static_cast<int64_t>(chars));
        if (natural->chunks.size() % 2 == 1) ++checked;  // a case where the rounding mattered
    }
    EXPECT_GE(checked, 1) << "no size in the range gave an odd number of chunks";
}

}  // namespace
}  // namespace summarizer

namespace summarizer {
namespace {

Config ThreeBuckets() {
    Config config;
    config.buckets = {{"8k", "m-8k", 8192, "24h", true},
                      {"32k", "m-32k", 32768, "1h", false},
                      {"120k", "m-120k", 122880, "5m", false}};
    config.routing.hierarchical_threshold_chars = 1'000'000;
    return config;
}

Plan PlanWith(const Config& config, const std::string& text, Strategy strategy = Strategy::kAuto) {
    RouteOptions options;
    options.strategy = strategy;
    options.prompt.language = "en";
    options.prompt.max_tokens = config.generation.num_predict;
    auto plan = PlanRoute(text, ComputeTextStats(text), config, options);
    EXPECT_TRUE(plan.ok()) << plan.error().message;
    return plan.ok() ? plan.value() : Plan{};
}

TEST(RouterBuckets, PicksTheSmallestOfAnyNumberOfBucketsThatFits) {
    const Config config = ThreeBuckets();
    Plan small = PlanWith(config, TextOfChars(kEnglishParagraph, 4000));
    EXPECT_EQ(RouteName(small), "8k") << small.reason;
    Plan mid = PlanWith(config, TextOfChars(kEnglishParagraph, 60000));
    EXPECT_EQ(RouteName(mid), "32k") << mid.reason;
    EXPECT_EQ(mid.model, "m-32k");
    EXPECT_NE(mid.reason.find("over the 8k bucket (num_ctx 8,192), fits the 32k bucket"), std::string::npos)
        << mid.reason;
    Plan large = PlanWith(config, TextOfChars(kEnglishParagraph, 300000));
    EXPECT_EQ(RouteName(large), "120k") << large.reason;
    EXPECT_NE(large.reason.find("over the 32k bucket"), std::string::npos) << large.reason;
    Plan huge = PlanWith(config, TextOfChars(kEnglishParagraph, 700000));
    EXPECT_EQ(RouteName(huge), "map_reduce") << huge.reason;
    EXPECT_NE(huge.reason.find("over the 120k bucket"), std::string::npos) << huge.reason;
    // Map chunks are sized for the hot bucket, where map-reduce runs.
    EXPECT_EQ(huge.bucket, "8k");
    for (const auto& chunk : huge.chunks) EXPECT_LT(chunk.estimated_tokens, 8192);
}

// The reason's numbers are the plan's: for map-reduce it names the map prompts' total, which is
// estimated_prompt_tokens (not only the one-pass count it starts from).
TEST(RouterBuckets, AMapReduceReasonNamesTheEstimatedPromptTokens) {
    Plan big = PlanWith(Config{}, TextOfChars(kEnglishParagraph, 400000));
    ASSERT_EQ(RouteName(big), "map_reduce");
    std::string total = std::to_string(big.estimated_prompt_tokens);
    for (int i = static_cast<int>(total.size()) - 3; i > 0; i -= 3) total.insert(static_cast<size_t>(i), ",");
    EXPECT_NE(big.reason.find(total + " prompt tokens in all"), std::string::npos) << big.reason;
}

TEST(RouterBuckets, OneBucketAloneTakesWhatFitsAndMapReducesTheRest) {
    Config config;
    config.buckets = {{"16k", "gemma3-4b-16k", 16384, "24h", true}};
    EXPECT_EQ(RouteName(PlanWith(config, TextOfChars(kEnglishParagraph, 20000))), "16k");
    Plan big = PlanWith(config, TextOfChars(kEnglishParagraph, 100000));
    EXPECT_EQ(RouteName(big), "map_reduce") << big.reason;
    RouteOptions single;
    single.strategy = Strategy::kSingle;
    single.prompt.max_tokens = config.generation.num_predict;
    const std::string text = TextOfChars(kEnglishParagraph, 100000);
    auto refused = PlanRoute(text, ComputeTextStats(text), config, single);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kInputTooLarge);
}

TEST(RouterBuckets, TheThresholdSendsLongTextsPastTheMapBucketToMapReduce) {
    Config config = ThreeBuckets();
    config.routing.hierarchical_threshold_chars = 50000;
    EXPECT_EQ(RouteName(PlanWith(config, TextOfChars(kEnglishParagraph, 60000))), "map_reduce");
    EXPECT_EQ(RouteName(PlanWith(config, TextOfChars(kEnglishParagraph, 60000), Strategy::kSingle)), "32k");
}

// On a pool (4 hosts of 2 slots: 8 map calls at once) the last round is filled too, also where a
// cap just over an even share still needs one chunk more (cuts fall on sentence ends). Under the
// prefill gate each host's second slot runs a prefill behind its first: a last round of at most one
// call per host (4) runs on the leading slots and is left as it is; one of 5 to 7 is filled.
TEST(Router, MapChunksFillTheLastRoundOfAPoolsSlots) {
    Config one_slot;
    Config pool;
    for (int i = 0; i < 4; ++i) {
        pool.upstreams.push_back(UpstreamConfig{"gpu" + std::to_string(i), "ollama", "http://10.0.0.1:11434", 2});
    }
    ASSERT_EQ(pool.MapConcurrency(), 8);
    ASSERT_TRUE(pool.scheduler.prefill_gate);
    Config ungated = pool;
    ungated.scheduler.prefill_gate = false;
    RouteOptions options;
    options.prompt.language = "en";
    options.prompt.max_tokens = pool.generation.num_predict;
    int checked = 0, with_merges = 0, left = 0, filled_gated = 0;
    for (size_t chars = 700000; chars <= 1500000; chars += 50000) {
        const std::string text = TextOfChars(kEnglishParagraph, chars);
        const TextStats stats = ComputeTextStats(text);
        auto natural = PlanRoute(text, stats, one_slot, options);
        auto filled = PlanRoute(text, stats, ungated, options);
        auto gated = PlanRoute(text, stats, pool, options);
        ASSERT_TRUE(natural.ok() && filled.ok() && gated.ok());
        // The steps of a round: the maps and the merges expected to run beside them.
        const size_t merges = ExpectedMerges(natural->chunks.size(), pool, options.prompt);
        const size_t last_round = (natural->chunks.size() + merges) % 8;
        if (last_round == 0) continue;
        ++checked;
        if (merges > 0) ++with_merges;
        EXPECT_EQ((filled->chunks.size() + merges) % 8, 0u)
            << chars << ": " << natural->chunks.size() << " -> " << filled->chunks.size() << ", " << merges << " merge(s)";
        EXPECT_LT(filled->chunks.size(), natural->chunks.size() + 8) << chars;
        for (const auto& c : filled->chunks) EXPECT_LE(c.chars, pool.routing.hierarchical_chunk_max_chars);
        if (last_round <= 4) {
            ++left;
            EXPECT_EQ(gated->chunks.size(), natural->chunks.size()) << chars << ": a last round of " << last_round;
        } else {
            ++filled_gated;
            EXPECT_EQ(gated->chunks.size(), filled->chunks.size()) << chars << ": a last round of " << last_round;
        }
    }
    EXPECT_GE(checked, 3);
    EXPECT_GE(with_merges, 1);
    EXPECT_GE(left, 1);
    EXPECT_GE(filled_gated, 1);
}

TEST(Router, ExpectedMergesAreThoseThatBringThePartialsWithinHalfAFinalMerge) {
    Config config;  // 16K map bucket, partials of up to 400 tokens, a final of 1,200
    PromptOptions prompt;
    prompt.max_tokens = config.generation.num_predict;
    EXPECT_EQ(ExpectedMerges(8, config, prompt), 0u);   // 3.3K tokens: one final merge takes them
    EXPECT_EQ(ExpectedMerges(35, config, prompt), 0u);  // 14.3K: still one final merge (budget 14.7K)
    EXPECT_EQ(ExpectedMerges(52, config, prompt), 1u);  // 21.2K: one merge of the first ~34, the rest as it is
    EXPECT_EQ(ExpectedMerges(100, config, prompt), 3u);  // 40.8K
}

}  // namespace
}  // namespace summarizer
