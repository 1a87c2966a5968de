// Admission counts work, not requests: map-reduce requests wait in a lane of their own, so a
// short request is admitted (its stream starts) while long ones run and wait; and a refused long
// request's Retry-After is computed from the work ahead of it, not from a request count.
#include <future>

#include "eventually.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string LongText() {
    std::string text;
    for (int i = 0; i < 120; ++i) {
        text += "Paragraph " + std::to_string(i) +
                ": the council discussed the budget for the new library, the repairs to the old bridge and the "
                "bus timetable that changed without notice.\n\n";
    }
    return text;
}

class WorkAdmissionTest : public ServiceTest {
protected:
    void SetUp() override {
        ServiceTest::SetUp();
        config.routing.hierarchical_chunk_max_chars = 2000;  // several map calls per long request
        FakeBehavior slow;
        slow.reply = std::string(200, 's');
        slow.piece_chars = 4;
        slow.piece_delay_ms = 10;  // ~0.5 s per call
        fake.SetBehavior(slow);
    }
    std::future<httplib::Result> StartLong() {
        return std::async(std::launch::async, [this] {
            return Http().Post("/summarize", json{{"text", LongText()}, {"strategy", "map_reduce"}}.dump(),
                               "application/json");
        });
    }
};

TEST_F(WorkAdmissionTest, AShortRequestStartsWhileTwoLongOnesRunAndWait) {
    // One slot: two short requests may run at once (server.max_inflight = 2 x slots), one long one.
    StartService();
    auto first = StartLong();
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    auto second = StartLong();
    ASSERT_TRUE(Eventually([&] { return service->queued() == 1; }, 5000ms)) << "the second long one waits";
    // A short streamed request: admitted at once, its meta event arrives before either long one ends.
    const auto start = Clock::now();
    std::string received;
    std::optional<Clock::duration> meta_after;
    StreamSummarize(port, {{"text", "A short note about the ferry timetable."}, {"stream", true}}, received,
                    [&](const std::string& so_far) {
                        if (!meta_after && so_far.find("event: meta") != std::string::npos) {
                            meta_after = Clock::now() - start;
                        }
                        return true;
                    });
    ASSERT_TRUE(meta_after.has_value()) << received;
    EXPECT_LT(*meta_after, 1s) << "the short request was admitted while the long ones held their lane";
    EXPECT_EQ(ParseSse(received).back().first, "done");
    EXPECT_EQ(first.wait_for(0s), std::future_status::timeout) << "the long one is still running";
    ASSERT_TRUE(first.get());
    auto second_result = second.get();
    ASSERT_TRUE(second_result);
    EXPECT_EQ(second_result->status, 200);
}

TEST_F(WorkAdmissionTest, RetryAfterOfARefusedLongRequestComesFromTheWorkAhead) {
    config.server.max_batch_queue = 0;  // no waiting: the second long request is refused at once
    StartService();
    auto first = StartLong();
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    auto refused =
        Http().Post("/summarize", json{{"text", LongText()}, {"strategy", "map_reduce"}}.dump(), "application/json");
    ASSERT_TRUE(refused);
    ASSERT_EQ(refused->status, 429) << refused->body;
    EXPECT_NE(refused->body.find("POST /jobs"), std::string::npos) << "it points to jobs";
    // ~8 map calls of up to 400 tokens at 60 tok/s, plus the merge: minutes of GPU time ahead, not
    // the 1-3 s a request count gives.
    const int retry_after = std::stoi(refused->get_header_value("Retry-After"));
    EXPECT_GE(retry_after, 30);
    // A short request is still admitted.
    auto short_one = PostJson({{"text", "A short note."}});
    ASSERT_TRUE(short_one);
    EXPECT_EQ(short_one->status, 200);
    ASSERT_TRUE(first.get());
}

}  // namespace
}  // namespace summarizer::testing
