// Executes a Plan: one pass, or map (bounded parallel, document order kept) then reduce
// (level by level until one summary fits). Guards against silent truncation: a call that
// Ollama refused as too long, or whose prompt_eval_count reached num_ctx, is re-planned with a
// stricter estimate and never returned (a merge prompt is regrouped with the map's partial
// summaries kept; a map chunk re-plans the whole request). Calls are marked interactive (single
// pass, final reduce) or batch (map chunks, intermediate reduces) for the upstream scheduler.
// Thread-safe: one instance serves all requests.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"
#include "summarizer/router.hpp"

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
};

// Callbacks for streaming; each may be empty. Called from worker threads, never concurrently.
struct SummarizeEvents {
    std::function<void(const Plan& plan)> on_plan;
    std::function<void(std::string_view phase, int done, int total)> on_progress;
    std::function<void(std::string_view piece)> on_delta;
};

// Counters the summarizer updates (metrics read them).
struct SummarizerObserver {
    std::function<void(const GenerateRequest&, const Result<GenerateResult>&, double wall_ms)> on_upstream_call;
    std::function<void()> on_overflow;
    // The server state the "cost" routing policy weighs (the ModelManager's); empty: static rule.
    std::function<RouteCosts()> route_costs;
};

class Summarizer {
public:
    Summarizer(const Config& config, LlmEngine& backend, SummarizerObserver observer = {});

    // Validates max_tokens against config and plans. Errors: kInvalidRequest, kInputTooLarge.
    Result<Plan> MakePlan(const SummarizeRequest& request) const;

    Result<SummarizeResponse> Run(const SummarizeRequest& request, const SummarizeEvents& events,
                                  const CancelToken& cancel,
                                  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now());

    // The language a request resolves to ("auto" -> guessed from the text).
    static std::string ResolveLanguage(const SummarizeRequest& request, const TextStats& stats);

private:
    RouteOptions MakeRouteOptions(const SummarizeRequest& request, const TextStats& stats, double safety) const;

    const Config& config_;
    LlmEngine& backend_;
    SummarizerObserver observer_;
};

}  // namespace summarizer
