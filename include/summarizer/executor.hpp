// Executes a Plan as explicit steps over an ExecutionState that can be inspected, serialised and
// resumed:
// - a single pass is one kSingle step;
// - map-reduce is a kMap step per chunk (level 0), then, level by level, a kMerge step per group
//   of the previous level's outputs (level l >= 1), until the outputs fit one kFinal step.
// Steps run in parallel on a bounded TaskPool, pipelined: a merge group starts as soon as its
// partials are done, while the map goes on, so only the final merge runs alone. A level's items are
// grouped in document order: a group closes when the next item would overflow its merge prompt and
// the items so far can no longer fit one final merge; or, once, early, when the level (projected at
// the mean of its items so far) cannot fit one final merge but what is left after the group, beside
// the merges' outputs at their cap, fits in half of one. When the level is complete and its
// remaining items fit the final merge beside those outputs, they are carried up as they are (groups
// of one, no call): no merge waits for the whole map. Every decision depends on the items' outputs
// in document order alone, never on which call finished first, so a resumed run makes the same
// groups. Outputs stay in document order.
// Silent truncation (prompt_tokens reached the context) and refused prompts are one kind of
// failure, an overflow, handled by one re-plan policy (DecideReplan). A finished step is stored
// in the state, then reported (SummarizeEvents::on_step); Run() given a state that already holds
// finished steps does not redo them. Thread-safe: one Executor serves all requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/router.hpp"
#include "summarizer/task_pool.hpp"

namespace summarizer {

enum class StepKind { kSingle, kMap, kMerge, kFinal };
std::string_view StepKindName(StepKind kind);

// kSingle and kFinal: level and index 0 (kFinal: level = the merge levels before it). kMap: level
// 0, index = chunk. kMerge: level >= 1, index = group.
struct StepId {
    StepKind kind = StepKind::kSingle;
    int level = 0;
    int index = 0;
};

// What one finished step produced and what it cost.
struct StepOutput {
    std::string text;
    int64_t prompt_tokens = 0;  // as the engine counted them
    int64_t output_tokens = 0;
    std::chrono::nanoseconds prefill{0}, decode{0}, load{0};

    // Tokens the text takes beyond EstimateTokens(text): the engine counted it when it generated
    // it, so a merge prompt made of it is sized with the larger of the two.
    int64_t ExcessTokens() const;
};

// Sums over every upstream call of an execution, failed and re-planned ones included.
struct Spent {
    int64_t prompt_tokens = 0;
    int64_t output_tokens = 0;
    int calls = 0;
    std::chrono::nanoseconds prefill{0}, decode{0}, load{0};
};

struct ExecutionState {
    Plan plan;                 // route, bucket, model, chunk offsets, reason
    double safety = 1.0;       // multiplier on token estimates; > 1 after an overflow
    int replans = 0;           // overflows handled so far (whole re-plans and regrouped merges)
    std::string replan_notes;  // appended to the plan's reason
    // levels[0]: one slot per chunk (map outputs); levels[l], l >= 1: one per group in groups[l].
    std::vector<std::vector<std::optional<StepOutput>>> levels;
    // groups[l], l >= 1: [first, last) ranges of levels[l - 1] merged by merge step (l, g). groups[0] is empty.
    std::vector<std::vector<std::pair<int, int>>> groups;
    std::optional<StepOutput> final;  // the single pass or the final merge: the summary
    Spent spent;

    int FinishedSteps() const;
};

nlohmann::json StateToJson(const ExecutionState& state);
// Errors: kInvalidRequest naming the field that is missing or wrong.
Result<ExecutionState> StateFromJson(const nlohmann::json& doc);

// A prompt reported over its context: refused by the engine, or evaluated up to the context.
struct OverflowReport {
    StepKind kind = StepKind::kSingle;
    int64_t reported_tokens = 0;   // prompt tokens the engine evaluated, or stated in its refusal (0: unknown)
    int64_t estimated_tokens = 0;  // what the plan estimated for that prompt
    std::string what;              // for the message
    int level = 0;                 // kMerge: its level (that level and those above it are merged again)
};

struct ReplanDecision {
    enum class Action { kReplan, kRegroup, kGiveUp };
    Action action = Action::kGiveUp;
    double safety = 1.0;  // the stricter factor to plan with
    std::string note;     // appended to the reason (kReplan, kRegroup) or the error (kGiveUp)
};

// The one re-plan policy. An overflow always makes the estimate stricter: the factor grows by
// 1.25x, or to what the engine's count shows plus 0.1, whichever is more. A single pass or a
// map chunk re-plans the whole request (chunks change); a merge or the final merge is merged
// again in smaller groups (the map's outputs are kept). No re-plan once text has streamed to
// the client, nor after `max_replans`.
ReplanDecision DecideReplan(double safety, int replans, const OverflowReport& overflow, bool text_streamed,
                            int max_replans = 3);

// Consecutive groups of `items` whose merge prompts each fit `budget` tokens, as [first, last)
// ranges; a group holds at least one item.
std::vector<std::pair<int, int>> GroupForMerge(const std::vector<StepOutput>& items, double safety,
                                               const PromptOptions& options, int64_t budget);

// Estimated tokens of the merge prompt over `items` (final or intermediate).
int64_t MergePromptTokens(const std::vector<StepOutput>& items, bool final_pass, const PromptOptions& options,
                          double safety);

}  // namespace summarizer
