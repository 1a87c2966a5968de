// Runs the real HttpServer (in-process, real sockets) against the fake Ollama.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fake_ollama.hpp"
#include "summarizer/config.hpp"
#include "summarizer/http_server.hpp"
#include "summarizer/ollama_client.hpp"
#include "summarizer/service.hpp"
#include "summarizer/sse.hpp"

namespace summarizer::testing {

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        config.server.port = 0;
        config.ollama.url = fake.url();
        config.ollama.retry_backoff_ms = 10;
        config.ollama.idle_timeout_s = 2;
        config.ollama.first_token_timeout_s = 3;
        // Tests count the fake's requests: no start-up load unless a test asks for it.
        config.vram.preload_hot_bucket = false;
    }
    void TearDown() override { StopService(); }

    // Call after adjusting `config`.
    void StartService() {
        service = std::make_unique<Service>(config);
        server = std::make_unique<HttpServer>(config, *service);
        auto bound = server->Bind();
        ASSERT_TRUE(bound.ok()) << bound.error().message;
        port = *bound;
        thread = std::thread([this] { server->Run(); });
    }
    void StopService() {
        if (server) server->Stop();
        if (thread.joinable()) thread.join();
        server.reset();
        service.reset();
    }

    httplib::Client Http() {
        httplib::Client c("127.0.0.1", port);
        c.set_tcp_nodelay(true);
        c.set_read_timeout(std::chrono::seconds(30));
        return c;
    }

    httplib::Result PostJson(const nlohmann::json& body, httplib::Headers headers = {}) {
        return Http().Post("/summarize", headers, body.dump(), "application/json");
    }

    FakeOllama fake;
    Config config;
    std::unique_ptr<Service> service;
    std::unique_ptr<HttpServer> server;
    std::thread thread;
    int port = 0;
};

// POST /summarize read as it streams: `received` grows with each piece of the body, and `on_data`
// sees it so far after each; returning false disconnects.
inline httplib::Error StreamSummarize(int port, const nlohmann::json& body, std::string& received,
                                      const std::function<bool(const std::string&)>& on_data = nullptr,
                                      httplib::Headers headers = {}) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(std::chrono::seconds(30));
    httplib::Request req;
    req.method = "POST";
    req.path = "/summarize";
    req.headers = std::move(headers);
    req.headers.emplace("Content-Type", "application/json");
    req.body = body.dump();
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
        received.append(data, length);
        return on_data ? on_data(received) : true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    client.send(req, res, error);
    return error;
}

// Reads an SSE body into (event, data) pairs, the data parsed as JSON (throws if it is not).
inline std::vector<std::pair<std::string, nlohmann::json>> ParseSse(const std::string& body) {
    std::vector<std::pair<std::string, nlohmann::json>> events;
    for (SseEvent& event : SseReader().Feed(body)) {
        events.emplace_back(std::move(event.event), nlohmann::json::parse(event.data));
    }
    return events;
}

}  // namespace summarizer::testing
