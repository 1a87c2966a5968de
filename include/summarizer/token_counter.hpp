// Exact prompt token counts from an engine's tokenizer (POST /tokenize on an OpenAI-compatible
// upstream, through the pool), cached by a hash of the text: a plan asks for the whole text and each
// of its chunks, /summarize/plan and /summarize ask twice, and a re-plan asks again. Every count has
// a deadline; a count the engine cannot give in time (or at all) is nullopt and the caller estimates.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "summarizer/llm_engine.hpp"

namespace summarizer {

struct TokenCounterStats {
    int64_t engine = 0;     // counts the engine gave
    int64_t cached = 0;     // counts answered from the cache
    int64_t estimated = 0;  // asked, but the engine could not answer (error, unsupported, out of time)
    size_t entries = 0;
};

class TokenCounter {
public:
    using Clock = std::chrono::steady_clock;

    // `engine` counts (LlmEngine::CountTokens with `model`); `capacity` counts are kept (0: no cache).
    // `engine` outlives the counter.
    TokenCounter(LlmEngine& engine, std::string model, size_t capacity);

    // Tokens of `text`, or nullopt when the engine cannot say before `deadline` (then the caller
    // estimates). A cached count is returned whatever the deadline.
    std::optional<int64_t> Count(std::string_view text, Clock::time_point deadline);

    TokenCounterStats stats() const;

private:
    struct Entry {
        int64_t tokens;
        std::list<uint64_t>::iterator age;
    };
    static uint64_t Key(std::string_view text);

    LlmEngine& engine_;
    const std::string model_;
    const size_t capacity_;
    mutable std::mutex mutex_;
    std::unordered_map<uint64_t, Entry> entries_;
    std::list<uint64_t> ages_;  // most recently used first
    TokenCounterStats stats_;
    bool unsupported_ = false;  // the engine said it cannot count: stop asking
};

}  // namespace summarizer
