#include "summarizer/router.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

namespace {

std::string Seconds(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000.0);
    return buf;
}

// Milliseconds one call takes on bucket `b` once it runs (prefill + decode, slower if it spills).
double CallMs(const BucketCosts& b, const RouteCosts& costs, double prompt_tokens, double output_tokens) {
    double ms = 1000.0 * (prompt_tokens / std::max(1.0, b.prefill_tokens_per_s) +
                          output_tokens / std::max(1e-3, b.decode_tokens_per_s));
    return b.spilling ? ms * std::max(1.0, costs.spill_slowdown) : ms;
}

// The wait before a route's first call on bucket `target` runs, and the penalty its switch puts
// on the others. With one runner per model file, loading `target` evicts the loaded bucket: its
// queued calls drain first (bucket affinity), and each of them stands for a caller that will
// arrive meanwhile and wait for the switch, this route and the load back. Using a bucket other
// than the hot one also costs the hot bucket's restore afterwards (RouteCosts::restore_hot),
// unless other calls keep that bucket busy anyway.
struct Access {
    double wait_ms = 0;
    double penalty_ms = 0;
    std::string detail;
};

Access AccessCost(const Config& config, const RouteCosts& costs, size_t target, double own_ms) {
    Access a;
    const double slots = std::max(1, costs.slots);
    const auto& t = costs.buckets[target];
    std::optional<size_t> loaded;
    for (size_t i = 0; i < costs.buckets.size(); ++i) {
        if (i != target && costs.buckets[i].loaded) loaded = i;
    }
    // Calls already queued for `target` make any switch (and the load back) happen anyway.
    double back_ms = 0;
    if (t.pending == 0 && costs.restore_hot && target != 0) back_ms = costs.reload_ms;
    if (t.pending == 0 && !t.loaded && loaded && costs.buckets[*loaded].pending > 0) back_ms = costs.reload_ms;
    if (t.loaded) {
        a.wait_ms = t.pending * t.mean_call_ms / slots;
        a.penalty_ms = back_ms;
        a.detail = "loaded, " + std::to_string(t.pending) + " call(s) queued ~ " + Seconds(a.wait_ms);
    } else if (!loaded) {
        a.wait_ms = costs.reload_ms;
        a.penalty_ms = back_ms;
        a.detail = "nothing loaded: load " + Seconds(costs.reload_ms);
    } else {
        const auto& l = costs.buckets[*loaded];
        const double drain = l.pending * l.mean_call_ms / slots;
        a.wait_ms = drain + costs.reload_ms + t.pending * t.mean_call_ms / slots;
        if (t.pending > 0) {
            // A switch is queued already (bucket affinity groups its calls): this call rides it and
            // only lengthens the loaded bucket's wait by its own time.
            a.penalty_ms = l.pending * own_ms / slots;
            a.detail = "joins the queued switch from " + config.buckets[*loaded].name + " (" +
                       std::to_string(t.pending) + " call(s) waiting for " + config.buckets[target].name + ", " +
                       std::to_string(l.pending) + " to drain ~ " + Seconds(drain) + ") + reload " +
                       Seconds(costs.reload_ms);
        } else {
            a.penalty_ms = back_ms + l.pending * (costs.reload_ms + own_ms + back_ms) / slots;
            a.detail = "switch from " + config.buckets[*loaded].name + " (" + std::to_string(l.pending) +
                       " call(s) to drain ~ " + Seconds(drain) + ") + reload " + Seconds(costs.reload_ms);
        }
    }
    if (a.penalty_ms > 0) {
        a.detail += ", penalty " + Seconds(a.penalty_ms) + " (reload back " + Seconds(back_ms) + ")";
    }
    return a;
}

}  // namespace

RouteEstimate EstimateSingleRoute(const Config& config, const RouteCosts& costs, size_t bucket_index,
                                  int64_t prompt_tokens, int64_t max_output_tokens) {
    RouteEstimate e;
    e.route = bucket_index == 0 ? Route::k16k : Route::k60k;
    const auto& b = costs.buckets[bucket_index];
    const double out = costs.output_tokens > 0 ? std::min<double>(costs.output_tokens, max_output_tokens)
                                               : static_cast<double>(max_output_tokens);
    const double own = CallMs(b, costs, static_cast<double>(prompt_tokens), out);
    Access a = AccessCost(config, costs, bucket_index, own);
    e.total_ms = own + a.wait_ms + a.penalty_ms;
    e.detail = config.buckets[bucket_index].name + " ~ " + Seconds(e.total_ms) + " (" + Num(prompt_tokens) +
               " prompt tok at " + Num(static_cast<int64_t>(b.prefill_tokens_per_s)) + " tok/s + " +
               Num(static_cast<int64_t>(out)) + " output tok at " + Num(static_cast<int64_t>(b.decode_tokens_per_s)) +
               " tok/s = " + Seconds(own) + (b.spilling ? " incl. CPU spill" : "") +
               "; " + a.detail + ")";
    return e;
}

RouteEstimate EstimateMapReduceRoute(const Config& config, const RouteCosts& costs, int64_t chunks,
                                     int64_t map_prompt_tokens, int64_t reduce_overhead_tokens,
                                     int64_t max_output_tokens) {
    RouteEstimate e;
    e.route = Route::kMapReduce;
    const auto& b = costs.buckets[0];
    const int64_t n = std::max<int64_t>(1, chunks);
    const double learned = costs.output_tokens > 0 ? costs.output_tokens : 1e18;
    const double map_out = std::min<double>(learned, config.map_reduce.map_num_predict);
    const double final_out = std::min<double>(learned, static_cast<double>(max_output_tokens));
    const int64_t waves = (n + std::max(1, costs.slots) - 1) / std::max(1, costs.slots);
    const double map_ms = static_cast<double>(waves) *
                          CallMs(b, costs, static_cast<double>(map_prompt_tokens) / static_cast<double>(n), map_out);
    const double reduce_ms =
        CallMs(b, costs, static_cast<double>(n) * map_out + static_cast<double>(reduce_overhead_tokens), final_out);
    const double own = map_ms + reduce_ms;
    Access a = AccessCost(config, costs, 0, own);
    e.total_ms = own + a.wait_ms + a.penalty_ms;
    e.detail = "map_reduce ~ " + Seconds(e.total_ms) + " (" + std::to_string(n) + " map call(s) in " +
               std::to_string(waves) + " wave(s) " + Seconds(map_ms) + " + reduce " + Seconds(reduce_ms) + " on " +
               config.buckets[0].name + (b.spilling ? " incl. CPU spill" : "") + "; " + a.detail + ")";
    return e;
}

Result<Plan> PlanRoute(std::string_view text, const TextStats& stats, const Config& config,
                       const RouteOptions& options) {
    const auto& small = config.small_bucket();
    const auto& large = config.large_bucket();
    const int64_t margin = config.routing.safety_margin_tokens;
    const int64_t output = options.prompt.max_tokens;

    Plan base;
    base.chars = static_cast<int64_t>(stats.chars);
    base.text_tokens = Scaled(EstimateTokens(text), options.token_safety);
    const int64_t prompt_tokens = base.text_tokens + SinglePromptOverheadTokens(options.prompt);
    const int64_t needed = prompt_tokens + output + margin;
    const bool fits_small = needed <= small.num_ctx;
    const bool fits_large_tokens = needed <= large.num_ctx;
    const bool under_threshold = base.chars <= config.routing.hierarchical_threshold_chars;

    std::ostringstream why_stream;
    why_stream << Num(base.chars) << " chars ~ " << Num(prompt_tokens) << " prompt tokens";
    if (options.token_safety > 1.0) why_stream << " (estimate x" << options.token_safety << " after an overflow)";
    why_stream << " + " << Num(output) << " output + " << Num(margin) << " margin = " << Num(needed) << " tokens";
    const std::string why = why_stream.str();

    auto single = [&](const BucketConfig& bucket, Route route, const std::string& because) {
        Plan plan = base;
        plan.route = route;
        plan.model = bucket.model;
        plan.num_ctx = bucket.num_ctx;
        plan.keep_alive = bucket.keep_alive;
        plan.estimated_prompt_tokens = prompt_tokens;
        plan.chunks = {Chunk{0, text.size(), 0, plan.chars, plan.text_tokens}};
        plan.reason = why + "; " + because;
        return plan;
    };
    const std::string fits_small_why = "fits the " + small.name + " bucket (num_ctx " + Num(small.num_ctx) + ")";
    const std::string fits_large_why = "over the " + small.name + " bucket (num_ctx " + Num(small.num_ctx) +
                                       "), fits the " + large.name + " bucket (num_ctx " + Num(large.num_ctx) + ")";

    // Map-reduce: chunks sized so that each map prompt fits the small bucket.
    const int64_t map_overhead = MapPromptOverheadTokens(options.prompt);
    auto map_reduce = [&](const std::string& because) {
        ChunkLimits limits;
        limits.max_tokens = small.num_ctx - map_overhead - config.map_reduce.map_num_predict - margin;
        limits.max_chars = config.routing.hierarchical_chunk_max_chars;
        limits.overlap_chars = config.routing.chunk_overlap_chars;
        limits.token_safety = options.token_safety;
        Plan plan = base;
        plan.route = Route::kMapReduce;
        plan.model = small.model;
        plan.num_ctx = small.num_ctx;
        plan.keep_alive = small.keep_alive;
        plan.chunks = SplitIntoChunks(text, limits);
        // n chunks on s parallel slots take ceil(n / s) rounds; just over a multiple of s, the last
        // round runs one chunk alone while the other slots idle. Slightly smaller chunks that fill
        // the last round cost the same prompt tokens and finish sooner.
        const size_t slots = static_cast<size_t>(std::max(1, config.MapConcurrency()));
        const size_t count = plan.chunks.size();
        if (slots > 1 && count > slots && count % slots != 0) {
            const size_t rounded = (count + slots - 1) / slots * slots;
            int64_t total_chars = 0, total_tokens = 0;
            for (const auto& c : plan.chunks) {
                total_chars += c.chars;
                total_tokens += c.estimated_tokens;
            }
            // Caps a little over an even share of `rounded`: the fewest chunks that fit them is `rounded`.
            const double share = (1.0 + 0.5 / static_cast<double>(rounded)) / static_cast<double>(rounded);
            ChunkLimits smaller = limits;
            smaller.max_tokens = std::min(limits.max_tokens, static_cast<int64_t>(std::ceil(total_tokens * share)));
            smaller.max_chars = std::min(limits.max_chars, static_cast<int64_t>(std::ceil(total_chars * share)));
            std::vector<Chunk> resplit = SplitIntoChunks(text, smaller);
            if (resplit.size() > count && resplit.size() <= rounded) {
                plan.chunks = std::move(resplit);
                limits = smaller;
            }
        }
        plan.estimated_prompt_tokens = 0;
        for (const auto& c : plan.chunks) plan.estimated_prompt_tokens += c.estimated_tokens + map_overhead;
        plan.reason = why + "; " + because + ": map-reduce over " + std::to_string(plan.chunks.size()) +
                      " chunks of <= " + Num(limits.max_tokens) + " tokens / " + Num(limits.max_chars) +
                      " chars for the " + small.name + " bucket";
        return plan;
    };

    // The cost policy chooses between the feasible routes of an automatic request; a text over
    // the threshold keeps the record's rule (always map-reduce).
    const bool weigh = config.routing.policy == "cost" && options.costs &&
                       options.costs->buckets.size() >= config.buckets.size() && config.buckets.size() >= 2 &&
                       options.strategy == Strategy::kAuto && fits_large_tokens && (fits_small || under_threshold);
    if (weigh) {
        const RouteCosts& costs = *options.costs;
        std::vector<std::pair<Plan, RouteEstimate>> candidates;
        if (fits_small) {
            candidates.emplace_back(single(small, Route::k16k, fits_small_why),
                                    EstimateSingleRoute(config, costs, 0, prompt_tokens, output));
            candidates.emplace_back(single(large, Route::k60k, "fits the " + large.name + " bucket too"),
                                    EstimateSingleRoute(config, costs, 1, prompt_tokens, output));
        } else {
            candidates.emplace_back(single(large, Route::k60k, fits_large_why),
                                    EstimateSingleRoute(config, costs, 1, prompt_tokens, output));
            Plan mr = map_reduce(fits_large_why + ", but map-reduce is cheaper now");
            const int64_t reduce_overhead = SinglePromptOverheadTokens(options.prompt);
            candidates.emplace_back(mr, EstimateMapReduceRoute(config, costs, static_cast<int64_t>(mr.chunks.size()),
                                                               mr.estimated_prompt_tokens, reduce_overhead, output));
        }
        size_t best = 0;
        for (size_t i = 1; i < candidates.size(); ++i) {
            if (candidates[i].second.total_ms < candidates[best].second.total_ms) best = i;
        }
        Plan chosen = std::move(candidates[best].first);
        std::string compared;
        for (const auto& [plan, estimate] : candidates) compared += (compared.empty() ? "" : " vs ") + estimate.detail;
        chosen.reason += "; cost policy: " + compared + " -> " + std::string(RouteName(chosen.route));
        chosen.estimated_ms = candidates[best].second.total_ms;
        chosen.interactive_maps = chosen.route == Route::kMapReduce;
        return chosen;
    }

    if (options.strategy != Strategy::kMapReduce) {
        if (fits_small) return single(small, Route::k16k, fits_small_why);
        if (fits_large_tokens && (under_threshold || options.strategy == Strategy::kSingle)) {
            std::string because = fits_large_why;
            if (!under_threshold) because += "; over HIERARCHICAL_THRESHOLD_CHARS but strategy is single";
            return single(large, Route::k60k, because);
        }
        if (options.strategy == Strategy::kSingle) {
            return MakeError(ErrorCode::kInputTooLarge,
                             why + ": fits no bucket (largest num_ctx " + Num(large.num_ctx) +
                                 "). Use \"strategy\": \"auto\" or \"map_reduce\", or send a shorter text.");
        }
    }

    std::string because;
    if (options.strategy == Strategy::kMapReduce) {
        because = "strategy map_reduce";
    } else if (fits_large_tokens) {
        because = "over HIERARCHICAL_THRESHOLD_CHARS (" + Num(config.routing.hierarchical_threshold_chars) + ")";
    } else {
        because = "over the " + large.name + " bucket (num_ctx " + Num(large.num_ctx) + ")";
    }
    return map_reduce(because);
}

}  // namespace summarizer
