// Server-Sent Events: event order, first delta as soon as Ollama's first token, and a client
// that disconnects cancelling its upstream generation at once.
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kStreamingText =
    "The library will close for renovation from the first of June to the end of August. During that time, "
    "books can be borrowed from the temporary branch in the town hall, which opens every weekday from nine to five.";

TEST_F(ServiceTest, StreamsMetaDeltasAndDone) {
    FakeBehavior b;
    b.reply = "Library closed June to August; temporary branch in the town hall.";
    b.piece_chars = 5;
    fake.SetBehavior(b);
    StartService();
    std::string body;
    ASSERT_EQ(StreamSummarize(port, {{"text", kStreamingText}, {"stream", true}}, body), httplib::Error::Success);
    auto events = ParseSse(body);
    ASSERT_GE(events.size(), 4u) << body;
    EXPECT_EQ(events.front().first, "meta");
    EXPECT_EQ(events.front().second["route"], "16k");
    EXPECT_EQ(events.front().second["model"], "gemma3-4b-16k");
    EXPECT_EQ(events.front().second["chunks"], 1);
    EXPECT_FALSE(events.front().second["request_id"].get<std::string>().empty());
    std::string joined;
    size_t deltas = 0;
    for (size_t i = 1; i + 1 < events.size(); ++i) {
        ASSERT_EQ(events[i].first, "delta");
        joined += events[i].second["text"].get<std::string>();
        ++deltas;
    }
    EXPECT_GE(deltas, 5u);
    EXPECT_EQ(joined, b.reply);
    EXPECT_EQ(events.back().first, "done");
    EXPECT_EQ(events.back().second["summary"], b.reply);
    EXPECT_EQ(events.back().second["route"], "16k");
}

TEST_F(ServiceTest, AcceptEventStreamAlsoStreams) {
    StartService();
    std::string body;
    StreamSummarize(port, {{"text", kStreamingText}}, body, nullptr, {{"Accept", "text/event-stream"}});
    auto events = ParseSse(body);
    ASSERT_FALSE(events.empty()) << body;
    EXPECT_EQ(events.front().first, "meta");
    EXPECT_EQ(events.back().first, "done");
}

TEST_F(ServiceTest, FirstDeltaLeavesWithOllamasFirstToken) {
    FakeBehavior b;
    b.reply = "First piece, then a long pause before the rest arrives.";
    b.piece_chars = 6;
    b.piece_delay_ms = 400;  // a slow decoder: the first delta must not wait for the second piece
    fake.SetBehavior(b);
    StartService();
    std::string body;
    auto start = Clock::now();
    std::optional<Clock::duration> first_delta;
    StreamSummarize(port, {{"text", kStreamingText}, {"stream", true}}, body, [&](const std::string& so_far) {
        if (!first_delta && so_far.find("event: delta") != std::string::npos) first_delta = Clock::now() - start;
        return true;
    });
    ASSERT_TRUE(first_delta.has_value());
    EXPECT_LT(*first_delta, std::chrono::milliseconds(300));
}

TEST_F(ServiceTest, DisconnectCancelsTheUpstreamWithinATokensTime) {
    FakeBehavior b;
    b.reply = std::string(2000, 'z');
    b.piece_chars = 4;
    b.piece_delay_ms = 50;  // one token every 50 ms: 500 pieces = 25 s if nobody cancels
    fake.SetBehavior(b);
    StartService();
    std::string body;
    Clock::time_point disconnected;
    StreamSummarize(port, {{"text", kStreamingText}, {"stream", true}}, body, [&](const std::string& so_far) {
        if (so_far.find("event: delta") == std::string::npos) return true;
        disconnected = Clock::now();
        return false;  // the client goes away after its first delta
    });
    // The fake sees its client (the service) close the stream.
    auto deadline = Clock::now() + std::chrono::seconds(3);
    while (fake.ClientDisconnects() < 1 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(fake.ClientDisconnects(), 1);
    auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_TRUE(requests[0].client_disconnected);
    EXPECT_LT(requests[0].pieces_sent, 20);
    // Within one token's time (50 ms) plus scheduling slack.
    auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(requests[0].finished - disconnected);
    EXPECT_LT(lag.count(), 120) << "upstream closed " << lag.count() << " ms after the client left";
}

TEST_F(ServiceTest, DisconnectDuringSilentPrefillCancelsToo) {
    FakeBehavior b;
    b.first_piece_delay_ms = 5000;  // Ollama loading/prefilling: nothing is streamed yet
    fake.SetBehavior(b);
    StartService();
    std::string body;
    Clock::time_point disconnected;
    StreamSummarize(port, {{"text", kStreamingText}, {"stream", true}}, body, [&](const std::string& so_far) {
        if (so_far.find("event: meta") == std::string::npos) return true;
        // `meta` goes out before the upstream call starts: leave once it is under way (a client
        // gone before it starts is never sent upstream at all, which the fake cannot see).
        EXPECT_TRUE(fake.WaitForRequests(1, std::chrono::seconds(5)));
        disconnected = Clock::now();
        return false;
    });
    auto deadline = Clock::now() + std::chrono::seconds(3);
    while (fake.ClientDisconnects() < 1 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(fake.ClientDisconnects(), 1);
    // Closed upstream long before the prefill's 5 s would have ended it (usually within 10 ms; the
    // margin is for a loaded machine, not for the service).
    auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(fake.Requests().at(0).finished - disconnected);
    EXPECT_LT(lag.count(), 1000);
}

TEST_F(ServiceTest, UpstreamFailureMidStreamEndsWithAnErrorEvent) {
    FakeBehavior b;
    b.reply = "Some words and then the runner dies.";
    b.error_line_after_pieces = 2;
    fake.SetBehavior(b);
    StartService();
    std::string body;
    StreamSummarize(port, {{"text", kStreamingText}, {"stream", true}}, body);
    auto events = ParseSse(body);
    ASSERT_FALSE(events.empty()) << body;
    EXPECT_EQ(events.back().first, "error");
    EXPECT_EQ(events.back().second["error"]["code"], "upstream_error");
    EXPECT_FALSE(events.back().second["error"]["request_id"].get<std::string>().empty());
}

TEST_F(ServiceTest, MapReduceStreamsProgress) {
    config.routing.hierarchical_chunk_max_chars = 1000;
    StartService();
    std::string text;
    while (text.size() < 4000) text += std::string(kStreamingText) + "\n\n";
    std::string body;
    StreamSummarize(port, {{"text", text}, {"stream", true}, {"strategy", "map_reduce"}}, body);
    auto events = ParseSse(body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front().second["route"], "map_reduce");
    int chunks = events.front().second["chunks"];
    EXPECT_GE(chunks, 3);
    int last_done = -1;
    bool saw_map_total = false;
    std::vector<json> finals;
    for (const auto& [event, data] : events) {
        if (event != "progress") continue;
        EXPECT_GE(data["remaining_ms"].get<int64_t>(), 0);
        if (data["phase"] == "final") {  // after the map: one merge writes the summary
            EXPECT_TRUE(saw_map_total) << data;
            finals.push_back(data);
            continue;
        }
        EXPECT_EQ(data["phase"], "map");
        EXPECT_EQ(data["level"], 0);
        EXPECT_EQ(data["total"], chunks);
        EXPECT_GT(data["done"].get<int>(), last_done);
        last_done = data["done"];
        saw_map_total |= data["done"] == chunks;
    }
    EXPECT_TRUE(saw_map_total);
    ASSERT_EQ(finals.size(), 2u);
    EXPECT_EQ(finals[0]["done"], 0);
    EXPECT_EQ(finals[1]["done"], 1);
    EXPECT_EQ(finals[1]["total"], 1);
    EXPECT_EQ(finals[1]["level"], 1);
    EXPECT_EQ(finals[1]["remaining_ms"], 0);
    EXPECT_EQ(events.back().first, "done");
    EXPECT_EQ(events.back().second["chunks"], chunks);
    EXPECT_EQ(events.back().second["levels"], 1);
    EXPECT_EQ(static_cast<int>(fake.Requests().size()), chunks + 1);
}

}  // namespace
}  // namespace summarizer::testing
