// Plans a request and executes the plan in steps (executor.hpp): one pass, or map (bounded
// parallel, document order kept) then merges (level by level until one summary fits). Guards
// against silent truncation: a call that the engine refused as too long, or whose prompt_tokens
// reached num_ctx, is re-planned with a stricter estimate (DecideReplan) and never returned.
// Calls are marked interactive (single pass, final merge) or batch (map chunks, intermediate
// merges) for the upstream scheduler. Thread-safe: one instance serves all requests.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "summarizer/config.hpp"
#include "summarizer/executor.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/progress.hpp"
#include "summarizer/router.hpp"
#include "summarizer/task_pool.hpp"

namespace summarizer {

struct SummarizeRequest {
    std::string text;
    std::string language = "auto";  // "auto" = the input's language
    SummaryStyle style = SummaryStyle::kParagraph;
    int max_tokens = 0;             // 0 = config generation.num_predict
    Strategy strategy = Strategy::kAuto;
    std::string request_id;
};

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int upstream_requests = 0;
};

struct Timings {
    double total_ms = 0;
    double queue_ms = 0;
    double ttft_ms = 0;    // request arrival -> first token of the final summary
    double load_ms = 0;    // model loading reported by Ollama, summed
    double prefill_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
};

struct SummarizeResponse {
    std::string summary;
    std::string route;        // RouteName: the bucket's name, "map_reduce" or "extractive"
    std::string model;
    int chunks = 1;
    int levels = 0;
    Usage usage;
    Timings timings;
    std::string request_id;
    std::string reason;       // the plan's reason, plus any re-plan
    int overflow_replans = 0; // times Ollama reported a prompt over num_ctx
    std::string language;     // resolved language of the summary
    bool degraded = false;    // true: not written by the model (route "extractive", Ollama unreachable)
    bool cached = false;      // true: answered from the job store, written by an earlier run (jobs.hpp)
};

// Callbacks for streaming; each may be empty. Called from worker threads, never concurrently.
struct SummarizeEvents {
    std::function<void(const Plan& plan)> on_plan;
    // Map-reduce only: when each phase (map, each merge level, the final merge) starts and after
    // each of its steps, with an estimate of the time left.
    std::function<void(const ProgressUpdate& progress)> on_progress;
    std::function<void(std::string_view piece)> on_delta;
    // A step finished; `state` already holds its output (a durable job persists it here).
    std::function<void(const StepId& step, const StepOutput& output, const ExecutionState& state)> on_step;
};

// Counters the summarizer updates (metrics read them).
struct SummarizerObserver {
    std::function<void(const GenerateRequest&, const Result<GenerateResult>&, double wall_ms)> on_upstream_call;
    std::function<void()> on_overflow;
    // The server state the "cost" routing policy weighs (the ModelManager's); empty: static rule.
    std::function<RouteCosts()> route_costs;
    // Exact tokens of a text by an engine's tokenizer before `deadline`, or nullopt (then estimated).
    // Empty: every count is an estimate.
    std::function<std::optional<int64_t>(std::string_view text, std::chrono::steady_clock::time_point deadline)>
        exact_tokens;
};

class Summarizer {
public:
    using Clock = std::chrono::steady_clock;

    // `pool` runs the parallel calls of map and merge levels; null: the summarizer owns one.
    // `config`, `engine` and `pool` outlive it.
    Summarizer(const Config& config, LlmEngine& engine, SummarizerObserver observer = {}, TaskPool* pool = nullptr);

    // Validates max_tokens against config and plans. Errors: kInvalidRequest, kInputTooLarge.
    Result<Plan> MakePlan(const SummarizeRequest& request) const;

    // The state a request starts from: its plan (token estimates multiplied by `safety`), no
    // step finished.
    Result<ExecutionState> Start(const SummarizeRequest& request, double safety = 1.0) const;

    // Runs `state` (from Start(), or one holding finished steps) to its end; `state` holds every
    // finished step whatever the result. Errors: as LlmEngine::Generate (kContextOverflow only
    // after the re-plans are spent), kCancelled, kUpstreamError when merges do not converge.
    Result<SummarizeResponse> Execute(const SummarizeRequest& request, ExecutionState& state,
                                      const SummarizeEvents& events, const CancelToken& cancel,
                                      Clock::time_point arrival = Clock::now());

    // Start() then Execute().
    Result<SummarizeResponse> Run(const SummarizeRequest& request, const SummarizeEvents& events,
                                  const CancelToken& cancel, Clock::time_point arrival = Clock::now());

    // The language a request resolves to ("auto" -> guessed from the text).
    static std::string ResolveLanguage(const SummarizeRequest& request, const TextStats& stats);

private:
    friend class Execution;
    PromptOptions PromptOptionsFor(const SummarizeRequest& request, const TextStats& stats) const;
    RouteOptions MakeRouteOptions(const SummarizeRequest& request, const TextStats& stats, double safety) const;
    Result<Plan> PlanWith(const SummarizeRequest& request, double safety) const;

    // The time-left model's calibration as the last map-reduce left it: the next one starts there.
    TimeCalibration LastCalibration() const;
    void KeepCalibration(const TimeCalibration& calibration);

    const Config& config_;
    LlmEngine& engine_;
    SummarizerObserver observer_;
    std::unique_ptr<TaskPool> own_pool_;
    TaskPool& pool_;
    mutable std::mutex calibration_mutex_;
    TimeCalibration calibration_;
};

}  // namespace summarizer
