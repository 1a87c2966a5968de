// The summarizer over an in-process fake backend: routes, map-reduce order and coverage,
// re-planning after truncation, failures and cancellation.
#include "summarizer/summarizer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "fake_backend.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using testing::FakeLlmEngine;

// Paragraphs that each carry a marker "[P<n>]" so tests can see which text reached which call.
std::string MarkedText(int paragraphs, bool japanese = false) {
    std::string out;
    for (int i = 0; i < paragraphs; ++i) {
        out += "[P" + std::to_string(i) + "] ";
        if (japanese) {
            out += "会議では新しい計画の予算と日程について長い議論が行われ、最終的に第一段階の実施が承認された。"
                   "担当者は来月までに詳細な報告書を提出することになった。";
        } else {
            out += "The meeting discussed the budget and the schedule of the new plan at length, and in the end it "
                   "approved the first phase. The people in charge will hand in a detailed report by next month.";
        }
        out += "\n\n";
    }
    return out;
}

std::set<int> MarkersIn(const std::string& text) {
    std::set<int> markers;
    static const std::regex re("\\[P(\\d+)\\]");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
        markers.insert(std::stoi((*it)[1]));
    }
    return markers;
}

class SummarizerTest : public ::testing::Test {
protected:
    SummarizerTest() {
        config.routing.hierarchical_threshold_chars = 150000;
        config.routing.hierarchical_chunk_max_chars = 3000;
        config.ollama.num_parallel = 3;
    }
    Result<SummarizeResponse> Run(const std::string& text, SummarizeEvents events = {},
                                  Strategy strategy = Strategy::kAuto) {
        SummarizeRequest request;
        request.text = text;
        request.strategy = strategy;
        request.request_id = "test";
        Summarizer summarizer(config, backend);
        return summarizer.Run(request, events, cancel);
    }
    Config config;
    FakeLlmEngine backend;
    CancelToken cancel;
};

TEST_F(SummarizerTest, SinglePassStreamsDeltasAndCountsUsage) {
    std::string streamed;
    SummarizeEvents events;
    events.on_delta = [&](std::string_view piece) { streamed += piece; };
    auto r = Run("A short text about a meeting. It approved a plan.", events);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->route, "16k");
    EXPECT_EQ(r->summary, "summary of single");
    EXPECT_EQ(streamed, r->summary);
    EXPECT_EQ(r->usage.upstream_requests, 1);
    EXPECT_EQ(r->usage.completion_tokens, 10);
    EXPECT_NEAR(r->timings.decode_tokens_per_s, 50.0, 0.01);
}

TEST_F(SummarizerTest, MapReduceKeepsDocumentOrderWhateverFinishesFirst) {
    // Later chunks answer sooner: completion order is the reverse of document order.
    backend.SetResponder([](const GenerateRequest& g, int) -> Result<GenerateResult> {
        GenerateResult r = FakeLlmEngine::Default(g);
        if (g.tag.rfind("map ", 0) == 0) {
            int index = std::stoi(g.tag.substr(4));
            std::this_thread::sleep_for(std::chrono::milliseconds(5 * (20 - std::min(index, 20))));
            // The partial summary names the markers its chunk contained.
            std::string markers;
            for (int m : MarkersIn(g.prompt)) markers += "[P" + std::to_string(m) + "]";
            r.text = "chunk " + std::to_string(index) + " " + markers;
        }
        return r;
    });
    std::vector<std::pair<std::string, int>> progress;
    SummarizeEvents events;
    std::vector<ProgressUpdate> updates;
    events.on_progress = [&](const ProgressUpdate& p) {
        progress.emplace_back(p.phase, p.done);
        updates.push_back(p);
    };
    const int paragraphs = 60;
    auto r = Run(MarkedText(paragraphs), events, Strategy::kMapReduce);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->route, "map_reduce");
    EXPECT_GT(r->chunks, 3);
    EXPECT_EQ(r->levels, 1);

    auto requests = backend.requests();
    const auto& final_reduce = requests.back();
    EXPECT_EQ(final_reduce.tag, "reduce final");
    // Every chunk's summary reached the reduce, in document order.
    size_t last = 0;
    for (int i = 1; i <= r->chunks; ++i) {
        size_t pos = final_reduce.prompt.find("chunk " + std::to_string(i) + " ");
        ASSERT_NE(pos, std::string::npos) << "chunk " << i << " missing from the reduce";
        EXPECT_GT(pos, last);
        last = pos;
    }
    // And every paragraph of the input is covered by some chunk.
    std::set<int> all = MarkersIn(final_reduce.prompt);
    EXPECT_EQ(all.size(), static_cast<size_t>(paragraphs));
    // Progress: map 0..n, then the final merge 0..1 (level 1: no intermediate merge), then done.
    ASSERT_GE(progress.size(), 3u);
    EXPECT_EQ(progress.front(), (std::pair<std::string, int>{"map", 0}));
    EXPECT_EQ(progress[progress.size() - 3], (std::pair<std::string, int>{"map", r->chunks}));
    EXPECT_EQ(progress[progress.size() - 2], (std::pair<std::string, int>{"final", 0}));
    EXPECT_EQ(progress.back(), (std::pair<std::string, int>{"final", 1}));
    EXPECT_EQ(updates.back().level, r->levels);
    EXPECT_EQ(updates.back().remaining_ms, 0);
    for (const auto& u : updates) EXPECT_GE(u.remaining_ms, 0);
    EXPECT_EQ(r->usage.upstream_requests, r->chunks + 1);
}

TEST_F(SummarizerTest, MapConcurrencyIsBoundedBySlots) {
    std::atomic<int> active{0}, peak{0};
    backend.SetResponder([&](const GenerateRequest& g, int) -> Result<GenerateResult> {
        int now = ++active;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        --active;
        return FakeLlmEngine::Default(g);
    });
    auto r = Run(MarkedText(60), {}, Strategy::kMapReduce);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(peak.load(), 3);
}

TEST_F(SummarizerTest, MultiLevelReduceForAVeryLargeInput) {
    // Partial summaries so long that they need several reduce levels to fit 16K.
    config.map_reduce.map_num_predict = 2000;
    config.routing.hierarchical_chunk_max_chars = 20000;
    backend.SetResponder([](const GenerateRequest& g, int) -> Result<GenerateResult> {
        GenerateResult r = FakeLlmEngine::Default(g);
        if (g.tag.rfind("map ", 0) == 0 || g.tag.rfind("reduce ", 0) == 0) {
            r.text = g.tag + ": " + std::string(static_cast<size_t>(g.max_output_tokens) * 3, 'x');
        }
        return r;
    });
    auto r = Run(MarkedText(3000), {}, Strategy::kAuto);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->route, "map_reduce");
    EXPECT_GE(r->levels, 2);
    for (const auto& g : backend.requests()) {
        EXPECT_LE(EstimateTokens(g.prompt) + EstimateTokens(g.system) + g.max_output_tokens, g.context_tokens) << g.tag;
    }
}

TEST_F(SummarizerTest, MergePromptsAreSizedWithTheTokenCountsOllamaReported) {
    // Partials whose text estimates at a few tokens but which Ollama counted at 1,500 (a tokenizer the
    // estimate does not know). A backend like Ollama refuses a prompt over num_ctx, counting each
    // partial at what it reported for it ("<n>#" markers). Sized by characters, twelve partials would
    // go into one final reduce and be refused; sized by eval_count they are merged in groups first.
    config.routing.hierarchical_chunk_max_chars = 10000;
    std::atomic<int> refused{0};
    backend.SetResponder([&](const GenerateRequest& g, int) -> Result<GenerateResult> {
        static const std::regex marker("<(\\d+)#");
        int64_t tokens = EstimateTokens(g.system) + EstimateTokens(g.prompt);
        for (auto it = std::sregex_iterator(g.prompt.begin(), g.prompt.end(), marker); it != std::sregex_iterator(); ++it) {
            tokens += std::stoll((*it)[1]);
        }
        if (tokens > g.context_tokens) {
            ++refused;
            return MakeError(ErrorCode::kContextOverflow, "Ollama answered 400: the input length exceeds the context length");
        }
        GenerateResult r = FakeLlmEngine::Default(g);
        r.prompt_tokens = tokens;
        r.output_tokens = g.tag.rfind("map ", 0) == 0 ? 1500 : g.tag.rfind("reduce ", 0) == 0 ? 600 : 10;
        r.text = "<" + std::to_string(r.output_tokens) + "# " + g.tag;
        return r;
    });
    auto r = Run(MarkedText(600), {}, Strategy::kMapReduce);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_GE(r->chunks, 12);
    EXPECT_EQ(r->levels, 2);
    EXPECT_EQ(refused.load(), 0);
    EXPECT_EQ(r->overflow_replans, 0);
    // Every map partial reached exactly one merge, or the final merge as it was (carried up).
    int merged_partials = 0;
    for (const auto& g : backend.requests()) {
        if (g.tag.rfind("reduce ", 0) != 0) continue;
        for (size_t pos = 0; (pos = g.prompt.find("<1500# map ", pos)) != std::string::npos; ++pos) ++merged_partials;
    }
    EXPECT_EQ(merged_partials, r->chunks);
}

TEST_F(SummarizerTest, TruncatedPromptIsReplannedNeverReturned) {
    // The first call comes back "cut": prompt_eval_count == num_ctx.
    backend.SetResponder([](const GenerateRequest& g, int index) -> Result<GenerateResult> {
        GenerateResult r = FakeLlmEngine::Default(g);
        if (index == 0) {
            r.prompt_tokens = g.context_tokens;
            r.text = "summary of the tail only";
        }
        return r;
    });
    auto r = Run(MarkedText(10));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_NE(r->summary, "summary of the tail only");
    EXPECT_EQ(r->overflow_replans, 1);
    EXPECT_NE(r->reason.find("re-planned"), std::string::npos) << r->reason;
    EXPECT_EQ(backend.requests().size(), 2u);
}

TEST_F(SummarizerTest, OllamaRefusingTheLengthIsReplannedToABiggerBucket) {
    backend.SetResponder([](const GenerateRequest& g, int) -> Result<GenerateResult> {
        if (g.context_tokens == 16384) {
            return MakeError(ErrorCode::kContextOverflow,
                             "Ollama answered 400: the input length exceeds the context length");
        }
        return FakeLlmEngine::Default(g);
    });
    // Close to the 16K limit by estimate, so a stricter estimate moves it to 60K.
    std::string text;
    while (EstimateTokens(text) < 13500) text += MarkedText(5);
    auto r = Run(text);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->route, "60k");
    EXPECT_GE(r->overflow_replans, 1);
}

TEST_F(SummarizerTest, PermanentChunkFailureNamesTheChunkAndCancelsTheRest) {
    std::atomic<int> cancelled_seen{0};
    backend.SetResponder([&](const GenerateRequest& g, int) -> Result<GenerateResult> {
        if (g.tag == "map 2/" + g.tag.substr(g.tag.find('/') + 1)) {
            return MakeError(ErrorCode::kUpstreamError, "Ollama answered 400: bad request");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        return FakeLlmEngine::Default(g);
    });
    auto r = Run(MarkedText(60), {}, Strategy::kMapReduce);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kUpstreamError);
    EXPECT_NE(r.error().message.find("chunk 2 of"), std::string::npos) << r.error().message;
    // Not every chunk was sent: the failure stopped the rest.
    int maps = 0;
    for (const auto& g : backend.requests()) maps += g.tag.rfind("map ", 0) == 0;
    EXPECT_LT(maps, 12);
}

TEST_F(SummarizerTest, CancelStopsMapReduce) {
    backend.SetResponder([&](const GenerateRequest& g, int index) -> Result<GenerateResult> {
        if (index == 2) cancel.Cancel();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return FakeLlmEngine::Default(g);
    });
    auto r = Run(MarkedText(60), {}, Strategy::kMapReduce);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
    EXPECT_LT(backend.requests().size(), 8u);
}

TEST_F(SummarizerTest, JapaneseMapReduceAsksForJapanese) {
    auto r = Run(MarkedText(60, true), {}, Strategy::kMapReduce);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->language, "ja");
    for (const auto& g : backend.requests()) {
        EXPECT_NE(g.prompt.find("日本語で"), std::string::npos) << g.tag;
    }
}

}  // namespace
}  // namespace summarizer
