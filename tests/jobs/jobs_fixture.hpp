// The real HttpServer and Service (in-process, real sockets) with durable jobs on a real job store
// (a SQLite file in a temporary directory unless a test brings another), against the fake Ollama.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "eventually.hpp"
#include "service_fixture.hpp"
#include "store_test_env.hpp"
#include "summarizer/jobs.hpp"

namespace summarizer::testing {

// Paragraphs of three sentences, each starting with its marker "[S<n>]" (the fake's default reply,
// "Summary: " + the start of a prompt's document, then names the chunk it summarized).
inline std::string MarkedText(int paragraphs) {
    static const char* sentences[] = {
        "The council met on Tuesday to discuss the budget for the new library and the repairs to the old bridge.",
        "Several residents asked why the bus timetable changed without notice, and the council promised a review.",
        "The engineers reported that the water pipes under the market square must be replaced within two years.",
        "A local school presented a plan to plant trees along the river, funded by a regional climate grant.",
    };
    std::string out;
    int sentence = 0;
    for (int i = 0; i < paragraphs; ++i) {
        for (int k = 0; k < 3; ++k) out += "[S" + std::to_string(sentence++) + "] " + sentences[(i + k) % 4] + " ";
        out += "\n\n";
    }
    return out;
}

// Map prompts carry a chunk of the document; merge prompts carry the partial summaries.
inline bool IsMapCall(const RecordedRequest& r) {
    return r.body.value("prompt", "").find("Summary: [S") == std::string::npos;
}

inline int MapCalls(const FakeOllama& fake) {
    int n = 0;
    for (const auto& r : fake.Requests()) n += IsMapCall(r) ? 1 : 0;
    return n;
}

class JobsTest : public ServiceTest {
protected:
    void SetUp() override {
        ServiceTest::SetUp();
        config.jobs.poll_ms = 50;
        config.jobs.lease_ms = 1500;
        config.routing.hierarchical_chunk_max_chars = 1500;
        config.ollama.num_parallel = 2;
        db_path = dir.File("jobs.db");
    }
    void TearDown() override { StopAll(); }

    // The service, its jobs on `store` (default: the SQLite file db_path) and the HTTP server.
    void StartJobs(std::unique_ptr<JobStore> store = nullptr) {
        if (!store) {
            auto opened = OpenSqliteJobStore(db_path);
            ASSERT_TRUE(opened.ok()) << opened.error().message;
            store = std::move(opened.value());
        }
        store_ = std::move(store);
        StartService();
        jobs = std::make_unique<Jobs>(config, *service, *store_);
        auto started = jobs->Start();
        ASSERT_TRUE(started.ok()) << started.error().message;
    }
    void StopAll() {
        if (server) server->Stop();
        if (thread.joinable()) thread.join();
        jobs.reset();
        StopService();
        store_.reset();
    }

    httplib::Result Submit(const nlohmann::json& body, httplib::Headers headers = {}) {
        return Http().Post("/jobs", headers, body.dump(), "application/json");
    }
    // POST /jobs that must succeed: the job's id.
    std::string SubmitOk(const nlohmann::json& body, httplib::Headers headers = {}) {
        auto res = Submit(body, std::move(headers));
        if (!res || (res->status != 202 && res->status != 200)) {
            ADD_FAILURE() << "POST /jobs: " << (res ? std::to_string(res->status) + " " + res->body : "no answer");
            return "";
        }
        return nlohmann::json::parse(res->body).value("id", "");
    }
    nlohmann::json GetJob(const std::string& id) {
        auto res = Http().Get("/jobs/" + id);
        if (!res || res->status != 200) return nlohmann::json{{"http_status", res ? res->status : 0}};
        return nlohmann::json::parse(res->body);
    }
    // Polls GET /jobs/{id} until the job is done, failed or cancelled (or `limit` passes).
    nlohmann::json WaitFinished(const std::string& id, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            nlohmann::json job = GetJob(id);
            const std::string state = job.value("state", "");
            if (state == "done" || state == "failed" || state == "cancelled") return job;
            if (std::chrono::steady_clock::now() >= until) return job;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    // GET /jobs/{id}/events to its end: (id, event, data).
    struct SseItem {
        int64_t seq = 0;
        std::string event;
        nlohmann::json data;
    };
    std::vector<SseItem> Events(const std::string& id, const std::string& last_event_id = "") {
        httplib::Headers headers;
        if (!last_event_id.empty()) headers.emplace("Last-Event-ID", last_event_id);
        auto res = Http().Get("/jobs/" + id + "/events", headers);
        std::vector<SseItem> items;
        if (!res || res->status != 200) {
            ADD_FAILURE() << "GET events: " << (res ? std::to_string(res->status) + " " + res->body : "no answer");
            return items;
        }
        for (SseEvent& e : SseReader().Feed(res->body)) {
            items.push_back(SseItem{e.id.empty() ? 0 : std::stoll(e.id), e.event, nlohmann::json::parse(e.data)});
        }
        return items;
    }

    TempDir dir;
    std::string db_path;
    std::unique_ptr<JobStore> store_;
    std::unique_ptr<Jobs> jobs;
};

}  // namespace summarizer::testing
