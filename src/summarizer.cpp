#include "summarizer/summarizer.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include <spdlog/spdlog.h>

#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

double PerSecond(int64_t count, std::chrono::nanoseconds d) {
    return d.count() > 0 ? static_cast<double>(count) * 1e9 / static_cast<double>(d.count()) : 0.0;
}

std::string StepTag(const StepId& step, int total) {
    switch (step.kind) {
        case StepKind::kSingle: return "single";
        case StepKind::kMap: return "map " + std::to_string(step.index + 1) + "/" + std::to_string(total);
        case StepKind::kMerge: return "reduce " + std::to_string(step.level) + "." + std::to_string(step.index + 1);
        case StepKind::kFinal: return "reduce final";
    }
    return "single";
}

// The outputs of a finished level, in order.
std::vector<StepOutput> Outputs(const std::vector<std::optional<StepOutput>>& level) {
    std::vector<StepOutput> out;
    out.reserve(level.size());
    for (const auto& o : level) out.push_back(*o);
    return out;
}


}  // namespace

// One run of the executor over one state: the calls, the events, the accounting.
class Execution {
public:
    Execution(Summarizer& owner, const SummarizeRequest& request, ExecutionState& state, const SummarizeEvents& events,
              const CancelToken& cancel)
        : s_(owner),
          config_(owner.config_),
          request_(request),
          state_(state),
          events_(events),
          cancel_(cancel),
          estimator_(config_.routing.cost_prefill_tokens_per_s, config_.routing.cost_decode_tokens_per_s,
                     owner.LastCalibration()) {}

    Result<SummarizeResponse> Run(Clock::time_point arrival);

private:
    Status RunSingle();
    Status RunMapReduce();
    Status RunFinal(const std::vector<StepOutput>& items);
    // The pipelined map-reduce (requires mutex_): queue what can run, form merge groups.
    void Advance();
    bool AdvanceLevel(size_t level);
    bool CloseGroup(size_t level, int first, int last);
    bool MergeFits(const std::vector<std::optional<StepOutput>>& items, int first, int last) const;
    bool FinalFits(const std::vector<std::optional<StepOutput>>& items, int upto) const;
    // The pipeline's early group and carried tail (see AdvanceLevel). Require mutex_.
    int64_t PartsTokens(const std::vector<std::optional<StepOutput>>& items, int first, int last) const;
    int64_t MergeOutputBound() const;
    bool ClosesEarly(size_t level, int first, int upto) const;
    bool TailCarries(size_t level, int first) const;
    void CarryTail(size_t level, int first);
    void Dispatch(const StepId& step, const CancelToken& cancel);
    void RunStep(const StepId& step, const Prompt& prompt, int64_t estimate, int epoch, const CancelToken& cancel);
    // A merge refused as over the context while the map goes on: that level (and those above) merged
    // again in smaller groups, the map undisturbed. Requires mutex_.
    void RegroupLocked(const OverflowReport& report);
    Status HandleOverflow(const Error& failure);
    // An overflow is recorded in *report when given (a merge of the pipeline), else in overflow_.
    Result<StepOutput> Call(const StepId& step, const Prompt& prompt, int max_tokens, bool interactive,
                            int64_t estimated_tokens, const CancelToken& cancel, OverflowReport* report = nullptr);
    void Finish(const StepId& step, StepOutput output);
    void ReportLocked(std::string_view phase, int level, int done, int total);
    double RemainingMsLocked(int level) const;
    int LowestOpenLevelLocked() const;
    std::vector<TimeLeftEstimator::Call> LevelCallsLocked(int level) const;
    double MergesAndFinalMsLocked(int items, int64_t item_tokens) const;
    SummarizeResponse Response(Clock::time_point arrival, Clock::time_point started) const;

    const PromptOptions& Options() const { return options_; }
    int Total() const { return static_cast<int>(state_.plan.chunks.size()); }

    Summarizer& s_;
    const Config& config_;
    const SummarizeRequest& request_;
    ExecutionState& state_;
    const SummarizeEvents& events_;
    const CancelToken& cancel_;
    PromptOptions options_;
    std::mutex mutex_;  // state_, events (delivered one at a time), the fields below
    std::optional<Clock::time_point> first_final_token_;
    bool delta_sent_ = false;
    std::string final_finish_;  // the final text's finish_reason, as its engine reported it
    std::string final_model_;   // the model that wrote it, where the engine said (a ride's)
    std::optional<OverflowReport> overflow_;
    TimeLeftEstimator estimator_;
    bool observed_ = false;  // a call was observed: the calibration is worth keeping
    // The pipelined map-reduce's bookkeeping (mutex_), rebuilt from state_ on every run.
    std::condition_variable pipeline_cv_;
    std::deque<StepId> merges_ready_, maps_ready_;  // merges go first
    int running_ = 0;
    std::optional<Error> failure_;
    bool final_ready_ = false;
    std::vector<int> scan_;     // per level: items examined for the open merge group
    std::vector<bool> closed_;  // per level: no more items will join it (the level below is grouped to its end)
    std::vector<int> epoch_;    // per level: bumped when it is regrouped; a merge of an older epoch is stale
};

Result<SummarizeResponse> Execution::Run(Clock::time_point arrival) {
    const auto started = Clock::now();
    options_ = s_.PromptOptionsFor(request_, ComputeTextStats(request_.text));
    if (events_.on_plan) events_.on_plan(state_.plan);
    for (;;) {
        Status st = state_.plan.kind == RouteKind::kMapReduce ? RunMapReduce() : RunSingle();
        if (st.ok()) break;
        if (cancel_.cancelled()) return MakeError(ErrorCode::kCancelled, "the client went away");
        if (st.error().code != ErrorCode::kContextOverflow) return st.error();
        if (auto handled = HandleOverflow(st.error()); !handled.ok()) return handled.error();
    }
    if (observed_) s_.KeepCalibration(estimator_.calibration());
    return Response(arrival, started);
}

// Applies the re-plan policy to the overflow the last level reported.
Status Execution::HandleOverflow(const Error& failure) {
    OverflowReport report = overflow_.value_or(OverflowReport{StepKind::kSingle, 0, 0, failure.message});
    overflow_.reset();
    const ReplanDecision d = DecideReplan(state_.safety, state_.replans, report, delta_sent_);
    if (d.action == ReplanDecision::Action::kGiveUp) return MakeError(ErrorCode::kUpstreamError, d.note);
    state_.safety = d.safety;
    ++state_.replans;
    state_.replan_notes += d.note;
    if (d.action == ReplanDecision::Action::kRegroup) {
        // The failed merge level and those above it (pipelined: formed meanwhile) are dropped; the
        // levels below are kept and merged again.
        if (report.kind == StepKind::kMerge && report.level >= 1 && state_.levels.size() > static_cast<size_t>(report.level)) {
            state_.levels.resize(static_cast<size_t>(report.level));
            state_.groups.resize(state_.levels.size());
        }
        return OkStatus();
    }
    auto plan = s_.PlanWith(request_, state_.safety);
    if (!plan.ok()) return plan.error();
    state_.plan = std::move(plan.value());
    state_.levels.clear();
    state_.groups.clear();
    return OkStatus();
}

Result<StepOutput> Execution::Call(const StepId& step, const Prompt& prompt, int max_tokens, bool interactive,
                                   int64_t estimated_tokens, const CancelToken& cancel, OverflowReport* report) {
    const Plan& plan = state_.plan;
    GenerateRequest g;
    g.bucket = plan.bucket;
    g.model = plan.model;
    g.context_tokens = plan.num_ctx;
    g.keep_alive = plan.keep_alive;
    g.system = prompt.system;
    g.prompt = prompt.prompt;
    g.max_output_tokens = max_tokens;
    g.num_batch = config_.generation.num_batch;
    g.temperature = config_.generation.temperature;
    g.repeat_penalty = config_.generation.repeat_penalty;
    g.tag = StepTag(step, Total());
    g.interactive = interactive;
    if (step.kind == StepKind::kMap || step.kind == StepKind::kMerge) {
        // A failed map or merge fails the run (an overflow re-plans instead): its siblings stop before
        // its slot frees, so none starts after the failure.
        g.on_failure = [&cancel](const Error& e) {
            if (e.code != ErrorCode::kCancelled && e.code != ErrorCode::kContextOverflow) cancel.Cancel();
        };
    }
    const bool final_text = step.kind == StepKind::kSingle || step.kind == StepKind::kFinal;
    // The final summary's tokens go to the client as they arrive.
    TokenCallback sink = [&](std::string_view piece) {
        std::lock_guard lock(mutex_);
        if (!first_final_token_) first_final_token_ = Clock::now();
        if (events_.on_delta) {
            delta_sent_ = true;
            events_.on_delta(piece);
        }
    };
    const auto begin = Clock::now();
    auto result = s_.engine_.Generate(g, final_text ? sink : TokenCallback{}, cancel);
    const auto wall = Clock::now() - begin;
    if (s_.observer_.on_upstream_call) s_.observer_.on_upstream_call(g, result, MsBetween(begin, begin + wall));
    {
        std::lock_guard lock(mutex_);
        ++state_.spent.calls;
        if (result.ok()) {
            estimator_.Observe(result->prompt_tokens, result->output_tokens, max_tokens, wall);
            observed_ = true;
            if (final_text) {
                final_finish_ = result->finish_reason;
                final_model_ = result->model;
            }
            state_.spent.prompt_tokens += result->prompt_tokens;
            state_.spent.output_tokens += result->output_tokens;
            state_.spent.prefill += result->prefill;
            state_.spent.decode += result->decode;
            state_.spent.load += result->load;
        }
    }
    const bool refused = !result.ok() && result.error().code == ErrorCode::kContextOverflow;
    // Evaluating as many prompt tokens as the context holds means the engine cut the prompt.
    const bool cut = result.ok() && result->prompt_tokens >= plan.num_ctx;
    if (!refused && !cut) {
        if (!result.ok()) return result.error();
        return StepOutput{std::move(result->text), result->prompt_tokens, result->output_tokens,
                          result->prefill, result->decode, result->load};
    }
    const std::string what = refused ? g.tag + " refused: " + result.error().message
                                     : g.tag + ": prompt_tokens " + std::to_string(result->prompt_tokens) +
                                           " reached num_ctx " + std::to_string(plan.num_ctx);
    if (s_.observer_.on_overflow) s_.observer_.on_overflow();
    spdlog::warn("request {}: prompt over num_ctx {} ({}); re-planning with a stricter estimate", request_.request_id,
                 plan.num_ctx, what);
    std::lock_guard lock(mutex_);
    // The engine's own count, where its refusal states one (vLLM, llama.cpp, SGLang), is as good as a cut.
    const int64_t reported = cut ? result->prompt_tokens : result.error().overflow_prompt_tokens;
    const OverflowReport found{step.kind, reported, estimated_tokens, what, step.level};
    if (report) {
        *report = found;
    } else if (!overflow_) {
        overflow_ = found;
    }
    return MakeError(ErrorCode::kContextOverflow, what);
}

void Execution::Finish(const StepId& step, StepOutput output) {
    std::lock_guard lock(mutex_);
    std::optional<StepOutput>* slot = nullptr;
    if (step.kind == StepKind::kSingle || step.kind == StepKind::kFinal) {
        slot = &state_.final;
    } else {
        slot = &state_.levels[static_cast<size_t>(step.level)][static_cast<size_t>(step.index)];
    }
    *slot = std::move(output);
    if (events_.on_step) events_.on_step(step, **slot, state_);
}

// Reports where a map-reduce stands and the time it still needs. `level` is the running one: 0
// maps, then merge levels; levels.size() is the final merge.
void Execution::ReportLocked(std::string_view phase, int level, int done, int total) {
    if (!events_.on_progress) return;
    ProgressUpdate update;
    update.phase = phase;
    update.level = level;
    update.done = done;
    update.total = total;
    // Pipelined, a merge level runs while the map still does: the time left is that of the lowest
    // level not yet complete and everything above it.
    update.remaining_ms = static_cast<int64_t>(RemainingMsLocked(std::min(level, LowestOpenLevelLocked())) + 0.5);
    events_.on_progress(update);
}

// The lowest level with a step still to finish; levels.size() when only the final merge is left.
int Execution::LowestOpenLevelLocked() const {
    for (size_t l = 0; l < state_.levels.size(); ++l) {
        for (const auto& o : state_.levels[l]) {
            if (!o) return static_cast<int>(l);
        }
    }
    return static_cast<int>(state_.levels.size());
}

// The unfinished steps of a running map or merge level, as the estimate sees them.
std::vector<TimeLeftEstimator::Call> Execution::LevelCallsLocked(int level) const {
    std::vector<TimeLeftEstimator::Call> calls;
    const auto& slots = state_.levels[static_cast<size_t>(level)];
    PromptOptions opts = Options();
    opts.max_tokens = level == 0 ? config_.map_reduce.map_num_predict : config_.map_reduce.reduce_num_predict;
    const int64_t output = estimator_.ExpectedOutput(opts.max_tokens);
    for (size_t i = 0; i < slots.size(); ++i) {
        if (slots[i]) continue;
        int64_t prompt = 0;
        if (level == 0) {
            prompt = state_.plan.chunks[i].estimated_tokens + MapPromptOverheadTokens(opts);
        } else {
            const auto [first, last] = state_.groups[static_cast<size_t>(level)][i];
            const auto& below = state_.levels[static_cast<size_t>(level - 1)];
            std::vector<StepOutput> group;
            for (int k = first; k < last; ++k) {
                if (below[static_cast<size_t>(k)]) group.push_back(*below[static_cast<size_t>(k)]);
            }
            prompt = MergePromptTokens(group, false, opts, state_.safety);
        }
        calls.push_back({prompt, output});
    }
    return calls;
}

// The merge levels `items` partial summaries of `item_tokens` each will need (projected the way
// RunMapReduce groups them), then the final merge.
double Execution::MergesAndFinalMsLocked(int items, int64_t item_tokens) const {
    const BucketConfig& bucket = config_.MapBucket();
    const int64_t margin = config_.routing.safety_margin_tokens;
    const int64_t overhead = MapPromptOverheadTokens(Options());
    const int64_t reduce_output = estimator_.ExpectedOutput(config_.map_reduce.reduce_num_predict);
    const int parallel = std::max(1, config_.MapConcurrency());
    double ms = 0;
    for (int level = 0; items > 1 && level < config_.map_reduce.max_levels; ++level) {
        const auto tokens = static_cast<int64_t>(static_cast<double>(items * item_tokens) * state_.safety);
        if (tokens + overhead + Options().max_tokens + margin <= bucket.num_ctx) break;
        const int64_t budget = std::max<int64_t>(1, bucket.num_ctx - config_.map_reduce.reduce_num_predict - margin - overhead);
        const int groups = static_cast<int>(std::min<int64_t>(items - 1, (tokens + budget - 1) / budget));
        ms += estimator_.LevelMs(std::vector<TimeLeftEstimator::Call>(static_cast<size_t>(std::max(groups, 1)),
                                                                      {tokens / std::max(groups, 1) + overhead, reduce_output}),
                                 parallel);
        items = std::max(groups, 1);
        item_tokens = reduce_output;
    }
    return ms + estimator_.CallMs({items * item_tokens + overhead, estimator_.ExpectedOutput(Options().max_tokens)});
}

double Execution::RemainingMsLocked(int level) const {
    if (state_.final) return 0;
    const int levels = static_cast<int>(state_.levels.size());
    if (level >= levels) {  // the final merge runs
        std::vector<StepOutput> items;
        for (const auto& o : state_.levels.back()) {
            if (o) items.push_back(*o);
        }
        return estimator_.CallMs({MergePromptTokens(items, true, Options(), state_.safety),
                                  estimator_.ExpectedOutput(Options().max_tokens)});
    }
    const int parallel = std::max(1, config_.MapConcurrency());
    const auto& slots = state_.levels[static_cast<size_t>(level)];
    // The outputs the level will have: those finished as they are, the rest as expected.
    const int64_t expected = estimator_.ExpectedOutput(level == 0 ? config_.map_reduce.map_num_predict
                                                                  : config_.map_reduce.reduce_num_predict);
    int64_t tokens = 0;
    for (const auto& o : slots) tokens += o ? o->output_tokens + o->ExcessTokens() : expected;
    const int items = static_cast<int>(slots.size());
    return estimator_.LevelMs(LevelCallsLocked(level), parallel) +
           MergesAndFinalMsLocked(items, items > 0 ? tokens / items : 0);
}

Status Execution::RunSingle() {
    if (state_.final) return OkStatus();
    const Prompt prompt = BuildSinglePrompt(request_.text, Options());
    auto out = Call(StepId{StepKind::kSingle, 0, 0}, prompt, Options().max_tokens, true,
                    state_.plan.estimated_prompt_tokens, cancel_);
    if (!out.ok()) return out.error();
    Finish(StepId{StepKind::kSingle, 0, 0}, std::move(out.value()));
    return OkStatus();
}

Status Execution::RunFinal(const std::vector<StepOutput>& items) {
    std::vector<std::string> texts;
    for (const auto& item : items) texts.push_back(item.text);
    const Prompt prompt = BuildReducePrompt(texts, true, Options());
    const StepId step{StepKind::kFinal, static_cast<int>(state_.levels.size()) - 1, 0};
    const int level = static_cast<int>(state_.levels.size());  // as the response's `levels` counts them
    {
        std::lock_guard lock(mutex_);
        ReportLocked("final", level, 0, 1);
    }
    auto out = Call(step, prompt, Options().max_tokens, true,
                    MergePromptTokens(items, true, Options(), state_.safety), cancel_);
    if (!out.ok()) return out.error();
    Finish(step, std::move(out.value()));
    std::lock_guard lock(mutex_);
    ReportLocked("final", level, 1, 1);
    return OkStatus();
}

bool Execution::MergeFits(const std::vector<std::optional<StepOutput>>& items, int first, int last) const {
    std::vector<StepOutput> group;
    for (int i = first; i < last; ++i) group.push_back(*items[static_cast<size_t>(i)]);
    const int64_t budget =
        config_.MapBucket().num_ctx - config_.map_reduce.reduce_num_predict - config_.routing.safety_margin_tokens;
    return MergePromptTokens(group, false, Options(), state_.safety) <= budget;
}

// Whether one final merge takes items [0, upto).
bool Execution::FinalFits(const std::vector<std::optional<StepOutput>>& items, int upto) const {
    std::vector<StepOutput> prefix;
    for (int i = 0; i < upto; ++i) prefix.push_back(*items[static_cast<size_t>(i)]);
    return MergePromptTokens(prefix, true, Options(), state_.safety) <= FinalMergeBudget(config_, Options());
}

// What items [first, last) add to a merge prompt (their text, excess and part headings).
int64_t Execution::PartsTokens(const std::vector<std::optional<StepOutput>>& items, int first, int last) const {
    std::vector<StepOutput> parts;
    for (int i = first; i < last; ++i) parts.push_back(*items[static_cast<size_t>(i)]);
    return MergePromptTokens(parts, true, Options(), state_.safety) - MergePromptTokens({}, true, Options(), state_.safety);
}

// At most what one merge's output adds to the final merge's prompt: its cap, a heading, the safety.
int64_t Execution::MergeOutputBound() const {
    return static_cast<int64_t>(
        std::ceil(static_cast<double>(config_.map_reduce.reduce_num_predict + kReducePartHeadingTokens) * state_.safety));
}

// Whether group [first, upto) of the top level's items closes before the next item would overflow
// it: the level as a whole (its items so far, the rest projected at their mean) cannot fit one final
// merge, and what is left after `upto` (projected), beside the merges' outputs (at their cap), fits
// in half of one where what is left after `first` did not. A pure function of items [0, upto), so
// the groups depend on the outputs alone (a resumed run makes the same), not on which calls finished
// first.
bool Execution::ClosesEarly(size_t level, int first, int upto) const {
    if (!closed_[level] || upto - first < 2 || state_.levels.size() > level + 2) return false;
    const auto& items = state_.levels[level];
    const int n = static_cast<int>(items.size());
    if (upto >= n) return false;  // the level is complete: AdvanceLevel decides the rest
    const int64_t overhead = MergePromptTokens({}, true, Options(), state_.safety);
    const int64_t budget = FinalMergeBudget(config_, Options());
    const double mean = static_cast<double>(PartsTokens(items, 0, upto)) / upto;
    if (overhead + static_cast<int64_t>(mean * n) <= budget) return false;  // one final merge may take it all
    const int closed = state_.levels.size() > level + 1 ? static_cast<int>(state_.groups[level + 1].size()) : 0;
    const double half = static_cast<double>(budget) / 2;
    const double unmerged = overhead + static_cast<double>(closed * MergeOutputBound()) + mean * (n - first);
    const double merged = overhead + static_cast<double>((closed + 1) * MergeOutputBound()) + mean * (n - upto);
    return unmerged > half && merged <= half;  // once: the group that brings the rest within half
}

// Whether the final merge can take the merges of level + 1 (each at its output cap, finished or not:
// the same answer whatever finished first) and items [first, n) of `level` as they are.
bool Execution::TailCarries(size_t level, int first) const {
    if (state_.levels.size() != level + 2) return false;
    const auto& items = state_.levels[level];
    const int n = static_cast<int>(items.size());
    const int64_t merges = static_cast<int64_t>(state_.groups[level + 1].size()) * MergeOutputBound();
    return MergePromptTokens({}, true, Options(), state_.safety) + merges + PartsTokens(items, first, n) <=
           FinalMergeBudget(config_, Options());
}

// Items [first, n) of `level` join level + 1 unmerged, each as a group of one with no call.
void Execution::CarryTail(size_t level, int first) {
    const int n = static_cast<int>(state_.levels[level].size());
    for (int k = first; k < n; ++k) {
        state_.groups[level + 1].emplace_back(k, k + 1);
        state_.levels[level + 1].push_back(state_.levels[level][static_cast<size_t>(k)]);
    }
    const auto& outputs = state_.levels[level + 1];
    const int done = static_cast<int>(std::count_if(outputs.begin(), outputs.end(), [](const auto& o) { return o.has_value(); }));
    ReportLocked("reduce", static_cast<int>(level) + 1, done, static_cast<int>(outputs.size()));
}

// Adds merge group [first, last) of level `level` (its level + 1 created if needed) and queues it.
bool Execution::CloseGroup(size_t level, int first, int last) {
    if (state_.levels.size() == level + 1) {
        if (static_cast<int>(level) + 1 >= config_.map_reduce.max_levels) {
            failure_ = MakeError(ErrorCode::kUpstreamError, "the partial summaries did not converge within "
                                                            "map_reduce.max_levels = " +
                                                                std::to_string(config_.map_reduce.max_levels) +
                                                                " reduce levels");
            return false;
        }
        state_.levels.emplace_back();
        state_.groups.resize(state_.levels.size());
    }
    auto& groups = state_.groups[level + 1];
    groups.emplace_back(first, last);
    state_.levels[level + 1].emplace_back();
    merges_ready_.push_back(StepId{StepKind::kMerge, static_cast<int>(level) + 1, static_cast<int>(groups.size()) - 1});
    // The level starts with its first group (done 0); its total grows as groups close.
    if (groups.size() == 1) ReportLocked("reduce", static_cast<int>(level) + 1, 0, 1);
    return true;
}

// Level `level`: extends its open merge group over the partials finished in document order, closes a
// group when the next partial does not fit it and the level is certain to need merging (a final merge
// cannot take the partials so far), and once the level is complete, closes the rest or readies the
// final merge. Requires mutex_. false: a failure was set.
bool Execution::AdvanceLevel(size_t level) {
    const auto items = [&]() -> const std::vector<std::optional<StepOutput>>& { return state_.levels[level]; };
    const int n = static_cast<int>(items().size());
    const auto grouped = [&] { return state_.levels.size() > level + 1 && !state_.groups[level + 1].empty(); };
    int first = grouped() ? state_.groups[level + 1].back().second : 0;
    int& k = scan_[level];
    k = std::max(k, first);
    while (k < n && items()[static_cast<size_t>(k)]) {
        if (k > first && !MergeFits(items(), first, k + 1)) {
            if (!grouped()) {
                // A final merge may still take this whole level: wait until the partials done so far rule it out.
                int prefix = k + 1;
                while (prefix < n && items()[static_cast<size_t>(prefix)]) ++prefix;
                if (FinalFits(items(), prefix)) break;
            }
            if (!CloseGroup(level, first, k)) return false;
            first = k;
        } else if (ClosesEarly(level, first, k + 1)) {
            // The rest of the level is expected to go to the final merge unmerged (CarryTail): this
            // group's merge runs while the map goes on instead of after it.
            if (!CloseGroup(level, first, k + 1)) return false;
            first = k + 1;
        }
        ++k;
    }
    const bool complete = std::all_of(items().begin(), items().end(), [](const auto& o) { return o.has_value(); });
    if (!closed_[level] || !complete) return true;
    if (state_.levels.size() > level + 1 && closed_[level + 1]) return true;  // grouped to its end already
    if (!grouped()) {
        if (state_.levels.size() == level + 1 && FinalFits(items(), n)) {
            final_ready_ = true;
            return true;
        }
        // As a level-by-level run: the greedy groups over the whole level (the scan above stopped early).
        std::vector<StepOutput> all;
        for (const auto& o : items()) all.push_back(*o);
        const int64_t budget =
            config_.MapBucket().num_ctx - config_.map_reduce.reduce_num_predict - config_.routing.safety_margin_tokens;
        const auto groups = GroupForMerge(all, state_.safety, Options(), budget);
        if (groups.size() >= all.size()) {
            failure_ = MakeError(ErrorCode::kUpstreamError, "partial summaries too large to merge: raise the " +
                                                                config_.MapBucket().name +
                                                                " bucket's num_ctx or lower map_reduce.map_num_predict");
            return false;
        }
        for (const auto& [f, l] : groups) {
            if (!CloseGroup(level, f, l)) return false;
        }
    } else if (first < n && TailCarries(level, first)) {
        CarryTail(level, first);
    } else if (first < n) {
        if (!CloseGroup(level, first, n)) return false;
        if (static_cast<int>(state_.groups[level + 1].size()) >= n) {
            failure_ = MakeError(ErrorCode::kUpstreamError, "partial summaries too large to merge: raise the " +
                                                                config_.MapBucket().name +
                                                                " bucket's num_ctx or lower map_reduce.map_num_predict");
            return false;
        }
    }
    scan_.resize(state_.levels.size(), 0);
    closed_.resize(state_.levels.size(), false);
    closed_[level + 1] = true;
    return true;
}

void Execution::RegroupLocked(const OverflowReport& report) {
    const ReplanDecision d = DecideReplan(state_.safety, state_.replans, report, delta_sent_);
    if (d.action == ReplanDecision::Action::kGiveUp) {
        failure_ = MakeError(ErrorCode::kUpstreamError, d.note);
        return;
    }
    state_.safety = d.safety;
    ++state_.replans;
    state_.replan_notes += d.note;
    const auto level = static_cast<size_t>(std::max(1, report.level));
    state_.levels.resize(std::min(state_.levels.size(), level));
    state_.groups.resize(state_.levels.size());
    for (size_t l = level; l < epoch_.size(); ++l) ++epoch_[l];
    std::erase_if(merges_ready_, [&](const StepId& s) { return static_cast<size_t>(s.level) >= level; });
    scan_.resize(state_.levels.size());
    closed_.resize(state_.levels.size());
    scan_[level - 1] = 0;
    Advance();
}

void Execution::Advance() {
    scan_.resize(state_.levels.size(), 0);
    closed_.resize(state_.levels.size(), false);
    closed_[0] = true;
    for (size_t level = 0; level < state_.levels.size() && !failure_ && !final_ready_; ++level) {
        scan_.resize(state_.levels.size(), 0);
        closed_.resize(state_.levels.size(), false);
        if (!AdvanceLevel(level)) return;
    }
}

// Runs one map or merge step on a pool thread; its end advances the pipeline.
void Execution::RunStep(const StepId& step, const Prompt& prompt, int64_t estimate, int epoch,
                        const CancelToken& cancel) {
    const bool map = step.kind == StepKind::kMap;
    const int max_tokens = map ? config_.map_reduce.map_num_predict : config_.map_reduce.reduce_num_predict;
    const bool interactive = map && state_.plan.interactive_maps;
    std::optional<Error> error;
    std::optional<StepOutput> output;
    OverflowReport report;
    error = CatchAll(std::string(map ? "map " : "merge ") + std::to_string(step.index + 1), [&]() -> std::optional<Error> {
        auto out = Call(step, prompt, max_tokens, interactive, estimate, cancel, map ? nullptr : &report);
        if (!out.ok()) return out.error();
        output = std::move(out.value());
        return std::nullopt;
    });
    std::lock_guard lock(mutex_);
    --running_;
    const auto level = static_cast<size_t>(step.level);
    if (!map && (level >= epoch_.size() || epoch_[level] != epoch)) {
        // Its level was regrouped meanwhile: the result belongs to groups that no longer exist.
    } else if (error && !map && error->code == ErrorCode::kContextOverflow && !failure_) {
        RegroupLocked(report);
    } else if (error) {
        if (map && error->code != ErrorCode::kCancelled && error->code != ErrorCode::kContextOverflow) {
            error->message = "chunk " + std::to_string(step.index + 1) + " of " + std::to_string(Total()) + ": " +
                             error->message;
        }
        // The first real error wins; a sibling cancelled because of it (GenerateRequest::on_failure)
        // may report first.
        if (!failure_ || (failure_->code == ErrorCode::kCancelled && error->code != ErrorCode::kCancelled)) {
            failure_ = std::move(error);
        }
        cancel.Cancel();  // the steps still running stop
    } else {
        auto& slot = state_.levels[static_cast<size_t>(step.level)][static_cast<size_t>(step.index)];
        slot = std::move(output);
        if (events_.on_step) events_.on_step(step, *slot, state_);
        if (!failure_) Advance();  // first: the estimate sees the merge groups this step closed
        if (level < state_.levels.size()) {  // (Advance may grow state_.levels: no reference across it)
            const auto& outputs = state_.levels[level];
            const int done = static_cast<int>(
                std::count_if(outputs.begin(), outputs.end(), [](const auto& o) { return o.has_value(); }));
            ReportLocked(map ? "map" : "reduce", step.level, done, static_cast<int>(outputs.size()));
        }
    }
    pipeline_cv_.notify_all();
}

// Builds the step's prompt from the state (requires mutex_) and runs it on the pool.
void Execution::Dispatch(const StepId& step, const CancelToken& cancel) {
    PromptOptions opts = Options();
    Prompt prompt;
    int64_t estimate = 0;
    if (step.kind == StepKind::kMap) {
        opts.max_tokens = config_.map_reduce.map_num_predict;
        const Chunk& chunk = state_.plan.chunks[static_cast<size_t>(step.index)];
        prompt = BuildMapPrompt(ChunkText(request_.text, chunk), step.index + 1, Total(), opts);
        estimate = chunk.estimated_tokens + MapPromptOverheadTokens(opts);
    } else {
        opts.max_tokens = config_.map_reduce.reduce_num_predict;
        const auto [first, last] = state_.groups[static_cast<size_t>(step.level)][static_cast<size_t>(step.index)];
        const auto& inputs = state_.levels[static_cast<size_t>(step.level) - 1];
        std::vector<StepOutput> group;
        std::vector<std::string> texts;
        for (int i = first; i < last; ++i) {
            group.push_back(*inputs[static_cast<size_t>(i)]);
            texts.push_back(group.back().text);
        }
        prompt = BuildReducePrompt(texts, false, opts);
        estimate = MergePromptTokens(group, false, opts, state_.safety);
    }
    ++running_;
    const int epoch = epoch_[static_cast<size_t>(step.level)];
    s_.pool_.Post([this, step, prompt = std::move(prompt), estimate, epoch, cancel] {
        RunStep(step, prompt, estimate, epoch, cancel);
    });
}

// Maps and merges, pipelined (see executor.hpp), from where the state is; then the final merge.
Status Execution::RunMapReduce() {
    if (state_.final) return OkStatus();
    CancelToken run_cancel = cancel_.Child();
    std::vector<StepOutput> top;
    {
        std::unique_lock lock(mutex_);
        if (state_.levels.empty()) {
            state_.levels.emplace_back(state_.plan.chunks.size());
            state_.groups.assign(1, {});
        }
        merges_ready_.clear();
        maps_ready_.clear();
        scan_.clear();
        closed_.clear();
        failure_.reset();
        final_ready_ = false;
        running_ = 0;
        epoch_.assign(static_cast<size_t>(config_.map_reduce.max_levels) + 1, 0);
        for (size_t l = 1; l < state_.levels.size(); ++l) {
            for (size_t g = 0; g < state_.levels[l].size(); ++g) {
                if (!state_.levels[l][g]) merges_ready_.push_back(StepId{StepKind::kMerge, static_cast<int>(l), static_cast<int>(g)});
            }
        }
        int maps_todo = 0;
        for (size_t i = 0; i < state_.levels[0].size(); ++i) {
            if (state_.levels[0][i]) continue;
            maps_ready_.push_back(StepId{StepKind::kMap, 0, static_cast<int>(i)});
            ++maps_todo;
        }
        const auto& level0 = state_.levels[0];
        ReportLocked("map", 0, static_cast<int>(level0.size()) - maps_todo, static_cast<int>(level0.size()));
        // Interactive maps (cost policy) all queue at once: the scheduler bounds the slots, and a second
        // wave does not queue again behind calls that arrived after the first.
        const int parallel = state_.plan.interactive_maps ? maps_todo + config_.MapConcurrency() : config_.MapConcurrency();
        Advance();
        for (;;) {
            const bool stop = failure_.has_value() || run_cancel.cancelled();
            while (!stop && running_ < parallel && (!merges_ready_.empty() || !maps_ready_.empty())) {
                auto& queue = merges_ready_.empty() ? maps_ready_ : merges_ready_;
                const StepId step = queue.front();
                queue.pop_front();
                Dispatch(step, run_cancel);
            }
            const bool idle = merges_ready_.empty() && maps_ready_.empty();
            if (running_ == 0 && (stop || final_ready_ || idle)) break;
            pipeline_cv_.wait(lock);
        }
        if (failure_) return *failure_;
        if (run_cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled");
        if (!final_ready_) return MakeError(ErrorCode::kInternal, "map-reduce stopped before its final merge");
        top = Outputs(state_.levels.back());
    }
    return RunFinal(top);
}

SummarizeResponse Execution::Response(Clock::time_point arrival, Clock::time_point started) const {
    const Plan& plan = state_.plan;
    SummarizeResponse r;
    r.request_id = request_.request_id;
    r.summary = state_.final->text;
    r.route = RouteName(plan);
    r.model = final_model_.empty() ? plan.model : final_model_;
    r.chunks = plan.kind == RouteKind::kMapReduce ? static_cast<int>(plan.chunks.size()) : 1;
    r.levels = plan.kind == RouteKind::kMapReduce ? static_cast<int>(state_.levels.size()) : 0;
    r.reason = plan.reason + state_.replan_notes;
    // The engine stopped the summary before its end (Ollama done_reason, OpenAI finish_reason "length").
    if (final_finish_ == "length") {
        r.reason += "; the summary was cut off: the engine stopped it at its length limit (finish_reason \"length\": "
                    "max_tokens " + std::to_string(Options().max_tokens) + ", or the context)";
    }
    r.overflow_replans = state_.replans;
    r.language = options_.language;
    r.usage.prompt_tokens = state_.spent.prompt_tokens;
    r.usage.completion_tokens = state_.spent.output_tokens;
    r.usage.upstream_requests = state_.spent.calls;
    const auto finished = Clock::now();
    r.timings.total_ms = MsBetween(arrival, finished);
    r.timings.queue_ms = MsBetween(arrival, started);
    r.timings.ttft_ms = first_final_token_ ? MsBetween(arrival, *first_final_token_) : r.timings.total_ms;
    r.timings.load_ms = std::chrono::duration<double, std::milli>(state_.spent.load).count();
    r.timings.prefill_tokens_per_s = PerSecond(state_.spent.prompt_tokens, state_.spent.prefill);
    r.timings.decode_tokens_per_s = PerSecond(state_.spent.output_tokens, state_.spent.decode);
    return r;
}

Summarizer::Summarizer(const Config& config, LlmEngine& engine, SummarizerObserver observer, TaskPool* pool)
    : config_(config),
      engine_(engine),
      observer_(std::move(observer)),
      own_pool_(pool ? nullptr : std::make_unique<TaskPool>("summarizer", 64)),
      pool_(pool ? *pool : *own_pool_) {}

std::string Summarizer::ResolveLanguage(const SummarizeRequest& request, const TextStats& stats) {
    if (request.language.empty() || request.language == "auto") return GuessLanguage(stats, request.text);
    return request.language;
}

PromptOptions Summarizer::PromptOptionsFor(const SummarizeRequest& request, const TextStats& stats) const {
    PromptOptions prompt;
    prompt.language = ResolveLanguage(request, stats);
    prompt.style = request.style;
    prompt.max_tokens = request.max_tokens > 0 ? request.max_tokens : config_.generation.num_predict;
    return prompt;
}

RouteOptions Summarizer::MakeRouteOptions(const SummarizeRequest& request, const TextStats& stats,
                                          double safety) const {
    RouteOptions options;
    options.strategy = request.strategy;
    options.prompt = PromptOptionsFor(request, stats);
    options.token_safety = safety;
    if (config_.routing.policy == "cost" && observer_.route_costs) options.costs = observer_.route_costs();
    if (observer_.exact_tokens) {
        // One deadline for the whole plan: counting never holds a request up for long.
        const auto deadline = Clock::now() + std::chrono::milliseconds(config_.pool.tokenize_timeout_ms);
        options.exact_tokens = [this, deadline](std::string_view text) { return observer_.exact_tokens(text, deadline); };
    }
    return options;
}

Result<Plan> Summarizer::PlanWith(const SummarizeRequest& request, double safety) const {
    if (request.max_tokens < 0 || request.max_tokens > config_.generation.max_num_predict) {
        return MakeError(ErrorCode::kInvalidRequest, "max_tokens must be between 1 and " +
                                                         std::to_string(config_.generation.max_num_predict));
    }
    const TextStats stats = ComputeTextStats(request.text);
    return PlanRoute(request.text, stats, config_, MakeRouteOptions(request, stats, safety));
}

Result<Plan> Summarizer::MakePlan(const SummarizeRequest& request) const { return PlanWith(request, 1.0); }

TimeCalibration Summarizer::LastCalibration() const {
    std::lock_guard lock(calibration_mutex_);
    return calibration_;
}

void Summarizer::KeepCalibration(const TimeCalibration& calibration) {
    std::lock_guard lock(calibration_mutex_);
    calibration_ = calibration;
}

Result<ExecutionState> Summarizer::Start(const SummarizeRequest& request, double safety) const {
    auto plan = PlanWith(request, safety);
    if (!plan.ok()) return plan.error();
    ExecutionState state;
    state.plan = std::move(plan.value());
    state.safety = safety;
    return state;
}

Result<SummarizeResponse> Summarizer::Execute(const SummarizeRequest& request, ExecutionState& state,
                                              const SummarizeEvents& events, const CancelToken& cancel,
                                              Clock::time_point arrival) {
    // The executor's boundary: a stray exception (an engine bug, bad_alloc) fails this request only.
    std::optional<Result<SummarizeResponse>> result;
    auto failure = CatchAll("request " + request.request_id, [&]() -> std::optional<Error> {
        result = Execution(*this, request, state, events, cancel).Run(arrival);
        return std::nullopt;
    });
    if (failure) return *failure;
    return std::move(*result);
}

Result<SummarizeResponse> Summarizer::Run(const SummarizeRequest& request, const SummarizeEvents& events,
                                          const CancelToken& cancel, Clock::time_point arrival) {
    auto state = Start(request);
    if (!state.ok()) return state.error();
    return Execute(request, state.value(), events, cancel, arrival);
}

}  // namespace summarizer
