// The only file that includes Boost.Asio and Boost.Beast (their templates cost compile time;
// CI builds the project twice). Beast is used for what is easy to get wrong, parsing a request
// (its parser is fuzzed upstream); the responses are short and written here.
#include "summarizer/event_server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "summarizer/api.hpp"
#include "summarizer/http_target.hpp"

namespace summarizer {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Executor = asio::any_io_executor;

constexpr size_t kHeaderReadSize = 4 * 1024;   // per read while headers arrive: a header fits, a trickle costs little
constexpr size_t kBodyReadSize = 64 * 1024;    // per read of a body: few wake-ups for a large upload
constexpr size_t kReservedDescriptors = 128;   // for everything but client connections (logs, upstream, ...)

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string NewRequestId() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     static_cast<uint64_t>(Clock::now().time_since_epoch().count())};
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

// A client's X-Request-Id is echoed if it is short and printable (as http_server.cpp does).
std::string RequestIdFrom(std::string_view sent) {
    const bool ok = !sent.empty() && sent.size() <= 128 &&
                    std::all_of(sent.begin(), sent.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
    return ok ? std::string(sent) : NewRequestId();
}

std::string AddressString(const asio::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
    }
    return address.to_string();
}

bool IsToken(std::string_view name) {
    if (name.empty()) return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    });
}

bool IsSafeHeaderValue(std::string_view value) {
    return std::none_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool HasNoBody(int status) { return status == 204 || status == 304; }

std::string StatusLine(int status) {
    std::string_view reason = View(http::obsolete_reason(static_cast<http::status>(status)));
    if (reason.empty() || reason.front() == '<') reason = "Unknown";
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
}

// "1a2b\r\n": what precedes a chunk's data (the data is followed by "\r\n").
std::string ChunkSizeLine(size_t size) {
    char line[24];
    const int n = std::snprintf(line, sizeof line, "%zx\r\n", size);
    return std::string(line, static_cast<size_t>(n));
}

std::string ErrorBody(ErrorCode code, const std::string& message, const std::string& request_id) {
    return ErrorJson(MakeError(code, message), request_id)
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The request body as a std::string that grows as bytes arrive. Beast's string_body reserves
// the declared Content-Length up front: a client declaring 16 MiB and then trickling would make
// every such connection hold 16 MiB.
struct GrowingStringBody {
    using value_type = std::string;

    class reader {
    public:
        template <bool isRequest, class Fields>
        reader(http::header<isRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

        void init(const boost::optional<std::uint64_t>& /*length*/, beast::error_code& ec) { ec = {}; }

        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
            const size_t n = asio::buffer_size(buffers);
            const size_t old_size = body_.size();
            body_.resize(old_size + n);  // geometric growth
            ec = {};
            return asio::buffer_copy(asio::buffer(body_.data() + old_size, n), buffers);
        }

        void finish(beast::error_code& ec) { ec = {}; }

    private:
        value_type& body_;
    };
};
using RequestParser = http::request_parser<GrowingStringBody>;

// Runs tasks on at most `max_threads` threads, started when a task finds none idle and kept
// until Shutdown().
class WorkerPool {
public:
    explicit WorkerPool(size_t max_threads) : max_threads_(std::max<size_t>(1, max_threads)) {}
    ~WorkerPool() { Shutdown(); }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void Submit(std::function<void()> task) {
        {
            std::lock_guard lock(mutex_);
            if (shutdown_) return;
            tasks_.push_back(std::move(task));
            if (idle_ < tasks_.size() && threads_.size() < max_threads_) threads_.emplace_back([this] { Loop(); });
        }
        cv_.notify_one();
    }

    // Runs what is queued, then joins every thread.
    void Shutdown() {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mutex_);
            shutdown_ = true;
            threads.swap(threads_);
        }
        cv_.notify_all();
        for (auto& thread : threads) thread.join();
    }

private:
    void Loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            cv_.wait(lock, [this] { return shutdown_ || !tasks_.empty(); });
            --idle_;
            if (tasks_.empty()) return;
            std::function<void()> task = std::move(tasks_.front());
            tasks_.pop_front();
            lock.unlock();
            task();
            task = nullptr;  // drop what it holds before waiting again
            lock.lock();
        }
    }

    const size_t max_threads_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool shutdown_ = false;
};

class Connection;

// Which connections go first when a cap is reached.
enum class ConnectionClass {
    kFresh,  // has not completed a request and is not being answered: closed first, oldest first
    kIdle,   // completed a request, waiting for (or reading) the next: then the one idle longest
    kBusy,   // a request is in the handler or its response is being written: never closed
};

class ConnectionRegistry;

// A connection's place in the registry; touched only under the registry's mutex.
struct RegistrySlot {
    bool registered = false;
    ConnectionClass cls = ConnectionClass::kFresh;
    std::list<Connection*>::iterator global_it;
    std::list<Connection*>::iterator address_it;
    void* address_state = nullptr;
};

// Every open connection, by class and client address, for the caps and for Stop().
class ConnectionRegistry {
public:
    void Configure(size_t max_total, size_t max_per_address) {
        std::lock_guard lock(mutex_);
        max_total_ = std::max<size_t>(1, max_total);
        max_per_address_ = max_per_address;
    }

    // Registers `connection` as fresh, first making room if a cap is reached. Connections
    // closed to make room are appended to `victims` (already unregistered; the caller closes
    // them). False: no room could be made (every connection concerned is busy); not registered.
    bool Admit(const std::shared_ptr<Connection>& connection, const std::string& address,
               std::vector<std::shared_ptr<Connection>>& victims);
    void SetClass(Connection& connection, ConnectionClass cls);
    void Remove(Connection& connection);
    std::vector<std::shared_ptr<Connection>> Snapshot() const;
    size_t size() const {
        std::lock_guard lock(mutex_);
        return total_;
    }

private:
    struct AddressState {
        std::string address;
        size_t count = 0;
        std::list<Connection*> fresh;
        std::list<Connection*> idle;
    };

    void Link(Connection& connection, RegistrySlot& slot, ConnectionClass cls);
    void Unlink(RegistrySlot& slot);
    void RemoveLocked(Connection& connection);
    bool FreeOne(std::list<Connection*>& fresh, std::list<Connection*>& idle,
                 std::vector<std::shared_ptr<Connection>>& victims);

    mutable std::mutex mutex_;
    size_t max_total_ = 10'000;
    size_t max_per_address_ = 0;
    size_t total_ = 0;
    std::list<Connection*> fresh_;
    std::list<Connection*> idle_;
    std::unordered_map<std::string, AddressState> addresses_;
    std::unordered_set<Connection*> all_;
};

struct Counters {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> refused{0};
    std::atomic<uint64_t> evicted{0};
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> rejected{0};
    std::atomic<uint64_t> header_timeouts{0};
    std::atomic<uint64_t> body_timeouts{0};
    std::atomic<uint64_t> idle_timeouts{0};
    std::atomic<uint64_t> write_timeouts{0};
    std::atomic<uint64_t> clients_gone{0};
    std::atomic<uint64_t> handler_exceptions{0};
};

// What every connection shares.
struct ServerCore {
    ServerCore(const EventServerOptions& options, HttpHandler handler)
        : options(options), handler(std::move(handler)), workers(static_cast<size_t>(options.worker_threads)) {}

    void ConnectionCreated() {
        std::lock_guard lock(live_mutex);
        ++live_connections;
    }
    void ConnectionDestroyed() {
        std::lock_guard lock(live_mutex);
        if (--live_connections == 0) live_cv.notify_all();
    }
    // Whether every connection object was destroyed before `deadline`.
    bool WaitForConnections(Clock::time_point deadline) {
        std::unique_lock lock(live_mutex);
        return live_cv.wait_until(lock, deadline, [this] { return live_connections == 0; });
    }

    const EventServerOptions& options;
    const HttpHandler handler;
    WorkerPool workers;
    ConnectionRegistry registry;
    Counters counters;
    std::atomic<bool> stopping{false};

    std::mutex live_mutex;
    std::condition_variable live_cv;
    size_t live_connections = 0;  // Connection objects alive (a running handler keeps its one)
};

// One client connection. Everything but the Post* entry points runs on its strand.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(ServerCore& core, tcp::socket socket, const tcp::endpoint& remote)
        : core_(core),
          executor_(socket.get_executor()),
          socket_(std::move(socket)),
          timer_(executor_),
          address_(AddressString(remote.address())),
          remote_port_(remote.port()),
          accepted_at_(Clock::now()) {
        core_.ConnectionCreated();
    }
    ~Connection() {
        core_.registry.Remove(*this);
        core_.ConnectionDestroyed();
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const std::string& address() const { return address_; }
    RegistrySlot registry_slot;  // guarded by the registry's mutex

    // Entry points, callable from any thread.
    void PostStart() { Post([](Connection& c) { c.Begin(); }); }
    void PostClose() { Post([](Connection& c) { c.Close(); }); }
    void PostServerStopping() { Post([](Connection& c) { c.OnServerStopping(); }); }

private:
    enum class Phase {
        kReading,     // waiting for, or reading, a request
        kHandling,    // the handler runs; reading on only to notice the client leaving
        kResponding,  // writing the response or stream
        kClosing,     // writing a last response (an error), then lingering
        kLingering,   // the send side is shut; reading until the client closes
        kClosed,
    };
    enum class ReadDeadline { kNone, kHeader, kBody, kIdle, kLinger };

    template <typename F>
    void Post(F f) {
        asio::post(executor_, [self = shared_from_this(), f] { f(*self); });
    }

    void Begin() {
        if (core_.stopping) {
            Close();
            return;
        }
        SetReadDeadline(ReadDeadline::kHeader, accepted_at_ + core_.options.header_timeout);
        ArmRead();
    }

    // ---- Reading ----------------------------------------------------------------------------

    // Waits until the socket is readable, then reads what is there without blocking: no buffer
    // is held while a connection waits, and the buffer is only touched here, never by a
    // pending operation.
    void ArmRead() {
        if (closed_ || read_armed_) return;
        const bool parsing = phase_ == Phase::kReading || phase_ == Phase::kClosing || phase_ == Phase::kLingering;
        if (!parsing && buffer_.size() >= core_.options.max_header_bytes) return;  // read-ahead full: resumes later
        read_armed_ = true;
        socket_.async_wait(tcp::socket::wait_read,
                           [self = shared_from_this()](beast::error_code ec) { self->OnReadable(ec); });
    }

    void OnReadable(beast::error_code ec) {
        read_armed_ = false;
        if (closed_) return;
        if (ec) {
            OnPeerGone();
            return;
        }
        size_t want = phase_ == Phase::kReading && header_seen_ ? kBodyReadSize : kHeaderReadSize;
        if (phase_ == Phase::kHandling || phase_ == Phase::kResponding) {
            want = std::min(want, core_.options.max_header_bytes - std::min(core_.options.max_header_bytes, buffer_.size()));
            want = std::max<size_t>(want, 1);
        }
        beast::error_code read_error;
        const size_t n = socket_.read_some(buffer_.prepare(want), read_error);
        if (read_error == asio::error::would_block || read_error == asio::error::try_again) {
            ArmRead();
            return;
        }
        if (read_error) {
            OnPeerGone();
            return;
        }
        buffer_.commit(n);
        switch (phase_) {
            case Phase::kReading:
                OnRequestBytes();
                break;
            case Phase::kClosing:
            case Phase::kLingering:
                buffer_.consume(buffer_.size());
                break;
            default:
                break;  // a pipelined request: kept for after the response
        }
        ArmRead();
    }

    // End of stream or an error on read.
    void OnPeerGone() {
        if (phase_ == Phase::kHandling || phase_ == Phase::kResponding) {
            spdlog::debug("client {}:{} went away while its request ran", address_, remote_port_);
        }
        Close();
    }

    void OnRequestBytes() {
        if (!request_started_) {
            request_started_ = true;
            // The first byte of a later request on a kept-alive connection starts its header deadline.
            if (read_deadline_ == ReadDeadline::kIdle) {
                SetReadDeadline(ReadDeadline::kHeader, Clock::now() + core_.options.header_timeout);
            }
        }
        ParseBuffered();
    }

    void ParseBuffered() {
        const auto& options = core_.options;
        while (phase_ == Phase::kReading && buffer_.size() > 0) {
            if (!parser_) {
                parser_.emplace();
                parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(options.max_header_bytes, UINT32_MAX)));
                parser_->body_limit(options.max_body_bytes);
            }
            beast::error_code ec;
            const size_t used = parser_->put(buffer_.data(), ec);
            buffer_.consume(used);
            if (header_seen_) {
                body_received_ += used;
                auto allowance = options.body_timeout;
                if (options.body_min_rate_bytes_per_s > 0) {
                    allowance += std::chrono::milliseconds(body_received_ * 1000 / options.body_min_rate_bytes_per_s);
                }
                read_deadline_at_ = body_started_ + allowance;  // only ever later: the timer re-arms when it fires
            } else if (parser_->is_header_done()) {
                header_seen_ = true;
                OnHeaderDone();
                if (phase_ != Phase::kReading) return;
            }
            if (ec == http::error::need_more) return;
            if (ec) {
                RejectMalformed(ec);
                return;
            }
            if (parser_->is_done()) {
                Dispatch();
                return;
            }
            if (used == 0) return;
        }
    }

    void OnHeaderDone() {
        if (parser_->is_done()) return;  // no body
        body_started_ = Clock::now();
        body_received_ = 0;
        SetReadDeadline(ReadDeadline::kBody, body_started_ + core_.options.body_timeout);
        const auto& message = parser_->get();
        if (message.version() >= 11 && beast::iequals(message[http::field::expect], "100-continue")) {
            QueueWrite("HTTP/1.1 100 Continue\r\n\r\n");
        }
    }

    // ---- Handling ---------------------------------------------------------------------------

    void Dispatch() {
        auto& message = parser_->get();
        auto target = ParseRequestTarget(View(message.target()));
        if (!target.ok()) {
            Reject(400, ErrorCode::kInvalidRequest, "bad request target: " + target.error().message);
            return;
        }
        auto request = std::make_shared<HttpRequest>();
        request->method = std::string(View(message.method_string()));
        request->path = std::move(target->path);
        request->query = std::move(target->query);
        for (const auto& field : message) {
            request->headers.emplace(std::string(View(field.name_string())), std::string(View(field.value())));
        }
        request->body = std::move(message.body());
        request->remote_addr = address_;
        request->remote_port = remote_port_;
        client_gone_ = request->client_gone;
        keep_alive_ = message.keep_alive();
        http_version_ = message.version();
        head_request_ = message.method() == http::verb::head;
        parser_.reset();
        request_started_ = false;
        header_seen_ = false;

        phase_ = Phase::kHandling;
        request_in_flight_ = true;
        SetReadDeadline(ReadDeadline::kNone, {});
        core_.registry.SetClass(*this, ConnectionClass::kBusy);
        ++core_.counters.requests;
        core_.workers.Submit([self = shared_from_this(), request] { self->RunHandler(*request); });
    }

    // On a worker thread.
    void RunHandler(HttpRequest& request) {
        HttpResponse response;
        std::string what;
        try {
            response = core_.handler(request);
        } catch (const std::exception& e) {
            what = e.what();
            if (what.empty()) what = "exception";
        } catch (...) {
            what = "unknown exception";
        }
        if (!what.empty()) {
            ++core_.counters.handler_exceptions;
            spdlog::error("handler threw on {} {}: {}", request.method, request.path, what);
            response = HttpResponse{};
            response.status = 500;
            const std::string id = RequestIdFrom(request.Header("X-Request-Id"));
            response.SetHeader("X-Request-Id", id);
            response.body = ErrorBody(ErrorCode::kInternal, "internal error: " + what, id);
        }
        asio::post(executor_, [self = shared_from_this(), response = std::move(response)]() mutable {
            self->OnResponse(std::move(response));
        });
    }

    // ---- Responding -------------------------------------------------------------------------

    void OnResponse(HttpResponse response) {
        if (closed_) {
            Abandon(response);
            return;
        }
        if (response.status < 200 || response.status > 599) {
            spdlog::error("handler answered with status {}; sending 500", response.status);
            if (response.stream) {
                response.stream->SetWakeup(nullptr);
                client_gone_.Cancel();  // its producer stops
            }
            HttpResponse error;
            error.status = 500;
            error.on_complete = std::move(response.on_complete);
            const std::string id = RequestIdFrom(response.Header("X-Request-Id"));
            error.SetHeader("X-Request-Id", id);
            error.body = ErrorBody(ErrorCode::kInternal, "internal error: invalid response status", id);
            response = std::move(error);
        }
        phase_ = Phase::kResponding;
        on_complete_ = std::move(response.on_complete);
        body_bytes_out_ = 0;

        bool close = close_after_response_ || core_.stopping || !keep_alive_ || response.close_connection;
        const bool no_body = head_request_ || HasNoBody(response.status);
        const bool streamed = response.stream && !no_body;
        chunked_ = streamed && http_version_ >= 11;
        if (streamed && !chunked_) close = true;  // HTTP/1.0: the end of the body is the end of the connection

        std::string head = StatusLine(response.status);
        bool has_content_type = false;
        for (const auto& [name, value] : response.headers) {
            if (beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding")) continue;
            if (beast::iequals(name, "Connection")) {
                if (beast::iequals(value, "close")) close = true;
                continue;
            }
            if (!IsToken(name) || !IsSafeHeaderValue(value)) {
                spdlog::warn("dropping response header with an invalid name or value: '{}'", name);
                continue;
            }
            has_content_type = has_content_type || beast::iequals(name, "Content-Type");
            head.append(name).append(": ").append(value).append("\r\n");
        }
        if (!has_content_type && !response.content_type.empty() && IsSafeHeaderValue(response.content_type)) {
            head.append("Content-Type: ").append(response.content_type).append("\r\n");
        }
        if (chunked_) {
            head.append("Transfer-Encoding: chunked\r\n");
        } else if (!HasNoBody(response.status) && !streamed) {
            head.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n");
        }
        if (close) {
            head.append("Connection: close\r\n");
        } else if (http_version_ < 11) {
            head.append("Connection: keep-alive\r\n");
        }
        head.append("\r\n");
        close_after_response_ = close;

        if (streamed) {
            stream_ = std::move(response.stream);
            Enqueue(std::move(head));  // with the first batch, if there is one already
            stream_->SetWakeup([weak = weak_from_this(), executor = executor_] {
                auto self = weak.lock();
                if (!self || self->wake_pending_.exchange(true)) return;
                asio::post(executor, [self] {
                    self->wake_pending_ = false;
                    self->PumpStream();
                });
            });
            PumpStream();
            Flush();
            return;
        }
        if (response.stream) {
            // Nobody will read it (HEAD, 204, 304): its producer stops.
            response.stream->SetWakeup(nullptr);
            client_gone_.Cancel();
        }
        Enqueue(std::move(head));
        if (!no_body) {
            body_bytes_out_ = response.body.size();
            Enqueue(std::move(response.body));
        }
        Flush();
    }

    // A response that will not be written: its producer and its owner are told.
    void Abandon(HttpResponse& response) {
        if (response.stream) response.stream->SetWakeup(nullptr);
        if (response.on_complete) ReportOutcome(response.on_complete, ResponseOutcome{false, 0});
        response.on_complete = nullptr;
    }

    // Writes what the stream holds as one chunk; comes back when that write is done or when
    // the producer pushes more.
    void PumpStream() {
        if (closed_ || writing_ || !stream_ || phase_ != Phase::kResponding) return;
        if (last_chunk_queued_) {  // written; anything pushed after Finish() is dropped
            FinishResponse();
            return;
        }
        std::string data;
        EventStream::TakeResult taken;
        do {
            taken = stream_->TryTake(data);
        } while (taken == EventStream::TakeResult::kData && data.empty());
        if (taken == EventStream::TakeResult::kData) {
            body_bytes_out_ += data.size();
            if (chunked_) Enqueue(ChunkSizeLine(data.size()));
            Enqueue(std::move(data));
            if (chunked_) Enqueue("\r\n");
            Flush();
        } else if (taken == EventStream::TakeResult::kFinished) {
            last_chunk_queued_ = true;
            if (chunked_) {
                QueueWrite("0\r\n\r\n");
            } else {
                FinishResponse();
            }
        }
    }

    void FinishResponse() {
        if (on_complete_) ReportOutcome(on_complete_, ResponseOutcome{true, body_bytes_out_});
        on_complete_ = nullptr;
        if (stream_) {
            stream_->SetWakeup(nullptr);
            stream_.reset();
        }
        request_in_flight_ = false;
        last_chunk_queued_ = false;
        if (close_after_response_ || core_.stopping) {
            StartLinger();
            return;
        }
        phase_ = Phase::kReading;
        core_.registry.SetClass(*this, ConnectionClass::kIdle);
        if (buffer_.size() > 0) {  // a pipelined request
            request_started_ = true;
            SetReadDeadline(ReadDeadline::kHeader, Clock::now() + core_.options.header_timeout);
            ParseBuffered();
        } else {
            buffer_.shrink_to_fit();
            SetReadDeadline(ReadDeadline::kIdle, Clock::now() + core_.options.keep_alive_timeout);
        }
        ArmRead();
    }

    void ReportOutcome(const std::function<void(const ResponseOutcome&)>& callback, const ResponseOutcome& outcome) {
        try {
            callback(outcome);
        } catch (const std::exception& e) {
            spdlog::error("response completion callback threw: {}", e.what());
        } catch (...) {
            spdlog::error("response completion callback threw");
        }
    }

    // ---- Errors the transport answers itself ------------------------------------------------

    void RejectMalformed(const beast::error_code& ec) {
        if (ec == http::error::body_limit) {
            Reject(413, ErrorCode::kPayloadTooLarge,
                   "the body is over " + std::to_string(core_.options.max_body_bytes) + " bytes; send a smaller text");
        } else if (ec == http::error::header_limit) {
            Reject(431, ErrorCode::kInvalidRequest,
                   "the request line and headers are over " + std::to_string(core_.options.max_header_bytes) + " bytes");
        } else {
            Reject(400, ErrorCode::kInvalidRequest, "bad HTTP request: " + ec.message());
        }
    }

    void Reject(int status, ErrorCode code, const std::string& message) {
        RejectedRequest rejected;
        rejected.status = status;
        rejected.remote_addr = address_;
        rejected.remote_port = remote_port_;
        rejected.reason = message;
        std::string sent_id;
        if (parser_) {
            const auto& request = parser_->get();
            sent_id = std::string(View(request["X-Request-Id"]));
            rejected.method = std::string(View(request.method_string()));
            rejected.target = std::string(View(request.target()));
        }
        rejected.request_id = RequestIdFrom(sent_id);
        ++core_.counters.rejected;
        spdlog::debug("{} from {}:{}: {}", status, address_, remote_port_, message);
        if (core_.options.on_rejected) {
            try {
                core_.options.on_rejected(rejected);
            } catch (const std::exception& e) {
                spdlog::error("on_rejected threw: {}", e.what());
            }
        }
        const std::string body = ErrorBody(code, message, rejected.request_id);
        std::string out = StatusLine(status);
        out.append("Content-Type: application/json\r\nContent-Length: ")
            .append(std::to_string(body.size()))
            .append("\r\nX-Request-Id: ")
            .append(rejected.request_id)
            .append("\r\nConnection: close\r\n\r\n")
            .append(body);
        parser_.reset();
        phase_ = Phase::kClosing;
        SetReadDeadline(ReadDeadline::kNone, {});
        buffer_.consume(buffer_.size());
        QueueWrite(std::move(out));
    }

    // ---- Writing ----------------------------------------------------------------------------

    // Appends to what is to be written. Segments are written in order, gathered into one
    // sendmsg and never copied into one another (a stream's batch goes out as it was taken).
    void Enqueue(std::string bytes) {
        if (!bytes.empty()) out_.push_back(std::move(bytes));  // a deque: segments in flight stay put
    }

    // Starts writing what is queued, unless a write is under way (it goes on with the rest).
    void Flush() {
        if (closed_ || writing_ || out_.empty()) return;
        writing_ = true;
        write_deadline_active_ = true;
        write_deadline_at_ = Clock::now() + core_.options.write_timeout;
        UpdateTimer();
        WriteSome();
    }

    void QueueWrite(std::string bytes) {
        Enqueue(std::move(bytes));
        Flush();
    }

    void WriteSome() {
        std::array<asio::const_buffer, 16> buffers{};
        size_t count = 0;
        for (size_t i = 0; i < out_.size() && count < buffers.size(); ++i) {
            const size_t skip = i == 0 ? out_offset_ : 0;
            buffers[count++] = asio::buffer(out_[i].data() + skip, out_[i].size() - skip);
        }
        socket_.async_write_some(buffers, [self = shared_from_this()](beast::error_code ec, size_t n) {
            self->OnWritten(ec, n);
        });
    }

    void OnWritten(beast::error_code ec, size_t n) {
        if (closed_) return;
        if (ec) {  // the client is gone (reset, broken pipe)
            Close();
            return;
        }
        write_deadline_at_ = Clock::now() + core_.options.write_timeout;  // progress
        while (n > 0) {
            const size_t left = out_.front().size() - out_offset_;
            if (n < left) {
                out_offset_ += n;
                break;
            }
            n -= left;
            out_.pop_front();
            out_offset_ = 0;
        }
        if (!out_.empty()) {
            WriteSome();
            return;
        }
        writing_ = false;
        write_deadline_active_ = false;
        switch (phase_) {
            case Phase::kResponding:
                if (stream_) {
                    PumpStream();
                } else {
                    FinishResponse();
                }
                break;
            case Phase::kClosing:
                StartLinger();
                break;
            default:
                break;  // "100 Continue" went out
        }
    }

    // Shuts the send side and reads (discarding) until the client closes or the linger time
    // is up, so that the last response is not destroyed by a reset.
    void StartLinger() {
        phase_ = Phase::kLingering;
        request_in_flight_ = false;
        if (core_.options.linger_timeout.count() <= 0) {
            Close();
            return;
        }
        beast::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        buffer_.consume(buffer_.size());
        SetReadDeadline(ReadDeadline::kLinger, Clock::now() + core_.options.linger_timeout);
        ArmRead();
    }

    // ---- Deadlines --------------------------------------------------------------------------

    // One timer per connection, armed for the earliest deadline. A deadline that moves later
    // (body progress, write progress) does not touch the timer: it re-arms when it fires.
    void SetReadDeadline(ReadDeadline kind, Clock::time_point at) {
        read_deadline_ = kind;
        read_deadline_at_ = at;
        UpdateTimer();
    }

    void UpdateTimer() {
        std::optional<Clock::time_point> next;
        if (read_deadline_ != ReadDeadline::kNone) next = read_deadline_at_;
        if (write_deadline_active_) next = next ? std::min(*next, write_deadline_at_) : write_deadline_at_;
        if (!next || (timer_armed_ && timer_at_ <= *next)) return;
        timer_armed_ = true;
        timer_at_ = *next;
        const uint64_t generation = ++timer_generation_;
        timer_.expires_at(*next);
        timer_.async_wait([self = shared_from_this(), generation](beast::error_code) { self->OnTimer(generation); });
    }

    void OnTimer(uint64_t generation) {
        if (generation != timer_generation_) return;  // superseded by an earlier deadline
        timer_armed_ = false;
        if (closed_) return;
        const auto now = Clock::now();
        if (write_deadline_active_ && now >= write_deadline_at_) {
            ++core_.counters.write_timeouts;
            spdlog::debug("{}:{}: write deadline: the client stopped reading", address_, remote_port_);
            Close();
            return;
        }
        if (read_deadline_ != ReadDeadline::kNone && now >= read_deadline_at_) {
            switch (read_deadline_) {
                case ReadDeadline::kHeader: ++core_.counters.header_timeouts; break;
                case ReadDeadline::kBody: ++core_.counters.body_timeouts; break;
                case ReadDeadline::kIdle: ++core_.counters.idle_timeouts; break;
                default: break;
            }
            Close();
            return;
        }
        UpdateTimer();
    }

    // ---- Closing ----------------------------------------------------------------------------

    void OnServerStopping() {
        if (closed_) return;
        if (phase_ == Phase::kReading && !header_seen_) {
            Close();  // waiting for a request, or still reading its headers
            return;
        }
        close_after_response_ = true;  // a body being read, a running request, a stream: may finish
    }

    void Close() {
        if (closed_) return;
        closed_ = true;
        if (request_in_flight_) {
            ++core_.counters.clients_gone;
            client_gone_.Cancel();
        }
        phase_ = Phase::kClosed;
        if (stream_) {
            stream_->SetWakeup(nullptr);
            stream_.reset();
        }
        if (on_complete_) ReportOutcome(on_complete_, ResponseOutcome{false, body_bytes_out_});
        on_complete_ = nullptr;
        beast::error_code ec;
        socket_.close(ec);
        timer_.cancel();
        parser_.reset();
        buffer_ = beast::flat_buffer();
        out_.clear();
        core_.registry.Remove(*this);
    }

    ServerCore& core_;
    const Executor executor_;  // the connection's strand
    tcp::socket socket_;
    asio::steady_timer timer_;
    const std::string address_;
    const int remote_port_;
    const Clock::time_point accepted_at_;

    Phase phase_ = Phase::kReading;
    bool closed_ = false;
    bool read_armed_ = false;
    beast::flat_buffer buffer_;
    std::optional<RequestParser> parser_;
    bool request_started_ = false;  // a byte of the current request arrived
    bool header_seen_ = false;      // the current request's headers are complete
    Clock::time_point body_started_;
    uint64_t body_received_ = 0;

    ReadDeadline read_deadline_ = ReadDeadline::kNone;
    Clock::time_point read_deadline_at_;
    bool write_deadline_active_ = false;
    Clock::time_point write_deadline_at_;
    bool timer_armed_ = false;
    Clock::time_point timer_at_;
    uint64_t timer_generation_ = 0;

    // The request in the handler or being answered.
    bool request_in_flight_ = false;
    CancelToken client_gone_;
    bool keep_alive_ = true;
    unsigned http_version_ = 11;
    bool head_request_ = false;
    bool close_after_response_ = false;

    // The response.
    std::deque<std::string> out_;  // to write, in order; the front ones may be in flight
    size_t out_offset_ = 0;        // bytes of out_.front() already written
    bool writing_ = false;
    std::shared_ptr<EventStream> stream_;
    bool chunked_ = false;
    bool last_chunk_queued_ = false;
    std::function<void(const ResponseOutcome&)> on_complete_;
    size_t body_bytes_out_ = 0;
    std::atomic<bool> wake_pending_{false};
};

// ---- ConnectionRegistry ---------------------------------------------------------------------

bool ConnectionRegistry::Admit(const std::shared_ptr<Connection>& connection, const std::string& address,
                               std::vector<std::shared_ptr<Connection>>& victims) {
    std::lock_guard lock(mutex_);
    AddressState& state = addresses_[address];
    state.address = address;
    // Counted first, so that closing the address's last other connection cannot erase `state`.
    ++state.count;
    const bool room = (max_per_address_ == 0 || state.count <= max_per_address_ ||
                       FreeOne(state.fresh, state.idle, victims)) &&
                      (total_ < max_total_ || FreeOne(fresh_, idle_, victims));
    if (!room) {
        if (--state.count == 0) addresses_.erase(address);
        return false;
    }
    RegistrySlot& slot = connection->registry_slot;
    slot.registered = true;
    slot.address_state = &state;
    ++total_;
    all_.insert(connection.get());
    Link(*connection, slot, ConnectionClass::kFresh);
    return true;
}

bool ConnectionRegistry::FreeOne(std::list<Connection*>& fresh, std::list<Connection*>& idle,
                                 std::vector<std::shared_ptr<Connection>>& victims) {
    for (auto* list : {&fresh, &idle}) {
        if (list->empty()) continue;
        Connection* victim = list->front();
        auto alive = victim->weak_from_this().lock();
        RemoveLocked(*victim);
        if (alive) victims.push_back(std::move(alive));  // else it is being destroyed: its slot is free anyway
        return true;
    }
    return false;
}

void ConnectionRegistry::Link(Connection& connection, RegistrySlot& slot, ConnectionClass cls) {
    slot.cls = cls;
    auto* state = static_cast<AddressState*>(slot.address_state);
    if (cls == ConnectionClass::kFresh) {
        slot.global_it = fresh_.insert(fresh_.end(), &connection);
        slot.address_it = state->fresh.insert(state->fresh.end(), &connection);
    } else if (cls == ConnectionClass::kIdle) {
        slot.global_it = idle_.insert(idle_.end(), &connection);
        slot.address_it = state->idle.insert(state->idle.end(), &connection);
    }
}

void ConnectionRegistry::Unlink(RegistrySlot& slot) {
    auto* state = static_cast<AddressState*>(slot.address_state);
    if (slot.cls == ConnectionClass::kFresh) {
        fresh_.erase(slot.global_it);
        state->fresh.erase(slot.address_it);
    } else if (slot.cls == ConnectionClass::kIdle) {
        idle_.erase(slot.global_it);
        state->idle.erase(slot.address_it);
    }
    slot.cls = ConnectionClass::kBusy;
}

void ConnectionRegistry::SetClass(Connection& connection, ConnectionClass cls) {
    std::lock_guard lock(mutex_);
    RegistrySlot& slot = connection.registry_slot;
    if (!slot.registered || slot.cls == cls) return;
    Unlink(slot);
    Link(connection, slot, cls);
}

void ConnectionRegistry::Remove(Connection& connection) {
    std::lock_guard lock(mutex_);
    RemoveLocked(connection);
}

void ConnectionRegistry::RemoveLocked(Connection& connection) {
    RegistrySlot& slot = connection.registry_slot;
    if (!slot.registered) return;
    Unlink(slot);
    auto* state = static_cast<AddressState*>(slot.address_state);
    if (--state->count == 0) addresses_.erase(state->address);
    slot.address_state = nullptr;
    slot.registered = false;
    --total_;
    all_.erase(&connection);
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::Snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<Connection>> out;
    out.reserve(all_.size());
    for (Connection* connection : all_) {
        if (auto alive = connection->weak_from_this().lock()) out.push_back(std::move(alive));
    }
    return out;
}

// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
rlim_t RaiseOpenFileLimit(bool raise) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return RLIM_INFINITY;
    if (raise && limit.rlim_cur < limit.rlim_max) {
        const rlim_t before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
            spdlog::debug("open-file limit raised from {} to {}", before, limit.rlim_cur);
        } else {
            limit.rlim_cur = before;
        }
    }
    return limit.rlim_cur;
}

}  // namespace

// ---- EventServer ----------------------------------------------------------------------------

struct EventServer::Impl {
    Impl(EventServerOptions opts, HttpHandler handler)
        : options(std::move(opts)),
          io_context(std::max(1, options.io_threads)),
          core(options, std::move(handler)),
          accept_strand(NewConnectionExecutor()),
          acceptor(accept_strand),
          accept_retry(accept_strand) {}

    // A strand when several I/O threads run handlers; with one, the io_context itself (a strand
    // would only add a lock per handler).
    Executor NewConnectionExecutor() {
        if (options.io_threads > 1) return asio::make_strand(io_context);
        return io_context.get_executor();
    }

    void DoAccept() {
        acceptor.async_accept(NewConnectionExecutor(),
                              [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
    }

    void OnAccept(beast::error_code ec, tcp::socket socket) {
        if (!acceptor.is_open() || ec == asio::error::operation_aborted) return;
        if (ec) {
            // Out of descriptors (EMFILE) or kernel memory: back off instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            accept_retry.expires_after(std::chrono::milliseconds(100));
            accept_retry.async_wait([this](beast::error_code wait_ec) {
                if (!wait_ec && acceptor.is_open()) DoAccept();
            });
            return;
        }
        beast::error_code option_ec;
        const tcp::endpoint remote = socket.remote_endpoint(option_ec);
        if (!option_ec) {
            socket.set_option(tcp::no_delay(true), option_ec);  // small responses go out at once (Nagle)
            socket.non_blocking(true, option_ec);
        }
        if (option_ec) {
            socket.close(option_ec);
            DoAccept();
            return;
        }
        ++core.counters.accepted;
        auto connection = std::make_shared<Connection>(core, std::move(socket), remote);
        std::vector<std::shared_ptr<Connection>> victims;
        if (core.registry.Admit(connection, connection->address(), victims)) {
            connection->PostStart();
        } else {
            ++core.counters.refused;
            connection->PostClose();
        }
        for (auto& victim : victims) {
            ++core.counters.evicted;
            victim->PostClose();
        }
        DoAccept();
    }

    void RunIo() {
        for (;;) {
            try {
                io_context.run();
                return;
            } catch (const std::exception& e) {
                spdlog::error("event server I/O thread: {}", e.what());
            }
        }
    }

    // Closes the listening socket and tells every connection the server stops; once, whoever
    // calls first (StopAccepting() or Stop()); a second caller waits until it is done.
    void CloseAcceptor() {
        std::lock_guard lock(accept_stop_mutex);
        if (accept_stopped) return;
        accept_stopped = true;
        core.stopping = true;
        std::promise<void> closed;
        asio::post(accept_strand, [this, &closed] {
            beast::error_code ec;
            acceptor.close(ec);
            accept_retry.cancel();
            closed.set_value();
        });
        closed.get_future().wait();
        for (auto& connection : core.registry.Snapshot()) connection->PostServerStopping();
    }

    enum class State { kNew, kBound, kRunning, kStopping, kStopped };

    EventServerOptions options;
    asio::io_context io_context;
    ServerCore core;
    Executor accept_strand;  // the acceptor's strand
    tcp::acceptor acceptor;
    asio::steady_timer accept_retry;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::thread> io_threads;

    std::mutex state_mutex;
    std::condition_variable state_cv;
    State state = State::kNew;
    int port = 0;

    std::mutex accept_stop_mutex;
    bool accept_stopped = false;  // guarded by accept_stop_mutex
};

EventServer::EventServer(EventServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

EventServer::~EventServer() { Stop(std::chrono::milliseconds(0)); }

Result<int> EventServer::Bind() {
    Impl& s = *impl_;
    std::lock_guard lock(s.state_mutex);
    if (s.state != Impl::State::kNew) return MakeError(ErrorCode::kInternal, "EventServer::Bind() called twice");
    const rlim_t open_files = RaiseOpenFileLimit(s.options.raise_open_file_limit);
    size_t max_connections = s.options.max_connections;
    if (open_files != RLIM_INFINITY && open_files < max_connections + kReservedDescriptors) {
        const size_t fitting = open_files > 2 * kReservedDescriptors ? open_files - kReservedDescriptors : open_files / 2;
        spdlog::warn("max_connections {} lowered to {}: the open-file limit is {} (ulimit -n)", max_connections,
                     fitting, static_cast<uint64_t>(open_files));
        max_connections = fitting;
    }
    s.core.registry.Configure(max_connections, s.options.max_connections_per_address);

    beast::error_code ec;
    tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(s.options.host, ec);
    if (!ec) {
        endpoint = tcp::endpoint(address, static_cast<unsigned short>(s.options.port));
    } else {
        tcp::resolver resolver(s.io_context);
        const auto results = resolver.resolve(s.options.host, std::to_string(s.options.port), ec);
        if (ec || results.empty()) {
            return MakeError(ErrorCode::kInternal, "cannot resolve " + s.options.host + ": " + ec.message());
        }
        endpoint = results.begin()->endpoint();
    }
    const std::string where = s.options.host + ":" + std::to_string(s.options.port);
    if (s.acceptor.open(endpoint.protocol(), ec); ec) {
        return MakeError(ErrorCode::kInternal, "cannot open a socket for " + where + ": " + ec.message());
    }
    s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);  // not SO_REUSEPORT: a second bind fails
    // The message is taken before close(), which resets the error code ("Success").
    if (s.acceptor.bind(endpoint, ec); ec) {
        const std::string why = ec.message();
        s.acceptor.close(ec);
        return MakeError(ErrorCode::kInternal, "cannot bind " + where + ": " + why);
    }
    if (s.acceptor.listen(s.options.listen_backlog, ec); ec) {
        const std::string why = ec.message();
        s.acceptor.close(ec);
        return MakeError(ErrorCode::kInternal, "cannot listen on " + where + ": " + why);
    }
    s.port = s.acceptor.local_endpoint(ec).port();
    s.state = Impl::State::kBound;
    return s.port;
}

Status EventServer::Start() {
    Impl& s = *impl_;
    std::lock_guard lock(s.state_mutex);
    if (s.state != Impl::State::kBound) return MakeError(ErrorCode::kInternal, "EventServer::Start() needs a Bind() first");
    s.work.emplace(s.io_context.get_executor());
    asio::post(s.accept_strand, [&s] { s.DoAccept(); });
    for (int i = 0; i < std::max(1, s.options.io_threads); ++i) s.io_threads.emplace_back([&s] { s.RunIo(); });
    s.state = Impl::State::kRunning;
    return OkStatus();
}

void EventServer::Stop(std::chrono::milliseconds grace) {
    Impl& s = *impl_;
    {
        std::unique_lock lock(s.state_mutex);
        if (s.state == Impl::State::kNew || s.state == Impl::State::kBound) {
            beast::error_code ec;
            s.acceptor.close(ec);
            s.state = Impl::State::kStopped;
            s.state_cv.notify_all();
            return;
        }
        if (s.state != Impl::State::kRunning) {
            s.state_cv.wait(lock, [&s] { return s.state == Impl::State::kStopped; });
            return;
        }
        s.state = Impl::State::kStopping;
    }
    const auto grace_end = Clock::now() + grace;
    s.CloseAcceptor();
    if (!s.core.WaitForConnections(grace_end)) {
        {
            const auto left = s.core.registry.Snapshot();  // released before waiting: it holds them
            spdlog::info("shutdown grace over: closing {} connections", left.size());
            for (const auto& connection : left) connection->PostClose();
        }
        while (!s.core.WaitForConnections(Clock::now() + std::chrono::seconds(5))) {
            for (auto& connection : s.core.registry.Snapshot()) connection->PostClose();
            spdlog::warn("shutdown: waiting for handlers to return after cancellation");
        }
    }

    s.work.reset();
    s.io_context.stop();
    for (auto& thread : s.io_threads) thread.join();
    s.io_threads.clear();
    s.core.workers.Shutdown();

    std::lock_guard lock(s.state_mutex);
    s.state = Impl::State::kStopped;
    s.state_cv.notify_all();
}

void EventServer::StopAccepting() {
    Impl& s = *impl_;
    {
        std::lock_guard lock(s.state_mutex);
        if (s.state != Impl::State::kRunning) return;
    }
    s.CloseAcceptor();
}

void EventServer::Wait() {
    Impl& s = *impl_;
    std::unique_lock lock(s.state_mutex);
    s.state_cv.wait(lock, [&s] {
        return s.state == Impl::State::kStopped || s.state == Impl::State::kNew || s.state == Impl::State::kBound;
    });
}

int EventServer::port() const { return impl_->port; }

EventServerStats EventServer::stats() const {
    const Counters& c = impl_->core.counters;
    EventServerStats out;
    out.open_connections = impl_->core.registry.size();
    out.accepted = c.accepted;
    out.refused = c.refused;
    out.evicted = c.evicted;
    out.requests = c.requests;
    out.rejected = c.rejected;
    out.header_timeouts = c.header_timeouts;
    out.body_timeouts = c.body_timeouts;
    out.idle_timeouts = c.idle_timeouts;
    out.write_timeouts = c.write_timeouts;
    out.clients_gone = c.clients_gone;
    out.handler_exceptions = c.handler_exceptions;
    return out;
}

}  // namespace summarizer
