#include "summarizer/sse_heartbeat.hpp"

#include <algorithm>
#include <string>

namespace summarizer {

SseHeartbeat::SseHeartbeat(std::chrono::milliseconds interval) : interval_(interval) {}

SseHeartbeat::~SseHeartbeat() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void SseHeartbeat::Watch(const std::shared_ptr<EventStream>& stream) {
    if (interval_.count() <= 0 || !stream) return;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        streams_.push_back(stream);
        if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    }
    // A new stream is due no earlier than every other one: the loop's sleep stays right, except
    // when it had nothing to watch.
    wake_.notify_all();
}

size_t SseHeartbeat::watched() const {
    std::lock_guard lock(mutex_);
    return streams_.size();
}

void SseHeartbeat::Loop() {
    using Clock = std::chrono::steady_clock;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (streams_.empty()) {
            wake_.wait(lock, [this] { return stopping_ || !streams_.empty(); });
            continue;
        }
        // Pushing happens outside the lock: a push wakes the stream's connection.
        std::vector<std::shared_ptr<EventStream>> due;
        auto next = Clock::time_point::max();
        const auto now = Clock::now();
        std::erase_if(streams_, [&](const std::weak_ptr<EventStream>& weak) {
            auto stream = weak.lock();
            if (!stream || stream->finished()) return true;
            const auto at = stream->last_push() + interval_;
            if (at <= now) {
                due.push_back(std::move(stream));
                next = std::min(next, now + interval_);
            } else {
                next = std::min(next, at);
            }
            return false;
        });
        if (!due.empty()) {
            lock.unlock();
            for (const auto& stream : due) stream->Push(std::string(kComment));
            due.clear();
            lock.lock();
            continue;
        }
        if (!streams_.empty()) wake_.wait_until(lock, next);
    }
}

}  // namespace summarizer
