// Splits a text into chunks that each fit a token budget (pure).
// Cuts at paragraph boundaries, then sentence boundaries, then (only when one sentence alone
// is over budget) at code point boundaries. Chunks are balanced: no tiny tail chunk.
// Without overlap, concatenating the chunks gives back the input exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer {

struct ChunkLimits {
    int64_t max_tokens = 12000;   // estimated tokens per chunk (EstimateTokens), > 0
    int64_t max_chars = 30000;    // code points per chunk, > 0
    int64_t overlap_chars = 0;    // code points of the previous chunk repeated at the start
    double token_safety = 1.0;    // multiplier on the estimate (>= 1.0)
    // Calibration of the estimate to the engine's tokenizer: exact / estimated tokens of this text
    // (below 1 where the estimator over-counts); multiplies with token_safety. 1: uncalibrated.
    double token_scale = 1.0;
};

struct Chunk {
    size_t begin = 0;        // byte offset of the chunk's own text in the input
    size_t end = 0;          // byte offset one past it
    size_t overlap_begin = 0;  // byte offset where the chunk's overlap starts (== begin if none)
    int64_t chars = 0;       // code points of [overlap_begin, end)
    int64_t estimated_tokens = 0;  // of [overlap_begin, end)
};

// The chunks of `text` in order. [begin, end) ranges tile the input without gaps.
std::vector<Chunk> SplitIntoChunks(std::string_view text, const ChunkLimits& limits);

// The text a chunk covers, overlap included.
inline std::string_view ChunkText(std::string_view text, const Chunk& chunk) {
    return text.substr(chunk.overlap_begin, chunk.end - chunk.overlap_begin);
}

}  // namespace summarizer
