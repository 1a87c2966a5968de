// The fake Ollama must speak Ollama's wire format before anything is tested against it: these tests talk to it
// with a plain httplib::Client, as the service would.
#include "fake_ollama.hpp"

#include "eventually.hpp"
#include "summarizer/ndjson.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <future>
#include <thread>

namespace {

namespace fake = summarizer::testing;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using fake::Eventually;

std::unique_ptr<httplib::Client> MakeClient(int port) {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_tcp_nodelay(true);
    client->set_read_timeout(5, 0);
    return client;
}

std::vector<json> Lines(const std::string& body) {
    std::vector<json> lines;
    summarizer::NdjsonReader reader;
    reader.Feed(body, [&](std::string_view line) {
        lines.push_back(json::parse(line, nullptr, false));
        return true;
    });
    if (!reader.pending().empty()) lines.push_back(json::parse(reader.pending(), nullptr, false));
    return lines;
}

// A streamed POST; `on_chunk` returning false cancels (the client closes the connection).
struct Streamed {
    httplib::Error error = httplib::Error::Unknown;
    int status = 0;
    std::string body;
};

Streamed PostStream(httplib::Client& client, const std::string& path, const json& body,
                    const std::function<bool(const std::string&)>& on_chunk = nullptr) {
    Streamed out;
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
        out.body.append(data, size);
        return on_chunk ? on_chunk(std::string(data, size)) : true;
    };
    auto res = client.send(req);
    out.error = res.error();
    if (res) out.status = res->status;
    return out;
}

json Generate(const std::string& model, const std::string& prompt) {
    return {{"model", model}, {"prompt", prompt}};
}

// Waits up to `timeout` for `done()`.

class FakeOllamaTest : public ::testing::Test {
protected:
    json PostJson(const std::string& path, const json& body, int expected_status = 200) {
        auto res = client->Post(path.c_str(), body.dump(), "application/json");
        EXPECT_TRUE(res);
        if (!res) return json();
        EXPECT_EQ(res->status, expected_status) << res->body;
        return json::parse(res->body, nullptr, false);
    }
    json GetJson(const std::string& path) {
        auto res = client->Get(path.c_str());
        EXPECT_TRUE(res && res->status == 200);
        return res ? json::parse(res->body, nullptr, false) : json();
    }

    fake::FakeOllama server;
    std::unique_ptr<httplib::Client> client = MakeClient(server.port());
};

TEST(CountFakeTokensTest, LatinFourCharsCjkOnePointSixRoundedUp) {
    EXPECT_EQ(fake::CountFakeTokens(""), 0);
    EXPECT_EQ(fake::CountFakeTokens("abcd"), 1);
    EXPECT_EQ(fake::CountFakeTokens("abcde"), 2);
    EXPECT_EQ(fake::CountFakeTokens("日本語"), 2);      // 3 / 1.6 = 1.875
    EXPECT_EQ(fake::CountFakeTokens("日本語です"), 4);  // 5 / 1.6 = 3.125
    EXPECT_EQ(fake::CountFakeTokens("ab日本"), 2);      // 0.5 + 1.25
    EXPECT_EQ(fake::CountFakeTokens("abcd", 2.0), 2);
    EXPECT_EQ(fake::CountFakeTokens(std::string(400, 'x')), 100);
}

TEST_F(FakeOllamaTest, GenerateStreamsNdjsonPiecesAndAFinalObjectWithTimingsInNanoseconds) {
    fake::FakeBehavior behavior;
    behavior.reply = "The quick brown fox jumps over the lazy dog.";  // 44 bytes: 11 tokens, 6 pieces
    server.SetBehavior(behavior);
    auto res = client->Post("/api/generate", Generate("gemma3-4b-16k", std::string(400, 'a')).dump(),
                            "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/x-ndjson");
    const auto lines = Lines(res->body);
    ASSERT_EQ(lines.size(), 7u) << res->body;
    std::string text;
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
        ASSERT_TRUE(lines[i].is_object()) << res->body;
        EXPECT_EQ(lines[i]["model"], "gemma3-4b-16k");
        EXPECT_FALSE(lines[i]["done"].get<bool>());
        EXPECT_LE(lines[i]["response"].get<std::string>().size(), 8u);
        EXPECT_EQ(lines[i]["created_at"].get<std::string>().back(), 'Z');
        text += lines[i]["response"].get<std::string>();
    }
    EXPECT_EQ(text, behavior.reply);
    const json& last = lines.back();
    EXPECT_TRUE(last["done"].get<bool>());
    EXPECT_EQ(last["done_reason"], "stop");
    EXPECT_EQ(last["response"], "");
    EXPECT_EQ(last["prompt_eval_count"], 100);
    EXPECT_EQ(last["prompt_eval_duration"], 33'333'333);  // 100 tokens at 3000 tok/s
    EXPECT_EQ(last["eval_count"], 11);
    EXPECT_EQ(last["eval_duration"], 183'333'333);        // 11 tokens at 60 tok/s
    EXPECT_EQ(last["load_duration"], 0);
    EXPECT_GE(last["total_duration"].get<int64_t>(), 33'333'333 + 183'333'333);
    EXPECT_EQ(last["context"].size(), 111u);

    const auto requests = server.Requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].path, "/api/generate");
    EXPECT_EQ(requests[0].body["prompt"], std::string(400, 'a'));
    EXPECT_EQ(requests[0].pieces_sent, 6);
    EXPECT_FALSE(requests[0].client_disconnected);
    EXPECT_LE(requests[0].received, requests[0].finished);
}

TEST_F(FakeOllamaTest, ChatStreamsMessageContentAndStreamFalseAnswersOneObject) {
    fake::FakeBehavior behavior;
    behavior.reply = "A short summary.";
    server.SetBehavior(behavior);
    const json messages = json::array({{{"role", "system"}, {"content", "Summarize."}},
                                       {{"role", "user"}, {"content", std::string(80, 'b')}}});
    auto res = client->Post("/api/chat", json{{"model", "gemma3-4b-16k"}, {"messages", messages}}.dump(),
                            "application/json");
    ASSERT_TRUE(res);
    const auto lines = Lines(res->body);
    ASSERT_EQ(lines.size(), 3u) << res->body;
    EXPECT_EQ(lines[0]["message"]["role"], "assistant");
    EXPECT_EQ(lines[0]["message"]["content"].get<std::string>() + lines[1]["message"]["content"].get<std::string>(),
              behavior.reply);
    EXPECT_TRUE(lines[2]["done"].get<bool>());
    EXPECT_EQ(lines[2]["prompt_eval_count"], 3 + 20);
    EXPECT_FALSE(lines[2].contains("context"));

    const json one = PostJson("/api/chat", {{"model", "gemma3-4b-16k"}, {"messages", messages}, {"stream", false}});
    EXPECT_EQ(one["message"]["content"], behavior.reply);
    EXPECT_TRUE(one["done"].get<bool>());
    EXPECT_EQ(one["done_reason"], "stop");
    EXPECT_EQ(one["eval_count"], 4);
    EXPECT_EQ(server.Requests().at(1).path, "/api/chat");
}

TEST_F(FakeOllamaTest, DefaultReplyQuotesTheLastDocumentCutOnACharacterBoundary) {
    const std::string second = "Second document: its text is long enough to be cut at sixty bytes, surely.";
    json reply = PostJson("/api/generate", {{"model", "gemma3-4b-16k"},
                                            {"prompt", "Summarize.\n<document>\nfirst</document>\n<document>\n" +
                                                           second + "</document>\nAgain: summarize."},
                                            {"stream", false}});
    EXPECT_EQ(reply["response"], "Summary: " + second.substr(0, 60));
    std::string cjk = "a";
    for (int i = 0; i < 40; ++i) cjk += "日";
    reply = PostJson("/api/generate",
                     {{"model", "gemma3-4b-16k"}, {"prompt", "<document>" + cjk + "</document>"}, {"stream", false}});
    EXPECT_EQ(reply["response"], "Summary: " + cjk.substr(0, 58));  // 1 + 19 x 3 bytes
}

TEST_F(FakeOllamaTest, UnknownOrMissingModelsAnswer404) {
    json error = PostJson("/api/generate", Generate("nope", "hi"), 404);
    EXPECT_EQ(error, json({{"error", "model 'nope' not found"}}));
    PostJson("/api/generate", Generate("gemma3-4b-16k:latest", "hi"));  // the implicit tag is fine

    fake::FakeBehavior behavior;
    behavior.missing_models = {"gemma3-4b-60k"};
    server.SetBehavior(behavior);
    error = PostJson("/api/chat", {{"model", "gemma3-4b-60k"}, {"messages", json::array()}}, 404);
    EXPECT_EQ(error["error"], "model 'gemma3-4b-60k' not found");
    EXPECT_EQ(PostJson("/api/show", {{"model", "gemma3-4b-60k"}}, 404)["error"], "model 'gemma3-4b-60k' not found");
    const json tags = GetJson("/api/tags");
    ASSERT_EQ(tags["models"].size(), 1u);
    EXPECT_EQ(tags["models"][0]["name"], "gemma3-4b-16k:latest");
}

TEST_F(FakeOllamaTest, MalformedBodiesAnswer400WithAnError) {
    auto res = client->Post("/api/generate", "{not json", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_TRUE(json::parse(res->body)["error"].is_string());
    EXPECT_EQ(PostJson("/api/generate", {{"prompt", "hi"}}, 400)["error"], "model is required");
    EXPECT_TRUE(PostJson("/api/generate", {{"model", "gemma3-4b-16k"}, {"prompt", 3}}, 400)["error"].is_string());
    EXPECT_TRUE(
        PostJson("/api/generate", {{"model", "gemma3-4b-16k"}, {"prompt", "x"}, {"keep_alive", "soon"}}, 400)["error"]
            .is_string());
    EXPECT_EQ(server.Requests().size(), 4u);
    EXPECT_EQ(server.Requests()[0].body, json("{not json"));
}

TEST_F(FakeOllamaTest, TruncateFalseRefusesAnOverLongPromptAndAnOldOllamaCutsSilently) {
    json request = {{"model", "gemma3-4b-16k"},
                    {"prompt", std::string(4000, 'a')},  // 1000 tokens
                    {"options", {{"num_ctx", 512}}},
                    {"stream", false},
                    {"truncate", false}};
    EXPECT_EQ(PostJson("/api/generate", request, 400),
              json({{"error", "the input length exceeds the context length"}}));
    request.erase("truncate");  // the default: a silent cut
    EXPECT_EQ(PostJson("/api/generate", request)["prompt_eval_count"], 512);
    request["options"]["num_ctx"] = 2048;
    request["truncate"] = false;
    EXPECT_EQ(PostJson("/api/generate", request)["prompt_eval_count"], 1000);

    fake::FakeBehavior behavior;
    behavior.ignore_truncate_flag = true;
    server.SetBehavior(behavior);
    request["options"].erase("num_ctx");
    request["prompt"] = std::string(80'000, 'a');  // 20000 tokens, over the model's 16384
    EXPECT_EQ(PostJson("/api/generate", request)["prompt_eval_count"], 16384);
    EXPECT_EQ(GetJson("/api/version")["version"], "0.12.3");
}

TEST_F(FakeOllamaTest, NumPredictEndsWithDoneReasonLength) {
    fake::FakeBehavior behavior;
    behavior.reply = std::string(80, 'r');  // 20 tokens
    server.SetBehavior(behavior);
    const json reply = PostJson("/api/generate", {{"model", "gemma3-4b-16k"},
                                                  {"prompt", "hi"},
                                                  {"options", {{"num_predict", 5}}},
                                                  {"stream", false}});
    EXPECT_EQ(reply["done_reason"], "length");
    EXPECT_EQ(reply["eval_count"], 5);
    EXPECT_EQ(reply["response"], std::string(20, 'r'));
}

TEST_F(FakeOllamaTest, EmptyPromptLoadsKeepAliveZeroUnloadsAndPsShowsTheRunner) {
    EXPECT_EQ(GetJson("/api/ps")["models"].size(), 0u);
    auto res = client->Post("/api/generate",
                            json{{"model", "gemma3-4b-60k"}, {"prompt", ""}, {"keep_alive", "15m"}}.dump(),
                            "application/json");
    ASSERT_TRUE(res);
    const json loaded = json::parse(res->body);  // one object, even though stream defaults to true
    EXPECT_TRUE(loaded["done"].get<bool>());
    EXPECT_EQ(loaded["done_reason"], "load");
    EXPECT_EQ(server.Loads(), 1);

    json ps = GetJson("/api/ps");
    ASSERT_EQ(ps["models"].size(), 1u);
    const json& model = ps["models"][0];
    EXPECT_EQ(model["name"], "gemma3-4b-60k:latest");
    EXPECT_EQ(model["model"], "gemma3-4b-60k:latest");
    EXPECT_EQ(model["context_length"], 61440);
    EXPECT_GT(model["size"].get<int64_t>(), 3'000'000'000);
    EXPECT_EQ(model["size_vram"], model["size"]);
    EXPECT_EQ(model["expires_at"].get<std::string>().back(), 'Z');

    const json unloaded = PostJson("/api/generate", {{"model", "gemma3-4b-60k"}, {"prompt", ""}, {"keep_alive", 0}});
    EXPECT_EQ(unloaded["done_reason"], "unload");
    EXPECT_EQ(GetJson("/api/ps")["models"].size(), 0u);

    // Chat loads with no messages; a short keep_alive expires.
    const json chat = PostJson("/api/chat", {{"model", "gemma3-4b-16k"}, {"messages", json::array()},
                                             {"keep_alive", "100ms"}});
    EXPECT_EQ(chat["done_reason"], "load");
    EXPECT_EQ(chat["message"]["role"], "assistant");
    EXPECT_EQ(GetJson("/api/ps")["models"].size(), 1u);
    EXPECT_TRUE(Eventually([&] { return GetJson("/api/ps")["models"].empty(); }, milliseconds(1000)));
}

TEST_F(FakeOllamaTest, FailStatusFailsTheFirstCallsThenSucceeds) {
    fake::FakeBehavior behavior;
    behavior.fail_status = 500;
    behavior.fail_count = 2;
    server.SetBehavior(behavior);
    EXPECT_EQ(PostJson("/api/generate", Generate("gemma3-4b-16k", "hi"), 500)["error"], behavior.fail_message);
    EXPECT_EQ(PostJson("/api/generate", Generate("gemma3-4b-16k", "hi"), 500)["error"], behavior.fail_message);
    PostJson("/api/generate", Generate("gemma3-4b-16k", "hi"), 200);
}

TEST_F(FakeOllamaTest, DropAfterPiecesClosesTheConnectionMidStream) {
    fake::FakeBehavior behavior;
    behavior.reply = "0123456789abcdef";
    behavior.piece_chars = 4;
    behavior.drop_after_pieces = 2;
    server.SetBehavior(behavior);
    const Streamed out = PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"));
    EXPECT_NE(out.error, httplib::Error::Success);
    const auto lines = Lines(out.body);
    ASSERT_EQ(lines.size(), 2u) << out.body;
    EXPECT_EQ(lines[1]["response"], "4567");
    EXPECT_FALSE(lines[1]["done"].get<bool>());
    ASSERT_TRUE(server.WaitForRequests(1, milliseconds(100)));
    EXPECT_TRUE(Eventually([&] { return server.ActiveCalls() == 0; }, milliseconds(500)));
    EXPECT_EQ(server.Requests()[0].pieces_sent, 2);
    EXPECT_FALSE(server.Requests()[0].client_disconnected);
    EXPECT_EQ(server.ClientDisconnects(), 0);
}

TEST_F(FakeOllamaTest, ErrorLineGarbageLineAndOmittedFinalEndTheStream) {
    fake::FakeBehavior behavior;
    behavior.reply = "0123456789abcdef";
    behavior.piece_chars = 4;
    behavior.error_line_after_pieces = 1;
    server.SetBehavior(behavior);
    auto lines = Lines(PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi")).body);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[1], json({{"error", behavior.fail_message}}));

    behavior.error_line_after_pieces = -1;
    behavior.garbage_after_pieces = 0;
    server.SetBehavior(behavior);
    const Streamed garbage = PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"));
    EXPECT_EQ(garbage.status, 200);
    lines = Lines(garbage.body);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_TRUE(lines[0].is_discarded());

    behavior.garbage_after_pieces = -1;
    behavior.omit_final = true;
    server.SetBehavior(behavior);
    lines = Lines(PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi")).body);
    ASSERT_EQ(lines.size(), 4u);
    for (const auto& line : lines) EXPECT_FALSE(line["done"].get<bool>());
}

TEST_F(FakeOllamaTest, ClientDisconnectMidStreamIsNoticedWithinMilliseconds) {
    fake::FakeBehavior behavior;
    behavior.reply = "0123456789abcdef";
    behavior.piece_chars = 4;
    behavior.piece_delay_ms = 5000;
    server.SetBehavior(behavior);
    const Streamed out =
        PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"), [](const std::string&) { return false; });
    EXPECT_EQ(out.error, httplib::Error::Canceled);
    const auto cancelled = Clock::now();
    ASSERT_TRUE(Eventually([&] { return server.ClientDisconnects() == 1; }, milliseconds(100)));
    EXPECT_LT(Clock::now() - cancelled, milliseconds(100));
    const auto requests = server.Requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_TRUE(requests[0].client_disconnected);
    EXPECT_EQ(requests[0].pieces_sent, 1);
    EXPECT_EQ(server.ActiveCalls(), 0);
}

TEST_F(FakeOllamaTest, ClientTimeoutDuringPrefillIsNoticed) {
    fake::FakeBehavior behavior;
    behavior.first_piece_delay_ms = 5000;
    server.SetBehavior(behavior);
    client->set_read_timeout(0, 100'000);
    const Streamed out = PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"));
    EXPECT_EQ(out.error, httplib::Error::Read);
    EXPECT_TRUE(Eventually([&] { return server.ClientDisconnects() == 1; }, milliseconds(100)));
    EXPECT_EQ(server.Requests().at(0).pieces_sent, 0);
}

TEST_F(FakeOllamaTest, HeadersDelayStallsTheAnswer) {
    fake::FakeBehavior behavior;
    behavior.headers_delay_ms = 150;
    server.SetBehavior(behavior);
    const auto start = Clock::now();
    PostJson("/api/generate", Generate("gemma3-4b-16k", "hi"));
    EXPECT_GE(Clock::now() - start, milliseconds(150));
}

TEST_F(FakeOllamaTest, StopRefusesConnectionsAndRestartServesOnTheSamePort) {
    ASSERT_TRUE(client->Get("/"));  // leaves an idle keep-alive connection open
    fake::FakeBehavior behavior;
    behavior.piece_delay_ms = 5000;
    server.SetBehavior(behavior);
    std::promise<void> first_piece;
    auto stream = std::async(std::launch::async, [&] {
        auto other = MakeClient(server.port());
        bool first = true;
        return PostStream(*other, "/api/generate", Generate("gemma3-4b-16k", "hi"), [&](const std::string&) {
            if (std::exchange(first, false)) first_piece.set_value();
            return true;
        });
    });
    ASSERT_EQ(first_piece.get_future().wait_for(milliseconds(1000)), std::future_status::ready);
    const int port = server.port();
    const auto start = Clock::now();
    server.Stop();
    EXPECT_LT(Clock::now() - start, milliseconds(500));
    EXPECT_NE(stream.get().error, httplib::Error::Success);
    EXPECT_EQ(server.ClientDisconnects(), 0);  // the server went away, not the client

    auto refused = MakeClient(port)->Get("/");
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.error(), httplib::Error::Connection);

    server.Restart();
    EXPECT_EQ(server.port(), port);
    auto res = MakeClient(port)->Get("/");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body, "Ollama is running");
}

TEST_F(FakeOllamaTest, TagsShowVersionAndRoot) {
    const json tags = GetJson("/api/tags");
    ASSERT_EQ(tags["models"].size(), 2u);
    EXPECT_EQ(tags["models"][1]["name"], "gemma3-4b-60k:latest");
    EXPECT_GT(tags["models"][0]["size"].get<int64_t>(), 0);
    EXPECT_EQ(tags["models"][0]["details"]["family"], "gemma3");

    const json show = PostJson("/api/show", {{"model", "gemma3-4b-60k"}});
    const std::string parameters = show["parameters"];
    EXPECT_EQ(parameters.rfind("num_ctx ", 0), 0u) << parameters;
    EXPECT_NE(parameters.find(" 61440\n"), std::string::npos) << parameters;
    EXPECT_EQ(show["details"]["quantization_level"], "Q4_K_M");
    EXPECT_EQ(show["model_info"]["general.architecture"], "gemma3");
    EXPECT_EQ(PostJson("/api/show", {{"model", "nope"}}, 404)["error"], "model 'nope' not found");

    EXPECT_EQ(GetJson("/api/version")["version"], "0.12.6");
    auto root = client->Get("/");
    ASSERT_TRUE(root);
    EXPECT_EQ(root->body, "Ollama is running");

    server.SetModels({{"tiny", 2048}});
    EXPECT_EQ(GetJson("/api/tags")["models"][0]["name"], "tiny:latest");
    json request = Generate("tiny", std::string(10'000, 'a'));
    request["stream"] = false;
    EXPECT_EQ(PostJson("/api/generate", request)["prompt_eval_count"], 2048);
}

TEST_F(FakeOllamaTest, ConcurrentStreamsAreServedAtOnceWithoutAGpuModel) {
    fake::FakeBehavior behavior;
    behavior.first_piece_delay_ms = 100;
    server.SetBehavior(behavior);
    std::vector<std::future<Streamed>> calls;
    for (int i = 0; i < 4; ++i) {
        calls.push_back(std::async(std::launch::async, [&] {
            auto own = MakeClient(server.port());
            return PostStream(*own, "/api/generate", Generate("gemma3-4b-16k", "hi"));
        }));
    }
    for (auto& call : calls) EXPECT_EQ(call.get().status, 200);
    EXPECT_EQ(server.MaxConcurrency(), 4);
}

// --- The GPU model ---

fake::FakeGpuModel FastGpu() {
    fake::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.time_scale = 50;   // 1 simulated second = 20 ms
    gpu.load_ms = 2000;
    gpu.output_tokens = 60;
    return gpu;
}

json Final(const Streamed& out) {
    const auto lines = Lines(out.body);
    return lines.empty() ? json() : lines.back();
}

std::vector<json> Concurrently(int port, const std::vector<json>& requests) {
    std::vector<std::future<Streamed>> calls;
    for (const auto& request : requests) {
        calls.push_back(std::async(std::launch::async, [port, request] {
            auto own = MakeClient(port);
            return PostStream(*own, "/api/generate", request);
        }));
    }
    std::vector<json> finals;
    for (auto& call : calls) finals.push_back(Final(call.get()));
    return finals;
}

TEST_F(FakeOllamaTest, GpuSlotsServeTwoCallsAndQueueTheThird) {
    fake::FakeGpuModel gpu = FastGpu();
    gpu.slots = 2;
    // 1 simulated second = 100 ms: the third call's thread starting late by d shortens its wait by
    // d x time_scale (at 50x, ~10 ms late on a busy machine took 0.48 s off the second asserted below).
    gpu.time_scale = 10;
    server.SetGpuModel(gpu);
    const json request = Generate("gemma3-4b-16k", std::string(1200, 'a'));
    const auto finals = Concurrently(server.port(), {request, request, request});
    EXPECT_EQ(server.MaxConcurrency(), 2);
    EXPECT_EQ(server.Loads(), 1);
    EXPECT_EQ(server.Reloads(), 0);
    int64_t shortest = INT64_MAX, longest = 0;
    for (const auto& final : finals) {
        ASSERT_TRUE(final["done"].get<bool>());
        EXPECT_EQ(final["eval_count"], 60);
        shortest = std::min(shortest, final["total_duration"].get<int64_t>());
        longest = std::max(longest, final["total_duration"].get<int64_t>());
    }
    // Two run at once (load 2 s + decode ~1 s), the third waits for a slot: about a second more.
    EXPECT_GT(shortest, 2'900'000'000);
    EXPECT_GT(longest - shortest, 600'000'000);
}

TEST_F(FakeOllamaTest, GpuPrefillIsSharedByConcurrentCalls) {
    fake::FakeGpuModel gpu = FastGpu();
    gpu.slots = 2;
    gpu.load_ms = 5000;        // both calls wait for the load, then prefill together
    gpu.output_tokens = 1;
    server.SetGpuModel(gpu);
    const json request = Generate("gemma3-4b-16k", std::string(24'000, 'a'));  // 6000 tokens: 2 s alone
    for (const auto& final : Concurrently(server.port(), {request, request})) {
        EXPECT_EQ(final["prompt_eval_count"], 6000);
        EXPECT_GT(final["prompt_eval_duration"].get<int64_t>(), 3'200'000'000);
        EXPECT_GT(final["load_duration"].get<int64_t>(), 3'000'000'000);
    }
    const json alone = Concurrently(server.port(), {request})[0];
    EXPECT_NEAR(alone["prompt_eval_duration"].get<double>(), 2e9, 0.3e9);
    EXPECT_LT(alone["load_duration"].get<int64_t>(), 100'000'000);  // already loaded
}

TEST_F(FakeOllamaTest, GpuReloadsWhenTheSharedRunnerNeedsAnotherNumCtx) {
    server.SetGpuModel(FastGpu());
    const json small = Final(PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi")));
    EXPECT_NEAR(small["load_duration"].get<double>(), 2e9, 0.2e9);
    const json large = Final(PostStream(*client, "/api/generate", Generate("gemma3-4b-60k", "hi")));
    EXPECT_NEAR(large["load_duration"].get<double>(), 2e9, 0.2e9);
    EXPECT_EQ(server.Loads(), 2);
    EXPECT_EQ(server.Reloads(), 1);
    json ps = GetJson("/api/ps");
    ASSERT_EQ(ps["models"].size(), 1u);
    EXPECT_EQ(ps["models"][0]["name"], "gemma3-4b-60k:latest");
    EXPECT_EQ(ps["models"][0]["context_length"], 61440);

    // Same model, another num_ctx in the options: a reload too.
    json request = Generate("gemma3-4b-60k", "hi");
    request["options"] = {{"num_ctx", 32768}};
    PostStream(*client, "/api/generate", request);
    EXPECT_EQ(server.Reloads(), 2);
    PostStream(*client, "/api/generate", request);
    EXPECT_EQ(server.Loads(), 3);

    // One runner per model: both stay loaded.
    fake::FakeGpuModel gpu = FastGpu();
    gpu.one_runner_per_file = false;
    server.SetGpuModel(gpu);
    PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"));
    PostStream(*client, "/api/generate", Generate("gemma3-4b-60k", "hi"));
    EXPECT_EQ(server.Loads(), 5);
    EXPECT_EQ(server.Reloads(), 2);
}

TEST_F(FakeOllamaTest, GpuSpillShowsInPsAndSlowsDecoding) {
    fake::FakeGpuModel gpu = FastGpu();
    gpu.slots = 4;  // 60K x 4 slots of KV does not fit 8 GiB
    gpu.load_ms = 0;
    gpu.output_tokens = 30;
    server.SetGpuModel(gpu);
    const json fits = Final(PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi")));
    json ps = GetJson("/api/ps");
    ASSERT_EQ(ps["models"].size(), 1u);
    EXPECT_EQ(ps["models"][0]["size_vram"], ps["models"][0]["size"]);

    const json spills = Final(PostStream(*client, "/api/generate", Generate("gemma3-4b-60k", "hi")));
    ps = GetJson("/api/ps");
    ASSERT_EQ(ps["models"].size(), 1u);
    EXPECT_LT(ps["models"][0]["size_vram"].get<int64_t>(), ps["models"][0]["size"].get<int64_t>());
    EXPECT_GT(spills["eval_duration"].get<double>(), 4 * fits["eval_duration"].get<double>());
}

TEST_F(FakeOllamaTest, GpuQueuedCallWhoseClientLeavesIsNoticed) {
    fake::FakeGpuModel gpu = FastGpu();
    gpu.time_scale = 1;
    gpu.load_ms = 0;
    gpu.output_tokens = 1000;  // ~17 s: holds the only slot
    server.SetGpuModel(gpu);
    auto busy = std::async(std::launch::async, [&] {
        // Gives up after 2 s of silence (its decode takes ~17 s), long after the checks below: a
        // shorter wait left ~100 ms between them and the slot's release, too little on a loaded CI.
        auto own = MakeClient(server.port());
        own->set_read_timeout(2, 0);
        return PostStream(*own, "/api/generate", Generate("gemma3-4b-16k", "hi"));
    });
    ASSERT_TRUE(server.WaitForRequests(1, milliseconds(1000)));
    client->set_read_timeout(0, 100'000);
    PostStream(*client, "/api/generate", Generate("gemma3-4b-16k", "hi"));  // queued, then gives up
    EXPECT_TRUE(Eventually([&] { return server.ClientDisconnects() == 1; }, milliseconds(100)));
    EXPECT_EQ(server.ActiveCalls(), 1);
    busy.get();
    EXPECT_TRUE(Eventually([&] { return server.ClientDisconnects() == 2; }, milliseconds(300)));
    EXPECT_EQ(server.MaxConcurrency(), 1);
}

}  // namespace
