#include "summarizer/summarizer.hpp"

#include <algorithm>
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

bool Complete(const std::vector<std::optional<StepOutput>>& level) {
    return std::all_of(level.begin(), level.end(), [](const auto& o) { return o.has_value(); });
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
    Status RunLevel(int level);
    Status RunFinal(const std::vector<StepOutput>& items);
    Status HandleOverflow(const Error& failure);
    Result<StepOutput> Call(const StepId& step, const Prompt& prompt, int max_tokens, bool interactive,
                            int64_t estimated_tokens, const CancelToken& cancel);
    void Finish(const StepId& step, StepOutput output);
    void ReportLocked(std::string_view phase, int level, int done, int total);
    double RemainingMsLocked(int level) const;
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
    std::optional<OverflowReport> overflow_;
    TimeLeftEstimator estimator_;
    bool observed_ = false;  // a call was observed: the calibration is worth keeping
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
        // The failed merge level (if any) is dropped; the levels below it are kept and merged again.
        if (report.kind == StepKind::kMerge && state_.levels.size() > 1) {
            state_.levels.pop_back();
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
                                   int64_t estimated_tokens, const CancelToken& cancel) {
    const Plan& plan = state_.plan;
    GenerateRequest g;
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
    if (!overflow_) overflow_ = OverflowReport{step.kind, cut ? result->prompt_tokens : 0, estimated_tokens, what};
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
    update.remaining_ms = static_cast<int64_t>(RemainingMsLocked(level) + 0.5);
    events_.on_progress(update);
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

// Runs the unfinished steps of `level` (maps at 0, merges above), in parallel, on the pool.
Status Execution::RunLevel(int level) {
    auto& slots = state_.levels[static_cast<size_t>(level)];
    std::vector<int> todo;
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
        if (!slots[static_cast<size_t>(i)]) todo.push_back(i);
    }
    const int total = static_cast<int>(slots.size());
    const std::string phase = level == 0 ? "map" : "reduce";
    int done = total - static_cast<int>(todo.size());
    {
        std::lock_guard lock(mutex_);
        ReportLocked(phase, level, done, total);
    }
    if (todo.empty()) return OkStatus();
    const std::vector<StepOutput> inputs = level == 0 ? std::vector<StepOutput>{} : Outputs(state_.levels[static_cast<size_t>(level - 1)]);
    PromptOptions opts = Options();
    opts.max_tokens = level == 0 ? config_.map_reduce.map_num_predict : config_.map_reduce.reduce_num_predict;
    // Interactive maps (cost policy) all queue at once: the scheduler bounds the slots, and a second
    // wave does not queue again behind calls that arrived after the first.
    const bool interactive = level == 0 && state_.plan.interactive_maps;
    const int parallel = interactive ? static_cast<int>(todo.size()) : config_.MapConcurrency();
    CancelToken level_cancel = cancel_.Child();
    auto failure = RunBounded(s_.pool_, static_cast<int>(todo.size()), parallel, level_cancel, phase,
                              [&](int k) -> std::optional<Error> {
        const int i = todo[static_cast<size_t>(k)];
        StepId step{level == 0 ? StepKind::kMap : StepKind::kMerge, level, i};
        Prompt prompt;
        int64_t estimate = 0;
        if (level == 0) {
            const Chunk& chunk = state_.plan.chunks[static_cast<size_t>(i)];
            prompt = BuildMapPrompt(ChunkText(request_.text, chunk), i + 1, Total(), opts);
            estimate = chunk.estimated_tokens + MapPromptOverheadTokens(opts);
        } else {
            const auto [first, last] = state_.groups[static_cast<size_t>(level)][static_cast<size_t>(i)];
            std::vector<StepOutput> group(inputs.begin() + first, inputs.begin() + last);
            std::vector<std::string> texts;
            for (const auto& g : group) texts.push_back(g.text);
            prompt = BuildReducePrompt(texts, false, opts);
            estimate = MergePromptTokens(group, false, opts, state_.safety);
        }
        auto out = Call(step, prompt, opts.max_tokens, interactive, estimate, level_cancel);
        if (!out.ok()) {
            Error e = out.error();
            if (level == 0 && e.code != ErrorCode::kCancelled && e.code != ErrorCode::kContextOverflow) {
                e.message = "chunk " + std::to_string(i + 1) + " of " + std::to_string(total) + ": " + e.message;
            }
            return e;
        }
        Finish(step, std::move(out.value()));
        std::lock_guard lock(mutex_);
        ++done;
        ReportLocked(phase, level, done, total);
        return std::nullopt;
    });
    if (failure) return *failure;
    // No step failed, but a cancel stopped the rest from starting.
    if (!Complete(slots)) return MakeError(ErrorCode::kCancelled, "cancelled");
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

// Maps, then merge levels until the outputs fit one final merge, each level from where the state is.
Status Execution::RunMapReduce() {
    if (state_.final) return OkStatus();
    if (state_.levels.empty()) {
        state_.levels.emplace_back(state_.plan.chunks.size());
        state_.groups.assign(1, {});
    }
    const BucketConfig& bucket = config_.MapBucket();
    const int64_t margin = config_.routing.safety_margin_tokens;
    for (;;) {
        const int level = static_cast<int>(state_.levels.size()) - 1;
        if (!Complete(state_.levels.back())) {
            if (auto st = RunLevel(level); !st.ok()) return st;
        }
        const std::vector<StepOutput> items = Outputs(state_.levels.back());
        if (MergePromptTokens(items, true, Options(), state_.safety) + Options().max_tokens + margin <= bucket.num_ctx) {
            return RunFinal(items);
        }
        if (level + 1 >= config_.map_reduce.max_levels) {
            return MakeError(ErrorCode::kUpstreamError,
                             "the partial summaries did not converge within map_reduce.max_levels = " +
                                 std::to_string(config_.map_reduce.max_levels) + " reduce levels");
        }
        const int64_t budget = bucket.num_ctx - config_.map_reduce.reduce_num_predict - margin;
        auto groups = GroupForMerge(items, state_.safety, Options(), budget);
        if (groups.size() >= items.size()) {
            return MakeError(ErrorCode::kUpstreamError, "partial summaries too large to merge: raise the " + bucket.name +
                                                            " bucket's num_ctx or lower map_reduce.map_num_predict");
        }
        std::lock_guard lock(mutex_);
        state_.levels.emplace_back(groups.size());
        state_.groups.resize(state_.levels.size());
        state_.groups.back() = std::move(groups);
    }
}

SummarizeResponse Execution::Response(Clock::time_point arrival, Clock::time_point started) const {
    const Plan& plan = state_.plan;
    SummarizeResponse r;
    r.request_id = request_.request_id;
    r.summary = state_.final->text;
    r.route = RouteName(plan);
    r.model = plan.model;
    r.chunks = plan.kind == RouteKind::kMapReduce ? static_cast<int>(plan.chunks.size()) : 1;
    r.levels = plan.kind == RouteKind::kMapReduce ? static_cast<int>(state_.levels.size()) : 0;
    r.reason = plan.reason + state_.replan_notes;
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
