// Fills the silences of Server-Sent Event streams: a stream that has had nothing pushed for
// `interval` gets an SSE comment line (": heartbeat"), which SSE clients ignore and which tells
// proxies (many cut a connection idle for 60 s) and people that the stream is alive while an
// upstream phase is silent (a map phase on a real GPU says nothing for 20 s and more). One
// thread serves every stream, started with the first one; it sleeps until the next silence is
// due. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "summarizer/http_types.hpp"

namespace summarizer {

class SseHeartbeat {
public:
    // What a silent stream gets: one comment line, then the blank line that ends it.
    static constexpr std::string_view kComment = ": heartbeat\n\n";

    // `interval` <= 0: off (Watch() does nothing).
    explicit SseHeartbeat(std::chrono::milliseconds interval);
    ~SseHeartbeat();
    SseHeartbeat(const SseHeartbeat&) = delete;
    SseHeartbeat& operator=(const SseHeartbeat&) = delete;

    // Watches `stream` until its producer finishes it (or nobody else holds it).
    void Watch(const std::shared_ptr<EventStream>& stream);
    // Streams watched now.
    size_t watched() const;

private:
    void Loop();

    const std::chrono::milliseconds interval_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<std::weak_ptr<EventStream>> streams_;
    bool stopping_ = false;
    std::thread thread_;  // started by the first Watch()
};

}  // namespace summarizer
