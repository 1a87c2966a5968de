#include "summarizer/router.hpp"

#include <cmath>
#include <sstream>

#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

int64_t Scaled(int64_t tokens, double safety) { return static_cast<int64_t>(std::ceil(tokens * safety)); }

std::string Num(int64_t v) {
    std::string s = std::to_string(v);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
    return s;
}

}  // namespace

std::string_view RouteName(Route route) {
    switch (route) {
        case Route::k16k: return "16k";
        case Route::k60k: return "60k";
        case Route::kMapReduce: return "map_reduce";
        case Route::kExtractive: return "extractive";
    }
    return "16k";
}

int64_t SinglePromptOverheadTokens(const PromptOptions& options) {
    Prompt p = BuildSinglePrompt("", options);
    // + Gemma's turn markers and the template's own tokens.
    return EstimateTokens(p.system) + EstimateTokens(p.prompt) + 16;
}

int64_t MapPromptOverheadTokens(const PromptOptions& options) {
    Prompt p = BuildMapPrompt("", 999, 999, options);
    return EstimateTokens(p.system) + EstimateTokens(p.prompt) + 16;
}

Result<Plan> PlanRoute(std::string_view text, const TextStats& stats, const Config& config,
                       const RouteOptions& options) {
    const auto& small = config.small_bucket();
    const auto& large = config.large_bucket();
    const int64_t margin = config.routing.safety_margin_tokens;
    const int64_t output = options.prompt.max_tokens;

    Plan plan;
    plan.chars = static_cast<int64_t>(stats.chars);
    plan.text_tokens = Scaled(EstimateTokens(text), options.token_safety);
    const int64_t prompt_tokens = plan.text_tokens + SinglePromptOverheadTokens(options.prompt);
    const int64_t needed = prompt_tokens + output + margin;
    const bool fits_small = needed <= small.num_ctx;
    const bool fits_large_tokens = needed <= large.num_ctx;
    const bool under_threshold = plan.chars <= config.routing.hierarchical_threshold_chars;

    std::ostringstream why;
    why << Num(plan.chars) << " chars ~ " << Num(prompt_tokens) << " prompt tokens";
    if (options.token_safety > 1.0) why << " (estimate x" << options.token_safety << " after an overflow)";
    why << " + " << Num(output) << " output + " << Num(margin) << " margin = " << Num(needed) << " tokens";

    auto single = [&](const BucketConfig& bucket, Route route, const std::string& because) {
        plan.route = route;
        plan.model = bucket.model;
        plan.num_ctx = bucket.num_ctx;
        plan.keep_alive = bucket.keep_alive;
        plan.estimated_prompt_tokens = prompt_tokens;
        plan.chunks = {Chunk{0, text.size(), 0, plan.chars, plan.text_tokens}};
        plan.reason = why.str() + "; " + because;
        return plan;
    };

    if (options.strategy != Strategy::kMapReduce) {
        if (fits_small) {
            return single(small, Route::k16k, "fits the " + small.name + " bucket (num_ctx " + Num(small.num_ctx) + ")");
        }
        if (fits_large_tokens && (under_threshold || options.strategy == Strategy::kSingle)) {
            std::string because = "over the " + small.name + " bucket (num_ctx " + Num(small.num_ctx) + "), fits the " +
                                  large.name + " bucket (num_ctx " + Num(large.num_ctx) + ")";
            if (!under_threshold) because += "; over HIERARCHICAL_THRESHOLD_CHARS but strategy is single";
            return single(large, Route::k60k, because);
        }
        if (options.strategy == Strategy::kSingle) {
            return MakeError(ErrorCode::kInputTooLarge,
                             why.str() + ": fits no bucket (largest num_ctx " + Num(large.num_ctx) +
                                 "). Use \"strategy\": \"auto\" or \"map_reduce\", or send a shorter text.");
        }
    }

    // Map-reduce: chunks sized so that each map prompt fits the small bucket.
    const int64_t map_overhead = MapPromptOverheadTokens(options.prompt);
    ChunkLimits limits;
    limits.max_tokens = small.num_ctx - map_overhead - config.map_reduce.map_num_predict - margin;
    limits.max_chars = config.routing.hierarchical_chunk_max_chars;
    limits.overlap_chars = config.routing.chunk_overlap_chars;
    limits.token_safety = options.token_safety;
    plan.route = Route::kMapReduce;
    plan.model = small.model;
    plan.num_ctx = small.num_ctx;
    plan.keep_alive = small.keep_alive;
    plan.chunks = SplitIntoChunks(text, limits);
    plan.estimated_prompt_tokens = 0;
    for (const auto& c : plan.chunks) plan.estimated_prompt_tokens += c.estimated_tokens + map_overhead;
    std::string because;
    if (options.strategy == Strategy::kMapReduce) {
        because = "strategy map_reduce";
    } else if (fits_large_tokens) {
        because = "over HIERARCHICAL_THRESHOLD_CHARS (" + Num(config.routing.hierarchical_threshold_chars) + ")";
    } else {
        because = "over the " + large.name + " bucket (num_ctx " + Num(large.num_ctx) + ")";
    }
    plan.reason = why.str() + "; " + because + ": map-reduce over " + std::to_string(plan.chunks.size()) +
                  " chunks of <= " + Num(limits.max_tokens) + " tokens / " + Num(limits.max_chars) + " chars for the " +
                  small.name + " bucket";
    return plan;
}

}  // namespace summarizer
