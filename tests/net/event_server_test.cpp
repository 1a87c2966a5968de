// The event server (include/summarizer/event_server.hpp) on a real socket, with small handlers:
// requests and responses, keep-alive, pipelining, chunked bodies, the transport's own errors,
// streams, disconnects, every deadline and cap, shutdown and the exception boundary.
// Time bounds are generous (the machine is shared); the measured values are printed.
#include "summarizer/event_server.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "eventually.hpp"
#include "raw_client.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

HttpResponse JsonResponse(int status, const json& body) {
    HttpResponse response;
    response.status = status;
    response.body = body.dump();
    return response;
}

// Answers with what it received.
HttpResponse Echo(HttpRequest& request) {
    return JsonResponse(200, {{"method", request.method},
                              {"path", request.path},
                              {"query", request.query},
                              {"body", request.body},
                              {"x_test", request.Header("x-test")},
                              {"remote_addr", request.remote_addr},
                              {"remote_port", request.remote_port}});
}

// A server on a free loopback port, stopped at once at the end of the test.
class TestServer {
public:
    TestServer(EventServerOptions options, HttpHandler handler) : server_(std::move(options), std::move(handler)) {
        auto bound = server_.Bind();
        EXPECT_TRUE(bound.ok()) << (bound.ok() ? "" : bound.error().message);
        port_ = bound.ok() ? *bound : 0;
        EXPECT_TRUE(server_.Start().ok());
    }
    ~TestServer() { server_.Stop(0ms); }

    int port() const { return port_; }
    EventServer& server() { return server_; }
    EventServerStats stats() const { return server_.stats(); }

    httplib::Client Client() const {
        httplib::Client client("127.0.0.1", port_);
        client.set_connection_timeout(5, 0);
        client.set_read_timeout(10, 0);
        return client;
    }

private:
    EventServer server_;
    int port_ = 0;
};

EventServerOptions Options() {
    EventServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.worker_threads = 8;
    options.linger_timeout = 200ms;
    return options;
}

std::string Get(std::string_view target, std::string_view extra_headers = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

std::string Post(std::string_view target, std::string_view body) {
    return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Waits until the server has accepted `n` connections in all (so the order of accepts is known).
void WaitAccepted(TestServer& server, uint64_t n) {
    ASSERT_TRUE(Eventually([&] { return server.stats().accepted >= n; }, 5000ms)) << "accepted " << server.stats().accepted;
}

// ---- Requests and responses ---------------------------------------------------------------------

TEST(EventServerTest, JsonRequestAndResponseWithDecodedTargetAndPeer) {
    TestServer server(Options(), Echo);
    ASSERT_GT(server.port(), 0);
    auto client = server.Client();
    client.set_url_encode(false);  // the target goes out as written
    auto result = client.Post("/echo%20it?language=ja&style=a+b&x=%E6%97%A5", {{"X-Test", "yes"}}, R"({"text":"hi"})",
                              "application/json");
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->get_header_value("Content-Type"), "application/json");
    const json body = json::parse(result->body);
    EXPECT_EQ(body["method"], "POST");
    EXPECT_EQ(body["path"], "/echo it");
    EXPECT_EQ(body["query"]["language"], "ja");
    EXPECT_EQ(body["query"]["style"], "a b");
    EXPECT_EQ(body["query"]["x"], "\xE6\x97\xA5");
    EXPECT_EQ(body["body"], R"({"text":"hi"})");
    EXPECT_EQ(body["x_test"], "yes");
    EXPECT_EQ(body["remote_addr"], "127.0.0.1");
    EXPECT_GT(body["remote_port"].get<int>(), 0);
}

TEST(EventServerTest, RemotePortIsTheClients) {
    TestServer server(Options(), Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(json::parse(response->body)["remote_port"], client.local_port());
}

TEST(EventServerTest, KeepAliveReusesTheConnection) {
    TestServer server(Options(), Echo);
    RawClient client(server.port());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(client.Send(Get("/n" + std::to_string(i))));
        auto response = client.ReadResponse();
        ASSERT_TRUE(response) << i;
        EXPECT_EQ(response->status, 200);
        EXPECT_EQ(json::parse(response->body)["path"], "/n" + std::to_string(i));
        EXPECT_EQ(response->Header("connection"), "");
    }
    EXPECT_EQ(server.stats().accepted, 1u);
    EXPECT_EQ(server.stats().requests, 3u);
}

TEST(EventServerTest, PipelinedRequestsAreAnsweredInOrderAndAreNotADisconnect) {
    std::atomic<int> cancelled_seen{0};
    TestServer server(Options(), [&](HttpRequest& request) {
        if (request.path == "/slow") {
            std::this_thread::sleep_for(100ms);  // the next requests arrive meanwhile
            if (request.client_gone.cancelled()) ++cancelled_seen;
        }
        return Echo(request);
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/slow") + Post("/post", "xyz") + Get("/last")));
    std::vector<std::string> paths;
    for (int i = 0; i < 3; ++i) {
        auto response = client.ReadResponse();
        ASSERT_TRUE(response) << i;
        paths.push_back(json::parse(response->body)["path"]);
        if (i == 1) {
            EXPECT_EQ(json::parse(response->body)["body"], "xyz");
        }
    }
    EXPECT_EQ(paths, (std::vector<std::string>{"/slow", "/post", "/last"}));
    EXPECT_EQ(cancelled_seen, 0);
    EXPECT_EQ(server.stats().accepted, 1u);
    EXPECT_EQ(server.stats().clients_gone, 0u);
}

TEST(EventServerTest, ChunkedRequestBodyArrivingInPieces) {
    TestServer server(Options(), Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"));
    std::this_thread::sleep_for(30ms);
    ASSERT_TRUE(client.Send("lo\r\n6\r"));
    std::this_thread::sleep_for(30ms);
    ASSERT_TRUE(client.Send("\n world\r\n0\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["body"], "hello world");
}

TEST(EventServerTest, ExpectContinueGets100BeforeTheBody) {
    TestServer server(Options(), Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    EXPECT_EQ(client.ReadUntil("\r\n\r\n", 2000ms), "HTTP/1.1 100 Continue\r\n\r\n");
    ASSERT_TRUE(client.Send("hello"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(json::parse(response->body)["body"], "hello");
}

TEST(EventServerTest, HeadGetsTheHeadersWithoutTheBody) {
    TestServer server(Options(), [](HttpRequest&) { return JsonResponse(200, {{"status", "ok"}}); });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/healthz")));
    RawClient::Response head;
    ASSERT_TRUE(client.ReadHead(head, Clock::now() + 2s));
    EXPECT_EQ(head.Header("content-length"), "15");
    auto get = client.ReadResponse();  // the next bytes are the GET's response, not a body
    ASSERT_TRUE(get);
    EXPECT_EQ(get->body, R"({"status":"ok"})");
}

TEST(EventServerTest, Http10WithoutKeepAliveIsClosedAfterTheResponse) {
    TestServer server(Options(), Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("connection"), "close");
    EXPECT_TRUE(client.WaitClosed(2000ms));
}

TEST(EventServerTest, SeveralIoThreadsServeManyConcurrentKeepAliveClients) {
    auto options = Options();
    options.io_threads = 4;  // connections on strands
    options.worker_threads = 16;
    TestServer server(options, [](HttpRequest& request) {
        HttpResponse response = Echo(request);
        if (request.path == "/stream") {
            auto stream = std::make_shared<EventStream>();
            for (int i = 0; i < 5; ++i) stream->Push("data: " + std::to_string(i) + "\n\n");
            stream->Finish();
            response.stream = stream;
            response.content_type = "text/event-stream";
        }
        return response;
    });
    std::atomic<int> answered{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 16; ++c) {
        clients.emplace_back([&, c] {
            RawClient client(server.port());
            for (int i = 0; i < 50; ++i) {
                const std::string path = "/c" + std::to_string(c) + "/" + std::to_string(i);
                if (!client.Send(i % 10 == 9 ? Get("/stream") : Post(path, path))) return;
                auto response = client.ReadResponse();
                if (!response || response->status != 200) return;
                // The stream's events were all queued before it was taken: they come as one batch.
                const bool right = i % 10 == 9 ? response->body == "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n"
                                               : json::parse(response->body)["body"] == path;
                if (right) ++answered;
            }
        });
    }
    for (auto& client : clients) client.join();
    EXPECT_EQ(answered, 16 * 50);
    EXPECT_EQ(server.stats().accepted, 16u);
}

// ---- What the transport answers itself -----------------------------------------------------------

TEST(EventServerTest, DeclaredBodyOverTheLimitIs413WithTheContractsErrorBody) {
    std::atomic<int> calls{0};
    std::vector<RejectedRequest> rejected;
    std::mutex mutex;
    auto options = Options();
    options.max_body_bytes = 1024;
    options.on_rejected = [&](const RejectedRequest& r) {
        std::lock_guard lock(mutex);
        rejected.push_back(r);
    };
    TestServer server(options, [&](HttpRequest& r) {
        ++calls;
        return Echo(r);
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /summarize HTTP/1.1\r\nHost: t\r\nX-Request-Id: big-1\r\nContent-Length: 5000\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 413);
    EXPECT_EQ(response->Header("x-request-id"), "big-1");
    EXPECT_EQ(response->Header("connection"), "close");
    const json body = json::parse(response->body);
    EXPECT_EQ(body["error"]["code"], "payload_too_large");
    EXPECT_EQ(body["error"]["request_id"], "big-1");
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(client.WaitClosed(2000ms));
    EXPECT_EQ(calls, 0);
    std::lock_guard lock(mutex);
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_EQ(rejected[0].status, 413);
    EXPECT_EQ(rejected[0].method, "POST");
    EXPECT_EQ(rejected[0].target, "/summarize");
}

TEST(EventServerTest, ChunkedBodyOverTheLimitIs413) {
    auto options = Options();
    options.max_body_bytes = 1024;
    TestServer server(options, Echo);
    RawClient client(server.port());
    const std::string piece(600, 'x');
    ASSERT_TRUE(client.Send("POST /s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + piece +
                            "\r\n258\r\n" + piece + "\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 413);
    EXPECT_EQ(json::parse(response->body)["error"]["code"], "payload_too_large");
}

TEST(EventServerTest, ClientThatSendsTheWholeBodyStillReads413) {
    // httplib writes the whole body before it reads: the 413 must survive (no reset of unread data).
    auto options = Options();
    options.max_body_bytes = 1024;
    TestServer server(options, Echo);
    auto client = server.Client();
    auto result = client.Post("/summarize", std::string(200'000, 'x'), "text/plain");
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 413);
}

TEST(EventServerTest, GarbageIs400AndTheConnectionIsClosed) {
    std::atomic<int> calls{0};
    TestServer server(Options(), [&](HttpRequest& r) {
        ++calls;
        return Echo(r);
    });
    for (const std::string& garbage : {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
                                      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15),
                                      std::string("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")}) {
        RawClient client(server.port());
        ASSERT_TRUE(client.Send(garbage));
        auto response = client.ReadResponse();
        ASSERT_TRUE(response) << garbage;
        EXPECT_EQ(response->status, 400) << garbage;
        EXPECT_EQ(json::parse(response->body)["error"]["code"], "invalid_request");
        EXPECT_TRUE(client.WaitClosed(2000ms)) << garbage;
    }
    EXPECT_EQ(calls, 0);
}

TEST(EventServerTest, BadPercentEscapesAre400NotACrash) {
    std::atomic<int> calls{0};
    TestServer server(Options(), [&](HttpRequest& r) {
        ++calls;
        return Echo(r);
    });
    for (const char* target : {"/%zz", "/a%", "/%00", "/x?q=%4"}) {
        RawClient client(server.port());
        ASSERT_TRUE(client.Send(Get(target)));
        auto response = client.ReadResponse();
        ASSERT_TRUE(response) << target;
        EXPECT_EQ(response->status, 400) << target;
    }
    EXPECT_EQ(calls, 0);
}

TEST(EventServerTest, HeadersOverTheLimitAre431) {
    auto options = Options();
    options.max_header_bytes = 2048;
    TestServer server(options, Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/", "X-Big: " + std::string(4000, 'a') + "\r\n")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 431);
}

TEST(EventServerTest, EveryPathReachesTheHandlerWhichDecides404) {
    TestServer server(Options(), [](HttpRequest& request) {
        if (request.path == "/healthz") return JsonResponse(200, {{"status", "ok"}});
        return JsonResponse(404, {{"error", {{"code", "not_found"}, {"path", request.path}}}});
    });
    auto client = server.Client();
    auto found = client.Get("/healthz");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->status, 200);
    auto missing = client.Get("/no/such/%C3%A9ndpoint");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(json::parse(missing->body)["error"]["path"], "/no/such/\xC3\xA9ndpoint");
}

TEST(EventServerTest, ThrowingHandlerGets500AndTheServerKeepsServing) {
    TestServer server(Options(), [](HttpRequest& request) -> HttpResponse {
        if (request.path == "/throw") throw std::runtime_error("boom");
        return Echo(request);
    });
    auto client = server.Client();
    auto thrown = client.Get("/throw", {{"X-Request-Id", "req-7"}});
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->status, 500);
    const json body = json::parse(thrown->body);
    EXPECT_EQ(body["error"]["code"], "internal_error");
    EXPECT_EQ(body["error"]["request_id"], "req-7");
    EXPECT_NE(body["error"]["message"].get<std::string>().find("boom"), std::string::npos);
    auto next = client.Get("/after");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200);
    EXPECT_EQ(server.stats().handler_exceptions, 1u);
}

// ---- Streams ------------------------------------------------------------------------------------

// A stream whose producer thread runs `produce`; the thread is joined by the test.
struct Producer {
    std::shared_ptr<EventStream> stream = std::make_shared<EventStream>();
    std::thread thread;
    ~Producer() {
        if (thread.joinable()) thread.join();
    }
};

TEST(EventServerTest, StreamDeliversEachPushAsItIsPushed) {
    Producer producer;
    std::promise<ResponseOutcome> outcome;
    std::vector<Clock::time_point> pushed(3);
    TestServer server(Options(), [&](HttpRequest&) {
        HttpResponse response;
        response.content_type = "text/event-stream";
        response.stream = producer.stream;
        response.on_complete = [&](const ResponseOutcome& o) { outcome.set_value(o); };
        producer.thread = std::thread([&] {
            for (int i = 0; i < 3; ++i) {
                if (i > 0) std::this_thread::sleep_for(200ms);
                pushed[i] = Clock::now();
                producer.stream->Push("data: " + std::to_string(i) + "\n\n");
            }
            producer.stream->Finish();
        });
        return response;
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/stream", "Accept: text/event-stream\r\nAccept-Encoding: gzip\r\n")));
    auto response = client.ReadResponse(5000ms);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("content-type"), "text/event-stream");
    EXPECT_EQ(response->Header("content-encoding"), "");
    ASSERT_EQ(response->chunks.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(response->chunks[i].data, "data: " + std::to_string(i) + "\n\n");
        const double late_ms = std::chrono::duration<double, std::milli>(response->chunks[i].arrived - pushed[i]).count();
        std::printf("event %d arrived %.2f ms after its push\n", i, late_ms);
        EXPECT_LT(late_ms, 150.0) << "event " << i << " was held back";  // the next push is 200 ms later
    }
    const ResponseOutcome o = outcome.get_future().get();
    EXPECT_TRUE(o.completed);
    EXPECT_EQ(o.bytes_out, response->body.size());
}

// The completion callback of a response (the access log, the metrics) runs before any request
// sent after that response was read is handled, even on another connection: a client reading
// /metrics right after its request sees it counted (the I/O thread runs the callback before it
// reads anything else). The callback here is slow on purpose, so a design that let a handler start
// meanwhile would be seen.
TEST(EventServerTest, AResponsesCompletionRunsBeforeARequestSentAfterItWasRead) {
    std::atomic<int> completed{0};
    TestServer server(Options(), [&](HttpRequest& request) {
        if (request.path == "/count") return JsonResponse(200, {{"completed", completed.load()}});
        HttpResponse response = Echo(request);
        response.on_complete = [&](const ResponseOutcome&) {
            std::this_thread::sleep_for(30ms);
            ++completed;
        };
        return response;
    });
    RawClient first(server.port());
    RawClient second(server.port());
    for (int i = 1; i <= 3; ++i) {
        ASSERT_TRUE(first.Send(Get("/work")));
        ASSERT_TRUE(first.ReadResponse(5000ms));
        ASSERT_TRUE(second.Send(Get("/count")));
        auto count = second.ReadResponse(5000ms);
        ASSERT_TRUE(count);
        EXPECT_EQ(json::parse(count->body)["completed"], i) << "request " << i;
    }
}

// A client that closes as soon as it has read a stream's last chunk has had a completed response,
// not one it walked away from: the end of the stream is recorded before its close is read.
TEST(EventServerTest, AStreamReadToItsEndIsCompletedThoughTheClientClosesAtOnce) {
    int incomplete = 0;
    for (int round = 0; round < 100; ++round) {
        std::promise<ResponseOutcome> outcome;
        TestServer server(Options(), [&](HttpRequest&) {
            HttpResponse response;
            response.content_type = "text/event-stream";
            response.stream = std::make_shared<EventStream>();
            response.stream->Push("data: all of it\n\n");
            response.stream->Finish();
            response.on_complete = [&](const ResponseOutcome& o) { outcome.set_value(o); };
            return response;
        });
        RawClient client(server.port());
        ASSERT_TRUE(client.Send(Get("/stream")));
        ASSERT_TRUE(client.ReadResponse(5000ms));
        client.Close();
        auto done = outcome.get_future();
        ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
        if (!done.get().completed) ++incomplete;
    }
    EXPECT_EQ(incomplete, 0) << "of 100 streams read to their end";
}

TEST(EventServerTest, StreamThatOutlivesEveryDeadlineIsNotCutWhileTheClientReads) {
    auto options = Options();
    options.header_timeout = 200ms;
    options.body_timeout = 200ms;
    options.keep_alive_timeout = 200ms;
    options.write_timeout = 200ms;
    Producer producer;
    TestServer server(options, [&](HttpRequest& request) {
        HttpResponse response;
        response.content_type = "text/event-stream";
        response.stream = producer.stream;
        producer.thread = std::thread([&, gone = request.client_gone] {
            for (int i = 0; i < 8 && !gone.cancelled(); ++i) {
                // Silent for 3x every deadline, then a burst.
                std::this_thread::sleep_for(i == 4 ? 700ms : 100ms);
                producer.stream->Push(": event " + std::to_string(i) + "\n\n");
            }
            producer.stream->Finish();
        });
        return response;
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/stream")));
    auto response = client.ReadResponse(10s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->chunks.size(), 8u);
    EXPECT_EQ(server.stats().write_timeouts, 0u);
    EXPECT_EQ(server.stats().clients_gone, 0u);
}

// A producer that pushes 16 MiB as fast as it can (more than the kernel buffers of a reader that
// reads nothing: tcp_wmem's 4 MiB at most plus a 4 KiB receive buffer), until the client is gone.
HttpResponse Flood(HttpRequest& request, Producer& producer, std::atomic<bool>& saw_cancel) {
    HttpResponse response;
    response.content_type = "text/event-stream";
    response.stream = producer.stream;
    producer.thread = std::thread([&, gone = request.client_gone] {
        const std::string piece(64 * 1024, 'x');
        for (int i = 0; i < 256 && !gone.cancelled(); ++i) producer.stream->Push(piece);
        while (!gone.cancelled() && !saw_cancel) std::this_thread::sleep_for(1ms);  // until the client leaves
        saw_cancel = gone.cancelled();
        producer.stream->Finish();
    });
    return response;
}

TEST(EventServerTest, SlowStreamReaderDoesNotBlockOtherConnections) {
    Producer producer;
    std::atomic<bool> saw_cancel{false};
    TestServer server(Options(), [&](HttpRequest& request) {
        if (request.path == "/flood") return Flood(request, producer, saw_cancel);
        return Echo(request);
    });
    RawClient reader(server.port(), nullptr, 4096);  // reads nothing
    ASSERT_TRUE(reader.Send(Get("/flood")));
    std::this_thread::sleep_for(200ms);  // its socket buffers are full now
    auto client = server.Client();
    double worst_ms = 0;
    for (int i = 0; i < 20; ++i) {
        const auto start = Clock::now();
        auto result = client.Get("/echo");
        ASSERT_TRUE(result) << i;
        EXPECT_EQ(result->status, 200);
        worst_ms = std::max(worst_ms, MsSince(start));
    }
    std::printf("20 requests beside a stalled stream reader: worst %.2f ms\n", worst_ms);
    EXPECT_LT(worst_ms, 1000.0);
    reader.Reset();
    EXPECT_TRUE(Eventually([&] { return server.stats().clients_gone == 1; }, 5000ms))
        << "clients_gone " << server.stats().clients_gone << ", open connections " << server.stats().open_connections
        << ", write time-outs " << server.stats().write_timeouts;
}

TEST(EventServerTest, WriteDeadlineCutsAClientThatStopsReading) {
    auto options = Options();
    options.write_timeout = 300ms;
    Producer producer;
    std::atomic<bool> saw_cancel{false};
    TestServer server(options, [&](HttpRequest& request) { return Flood(request, producer, saw_cancel); });
    RawClient reader(server.port(), nullptr, 4096);
    const auto start = Clock::now();
    ASSERT_TRUE(reader.Send(Get("/flood")));
    ASSERT_TRUE(Eventually([&] { return server.stats().write_timeouts == 1; }, 5000ms));
    std::printf("stalled reader cut after %.0f ms (write_timeout 300 ms)\n", MsSince(start));
    producer.thread.join();
    EXPECT_TRUE(saw_cancel);
}

// A whole response larger than the socket takes is written on as the client reads.
std::string BigBody(size_t size) {
    std::string body(size, ' ');
    for (size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    return body;
}

TEST(EventServerTest, WholeResponseLargerThanTheSocketTakesReachesASlowReaderWhole) {
    const std::string big = BigBody(8 * 1024 * 1024);
    TestServer server(Options(), [&](HttpRequest& request) {
        if (request.path != "/big") return Echo(request);
        HttpResponse response;
        response.body = big;
        response.content_type = "application/octet-stream";
        return response;
    });
    RawClient reader(server.port(), nullptr, 4096);
    ASSERT_TRUE(reader.Send(Get("/big")));
    std::this_thread::sleep_for(200ms);  // the socket has taken what it can; the rest waits for the reader
    ASSERT_TRUE(reader.Send(Get("/after")));  // pipelined: answered after the big one, on the same connection
    auto first = reader.ReadResponse(10000ms);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 200);
    EXPECT_EQ(first->body.size(), big.size());
    EXPECT_TRUE(first->body == big);
    auto second = reader.ReadResponse();
    ASSERT_TRUE(second);
    EXPECT_EQ(json::parse(second->body)["path"], "/after");
    EXPECT_EQ(server.stats().write_timeouts, 0u);
}

TEST(EventServerTest, WriteDeadlineCutsAClientThatStopsReadingAWholeResponse) {
    auto options = Options();
    options.write_timeout = 300ms;
    const std::string big = BigBody(16 * 1024 * 1024);
    std::promise<ResponseOutcome> outcome;
    TestServer server(options, [&](HttpRequest&) {
        HttpResponse response;
        response.body = big;
        response.on_complete = [&](const ResponseOutcome& o) { outcome.set_value(o); };
        return response;
    });
    RawClient reader(server.port(), nullptr, 4096);  // reads nothing
    ASSERT_TRUE(reader.Send(Get("/big")));
    ASSERT_TRUE(Eventually([&] { return server.stats().write_timeouts == 1; }, 5000ms));
    auto done = outcome.get_future();
    ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(done.get().completed);
}

// Clients that leave while, or just after, their handler returns (run under ASan in CI).
TEST(EventServerTest, ClientsLeavingAsTheirResponsesAreWrittenLeaveTheServerServing) {
    std::atomic<int> handled{0};
    TestServer server(Options(), [&](HttpRequest& request) {
        ++handled;
        std::this_thread::sleep_for(std::chrono::microseconds(request.path == "/slow" ? 300 : 0));
        return Echo(request);
    });
    std::vector<std::thread> clients;
    std::atomic<int> answered{0}, asked{0};
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i) {
                RawClient client(server.port());
                if (!client.Send(Get(i % 2 ? "/slow" : "/fast"))) continue;
                if ((i + t) % 3 == 0) {
                    ++asked;
                    if (client.ReadResponse()) ++answered;
                } else if ((i + t) % 3 == 1) {
                    client.Close();
                } else {
                    std::this_thread::sleep_for(std::chrono::microseconds(150 * (i % 4)));
                    client.Reset();
                }
            }
        });
    }
    for (auto& client : clients) client.join();
    EXPECT_EQ(answered.load(), asked.load());  // every client that waited got its answer
    ASSERT_TRUE(Eventually([&] { return server.stats().open_connections == 0; }, 5000ms))
        << server.stats().open_connections << " connections left open";
    auto client = server.Client();
    auto res = client.Get("/still-serving");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    // A request is handled unless its client's reset arrived before its bytes were read.
    EXPECT_GE(handled.load(), asked.load());
}

// ---- A client that leaves cancels its request -----------------------------------------------------

// A handler that waits for client_gone (as a long summary would) and records when it saw it.
struct WaitingHandler {
    std::promise<void> started;
    std::atomic<int64_t> cancelled_at_ns{0};
    std::promise<ResponseOutcome> outcome;

    HttpResponse operator()(HttpRequest& request) {
        started.set_value();
        const auto until = Clock::now() + 10s;
        while (!request.client_gone.cancelled() && Clock::now() < until) std::this_thread::sleep_for(1ms);
        if (request.client_gone.cancelled()) cancelled_at_ns = Clock::now().time_since_epoch().count();
        HttpResponse response = JsonResponse(200, {{"late", true}});
        response.on_complete = [this](const ResponseOutcome& o) { outcome.set_value(o); };
        return response;
    }
};

TEST(EventServerTest, ClientDisconnectCancelsARunningJsonRequest) {
    for (const bool reset : {false, true}) {
        WaitingHandler handler;
        TestServer server(Options(), [&](HttpRequest& r) { return handler(r); });
        RawClient client(server.port());
        ASSERT_TRUE(client.Send(Post("/summarize", R"({"text":"long"})")));
        handler.started.get_future().wait();
        const auto closed_at = Clock::now();
        if (reset) {
            client.Reset();
        } else {
            client.Close();
        }
        auto outcome = handler.outcome.get_future();
        ASSERT_EQ(outcome.wait_for(5s), std::future_status::ready);
        ASSERT_NE(handler.cancelled_at_ns, 0);
        const double ms = std::chrono::duration<double, std::milli>(
                              Clock::time_point(Clock::duration(handler.cancelled_at_ns.load())) - closed_at)
                              .count();
        std::printf("client %s -> client_gone seen by the handler after %.2f ms\n", reset ? "reset" : "closed", ms);
        EXPECT_LT(ms, 2000.0);
        EXPECT_FALSE(outcome.get().completed);
        EXPECT_EQ(server.stats().clients_gone, 1u);
    }
}

TEST(EventServerTest, ClientDisconnectCancelsAStream) {
    Producer producer;
    std::atomic<int64_t> cancelled_at_ns{0};
    std::promise<ResponseOutcome> outcome;
    TestServer server(Options(), [&](HttpRequest& request) {
        HttpResponse response;
        response.content_type = "text/event-stream";
        response.stream = producer.stream;
        response.on_complete = [&](const ResponseOutcome& o) { outcome.set_value(o); };
        producer.thread = std::thread([&, gone = request.client_gone] {
            const auto until = Clock::now() + 10s;
            while (!gone.cancelled() && Clock::now() < until) {
                producer.stream->Push(": tick\n\n");
                std::this_thread::sleep_for(20ms);
            }
            if (gone.cancelled()) cancelled_at_ns = Clock::now().time_since_epoch().count();
            producer.stream->Finish();
        });
        return response;
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/stream")));
    RawClient::Response head;
    ASSERT_TRUE(client.ReadHead(head, Clock::now() + 2s));
    ASSERT_TRUE(client.ReadChunk(Clock::now() + 2s));
    const auto closed_at = Clock::now();
    client.Close();
    producer.thread.join();
    ASSERT_NE(cancelled_at_ns, 0);
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::time_point(Clock::duration(cancelled_at_ns.load())) - closed_at)
            .count();
    std::printf("stream client closed -> client_gone after %.2f ms\n", ms);
    EXPECT_LT(ms, 2000.0);
    EXPECT_FALSE(outcome.get_future().get().completed);
}

// ---- Deadlines ----------------------------------------------------------------------------------

TEST(EventServerTest, HeaderDeadlineClosesAClientTricklingItsHeaders) {
    auto options = Options();
    options.header_timeout = 500ms;
    TestServer server(options, Echo);
    RawClient client(server.port());
    const auto start = Clock::now();
    const std::string request = Get("/", "X-Slow: " + std::string(200, 'a') + "\r\n");
    bool closed = false;
    for (size_t i = 0; i < request.size() && !closed && MsSince(start) < 5000; ++i) {
        client.Send(std::string_view(&request[i], 1));  // fails once closed
        closed = client.WaitClosed(50ms);
    }
    const double ms = MsSince(start);
    std::printf("trickling client closed after %.0f ms (header_timeout 500 ms)\n", ms);
    EXPECT_TRUE(closed);
    EXPECT_GE(ms, 400.0);
    EXPECT_LT(ms, 3000.0);
    EXPECT_EQ(server.stats().header_timeouts, 1u);
}

TEST(EventServerTest, ConnectionThatSendsNothingIsClosedByTheHeaderDeadline) {
    auto options = Options();
    options.header_timeout = 300ms;
    TestServer server(options, Echo);
    RawClient client(server.port());
    EXPECT_TRUE(client.WaitClosed(3000ms));
    EXPECT_EQ(server.stats().header_timeouts, 1u);
}

TEST(EventServerTest, TrickledBodyIsCutByTheMinimumRate) {
    auto options = Options();
    options.body_timeout = 300ms;
    options.body_min_rate_bytes_per_s = 16 * 1024;
    std::atomic<int> calls{0};
    TestServer server(options, [&](HttpRequest& r) {
        ++calls;
        return Echo(r);
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /summarize HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"));
    const auto start = Clock::now();
    bool closed = false;
    while (!closed && MsSince(start) < 5000) {
        client.Send("x");
        closed = client.WaitClosed(50ms);
    }
    std::printf("trickled body cut after %.0f ms (body_timeout 300 ms + bytes / 16 KiB/s)\n", MsSince(start));
    EXPECT_TRUE(closed);
    EXPECT_LT(MsSince(start), 3000.0);
    EXPECT_EQ(server.stats().body_timeouts, 1u);
    EXPECT_EQ(calls, 0);
}

TEST(EventServerTest, SlowButSteadyUploadAboveTheRateIsNotCut) {
    auto options = Options();
    options.body_timeout = 300ms;
    options.body_min_rate_bytes_per_s = 16 * 1024;
    TestServer server(options, [](HttpRequest& request) { return JsonResponse(200, {{"bytes", request.body.size()}}); });
    RawClient client(server.port());
    const size_t total = 128 * 1024;  // at 64 KiB/s: 2 s, ~7x body_timeout
    ASSERT_TRUE(client.Send("POST /summarize HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n"));
    const auto start = Clock::now();
    const std::string piece(4096, 'y');
    for (size_t sent = 0; sent < total; sent += piece.size()) {
        ASSERT_TRUE(client.Send(piece)) << "cut after " << sent << " bytes";
        std::this_thread::sleep_for(62ms);
    }
    auto response = client.ReadResponse();
    std::printf("128 KiB uploaded at ~64 KiB/s in %.0f ms\n", MsSince(start));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["bytes"], total);
    EXPECT_EQ(server.stats().body_timeouts, 0u);
}

TEST(EventServerTest, IdleKeepAliveConnectionIsClosed) {
    auto options = Options();
    options.keep_alive_timeout = 300ms;
    TestServer server(options, Echo);
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/")));
    ASSERT_TRUE(client.ReadResponse());
    const auto start = Clock::now();
    EXPECT_TRUE(client.WaitClosed(3000ms));
    std::printf("idle keep-alive connection closed after %.0f ms (keep_alive_timeout 300 ms)\n", MsSince(start));
    EXPECT_GE(MsSince(start), 250.0);
    EXPECT_EQ(server.stats().idle_timeouts, 1u);
}

// ---- Connection caps ----------------------------------------------------------------------------

TEST(EventServerTest, ConnectionCapClosesTheOldestConnectionWithoutACompletedRequestFirst) {
    auto options = Options();
    options.max_connections = 3;
    options.max_connections_per_address = 0;
    TestServer server(options, Echo);
    RawClient a(server.port());  // the oldest, but it completes a request: closed last
    ASSERT_TRUE(a.Send(Get("/a")));
    ASSERT_TRUE(a.ReadResponse());
    RawClient b(server.port());
    WaitAccepted(server, 2);
    RawClient c(server.port());
    WaitAccepted(server, 3);

    RawClient d(server.port());
    EXPECT_TRUE(b.WaitClosed(2000ms)) << "the oldest fresh connection goes first";
    EXPECT_TRUE(a.StillOpen());
    EXPECT_TRUE(c.StillOpen());
    RawClient e(server.port());
    EXPECT_TRUE(c.WaitClosed(2000ms));
    EXPECT_TRUE(a.StillOpen());
    EXPECT_TRUE(d.StillOpen());

    // d and e are fresh; a has completed a request: d goes, then e, and only then a.
    RawClient f(server.port());
    EXPECT_TRUE(d.WaitClosed(2000ms));
    ASSERT_TRUE(a.Send(Get("/a-again")));
    auto response = a.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(server.stats().evicted, 3u);
}

TEST(EventServerTest, ConnectionCapNeverClosesARunningRequestAndRefusesInstead) {
    auto options = Options();
    options.max_connections = 2;
    std::atomic<int> running{0};
    std::atomic<bool> release{false};
    TestServer server(options, [&](HttpRequest& request) {
        ++running;
        while (!release && !request.client_gone.cancelled()) std::this_thread::sleep_for(1ms);
        return Echo(request);
    });
    RawClient a(server.port());
    RawClient b(server.port());
    ASSERT_TRUE(a.Send(Get("/a")));
    ASSERT_TRUE(b.Send(Get("/b")));
    ASSERT_TRUE(Eventually([&] { return running == 2; }));
    RawClient c(server.port());
    EXPECT_TRUE(c.WaitClosed(2000ms)) << "no room: the new connection is refused";
    release = true;
    EXPECT_TRUE(a.ReadResponse());
    EXPECT_TRUE(b.ReadResponse());
    EXPECT_EQ(server.stats().refused, 1u);
    EXPECT_EQ(server.stats().evicted, 0u);
}

TEST(EventServerTest, PerAddressCapClosesThatAddresssOldestConnection) {
    auto options = Options();
    options.max_connections_per_address = 2;
    TestServer server(options, Echo);
    RawClient x1(server.port(), "127.0.0.2");
    ASSERT_TRUE(x1.connected());
    WaitAccepted(server, 1);
    RawClient x2(server.port(), "127.0.0.2");
    WaitAccepted(server, 2);
    RawClient y1(server.port(), "127.0.0.3");
    WaitAccepted(server, 3);
    RawClient x3(server.port(), "127.0.0.2");
    EXPECT_TRUE(x1.WaitClosed(2000ms));
    EXPECT_TRUE(x2.StillOpen());
    EXPECT_TRUE(y1.StillOpen());
    ASSERT_TRUE(x3.Send(Get("/")));
    auto response = x3.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(json::parse(response->body)["remote_addr"], "127.0.0.2");
    ASSERT_TRUE(y1.Send(Get("/")));
    response = y1.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(json::parse(response->body)["remote_addr"], "127.0.0.3");
    EXPECT_EQ(server.stats().evicted, 1u);
}

// ---- Shutdown -----------------------------------------------------------------------------------

bool ConnectRefused(int port) {
    RawClient probe(port);
    return !probe.connected();
}

TEST(EventServerTest, GracefulStopDrainsARunningStreamClosesIdleConnectionsAndRefusesNewOnes) {
    Producer producer;
    std::promise<void> streaming;
    TestServer server(Options(), [&](HttpRequest& request) {
        if (request.path != "/stream") return Echo(request);
        HttpResponse response;
        response.content_type = "text/event-stream";
        response.stream = producer.stream;
        producer.thread = std::thread([&] {
            for (int i = 0; i < 10; ++i) {
                producer.stream->Push("data: " + std::to_string(i) + "\n\n");
                if (i == 0) streaming.set_value();
                std::this_thread::sleep_for(50ms);
            }
            producer.stream->Finish();
        });
        return response;
    });
    RawClient idle(server.port());
    ASSERT_TRUE(idle.Send(Get("/")));
    ASSERT_TRUE(idle.ReadResponse());
    RawClient streamer(server.port());
    ASSERT_TRUE(streamer.Send(Get("/stream")));
    streaming.get_future().wait();

    const auto stop_start = Clock::now();
    auto stopped = std::async(std::launch::async, [&] { server.server().Stop(5000ms); });
    EXPECT_TRUE(idle.WaitClosed(1000ms)) << "idle keep-alive connections are closed at once";
    EXPECT_TRUE(Eventually([&] { return ConnectRefused(server.port()); }, 1000ms)) << "new connections are refused";

    auto response = streamer.ReadResponse(5000ms);
    ASSERT_TRUE(response) << "the stream runs to its end";
    EXPECT_EQ(response->chunks.size(), 10u);
    EXPECT_TRUE(streamer.WaitClosed(2000ms)) << "and the connection is closed after it";
    ASSERT_EQ(stopped.wait_for(5s), std::future_status::ready);
    const double stop_ms = MsSince(stop_start);
    std::printf("Stop() returned after %.0f ms (the stream had ~450 ms to go)\n", stop_ms);
    EXPECT_GE(stop_ms, 300.0);
    EXPECT_LT(stop_ms, 4000.0);
    EXPECT_EQ(server.stats().clients_gone, 0u);
}

TEST(EventServerTest, StopCancelsWhatOutlivesTheGrace) {
    WaitingHandler handler;
    TestServer server(Options(), [&](HttpRequest& r) { return handler(r); });
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(Get("/long")));
    handler.started.get_future().wait();
    const auto start = Clock::now();
    server.server().Stop(200ms);
    const double ms = MsSince(start);
    std::printf("Stop(200 ms) with a request that never ends returned after %.0f ms\n", ms);
    EXPECT_GE(ms, 150.0);
    EXPECT_LT(ms, 3000.0);
    EXPECT_NE(handler.cancelled_at_ns, 0);
    EXPECT_TRUE(client.WaitClosed(1000ms));
}

TEST(EventServerTest, BindTwiceOnOnePortFails) {
    TestServer first(Options(), Echo);
    auto options = Options();
    options.port = first.port();
    EventServer second(options, Echo);
    auto bound = second.Bind();
    ASSERT_FALSE(bound.ok());
    // The system's reason, not the "Success" of the close() that followed the failed bind.
    EXPECT_NE(bound.error().message.find("in use"), std::string::npos) << bound.error().message;
}

}  // namespace
}  // namespace summarizer::testing
