// The Plan for one input (pure): one pass on the smallest bucket that fits (however many buckets
// the config lists), or map-reduce with its chunks on the map bucket (Config::MapBucket).
// Never plans a prompt whose estimated size (template + text + output cap + safety margin)
// exceeds the bucket's num_ctx. Every threshold comes from Config.
// With routing.policy "cost" and RouteCosts given, the choice among the feasible routes weighs
// their expected time (reloads, learned rates, queues, spills); the state is passed in as data,
// so the router stays pure. Without RouteCosts the static rule of the design record applies.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/chunker.hpp"
#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/prompts.hpp"
#include "summarizer/text.hpp"

namespace summarizer {

// How a plan runs. No bucket is named here: a single pass names its bucket in Plan::bucket.
// kExtractive is never planned: it names the in-process degraded answer when Ollama is unreachable.
enum class RouteKind { kSingle, kMapReduce, kExtractive };
enum class Strategy { kAuto, kSingle, kMapReduce };

// The API's route names besides the buckets' own.
inline constexpr std::string_view kMapReduceRoute = "map_reduce";
inline constexpr std::string_view kExtractiveRoute = "extractive";

// What the cost policy knows about one bucket right now (the ModelManager observes and learns it).
struct BucketCosts {
    bool loaded = false;              // its runner is loaded (or loading) in Ollama now
    bool spilling = false;            // seen (or estimated) with size_vram < size: partly on the CPU
    int pending = 0;                  // upstream calls for it waiting or running now
    double prefill_tokens_per_s = 3000;  // learned from recent calls' prompt_eval_count / duration
    double decode_tokens_per_s = 60;     // learned from recent calls' eval_count / duration
    double mean_call_ms = 6000;       // a recent call's duration without loading (queue waits)
};

// The server state the cost policy weighs. Times in milliseconds of Ollama's own clock.
struct RouteCosts {
    std::vector<BucketCosts> buckets;  // in Config::buckets order
    double reload_ms = 4000;           // loading a runner (learned from load_duration)
    double spill_slowdown = 5;         // rates are divided by this on a spilling bucket
    int slots = 1;                     // Ollama's parallel slots
    double output_tokens = 0;          // learned tokens a summary call generates; 0: the caps
    bool restore_hot = false;          // after another bucket is used the hot one is loaded again
};

// Exact tokens of a text by the engine's tokenizer, or nullopt (no engine can count, or not in time):
// then the estimate holds. Bound to a deadline by the caller.
using ExactTokenCount = std::function<std::optional<int64_t>(std::string_view text)>;

struct RouteOptions {
    Strategy strategy = Strategy::kAuto;
    PromptOptions prompt;        // language (resolved), style, max_tokens
    double token_safety = 1.0;   // > 1 after Ollama reported an under-estimate
    std::optional<RouteCosts> costs;  // the cost policy's view; ignored unless routing.policy is "cost"
    // Where set, the text's tokens are counted exactly (the single-pass size), the chunker's estimate
    // is calibrated to that count, and each map chunk is counted and re-cut if it is over.
    ExactTokenCount exact_tokens;
};

struct Plan {
    RouteKind kind = RouteKind::kSingle;
    std::string bucket;          // the bucket the calls run on (map-reduce: the map bucket)
    std::string model;           // the model that writes the final summary
    int num_ctx = 0;             // of that model's bucket
    std::string keep_alive;
    int64_t chars = 0;
    int64_t text_tokens = 0;              // estimate of the text alone
    int64_t estimated_prompt_tokens = 0;  // single pass: whole prompt; map-reduce: sum over map prompts
    std::vector<Chunk> chunks;            // one covering the text for a single pass
    std::string reason;                   // why, in words
    double estimated_ms = 0;              // cost policy: expected time of the chosen route (0: static)
    // Cost policy chose map-reduce for a text the large bucket takes in one pass: its client waits on
    // the map calls as on a single pass, so they are scheduled as interactive, not as batch work.
    bool interactive_maps = false;
    bool exact_tokens = false;            // text_tokens is the engine tokenizer's count (the reason says so)
    int exact_chunks = 0;                 // map-reduce: chunks whose tokens the engine counted
};

// The API's route name of a plan: its bucket's name for a single pass, "map_reduce", "extractive".
std::string RouteName(const Plan& plan);

// Expected milliseconds of one route under `costs` (own time + waits + the switch penalty, as the
// cost policy weighs it), with its explanation. Exposed for tests and /status.
struct RouteEstimate {
    std::string route;           // as RouteName
    double total_ms = 0;         // own_ms + what it costs the other calls (reloads, waits)
    double own_ms = 0;           // the request's own expected time: its queue, any load, its calls
    std::string detail;
};

// Estimated tokens the single-pass prompt template adds around a text.
int64_t SinglePromptOverheadTokens(const PromptOptions& options);
int64_t MapPromptOverheadTokens(const PromptOptions& options);
// Prompt tokens one final merge on the map bucket can hold (its output and the margin kept free).
int64_t FinalMergeBudget(const Config& config, const PromptOptions& prompt);
// The intermediate merges the pipelined map-reduce (executor.hpp) is expected to run beside the
// map of `chunks` partials, each at map_reduce.map_num_predict: none when they fit one final merge,
// else enough to bring what is left within half of one (the rest goes to the final merge unmerged).
// The router cuts the chunks so that maps and these merges fill whole rounds of the map's slots.
size_t ExpectedMerges(size_t chunks, const Config& config, const PromptOptions& prompt);

// Expected time of a single pass on config.buckets[bucket_index], and of map-reduce on the map
// bucket with `chunks` map prompts totalling `map_prompt_tokens`. Requires costs.buckets to
// cover config.buckets.
RouteEstimate EstimateSingleRoute(const Config& config, const RouteCosts& costs, size_t bucket_index,
                                  int64_t prompt_tokens, int64_t max_output_tokens);
RouteEstimate EstimateMapReduceRoute(const Config& config, const RouteCosts& costs, int64_t chunks,
                                     int64_t map_prompt_tokens, int64_t reduce_overhead_tokens,
                                     int64_t max_output_tokens);

// Errors: kInputTooLarge when strategy is single and no bucket fits.
Result<Plan> PlanRoute(std::string_view text, const TextStats& stats, const Config& config,
                       const RouteOptions& options);

}  // namespace summarizer
