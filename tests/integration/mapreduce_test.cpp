// Map-reduce through the real service and client against the fake Ollama over HTTP: document
// order whatever finishes first, every chunk summary reaching the reduce, multi-level reduce,
// a transient chunk failure retried alone, a permanent one answered 502 naming the chunk and
// cancelling the calls in flight, a client going away mid-map (streamed or JSON), progress for
// every phase, Japanese input, and a 1.5M-char input whose every prompt fits its num_ctx.
#include <map>
#include <regex>
#include <set>

#include "eventually.hpp"
#include "raw_client.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Paragraphs of three sentences, each sentence starting with its own marker "[S<n>]": wherever the
// chunker cuts (between paragraphs or sentences), every prompt shows which text it carries, and the
// fake's default reply ("Summary: " + the first bytes of the chunk) names the chunk it summarized.
std::string MarkedText(int paragraphs, bool japanese = false) {
    static const char* en[] = {
        "The council met on Tuesday to discuss the budget for the new library and the repairs to the old bridge.",
        "Several residents asked why the bus timetable changed without notice, and the council promised a review.",
        "The engineers reported that the water pipes under the market square must be replaced within two years.",
        "A local school presented a plan to plant trees along the river, funded by a regional climate grant.",
    };
    static const char* ja[] = {
        "市議会は火曜日に会合を開き、新しい図書館の予算と古い橋の修繕について議論した。",
        "複数の住民が予告なくバスの時刻表が変わった理由を尋ね、議会は見直しを約束した。",
        "技術者は、市場広場の地下にある水道管を二年以内に交換しなければならないと報告した。",
        "地元の学校は、地域の気候助成金を使って川沿いに木を植える計画を発表した。",
    };
    const char* const* sentences = japanese ? ja : en;
    std::string out;
    int sentence = 0;
    for (int i = 0; i < paragraphs; ++i) {
        for (int k = 0; k < 3; ++k) {
            out += "[S" + std::to_string(sentence++) + "] " + sentences[(i + k) % 4] + " ";
        }
        out += "\n\n";
    }
    return out;
}

std::vector<int> MarkersIn(const std::string& text) {
    std::vector<int> markers;
    static const std::regex re("\\[S(\\d+)\\]");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
        markers.push_back(std::stoi((*it)[1]));
    }
    return markers;
}

bool IsMapPrompt(const RecordedRequest& r) {
    // Map prompts carry one chunk of the document; reduce prompts carry partial summaries.
    const std::string prompt = r.body.value("prompt", "");
    return prompt.find("Summary: [S") == std::string::npos;
}

// What RunWithLongSummaries saw.
struct LongSummariesRun {
    json doc;
    int maps = 0, reduces = 0, refused = 0;
};

class MapReduceTest : public ServiceTest {
protected:
    LongSummariesRun RunWithLongSummaries(double eval_count_scale);
    void SetUp() override {
        ServiceTest::SetUp();
        config.routing.hierarchical_chunk_max_chars = 1500;
        config.ollama.num_parallel = 3;
    }
    httplib::Result PostMapReduce(const std::string& text) {
        return PostJson({{"text", text}, {"strategy", "map_reduce"}});
    }
};

TEST_F(MapReduceTest, ChunkRetriedAloneAndDocumentOrderKeptWhenItFinishesLast) {
    FakeBehavior b;
    b.fail_status = 503;  // transient: the client retries after its backoff
    b.fail_message = "server busy, please try again.  maximum pending requests exceeded";
    b.fail_count = 1;
    fake.SetBehavior(b);
    config.ollama.retry_backoff_ms = 300;  // the others finish meanwhile
    // A call backing off holds the prefill gate (Ollama said it is busy: do not push more); without the
    // gate the other slots go on with the next chunks, so the retried chunk finishes last.
    config.scheduler.prefill_gate = false;
    StartService();
    auto res = PostMapReduce(MarkedText(40));
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const int chunks = json::parse(res->body)["chunks"];
    ASSERT_GE(chunks, 4);

    auto requests = fake.Requests();
    // Every chunk once, the failed one twice, then one final reduce: no succeeded chunk redone.
    ASSERT_EQ(static_cast<int>(requests.size()), chunks + 2);
    std::map<int, int> calls_per_chunk;                       // first marker of the chunk -> calls
    std::vector<std::pair<Clock::time_point, int>> finished;  // successful map calls
    for (size_t i = 0; i + 1 < requests.size(); ++i) {
        ASSERT_TRUE(IsMapPrompt(requests[i]));
        const int first = MarkersIn(requests[i].body["prompt"]).at(0);
        ++calls_per_chunk[first];
        if (i > 0) finished.emplace_back(requests[i].finished, first);  // the fake failed the first arrival
    }
    ASSERT_EQ(static_cast<int>(calls_per_chunk.size()), chunks);
    int retried = -1;
    for (const auto& [first, n] : calls_per_chunk) {
        if (n == 2)
            retried = first;
        else
            EXPECT_EQ(n, 1) << "chunk starting at [S" << first << "] was redone";
    }
    ASSERT_NE(retried, -1);
    // The retried chunk finished after chunks that come later in the document.
    std::sort(finished.begin(), finished.end());
    std::vector<int> finish_order;
    for (auto& [t, first] : finished) finish_order.push_back(first);
    ASSERT_FALSE(std::is_sorted(finish_order.begin(), finish_order.end()))
        << "the premise: out-of-order finish; retried [S" << retried << "], finish order "
        << ::testing::PrintToString(finish_order);

    // The final reduce lists the chunk summaries in document order, each exactly once.
    const std::string reduce_prompt = requests.back().body["prompt"];
    ASSERT_FALSE(IsMapPrompt(requests.back()));
    std::vector<int> in_reduce;
    static const std::regex summary_re("Summary: \\[S(\\d+)\\]");
    for (auto it = std::sregex_iterator(reduce_prompt.begin(), reduce_prompt.end(), summary_re);
         it != std::sregex_iterator(); ++it) {
        in_reduce.push_back(std::stoi((*it)[1]));
    }
    std::vector<int> expected;
    for (const auto& [first, n] : calls_per_chunk) expected.push_back(first);  // std::map: document order
    EXPECT_EQ(in_reduce, expected) << reduce_prompt;
}

// A 120K-char input in 1K-char chunks whose summaries are long (~375 tokens each by the fake's count,
// more than the service's estimate of this repetitive English): 120 of them cannot share one 16K
// reduce prompt. The fake reports eval_count x `eval_count_scale`. Counts the calls the fake saw:
// maps, merges and those it refused as over num_ctx.
LongSummariesRun MapReduceTest::RunWithLongSummaries(double eval_count_scale) {
    LongSummariesRun run;
    FakeBehavior b;
    while (b.reply.size() < 1500) b.reply += "The council agreed on the library budget and a review of the bus timetable. ";
    b.piece_chars = 64;
    b.eval_count_scale = eval_count_scale;
    fake.SetBehavior(b);
    config.routing.hierarchical_chunk_max_chars = 1000;
    config.ollama.num_parallel = 4;
    StartService();
    auto res = PostMapReduce(MarkedText(400));
    EXPECT_TRUE(res);
    if (!res) return run;
    EXPECT_EQ(res->status, 200) << res->body;
    run.doc = json::parse(res->body);
    for (const auto& r : fake.Requests()) {
        const std::string prompt = r.body["prompt"];
        const int64_t tokens = CountFakeTokens(r.body.value("system", "")) + CountFakeTokens(prompt);
        if (tokens > r.body["options"]["num_ctx"].get<int64_t>()) {
            // Refused before a token: nothing is cut silently.
            ++run.refused;
            EXPECT_EQ(r.pieces_sent, 0);
            EXPECT_TRUE(MarkersIn(prompt).empty()) << "a map prompt was too long";
            continue;
        }
        (MarkersIn(prompt).empty() ? run.reduces : run.maps)++;
    }
    return run;
}

TEST_F(MapReduceTest, MultiLevelReduceForAVeryLargeInput) {
    const auto run = RunWithLongSummaries(1.0);
    ASSERT_TRUE(run.doc.is_object());
    const int chunks = run.doc["chunks"];
    EXPECT_GE(chunks, 60);
    EXPECT_GE(run.doc["levels"].get<int>(), 2);
    // The merge prompts are sized with the partials' eval_count, so even where the estimate from
    // characters is low, none is over num_ctx.
    EXPECT_EQ(run.refused, 0);
    EXPECT_EQ(run.maps, chunks);
    EXPECT_GE(run.reduces, 3);  // at least two intermediate merges and the final one
    EXPECT_EQ(run.doc["usage"]["upstream_requests"].get<int>(), run.maps + run.reduces);
    EXPECT_EQ(run.doc["reason"].get<std::string>().find("merged again"), std::string::npos) << run.doc["reason"];
}

TEST_F(MapReduceTest, RefusedMergeIsMergedAgainInSmallerGroupsWithoutRedoingTheMap) {
    // Ollama reports half the tokens the partials take when read back: a merge sized with those
    // counts is over num_ctx, and Ollama refuses it ("truncate": false).
    const auto run = RunWithLongSummaries(0.5);
    ASSERT_TRUE(run.doc.is_object());
    EXPECT_GE(run.refused, 1) << "the premise of the next check: some merge prompt was refused";
    EXPECT_EQ(run.maps, run.doc["chunks"].get<int>()) << "a refused merge must not redo the map";
    EXPECT_NE(run.doc["reason"].get<std::string>().find("merged again in smaller groups"), std::string::npos)
        << run.doc["reason"];
    EXPECT_GE(run.doc["levels"].get<int>(), 2);
    // Calls cancelled while still queued in the scheduler (the siblings of a refused merge) count in
    // usage but never reach the fake.
    EXPECT_GE(run.doc["usage"]["upstream_requests"].get<int>(), run.maps + run.reduces + run.refused);
}

TEST_F(MapReduceTest, PermanentChunkFailureIs502NamingTheChunkAndCancelsTheCallsInFlight) {
    FakeBehavior slow;
    slow.first_piece_delay_ms = 300;  // prefill: with the gate, the second call arrives after this
    slow.piece_delay_ms = 50;
    slow.reply = std::string(400, 'x');  // 50 pieces: 2.5 s if nobody cancels
    fake.SetBehavior(slow);
    StartService();
    std::optional<httplib::Result> res;
    std::thread client([&] { res = PostMapReduce(MarkedText(40)); });
    // The first call is being served (past the fake's failure check, which reads the live behavior).
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() == 1; }));
    FakeBehavior broken = slow;
    broken.fail_status = 400;  // not transient: no retry
    broken.fail_message = "invalid option \"num_batch\"";
    fake.SetBehavior(broken);
    client.join();
    ASSERT_TRUE(res && *res);
    EXPECT_EQ((*res)->status, 502) << (*res)->body;
    auto doc = json::parse((*res)->body);
    EXPECT_EQ(doc["error"]["code"], "upstream_error");
    const std::string message = doc["error"]["message"];
    EXPECT_TRUE(std::regex_search(message, std::regex("chunk \\d+ of \\d+"))) << message;
    EXPECT_NE(message.find("invalid option"), std::string::npos) << message;
    // The first call was still streaming: the service closed it.
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }));
    EXPECT_GE(fake.ClientDisconnects(), 1);
    auto requests = fake.Requests();
    EXPECT_TRUE(requests.at(0).client_disconnected);
    EXPECT_LT(requests.at(0).pieces_sent, 50);
    // Nothing was started after the failure.
    const size_t seen = requests.size();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(fake.Requests().size(), seen);
}

TEST_F(MapReduceTest, ClientGoneDuringMapCancelsEveryOutstandingCall) {
    FakeBehavior slow;
    slow.piece_delay_ms = 40;
    slow.reply = std::string(400, 'y');  // 2 s per call if nobody cancels
    fake.SetBehavior(slow);
    StartService();
    std::string received;
    StreamSummarize(port, {{"text", MarkedText(40)}, {"strategy", "map_reduce"}, {"stream", true}}, received,
                    [&](const std::string&) {
                        // Leave once the map is in full swing: three calls streaming.
                        EXPECT_TRUE(Eventually([&] { return fake.ActiveCalls() >= 3; }));
                        return false;
                    });
    // Every call that reached the fake ends within a token's time, closed by the service.
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }, 3000ms));
    auto requests = fake.Requests();
    ASSERT_GE(requests.size(), 3u);
    for (const auto& r : requests) {
        EXPECT_TRUE(r.client_disconnected);
        EXPECT_LT(r.pieces_sent, 50);
    }
    EXPECT_EQ(fake.ClientDisconnects(), static_cast<int>(requests.size()));
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(fake.Requests().size(), requests.size()) << "no call may start after the client left";
}

// Issue #16: a JSON client that gives up (curl -m) cancels its map-reduce like a stream's client
// does. It leaves after ~1 s; the calls in flight are closed within a token's time (40 ms) and no
// call starts afterwards.
TEST_F(MapReduceTest, JsonClientGoneDuringMapCancelsEveryOutstandingCall) {
    FakeBehavior slow;
    slow.piece_delay_ms = 40;
    slow.reply = std::string(200, 'y');  // 25 pieces: 1 s per call if nobody cancels
    fake.SetBehavior(slow);
    config.ollama.num_parallel = 2;
    config.routing.hierarchical_chunk_max_chars = 1000;  // ~66 chunks: ~33 s of map calls
    StartService();
    const std::string body = json{{"text", MarkedText(200)}, {"strategy", "map_reduce"}}.dump();
    RawClient client(port);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.Send("POST /summarize HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() >= 2; }, 3000ms));
    std::this_thread::sleep_for(1s);
    const auto gone = Clock::now();
    client.Close();
    // Every call that reached the fake and had not finished is closed by the service within a
    // token's time (plus scheduling slack on a busy machine).
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }, 3000ms));
    const auto requests = fake.Requests();
    ASSERT_GE(requests.size(), 2u);
    int cut = 0;
    for (const auto& r : requests) {
        if (r.finished < gone) continue;  // finished before the client left
        ++cut;
        EXPECT_TRUE(r.client_disconnected) << "a call ran to its end after the client left";
        EXPECT_LT(r.pieces_sent, 25);
        EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(r.finished - gone).count(), 300)
            << "upstream call closed late";
    }
    EXPECT_GE(cut, 1);
    EXPECT_LT(requests.size(), 60u) << "the map must have been cut short";
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(fake.Requests().size(), requests.size()) << "no call may start after the client left";
    EXPECT_TRUE(Eventually([&] { return service->inflight() == 0; }, 2000ms)) << "the admission slot is freed";
    auto health = Http().Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
}

// Issue #16: a stream reports every phase (map, each merge level, the final merge), each from 0 to
// its total, with the time left, which ends at 0. Issue #14: the map-reduce is pipelined, so a merge
// level starts while the level below still runs: the phases' events interleave, a merge level's
// total grows as its groups close, and the phases start in order.
TEST_F(MapReduceTest, StreamReportsEveryPhaseWithTheTimeLeft) {
    FakeBehavior b;
    while (b.reply.size() < 1500) b.reply += "The council agreed on the library budget and a review of the bus timetable. ";
    b.piece_chars = 64;
    fake.SetBehavior(b);
    config.routing.hierarchical_chunk_max_chars = 1000;
    config.ollama.num_parallel = 4;
    StartService();
    std::string received;
    StreamSummarize(port, {{"text", MarkedText(400)}, {"strategy", "map_reduce"}, {"stream", true}}, received);
    const auto events = ParseSse(received);
    ASSERT_FALSE(events.empty());
    ASSERT_EQ(events.back().first, "done") << events.back().second;
    const int levels = events.back().second["levels"];
    ASSERT_GE(levels, 2);
    // (phase, level) in the order they started; per phase, its last (done, total).
    std::vector<std::pair<std::string, int>> phases;
    std::map<std::pair<std::string, int>, std::pair<int, int>> last;
    std::vector<int64_t> remaining;
    for (const auto& [event, data] : events) {
        if (event != "progress") continue;
        const std::pair<std::string, int> phase{data["phase"], data["level"]};
        const int done = data["done"], total = data["total"];
        auto seen = last.find(phase);
        if (seen == last.end()) {
            EXPECT_EQ(done, 0) << "a phase starts at 0: " << data;
            phases.push_back(phase);
        } else {
            EXPECT_GE(done, seen->second.first) << data;
            EXPECT_GE(total, seen->second.second) << data;
        }
        EXPECT_LE(done, total) << data;
        last[phase] = {done, total};
        remaining.push_back(data["remaining_ms"]);
        EXPECT_GE(remaining.back(), 0);
    }
    for (const auto& [phase, counts] : last) {
        EXPECT_EQ(counts.first, counts.second) << "phase " << phase.first << " " << phase.second << " left unfinished";
    }
    ASSERT_EQ(static_cast<int>(phases.size()), levels + 1) << "map, every merge level, the final merge";
    EXPECT_EQ(phases.front(), (std::pair<std::string, int>{"map", 0}));
    for (int level = 1; level < levels; ++level) {
        EXPECT_EQ(phases[static_cast<size_t>(level)], (std::pair<std::string, int>{"reduce", level}));
    }
    EXPECT_EQ(phases.back(), (std::pair<std::string, int>{"final", levels}));
    EXPECT_EQ(remaining.back(), 0);
    EXPECT_LT(remaining[remaining.size() - 2], remaining.front()) << "the final merge is less than the whole";
}

TEST_F(MapReduceTest, JapaneseInputIsChunkedAndSummarizedInJapanese) {
    StartService();
    auto res = PostMapReduce(MarkedText(60, true));
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    auto doc = json::parse(res->body);
    const int chunks = doc["chunks"];
    ASSERT_GE(chunks, 3);
    auto requests = fake.Requests();
    ASSERT_EQ(static_cast<int>(requests.size()), chunks + 1);
    std::set<int> covered;
    for (const auto& r : requests) {
        const std::string prompt = r.body["prompt"];
        EXPECT_NE(prompt.find("日本語で"), std::string::npos);
        for (int m : MarkersIn(prompt)) covered.insert(m);
        // Every chunk boundary falls between characters: the prompt is valid UTF-8 JSON.
        EXPECT_NO_THROW(json::parse(r.body.dump()));
    }
    EXPECT_EQ(covered.size(), 180u);  // every sentence reached a map call
}

// The design record's largest case through map-reduce against a fast fake: every prompt fits.
class MillionCharsTest : public ServiceTest, public ::testing::WithParamInterface<bool> {};

TEST_P(MillionCharsTest, OnePointFiveMillionCharsCompleteWithEveryPromptWithinNumCtx) {
    const bool japanese = GetParam();
    config.ollama.num_parallel = 4;
    StartService();
    // 1.5M chars: ~4,500 English paragraphs of ~330 chars, ~13,000 Japanese ones of ~115.
    const std::string text = MarkedText(japanese ? 13000 : 4500, japanese);
    auto res = PostJson({{"text", text}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body.substr(0, 500);
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "map_reduce");
    const int chunks = doc["chunks"];
    EXPECT_GE(chunks, japanese ? 50 : 40);
    auto requests = fake.Requests();
    // No call was refused and re-planned: one map call per chunk plus the reduce calls.
    EXPECT_EQ(static_cast<int>(requests.size()), doc["usage"]["upstream_requests"].get<int>());
    int maps = 0;
    for (const auto& r : requests) maps += !MarkersIn(r.body["prompt"]).empty() && IsMapPrompt(r);
    EXPECT_EQ(maps, chunks);
    for (const auto& r : requests) {
        const int64_t tokens = CountFakeTokens(r.body.value("system", "")) + CountFakeTokens(r.body["prompt"]);
        const int64_t num_ctx = r.body["options"]["num_ctx"];
        EXPECT_LE(tokens + r.body["options"]["num_predict"].get<int64_t>(), num_ctx)
            << "prompt of " << tokens << " tokens plus its output does not fit num_ctx " << num_ctx;
    }
}

INSTANTIATE_TEST_SUITE_P(EnglishAndJapanese, MillionCharsTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Japanese" : "English"; });

}  // namespace
}  // namespace summarizer::testing
