// Fuzzes SplitIntoChunks (include/summarizer/chunker.hpp) with limits drawn from the input.
//
// Input: 4 header bytes, then the text (ill-formed UTF-8 bytes replaced by '?': valid UTF-8 is
// the contract's precondition).
//   byte 0: max_tokens = byte + 1 (1..256)     byte 1: max_chars = 4 * byte + 1 (1..1021)
//   byte 2: overlap_chars = byte % 64, 0 when byte >= 0xC0
//   byte 3: token_safety = 1 + byte / 64 (1.0..4.98)
//
// Checked: chunks tile the text in order without gaps or empty chunks, on code point boundaries
// (no loss: the chunks minus their overlap concatenate to the input); the overlap is within the
// previous chunk and overlap_chars; chars and estimated_tokens describe ChunkText; every chunk
// fits both budgets unless its own text is one code point; and the result is deterministic.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "summarizer/chunker.hpp"
#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

using summarizer::IsCodePointBoundary;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    summarizer::ChunkLimits limits;
    limits.max_tokens = data[0] + 1;
    limits.max_chars = 4 * static_cast<int64_t>(data[1]) + 1;
    limits.overlap_chars = data[2] >= 0xC0 ? 0 : data[2] % 64;
    limits.token_safety = 1.0 + data[3] / 64.0;

    std::string text(reinterpret_cast<const char*>(data) + 4, size - 4);
    for (size_t bad = summarizer::FindInvalidUtf8(text); bad != std::string::npos;
         bad = summarizer::FindInvalidUtf8(text)) {
        text[bad] = '?';
    }

    const std::vector<summarizer::Chunk> chunks = summarizer::SplitIntoChunks(text, limits);
    if (text.empty()) {
        FUZZ_CHECK(chunks.empty(), "no chunks for an empty text");
        return 0;
    }
    FUZZ_CHECK(!chunks.empty(), "a non-empty text has a chunk");

    std::string rebuilt;
    for (size_t k = 0; k < chunks.size(); ++k) {
        const summarizer::Chunk& c = chunks[k];
        FUZZ_CHECK(c.begin == (k == 0 ? 0 : chunks[k - 1].end), "chunks follow each other without gaps");
        FUZZ_CHECK(c.begin < c.end && c.end <= text.size(), "a chunk is non-empty and inside the text");
        FUZZ_CHECK(IsCodePointBoundary(text, c.begin) && IsCodePointBoundary(text, c.end) &&
                       IsCodePointBoundary(text, c.overlap_begin),
                   "cuts are on code point boundaries");
        FUZZ_CHECK(c.overlap_begin <= c.begin, "the overlap precedes the chunk's own text");
        if (k == 0 || limits.overlap_chars == 0) {
            FUZZ_CHECK(c.overlap_begin == c.begin, "no overlap on the first chunk or when none was asked for");
        } else {
            FUZZ_CHECK(c.overlap_begin >= chunks[k - 1].begin, "the overlap comes from the previous chunk");
            const std::string_view overlap(text.data() + c.overlap_begin, c.begin - c.overlap_begin);
            FUZZ_CHECK(static_cast<int64_t>(summarizer::CountCodePoints(overlap)) <= limits.overlap_chars,
                       "the overlap is at most overlap_chars code points");
        }
        const std::string_view covered = summarizer::ChunkText(text, c);
        FUZZ_CHECK(covered.size() == c.end - c.overlap_begin, "ChunkText spans [overlap_begin, end)");
        FUZZ_CHECK(c.chars == static_cast<int64_t>(summarizer::CountCodePoints(covered)), "chars of ChunkText");
        FUZZ_CHECK(c.estimated_tokens == summarizer::EstimateTokens(covered, limits.token_safety),
                   "estimated_tokens of ChunkText");
        const std::string_view own(text.data() + c.begin, c.end - c.begin);
        const bool one_code_point = summarizer::CountCodePoints(own) == 1;
        if (!one_code_point) {
            FUZZ_CHECK(c.chars <= limits.max_chars, "a chunk fits max_chars");
            FUZZ_CHECK(c.estimated_tokens <= limits.max_tokens, "a chunk fits max_tokens");
        }
        rebuilt += covered.substr(c.begin - c.overlap_begin);
    }
    FUZZ_CHECK(chunks.back().end == text.size(), "the last chunk ends the text");
    FUZZ_CHECK(rebuilt == text, "no loss: the chunks minus their overlap concatenate to the input");

    const std::vector<summarizer::Chunk> again = summarizer::SplitIntoChunks(text, limits);
    FUZZ_CHECK(again.size() == chunks.size(), "deterministic");
    for (size_t k = 0; k < chunks.size(); ++k) {
        FUZZ_CHECK(again[k].begin == chunks[k].begin && again[k].overlap_begin == chunks[k].overlap_begin &&
                       again[k].end == chunks[k].end,
                   "deterministic");
    }
    return 0;
}
