// What the engine clients (ollama_client.cpp, openai_client.cpp) share to talk HTTP to an inference
// server: clients with the time-outs and key they need, a pool of idle keep-alive connections, and
// one watchdog thread that stops a call's connection when it is cancelled or a deadline passes.
// Internal to src/: the only files that include it include httplib.h too.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "summarizer/error.hpp"
#include "summarizer/llm_engine.hpp"

namespace summarizer::upstream_http {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start);

// Where and how to reach one server.
struct Endpoint {
    std::string base_url;     // scheme://host:port
    std::string path_prefix;  // prepended to every path ("" or "/gateway")
    std::string api_key;      // `Authorization: Bearer`; empty: none
    int connect_timeout_ms = 3000;
};

// "scheme://host:port/prefix" -> {"scheme://host:port", "/prefix"}.
Endpoint SplitUrl(const std::string& url);

std::unique_ptr<httplib::Client> MakeClient(const Endpoint& endpoint, std::chrono::milliseconds read_timeout,
                                            bool keep_alive = false);

// Why the watchdog closed a call's connection.
enum class StopReason { kNone, kCancelled, kFirstTokenTimeout, kIdleTimeout, kTotalTimeout };

struct Deadlines {
    int first_token_timeout_s = 300;  // request sent -> first byte of the body
    int idle_timeout_s = 60;          // silence between two pieces
    int total_timeout_s = 1800;       // the whole call
};

// One thread watching every call in flight: its cancel flag and deadlines. It stops the call's
// connection when the call must end, so a blocked read returns at once. It ticks while calls run and
// sleeps once none has for a second.
class Watchdog {
public:
    struct Call {
        const Deadlines* deadlines;
        const CancelToken* cancel;
        httplib::Client* client;
        Clock::time_point start;
        const std::atomic<int64_t>* last_piece_ns;  // ns since start of the last piece; 0 = none yet
        std::atomic<StopReason>* stop_reason;
        bool stopped = false;
    };

    Watchdog();
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    uint64_t Add(const Call& call);
    // After this returns the watchdog never touches the call again.
    void Remove(uint64_t id);

private:
    void Loop();
    // Stops the calls that were cancelled or ran out of time. Requires mutex_.
    void CheckCalls();

    static constexpr std::chrono::milliseconds kTick{5};
    static constexpr std::chrono::seconds kIdleAfter{1};

    std::mutex mutex_;
    std::condition_variable wake_;
    std::map<uint64_t, Call> calls_;
    uint64_t next_id_ = 0;
    bool stopping_ = false;
    bool asleep_ = false;  // in the untimed wait: a new call must wake it
    std::thread thread_;   // last: starts after the members it uses
};

// Idle keep-alive connections for generate calls: a new TCP connection per call costs a connect() and
// a server thread, and a burst of them can overflow a small listen backlog (a 1 s SYN retry).
class ClientPool {
public:
    ClientPool(Endpoint endpoint, std::chrono::milliseconds read_timeout)
        : endpoint_(std::move(endpoint)), read_timeout_(read_timeout) {}
    std::unique_ptr<httplib::Client> Take();
    // Only connections whose last response was read to its end come back.
    void Return(std::unique_ptr<httplib::Client> client);

private:
    static constexpr size_t kMaxIdle = 64;
    const Endpoint endpoint_;
    const std::chrono::milliseconds read_timeout_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<httplib::Client>> idle_;
};

// The kUpstreamTimeout (or kCancelled) error of a call the watchdog stopped; nullopt for kNone.
// `who` names the server in messages ("Ollama", "upstream vllm").
std::optional<Error> StopError(StopReason reason, const Deadlines& deadlines, const std::string& who);

}  // namespace summarizer::upstream_http
