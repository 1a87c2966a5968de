#include "summarizer/http_server.hpp"

#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "summarizer/routes.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kListenBacklog = 1024;

// The accepted socket of a request: httplib 0.11 does not expose it (nor is_connection_closed),
// so it is found by its two ports among this process's descriptors. -1 if not found.
int FindRequestSocket(int local_port, int remote_port) {
    if (remote_port <= 0 || local_port <= 0) return -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const int fd = std::atoi(entry.path().filename().c_str());
        sockaddr_storage local{}, peer{};
        socklen_t local_len = sizeof local, peer_len = sizeof peer;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
            getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
            continue;
        }
        auto port_of = [](const sockaddr_storage& a) -> int {
            if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
            if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
            return -1;
        };
        if (port_of(local) == local_port && port_of(peer) == remote_port) return fd;
    }
    return -1;
}

// True while the client is still connected: its socket has neither been closed by the peer (a
// zero-byte read) nor failed. Data waiting (a pipelined request) is fine.
bool SocketStillOpen(int fd) {
    if (fd < 0) return true;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLERR | POLLNVAL)) return false;
    char byte = 0;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

// Notices clients that leave while their request is handled (queued or summarizing) and cancels
// the request's client_gone token. httplib 0.11 gives a handler no view of its connection, so a
// request that has run for kAfter gets its socket looked up once and probed every kTick; short
// requests never pay for the lookup. The handler unwatches before httplib closes the socket.
class ConnectionWatcher {
public:
    ConnectionWatcher() : thread_([this] { Loop(); }) {}
    ~ConnectionWatcher() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    uint64_t Watch(int local_port, int remote_port, CancelToken token) {
        std::lock_guard lock(mutex_);
        watched_.emplace(next_, Entry{local_port, remote_port, std::move(token), Clock::now(), -2});
        return next_++;
    }
    void Unwatch(uint64_t id) {
        std::lock_guard lock(mutex_);
        watched_.erase(id);
    }

private:
    struct Entry {
        int local_port, remote_port;
        CancelToken token;
        Clock::time_point since;
        int fd;  // -2: not looked up yet
    };
    static constexpr auto kAfter = std::chrono::milliseconds(50);
    static constexpr auto kTick = std::chrono::milliseconds(25);

    void Loop() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            cv_.wait_for(lock, kTick);
            const auto now = Clock::now();
            for (auto it = watched_.begin(); it != watched_.end();) {
                Entry& e = it->second;
                if (now - e.since < kAfter) {
                    ++it;
                    continue;
                }
                if (e.fd == -2) e.fd = FindRequestSocket(e.local_port, e.remote_port);
                if (!SocketStillOpen(e.fd)) {
                    e.token.Cancel();
                    it = watched_.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::map<uint64_t, Entry> watched_;
    uint64_t next_ = 0;
    bool stopping_ = false;
    std::thread thread_;  // last: starts after the members it uses
};

// httplib's stop() also aborts every chunked response at its next write (it treats "no listening
// socket" as "shutting down"), which would cut the streams a graceful shutdown wants to finish.
// StopAccepting() only shuts the listening socket down: accept() fails, listen_after_bind()
// closes it and returns once the running requests are done, streams included.
class DrainableServer : public httplib::Server {
public:
    // httplib 0.11 listens with a backlog of 5: a burst of clients overflows it, and a connection
    // whose handshake the kernel dropped can hang for a minute before it is reset. Listening again
    // on the bound socket raises the backlog (Linux caps it at net.core.somaxconn).
    void RaiseBacklog(int backlog) {
        const auto sock = svr_sock_.load();
        if (sock != INVALID_SOCKET) ::listen(sock, backlog);
    }
    void StopAccepting() {
        const auto sock = svr_sock_.load();
        if (sock != INVALID_SOCKET) ::shutdown(sock, SHUT_RDWR);
    }
};

// httplib runs a request's handler and then its logger on one worker thread: the response's
// on_complete waits here for the logger (non-streamed responses).
thread_local std::function<void(const ResponseOutcome&)> t_pending_complete;

HttpRequest ToRequest(const httplib::Request& req) {
    HttpRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.query[k] = v;
    for (const auto& [k, v] : req.headers) r.headers.emplace(k, v);
    r.body = req.body;
    r.remote_addr = req.remote_addr;
    r.remote_port = req.remote_port;
    return r;
}

// Writes a streamed response's events as they come; a failed write or a client that is gone
// cancels the request.
void SetStream(httplib::Response& res, HttpResponse& response, const CancelToken& client_gone) {
    auto stream = response.stream;
    auto bytes = std::make_shared<size_t>(0);
    res.set_chunked_content_provider(
        response.content_type,
        [stream, bytes, client_gone](size_t, httplib::DataSink& sink) {
            for (;;) {
                std::string batch;
                switch (stream->Take(batch, std::chrono::milliseconds(10))) {
                    case EventStream::TakeResult::kData:
                        // Everything queued goes out in one write (one chunk, one send()).
                        if (!sink.write(batch.data(), batch.size())) {
                            client_gone.Cancel();
                            return false;
                        }
                        *bytes += batch.size();
                        return true;
                    case EventStream::TakeResult::kFinished:
                        sink.done();
                        return true;
                    case EventStream::TakeResult::kEmpty:
                        if (!sink.is_writable()) {
                            client_gone.Cancel();  // the client went away: stop the GPU work now
                            return false;
                        }
                }
            }
        },
        [bytes, client_gone, complete = std::move(response.on_complete)](bool success) {
            if (!success) client_gone.Cancel();
            if (complete) complete(ResponseOutcome{success, *bytes});
        });
}

void ToResponse(HttpResponse& response, httplib::Response& res, const CancelToken& client_gone) {
    res.status = response.status;
    for (const auto& [name, value] : response.headers) res.set_header(name, value);
    if (response.close_connection) res.set_header("Connection", "close");
    if (response.stream) {
        SetStream(res, response, client_gone);
        return;
    }
    if (!response.content_type.empty()) res.set_content(std::move(response.body), response.content_type);
    t_pending_complete = std::move(response.on_complete);
}

}  // namespace

struct HttpServer::Impl {
    const Config& config;
    Service& service;
    ApiRoutes routes;
    ConnectionWatcher watcher;
    DrainableServer server;
    int port = 0;
    std::atomic<bool> stopping{false};
    std::atomic<bool> run_called{false};

    Impl(const Config& c, Service& s) : config(c), service(s), routes(c, s) {}

    void Handle(const httplib::Request& req, httplib::Response& res) {
        HttpRequest request = ToRequest(req);
        const uint64_t watch = watcher.Watch(req.local_port, req.remote_port, request.client_gone);
        HttpResponse response = routes.Handle(request);
        watcher.Unwatch(watch);
        ToResponse(response, res, request.client_gone);
    }

    void Setup() {
        server.new_task_queue = [n = config.server.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
        server.set_tcp_nodelay(true);
        server.set_read_timeout(std::chrono::seconds(config.server.read_timeout_s));
        server.set_write_timeout(std::chrono::seconds(config.server.write_timeout_s));
        server.set_payload_max_length(static_cast<size_t>(config.server.max_body_bytes));
        server.set_keep_alive_max_count(1000);
        // An idle connection holds a worker thread: cut it as soon as a silent client would be.
        server.set_keep_alive_timeout(std::min(5, config.server.read_timeout_s));
        const auto handler = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
        server.Get(".*", handler);
        server.Post(".*", handler);
        server.Put(".*", handler);
        server.Patch(".*", handler);
        server.Delete(".*", handler);
        server.Options(".*", handler);
        // Errors httplib produced itself (413, 400 on a bad request line): the API's JSON body.
        server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                             httplib::Response& res) {
            if (!res.body.empty() || res.is_chunked_content_provider_ || res.status == 204 || res.status == 499) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            HttpRequest request = ToRequest(req);
            HttpResponse response = routes.TransportError(request, res.status);
            ToResponse(response, res, request.client_gone);
            return httplib::Server::HandlerResponse::Handled;
        }));
        server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown";
            try {
                if (ep) std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            spdlog::error("unhandled exception in the HTTP transport: {}", what);
            res.status = 500;
            res.set_content(R"({"error":{"code":"internal_error","message":"internal error","request_id":""}})",
                            "application/json");
        });
        server.set_logger([](const httplib::Request&, const httplib::Response& res) {
            auto complete = std::exchange(t_pending_complete, nullptr);
            if (complete) complete(ResponseOutcome{true, res.body.size()});
        });
    }
};

HttpServer::HttpServer(const Config& config, Service& service) : impl_(std::make_unique<Impl>(config, service)) {
    impl_->Setup();
}

HttpServer::~HttpServer() { Stop(0); }

Result<int> HttpServer::Bind() {
    const auto& cfg = impl_->config.server;
    if (cfg.port == 0) {
        int port = impl_->server.bind_to_any_port(cfg.host);
        if (port <= 0) return MakeError(ErrorCode::kInternal, "cannot bind " + cfg.host);
        impl_->port = port;
    } else {
        if (!impl_->server.bind_to_port(cfg.host, cfg.port)) {
            return MakeError(ErrorCode::kInternal, "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                                                       " (in use? set --port or SUMMARIZER_PORT)");
        }
        impl_->port = cfg.port;
    }
    impl_->server.RaiseBacklog(kListenBacklog);
    impl_->service.Start();  // the VRAM check and the hot bucket's preload, once we serve
    return impl_->port;
}

bool HttpServer::Run() {
    impl_->run_called = true;
    if (impl_->stopping) return true;
    // After StopAccepting() httplib reports the closed listening socket as a failure: it is not.
    return impl_->server.listen_after_bind() || impl_->stopping;
}

void HttpServer::Stop(int grace_s) {
    if (!impl_) return;
    Impl& impl = *impl_;
    const bool first = !impl.stopping.exchange(true);
    // No new connections; requests arriving on open keep-alive connections get 503.
    impl.service.BeginShutdown();
    if (first && impl.run_called) {
        // Run() may be about to listen: wait (briefly) until it does, so the shutdown reaches it.
        for (int i = 0; i < 500 && !impl.server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (impl.server.is_running()) impl.server.StopAccepting();
    }
    if (!first) {
        impl.service.CancelAll();
        return;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(std::max(0, grace_s));
    if (impl.service.inflight() + impl.service.queued() > 0) {
        spdlog::info("shutting down: waiting up to {} s for {} running and {} queued request(s)", grace_s,
                     impl.service.inflight(), impl.service.queued());
    }
    if (!impl.service.WaitIdle(deadline)) {
        int cancelled = impl.service.CancelAll();
        spdlog::warn("shutdown grace of {} s is over: cancelled {} request(s) upstream", grace_s, cancelled);
        // Cancelled calls close their upstream sockets within milliseconds; let the handlers answer.
        impl.service.WaitIdle(Clock::now() + std::chrono::seconds(5));
    }
}

Metrics& HttpServer::metrics() { return impl_->service.metrics(); }

}  // namespace summarizer
