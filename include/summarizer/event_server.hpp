// An event-driven HTTP/1.1 server for the transport-independent types of http_types.hpp: the
// transport that replaces cpp-httplib's server, so that a connection costs nothing while it
// waits (issue #16).
//
// Why Boost.Beast on Boost.Asio: it is the de-facto standard C++ HTTP library on Asio, packaged
// by Debian (libboost-dev 1.74, header-only), event-driven, and its request parser is fuzzed
// upstream. cpp-httplib 0.11's server holds one worker thread per open connection and knows
// only per-read time-outs, so clients trickling a byte a second, or a pool of idle keep-alive
// connections, take every worker. Beast's template-heavy code stays in src/event_server.cpp;
// this header shows none of it.
//
// Threads and flow:
// - `io_threads` I/O threads run every socket: accepting, reading a request's headers and body,
//   writing responses and streams, and every deadline. None of it blocks; a waiting
//   connection is a socket, a timer and a few hundred bytes.
// - A complete request goes to a pool of at most `worker_threads` threads that runs the
//   HttpHandler (which may block for minutes). A connection has at most one request in the
//   pool at a time (pipelined requests wait their turn), so the pool's queue is bounded by the
//   number of connections.
// - The response is written back on the I/O thread. A streamed response (HttpResponse::stream)
//   is sent with chunked transfer-encoding: the stream's wake-up callback posts to the
//   connection, which writes whatever is queued as one chunk at once (no buffering, no
//   compression); a slow reader holds only its socket (and what its producer has queued in
//   the EventStream meanwhile), never a thread.
// - While the handler runs and while the response is written, the connection keeps reading:
//   end of stream or a reset cancels HttpRequest::client_gone at once (as does a failed write
//   of a stream). A client that shuts down its sending side while it waits is taken as gone,
//   as Go's net/http does. Bytes that arrive meanwhile (a pipelined request) are kept for the next
//   request, up to `max_header_bytes`; beyond that the connection stops reading until the
//   response is written, and a disconnect is then noticed by the write.
//
// Thread safety: Bind() and Start() are called by the owner; Stop() and Wait() from any thread
// but a handler or an I/O thread (typically Stop() from a signal-waiting thread, Wait() from
// main). stats() may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "summarizer/error.hpp"
#include "summarizer/http_types.hpp"

namespace summarizer {

// A request the transport answered itself, without calling the handler (400, 413, 431), for the
// owner's access log and metrics.
struct RejectedRequest {
    int status = 400;
    std::string method;      // as sent, or "" when the request line could not be read
    std::string target;      // the raw request target, or ""
    std::string remote_addr;
    int remote_port = 0;
    std::string request_id;  // the X-Request-Id sent in the response
    std::string reason;      // the error message of the JSON body
};

struct EventServerOptions {
    // Address to listen on; an IP literal or a host name ("localhost").
    std::string host = "127.0.0.1";
    // TCP port; 0: any free port (Bind() returns the one chosen).
    int port = 0;
    // Pending connections the kernel queues before accept (listen(2) backlog; capped by
    // net.core.somaxconn).
    int listen_backlog = 1024;

    // Threads that run every socket. One is enough for thousands of connections (they only
    // parse and copy); more only if a profile shows the I/O thread busy.
    int io_threads = 1;
    // At most this many handlers run at once; threads are started as needed and kept. Requests
    // beyond it wait in arrival order. Size it above what the handler can block at once (the
    // service's admission: max_inflight + max_queue) plus room for the quick endpoints, which
    // otherwise wait behind blocked summaries.
    int worker_threads = 128;

    // Total time, from the moment a connection is accepted (or the first byte of a later
    // request on a kept-alive connection arrives), for the request line and headers: 10 s, as
    // Go's ReadHeaderTimeout is commonly set. A client trickling its headers is cut after it,
    // however regularly it sends.
    std::chrono::milliseconds header_timeout{10'000};
    // The body must arrive at a minimum average rate: at any moment t after the headers, the
    // bytes received must satisfy  t <= body_timeout + received / body_min_rate.
    // Counted on bytes received, not on the declared Content-Length, so a 1-byte/s trickle
    // that declares 16 MiB is cut after ~body_timeout, not after minutes. A fast start buys
    // time for a later stall (TCP stalls on real links); a client at or above the rate is
    // never cut, however large its body.
    std::chrono::milliseconds body_timeout{10'000};
    // 16 KiB/s (128 kbit/s): below any link anyone uploads a text over (a poor mobile uplink is
    // 0.5-1 Mbit/s), far above a trickle. At it, the largest body (16 MiB) takes ~17 minutes.
    size_t body_min_rate_bytes_per_s = 16 * 1024;
    // Bodies above this are refused with 413 `payload_too_large` (at once when Content-Length
    // says so, else when the chunked body passes it). 16 MiB: server.max_body_bytes's default.
    size_t max_body_bytes = 16 * 1024 * 1024;
    // Request line plus headers above this: 431. 16 KiB holds any real header set (bearer
    // tokens, cookies) and bounds what a stalled connection can make us hold.
    size_t max_header_bytes = 16 * 1024;
    // A kept-alive connection with no request for this long is closed. 5 s, as httplib's
    // default and below the 60 s most proxies and browsers keep an idle connection, so the
    // client closes first in the usual case.
    std::chrono::milliseconds keep_alive_timeout{5'000};
    // A write that makes no progress for this long (the client stopped reading) closes the
    // connection and cancels client_gone. Counted per write and reset by every byte the kernel
    // takes, so a slow reader that keeps reading is never cut; a stream that waits for its
    // producer has no write pending and no deadline at all.
    std::chrono::milliseconds write_timeout{30'000};
    // After the last response on a connection, how long to read and discard what the client
    // still sends before closing, so that the response (a 413 sent before the body was read)
    // is not destroyed by a TCP reset.
    std::chrono::milliseconds linger_timeout{2'000};

    // Open connections at most. Above it, the oldest connection that has not completed a
    // request (and is not being answered) is closed first, then the one idle longest between
    // requests; a connection whose request is running is never closed; when every connection
    // is running one, the new connection is refused. Also kept below the open-file limit
    // (RLIMIT_NOFILE less 128 descriptors for everything else).
    size_t max_connections = 10'000;
    // Open connections from one client address at most, with the same choice of which to close.
    // 1,000: one host cannot take the whole server; behind a reverse proxy (every connection
    // from its address) raise it to max_connections, or 0 for no per-address cap.
    size_t max_connections_per_address = 1'000;
    // Raise the process's soft open-file limit to its hard limit at Bind() (as Go does at
    // start-up), since the Debian default soft limit of 1,024 is below max_connections.
    bool raise_open_file_limit = true;

    // Called (on an I/O thread; must not block) for every request the transport answered
    // itself. Optional.
    std::function<void(const RejectedRequest&)> on_rejected;
};

// Counters since Start(). Each "closed by" counter counts connections.
struct EventServerStats {
    size_t open_connections = 0;
    uint64_t accepted = 0;
    uint64_t refused = 0;          // closed at accept: every connection (of the address) was busy
    uint64_t evicted = 0;          // closed to make room for a new connection
    uint64_t requests = 0;         // handed to the handler
    uint64_t rejected = 0;         // answered by the transport (400, 413, 431)
    uint64_t header_timeouts = 0;
    uint64_t body_timeouts = 0;
    uint64_t idle_timeouts = 0;
    uint64_t write_timeouts = 0;
    uint64_t clients_gone = 0;     // client_gone cancelled because the client left mid-request
    uint64_t handler_exceptions = 0;
};

class EventServer {
public:
    // `handler` is called on worker threads, concurrently.
    EventServer(EventServerOptions options, HttpHandler handler);
    // Stops with no grace if still running.
    ~EventServer();
    EventServer(const EventServer&) = delete;
    EventServer& operator=(const EventServer&) = delete;

    // Binds and listens on options.host:port. Returns the bound port; kInternal with the
    // system's message when the address cannot be resolved or bound.
    Result<int> Bind();
    // Starts the I/O threads and accepting. Returns at once. Requires a successful Bind().
    Status Start();
    // The first half of Stop(): stops accepting at once (new connections are refused) and closes
    // idle connections (waiting for a request or still reading a request's headers); the rest go
    // on, each closed after its response, until Stop(). For an owner that has work of its own to
    // wind down before the connections are cut (the service's grace period). Returns once the
    // listening socket is closed; does nothing unless the server runs. Idempotent.
    void StopAccepting();
    // Stops accepting at once (new connections are refused), closes idle connections (waiting
    // for a request or still reading a request's headers), lets the rest (a body being read, a
    // handler running, a response or stream being written) finish within `grace`, each
    // connection closed after its response (which says "Connection: close" unless its head was
    // already sent). Then cancels client_gone of what is left, closes every connection, waits
    // for the running handlers to return, and joins every thread. A handler that ignores
    // client_gone delays the return. Idempotent.
    void Stop(std::chrono::milliseconds grace);
    // Blocks until Stop() has finished (for an owner whose main thread only waits); returns at
    // once if the server was never started.
    void Wait();

    // The bound port, 0 before Bind().
    int port() const;
    EventServerStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace summarizer
