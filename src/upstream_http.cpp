#include "upstream_http.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>

#include "summarizer/task_pool.hpp"

namespace summarizer::upstream_http {

double MsSince(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Endpoint SplitUrl(const std::string& url) {
    Endpoint e;
    const auto scheme_end = url.find("://");
    const auto slash = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    e.base_url = url.substr(0, slash);
    if (slash != std::string::npos) e.path_prefix = url.substr(slash);
    return e;
}

std::unique_ptr<httplib::Client> MakeClient(const Endpoint& endpoint, std::chrono::milliseconds read_timeout,
                                            bool keep_alive) {
    auto client = std::make_unique<httplib::Client>(endpoint.base_url);
    client->set_tcp_nodelay(true);
    client->set_keep_alive(keep_alive);
    client->set_connection_timeout(std::chrono::milliseconds(endpoint.connect_timeout_ms));
    client->set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read_timeout));
    client->set_write_timeout(std::chrono::seconds(30));
    if (!endpoint.api_key.empty()) client->set_bearer_token_auth(endpoint.api_key);
    return client;
}

bool ConnectFailed(httplib::Error error) {
    return error == httplib::Error::Connection || error == httplib::Error::ConnectionTimeout;
}

Watchdog::Watchdog() : thread_([this] { Loop(); }) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

uint64_t Watchdog::Add(const Call& call) {
    uint64_t id;
    bool asleep;
    {
        std::lock_guard lock(mutex_);
        id = ++next_id_;
        calls_.emplace(id, call);
        asleep = asleep_;
    }
    // A ticking watchdog sees the call within a tick; waking it for every call would cost a context
    // switch per request.
    if (asleep) wake_.notify_all();
    return id;
}

void Watchdog::Remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    calls_.erase(id);
}

void Watchdog::Loop() {
    std::unique_lock lock(mutex_);
    auto last_busy = Clock::now();
    while (!stopping_) {
        if (!calls_.empty()) {
            last_busy = Clock::now();
        } else if (Clock::now() - last_busy > kIdleAfter) {
            asleep_ = true;
            wake_.wait(lock, [&] { return stopping_ || !calls_.empty(); });
            asleep_ = false;
            last_busy = Clock::now();
            continue;
        }
        wake_.wait_for(lock, kTick);
        // This thread's exception boundary: a stray exception is logged and the watchdog goes on.
        (void)CatchAll("upstream watchdog", [&]() -> std::optional<Error> {
            CheckCalls();
            return std::nullopt;
        });
    }
}

void Watchdog::CheckCalls() {
    for (auto& [id, call] : calls_) {
        if (call.stopped) continue;
        const Deadlines& d = *call.deadlines;
        StopReason reason = StopReason::kNone;
        const double elapsed_s = MsSince(call.start) / 1000.0;
        const int64_t last = call.last_piece_ns->load();
        if (call.cancel->cancelled()) {
            reason = StopReason::kCancelled;
        } else if (elapsed_s > d.total_timeout_s) {
            reason = StopReason::kTotalTimeout;
        } else if (last == 0 && elapsed_s > d.first_token_timeout_s) {
            reason = StopReason::kFirstTokenTimeout;
        } else if (last > 0 && elapsed_s - static_cast<double>(last) / 1e9 > d.idle_timeout_s) {
            reason = StopReason::kIdleTimeout;
        }
        if (reason != StopReason::kNone) {
            *call.stop_reason = reason;
            call.stopped = true;
            call.connection->Stop();  // shuts the socket down
        }
    }
}

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

// A blocking socket as Beast's SyncReadStream and SyncWriteStream: one recv per read, one sendmsg
// (the head and the body gathered) per write, nothing else.
class FdStream {
public:
    explicit FdStream(int fd) : fd_(fd) {}
    size_t received() const { return received_; }

    template <class MutableBufferSequence>
    size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
        for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers);
             ++it) {
            boost::asio::mutable_buffer b = *it;
            if (b.size() == 0) continue;
            for (;;) {
                const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
                if (n > 0) {
                    ec = {};
                    received_ += static_cast<size_t>(n);
                    return static_cast<size_t>(n);
                }
                if (n == 0) {
                    ec = boost::asio::error::eof;
                    return 0;
                }
                if (errno == EINTR) continue;
                ec = beast::error_code(errno, boost::system::system_category());
                return 0;
            }
        }
        ec = {};
        return 0;
    }
    template <class MutableBufferSequence>
    size_t read_some(const MutableBufferSequence& buffers) {
        return OrThrow([&](beast::error_code& ec) { return read_some(buffers, ec); });
    }

    template <class ConstBufferSequence>
    size_t write_some(const ConstBufferSequence& buffers, beast::error_code& ec) {
        iovec iov[64];
        size_t count = 0;
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers) && count < std::size(iov); ++it) {
            boost::asio::const_buffer b = *it;
            if (b.size() == 0) continue;
            iov[count++] = {const_cast<void*>(b.data()), b.size()};
        }
        if (count == 0) {
            ec = {};
            return 0;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        for (;;) {
            const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
            if (n >= 0) {
                ec = {};
                return static_cast<size_t>(n);
            }
            if (errno == EINTR) continue;
            ec = beast::error_code(errno, boost::system::system_category());
            return 0;
        }
    }
    template <class ConstBufferSequence>
    size_t write_some(const ConstBufferSequence& buffers) {
        return OrThrow([&](beast::error_code& ec) { return write_some(buffers, ec); });
    }

private:
    // The throwing forms the stream concepts ask for (Beast's algorithms used here take the error_code ones).
    template <class F>
    static size_t OrThrow(F f) {
        beast::error_code ec;
        const size_t n = f(ec);
        if (ec) throw boost::system::system_error(ec);
        return n;
    }

    int fd_;
    size_t received_ = 0;
};

// "http://host:port/..." -> host ("[::1]" without brackets) and port (80 when none).
void SplitAuthority(const std::string& base_url, std::string& host, std::string& port) {
    std::string rest = base_url;
    if (auto scheme = rest.find("://"); scheme != std::string::npos) rest = rest.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        host = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        port = close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2)
                                                                                               : "80";
        return;
    }
    const auto colon = rest.rfind(':');
    host = rest.substr(0, colon);
    port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
}

}  // namespace

struct StreamConnection::Impl {
    std::string host, port, host_header, api_key;
    int connect_timeout_ms = 3000;

    std::unique_ptr<httplib::Client> tls;  // https: httplib's TLS client instead of the socket below

    std::mutex mutex;  // fd and stopped, between the owner's connect/close and Stop()
    int fd = -1;
    bool stopped = false;
    int calls = 0;  // responses read to their end on this connection
    beast::flat_buffer buffer;

    bool Stopped() {
        std::lock_guard lock(mutex);
        return stopped;
    }

    // Closes the connection after a failed read or write, and says why it failed.
    std::string CloseAfter(const beast::error_code& ec, bool was_stopped) {
        Close();
        if (was_stopped) return "cancelled";
        return ec == http::error::end_of_stream ? "end of stream" : ec.message();
    }

    void Close() {
        std::lock_guard lock(mutex);
        if (fd >= 0) ::close(fd);
        fd = -1;
        buffer.clear();
        calls = 0;
    }

    // Connects within connect_timeout_ms, checking for Stop() every 50 ms. "" or why not.
    std::string Connect() {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* found = nullptr;
        if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
            return "cannot resolve " + host + ": " + ::gai_strerror(rc);
        }
        std::string why = "no address for " + host;
        const auto deadline = Clock::now() + std::chrono::milliseconds(connect_timeout_ms);
        for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
            const int s = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
            if (s < 0) {
                why = std::string("socket: ") + std::strerror(errno);
                continue;
            }
            int err = ::connect(s, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
            if (err == EINPROGRESS) {
                err = ETIMEDOUT;
                for (;;) {
                    if (Stopped()) {
                        err = ECANCELED;
                        break;
                    }
                    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                    if (left.count() <= 0) break;
                    pollfd p{s, POLLOUT, 0};
                    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50)));
                    if (ready > 0) {
                        socklen_t len = sizeof err;
                        if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
                        break;
                    }
                    if (ready < 0 && errno != EINTR) {
                        err = errno;
                        break;
                    }
                }
            }
            if (err == 0) {
                ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) & ~O_NONBLOCK);
                const int one = 1;
                ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                std::lock_guard lock(mutex);
                if (stopped) {
                    ::close(s);
                    ::freeaddrinfo(found);
                    return "cancelled";
                }
                fd = s;
                // Beast reads what the buffer can hold without growing: room for a whole short
                // answer in one recv (it starts at 512 bytes).
                buffer.reserve(16 * 1024);
                ::freeaddrinfo(found);
                return "";
            }
            ::close(s);
            why = err == ETIMEDOUT ? "connect timed out after " + std::to_string(connect_timeout_ms) + " ms"
                  : err == ECANCELED ? "cancelled"
                                     : std::string(std::strerror(err));
            if (err == ECANCELED) break;
        }
        ::freeaddrinfo(found);
        return why;
    }
};

StreamConnection::StreamConnection(const Endpoint& endpoint) : impl_(std::make_unique<Impl>()) {
    SplitAuthority(endpoint.base_url, impl_->host, impl_->port);
    impl_->host_header = impl_->host.find(':') != std::string::npos ? "[" + impl_->host + "]:" + impl_->port
                                                                     : impl_->host + ":" + impl_->port;
    impl_->api_key = endpoint.api_key;
    impl_->connect_timeout_ms = endpoint.connect_timeout_ms;
    if (endpoint.base_url.rfind("https://", 0) == 0) {
        // Its read time-out only backs the watchdog up, which ends calls on its deadlines.
        impl_->tls = MakeClient(endpoint, std::chrono::hours(24), /*keep_alive=*/true);
    }
}

StreamConnection::~StreamConnection() { impl_->Close(); }

bool StreamConnection::reusable() const {
    std::lock_guard lock(impl_->mutex);
    return reusable_ && !impl_->stopped;
}

void StreamConnection::Stop() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopped = true;
    if (impl_->fd >= 0) ::shutdown(impl_->fd, SHUT_RDWR);
    if (impl_->tls) impl_->tls->stop();
}

StreamConnection::Outcome StreamConnection::PostTls(const std::string& path, const std::string& body,
                                                    const char* accept, const CancelToken& cancel,
                                                    const BodyCallback& on_body) {
    Outcome outcome;
    httplib::Request request;
    request.method = "POST";
    request.path = path;
    request.body = body;
    request.headers.emplace("Content-Type", "application/json");
    request.headers.emplace("Accept", accept);
    request.response_handler = [&](const httplib::Response& response) {
        outcome.status = response.status;
        return !cancel.cancelled();
    };
    request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
        if (outcome.status != 200) {
            if (outcome.error_body.size() < kMaxErrorBody) outcome.error_body.append(data, size);
            return true;
        }
        return on_body(data, size);
    };
    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    outcome.ok = impl_->tls->send(request, response, error);
    if (!outcome.ok) {
        outcome.connect_failed = ConnectFailed(error);
        outcome.detail = httplib::to_string(error);
    }
    reusable_ = outcome.ok;  // httplib keeps its connection alive, or opens a new one, itself
    return outcome;
}

StreamConnection::Outcome StreamConnection::Post(const std::string& path, const std::string& body, const char* accept,
                                                 const CancelToken& cancel, const BodyCallback& on_body) {
    reusable_ = false;
    Impl& c = *impl_;
    if (c.tls) return PostTls(path, body, accept, cancel, on_body);
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, c.host_header);
    request.set(http::field::user_agent, "summarizer");
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, accept);
    if (!c.api_key.empty()) request.set(http::field::authorization, "Bearer " + c.api_key);
    request.keep_alive(true);
    request.body() = body;
    request.prepare_payload();

    Outcome outcome;
    for (int attempt = 0;; ++attempt) {
        const bool reused = c.fd >= 0 && c.calls > 0;
        if (c.fd < 0) {
            if (auto why = c.Connect(); !why.empty()) {
                outcome.connect_failed = why != "cancelled";
                outcome.detail = why;
                return outcome;
            }
        }
        FdStream stream(c.fd);
        beast::error_code ec;
        http::write(stream, request, ec);
        http::response_parser<http::buffer_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        if (!ec) http::read_header(stream, c.buffer, parser, ec);
        if (ec) {
            // A kept-alive connection the server closed while it sat idle: nothing came back. Once
            // more on a new one (the server saw no request, or at most one it could not answer).
            const bool stopped = c.Stopped();
            std::string why = c.CloseAfter(ec, stopped);
            if (reused && attempt == 0 && stream.received() == 0 && !stopped) continue;
            outcome.detail = std::move(why);
            return outcome;
        }
        outcome.status = static_cast<int>(parser.get().result_int());
        if (cancel.cancelled()) {
            c.Close();
            outcome.detail = "cancelled";
            return outcome;
        }
        char piece[16 * 1024];
        while (!parser.is_done()) {
            parser.get().body().data = piece;
            parser.get().body().size = sizeof piece;
            http::read_some(stream, c.buffer, parser, ec);
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                outcome.detail = c.CloseAfter(ec, c.Stopped());
                return outcome;
            }
            const size_t n = sizeof piece - parser.get().body().size;
            if (n > 0 && outcome.status != 200) {
                if (outcome.error_body.size() < kMaxErrorBody) outcome.error_body.append(piece, n);
            } else if (n > 0 && !on_body(piece, n)) {
                c.Close();
                outcome.detail = "ended by the caller";
                return outcome;
            }
        }
        ++c.calls;
        reusable_ = parser.get().keep_alive() && c.buffer.size() == 0;
        if (!reusable_) c.Close();
        outcome.ok = true;
        return outcome;
    }
}

std::unique_ptr<StreamConnection> ConnectionPool::Take() {
    {
        std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            auto connection = std::move(idle_.back());
            idle_.pop_back();
            return connection;
        }
    }
    return std::make_unique<StreamConnection>(endpoint_);
}

void ConnectionPool::Return(std::unique_ptr<StreamConnection> connection) {
    if (!connection->reusable()) return;
    std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(connection));
}

std::optional<Error> StopError(StopReason reason, const Deadlines& d, const std::string& who) {
    switch (reason) {
        case StopReason::kCancelled: return MakeError(ErrorCode::kCancelled, "cancelled; upstream connection closed");
        case StopReason::kFirstTokenTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             who + " sent nothing for " + std::to_string(d.first_token_timeout_s) +
                                 " s (ollama.first_token_timeout_s)",
                             true);
        case StopReason::kIdleTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             who + " went silent for " + std::to_string(d.idle_timeout_s) +
                                 " s mid-stream (ollama.idle_timeout_s)",
                             true);
        case StopReason::kTotalTimeout:
            return MakeError(ErrorCode::kUpstreamTimeout,
                             "the " + who + " call took over " + std::to_string(d.total_timeout_s) +
                                 " s (ollama.total_timeout_s)",
                             false);
        case StopReason::kNone: break;
    }
    return std::nullopt;
}

}  // namespace summarizer::upstream_http
