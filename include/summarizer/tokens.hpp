// Token estimate for Gemma 3 (pure), script-aware and calibrated against the real tokenizer
// (tools/calibrate: fixture in tests/fixtures/token_calibration.json). Biased to over-estimate:
// an over-estimate costs a smaller chunk, an under-estimate a silently truncated prompt.
#pragma once

#include <cstdint>
#include <string_view>

#include "summarizer/text.hpp"

namespace summarizer {

// Estimated Gemma 3 tokens of `text` (valid UTF-8), without special tokens.
int64_t EstimateTokens(std::string_view text);

// Same, scaled by `safety` (>= 1.0) -- used after Ollama reported an under-estimate.
int64_t EstimateTokens(std::string_view text, double safety);

// The unrounded estimate behind EstimateTokens (which is its ceiling). Nearly additive: the
// cost of a text cut at a sentence boundary is about the sum of the costs of the two pieces
// (cutting inside a word or a whitespace run adds a little), so callers can keep prefix sums.
double EstimateTokenCost(std::string_view text);

}  // namespace summarizer
