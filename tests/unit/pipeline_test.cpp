// The pipelined map-reduce (executor.hpp): merges start while the map goes on, the partials after
// the last merge group go to the final merge as they are, outputs stay in document order, only the
// final merge runs alone, and a state caught mid-pipeline (some merges done, the map not) resumes
// without redoing anything and makes the same summary. Also the exact token counts (TokenCounter)
// and their use by the router and chunker.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "fake_backend.hpp"
#include "summarizer/executor.hpp"
#include "summarizer/router.hpp"
#include "summarizer/summarizer.hpp"
#include "summarizer/token_counter.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using testing::FakeLlmEngine;
using Clock = std::chrono::steady_clock;

std::string Paragraphs(int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        out += "[P" + std::to_string(i) +
               "] The meeting discussed the budget and the schedule of the new plan at length, and in the end it "
               "approved the first phase. The people in charge will hand in a detailed report by next month.\n\n";
    }
    return out;
}

SummarizeRequest Request(std::string text) {
    SummarizeRequest r;
    r.text = std::move(text);
    r.language = "en";
    r.strategy = Strategy::kMapReduce;
    r.request_id = "pipeline";
    return r;
}

// Big partials (so merges are needed), maps that take a while in document order.
Config BigPartials() {
    Config config;
    config.ollama.num_parallel = 2;
    config.map_reduce.map_num_predict = 2000;
    config.routing.hierarchical_chunk_max_chars = 20000;
    return config;
}

struct Timed {
    std::string tag;
    Clock::time_point start, end;
};

class Recorder {
public:
    FakeLlmEngine::Responder Responder() {
        return [this](const GenerateRequest& g, int) -> Result<GenerateResult> {
            const auto start = Clock::now();
            GenerateResult r = FakeLlmEngine::Default(g);
            r.prompt_tokens = EstimateTokens(g.system) + EstimateTokens(g.prompt);  // as planned: no overflow
            if (g.tag.rfind("map ", 0) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(30));
            if (g.tag != "reduce final") {
                r.text = g.tag + ": " + std::string(static_cast<size_t>(g.max_output_tokens) * 3, 'x');
            }
            std::lock_guard lock(mutex_);
            calls_.push_back({g.tag, start, Clock::now()});
            return r;
        };
    }
    std::vector<Timed> calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    std::mutex mutex_;
    std::vector<Timed> calls_;
};

TEST(Pipeline, MergesStartWhileTheMapGoesOnAndTheTailGoesToTheFinalMergeUnmerged) {
    const Config config = BigPartials();
    FakeLlmEngine engine;
    Recorder recorder;
    engine.SetResponder(recorder.Responder());
    Summarizer summarizer(config, engine);
    const auto request = Request(Paragraphs(3000));
    auto state = summarizer.Start(request);
    ASSERT_TRUE(state.ok());
    auto r = summarizer.Execute(request, *state, {}, CancelToken{});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(state->levels.size(), 2u);

    // Level 1 covers the map's outputs in order: merge groups that fit a merge prompt, then the
    // tail, each partial carried up as it is (a group of one, no call).
    const auto& groups = state->groups[1];
    ASSERT_EQ(groups.size(), state->levels[1].size());
    PromptOptions options;
    options.language = "en";
    options.max_tokens = config.generation.num_predict;
    const int64_t budget =
        config.MapBucket().num_ctx - config.map_reduce.reduce_num_predict - config.routing.safety_margin_tokens;
    int at = 0, merges = 0, carried = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
        const auto [first, last] = groups[g];
        ASSERT_EQ(first, at);
        ASSERT_GT(last, first);
        at = last;
        const bool is_carried = state->levels[1][g]->text == state->levels[0][static_cast<size_t>(first)]->text;
        if (is_carried) {
            EXPECT_EQ(last - first, 1);
            ++carried;
            continue;
        }
        EXPECT_EQ(carried, 0) << "a merge group after a carried partial";
        std::vector<StepOutput> group;
        for (int i = first; i < last; ++i) group.push_back(*state->levels[0][static_cast<size_t>(i)]);
        EXPECT_LE(MergePromptTokens(group, false, options, state->safety), budget);
        ++merges;
    }
    EXPECT_EQ(at, static_cast<int>(state->levels[0].size()));
    EXPECT_GE(merges, 2);
    EXPECT_GE(carried, 1) << "the partials after the last merge group fit the final merge as they are";

    const auto calls = recorder.calls();
    Clock::time_point last_map_end{}, first_merge_start = Clock::time_point::max(), last_merge_end{}, others_end{};
    for (const auto& c : calls) {
        if (c.tag.rfind("map ", 0) == 0) last_map_end = std::max(last_map_end, c.end);
        if (c.tag.rfind("reduce 1.", 0) == 0) {
            first_merge_start = std::min(first_merge_start, c.start);
            last_merge_end = std::max(last_merge_end, c.end);
        }
        if (c.tag != "reduce final") others_end = std::max(others_end, c.end);
    }
    EXPECT_LT(first_merge_start, last_map_end) << "the first merge waited for the whole map";
    ASSERT_EQ(calls.back().tag, "reduce final");
    EXPECT_GE(calls.back().start, others_end) << "the final merge runs alone, after everything else";
    // Every map, one call per merge group (carried partials make none), one final.
    EXPECT_EQ(r->usage.upstream_requests, r->chunks + merges + 1);
    // Each merge got its partials in document order; the final merge got the merges' outputs, then
    // the carried partials, in document order.
    for (const auto& g : engine.requests()) {
        if (g.tag.rfind("reduce 1.", 0) == 0) {
            const int group = std::stoi(g.tag.substr(9)) - 1;
            const auto [first, last] = groups[static_cast<size_t>(group)];
            size_t pos_at = 0;
            for (int i = first; i < last; ++i) {
                const size_t pos = g.prompt.find("map " + std::to_string(i + 1) + "/");
                ASSERT_NE(pos, std::string::npos) << g.tag << " lacks map " << i + 1;
                EXPECT_GE(pos, pos_at);
                pos_at = pos;
            }
        } else if (g.tag == "reduce final") {
            size_t pos_at = 0;
            for (size_t i = 0; i < state->levels[1].size(); ++i) {
                const size_t pos = g.prompt.find(state->levels[1][i]->text.substr(0, 16));
                ASSERT_NE(pos, std::string::npos) << "the final merge lacks part " << i + 1;
                EXPECT_GE(pos, pos_at);
                pos_at = pos;
            }
        }
    }
}

TEST(Pipeline, AStateCaughtMidPipelineResumesWithoutRedoingAnything) {
    const Config config = BigPartials();
    const auto request = Request(Paragraphs(3000));
    FakeLlmEngine whole_engine;
    Recorder whole_recorder;
    whole_engine.SetResponder(whole_recorder.Responder());
    Summarizer whole(config, whole_engine);
    auto uninterrupted = whole.Run(request, {}, CancelToken{});
    ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.error().message;

    FakeLlmEngine engine;
    Recorder recorder;
    engine.SetResponder(recorder.Responder());
    Summarizer summarizer(config, engine);
    auto state = summarizer.Start(request);
    ASSERT_TRUE(state.ok());
    CancelToken cancel;
    SummarizeEvents events;
    events.on_step = [&](const StepId& step, const StepOutput&, const ExecutionState&) {
        if (step.kind == StepKind::kMerge) cancel.Cancel();  // the first merge done: stop mid-map
    };
    auto first = summarizer.Execute(request, *state, events, cancel);
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.error().code, ErrorCode::kCancelled);
    ASSERT_GE(state->levels.size(), 2u);
    const auto finished_maps = std::count_if(state->levels[0].begin(), state->levels[0].end(),
                                             [](const auto& o) { return o.has_value(); });
    EXPECT_LT(finished_maps, static_cast<long>(state->levels[0].size())) << "the map was still going";
    EXPECT_GE(std::count_if(state->levels[1].begin(), state->levels[1].end(), [](const auto& o) { return o.has_value(); }),
              1);

    auto restored = StateFromJson(StateToJson(*state));
    ASSERT_TRUE(restored.ok()) << restored.error().message;
    FakeLlmEngine resume_engine;
    Recorder resume_recorder;
    resume_engine.SetResponder(resume_recorder.Responder());
    Summarizer resumer(config, resume_engine);
    auto resumed = resumer.Execute(request, *restored, {}, CancelToken{});
    ASSERT_TRUE(resumed.ok()) << resumed.error().message;
    EXPECT_EQ(resumed->summary, uninterrupted->summary);
    for (const auto& g : resume_engine.requests()) {
        if (g.tag.rfind("map ", 0) == 0) {
            const int index = std::stoi(g.tag.substr(4)) - 1;
            EXPECT_FALSE(state->levels[0][static_cast<size_t>(index)].has_value()) << g.tag << " was finished already";
        } else if (g.tag.rfind("reduce 1.", 0) == 0) {
            const size_t group = static_cast<size_t>(std::stoi(g.tag.substr(9)) - 1);
            EXPECT_FALSE(group < state->levels[1].size() && state->levels[1][group].has_value())
                << g.tag << " was finished already";
        }
    }
    // The whole work, once: the resumed calls and the first run's finished steps make the uninterrupted run.
    EXPECT_EQ(static_cast<int>(resume_engine.requests().size()) + state->FinishedSteps(),
              uninterrupted->usage.upstream_requests);
}

// An engine that counts tokens (as POST /tokenize would): its count is the estimate x `ratio`.
class CountingEngine : public FakeLlmEngine {
public:
    explicit CountingEngine(double ratio) : ratio_(ratio) {}
    Result<int64_t> CountTokens(const std::string&, const std::string& text) override {
        ++counts;
        if (fail) return MakeError(ErrorCode::kUpstreamUnreachable, "down");
        return static_cast<int64_t>(static_cast<double>(EstimateTokens(text)) * ratio_);
    }
    std::atomic<int> counts{0};
    std::atomic<bool> fail{false};

private:
    double ratio_;
};

TEST(TokenCounter, CountsATextOnceEvictsTheOldestAndEstimatesWhenTheEngineCannot) {
    CountingEngine engine(1.0);
    TokenCounter counter(engine, "m", 2);
    const auto later = Clock::now() + std::chrono::seconds(5);
    EXPECT_EQ(counter.Count("alpha beta gamma", later), EstimateTokens("alpha beta gamma"));
    EXPECT_TRUE(counter.Count("alpha beta gamma", later));
    EXPECT_EQ(engine.counts, 1) << "the second count of the same text is the cache's";
    (void)counter.Count("one", later);
    (void)counter.Count("two", later);  // evicts "alpha beta gamma" (capacity 2)
    (void)counter.Count("alpha beta gamma", later);
    EXPECT_EQ(engine.counts, 4);
    // Past the deadline: no call, an estimate (nullopt) — but a cached count still answers.
    EXPECT_FALSE(counter.Count("new text", Clock::now() - std::chrono::seconds(1)));
    EXPECT_TRUE(counter.Count("two", Clock::now() - std::chrono::seconds(1)));
    engine.fail = true;
    EXPECT_FALSE(counter.Count("unreachable now", later));
    const auto stats = counter.stats();
    EXPECT_EQ(stats.engine, 4);
    EXPECT_EQ(stats.cached, 2);
    EXPECT_EQ(stats.estimated, 2);
}

TEST(ExactTokens, TheRouterSizesByTheEnginesCountAndSaysSo) {
    Config config;
    const std::string text = Paragraphs(200);  // ~40K chars
    const TextStats stats = ComputeTextStats(text);
    RouteOptions estimated;
    estimated.prompt.language = "en";
    estimated.prompt.max_tokens = 1200;
    auto by_estimate = PlanRoute(text, stats, config, estimated);
    ASSERT_TRUE(by_estimate.ok());
    EXPECT_NE(by_estimate->reason.find("(estimated)"), std::string::npos) << by_estimate->reason;
    EXPECT_FALSE(by_estimate->exact_tokens);

    // The engine counts twice the estimate: past the 16k bucket, so the 60k one.
    RouteOptions exact = estimated;
    exact.exact_tokens = [](std::string_view t) -> std::optional<int64_t> {
        return static_cast<int64_t>(static_cast<double>(EstimateTokens(t)) * 2.0);
    };
    auto by_count = PlanRoute(text, stats, config, exact);
    ASSERT_TRUE(by_count.ok());
    EXPECT_TRUE(by_count->exact_tokens);
    EXPECT_NE(by_count->reason.find("counted by the engine's tokenizer"), std::string::npos) << by_count->reason;
    EXPECT_EQ(by_count->text_tokens, static_cast<int64_t>(static_cast<double>(EstimateTokens(text)) * 2.0));
    EXPECT_EQ(by_estimate->bucket, "16k");
    EXPECT_EQ(by_count->bucket, "60k");
}

TEST(ExactTokens, TheChunkerIsCalibratedAndEveryChunkCountedFitsItsBudget) {
    Config config;
    config.routing.hierarchical_chunk_max_chars = 1000000;  // the token budget decides
    const std::string text = Paragraphs(2500);              // ~500K chars
    const TextStats stats = ComputeTextStats(text);
    RouteOptions options;
    options.prompt.language = "en";
    options.prompt.max_tokens = 1200;
    options.strategy = Strategy::kMapReduce;
    auto estimated = PlanRoute(text, stats, config, options);
    ASSERT_TRUE(estimated.ok());
    // A tokenizer 30% denser than the estimate: more, smaller chunks, each counted and under budget.
    const auto dense = [](std::string_view t) -> std::optional<int64_t> {
        return static_cast<int64_t>(static_cast<double>(EstimateTokens(t)) * 1.3) + 1;
    };
    options.exact_tokens = dense;
    auto exact = PlanRoute(text, stats, config, options);
    ASSERT_TRUE(exact.ok());
    EXPECT_GT(exact->chunks.size(), estimated->chunks.size());
    EXPECT_EQ(exact->exact_chunks, static_cast<int>(exact->chunks.size()));
    const int64_t limit = config.MapBucket().num_ctx - MapPromptOverheadTokens(options.prompt) -
                          config.map_reduce.map_num_predict - config.routing.safety_margin_tokens;
    for (const auto& c : exact->chunks) {
        EXPECT_EQ(c.estimated_tokens, *dense(ChunkText(text, c)));
        EXPECT_LE(c.estimated_tokens, limit);
    }
    EXPECT_NE(exact->reason.find("chunks counted exactly"), std::string::npos) << exact->reason;
    // An engine that stops answering midway: the rest stay estimated.
    int answered = 0;
    options.exact_tokens = [&](std::string_view t) -> std::optional<int64_t> {
        if (++answered > 3) return std::nullopt;
        return EstimateTokens(t);
    };
    auto partial = PlanRoute(text, stats, config, options);
    ASSERT_TRUE(partial.ok());
    EXPECT_LT(partial->exact_chunks, static_cast<int>(partial->chunks.size()));
}

}  // namespace
}  // namespace summarizer
