// The Plan for one input (pure): the 16k bucket, the 60k bucket, or map-reduce with its chunks.
// Never plans a prompt whose estimated size (template + text + output cap + safety margin)
// exceeds the bucket's num_ctx. Every threshold comes from Config.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/chunker.hpp"
#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/prompts.hpp"
#include "summarizer/text.hpp"

namespace summarizer {

// kExtractive is never planned: it names the in-process degraded answer when Ollama is unreachable.
enum class Route { k16k, k60k, kMapReduce, kExtractive };
enum class Strategy { kAuto, kSingle, kMapReduce };

std::string_view RouteName(Route route);

struct RouteOptions {
    Strategy strategy = Strategy::kAuto;
    PromptOptions prompt;        // language (resolved), style, max_tokens
    double token_safety = 1.0;   // > 1 after Ollama reported an under-estimate
};

struct Plan {
    Route route = Route::k16k;
    std::string model;           // the model that writes the final summary
    int num_ctx = 0;             // of that model's bucket
    std::string keep_alive;
    int64_t chars = 0;
    int64_t text_tokens = 0;              // estimate of the text alone
    int64_t estimated_prompt_tokens = 0;  // single pass: whole prompt; map-reduce: sum over map prompts
    std::vector<Chunk> chunks;            // one covering the text for a single pass
    std::string reason;                   // why, in words
};

// Estimated tokens the single-pass prompt template adds around a text.
int64_t SinglePromptOverheadTokens(const PromptOptions& options);
int64_t MapPromptOverheadTokens(const PromptOptions& options);

// Errors: kInputTooLarge when strategy is single and no bucket fits.
Result<Plan> PlanRoute(std::string_view text, const TextStats& stats, const Config& config,
                       const RouteOptions& options);

}  // namespace summarizer
