// The executor in steps: the one re-plan policy, the serialisable state, resuming from finished
// steps, step events, and an engine that throws.
#include "summarizer/executor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "fake_backend.hpp"
#include "summarizer/summarizer.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using testing::FakeLlmEngine;

std::string Paragraphs(int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        out += "[P" + std::to_string(i) +
               "] The meeting discussed the budget and the schedule of the new plan at length, and in the end it "
               "approved the first phase. The people in charge will hand in a detailed report by next month.\n\n";
    }
    return out;
}

SummarizeRequest Request(std::string text, Strategy strategy = Strategy::kAuto) {
    SummarizeRequest r;
    r.text = std::move(text);
    r.strategy = strategy;
    r.request_id = "test";
    return r;
}

Config SmallChunks() {
    Config config;
    config.routing.hierarchical_chunk_max_chars = 3000;
    config.ollama.num_parallel = 2;
    return config;
}

TEST(ReplanPolicy, EveryOverflowMakesTheEstimateStricter) {
    OverflowReport refused{StepKind::kSingle, 0, 15000, "single refused"};
    auto first = DecideReplan(1.0, 0, refused, false);
    EXPECT_EQ(first.action, ReplanDecision::Action::kReplan);
    EXPECT_DOUBLE_EQ(first.safety, 1.25);
    // A second overflow in a row: stricter again, never the same plan a third time.
    auto second = DecideReplan(first.safety, 1, refused, false);
    EXPECT_EQ(second.action, ReplanDecision::Action::kReplan);
    EXPECT_DOUBLE_EQ(second.safety, 1.5625);
    // The engine's own count says how far off the estimate was: the factor follows it.
    OverflowReport cut{StepKind::kSingle, 16384, 10000, "single cut"};
    EXPECT_NEAR(DecideReplan(1.0, 0, cut, false).safety, 1.7384, 1e-4);
    // The budget of re-plans, and text already streamed, end it.
    EXPECT_EQ(DecideReplan(2.0, 3, refused, false).action, ReplanDecision::Action::kGiveUp);
    auto streamed = DecideReplan(1.0, 0, refused, true);
    EXPECT_EQ(streamed.action, ReplanDecision::Action::kGiveUp);
    EXPECT_NE(streamed.note.find("started streaming"), std::string::npos);
}

TEST(ReplanPolicy, MergesAreRegroupedMapsAndSinglePassesReplanned) {
    EXPECT_EQ(DecideReplan(1.0, 0, {StepKind::kMap, 0, 0, "map"}, false).action, ReplanDecision::Action::kReplan);
    EXPECT_EQ(DecideReplan(1.0, 0, {StepKind::kMerge, 0, 0, "m"}, false).action, ReplanDecision::Action::kRegroup);
    EXPECT_EQ(DecideReplan(1.0, 0, {StepKind::kFinal, 0, 0, "f"}, false).action, ReplanDecision::Action::kRegroup);
    EXPECT_NE(DecideReplan(1.0, 0, {StepKind::kMerge, 0, 0, "m"}, false).note.find("smaller groups"), std::string::npos);
}

// The double overflow through the executor: a single pass refused twice is planned a third time
// with a stricter estimate each time, and the third plan is not the first.
TEST(Executor, TwoOverflowsInARowTightenTheEstimateEachTime) {
    Config config;
    FakeLlmEngine engine;
    engine.SetResponder([](const GenerateRequest& g, int index) -> Result<GenerateResult> {
        if (index < 2) return MakeError(ErrorCode::kContextOverflow, "the input length exceeds the context length");
        return FakeLlmEngine::Default(g);
    });
    Summarizer summarizer(config, engine);
    std::string text;
    while (EstimateTokens(text) < 12500) text += Paragraphs(5);
    auto r = summarizer.Run(Request(text), {}, CancelToken{});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->overflow_replans, 2);
    auto calls = engine.requests();
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_NE(r->reason.find("x1.5625 after an overflow"), std::string::npos) << r->reason;
    // The first two tries were the same bucket; the stricter estimate moved the third.
    EXPECT_EQ(calls[0].context_tokens, 16384);
    EXPECT_NE(calls[2].context_tokens, calls[0].context_tokens);
}

TEST(ExecutionState, RoundTripsThroughJson) {
    Config config = SmallChunks();
    FakeLlmEngine engine;
    Summarizer summarizer(config, engine);
    const auto request = Request(Paragraphs(40), Strategy::kMapReduce);
    auto state = summarizer.Start(request);
    ASSERT_TRUE(state.ok());
    ASSERT_TRUE(summarizer.Execute(request, *state, {}, CancelToken{}).ok());
    auto back = StateFromJson(StateToJson(*state));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(StateToJson(*back), StateToJson(*state));
    EXPECT_EQ(back->plan.chunks.size(), state->plan.chunks.size());
    EXPECT_EQ(back->plan.chunks[1].begin, state->plan.chunks[1].begin);
    ASSERT_TRUE(back->final);
    EXPECT_EQ(back->final->text, "summary of reduce final");
    EXPECT_EQ(back->FinishedSteps(), static_cast<int>(state->plan.chunks.size()) + 1);

    nlohmann::json broken = StateToJson(*state);
    broken["levels"][0].erase(0);
    auto refused = StateFromJson(broken);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find("one slot per chunk"), std::string::npos);
    EXPECT_FALSE(StateFromJson(nlohmann::json::object()).ok());
}

// A state holding finished map partials: only the rest is sent, and the summary is the one an
// uninterrupted run gives.
TEST(Executor, ResumesFromFinishedStepsWithoutRedoingThem) {
    Config config = SmallChunks();
    const auto request = Request(Paragraphs(100), Strategy::kMapReduce);

    FakeLlmEngine whole_engine;
    Summarizer whole(config, whole_engine);
    auto uninterrupted = whole.Run(request, {}, CancelToken{});
    ASSERT_TRUE(uninterrupted.ok());

    // A first run cancelled once three maps had finished.
    FakeLlmEngine engine;
    Summarizer summarizer(config, engine);
    auto state = summarizer.Start(request);
    ASSERT_TRUE(state.ok());
    const int chunks = static_cast<int>(state->plan.chunks.size());
    ASSERT_GE(chunks, 6);
    CancelToken cancel;
    std::atomic<int> finished{0};
    SummarizeEvents events;
    events.on_step = [&](const StepId& step, const StepOutput& out, const ExecutionState& s) {
        EXPECT_EQ(step.kind, StepKind::kMap);
        // The state holds the output when the event is sent.
        ASSERT_TRUE(s.levels[0][static_cast<size_t>(step.index)].has_value());
        EXPECT_EQ(s.levels[0][static_cast<size_t>(step.index)]->text, out.text);
        if (++finished == 3) cancel.Cancel();
    };
    auto first = summarizer.Execute(request, *state, events, cancel);
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.error().code, ErrorCode::kCancelled);
    const int kept = state->FinishedSteps();
    EXPECT_GE(kept, 3);
    EXPECT_LT(kept, chunks);

    // Serialised and resumed: the finished maps are not sent again.
    auto restored = StateFromJson(StateToJson(*state));
    ASSERT_TRUE(restored.ok());
    FakeLlmEngine resume_engine;
    Summarizer resumer(config, resume_engine);
    auto resumed = resumer.Execute(request, *restored, {}, CancelToken{});
    ASSERT_TRUE(resumed.ok()) << resumed.error().message;
    EXPECT_EQ(static_cast<int>(resume_engine.requests().size()), chunks - kept + 1);
    EXPECT_EQ(resumed->summary, uninterrupted->summary);
    EXPECT_EQ(resumed->chunks, uninterrupted->chunks);
    for (const auto& g : resume_engine.requests()) {
        if (g.tag.rfind("map ", 0) != 0) continue;
        const int index = std::stoi(g.tag.substr(4)) - 1;
        EXPECT_FALSE(state->levels[0][static_cast<size_t>(index)].has_value()) << g.tag << " was finished already";
    }
}

TEST(Executor, ReportsEveryStepOnceWithItsLevel) {
    Config config = SmallChunks();
    config.map_reduce.map_num_predict = 2000;
    config.routing.hierarchical_chunk_max_chars = 20000;
    FakeLlmEngine engine;
    engine.SetResponder([](const GenerateRequest& g, int) -> Result<GenerateResult> {
        GenerateResult r = FakeLlmEngine::Default(g);
        if (g.tag != "reduce final") r.text = g.tag + ": " + std::string(static_cast<size_t>(g.max_output_tokens) * 3, 'x');
        return r;
    });
    std::atomic<int> overflows{0};
    SummarizerObserver observer;
    observer.on_overflow = [&] { ++overflows; };
    Summarizer summarizer(config, engine, observer);
    std::vector<StepId> steps;
    SummarizeEvents events;
    events.on_step = [&](const StepId& step, const StepOutput&, const ExecutionState&) { steps.push_back(step); };
    auto r = summarizer.Run(Request(Paragraphs(3000)), events, CancelToken{});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_GE(r->levels, 2);
    // A call is a step unless the engine reported it cut (or it was cancelled with its level).
    EXPECT_LE(static_cast<int>(steps.size()), r->usage.upstream_requests - overflows.load());
    EXPECT_EQ(std::count_if(steps.begin(), steps.end(), [](const StepId& s) { return s.kind == StepKind::kFinal; }), 1);
    EXPECT_EQ(steps.back().kind, StepKind::kFinal);
    int maps = 0, merges = 0;
    for (const auto& s : steps) {
        maps += s.kind == StepKind::kMap;
        merges += s.kind == StepKind::kMerge;
        if (s.kind == StepKind::kMerge) {
            EXPECT_GE(s.level, 1);
        }
    }
    EXPECT_EQ(maps, r->chunks);
    EXPECT_GT(merges, 0);
}

// A throwing engine on the map-reduce path: the request fails with an internal error, the
// process and the summarizer go on.
TEST(Executor, AThrowingEngineFailsTheRequestNotTheProcess) {
    Config config = SmallChunks();
    FakeLlmEngine engine;
    std::atomic<bool> throw_now{true};
    engine.SetResponder([&](const GenerateRequest& g, int) -> Result<GenerateResult> {
        if (throw_now && g.tag.rfind("map 2/", 0) == 0) throw std::runtime_error("engine bug");
        return FakeLlmEngine::Default(g);
    });
    Summarizer summarizer(config, engine);
    auto r = summarizer.Run(Request(Paragraphs(40), Strategy::kMapReduce), {}, CancelToken{});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInternal);
    EXPECT_NE(r.error().message.find("engine bug"), std::string::npos) << r.error().message;
    throw_now = false;
    EXPECT_TRUE(summarizer.Run(Request(Paragraphs(40), Strategy::kMapReduce), {}, CancelToken{}).ok());
}

TEST(MergeGrouping, GroupsAreConsecutiveAndEachFitsTheBudget) {
    std::vector<StepOutput> items;
    for (int i = 0; i < 12; ++i) {
        StepOutput item;
        item.text = Paragraphs(20).substr(0, 4000);
        item.output_tokens = 1500;
        items.push_back(std::move(item));
    }
    PromptOptions options;
    const int64_t budget = 8000;
    auto groups = GroupForMerge(items, 1.0, options, budget);
    ASSERT_GT(groups.size(), 1u);
    EXPECT_LT(groups.size(), items.size());
    int next = 0;
    for (const auto& [first, last] : groups) {
        EXPECT_EQ(first, next);
        EXPECT_GT(last, first);
        std::vector<StepOutput> group(items.begin() + first, items.begin() + last);
        if (last - first > 1) {
            EXPECT_LE(MergePromptTokens(group, false, options, 1.0), budget);
        }
        next = last;
    }
    EXPECT_EQ(next, 12);
    // A stricter estimate makes smaller groups.
    EXPECT_GE(GroupForMerge(items, 1.5, options, budget).size(), groups.size());
}

}  // namespace
}  // namespace summarizer
