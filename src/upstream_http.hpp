// What the engine clients (ollama_client.cpp, openai_client.cpp) share to talk HTTP to an inference
// server: clients with the time-outs and key they need (httplib, for the short JSON calls), the
// connection that streamed generate calls go over and a pool of idle keep-alive ones, and one
// watchdog thread that stops a call's connection when it is cancelled or a deadline passes.
// Internal to src/: the only files that include it include httplib.h too.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

// Whether an httplib call failed before it connected (refused, timed out): the server is
// unreachable, rather than broken off.
bool ConnectFailed(httplib::Error error);

class StreamConnection;

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
        StreamConnection* connection;
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

// One HTTP/1.1 keep-alive connection to an inference server for streamed generate calls: Beast's
// response parser and request serializer (Boost 1.74, already linked for the event server) over a
// blocking POSIX socket. Why not httplib::Client, which the short JSON calls still use: it polls the
// socket before every read and every write and sends a request's head and body in two writes, 9
// system calls and 2 TCP segments per call where this makes 2 (one sendmsg, one recv for a short
// answer) and 1; on the service's hot path that was a third of its CPU per request (issue #16).
// Time-outs are the watchdog's (first token, idle, total), which stops the connection; connecting has
// its own (Endpoint::connect_timeout_ms). An https:// server (a gateway in front of a fleet) is
// spoken to through httplib's TLS client, as before: TLS costs more per call than the system
// calls this saves.
//
// Thread safety: one call at a time, on the owner's thread; Stop() from any thread.
class StreamConnection {
public:
    // scheme://host:port (a path after it is ignored; the caller's paths carry any prefix).
    explicit StreamConnection(const Endpoint& endpoint);
    ~StreamConnection();
    StreamConnection(const StreamConnection&) = delete;
    StreamConnection& operator=(const StreamConnection&) = delete;

    struct Outcome {
        bool ok = false;              // the whole response was read
        bool connect_failed = false;  // no connection could be made (nothing was sent)
        std::string detail;           // why not, when !ok: "connection refused", "end of stream", ...
        int status = 0;               // the response's status; 0 when no head arrived
        std::string error_body;       // the body of a status other than 200 (its first 64 KiB)
    };
    // Called with each piece of a 200 answer's body as it arrives (chunked encoding removed); false
    // ends the call.
    using BodyCallback = std::function<bool(const char* data, size_t size)>;

    // POSTs `body` (JSON) to `path` and reads the response. Connects first if need be; a kept-alive
    // connection the server has closed meanwhile (nothing of the response came back) is replaced by
    // a new one and the request sent once more. A call cancelled by the time the head arrives ends
    // there (later, the watchdog's Stop() ends it).
    Outcome Post(const std::string& path, const std::string& body, const char* accept, const CancelToken& cancel,
                 const BodyCallback& on_body);

    // From any thread: shuts the socket down, so a blocked read or write returns at once; the call
    // fails and the connection is not reused.
    void Stop();

    // The last response was read to its end and the server keeps the connection open.
    bool reusable() const;

private:
    Outcome PostTls(const std::string& path, const std::string& body, const char* accept, const CancelToken& cancel,
                    const BodyCallback& on_body);

    static constexpr size_t kMaxErrorBody = 64 * 1024;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    bool reusable_ = false;
};

// Idle keep-alive connections for generate calls: a new TCP connection per call costs a connect() and
// a server thread, and a burst of them can overflow a small listen backlog (a 1 s SYN retry).
class ConnectionPool {
public:
    explicit ConnectionPool(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}
    std::unique_ptr<StreamConnection> Take();
    // Only connections whose last response was read to its end (reusable()) are kept.
    void Return(std::unique_ptr<StreamConnection> connection);

private:
    static constexpr size_t kMaxIdle = 64;
    const Endpoint endpoint_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<StreamConnection>> idle_;
};

// The kUpstreamTimeout (or kCancelled) error of a call the watchdog stopped; nullopt for kNone.
// `who` names the server in messages ("Ollama", "upstream vllm").
std::optional<Error> StopError(StopReason reason, const Deadlines& deadlines, const std::string& who);

}  // namespace summarizer::upstream_http
