// The connection streamed generate calls go over (upstream_http::StreamConnection, through
// OllamaClient): kept alive between calls, replaced when the server has closed it meanwhile, and
// a response cut into pieces anywhere (inside a chunk's size line, its data or its CRLF) read whole.
// The server here is a raw socket, so the test decides where the bytes break and when the
// connection closes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fake_ollama.hpp"
#include "summarizer/ollama_client.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;

// One chunk of a chunked body.
std::string Chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
}

// A streamed /api/generate answer: two pieces of text, then the final object with its context.
std::string NdjsonResponse(const std::string& first, const std::string& second) {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n";
    return head + Chunk(R"({"model":"m","response":")" + first + R"(","done":false})" + "\n") +
           Chunk(R"({"model":"m","response":")" + second + R"(","done":false})" + "\n") +
           Chunk(R"({"model":"m","response":"","done":true,"done_reason":"stop","context":[1,2,3],)"
                 R"("prompt_eval_count":7,"eval_count":2,"total_duration":1000})"
                 "\n") +
           "0\r\n\r\n";
}

// A listener on 127.0.0.1 whose connections `serve` answers, one after another, on its own thread.
class RawServer {
public:
    // serve(fd, connection index) answers the requests of one connection and returns when it closes it.
    explicit RawServer(std::function<void(int fd, int index)> serve) : serve_(std::move(serve)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        EXPECT_EQ(::listen(listener_, 16), 0);
        socklen_t len = sizeof addr;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] {
            for (int index = 0;; ++index) {
                const int fd = ::accept(listener_, nullptr, nullptr);
                if (fd < 0) return;
                accepted_ = index + 1;
                serve_(fd, index);
                ::close(fd);
            }
        });
    }
    ~RawServer() {
        ::shutdown(listener_, SHUT_RDWR);
        ::close(listener_);
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int accepted() const { return accepted_; }

    // Reads one request (head and Content-Length body); false when the client closed first.
    static bool ReadRequest(int fd, std::string& pending) {
        for (;;) {
            const auto head_end = pending.find("\r\n\r\n");
            if (head_end != std::string::npos) {
                size_t length = 0;
                const auto cl = pending.find("Content-Length: ");
                if (cl != std::string::npos && cl < head_end) length = std::stoul(pending.substr(cl + 16));
                if (pending.size() >= head_end + 4 + length) {
                    pending.erase(0, head_end + 4 + length);
                    return true;
                }
            }
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return false;
            pending.append(buf, static_cast<size_t>(n));
        }
    }
    // Sends `bytes` in pieces of `piece` bytes, each its own TCP segment.
    static void SendInPieces(int fd, const std::string& bytes, size_t piece) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (size_t at = 0; at < bytes.size(); at += piece) {
            const size_t n = std::min(piece, bytes.size() - at);
            ASSERT_EQ(::send(fd, bytes.data() + at, n, MSG_NOSIGNAL), static_cast<ssize_t>(n));
            if (piece < bytes.size()) std::this_thread::sleep_for(1ms);
        }
    }

private:
    std::function<void(int, int)> serve_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

GenerateRequest Request() {
    GenerateRequest request;
    request.model = "m";
    request.prompt = "hello";
    request.context_tokens = 16384;
    request.keep_alive = "24h";
    request.max_output_tokens = 100;
    return request;
}

OllamaClientOptions NoRetries(const std::string& url) {
    OllamaClientOptions options;
    options.base_url = url;
    options.max_retries = 0;  // what passes here passes without the client's retry
    return options;
}

// The first connection answers two calls and is then closed by the server while idle (as a server's
// keep-alive time-out does); the third call finds it closed, and goes out once more on a new one.
TEST(UpstreamConnection, KeptAliveBetweenCallsAndReplacedWhenTheServerClosedIt) {
    RawServer server([](int fd, int index) {
        std::string pending;
        const int answers = index == 0 ? 2 : 1;
        for (int i = 0; i < answers; ++i) {
            if (!RawServer::ReadRequest(fd, pending)) return;
            RawServer::SendInPieces(fd, NdjsonResponse("call ", std::to_string(index) + "." + std::to_string(i)),
                                    1 << 20);
        }
        if (index > 0) RawServer::ReadRequest(fd, pending);  // then keeps it open until the client leaves
    });
    OllamaClient client(NoRetries(server.url()));
    std::vector<std::string> texts;
    for (int call = 0; call < 3; ++call) {
        auto result = client.Generate(Request(), nullptr, CancelToken{});
        ASSERT_TRUE(result.ok()) << "call " << call << ": " << result.error().message;
        texts.push_back(result->text);
        EXPECT_EQ(result->prompt_tokens, 7);
        EXPECT_EQ(result->output_tokens, 2);
        if (call == 1) std::this_thread::sleep_for(100ms);  // the server closes the first connection
    }
    EXPECT_EQ(texts, (std::vector<std::string>{"call 0.0", "call 0.1", "call 1.0"}));
    EXPECT_EQ(server.accepted(), 2);
}

// Every piece size from 1 byte up cuts the chunked NDJSON somewhere else; the text, the final
// object's counts and the pieces handed on arrive the same each time.
TEST(UpstreamConnection, AResponseCutAnywhereIsReadWhole) {
    for (size_t piece : {1, 2, 3, 5, 7, 13, 64}) {
        RawServer server([piece](int fd, int) {
            std::string pending;
            if (!RawServer::ReadRequest(fd, pending)) return;
            std::string response = NdjsonResponse("Hello, ", "world.");
            // Not kept alive: the client must not reuse it.
            response.insert(response.find("\r\n") + 2, "Connection: close\r\n");
            RawServer::SendInPieces(fd, response, piece);
        });
        OllamaClient client(NoRetries(server.url()));
        std::string streamed;
        auto result = client.Generate(
            Request(), [&](std::string_view token) { streamed += token; }, CancelToken{});
        ASSERT_TRUE(result.ok()) << "pieces of " << piece << ": " << result.error().message;
        EXPECT_EQ(result->text, "Hello, world.") << "pieces of " << piece;
        EXPECT_EQ(streamed, "Hello, world.") << "pieces of " << piece;
        EXPECT_EQ(result->finish_reason, "stop") << "pieces of " << piece;
        EXPECT_EQ(result->prompt_tokens, 7) << "pieces of " << piece;
    }
}

// An error status with a Content-Length body: the message reaches the caller and the connection,
// read to its end, serves the next call.
TEST(UpstreamConnection, AnErrorBodyIsReadAndTheConnectionKept) {
    RawServer server([](int fd, int) {
        std::string pending;
        if (!RawServer::ReadRequest(fd, pending)) return;
        const std::string body = R"({"error":"model \"m\" not found, try pulling it first"})";
        RawServer::SendInPieces(fd,
                                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body,
                                1 << 20);
        if (!RawServer::ReadRequest(fd, pending)) return;
        RawServer::SendInPieces(fd, NdjsonResponse("after ", "the error"), 1 << 20);
        RawServer::ReadRequest(fd, pending);
    });
    OllamaClient client(NoRetries(server.url()));
    auto missing = client.Generate(Request(), nullptr, CancelToken{});
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("not found"), std::string::npos) << missing.error().message;
    auto next = client.Generate(Request(), nullptr, CancelToken{});
    ASSERT_TRUE(next.ok()) << next.error().message;
    EXPECT_EQ(next->text, "after the error");
    EXPECT_EQ(server.accepted(), 1);
}

// An https:// upstream (a gateway in front of a fleet) is spoken to over TLS, never in plain text:
// against a plain-HTTP server on that port the handshake fails and no request reaches it.
TEST(UpstreamConnection, AnHttpsUpstreamIsSpokenToOverTls) {
    testing::FakeOllama fake;
    std::string url = fake.url();
    url.replace(0, 4, "https");
    OllamaClient client(NoRetries(url));
    auto result = client.Generate(Request(), nullptr, CancelToken{});
    ASSERT_FALSE(result.ok()) << "a plain-HTTP server answered an https call: it went out in plain text";
    EXPECT_TRUE(fake.Requests().empty());
    EXPECT_NE(result.error().message.find("SSL"), std::string::npos) << result.error().message;
}

}  // namespace
}  // namespace summarizer
