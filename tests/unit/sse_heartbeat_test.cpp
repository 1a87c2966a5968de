// The SSE heartbeat: a comment into a stream that has been silent for the interval, none into a
// stream that keeps sending or has finished.
#include "summarizer/sse_heartbeat.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "eventually.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

// Everything the stream holds now.
std::string Drain(EventStream& stream) {
    std::string out;
    stream.TryTake(out);
    return out;
}

TEST(SseHeartbeat, FillsASilenceWithAComment) {
    SseHeartbeat heartbeat(100ms);
    auto stream = std::make_shared<EventStream>();
    heartbeat.Watch(stream);
    std::string seen;
    ASSERT_TRUE(Eventually([&] {
        seen += Drain(*stream);
        return seen.find(": heartbeat\n\n") != std::string::npos;
    }, 2000ms));
    EXPECT_EQ(seen.rfind(": heartbeat\n\n", 0), 0u) << "nothing but whole comments: " << seen;
}

TEST(SseHeartbeat, NothingWhileTheProducerKeepsSending) {
    SseHeartbeat heartbeat(300ms);
    auto stream = std::make_shared<EventStream>();
    heartbeat.Watch(stream);
    std::string seen;
    for (int i = 0; i < 10; ++i) {
        stream->Push("event: delta\ndata: {}\n\n");
        std::this_thread::sleep_for(50ms);
        seen += Drain(*stream);
    }
    EXPECT_EQ(seen.find("heartbeat"), std::string::npos) << seen;
}

TEST(SseHeartbeat, AFinishedStreamIsLetGo) {
    SseHeartbeat heartbeat(50ms);
    auto stream = std::make_shared<EventStream>();
    heartbeat.Watch(stream);
    stream->Finish();
    EXPECT_TRUE(Eventually([&] { return heartbeat.watched() == 0; }, 2000ms));
    std::string rest;
    EXPECT_EQ(stream->TryTake(rest), EventStream::TakeResult::kFinished);
    EXPECT_TRUE(rest.empty()) << "pushed after Finish(): " << rest;
}

TEST(SseHeartbeat, OffWhenTheIntervalIsZero) {
    SseHeartbeat heartbeat(0ms);
    auto stream = std::make_shared<EventStream>();
    heartbeat.Watch(stream);
    EXPECT_EQ(heartbeat.watched(), 0u);
}

}  // namespace
}  // namespace summarizer
