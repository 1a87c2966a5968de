// Hostile and broken input against the real server: each case is a clear 4xx (API.md), nothing
// reaches Ollama, and nothing hangs or crashes. Slow clients are cut by the header and body
// deadlines (server.header_timeout_s, server.body_timeout_s with server.body_min_bytes_per_s).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct HostileCase {
    std::string name;
    std::string content_type;  // "" = no Content-Type header
    std::string body;
    int status;
    std::string code;
};

// POST /summarize written by hand (headers exactly as given); returns status and body.
std::pair<int, std::string> RawPost(int port, const std::string& headers, const std::string& body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {0, ""};
    std::string request = "POST /summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string response;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        response.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    int status = response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
    size_t start = response.find("\r\n\r\n");
    return {status, start == std::string::npos ? "" : response.substr(start + 4)};
}

class HostileInput : public ServiceTest, public ::testing::WithParamInterface<HostileCase> {};

TEST_P(HostileInput, IsAClear4xx) {
    StartService();
    const auto& c = GetParam();
    int status = 0;
    std::string body;
    if (c.content_type.empty()) {
        // httplib's client would add "text/plain": send this one by hand.
        auto [s, b] = RawPost(port, "", c.body);
        status = s;
        body = b;
    } else {
        auto res = Http().Post("/summarize", c.body, c.content_type);
        ASSERT_TRUE(res);
        status = res->status;
        body = res->body;
    }
    EXPECT_EQ(status, c.status) << body;
    auto doc = json::parse(body);
    EXPECT_EQ(doc["error"]["code"], c.code) << body;
    EXPECT_FALSE(doc["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(fake.Requests().empty()) << "nothing may reach Ollama";
    // The server is fine afterwards.
    auto health = Http().Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
}

std::string Nested(int depth) { return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']'); }

INSTANTIATE_TEST_SUITE_P(
    Cases, HostileInput,
    ::testing::Values(
        HostileCase{"DeepArrays", "application/json", R"({"text": "a", "x": )" + Nested(100000) + "}", 400, "invalid_json"},
        HostileCase{"DeepObjects", "application/json", std::string(50000, '{'), 400, "invalid_json"},
        HostileCase{"DeepInsideStringIsFine", "application/json", R"({"text": ")" + std::string(1000, '[') + R"(", "foo": 1})",
                    400, "invalid_request"},  // not nested: rejected for the unknown field only
        HostileCase{"EmptyJsonBody", "application/json", "", 400, "invalid_json"},
        HostileCase{"TopLevelArray", "application/json", R"(["text"])", 400, "invalid_request"},
        HostileCase{"TextNotAString", "application/json", R"({"text": 42})", 400, "invalid_request"},
        HostileCase{"TextNull", "application/json", R"({"text": null})", 400, "invalid_request"},
        HostileCase{"MissingText", "application/json", R"({"style": "bullets"})", 400, "invalid_request"},
        HostileCase{"HugeMaxTokens", "application/json", R"({"text": "a b c.", "max_tokens": 1e400})", 400, "invalid_json"},
        HostileCase{"NegativeMaxTokens", "application/json", R"({"text": "a b c.", "max_tokens": -5})", 400, "invalid_request"},
        HostileCase{"BadUtf8InJson", "application/json", "{\"text\": \"caf\xc3\x28\"}", 400, "invalid_request"},
        HostileCase{"OverlongUtf8", "text/plain", "\xc0\xaf etc", 400, "invalid_request"},
        HostileCase{"Surrogate", "text/plain", "\xed\xa0\x80 half a pair", 400, "invalid_request"},
        HostileCase{"LoneSurrogateEscape", "application/json", R"({"text": "\ud800 x"})", 400, "invalid_json"},
        HostileCase{"NulEscape", "application/json", R"({"text": "before\u0000after"})", 400, "invalid_request"},
        HostileCase{"NulByte", "text/plain", std::string("some\0text", 9), 400, "invalid_request"},
        HostileCase{"ControlChar", "text/plain", "bell \x07 ring", 400, "invalid_request"},
        HostileCase{"Escape", "application/json", R"({"text": "\u001b[31mred"})", 400, "invalid_request"},
        HostileCase{"EmptyText", "application/json", R"({"text": ""})", 400, "invalid_request"},
        HostileCase{"WhitespaceOnly", "text/plain", " \t\r\n \xe3\x80\x80 \xc2\xa0", 400, "invalid_request"},
        HostileCase{"EmptyPlainBody", "text/plain", "", 400, "invalid_request"},
        HostileCase{"NoContentType", "", "just text", 415, "unsupported_media_type"},
        HostileCase{"FormEncoded", "application/x-www-form-urlencoded", "text=hello", 415, "unsupported_media_type"},
        HostileCase{"Multipart", "multipart/form-data; boundary=x",
                    "--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello there\r\n--x--\r\n", 415,
                    "unsupported_media_type"},
        HostileCase{"BrokenMultipart", "multipart/form-data; boundary=x", "--x--", 400, "invalid_request"},
        HostileCase{"Octets", "application/octet-stream", "\x01\x02", 415, "unsupported_media_type"}),
    [](const auto& info) { return info.param.name; });

TEST_F(ServiceTest, JsonWithCharsetParameterIsAccepted) {
    StartService();
    auto res = Http().Post("/summarize", R"({"text": "The ferry leaves at noon. It returns at six."})",
                           "application/json; charset=UTF-8");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(ServiceTest, HugeSingleLineWithoutBoundariesIsSummarizedInBoundedTime) {
    config.routing.hierarchical_threshold_chars = 100000;
    StartService();
    const std::string line(400000, 'a');  // no sentence, no space, no newline
    const auto start = Clock::now();
    auto res = Http().Post("/summarize", line, "text/plain");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body.substr(0, 300);
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "map_reduce");
    EXPECT_GE(doc["chunks"].get<int>(), 4);
    EXPECT_LT(Clock::now() - start, 20s);
    for (const auto& r : fake.Requests()) {
        EXPECT_LE(r.body["prompt"].get<std::string>().size(), 16384u * 4) << "every prompt fits its context";
    }
}

TEST_F(ServiceTest, HugeSingleLineFallsBackToABoundedExtractiveSummary) {
    fake.Stop();
    config.ollama.max_retries = 0;
    StartService();
    const std::string line(1000000, 'b');
    auto res = Http().Post("/summarize", line, "text/plain");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "extractive");
    EXPECT_LE(doc["summary"].get<std::string>().size(), static_cast<size_t>(config.degraded.extractive_max_chars) + 3);
}

// A raw connection for clients that misbehave on the wire.
int Connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Reads until the server closes the connection (or `limit` passes). Returns what was read and
// whether it was closed.
std::pair<std::string, bool> ReadUntilClosed(int fd, std::chrono::milliseconds limit) {
    std::string data;
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
        pollfd p{fd, POLLIN, 50};
        if (poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return {data, true};
        data.append(buf, static_cast<size_t>(n));
    }
    return {data, false};
}

TEST_F(ServiceTest, SlowLorisHeadersAreCutByTheHeaderDeadline) {
    config.server.header_timeout_s = 1;
    StartService();
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    const std::string partial = "POST /summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
    const auto start = Clock::now();
    auto [data, closed] = ReadUntilClosed(fd, 5000ms);
    EXPECT_TRUE(closed) << "a client that stops sending its headers must be cut";
    EXPECT_LT(Clock::now() - start, 4000ms);
    close(fd);
    // Others are served meanwhile and after.
    auto health = Http().Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_TRUE(fake.Requests().empty());
}

TEST_F(ServiceTest, SlowLorisBodyIsCutByTheBodyDeadline) {
    config.server.body_timeout_s = 1;
    StartService();
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    const std::string partial =
        "POST /summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        "only the beginning of the body";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
    const auto start = Clock::now();
    auto [data, closed] = ReadUntilClosed(fd, 5000ms);
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - start, 4000ms);
    close(fd);
    EXPECT_TRUE(fake.Requests().empty()) << "a partial body is never summarized";
}

TEST_F(ServiceTest, ManyIdleConnectionsDoNotStopService) {
    config.server.header_timeout_s = 1;
    config.server.threads = 8;
    StartService();
    std::vector<int> idle;
    for (int i = 0; i < 8; ++i) idle.push_back(Connect(port));  // every worker holds a silent client
    const auto start = Clock::now();
    auto res = Http().Post("/summarize", R"({"text": "The ferry leaves at noon. It returns at six."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(Clock::now() - start, 5000ms) << "silent clients must not keep others from being served";
    for (int fd : idle) close(fd);
}

}  // namespace
}  // namespace summarizer::testing
