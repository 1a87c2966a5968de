#include "summarizer/token_counter.hpp"

#include <functional>

namespace summarizer {

TokenCounter::TokenCounter(LlmEngine& engine, std::string model, size_t capacity)
    : engine_(engine), model_(std::move(model)), capacity_(capacity) {}

uint64_t TokenCounter::Key(std::string_view text) {
    // 64 bits of hash and the length: two texts of one process colliding is not a practical concern.
    const uint64_t h = std::hash<std::string_view>{}(text);
    return h ^ (static_cast<uint64_t>(text.size()) * 0x9E3779B97F4A7C15ULL);
}

std::optional<int64_t> TokenCounter::Count(std::string_view text, Clock::time_point deadline) {
    const uint64_t key = Key(text);
    {
        std::lock_guard lock(mutex_);
        if (auto it = entries_.find(key); it != entries_.end()) {
            ages_.splice(ages_.begin(), ages_, it->second.age);
            ++stats_.cached;
            return it->second.tokens;
        }
        if (unsupported_ || Clock::now() >= deadline) {
            ++stats_.estimated;
            return std::nullopt;
        }
    }
    // The engine's own time-out bounds one call (pool.tokenize_timeout_ms); the deadline bounds a plan.
    auto counted = engine_.CountTokens(model_, std::string(text));
    std::lock_guard lock(mutex_);
    if (!counted.ok()) {
        ++stats_.estimated;
        if (counted.error().code == ErrorCode::kUnsupported) unsupported_ = true;
        return std::nullopt;
    }
    ++stats_.engine;
    if (capacity_ > 0 && entries_.find(key) == entries_.end()) {
        ages_.push_front(key);
        entries_.emplace(key, Entry{*counted, ages_.begin()});
        while (entries_.size() > capacity_) {
            entries_.erase(ages_.back());
            ages_.pop_back();
        }
    }
    return *counted;
}

TokenCounterStats TokenCounter::stats() const {
    std::lock_guard lock(mutex_);
    TokenCounterStats s = stats_;
    s.entries = entries_.size();
    return s;
}

}  // namespace summarizer
