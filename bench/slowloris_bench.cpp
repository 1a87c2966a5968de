// summarizer-slowloris-bench: what slow and idle clients cost the server (issue #16).
//
// 1. Trickle/idle run (--target summarizer, the default: `summarizer serve` as a child, backed by
//    the fake Ollama in this process; --target event: a bare EventServer child with a trivial
//    handler; or --url: any running server): --trickle connections each send one byte of a request a second (never
//    finishing their headers) and --idle connections hold a slot (half send nothing, half
//    complete one request and then stay open as a keep-alive pool would), from --addresses
//    loopback source addresses (127.0.0.2, 127.0.0.3, ...). Connections the server closes are
//    reopened while the run lasts. Meanwhile a probe client on 127.0.0.1 sends GET /healthz and
//    a short POST every --probe-interval-ms, each on a new connection. Reported: every probe
//    request answered, /healthz P50/P99 (target P99 < 100 ms), the server's RSS (target
//    < 256 MiB), and, after the run, that every trickling connection was closed by the server's
//    header deadline (none left open, none closed early).
// 2. CPU per request: getrusage (user + system) of the server over --cpu-requests keep-alive
//    requests to a trivial handler, EventServer vs httplib::Server doing the same work, in
//    alternating rounds of the same run (the machine is shared: compare the ratio).
//
// The servers are children, so their RSS and CPU time are their own: `summarizer serve` (its
// header deadline and keep-alive time-out set from --header-timeout-ms and --keep-alive-ms,
// rounded to seconds), or this program re-executed (`--serve event|httplib`); or, for the trickle
// run, any server given by --url (then --server-pid names the process whose RSS to sample).
// Loopback only; bounded in time (ramp + --duration-s + drain of header timeout + 5 s + the CPU
// rounds).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "fake_ollama.hpp"
#include "serve_process.hpp"
#include "summarizer/event_server.hpp"
#include "summarizer/stats.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(const std::vector<double>& values, double p) { return summarizer::Percentile(values, p).value_or(0); }

// ---- The server child -----------------------------------------------------------------------------

json Rusage() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto us = [](const timeval& t) { return static_cast<int64_t>(t.tv_sec) * 1'000'000 + t.tv_usec; };
    return {{"user_us", us(usage.ru_utime)}, {"sys_us", us(usage.ru_stime)}, {"maxrss_kb", usage.ru_maxrss}};
}

struct ServeOptions {
    std::string kind = "event";
    int header_timeout_ms = 10'000;
    int keep_alive_ms = 5'000;
    int io_threads = 1;
};

// Blocks SIGTERM/SIGINT (before any thread starts, so every thread inherits the mask) and waits
// for one.
void WaitForTermination(sigset_t& signals) {
    int signal = 0;
    sigwait(&signals, &signal);
}

int Serve(const ServeOptions& options) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    if (options.kind == "httplib") {
        httplib::Server server;
        server.set_tcp_nodelay(true);
        server.set_keep_alive_max_count(1'000'000);  // the CPU run is about keep-alive requests
        server.set_keep_alive_timeout(options.keep_alive_ms / 1000);
        server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(json{{"status", "ok"}}.dump(), "application/json");
        });
        server.Post("/summarize", [](const httplib::Request& req, httplib::Response& res) {
            res.set_content(json{{"summary", "ok"}, {"chars", req.body.size()}}.dump(), "application/json");
        });
        server.Get("/rusage", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(Rusage().dump(), "application/json");
        });
        const int port = server.bind_to_any_port("127.0.0.1");
        std::printf("PORT %d\n", port);
        std::fflush(stdout);
        std::thread stopper([&] {
            WaitForTermination(signals);
            server.stop();
        });
        server.listen_after_bind();
        stopper.join();
        return 0;
    }

    summarizer::EventServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.header_timeout = std::chrono::milliseconds(options.header_timeout_ms);
    server_options.keep_alive_timeout = std::chrono::milliseconds(options.keep_alive_ms);
    server_options.io_threads = options.io_threads;
    summarizer::EventServer* self = nullptr;
    summarizer::EventServer server(server_options, [&self](summarizer::HttpRequest& request) {
        summarizer::HttpResponse response;
        if (request.path == "/healthz") {
            response.body = json{{"status", "ok"}}.dump();
        } else if (request.path == "/summarize" && request.method == "POST") {
            response.body = json{{"summary", "ok"}, {"chars", request.body.size()}}.dump();
        } else if (request.path == "/rusage") {
            response.body = Rusage().dump();
        } else if (request.path == "/stats") {
            const auto s = self->stats();
            response.body = json{{"open_connections", s.open_connections}, {"accepted", s.accepted},
                                 {"refused", s.refused},                   {"evicted", s.evicted},
                                 {"requests", s.requests},                 {"rejected", s.rejected},
                                 {"header_timeouts", s.header_timeouts},   {"body_timeouts", s.body_timeouts},
                                 {"idle_timeouts", s.idle_timeouts},       {"write_timeouts", s.write_timeouts},
                                 {"clients_gone", s.clients_gone}}
                                .dump();
        } else {
            response.status = 404;
            response.body = json{{"error", {{"code", "not_found"}}}}.dump();
        }
        return response;
    });
    self = &server;
    auto port = server.Bind();
    if (!port.ok()) {
        std::fprintf(stderr, "bind: %s\n", port.error().message.c_str());
        return 1;
    }
    if (auto started = server.Start(); !started.ok()) return 1;
    std::printf("PORT %d\n", *port);
    std::fflush(stdout);
    WaitForTermination(signals);
    server.Stop(1000ms);
    return 0;
}

// A server child: this program with --serve.
class ServerChild {
public:
    ServerChild(const std::string& kind, const ServeOptions& options) {
        int out[2];
        if (pipe(out) != 0) return;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&actions, out[0]);
        std::vector<std::string> args = {"summarizer-slowloris-bench",
                                         "--serve",
                                         kind,
                                         "--header-timeout-ms",
                                         std::to_string(options.header_timeout_ms),
                                         "--keep-alive-ms",
                                         std::to_string(options.keep_alive_ms),
                                         "--io-threads",
                                         std::to_string(options.io_threads)};
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        close(out[1]);
        FILE* from_child = fdopen(out[0], "r");
        if (pid_ > 0 && from_child != nullptr && std::fscanf(from_child, "PORT %d", &port_) != 1) port_ = 0;
        if (from_child != nullptr) std::fclose(from_child);
    }
    ~ServerChild() {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        int status = 0;
        waitpid(pid_, &status, 0);
    }
    ServerChild(const ServerChild&) = delete;
    ServerChild& operator=(const ServerChild&) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// `summarizer serve` against the fake Ollama of this process, with the transport's deadlines of
// the run (whole seconds) and everything else at its defaults.
class SummarizerChild {
public:
    explicit SummarizerChild(const ServeOptions& options) {
        const auto seconds = [](int ms) { return std::to_string(std::max(1, (ms + 500) / 1000)); };
        summarizer::testing::FakeBehavior reply;
        reply.reply = "The museum reopens on Saturday; entry is free for a week.";
        fake_.SetBehavior(reply);
        process_.emplace(summarizer::testing::ServeOptions{
            .ollama_url = fake_.url(),
            .env = {"SUMMARIZER_HEADER_TIMEOUT_S=" + seconds(options.header_timeout_ms),
                    "SUMMARIZER_KEEP_ALIVE_TIMEOUT_S=" + seconds(options.keep_alive_ms),
                    "SUMMARIZER_IO_THREADS=" + std::to_string(options.io_threads),
                    "SUMMARIZER_PRELOAD_HOT_BUCKET=false"},
            .name = "slowloris_bench",
            .inherit_environment = false});
        if (!process_->WaitUp()) {
            std::fprintf(stderr, "summarizer serve did not start; its log (%s):\n%s\n", process_->log_path().c_str(),
                         process_->Log().c_str());
            return;
        }
        port_ = process_->port();
    }
    ~SummarizerChild() {
        if (process_) process_->Terminate(std::chrono::seconds(10));
    }
    int port() const { return port_; }
    pid_t pid() const { return process_ ? process_->pid() : -1; }
    // The transport's counters from /metrics (summarizer_http_*), as JSON.
    json Stats() const {
        httplib::Client client("127.0.0.1", port_);
        auto response = client.Get("/metrics");
        json out = json::object();
        if (!response || response->status != 200) return out;
        std::istringstream lines(response->body);
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind("summarizer_http_", 0) != 0) continue;
            const auto space = line.rfind(' ');
            out[line.substr(16, space - 16)] = std::stod(line.substr(space + 1));
        }
        return out;
    }
    // The log lines at warning level or above.
    std::vector<std::string> Problems() const {
        std::vector<std::string> out;
        std::istringstream lines(process_ ? process_->Log() : "");
        for (std::string line; std::getline(lines, line);) {
            if (line.find(" warning ") != std::string::npos || line.find(" error ") != std::string::npos ||
                line.find(" critical ") != std::string::npos) {
                out.push_back(line);
            }
        }
        return out;
    }

private:
    summarizer::testing::FakeOllama fake_;
    std::optional<summarizer::testing::ServeProcess> process_;
    int port_ = 0;
};

// ---- Process memory -------------------------------------------------------------------------------

// VmRSS or VmHWM of `pid` in MiB; 0 when unknown.
double ProcessMemoryMiB(pid_t pid, const char* field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::strlen(field) + 1)) / 1024.0;
    }
    return 0;
}

// ---- The slow and idle connections ----------------------------------------------------------------

enum class Kind { kTrickle, kIdleSilent, kIdleKeepAlive };

struct Slot {
    Kind kind = Kind::kTrickle;
    int source = 0;  // 127.0.0.(2 + source)
    int fd = -1;
    bool connected = false;
    Clock::time_point opened;
    Clock::time_point next_byte;
    size_t sent = 0;
};

struct LoadResult {
    uint64_t opened = 0;
    uint64_t open_failures = 0;
    uint64_t trickle_closed_by_server = 0;
    uint64_t idle_closed_by_server = 0;
    uint64_t keepalive_answered = 0;
    std::vector<double> trickle_lifetimes_s;  // from connect to the server's close
    uint64_t trickle_left_open = 0;           // after the drain
    size_t peak_open = 0;
};

class SlowClients {
public:
    SlowClients(uint16_t port, int trickle, int idle, int addresses)
        : port_(port), addresses_(std::max(1, addresses)), epoll_(epoll_create1(EPOLL_CLOEXEC)) {
        for (int i = 0; i < trickle + idle; ++i) {
            Slot slot;
            slot.kind = i < trickle ? Kind::kTrickle : ((i - trickle) % 2 == 0 ? Kind::kIdleSilent : Kind::kIdleKeepAlive);
            slot.source = i % addresses_;
            slots_.push_back(slot);
        }
    }
    ~SlowClients() {
        for (auto& slot : slots_) {
            if (slot.fd >= 0) close(slot.fd);
        }
        close(epoll_);
    }

    // Opens everything (ramping), keeps the population for `duration` (reopening what the
    // server closes), then stops reopening and waits up to `drain` for the tricklers to be
    // closed by the server.
    LoadResult Run(Clock::duration duration, Clock::duration drain, const std::atomic<bool>& abort) {
        const auto start = Clock::now();
        const auto reopen_until = start + duration;
        size_t next_to_open = 0;
        while (!abort) {
            const auto now = Clock::now();
            // Ramp: 100 new connections every 5 ms (the listen backlog is 1024).
            if (next_to_open < slots_.size() && now >= last_ramp_ + 5ms) {
                last_ramp_ = now;
                for (int i = 0; i < 100 && next_to_open < slots_.size(); ++i) Open(slots_[next_to_open++]);
            }
            const bool reopening = now < reopen_until;
            if (!reopening) {
                if (OpenTricklers() == 0 || now >= reopen_until + drain) break;
            }
            SendTrickleBytes(now);
            epoll_event events[512];
            const int n = epoll_wait(epoll_, events, 512, 10);
            for (int i = 0; i < n; ++i) OnEvent(slots_[events[i].data.u32], events[i].events, reopening);
            size_t open = 0;
            for (const auto& slot : slots_) open += slot.fd >= 0 ? 1 : 0;
            result_.peak_open = std::max(result_.peak_open, open);
        }
        result_.trickle_left_open = OpenTricklers();
        return result_;
    }

private:
    size_t OpenTricklers() const {
        return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) {
            return s.kind == Kind::kTrickle && s.fd >= 0;
        }));
    }

    void Open(Slot& slot) {
        slot.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (slot.fd < 0) {
            ++result_.open_failures;
            return;
        }
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr.s_addr = htonl(0x7f000002u + static_cast<uint32_t>(slot.source));
        if (bind(slot.fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
            Fail(slot);
            return;
        }
        sockaddr_in remote{};
        remote.sin_family = AF_INET;
        remote.sin_port = htons(port_);
        remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(slot.fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0 && errno != EINPROGRESS) {
            Fail(slot);
            return;
        }
        slot.connected = false;
        slot.opened = Clock::now();
        slot.sent = 0;
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        event.data.u32 = static_cast<uint32_t>(&slot - slots_.data());
        epoll_ctl(epoll_, EPOLL_CTL_ADD, slot.fd, &event);
        ++result_.opened;
    }

    void Fail(Slot& slot) {
        ++result_.open_failures;
        close(slot.fd);
        slot.fd = -1;
    }

    void OnConnected(Slot& slot) {
        slot.connected = true;
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP;
        event.data.u32 = static_cast<uint32_t>(&slot - slots_.data());
        epoll_ctl(epoll_, EPOLL_CTL_MOD, slot.fd, &event);
        if (slot.kind == Kind::kTrickle) {
            // Spread the bytes of all tricklers over the second.
            slot.next_byte = Clock::now() + std::chrono::milliseconds(event.data.u32 * 7 % 1000);
        } else if (slot.kind == Kind::kIdleKeepAlive) {
            static const std::string request = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
            if (send(slot.fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) Closed(slot, false);
        }
    }

    void OnEvent(Slot& slot, uint32_t events, bool reopening) {
        if (slot.fd < 0) return;
        if (!slot.connected) {
            int error = 0;
            socklen_t len = sizeof error;
            getsockopt(slot.fd, SOL_SOCKET, SO_ERROR, &error, &len);
            if (error != 0) {
                Fail(slot);
                if (reopening) Open(slot);
                return;
            }
            if (events & EPOLLOUT) OnConnected(slot);
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            char buffer[4096];
            for (;;) {
                const ssize_t n = recv(slot.fd, buffer, sizeof buffer, 0);
                if (n > 0) {
                    if (slot.kind == Kind::kIdleKeepAlive) ++result_.keepalive_answered;
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                Closed(slot, true);
                if (reopening) Open(slot);
                break;
            }
        }
    }

    void Closed(Slot& slot, bool by_server) {
        if (by_server) {
            if (slot.kind == Kind::kTrickle) {
                ++result_.trickle_closed_by_server;
                result_.trickle_lifetimes_s.push_back(Seconds(Clock::now() - slot.opened));
            } else {
                ++result_.idle_closed_by_server;
            }
        }
        close(slot.fd);
        slot.fd = -1;
    }

    // One byte a second per trickler: a request line and headers that never end.
    void SendTrickleBytes(Clock::time_point now) {
        static const std::string head = "GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Trickle: ";
        for (auto& slot : slots_) {
            if (slot.kind != Kind::kTrickle || slot.fd < 0 || !slot.connected || now < slot.next_byte) continue;
            const char byte = slot.sent < head.size() ? head[slot.sent] : 'a';
            if (send(slot.fd, &byte, 1, MSG_NOSIGNAL) == 1) {
                ++slot.sent;
                slot.next_byte += 1s;
            } else if (errno != EAGAIN) {
                slot.next_byte += 1s;  // closed: the epoll event reports it
            }
        }
    }

    const uint16_t port_;
    const int addresses_;
    const int epoll_;
    std::vector<Slot> slots_;
    LoadResult result_;
    Clock::time_point last_ramp_;
};

// ---- The probe client -----------------------------------------------------------------------------

struct ProbeResult {
    std::vector<double> healthz_ms;
    std::vector<double> post_ms;
    int healthz_sent = 0;
    int post_sent = 0;
    std::vector<std::string> failures;
};

ProbeResult Probe(const std::string& host, int port, std::chrono::milliseconds interval, const std::string& post_path,
                  const std::string& post_body, const std::atomic<bool>& stop) {
    ProbeResult result;
    auto next = Clock::now();
    bool healthz = true;
    while (!stop) {
        next += interval;
        httplib::Client client(host, port);  // a new connection for every request: accepting must keep up too
        client.set_tcp_nodelay(true);
        client.set_connection_timeout(10, 0);
        client.set_read_timeout(30, 0);
        const auto start = Clock::now();
        auto response = healthz ? client.Get("/healthz") : client.Post(post_path, post_body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        (healthz ? result.healthz_sent : result.post_sent) += 1;
        if (response && response->status == 200) {
            (healthz ? result.healthz_ms : result.post_ms).push_back(ms);
        } else {
            result.failures.push_back(std::string(healthz ? "GET /healthz" : "POST " + post_path) + ": " +
                                      (response ? std::to_string(response->status) : httplib::to_string(response.error())));
        }
        healthz = !healthz;
        std::this_thread::sleep_until(next);
    }
    return result;
}

// ---- CPU per request ------------------------------------------------------------------------------

struct CpuCost {
    double user_us = 0;  // server user time per request
    double sys_us = 0;   // server system time per request
    double total() const { return user_us + sys_us; }
};

// Server CPU per request over `requests` keep-alive requests (half GET /healthz, half a short
// POST) from `clients` clients at once, each on its own connection.
std::optional<CpuCost> CpuPerRequest(int port, int requests, int clients) {
    const std::string body = json{{"text", std::string(100, 'x')}}.dump();
    auto run = [&](int count) {
        std::atomic<bool> ok{true};
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c) {
            threads.emplace_back([&, c] {
                httplib::Client client("127.0.0.1", port);
                client.set_keep_alive(true);
                client.set_tcp_nodelay(true);
                for (int i = c; i < count && ok; i += clients) {
                    auto response = i % 2 == 0 ? client.Get("/healthz") : client.Post("/summarize", body, "application/json");
                    if (!response || response->status != 200) ok = false;
                }
            });
        }
        for (auto& thread : threads) thread.join();
        return ok.load();
    };
    auto usage = [&]() -> std::optional<json> {
        httplib::Client client("127.0.0.1", port);
        auto response = client.Get("/rusage");
        if (!response || response->status != 200) return std::nullopt;
        return json::parse(response->body);
    };
    if (!run(1000)) return std::nullopt;  // warm-up: threads, allocator, caches
    const auto before = usage();
    if (!run(requests)) return std::nullopt;
    const auto after = usage();
    if (!before || !after) return std::nullopt;
    CpuCost cost;
    cost.user_us = static_cast<double>((*after)["user_us"].get<int64_t>() - (*before)["user_us"].get<int64_t>()) / requests;
    cost.sys_us = static_cast<double>((*after)["sys_us"].get<int64_t>() - (*before)["sys_us"].get<int64_t>()) / requests;
    return cost;
}

void RaiseOpenFileLimit(rlim_t wanted) {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur >= wanted) return;
    limit.rlim_cur = wanted;
    limit.rlim_max = std::max(limit.rlim_max, wanted);  // root may raise the hard limit
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        std::fprintf(stderr, "cannot raise RLIMIT_NOFILE to %llu: %s\n", static_cast<unsigned long long>(wanted),
                     std::strerror(errno));
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Slow and idle clients against summarizer serve or the bare event server (issue #16), and the event "
                 "server's CPU per request vs httplib"};
    ServeOptions serve;
    std::string serve_kind;
    std::string target = "summarizer";
    std::string url;
    int server_pid = 0;
    int trickle = 2000;
    int idle = 2000;
    int addresses = 100;
    int duration_s = 30;
    int probe_interval_ms = 50;
    std::string post_path = "/summarize";
    std::string post_body = R"({"text":"The museum reopens on Saturday after two years of work. Entry is free for the first week."})";
    int cpu_requests = 20'000;
    int cpu_rounds = 3;
    int cpu_clients = 1;
    double max_p99_ms = 100;
    double max_rss_mib = 256;
    bool assert_targets = false;
    app.add_option("--serve", serve_kind, "internal: run as the server child (event or httplib)");
    app.add_option("--target", target, "the trickle/idle run's server child: summarizer (summarizer serve with the fake "
                                       "Ollama) or event (a bare EventServer)")
        ->check(CLI::IsMember({"summarizer", "event"}))
        ->capture_default_str();
    app.add_option("--url", url, "run the trickle/idle load against this server (http://127.0.0.1:PORT) instead of a child");
    app.add_option("--server-pid", server_pid, "with --url: the process whose RSS to sample");
    app.add_option("--trickle", trickle, "connections trickling a byte a second");
    app.add_option("--idle", idle, "idle connections (half silent, half keep-alive after one request)");
    app.add_option("--addresses", addresses, "loopback source addresses 127.0.0.2...");
    app.add_option("--duration-s", duration_s, "seconds the load is kept up (closed connections are reopened)");
    app.add_option("--probe-interval-ms", probe_interval_ms, "the probe client's pace");
    app.add_option("--post-path", post_path, "the probe's POST");
    app.add_option("--post-body", post_body, "the probe's POST body (JSON)");
    app.add_option("--header-timeout-ms", serve.header_timeout_ms,
                   "child server: header deadline (with --url: the server's, to judge the tricklers' lifetimes)");
    app.add_option("--keep-alive-ms", serve.keep_alive_ms, "child server: keep-alive idle time-out");
    app.add_option("--io-threads", serve.io_threads, "child server: I/O threads");
    app.add_option("--cpu-requests", cpu_requests, "keep-alive requests per CPU measurement; 0 skips it");
    app.add_option("--cpu-rounds", cpu_rounds, "alternating rounds of EventServer and httplib::Server");
    app.add_option("--cpu-clients", cpu_clients, "concurrent keep-alive clients in the CPU measurement");
    app.add_option("--max-p99-ms", max_p99_ms, "target: /healthz P99 under load");
    app.add_option("--max-rss-mib", max_rss_mib, "target: server RSS");
    app.add_flag("--assert", assert_targets, "exit 1 when a target is missed");
    CLI11_PARSE(app, argc, argv);
    if (!serve_kind.empty()) {
        serve.kind = serve_kind;
        spdlog::set_level(spdlog::level::warn);
        return Serve(serve);
    }
    signal(SIGPIPE, SIG_IGN);
    RaiseOpenFileLimit(static_cast<rlim_t>(std::max(20'000, 2 * (trickle + idle) + 4096)));

    bool ok = true;
    // ---- 1. Trickle and idle connections, with a probe client -------------------------------------
    if (trickle + idle > 0) {
        std::optional<ServerChild> child;
        std::optional<SummarizerChild> service;
        std::string host = "127.0.0.1";
        int port = 0;
        pid_t pid = server_pid;
        if (url.empty() && target == "summarizer") {
            service.emplace(serve);
            port = service->port();
            pid = service->pid();
            if (port <= 0) return 1;
        } else if (url.empty()) {
            child.emplace("event", serve);
            port = child->port();
            pid = child->pid();
            if (port <= 0) {
                std::fprintf(stderr, "the server child did not start\n");
                return 1;
            }
        } else {
            // http://HOST:PORT (a trailing path is ignored)
            std::string rest = url.substr(url.find("//") == std::string::npos ? 0 : url.find("//") + 2);
            rest = rest.substr(0, rest.find('/'));
            const auto colon = rest.rfind(':');
            if (colon == std::string::npos) {
                std::fprintf(stderr, "--url needs a port: http://127.0.0.1:8080\n");
                return 1;
            }
            host = rest.substr(0, colon);
            port = std::stoi(rest.substr(colon + 1));
        }
        std::printf("trickle/idle run: %d trickling + %d idle connections from %d source addresses, %d s, against %s "
                    "at %s:%d\n",
                    trickle, idle, addresses, duration_s,
                    service ? "summarizer serve (fake Ollama)" : child ? "a bare EventServer" : "--url", host.c_str(), port);
        std::fflush(stdout);

        std::atomic<bool> stop_probe{false};
        std::atomic<bool> abort{false};
        std::atomic<double> max_rss{0};
        ProbeResult probe;
        std::thread probe_thread([&] {
            std::this_thread::sleep_for(2s);  // after the ramp
            probe = Probe(host, port, std::chrono::milliseconds(probe_interval_ms), post_path, post_body, stop_probe);
        });
        std::thread sampler([&] {
            while (!stop_probe && pid > 0) {
                max_rss = std::max(max_rss.load(), ProcessMemoryMiB(pid, "VmRSS:"));
                std::this_thread::sleep_for(250ms);
            }
        });
        const auto header_timeout = std::chrono::milliseconds(serve.header_timeout_ms);
        SlowClients load(static_cast<uint16_t>(port), trickle, idle, addresses);
        const auto started = Clock::now();
        LoadResult result;
        std::thread load_thread([&] { result = load.Run(std::chrono::seconds(duration_s), header_timeout + 5s, abort); });
        std::this_thread::sleep_for(std::chrono::seconds(duration_s));
        stop_probe = true;
        probe_thread.join();
        sampler.join();
        load_thread.join();
        const double hwm = pid > 0 ? ProcessMemoryMiB(pid, "VmHWM:") : 0;

        json stats;
        if (child) {
            httplib::Client client(host, port);
            if (auto response = client.Get("/stats"); response && response->status == 200) stats = json::parse(response->body);
        }
        if (service) stats = service->Stats();

        const double p50 = Percentile(probe.healthz_ms, 50);
        const double p99 = Percentile(probe.healthz_ms, 99);
        const auto& life = result.trickle_lifetimes_s;
        const double min_life = life.empty() ? 0 : *std::min_element(life.begin(), life.end());
        const double header_s = Seconds(header_timeout);
        const auto early = std::count_if(life.begin(), life.end(), [&](double s) { return s < header_s * 0.9; });
        std::printf("  ran %.1f s; connections opened %llu (failed %llu), peak open %zu\n", Seconds(Clock::now() - started),
                    static_cast<unsigned long long>(result.opened), static_cast<unsigned long long>(result.open_failures),
                    result.peak_open);
        std::printf("  probe GET /healthz: %zu of %d answered, P50 %.2f ms, P99 %.2f ms, max %.2f ms\n",
                    probe.healthz_ms.size(), probe.healthz_sent, p50, p99,
                    probe.healthz_ms.empty() ? 0 : *std::max_element(probe.healthz_ms.begin(), probe.healthz_ms.end()));
        std::printf("  probe POST %s: %zu of %d answered, P50 %.2f ms, P99 %.2f ms\n", post_path.c_str(),
                    probe.post_ms.size(), probe.post_sent, Percentile(probe.post_ms, 50), Percentile(probe.post_ms, 99));
        for (size_t i = 0; i < std::min<size_t>(5, probe.failures.size()); ++i) {
            std::printf("    failed: %s\n", probe.failures[i].c_str());
        }
        std::printf("  server RSS: max sampled %.1f MiB, peak (VmHWM) %.1f MiB\n", max_rss.load(), hwm);
        std::printf("  trickling connections closed by the server: %llu; lifetime min %.2f s, P50 %.2f s, max %.2f s "
                    "(header deadline %.1f s); closed early: %lld; still open after the drain: %llu\n",
                    static_cast<unsigned long long>(result.trickle_closed_by_server), min_life, Percentile(life, 50),
                    life.empty() ? 0 : *std::max_element(life.begin(), life.end()), header_s,
                    static_cast<long long>(early), static_cast<unsigned long long>(result.trickle_left_open));
        std::printf("  idle connections closed by the server: %llu; keep-alive idle ones answered %llu times\n",
                    static_cast<unsigned long long>(result.idle_closed_by_server),
                    static_cast<unsigned long long>(result.keepalive_answered));
        if (!stats.is_null()) std::printf("  server counters: %s\n", stats.dump().c_str());
        const auto problems = service ? service->Problems() : std::vector<std::string>{};
        for (size_t i = 0; i < std::min<size_t>(5, problems.size()); ++i) {
            std::printf("  service log: %s\n", problems[i].c_str());
        }

        const bool all_answered = probe.failures.empty() && probe.healthz_sent > 0 && probe.post_sent > 0;
        const bool p99_ok = p99 < max_p99_ms;
        const bool rss_ok = pid <= 0 || std::max(max_rss.load(), hwm) < max_rss_mib;
        const bool trickle_ok = result.trickle_left_open == 0 && early == 0 && result.trickle_closed_by_server > 0;
        std::printf("  targets: every probe answered %s; /healthz P99 < %.0f ms %s; RSS < %.0f MiB %s; every trickler "
                    "closed by the header deadline %s\n",
                    all_answered ? "PASS" : "FAIL", max_p99_ms, p99_ok ? "PASS" : "FAIL", max_rss_mib,
                    pid <= 0 ? "(not measured)" : rss_ok ? "PASS" : "FAIL", trickle_ok ? "PASS" : "FAIL");
        std::fflush(stdout);
        ok = all_answered && p99_ok && rss_ok && trickle_ok;
    }

    // ---- 2. CPU per request: EventServer vs httplib::Server -----------------------------------------
    if (cpu_requests > 0 && cpu_rounds > 0) {
        std::printf("CPU per request: server user+system time over %d keep-alive requests (GET /healthz and a short "
                    "POST) from %d client(s), %d rounds\n",
                    cpu_requests, cpu_clients, cpu_rounds);
        std::vector<double> ratios;
        for (int round = 0; round < cpu_rounds; ++round) {
            CpuCost cost[2];
            const char* kinds[2] = {"event", "httplib"};
            for (int k = 0; k < 2; ++k) {
                const int which = (round % 2 == 0) ? k : 1 - k;  // alternate who goes first
                ServerChild child(kinds[which], serve);
                const auto measured = CpuPerRequest(child.port(), cpu_requests, cpu_clients);
                if (!measured) {
                    std::printf("  round %d: %s server failed\n", round + 1, kinds[which]);
                    ok = false;
                    continue;
                }
                cost[which] = *measured;
            }
            if (cost[0].total() > 0 && cost[1].total() > 0) {
                ratios.push_back(cost[0].total() / cost[1].total());
                std::printf("  round %d: EventServer %.1f us (user %.1f, sys %.1f), httplib::Server %.1f us (user %.1f, "
                            "sys %.1f) per request: ratio %.2f\n",
                            round + 1, cost[0].total(), cost[0].user_us, cost[0].sys_us, cost[1].total(), cost[1].user_us,
                            cost[1].sys_us, ratios.back());
            }
        }
        if (!ratios.empty()) std::printf("  median ratio EventServer / httplib: %.2f\n", Percentile(ratios, 50));
    }
    return ok || !assert_targets ? 0 : 1;
}
