// The summarizer binary as a user runs it: config errors exit 2, summarize/plan work offline
// from a server, serve answers on its port.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "fake_ollama.hpp"
#include "serve_process.hpp"
#include "temp_file.hpp"

namespace summarizer::testing {
namespace {

struct Outcome {
    int exit_code = -1;
    std::string out;  // stdout and stderr together
};

Outcome Execute(const std::string& command) {
    Outcome run;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return run;
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
    int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

std::string TempFile(const std::string& name, const std::string& content) {
    return testing::WriteTempFile("summarizer_cli", name, content);
}

const std::string kBinary = SUMMARIZER_BINARY;


// The settings, with their environment variables, are listed once: `summarizer config --list`.
// Help texts point there instead of repeating them.
TEST(Cli, HelpDocumentsEveryEnvironmentVariable) {
    Outcome run = Execute(kBinary + " config --list");
    EXPECT_EQ(run.exit_code, 0);
    for (const char* env : {"OLLAMA_HOST", "OLLAMA_NUM_PARALLEL", "SUMMARIZER_PORT", "SUMMARIZER_API_KEY",
                            "HIERARCHICAL_THRESHOLD_CHARS", "HIERARCHICAL_CHUNK_MAX_CHARS", "SUMMARIZER_MAX_INFLIGHT"}) {
        EXPECT_NE(run.out.find(env), std::string::npos) << env;
    }
    Outcome serve = Execute(kBinary + " serve --help");
    EXPECT_NE(serve.out.find("--ollama-url"), std::string::npos);
    EXPECT_NE(serve.out.find("summarizer config --list"), std::string::npos) << serve.out;
    EXPECT_EQ(serve.out.find("HIERARCHICAL_CHUNK_MAX_CHARS"), std::string::npos) << "help repeats the settings";
    EXPECT_LT(std::count(serve.out.begin(), serve.out.end(), '\n'), 40) << serve.out;
    Outcome version = Execute(kBinary + " --version");
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_NE(version.out.find("summarizer 0."), std::string::npos) << version.out;
    EXPECT_NE(serve.out.find("--port"), std::string::npos);
}

TEST(Cli, BadConfigurationExitsWithCode2NamingTheKeyAndSource) {
    Outcome env = Execute("HIERARCHICAL_THRESHOLD_CHARS=-3 " + kBinary + " config");
    EXPECT_EQ(env.exit_code, 2);
    EXPECT_NE(env.out.find("routing.hierarchical_threshold_chars"), std::string::npos) << env.out;
    EXPECT_NE(env.out.find("env HIERARCHICAL_THRESHOLD_CHARS"), std::string::npos) << env.out;

    std::string file = TempFile("bad.json", R"({"buckets": {"60k": {"keep_alive": "a while"}}})");
    Outcome bad_file = Execute(kBinary + " serve --config " + file);
    EXPECT_EQ(bad_file.exit_code, 2);
    EXPECT_NE(bad_file.out.find("buckets.60k.keep_alive"), std::string::npos) << bad_file.out;
    EXPECT_NE(bad_file.out.find(file), std::string::npos) << bad_file.out;

    std::string malformed = TempFile("malformed.json", "{ nope");
    Outcome m = Execute(kBinary + " config --config " + malformed);
    EXPECT_EQ(m.exit_code, 2);
    EXPECT_NE(m.out.find("malformed JSON"), std::string::npos) << m.out;

    Outcome unknown = Execute(kBinary + " config --set server.colour=blue");
    EXPECT_EQ(unknown.exit_code, 2);
}

TEST(Cli, ConfigShowsPrecedence) {
    std::string file = TempFile("ok.json", R"({"server": {"port": 9100}, "ollama": {"num_parallel": 3}})");
    Outcome run = Execute("OLLAMA_NUM_PARALLEL=2 " + kBinary + " config --config " + file + " --port 9200");
    ASSERT_EQ(run.exit_code, 0) << run.out;
    auto doc = nlohmann::json::parse(run.out);
    EXPECT_EQ(doc["server"]["port"], 9200);
    EXPECT_EQ(doc["ollama"]["num_parallel"], 2);
}

TEST(Cli, SummarizeAndPlanAgainstTheFake) {
    FakeOllama fake;
    FakeBehavior b;
    b.reply = "A short summary from the fake.";
    fake.SetBehavior(b);
    std::string file = TempFile("input.txt", "The harbour authority announced a new ferry timetable. Boats will leave "
                                             "every twenty minutes from May onwards.");
    Outcome run = Execute(kBinary + " summarize --ollama-url " + fake.url() + " " + file);
    ASSERT_EQ(run.exit_code, 0) << run.out;
    EXPECT_NE(run.out.find("A short summary from the fake."), std::string::npos) << run.out;

    Outcome json = Execute(kBinary + " summarize --json -q --ollama-url " + fake.url() + " - < " + file);
    ASSERT_EQ(json.exit_code, 0) << json.out;
    auto doc = nlohmann::json::parse(json.out);
    EXPECT_EQ(doc["summary"], "A short summary from the fake.");
    EXPECT_EQ(doc["route"], "16k");

    Outcome plan = Execute(kBinary + " plan " + file);
    ASSERT_EQ(plan.exit_code, 0) << plan.out;
    auto p = nlohmann::json::parse(plan.out);
    EXPECT_EQ(p["route"], "16k");
    EXPECT_EQ(p["num_ctx"], 16384);
    EXPECT_FALSE(p["reason"].get<std::string>().empty());

    Outcome blank = Execute(kBinary + " summarize " + TempFile("blank.txt", "  \n "));
    EXPECT_EQ(blank.exit_code, 1);
    EXPECT_NE(blank.out.find("empty"), std::string::npos);

    fake.Stop();
    // As the server does: Ollama unreachable -> the extractive fallback, marked degraded.
    Outcome down = Execute(kBinary + " summarize --ollama-url " + fake.url() + " " + file);
    EXPECT_EQ(down.exit_code, 0) << down.out;
    EXPECT_NE(down.out.find("route extractive"), std::string::npos) << down.out;
    EXPECT_NE(down.out.find("degraded"), std::string::npos) << down.out;
    Outcome refused = Execute(kBinary + " summarize --set degraded.extractive_fallback=false --ollama-url " + fake.url() +
                              " " + file);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.out.find("upstream_unavailable"), std::string::npos) << refused.out;
}

// `summarize` writes each piece to the terminal as it arrives, not the whole summary at the end.
TEST(Cli, SummarizeStreamsPiecesAsTheyArrive) {
    FakeOllama fake;
    FakeBehavior b;
    b.reply = "One. Two. Three. Four. Five. Six. Seven. Eight.";  // 8 pieces of 6 bytes
    b.piece_chars = 6;
    b.piece_delay_ms = 150;
    fake.SetBehavior(b);
    std::string file = TempFile("stream.txt", "A text about numbers, to be summarized slowly.");
    FILE* pipe = popen((kBinary + " summarize -q --ollama-url " + fake.url() + " " + file + " 2>/dev/null").c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    std::string out;
    std::vector<std::pair<double, size_t>> reads;  // (seconds since start, bytes so far)
    char buffer[256];
    ssize_t n = 0;
    while ((n = read(fileno(pipe), buffer, sizeof buffer)) > 0) {
        out.append(buffer, static_cast<size_t>(n));
        reads.emplace_back(std::chrono::duration<double>(Clock::now() - start).count(), out.size());
    }
    const double end_s = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(WEXITSTATUS(pclose(pipe)), 0);
    EXPECT_EQ(out, b.reply + "\n");
    ASSERT_FALSE(reads.empty());
    // The first piece was on the terminal while the other seven (>= 1 s of generation) were still coming.
    EXPECT_LT(reads.front().second, out.size()) << "everything came in one write";
    EXPECT_GE(end_s - reads.front().first, 0.6) << "the first piece arrived only " << end_s - reads.front().first
                                                 << " s before the end";
    EXPECT_GE(reads.size(), 4u) << "the summary arrived in " << reads.size() << " reads";
}

// `summarize --json` prints the full response object (as the API's), and nothing else on stdout.
TEST(Cli, SummarizeJsonPrintsTheWholeResponseObject) {
    FakeOllama fake;
    FakeBehavior b;
    b.reply = "The ferry leaves every twenty minutes.";
    fake.SetBehavior(b);
    std::string file = TempFile("json.txt", "The harbour authority announced a new ferry timetable.");
    Outcome run = Execute(kBinary + " summarize --json --ollama-url " + fake.url() + " " + file + " 2>/dev/null");
    ASSERT_EQ(run.exit_code, 0) << run.out;
    auto doc = nlohmann::json::parse(run.out);  // throws if anything but the object is on stdout
    EXPECT_EQ(doc["summary"], b.reply);
    EXPECT_EQ(doc["route"], "16k");
    EXPECT_EQ(doc["model"], "gemma3-4b-16k");
    EXPECT_EQ(doc["chunks"], 1);
    EXPECT_EQ(doc["levels"], 0);
    EXPECT_GT(doc["usage"]["prompt_tokens"].get<int>(), 0);
    EXPECT_GT(doc["usage"]["completion_tokens"].get<int>(), 0);
    EXPECT_EQ(doc["usage"]["upstream_requests"], 1);
    for (const char* key : {"total_ms", "queue_ms", "ttft_ms", "load_ms", "prefill_tokens_per_s", "decode_tokens_per_s"}) {
        EXPECT_TRUE(doc["timings"].contains(key) && doc["timings"][key].is_number()) << key;
    }
    EXPECT_TRUE(doc.contains("request_id"));
}

TEST(Cli, ServeAnswersAndStopsOnSigterm) {
    FakeOllama fake;
    ServeProcess serve(fake.url(), {}, {}, "cli_serve");
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    httplib::Client client = serve.Client();
    auto ready = client.Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;
    auto res = client.Post("/summarize", R"({"text": "Hello there, this is a test."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    serve.Signal(SIGTERM);
    EXPECT_NE(serve.WaitExit(std::chrono::seconds(5)), -1) << "serve did not exit on SIGTERM:\n" << serve.Log();
}

// The pool's short form as ops scripts use it: `--upstream NAME=KIND@URL` (repeatable) on
// `summarize`, `SUMMARIZER_UPSTREAMS` on `serve`; a bad item stops start-up naming the key.
TEST(Cli, SummarizeAndServeTakeThePoolsShortForm) {
    FakeOllama ollama;
    FakeBehavior b;
    b.reply = "Summary from the Ollama host.";
    ollama.SetBehavior(b);
    FakeOllama vllm;
    vllm.SetApi(FakeApi::kVllm);
    vllm.SetModels({{"google/gemma-3-4b-it", 32768}});
    // Only the Ollama host serves 16k: the short text's call goes there.
    const std::string pool = " --upstream gpu1=ollama@" + ollama.url() + " --upstream vllm=openai@" + vllm.url();
    std::string file = TempFile("pool.txt", "The harbour authority announced a new ferry timetable.");
    // The JSON alone (stdout): the pool logs what each engine stated on stderr.
    Outcome run = Execute("(" + kBinary + " summarize --json -q" + pool +
                          " --set upstreams.gpu1.buckets=16k --set upstreams.vllm.buckets=60k " + file + " 2>/dev/null)");
    ASSERT_EQ(run.exit_code, 0) << run.out;
    auto doc = nlohmann::json::parse(run.out);
    EXPECT_EQ(doc["route"], "16k");
    EXPECT_EQ(doc["summary"], "Summary from the Ollama host.");
    EXPECT_EQ(ollama.Requests().size(), 1u);
    EXPECT_EQ(vllm.Requests().size(), 0u);
    // Now only the vLLM host serves 16k: the same call goes there, asking for the model it serves.
    Outcome swapped = Execute("(" + kBinary + " summarize --json -q" + pool +
                              " --set upstreams.gpu1.buckets=60k --set upstreams.vllm.buckets=16k " + file +
                              " 2>/dev/null)");
    ASSERT_EQ(swapped.exit_code, 0) << swapped.out;
    EXPECT_EQ(nlohmann::json::parse(swapped.out)["route"], "16k");
    EXPECT_EQ(ollama.Requests().size(), 1u);
    ASSERT_EQ(vllm.Requests().size(), 1u);
    EXPECT_EQ(vllm.Requests()[0].path, "/v1/chat/completions");
    EXPECT_EQ(vllm.Requests()[0].body["model"], "google/gemma-3-4b-it");

    ServeProcess serve(ServeOptions{ollama.url(),
                                    {"SUMMARIZER_UPSTREAMS=gpu1=ollama@" + ollama.url() + " vllm=openai@" + vllm.url()},
                                    {},
                                    "cli_serve_pool"});
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    auto status = serve.Client().Get("/status");
    ASSERT_TRUE(status);
    auto st = nlohmann::json::parse(status->body);
    ASSERT_EQ(st["upstreams"].size(), 2u) << status->body;
    EXPECT_EQ(st["upstreams"][0]["name"], "gpu1");
    EXPECT_EQ(st["upstreams"][0]["kind"], "ollama");
    EXPECT_EQ(st["upstreams"][1]["name"], "vllm");
    EXPECT_EQ(st["upstreams"][1]["engine"], "vllm");
    EXPECT_EQ(st["upstreams"][1]["context_tokens"], 32768);

    Outcome twice = Execute("SUMMARIZER_UPSTREAMS='a=ollama@http://h:1 a=ollama@http://h:2' " + kBinary + " config");
    EXPECT_EQ(twice.exit_code, 2);
    EXPECT_NE(twice.out.find("the name a is given twice (env SUMMARIZER_UPSTREAMS)"), std::string::npos) << twice.out;
    Outcome scheme = Execute(kBinary + " summarize --upstream v=openai@ftp://a:21 " + file);
    EXPECT_EQ(scheme.exit_code, 2);
    EXPECT_NE(scheme.out.find("upstreams.v.url = ftp://a:21 (flag --upstream)"), std::string::npos) << scheme.out;
    Outcome unserved = Execute(kBinary + " config --upstream a=ollama@http://h:1 --set upstreams.a.buckets=16k");
    EXPECT_EQ(unserved.exit_code, 2);
    EXPECT_NE(unserved.out.find("no upstream serves bucket 60k"), std::string::npos) << unserved.out;
}

}  // namespace
}  // namespace summarizer::testing

namespace summarizer::testing {
namespace {

// The model, prompt and options of every call a fake received, in a stable order (map calls run
// in parallel and arrive in any order).
std::vector<nlohmann::json> CallsOf(const FakeOllama& fake) {
    std::vector<nlohmann::json> calls;
    for (const auto& r : fake.Requests()) {
        calls.push_back({{"model", r.body["model"]}, {"prompt", r.body["prompt"]}, {"system", r.body.value("system", "")},
                         {"options", r.body["options"]}, {"keep_alive", r.body["keep_alive"]}});
    }
    std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.dump() < b.dump(); });
    return calls;
}

// `summarizer summarize` goes through the same Service as `summarizer serve`: the same text gets
// the same route, reason and upstream calls either way.
TEST(Cli, SummarizeRoutesAndCallsExactlyAsTheServerDoes) {
    std::string text;
    for (int i = 0; i < 60; ++i) {
        text += "Paragraph " + std::to_string(i) + ": the harbour authority announced a new ferry timetable, and boats "
                "will leave every twenty minutes from May onwards, the council said on Tuesday.\n\n";
    }
    const std::string file = TempFile("parity.txt", text);
    for (const std::string strategy : {"auto", "map_reduce"}) {
        FakeOllama cli_fake;
        Outcome cli = Execute(kBinary + " summarize --json -q --strategy " + strategy +
                              " --set routing.hierarchical_chunk_max_chars=3000 --ollama-url " + cli_fake.url() + " " +
                              file + " 2>/dev/null");
        ASSERT_EQ(cli.exit_code, 0) << cli.out;
        const auto cli_doc = nlohmann::json::parse(cli.out);

        FakeOllama server_fake;
        ServeProcess serve(server_fake.url(), {},
                           {"--set", "routing.hierarchical_chunk_max_chars=3000", "--set", "vram.preload_hot_bucket=false"},
                           "parity");
        ASSERT_TRUE(serve.WaitUp());
        httplib::Client client("127.0.0.1", serve.port());
        client.set_read_timeout(std::chrono::seconds(30));
        auto res = client.Post("/summarize", nlohmann::json{{"text", text}, {"strategy", strategy}}.dump(),
                               "application/json");
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        const auto server_doc = nlohmann::json::parse(res->body);

        EXPECT_EQ(cli_doc["route"], server_doc["route"]) << strategy;
        EXPECT_EQ(cli_doc["reason"], server_doc["reason"]) << strategy;
        EXPECT_EQ(cli_doc["chunks"], server_doc["chunks"]) << strategy;
        EXPECT_EQ(cli_doc["summary"], server_doc["summary"]) << strategy;
        EXPECT_EQ(cli_doc["usage"]["upstream_requests"], server_doc["usage"]["upstream_requests"]) << strategy;
        EXPECT_EQ(CallsOf(cli_fake), CallsOf(server_fake)) << strategy;
        EXPECT_FALSE(cli_doc["request_id"].get<std::string>().empty());
    }
}

}  // namespace
}  // namespace summarizer::testing
