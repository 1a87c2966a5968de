// The transport of `summarizer serve` (issue #16) through the real HttpServer: the deadlines and
// connection caps of config `server.*` cut slow and surplus clients and nothing else (a running
// stream whose client reads is never cut), a silent stream gets SSE heartbeat comments, and the
// transport's own answers and counters reach /metrics.
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "raw_client.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* kTransportText = "The ferry leaves at noon. It returns at six, unless the wind is too strong for the crossing.";

std::string PostHead(const std::string& path, const std::string& content_type, size_t length) {
    return "POST " + path + " HTTP/1.1\r\nHost: test\r\nContent-Type: " + content_type +
           "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

// The value of an unlabelled Prometheus sample (or of one with exactly `labels`), -1 if absent.
double MetricValue(const std::string& text, const std::string& name, const std::string& labels = "") {
    const std::string key = "\n" + name + labels + " ";
    const size_t at = ("\n" + text).find(key);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + key.size() - 1));
}

class TransportTest : public ServiceTest {
protected:
    std::string Metrics() {
        auto res = Http().Get("/metrics");
        return res && res->status == 200 ? res->body : "";
    }
    bool Healthy() {
        auto res = Http().Get("/healthz");
        return res && res->status == 200;
    }
};

TEST_F(TransportTest, HeadersTrickledSteadilyAreCutAtTheHeaderDeadline) {
    config.server.header_timeout_s = 1;
    StartService();
    RawClient slow(port);
    ASSERT_TRUE(slow.connected());
    const std::string head = "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: ";
    const auto start = Clock::now();
    bool closed = false;
    // A byte every 100 ms: every read is quick, but the headers never end.
    for (size_t i = 0; i < 60 && !closed; ++i) {
        slow.Send(std::string(1, i < head.size() ? head[i] : 'a'));
        closed = !slow.StillOpen(100ms);
    }
    const auto lived = Clock::now() - start;
    EXPECT_TRUE(closed) << "a steady trickle must not keep its connection past the header deadline";
    EXPECT_GE(lived, 900ms);
    EXPECT_LT(lived, 4s);
    EXPECT_TRUE(Healthy());
    EXPECT_TRUE(Eventually([&] {
        return MetricValue(Metrics(), "summarizer_http_connections_closed_total", "{reason=\"header_timeout\"}") == 1;
    }));
}

TEST_F(TransportTest, ABodyAtAnUploadRateIsReadWhileATrickleIsCut) {
    config.server.body_timeout_s = 1;
    config.server.body_min_bytes_per_s = 16 * 1024;
    StartService();
    // 96 KiB at ~48 KiB/s: 2 s, longer than body_timeout_s, but above the minimum rate.
    std::string text;
    while (text.size() < 96 * 1024) text += std::string(kTransportText) + "\n";
    RawClient upload(port);
    ASSERT_TRUE(upload.Send(PostHead("/summarize/plan", "text/plain", text.size())));
    for (size_t sent = 0; sent < text.size(); sent += 4800) {
        ASSERT_TRUE(upload.Send(text.substr(sent, 4800))) << "cut after " << sent << " bytes";
        std::this_thread::sleep_for(100ms);
    }
    auto answer = upload.ReadResponse();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200) << answer->body;

    // 100 bytes a second of a declared 100,000: cut after ~body_timeout_s.
    RawClient trickle(port);
    ASSERT_TRUE(trickle.Send(PostHead("/summarize", "text/plain", 100000)));
    const auto start = Clock::now();
    bool closed = false;
    while (!closed && Clock::now() - start < 5s) {
        trickle.Send(std::string(10, 'x'));
        closed = !trickle.StillOpen(100ms);
    }
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - start, 4s);
    EXPECT_TRUE(fake.Requests().empty()) << "a partial body is never summarized";
}

TEST_F(TransportTest, ARunningStreamWhoseClientReadsOutlivesEveryDeadline) {
    config.server.header_timeout_s = 1;
    config.server.body_timeout_s = 1;
    config.server.keep_alive_timeout_s = 1;
    config.server.write_timeout_s = 1;
    FakeBehavior b;
    b.reply = std::string(120, 's');
    b.piece_chars = 4;
    b.piece_delay_ms = 100;  // 30 pieces: ~3 s of streaming
    fake.SetBehavior(b);
    StartService();
    std::string body;
    const auto start = Clock::now();
    ASSERT_EQ(StreamSummarize(port, {{"text", kTransportText}, {"stream", true}}, body), httplib::Error::Success);
    EXPECT_GE(Clock::now() - start, 2500ms);
    const auto events = ParseSse(body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "done") << body.substr(body.size() > 300 ? body.size() - 300 : 0);
    EXPECT_EQ(events.back().second["summary"], b.reply);
}

TEST_F(TransportTest, ASilentStreamGetsHeartbeatComments) {
    config.server.sse_heartbeat_s = 1;
    FakeBehavior b;
    b.reply = "Ferry at noon, back at six.";
    b.first_piece_delay_ms = 2600;  // a silent prefill
    fake.SetBehavior(b);
    StartService();
    std::string body;
    ASSERT_EQ(StreamSummarize(port, {{"text", kTransportText}, {"stream", true}}, body), httplib::Error::Success);
    const size_t first_delta = body.find("event: delta");
    ASSERT_NE(first_delta, std::string::npos) << body;
    const std::string silence = body.substr(0, first_delta);
    size_t beats = 0;
    for (size_t at = silence.find(": heartbeat\n\n"); at != std::string::npos; at = silence.find(": heartbeat\n\n", at + 1)) {
        ++beats;
    }
    EXPECT_GE(beats, 1u) << body;
    EXPECT_LE(beats, 3u) << body;
    // Every SSE client skips them: the events are as without heartbeats.
    const auto events = ParseSse(body);
    EXPECT_EQ(events.front().first, "meta");
    EXPECT_EQ(events.back().first, "done");
    EXPECT_EQ(events.back().second["summary"], b.reply);
}

TEST_F(TransportTest, AStreamThatKeepsSendingGetsNoHeartbeat) {
    config.server.sse_heartbeat_s = 1;
    FakeBehavior b;
    b.reply = std::string(48, 'k');
    b.piece_chars = 4;
    b.piece_delay_ms = 200;  // 12 pieces over ~2.4 s, never 1 s apart
    fake.SetBehavior(b);
    StartService();
    std::string body;
    ASSERT_EQ(StreamSummarize(port, {{"text", kTransportText}, {"stream", true}}, body), httplib::Error::Success);
    EXPECT_EQ(body.find(": heartbeat"), std::string::npos) << body;
    EXPECT_NE(body.find("event: done"), std::string::npos);
}

TEST_F(TransportTest, ThePerAddressCapClosesThatAddresssOldestWaitingConnection) {
    config.server.max_connections_per_address = 3;
    StartService();
    std::vector<std::unique_ptr<RawClient>> crowd;
    for (int i = 0; i < 3; ++i) {
        crowd.push_back(std::make_unique<RawClient>(port, "127.0.0.5"));
        ASSERT_TRUE(crowd.back()->connected());
        ASSERT_TRUE(crowd.back()->Send("GET /he"));  // started, never finished
        std::this_thread::sleep_for(20ms);           // in order of age
    }
    RawClient other(port, "127.0.0.6");
    ASSERT_TRUE(other.Send("GET /he"));
    RawClient newest(port, "127.0.0.5");
    ASSERT_TRUE(newest.connected());
    EXPECT_TRUE(crowd[0]->WaitClosed(2000ms)) << "the oldest connection of the address makes room";
    EXPECT_TRUE(crowd[1]->StillOpen());
    EXPECT_TRUE(crowd[2]->StillOpen());
    EXPECT_TRUE(other.StillOpen()) << "another address is not concerned";
    ASSERT_TRUE(newest.Send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"));
    auto answer = newest.ReadResponse();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(MetricValue(Metrics(), "summarizer_http_connections_closed_total", "{reason=\"evicted\"}"), 1);
}

TEST_F(TransportTest, TheConnectionCapClosesTheOldestNotYetAnsweredFirst) {
    config.server.max_connections = 4;
    StartService();
    RawClient answered(port);  // completes a request, then idles as a keep-alive pool would
    ASSERT_TRUE(answered.Send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"));
    ASSERT_TRUE(answered.ReadResponse());
    RawClient waiting_old(port), waiting_new(port);
    ASSERT_TRUE(waiting_old.Send("GET /"));
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(waiting_new.Send("GET /"));
    std::this_thread::sleep_for(20ms);
    RawClient fourth(port);
    ASSERT_TRUE(fourth.connected());
    EXPECT_TRUE(waiting_old.StillOpen()) << "four connections fit";
    RawClient fifth(port);  // over the cap: the oldest that has not completed a request goes
    ASSERT_TRUE(fifth.connected());
    EXPECT_TRUE(waiting_old.WaitClosed(2000ms));
    EXPECT_TRUE(waiting_new.StillOpen());
    EXPECT_TRUE(fourth.StillOpen());
    EXPECT_TRUE(answered.StillOpen()) << "a connection that completed a request goes after those that did not";
    ASSERT_TRUE(fifth.Send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"));
    auto health = fifth.ReadResponse();
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
}

TEST_F(TransportTest, HeadersOverTheLimitAre431AndCounted) {
    config.server.max_header_bytes = 4096;
    StartService();
    RawClient client(port);
    ASSERT_TRUE(client.Send("GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + std::string(8000, 'b') + "\r\n\r\n"));
    auto answer = client.ReadResponse();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 431);
    EXPECT_EQ(json::parse(answer->body)["error"]["code"], "invalid_request");
    EXPECT_FALSE(answer->Header("x-request-id").empty());
    const std::string metrics = Metrics();
    EXPECT_EQ(MetricValue(metrics, "summarizer_http_requests_rejected_total"), 1) << metrics;
    EXPECT_GE(MetricValue(metrics, "summarizer_http_connections_open"), 1);
    EXPECT_GE(MetricValue(metrics, "summarizer_http_connections_accepted_total"), 2);
}

}  // namespace
}  // namespace summarizer::testing
