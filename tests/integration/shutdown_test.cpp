// Graceful shutdown of the real binary: on SIGTERM it stops accepting, lets running requests
// (streams included) finish within server.shutdown_grace_s, cancels the rest upstream (the fake
// Ollama sees the disconnect), and exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "free_port.hpp"
#include "fake_ollama.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;


// The summarizer binary as a child process; stdout and stderr go to a log file.
class Serve {
public:
    Serve(const std::string& ollama_url, int grace_s) : port_(FreePort()) {
        log_ = (std::filesystem::temp_directory_path() / ("summarizer_shutdown_" + std::to_string(port_) + ".log")).string();
        pid_ = fork();
        if (pid_ == 0) {
            FILE* out = freopen(log_.c_str(), "w", stdout);
            (void)out;
            dup2(fileno(stdout), fileno(stderr));
            std::string grace = "SUMMARIZER_SHUTDOWN_GRACE_S=" + std::to_string(grace_s);
            std::string binary = SUMMARIZER_BINARY;
            std::string port = std::to_string(port_);
            std::string config_file = SUMMARIZER_SOURCE_DIR "/config/summarizer.json";
            const char* args[] = {binary.c_str(), "serve", "--port", port.c_str(), "--ollama-url", ollama_url.c_str(),
                                  "--config", config_file.c_str(), nullptr};
            // Two Ollama slots, so two generations run at once; no preload, so the fake's calls are
            // the requests' own.
            const char* env[] = {grace.c_str(), "SUMMARIZER_OLLAMA_IDLE_TIMEOUT_S=30", "OLLAMA_NUM_PARALLEL=2",
                                 "SUMMARIZER_PRELOAD_HOT_BUCKET=false", nullptr};
            execve(binary.c_str(), const_cast<char* const*>(args), const_cast<char* const*>(env));
            _exit(127);
        }
    }
    ~Serve() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }
    bool WaitUp() {
        httplib::Client client("127.0.0.1", port_);
        for (int i = 0; i < 400; ++i) {
            auto res = client.Get("/healthz");
            if (res && res->status == 200) return true;
            std::this_thread::sleep_for(25ms);
        }
        return false;
    }
    void Signal(int sig) { kill(pid_, sig); }
    // The exit code, or -1 if it has not exited within `limit`.
    int WaitExit(std::chrono::milliseconds limit) {
        const auto until = Clock::now() + limit;
        while (Clock::now() < until) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(10ms);
        }
        return -1;
    }
    std::string Log() const {
        std::ifstream in(log_);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

private:
    int port_;
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string log_;
};

const char* kText = "The museum reopens on Saturday after two years of work. Entry is free for the first week.";

// Asks for a summary as JSON in the background: (status, body), status 0 when nothing came back.
std::future<std::pair<int, std::string>> StartPlain(int port) {
    return std::async(std::launch::async, [port] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(std::chrono::seconds(30));
        auto res = client.Post("/summarize", json{{"text", kText}}.dump(), "application/json");
        return res ? std::make_pair(res->status, res->body) : std::make_pair(0, std::string());
    });
}

// Streams a summary; `first_delta` is set once a delta arrived.
std::future<std::string> StartStream(int port, std::promise<void>& first_delta) {
    return std::async(std::launch::async, [port, &first_delta] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(std::chrono::seconds(30));
        httplib::Request req;
        req.method = "POST";
        req.path = "/summarize";
        req.headers.emplace("Content-Type", "application/json");
        req.body = json{{"text", kText}, {"stream", true}}.dump();
        std::string body;
        bool signalled = false;
        req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
            body.append(data, n);
            if (!signalled && body.find("event: delta") != std::string::npos) {
                signalled = true;
                first_delta.set_value();
            }
            return true;
        };
        httplib::Response res;
        httplib::Error error = httplib::Error::Success;
        client.send(req, res, error);
        if (!signalled) first_delta.set_value();
        return body;
    });
}

TEST(Shutdown, InflightStreamAndRequestFinishWithinGraceThenExit0) {
    FakeOllama fake;
    FakeBehavior slow;
    slow.reply = std::string(120, 'z');
    slow.piece_chars = 4;
    slow.piece_delay_ms = 50;  // ~1.5 s per summary
    fake.SetBehavior(slow);
    Serve serve(fake.url(), 10);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    std::promise<void> first_delta;
    auto stream = StartStream(serve.port(), first_delta);
    auto plain = StartPlain(serve.port());
    first_delta.get_future().wait();
    ASSERT_TRUE(fake.WaitForRequests(2, 5s));
    const auto signalled = Clock::now();
    serve.Signal(SIGTERM);
    std::this_thread::sleep_for(200ms);
    // No new connections once shutting down.
    httplib::Client late("127.0.0.1", serve.port());
    late.set_connection_timeout(1s);
    auto refused = late.Get("/healthz");
    EXPECT_FALSE(refused) << "still accepting after SIGTERM";

    auto events = ParseSse(stream.get());
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "done") << "the stream must finish within the grace period";
    EXPECT_EQ(events.back().second["summary"], slow.reply);
    EXPECT_EQ(plain.get().first, 200);
    EXPECT_EQ(serve.WaitExit(8s), 0) << serve.Log();
    EXPECT_LT(Clock::now() - signalled, 8s);
    EXPECT_EQ(fake.ClientDisconnects(), 0) << "nothing was cancelled";
}

TEST(Shutdown, RequestsOverTheGraceAreCancelledUpstream) {
    FakeOllama fake;
    FakeBehavior endless;
    endless.reply = std::string(4000, 'w');
    endless.piece_chars = 4;
    endless.piece_delay_ms = 20;  // ~20 s: far beyond the grace
    fake.SetBehavior(endless);
    Serve serve(fake.url(), 1);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    std::promise<void> first_delta;
    auto stream = StartStream(serve.port(), first_delta);
    auto plain = StartPlain(serve.port());
    first_delta.get_future().wait();
    ASSERT_TRUE(fake.WaitForRequests(2, 5s));
    const auto signalled = Clock::now();
    serve.Signal(SIGTERM);
    auto events = ParseSse(stream.get());
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "error");
    EXPECT_EQ(events.back().second["error"]["code"], "upstream_unavailable");
    EXPECT_NE(events.back().second["error"]["message"].get<std::string>().find("shutting down"), std::string::npos);
    auto [status, body] = plain.get();
    EXPECT_EQ(status, 503) << body;
    EXPECT_EQ(serve.WaitExit(6s), 0) << serve.Log();
    const auto took = Clock::now() - signalled;
    EXPECT_GE(took, 900ms) << "the grace period is honoured";
    EXPECT_LT(took, 6s);
    for (int i = 0; i < 200 && fake.ClientDisconnects() < 2; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(fake.ClientDisconnects(), 2) << "both generations were cancelled upstream";
}

TEST(Shutdown, IdleServerExitsAtOnce) {
    FakeOllama fake;
    Serve serve(fake.url(), 30);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    const auto start = Clock::now();
    serve.Signal(SIGINT);
    EXPECT_EQ(serve.WaitExit(8s), 0) << serve.Log();
    EXPECT_LT(Clock::now() - start, 7s);  // at most an idle keep-alive connection's time-out
}

}  // namespace
}  // namespace summarizer::testing
