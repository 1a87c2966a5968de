#include "summarizer/router.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

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

std::string RouteName(const Plan& plan) {
    switch (plan.kind) {
        case RouteKind::kSingle: return plan.bucket;
        case RouteKind::kMapReduce: return std::string(kMapReduceRoute);
        case RouteKind::kExtractive: return std::string(kExtractiveRoute);
    }
    return plan.bucket;
}

namespace {

// The templates' estimates depend on the options alone, and estimating them was a tenth of a
// short request's instructions: each is computed once per (template, language, style, cap).
template <typename Build>
int64_t TemplateOverheadTokens(char kind, const PromptOptions& options, Build build) {
    using Key = std::tuple<char, std::string, int, int>;
    static std::mutex mutex;
    static std::map<Key, int64_t> known;
    Key key{kind, options.language, static_cast<int>(options.style), options.max_tokens};
    {
        std::lock_guard lock(mutex);
        if (auto it = known.find(key); it != known.end()) return it->second;
    }
    const Prompt p = build();
    // + Gemma's turn markers and the template's own tokens.
    const int64_t tokens = EstimateTokens(p.system) + EstimateTokens(p.prompt) + 16;
    std::lock_guard lock(mutex);
    if (known.size() >= 4096) known.clear();  // bounded whatever requests ask for
    known.emplace(std::move(key), tokens);
    return tokens;
}

}  // namespace

int64_t SinglePromptOverheadTokens(const PromptOptions& options) {
    return TemplateOverheadTokens('s', options, [&] { return BuildSinglePrompt("", options); });
}

int64_t MapPromptOverheadTokens(const PromptOptions& options) {
    return TemplateOverheadTokens('m', options, [&] { return BuildMapPrompt("", 999, 999, options); });
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
    if (t.pending == 0 && costs.restore_hot && !config.buckets[target].hot) back_ms = costs.reload_ms;
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
    e.route = config.buckets[bucket_index].name;
    const auto& b = costs.buckets[bucket_index];
    const double out = costs.output_tokens > 0 ? std::min<double>(costs.output_tokens, max_output_tokens)
                                               : static_cast<double>(max_output_tokens);
    const double own = CallMs(b, costs, static_cast<double>(prompt_tokens), out);
    Access a = AccessCost(config, costs, bucket_index, own);
    e.own_ms = own + a.wait_ms;
    e.total_ms = e.own_ms + a.penalty_ms;
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
    e.route = std::string(kMapReduceRoute);
    const size_t map_index = config.BucketIndex(config.MapBucket());
    const auto& b = costs.buckets[map_index];
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
    Access a = AccessCost(config, costs, map_index, own);
    e.own_ms = own + a.wait_ms;
    e.total_ms = e.own_ms + a.penalty_ms;
    e.detail = "map_reduce ~ " + Seconds(e.total_ms) + " (" + std::to_string(n) + " map call(s) in " +
               std::to_string(waves) + " wave(s) " + Seconds(map_ms) + " + reduce " + Seconds(reduce_ms) + " on " +
               config.buckets[map_index].name + (b.spilling ? " incl. CPU spill" : "") + "; " + a.detail + ")";
    return e;
}

int64_t FinalMergeBudget(const Config& config, const PromptOptions& prompt) {
    return config.MapBucket().num_ctx - prompt.max_tokens - config.routing.safety_margin_tokens;
}

size_t ExpectedMerges(size_t chunks, const Config& config, const PromptOptions& prompt) {
    const int64_t bucket = config.MapBucket().num_ctx, margin = config.routing.safety_margin_tokens;
    const int64_t partial = config.map_reduce.map_num_predict + kReducePartHeadingTokens;
    const int64_t final_budget = FinalMergeBudget(config, prompt);
    const int64_t total = static_cast<int64_t>(chunks) * partial;
    if (total <= final_budget) return 0;
    // What one merge takes in, less what its output adds back.
    const int64_t per_merge = bucket - 2 * (config.map_reduce.reduce_num_predict + kReducePartHeadingTokens) - margin;
    if (per_merge <= 0) return 0;
    return static_cast<size_t>((total - final_budget / 2 + per_merge - 1) / per_merge);
}

namespace {

// What every candidate plan of one text shares: its size, and why in words.
struct Sizing {
    Plan base;                  // chars and text_tokens filled
    int64_t prompt_tokens = 0;  // single-pass prompt
    int64_t needed = 0;         // prompt + output cap + margin
    std::string why;
    bool under_threshold = true;
};

Sizing SizeText(std::string_view text, const TextStats& stats, const Config& config, const RouteOptions& options) {
    Sizing s;
    const int64_t margin = config.routing.safety_margin_tokens;
    const int64_t output = options.prompt.max_tokens;
    s.base.chars = static_cast<int64_t>(stats.chars);
    const std::optional<int64_t> exact = options.exact_tokens ? options.exact_tokens(text) : std::nullopt;
    s.base.exact_tokens = exact.has_value();
    s.base.text_tokens = Scaled(exact ? *exact : EstimateTokens(text), options.token_safety);
    s.prompt_tokens = s.base.text_tokens + SinglePromptOverheadTokens(options.prompt);
    s.needed = s.prompt_tokens + output + margin;
    s.under_threshold = s.base.chars <= config.routing.hierarchical_threshold_chars;
    std::ostringstream why;
    why << Num(s.base.chars) << " chars ~ " << Num(s.prompt_tokens) << " prompt tokens ("
        << (exact ? "text counted by the engine's tokenizer" : "estimated") << ")";
    if (options.token_safety > 1.0) why << " (estimate x" << options.token_safety << " after an overflow)";
    why << " + " << Num(output) << " output + " << Num(margin) << " margin = " << Num(s.needed) << " tokens";
    s.why = why.str();
    return s;
}

std::string BucketWithCtx(const BucketConfig& b) { return b.name + " bucket (num_ctx " + Num(b.num_ctx) + ")"; }

// "fits the 16k bucket (num_ctx 16,384)"; for a larger bucket also the one it was too big for.
std::string FitsWhy(const Config& config, size_t index) {
    if (index == 0) return "fits the " + BucketWithCtx(config.buckets[0]);
    return "over the " + BucketWithCtx(config.buckets[index - 1]) + ", fits the " + BucketWithCtx(config.buckets[index]);
}

// The first bucket whose context holds the whole prompt, if any.
std::optional<size_t> SmallestFit(const Config& config, int64_t needed) {
    for (size_t i = 0; i < config.buckets.size(); ++i) {
        if (needed <= config.buckets[i].num_ctx) return i;
    }
    return std::nullopt;
}

Plan SinglePlan(std::string_view text, const Sizing& s, const BucketConfig& bucket, const std::string& because) {
    Plan plan = s.base;
    plan.kind = RouteKind::kSingle;
    plan.bucket = bucket.name;
    plan.model = bucket.model;
    plan.num_ctx = bucket.num_ctx;
    plan.keep_alive = bucket.keep_alive;
    plan.estimated_prompt_tokens = s.prompt_tokens;
    plan.chunks = {Chunk{0, text.size(), 0, plan.chars, plan.text_tokens}};
    plan.reason = s.why + "; " + because;
    return plan;
}

// n steps on s parallel slots take ceil(n / s) rounds; just over a multiple of s, the last round
// runs one step alone while the other slots idle. Slightly smaller chunks that fill the last round
// cost the same prompt tokens and finish sooner. The steps are the maps and the merges expected to
// run beside them (ExpectedMerges). Returns the limits the chunks were cut with.
// Under the prefill gate a host runs one prefill at a time, so its slots do not start together:
// the second starts a prefill after the first, and keeps that lag to the end. A last round of at
// most one call per host then runs on the hosts' leading slots and ends no later than a full one
// would on the lagging slots: filling it (one more, smaller chunk per lagging slot) would end later.
// The number of such leading slots (0: no lag, the slots start together).
size_t StaggerLeads(const Config& config, size_t slots) {
    if (!config.scheduler.prefill_gate || config.map_reduce.concurrency > 0) return 0;
    const std::string& bucket = config.MapBucket().name;
    size_t hosts = 0;
    for (const auto& u : config.Upstreams()) {
        if (Config::Serves(u, bucket) && u.slots > 0) ++hosts;
    }
    return hosts < slots ? hosts : 0;
}

ChunkLimits FillLastRound(std::string_view text, const Config& config, const PromptOptions& prompt, ChunkLimits limits,
                          std::vector<Chunk>& chunks) {
    const size_t slots = static_cast<size_t>(std::max(1, config.MapConcurrency()));
    const size_t count = chunks.size();
    const size_t merges = ExpectedMerges(count, config, prompt);
    if (slots <= 1 || count <= slots || (count + merges) % slots == 0) return limits;
    if ((count + merges) % slots <= StaggerLeads(config, slots)) return limits;
    const size_t rounded = (count + merges + slots - 1) / slots * slots - merges;
    int64_t total_chars = 0, total_tokens = 0;
    for (const auto& c : chunks) {
        total_chars += c.chars;
        total_tokens += c.estimated_tokens;
    }
    // Caps a little over an even share of `rounded`: the fewest chunks that fit them is `rounded`.
    // Cuts fall on sentence and paragraph ends, so a cap just over the share can still need one chunk
    // more: a little more slack is tried, as long as it still makes more chunks than before.
    for (const double slack : {0.5, 1.0, 2.0, 3.0}) {
        const double share = (1.0 + slack / static_cast<double>(rounded)) / static_cast<double>(rounded);
        ChunkLimits smaller = limits;
        smaller.max_tokens = std::min(limits.max_tokens, static_cast<int64_t>(std::ceil(total_tokens * share)));
        smaller.max_chars = std::min(limits.max_chars, static_cast<int64_t>(std::ceil(total_chars * share)));
        std::vector<Chunk> resplit = SplitIntoChunks(text, smaller);
        if (resplit.size() <= count) break;
        if (resplit.size() > rounded) continue;
        chunks = std::move(resplit);
        return smaller;
    }
    return limits;
}

// With exact counts: each chunk's tokens counted by the engine (as long as it answers). A chunk
// over the limit gives the ratio by which the cut must be stricter (1: all fit).
double CountChunks(std::string_view text, const RouteOptions& options, int64_t max_tokens, std::vector<Chunk>& chunks,
                   int& counted) {
    counted = 0;
    double worst = 1.0;
    for (auto& chunk : chunks) {
        const std::optional<int64_t> exact = options.exact_tokens(ChunkText(text, chunk));
        if (!exact) break;  // out of time (or the engine went away): the rest stay estimated
        const int64_t scaled = Scaled(*exact, options.token_safety);
        if (scaled > max_tokens) worst = std::max(worst, static_cast<double>(scaled) / static_cast<double>(max_tokens));
        chunk.estimated_tokens = scaled;
        ++counted;
    }
    return worst;
}

// Map-reduce: chunks sized so that each map prompt fits the map bucket.
Plan MapReducePlan(std::string_view text, const Sizing& s, const Config& config, const RouteOptions& options,
                   const std::string& because) {
    const BucketConfig& bucket = config.MapBucket();
    const int64_t map_overhead = MapPromptOverheadTokens(options.prompt);
    ChunkLimits limits;
    limits.max_tokens =
        bucket.num_ctx - map_overhead - config.map_reduce.map_num_predict - config.routing.safety_margin_tokens;
    limits.max_chars = config.routing.hierarchical_chunk_max_chars;
    limits.overlap_chars = config.routing.chunk_overlap_chars;
    limits.token_safety = options.token_safety;
    if (s.base.exact_tokens) {
        // Calibrate the estimate to the engine's count of this very text.
        const double estimated = static_cast<double>(Scaled(EstimateTokens(text), options.token_safety));
        limits.token_scale = static_cast<double>(s.base.text_tokens) / std::max(1.0, estimated);
    }
    Plan plan = s.base;
    plan.kind = RouteKind::kMapReduce;
    plan.bucket = bucket.name;
    plan.model = bucket.model;
    plan.num_ctx = bucket.num_ctx;
    plan.keep_alive = bucket.keep_alive;
    plan.chunks = SplitIntoChunks(text, limits);
    limits = FillLastRound(text, config, options.prompt, limits, plan.chunks);
    std::string counted_why;
    if (s.base.exact_tokens) {
        // Local density differs from the text's average: count each chunk, and cut again (once) with
        // the worst excess if one is over.
        const double worst = CountChunks(text, options, limits.max_tokens, plan.chunks, plan.exact_chunks);
        if (worst > 1.0) {
            limits.token_scale *= worst * 1.02;
            plan.chunks = SplitIntoChunks(text, limits);
            limits = FillLastRound(text, config, options.prompt, limits, plan.chunks);
            (void)CountChunks(text, options, limits.max_tokens, plan.chunks, plan.exact_chunks);
        }
        char calibration[48];
        std::snprintf(calibration, sizeof calibration, "%.2f", limits.token_scale);
        counted_why = " (the estimate calibrated x" + std::string(calibration) + " to the engine's count; " +
                      std::to_string(plan.exact_chunks) + " of " + std::to_string(plan.chunks.size()) +
                      " chunks counted exactly)";
    }
    plan.estimated_prompt_tokens = 0;
    for (const auto& c : plan.chunks) plan.estimated_prompt_tokens += c.estimated_tokens + map_overhead;
    // The tokens above are of one pass over the text; what map-reduce sends is the map prompts'.
    plan.reason = s.why + "; " + because + ": map-reduce over " + std::to_string(plan.chunks.size()) + " chunks of <= " +
                  Num(limits.max_tokens) + " tokens / " + Num(limits.max_chars) + " chars for the " + bucket.name +
                  " bucket" + counted_why + ", " + Num(plan.estimated_prompt_tokens) + " prompt tokens in all";
    return plan;
}

// The cost policy: every bucket that holds the text, and map-reduce when the map bucket does not;
// the cheapest expected time wins. nullopt when there is nothing to weigh.
std::optional<Plan> ChooseByCost(std::string_view text, const Sizing& s, const Config& config,
                                 const RouteOptions& options, size_t first_fit) {
    const RouteCosts& costs = *options.costs;
    const int64_t output = options.prompt.max_tokens;
    std::vector<std::pair<Plan, RouteEstimate>> candidates;
    for (size_t i = first_fit; i < config.buckets.size(); ++i) {
        const std::string because = i == first_fit ? FitsWhy(config, i) : "fits the " + config.buckets[i].name + " bucket too";
        candidates.emplace_back(SinglePlan(text, s, config.buckets[i], because),
                                EstimateSingleRoute(config, costs, i, s.prompt_tokens, output));
    }
    if (s.needed > config.MapBucket().num_ctx) {
        Plan mr = MapReducePlan(text, s, config, options, FitsWhy(config, first_fit) + ", but map-reduce is cheaper now");
        const int64_t reduce_overhead = SinglePromptOverheadTokens(options.prompt);
        candidates.emplace_back(mr, EstimateMapReduceRoute(config, costs, static_cast<int64_t>(mr.chunks.size()),
                                                           mr.estimated_prompt_tokens, reduce_overhead, output));
    }
    if (candidates.size() < 2) return std::nullopt;
    // The cheapest in all (its own time and what it costs the others), among the routes that do not
    // make this request more than cost_max_slowdown slower than its fastest one.
    double fastest = candidates[0].second.own_ms;
    for (const auto& c : candidates) fastest = std::min(fastest, c.second.own_ms);
    const double allowed = fastest * (1.0 + config.routing.cost_max_slowdown);
    std::optional<size_t> best;
    for (size_t i = 0; i < candidates.size(); ++i) {
        if (candidates[i].second.own_ms > allowed) continue;
        if (!best || candidates[i].second.total_ms < candidates[*best].second.total_ms) best = i;
    }
    Plan chosen = std::move(candidates[*best].first);  // the fastest is always allowed
    std::string compared;
    for (const auto& [plan, estimate] : candidates) compared += (compared.empty() ? "" : " vs ") + estimate.detail;
    chosen.reason += "; cost policy: " + compared + " -> " + RouteName(chosen);
    if (candidates[*best].second.total_ms > std::min_element(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
            return a.second.total_ms < b.second.total_ms;
        })->second.total_ms) {
        chosen.reason += " (the cheaper route would make this request more than " +
                         std::to_string(static_cast<int>(config.routing.cost_max_slowdown * 100 + 0.5)) + "% slower)";
    }
    const size_t best_index = *best;
    chosen.estimated_ms = candidates[best_index].second.own_ms;
    chosen.interactive_maps = chosen.kind == RouteKind::kMapReduce;
    return chosen;
}

}  // namespace

Result<Plan> PlanRoute(std::string_view text, const TextStats& stats, const Config& config,
                       const RouteOptions& options) {
    const Sizing s = SizeText(text, stats, config, options);
    const std::optional<size_t> fit = SmallestFit(config, s.needed);
    const bool fits_map_bucket = s.needed <= config.MapBucket().num_ctx;
    // The cost policy chooses between the feasible routes of an automatic request; a text over
    // the threshold keeps the record's rule (always map-reduce).
    const bool weigh = config.routing.policy == "cost" && options.costs &&
                       options.costs->buckets.size() >= config.buckets.size() && options.strategy == Strategy::kAuto &&
                       fit && (fits_map_bucket || s.under_threshold);
    if (weigh) {
        if (auto chosen = ChooseByCost(text, s, config, options, *fit)) return *chosen;
    }
    if (options.strategy != Strategy::kMapReduce && fit) {
        // Over the threshold, a text goes to map-reduce unless one pass on the map bucket holds it.
        const bool map_bucket = &config.buckets[*fit] == &config.MapBucket();
        if (map_bucket || *fit == 0 || s.under_threshold || options.strategy == Strategy::kSingle) {
            std::string because = FitsWhy(config, *fit);
            if (!s.under_threshold && !map_bucket && *fit != 0) {
                because += "; over HIERARCHICAL_THRESHOLD_CHARS but strategy is single";
            }
            return SinglePlan(text, s, config.buckets[*fit], because);
        }
    }
    const BucketConfig& largest = config.buckets.back();
    if (options.strategy == Strategy::kSingle) {
        return MakeError(ErrorCode::kInputTooLarge,
                         s.why + ": fits no bucket (largest num_ctx " + Num(largest.num_ctx) +
                             "). Use \"strategy\": \"auto\" or \"map_reduce\", or send a shorter text.");
    }
    std::string because;
    if (options.strategy == Strategy::kMapReduce) {
        because = "strategy map_reduce";
    } else if (fit) {
        because = "over HIERARCHICAL_THRESHOLD_CHARS (" + Num(config.routing.hierarchical_threshold_chars) + ")";
    } else {
        because = "over the " + BucketWithCtx(largest);
    }
    return MapReducePlan(text, s, config, options, because);
}

}  // namespace summarizer
