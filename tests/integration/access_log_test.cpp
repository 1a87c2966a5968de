// The access log as ops read it: the real binary, its stdout and stderr captured. One line per
// request (id, route, status, sizes, timings), and never the text unless server.log_text is set.
#include <signal.h>

#include <chrono>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "fake_ollama.hpp"
#include "serve_process.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;

// A text no log line has any business containing.
const std::string kSecret = "Confidential: the merger with Quokka Holdings closes on 17 March at 4711 per share.";

std::vector<std::string> LinesWith(const std::string& log, const std::string& needle) {
    std::vector<std::string> lines;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        if (line.find(needle) != std::string::npos) lines.push_back(line);
    }
    return lines;
}

// Sends one of each kind of request carrying kSecret; returns the request ids used.
std::vector<std::string> SendTraffic(ServeProcess& serve) {
    auto client = serve.Client();
    std::vector<std::string> ids;
    auto id = [&](const std::string& kind) {
        ids.push_back("log-test-" + kind);
        return httplib::Headers{{"X-Request-Id", ids.back()}};
    };
    const std::string body = json{{"text", kSecret}}.dump();
    auto ok = client.Post("/summarize", id("json"), body, "application/json");
    EXPECT_TRUE(ok && ok->status == 200);
    auto plain = client.Post("/summarize?language=en", id("plain"), kSecret, "text/plain");
    EXPECT_TRUE(plain && plain->status == 200);
    auto stream = client.Post("/summarize", id("stream"), json{{"text", kSecret}, {"stream", true}}.dump(),
                              "application/json");
    EXPECT_TRUE(stream && stream->status == 200 && stream->body.find("event: done") != std::string::npos);
    auto plan = client.Post("/summarize/plan", id("plan"), body, "application/json");
    EXPECT_TRUE(plan && plan->status == 200);
    auto bad = client.Post("/summarize", id("bad"), json{{"text", kSecret}, {"colour", "blue"}}.dump(),
                           "application/json");
    EXPECT_TRUE(bad && bad->status == 400);
    auto media = client.Post("/summarize", id("media"), kSecret, "application/xml");
    EXPECT_TRUE(media && media->status == 415);
    auto health = client.Get("/healthz", id("health"));
    EXPECT_TRUE(health && health->status == 200);
    return ids;
}

class AccessLog : public ::testing::Test {
protected:
    void SetUp() override {
        FakeBehavior b;
        b.reply = "A fixed summary that names nothing from the input.";
        fake.SetBehavior(b);
    }
    FakeOllama fake;
};

TEST_F(AccessLog, OneLinePerRequestAndNeverTheText) {
    ServeProcess serve(fake.url(), {}, {}, "access_log_plain");
    ASSERT_GT(serve.port(), 0) << serve.Stop();
    auto ids = SendTraffic(serve);
    std::string log = serve.Stop();

    EXPECT_EQ(log.find("Quokka"), std::string::npos) << "the request text leaked into the log:\n" << log;
    EXPECT_EQ(log.find("merger"), std::string::npos) << log;
    for (const auto& id : ids) {
        if (id == "log-test-health") continue;  // probes are logged at debug level
        auto lines = LinesWith(log, id);
        ASSERT_EQ(lines.size(), 1u) << id << " in:\n" << log;
        const std::string& line = lines[0];
        for (const char* field : {"status=", "route=", "in=", "out=", "total_ms=", "ttft_ms="}) {
            EXPECT_NE(line.find(field), std::string::npos) << field << " missing in: " << line;
        }
    }
    EXPECT_NE(LinesWith(log, "log-test-json")[0].find("status=200 route=16k"), std::string::npos) << log;
    EXPECT_NE(LinesWith(log, "log-test-stream")[0].find("stream status=200 route=16k"), std::string::npos) << log;
    EXPECT_NE(LinesWith(log, "log-test-bad")[0].find("status=400 route=none"), std::string::npos) << log;
    EXPECT_NE(LinesWith(log, "log-test-media")[0].find("status=415"), std::string::npos) << log;
    // Sizes are the real ones: the stream's out= is its SSE bytes, not 0.
    std::smatch m;
    std::string stream_line = LinesWith(log, "log-test-stream")[0];
    ASSERT_TRUE(std::regex_search(stream_line, m, std::regex(R"( out=(\d+)B)")));
    EXPECT_GT(std::stoi(m[1]), 100) << stream_line;
}

TEST_F(AccessLog, JsonLinesCarryTheSameFieldsAndNoText) {
    ServeProcess serve(fake.url(), {"SUMMARIZER_LOG_JSON=true"}, {}, "access_log_json");
    ASSERT_GT(serve.port(), 0) << serve.Stop();
    auto ids = SendTraffic(serve);
    std::string log = serve.Stop();
    EXPECT_EQ(log.find("Quokka"), std::string::npos) << "the request text leaked into the log:\n" << log;
    for (const auto& id : ids) {
        if (id == "log-test-health") continue;
        auto lines = LinesWith(log, id);
        ASSERT_EQ(lines.size(), 1u) << id << " in:\n" << log;
        auto doc = json::parse(lines[0].substr(lines[0].find('{')));
        for (const char* field : {"request_id", "method", "path", "status", "route", "bytes_in", "bytes_out", "total_ms",
                                  "ttft_ms"}) {
            EXPECT_TRUE(doc.contains(field)) << field << " missing in: " << lines[0];
        }
        EXPECT_FALSE(doc.contains("text")) << lines[0];
    }
}

// A stream whose client leaves is logged (and counted) with the route its meta event named, and 499.
TEST_F(AccessLog, ACancelledStreamIsLoggedWithItsRoute) {
    FakeBehavior slow;
    slow.reply = "One. Two. Three. Four. Five. Six. Seven. Eight.";
    slow.piece_chars = 6;
    slow.piece_delay_ms = 200;
    fake.SetBehavior(slow);
    ServeProcess serve(fake.url(), {}, {}, "access_log_cancel");
    ASSERT_GT(serve.port(), 0) << serve.Stop();
    httplib::Client client("127.0.0.1", serve.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/summarize";
    req.headers = {{"X-Request-Id", "log-test-cancel"}, {"Content-Type", "application/json"}};
    req.body = json{{"text", kSecret}, {"stream", true}}.dump();
    std::string received;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        received.append(data, n);
        return received.find("event: delta") == std::string::npos;  // leave after the first piece
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    client.send(req, res, error);
    ASSERT_NE(received.find("event: meta"), std::string::npos) << received;
    const std::string access_line = "log-test-cancel 127.0.0.1 POST";
    for (int i = 0; i < 100 && LinesWith(serve.Log(), access_line).empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string log = serve.Stop();
    auto lines = LinesWith(log, access_line);
    ASSERT_FALSE(lines.empty()) << log;
    EXPECT_NE(lines[0].find("stream status=499 route=16k"), std::string::npos) << lines[0];
}

// The debug option does log the text: the checks above would see it if it leaked.
TEST_F(AccessLog, TheDebugOptionLogsTheText) {
    ServeProcess serve(fake.url(), {"SUMMARIZER_LOG_TEXT=true"}, {}, "access_log_debug");
    ASSERT_GT(serve.port(), 0) << serve.Stop();
    SendTraffic(serve);
    std::string log = serve.Stop();
    EXPECT_NE(log.find("Quokka Holdings"), std::string::npos) << log;
    EXPECT_EQ(LinesWith(log, "log-test-json").size(), 1u) << log;
}

}  // namespace
}  // namespace summarizer::testing
