// A blocking TCP client on POSIX sockets for the transport's tests: it sends exactly the
// bytes a test wants (garbage, a trickle, pipelined requests), binds to a chosen loopback
// source address, and reads responses back piece by piece with the time each piece arrived.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer::testing {

class RawClient {
public:
    using Clock = std::chrono::steady_clock;

    struct Chunk {
        std::string data;
        Clock::time_point arrived;
    };
    struct Response {
        int status = 0;
        std::map<std::string, std::string> headers;  // names lower-cased
        std::string body;                            // de-chunked
        std::vector<Chunk> chunks;                   // chunked responses: each chunk as it arrived
        std::string Header(const std::string& lower_name) const {
            auto it = headers.find(lower_name);
            return it == headers.end() ? "" : it->second;
        }
    };

    // Connects to 127.0.0.1:port, from `source_address` when given (any 127.x.y.z works on
    // Linux), with a receive buffer of `receive_buffer` bytes when > 0 (set before connect so
    // the window stays small).
    explicit RawClient(int port, const char* source_address = nullptr, int receive_buffer = 0) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        if (receive_buffer > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (source_address != nullptr) {
            sockaddr_in local{};
            local.sin_family = AF_INET;
            inet_pton(AF_INET, source_address, &local.sin_addr);
            if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return;
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~RawClient() { Close(); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool connected() const { return connected_; }
    int local_port() const {
        sockaddr_in addr{};
        socklen_t len = sizeof addr;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        return ntohs(addr.sin_port);
    }
    void Close() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }
    // Closes with a reset instead of a FIN.
    void Reset() {
        linger option{1, 0};
        setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof option);
        Close();
    }

    bool Send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<size_t>(n));
        }
        return true;
    }

    // Whether the server closed the connection (EOF or reset) within `limit`; data is discarded.
    bool WaitClosed(std::chrono::milliseconds limit) {
        const auto until = Clock::now() + limit;
        for (;;) {
            if (!buffer_.empty()) buffer_.clear();
            const auto status = Fill(until);
            if (status == FillStatus::kClosed) return true;
            if (status == FillStatus::kTimeout) return false;
        }
    }

    // Whether the connection is still open after waiting `wait` (nothing arrives, no EOF).
    bool StillOpen(std::chrono::milliseconds wait = std::chrono::milliseconds(50)) {
        return Fill(Clock::now() + wait) != FillStatus::kClosed;
    }

    // Reads one response (Content-Length, chunked, or up to the close). nullopt on a close or
    // time-out before it is complete.
    std::optional<Response> ReadResponse(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
        const auto until = Clock::now() + limit;
        Response response;
        if (!ReadHead(response, until)) return std::nullopt;
        if (response.Header("transfer-encoding") == "chunked") {
            for (;;) {
                auto chunk = ReadChunk(until);
                if (!chunk) return std::nullopt;
                if (chunk->data.empty()) return response;
                response.body += chunk->data;
                response.chunks.push_back(std::move(*chunk));
            }
        }
        const std::string length = response.Header("content-length");
        if (!length.empty()) {
            const size_t n = std::stoul(length);
            if (!FillTo(n, until)) return std::nullopt;
            response.body = buffer_.substr(0, n);
            buffer_.erase(0, n);
            return response;
        }
        if (response.status == 204 || response.status == 304 || response.status < 200) return response;
        while (Fill(until) == FillStatus::kData) {
        }
        response.body = std::move(buffer_);
        buffer_.clear();
        return response;
    }

    // The status line and headers only (for reading a stream chunk by chunk afterwards).
    bool ReadHead(Response& response, Clock::time_point until) {
        size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (Fill(until) != FillStatus::kData) return false;
        }
        const std::string head = buffer_.substr(0, end);
        buffer_.erase(0, end + 4);
        size_t line_end = head.find("\r\n");
        const std::string status_line = head.substr(0, line_end);
        if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return false;
        response.status = std::stoi(status_line.substr(9, 3));
        while (line_end != std::string::npos) {
            const size_t start = line_end + 2;
            line_end = head.find("\r\n", start);
            const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
            const size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            size_t value_start = colon + 1;
            while (value_start < line.size() && line[value_start] == ' ') ++value_start;
            response.headers[name] = line.substr(value_start);
        }
        return true;
    }

    // One chunk of a chunked body; the last chunk is an empty one (after its trailer).
    std::optional<Chunk> ReadChunk(Clock::time_point until) {
        size_t end;
        while ((end = buffer_.find("\r\n")) == std::string::npos) {
            if (Fill(until) != FillStatus::kData) return std::nullopt;
        }
        const size_t size = std::stoul(buffer_.substr(0, end), nullptr, 16);
        buffer_.erase(0, end + 2);
        if (!FillTo(size + 2, until)) return std::nullopt;
        Chunk chunk{buffer_.substr(0, size), Clock::now()};
        buffer_.erase(0, size + 2);
        return chunk;
    }

    // Raw bytes until `marker` has arrived (inclusive), or "" on close/time-out.
    std::string ReadUntil(std::string_view marker, std::chrono::milliseconds limit) {
        const auto until = Clock::now() + limit;
        size_t at;
        while ((at = buffer_.find(marker)) == std::string::npos) {
            if (Fill(until) != FillStatus::kData) return "";
        }
        std::string out = buffer_.substr(0, at + marker.size());
        buffer_.erase(0, at + marker.size());
        return out;
    }

    int fd() const { return fd_; }

private:
    enum class FillStatus { kData, kClosed, kTimeout };

    FillStatus Fill(Clock::time_point until) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            pollfd p{fd_, POLLIN, 0};
            const int ready = poll(&p, 1, static_cast<int>(std::max<long long>(0, left)));
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) return FillStatus::kTimeout;
            char data[65536];
            const ssize_t n = recv(fd_, data, sizeof data, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return FillStatus::kClosed;
            buffer_.append(data, static_cast<size_t>(n));
            return FillStatus::kData;
        }
    }

    bool FillTo(size_t n, Clock::time_point until) {
        while (buffer_.size() < n) {
            if (Fill(until) != FillStatus::kData) return false;
        }
        return true;
    }

    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

}  // namespace summarizer::testing
