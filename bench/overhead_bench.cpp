// summarizer-overhead-bench: what the service adds on top of Ollama, measured against a fake Ollama
// that answers at once (tests/support/fake_ollama, in this process, real sockets).
//
// The same small summary is asked for directly from the fake (POST /api/generate, streaming NDJSON)
// and through the service (POST /summarize, JSON and SSE), by 1 client, by 32 concurrent clients flat
// out, and by 32 clients sending a paced 1,000 requests/s together, each on one keep-alive connection
// with TCP_NODELAY. Printed: latency P50/P99 of both (summarizer::Percentile: linear interpolation,
// as in every bench) and the difference (the added latency), time to first token (first NDJSON
// piece / first SSE delta) and its difference (the added TTFT), requests/s through the service, and
// CPU per request.
//
// The service runs in this process (--service in-process: the HttpServer over a Service, as
// `summarizer serve` builds them), or as `summarizer serve` in a child process (--service child), or
// is one started by hand (--url, --server-pid; start it with --ollama-url pointing at --fake-port).
// CPU per request: in-process, the process's user + system time (getrusage) per request through the
// service less that per direct request (clients and fake are in both); with a separate service
// process, also that process's own user + system time per request (/proc/PID/stat: what getrusage
// reports inside it), which counts nothing but the service.
// --ab OLD,NEW compares two builds instead: both run as `summarizer serve` children against the one
// fake, and one client sends the JSON request to each by turns (--rounds batches each, the order
// swapped every round), so that the machine's slow and fast spells hit both alike; printed per build
// are the medians over rounds of its CPU per request (from /proc/PID/task/*/schedstat: nanoseconds,
// where /proc/PID/stat counts 10 ms ticks), its context switches per request and its P50, and the
// median of the per-round ratios NEW / OLD: the figure to compare builds by on a noisy machine.
// --vs-nginx PATH measures against a yardstick instead: nginx (one process, upstream keep-alive,
// proxy_buffering off, an access log line per request) proxying the direct request to the same fake,
// the service answering the JSON summary, and the fake asked directly, by turns (the order rotated
// every round), 1 client and a paced 32-client run each; printed per path are CPU per request (nginx's
// and the service's, from schedstat), context switches, P50 and paced P99, and the medians of the
// per-round ratios service / nginx: CPU per request, and latency added over the direct request. The
// service does more than nginx (it reads the stream and answers one JSON document, plans the call
// and builds the prompt), so parity is not expected; the ratio says what a machine's speed cannot.
// Targets (issue #16, 2 cores): added CPU <= 150 us per request and added P50 <= 0.15 ms with 1
// client, added P99 <= 1 ms at a paced 1,000 req/s from 32 clients, added TTFT <= 1 ms, >= 3,000
// req/s flat out. Exit code 0 unless requests failed (or, with --assert, a target was missed).
#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "fake_ollama.hpp"
#include "free_port.hpp"
#include "serve_process.hpp"
#include "summarizer/config.hpp"
#include "summarizer/http_server.hpp"
#include "summarizer/ollama_client.hpp"
#include "summarizer/stats.hpp"

namespace {

using summarizer::Percentile;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One request as the client saw it.
struct Sample {
    double latency_ms = 0;
    double ttft_ms = 0;  // 0 when the body carried no text marker
    bool ok = false;
};

struct RunResult {
    std::vector<Sample> samples;
    double wall_s = 0;
    double cpu_s = 0;          // CPU time of this process (clients, fake, an in-process service) while measuring
    double service_cpu_s = 0;  // CPU time of a separate service process while measuring (0: none)
    int failures = 0;
};

double ProcessCpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// User + system time of process `pid` (all its threads) from /proc/PID/stat, in seconds; 0 if unknown.
double OtherProcessCpuSeconds(pid_t pid) {
    if (pid <= 0) return 0;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t close = stat.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {  // field 3 is the state
        if (i == 14) utime = std::stod(field);
        if (i == 15) {
            stime = std::stod(field);
            break;
        }
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Nanoseconds on a CPU and context switches of process `pid`, summed over its threads.
struct ThreadTotals {
    double cpu_s = 0;
    double switches = 0;
};
ThreadTotals ProcessThreadTotals(pid_t pid) {
    ThreadTotals totals;
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
        std::ifstream schedstat(task.path() / "schedstat");
        double ns = 0;
        if (schedstat >> ns) totals.cpu_s += ns / 1e9;
        std::ifstream status(task.path() / "status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
                totals.switches += std::stod(line.substr(line.find(':') + 1));
            }
        }
    }
    return totals;
}

// What one kind of request is: path, body, and the bytes that mean "the first token has arrived".
struct Target {
    std::string name;
    std::string path;
    std::string body;
    std::string first_token_marker;  // empty: not streamed
};

// `clients` threads, each sending `per_client` requests (after `warmup` unmeasured ones) on its own
// keep-alive connection. With `rate` 0 each client sends its next request as soon as the last one is
// answered (a closed loop: it saturates the machine, and latency is then mostly waiting for a core).
// With `rate` > 0 the clients together send `rate` requests/s on a fixed schedule (an open loop, the
// way gateway overheads are usually quoted: at a given load), and a request's latency counts from
// when it was due, so a client that falls behind pays for it (no coordinated omission).
RunResult Run(int port, const Target& target, int clients, int per_client, int warmup, double rate = 0,
              pid_t service_pid = 0) {
    RunResult result;
    std::vector<std::vector<Sample>> per_thread(static_cast<size_t>(clients));
    std::atomic<int> failures{0};
    std::mutex mutex, connect_mutex;
    std::condition_variable cv;
    int ready = 0;
    bool go = false;
    Clock::time_point start;
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", port);
            client.set_keep_alive(true);
            client.set_tcp_nodelay(true);
            client.set_read_timeout(std::chrono::seconds(30));
            auto& out = per_thread[static_cast<size_t>(c)];
            out.reserve(static_cast<size_t>(per_client));
            auto once = [&](bool record, Clock::time_point due = {}) {
                Sample s;
                std::string body;
                int status = 0;
                httplib::Request req;
                req.method = "POST";
                req.path = target.path;
                req.body = target.body;
                req.headers.emplace("Content-Type", "application/json");
                const auto begin = due == Clock::time_point{} ? Clock::now() : due;
                req.response_handler = [&](const httplib::Response& r) {
                    status = r.status;
                    return true;
                };
                req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
                    body.append(data, size);
                    if (s.ttft_ms == 0 && !target.first_token_marker.empty() &&
                        body.find(target.first_token_marker) != std::string::npos) {
                        s.ttft_ms = MsSince(begin);
                    }
                    return true;
                };
                auto res = client.send(req);
                s.latency_ms = MsSince(begin);
                s.ok = res && status == 200 && (target.first_token_marker.empty() || s.ttft_ms > 0);
                if (!s.ok && failures++ < 3) {
                    std::fprintf(stderr, "%s: failed after %.0f ms: %s, HTTP %d, %s\n", target.name.c_str(), MsSince(begin),
                                 res ? "answered" : httplib::to_string(res.error()).c_str(), status,
                                 body.substr(0, 200).c_str());
                }
                if (record) out.push_back(s);
            };
            {
                // Connect one client at a time: httplib 0.11's listen backlog is 5, and a burst of
                // 32 connects would measure SYN retries, not the service.
                std::lock_guard lock(connect_mutex);
                once(false);
            }
            for (int i = 1; i < warmup; ++i) once(false);
            {
                std::unique_lock lock(mutex);
                ++ready;
                cv.notify_all();
                cv.wait(lock, [&] { return go; });
            }
            for (int i = 0; i < per_client; ++i) {
                if (rate <= 0) {
                    once(true);
                    continue;
                }
                // Client c's i-th request is due at start + (i * clients + c) / rate.
                const auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                             (static_cast<double>(i) * clients + c) / rate));
                std::this_thread::sleep_until(due);
                once(true, due);
            }
        });
    }
    {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return ready == clients; });
        start = Clock::now();
        result.cpu_s = -ProcessCpuSeconds();
        result.service_cpu_s = -OtherProcessCpuSeconds(service_pid);
        go = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    result.wall_s = MsSince(start) / 1000.0;
    result.cpu_s += ProcessCpuSeconds();
    result.service_cpu_s += OtherProcessCpuSeconds(service_pid);
    for (auto& v : per_thread) result.samples.insert(result.samples.end(), v.begin(), v.end());
    result.failures = failures.load();
    return result;
}

// Appends the samples, wall and CPU time of `more` to `into`.
void Merge(RunResult& into, RunResult&& more) {
    into.samples.insert(into.samples.end(), more.samples.begin(), more.samples.end());
    into.wall_s += more.wall_s;
    into.cpu_s += more.cpu_s;
    into.service_cpu_s += more.service_cpu_s;
    into.failures += more.failures;
}

std::vector<double> Latencies(const RunResult& r) {
    std::vector<double> v;
    for (const auto& s : r.samples) v.push_back(s.latency_ms);
    return v;
}
std::vector<double> Ttfts(const RunResult& r) {
    std::vector<double> v;
    for (const auto& s : r.samples) v.push_back(s.ttft_ms);
    return v;
}

const char* Verdict(bool ok) { return ok ? "ok" : "MISSED"; }

// The service under test: in this process, a `summarizer serve` child, or one started by hand.
struct ServiceUnderTest {
    std::optional<summarizer::Service> service;
    std::optional<summarizer::HttpServer> server;
    std::thread serving;
    std::optional<summarizer::testing::ServeProcess> child;
    int port = 0;
    pid_t pid = 0;  // a separate process whose CPU time is read; 0: in this process

    ~ServiceUnderTest() {
        if (server) server->Stop();
        if (serving.joinable()) serving.join();
        if (child) child->Terminate(std::chrono::seconds(10));
    }
};

// `summarizer serve` (`binary`) as a child, set up to measure its own cost: see StartService.
summarizer::testing::ServeOptions MeasuredServe(const std::string& ollama_url, const std::string& name,
                                                const std::string& binary = SUMMARIZER_BINARY) {
    return summarizer::testing::ServeOptions{
        .ollama_url = ollama_url,
        .env = {"SUMMARIZER_MAX_INFLIGHT=64", "OLLAMA_NUM_PARALLEL=64", "SUMMARIZER_PREFILL_GATE=false",
                "SUMMARIZER_PRELOAD_HOT_BUCKET=false"},
        .name = name,
        .binary = binary,
        .inherit_environment = false};
}

// The service set up to measure its own cost: admission does not queue the 32 clients, the
// upstream scheduler gives the instant fake as many slots as there are clients, no prefill gate
// (no prompt to prefill), no preload; the access log is written (to /dev/null in process, to the
// child's log file otherwise): it is part of every request's cost.
bool StartService(ServiceUnderTest& s, const std::string& mode, const std::string& url, int server_pid,
                  summarizer::Config& config, const std::string& ollama_url) {
    if (!url.empty()) {
        const auto colon = url.rfind(':');
        s.port = colon == std::string::npos ? 0 : std::atoi(url.c_str() + colon + 1);
        s.pid = server_pid;
        return s.port > 0;
    }
    if (mode == "child") {
        s.child.emplace(MeasuredServe(ollama_url, "overhead_bench"));
        if (!s.child->WaitUp()) {
            std::fprintf(stderr, "summarizer serve did not start:\n%s\n", s.child->Log().c_str());
            return false;
        }
        s.port = s.child->port();
        s.pid = s.child->pid();
        return true;
    }
    config.server.port = 0;
    config.ollama.url = ollama_url;
    config.server.max_inflight = 64;
    config.ollama.num_parallel = 64;
    config.scheduler.prefill_gate = false;
    config.vram.preload_hot_bucket = false;
    s.service.emplace(config);
    s.server.emplace(config, *s.service);
    auto port = s.server->Bind();
    if (!port.ok()) {
        std::fprintf(stderr, "cannot bind: %s\n", port.error().message.c_str());
        return false;
    }
    s.port = *port;
    s.serving = std::thread([&s] { s.server->Run(); });
    return true;
}

double Median(std::vector<double> v) { return Percentile(v, 50).value_or(0); }

// One batch of `requests` from 1 client, and what it cost process `pid` per request (0: no process).
struct Turn {
    double cpu_us = 0;
    double switches = 0;
    double p50_ms = 0;
    int failures = 0;
};
Turn MeasureTurn(int port, pid_t pid, const Target& target, int requests, int warmup) {
    const ThreadTotals before = ProcessThreadTotals(pid);
    RunResult r = Run(port, target, 1, requests, warmup);
    const ThreadTotals after = ProcessThreadTotals(pid);
    const auto n = static_cast<double>(r.samples.size());
    return {(after.cpu_s - before.cpu_s) * 1e6 / n, (after.switches - before.switches) / n, Median(Latencies(r)),
            r.failures};
}

// True when something listens on 127.0.0.1:port (a connection to it is accepted). A bind test
// would also fail on the TIME_WAIT of a fake stopped a moment ago, which does not share anything.
bool PortInUse(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool in_use = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return in_use;
}

// True when the service answers the second of two identical requests from its job store.
bool AnswersFromCache(int port, const Target& target) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(std::chrono::seconds(30));
    bool cached = false;
    for (int i = 0; i < 2; ++i) {
        auto res = client.Post(target.path, target.body, "application/json");
        if (!res || res->status != 200) return false;  // the measured run reports the failure
        cached = json::parse(res->body, nullptr, false).value("cached", false);
    }
    return cached;
}

// --ab: two builds by turns (see the file's comment).
int RunAb(const std::string& old_binary, const std::string& new_binary, const std::string& ollama_url, int requests,
          int warmup, int rounds, const Target& target);

// --vs-nginx: the service against nginx proxying the direct request (see the file's comment).
int RunVsNginx(const std::string& nginx_binary, int fake_port, int requests_1, int requests_32, double paced_rate,
               int warmup, int rounds, const Target& direct, const Target& service_json);

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"summarizer-overhead-bench: latency, TTFT, throughput and CPU the service adds on top of an instant "
                 "fake Ollama"};
    int requests_1 = 20000;
    int requests_32 = 20000;
    int warmup = 20;
    int rounds = 4;
    bool log_to_stderr = false;
    bool assert_targets = false;
    double paced_rate = 1000;
    std::string mode = "in-process";
    std::string url;
    int server_pid = 0;
    int fake_port = 0;
    std::vector<std::string> ab;
    app.add_option("--requests-1", requests_1, "measured requests with 1 client")->capture_default_str();
    app.add_option("--requests-32", requests_32, "measured requests with 32 clients (in total)")->capture_default_str();
    app.add_option("--warmup", warmup, "unmeasured requests per client first")->capture_default_str();
    app.add_option("--rounds", rounds,
                   "the direct and service runs alternate this many times, each with its share of the requests "
                   "(a slow spell of the machine then hits both sides)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--paced-rate", paced_rate,
                   "requests/s the 32 clients send together on a schedule (0: skip the paced run)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--service", mode, "in-process (HttpServer in this process) or child (summarizer serve)")
        ->check(CLI::IsMember({"in-process", "child"}))
        ->capture_default_str();
    app.add_option("--url", url, "a service started by hand (http://127.0.0.1:PORT), pointed at --fake-port");
    app.add_option("--server-pid", server_pid, "with --url: its process, whose CPU time is read");
    app.add_option("--fake-port", fake_port, "port of the fake Ollama (0: any free one)");
    app.add_flag("--log-to-stderr", log_to_stderr, "in-process access log to stderr (default: /dev/null, the write kept)");
    app.add_flag("--assert", assert_targets, "exit 1 when a target is missed");
    app.add_option("--ab", ab,
                   "OLD,NEW: two summarizer binaries compared by turns on CPU per JSON request (1 client, "
                   "--requests-1 each over --rounds rounds) instead of the overhead tables")
        ->delimiter(',')
        ->expected(2);
    std::string nginx;
    app.add_option("--vs-nginx", nginx,
                   "PATH of an nginx binary (Debian: /usr/sbin/nginx, package nginx-light): the service's CPU and "
                   "added latency against nginx proxying the direct request to the same fake, by turns, instead of "
                   "the overhead tables")
        ->check(CLI::ExistingFile)
        ->excludes("--ab");
    CLI11_PARSE(app, argc, argv);
    std::signal(SIGPIPE, SIG_IGN);

    // The access log is part of the hot path: keep writing it, to a sink that costs a write() only.
    if (!log_to_stderr) spdlog::set_default_logger(spdlog::basic_logger_mt("access", "/dev/null"));

    namespace fake = summarizer::testing;
    if (fake_port != 0 && PortInUse(fake_port)) {
        // httplib's listening socket has SO_REUSEPORT: a fake started on a port another process
        // listens on would share the connections with it, and the CPU read would miss some calls.
        std::fprintf(stderr, "--fake-port %d: another process listens there already; stop it (the service started "
                     "by hand with --ollama-url pointing at this port needs the bench's own fake)\n", fake_port);
        return 1;
    }
    fake::FakeOllama ollama(fake_port);
    fake::FakeBehavior behavior;
    behavior.reply = "The council funded the first tram section; a timetable follows before summer.";
    behavior.piece_chars = 16;
    ollama.SetBehavior(behavior);

    const std::string text =
        "The city council met on Tuesday to discuss the new tram line. After three hours of debate, the members "
        "voted to fund the first section, from the central station to the university, and asked the transport "
        "office to publish a timetable before the summer. Residents along the route raised concerns about noise "
        "during construction; the council promised that night work would be limited to two weeks and that "
        "affected households would be told a month in advance. The first trams are expected to run in three years.";
    const Target service_json{"service /summarize (JSON)", "/summarize", json{{"text", text}}.dump(), ""};
    // What the service sends upstream for this text, give or take the prompt's wording.
    const json generate = {{"model", "gemma3-4b-16k"},
                           {"prompt", "Summarize the document below.\n<document>\n" + text + "\n</document>"},
                           {"stream", true},
                           {"keep_alive", "24h"},
                           {"truncate", false},
                           {"options", {{"num_ctx", 16384}, {"num_predict", 1200}, {"temperature", 0.15}}}};
    const Target direct{"direct /api/generate (stream)", "/api/generate", generate.dump(), "\"response\":\""};
    if (!ab.empty()) return RunAb(ab[0], ab[1], ollama.url(), requests_1, warmup, rounds, service_json);
    if (!nginx.empty()) {
        return RunVsNginx(nginx, ollama.port(), requests_1, requests_32, paced_rate, warmup, rounds, direct,
                          service_json);
    }

    summarizer::Config config;
    ServiceUnderTest service;
    if (!StartService(service, mode, url, server_pid, config, ollama.url())) return 1;
    const int port = service.port;
    if (!url.empty() && AnswersFromCache(port, service_json)) {
        std::fprintf(stderr, "%s answers a repeated text from its job store (\"cached\": true), with no upstream call: "
                     "start it with SUMMARIZER_JOBS_CACHE=false to measure it\n", url.c_str());
        return 1;
    }

    const Target service_sse{"service /summarize (SSE)", "/summarize", json{{"text", text}, {"stream", true}}.dump(),
                             "event: delta"};

    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    std::printf("summarizer-overhead-bench: %u cores, load average %.1f (other processes compete for the cores: "
                "compare ratios, rerun on an idle machine), fake Ollama at %s, service (%s) on port %d\n",
                std::thread::hardware_concurrency(), load[0], ollama.url().c_str(),
                !url.empty() ? "--url" : mode.c_str(), port);
    std::printf("\n| clients | request | P50 ms | P99 ms | TTFT P50 ms | TTFT P99 ms | req/s | CPU us/req (this "
                "process) | CPU us/req (service process) |\n|---|---|---|---|---|---|---|---|---|\n");
    int failures = 0;
    struct Row {
        int clients;
        double rate;  // 0: closed loop
        RunResult direct, json, sse;
        std::string Label() const {
            return std::to_string(clients) + (rate > 0 ? " paced at " + std::to_string(static_cast<int>(rate)) + " req/s"
                                                       : clients > 1 ? " flat out" : "");
        }
    };
    std::vector<Row> rows;
    std::vector<std::pair<int, double>> configs = {{1, 0.0}, {32, 0.0}};
    if (paced_rate > 0) configs.emplace_back(32, paced_rate);
    for (const auto& [clients, rate] : configs) {
        const int total = clients == 1 ? requests_1 : requests_32;
        const int per_client = std::max(1, total / clients / rounds);
        Row row{clients, rate, {}, {}, {}};
        for (int round = 0; round < rounds; ++round) {
            Merge(row.direct, Run(ollama.port(), direct, clients, per_client, warmup, rate));
            Merge(row.json, Run(port, service_json, clients, per_client, warmup, rate, service.pid));
            Merge(row.sse, Run(port, service_sse, clients, per_client, warmup, rate, service.pid));
        }
        for (const auto* r : {&row.direct, &row.json, &row.sse}) failures += r->failures;
        const std::pair<const Target*, const RunResult*> runs[] = {{&direct, &row.direct}, {&service_json, &row.json},
                                                                   {&service_sse, &row.sse}};
        for (const auto& [target, r] : runs) {
            auto lat = Latencies(*r);
            auto ttft = Ttfts(*r);
            std::string ttft50 = target->first_token_marker.empty()
                                     ? "-"
                                     : std::to_string(Percentile(ttft, 50).value_or(0)).substr(0, 5);
            std::string ttft99 = target->first_token_marker.empty()
                                     ? "-"
                                     : std::to_string(Percentile(ttft, 99).value_or(0)).substr(0, 5);
            const auto n = static_cast<double>(r->samples.size());
            const std::string service_cpu =
                service.pid > 0 && r != &row.direct ? std::to_string(static_cast<int>(r->service_cpu_s * 1e6 / n)) : "-";
            std::printf("| %s | %s | %.3f | %.3f | %s | %s | %.0f | %.0f | %s |\n", row.Label().c_str(),
                        target->name.c_str(), Percentile(lat, 50).value_or(0), Percentile(lat, 99).value_or(0),
                        ttft50.c_str(), ttft99.c_str(), n / r->wall_s, r->cpu_s * 1e6 / n, service_cpu.c_str());
        }
        rows.push_back(std::move(row));
    }

    // Flat out, 32 clients keep the 2 cores busy and a request mostly waits for a core: by Little's law
    // its latency is 32 / throughput, so the service's added latency there is its added CPU times
    // 32 / 2 cores, whatever it does. The latency targets are therefore judged with 1 client and with
    // 32 clients at a paced load; the flat-out run is judged on throughput.
    // The CPU the service adds per request does not depend on what else the machine runs: this
    // process's CPU per request through the service less that of the same request sent directly,
    // plus a separate service process's own CPU per request. 2 cores divided by it is what the
    // service alone could serve if the clients and Ollama were elsewhere. Judged with 1 client (the
    // paced run's figure includes waking idle threads for every request).
    std::printf("\n| clients | added P50 ms | added P99 ms | added TTFT P50 ms | added TTFT P99 ms | service req/s | "
                "added CPU us/req | 2 cores / added CPU |\n|---|---|---|---|---|---|---|---|\n");
    bool all_ok = failures == 0;
    for (const auto& row : rows) {
        const bool flat_out = row.clients > 1 && row.rate <= 0;
        const bool one = row.clients == 1;
        const double p50 =
            Percentile(Latencies(row.json), 50).value_or(0) - Percentile(Latencies(row.direct), 50).value_or(0);
        const double p99 =
            Percentile(Latencies(row.json), 99).value_or(0) - Percentile(Latencies(row.direct), 99).value_or(0);
        const double t50 = Percentile(Ttfts(row.sse), 50).value_or(0) - Percentile(Ttfts(row.direct), 50).value_or(0);
        const double t99 = Percentile(Ttfts(row.sse), 99).value_or(0) - Percentile(Ttfts(row.direct), 99).value_or(0);
        const double rps = static_cast<double>(row.json.samples.size()) / row.json.wall_s;
        const double n_json = static_cast<double>(row.json.samples.size());
        const double added_cpu_s = (row.json.cpu_s + row.json.service_cpu_s) / n_json -
                                   row.direct.cpu_s / static_cast<double>(row.direct.samples.size());
        const bool p50_ok = !one || p50 <= 0.15;
        const bool p99_ok = one || p99 <= 1.0;
        const bool cpu_ok = !one || added_cpu_s <= 150e-6;
        const auto judged = [&](bool ok, bool applies) { return flat_out ? "queueing" : applies ? Verdict(ok) : "-"; };
        std::printf("| %s | %.3f (%s) | %.3f (%s) | %.3f (%s) | %.3f | %.0f%s | %.0f (%s) | %.0f req/s |\n",
                    row.Label().c_str(), p50, judged(p50_ok, one), p99, judged(p99_ok, !one), t50, judged(t50 <= 1.0, true),
                    t99, rps, flat_out ? (rps >= 3000 ? " (ok)" : " (MISSED)") : "", added_cpu_s * 1e6,
                    flat_out ? "-" : judged(cpu_ok, one), added_cpu_s > 0 ? 2.0 / added_cpu_s : 0.0);
        all_ok = all_ok && (flat_out ? rps >= 3000 : p50_ok && p99_ok && cpu_ok && t50 <= 1.0);
    }
    std::printf("\ntargets: 1 client: added P50 <= 0.15 ms, added CPU <= 150 us/req; 32 paced: added P99 <= 1 ms; "
                "added TTFT P50 <= 1 ms; 32 flat out: >= 3000 req/s: %s\n",
                all_ok ? "all met" : "not all met");
    if (failures) std::printf("%d request(s) FAILED\n", failures);
    return failures == 0 && (all_ok || !assert_targets) ? 0 : 1;
}

namespace {

int RunAb(const std::string& old_binary, const std::string& new_binary, const std::string& ollama_url, int requests,
          int warmup, int rounds, const Target& target) {
    struct Build {
        std::string name;
        std::optional<summarizer::testing::ServeProcess> process;
        std::vector<double> cpu_us, switches, p50_ms;
        int failures = 0;
    };
    Build builds[2] = {{"old: " + old_binary, {}, {}, {}, {}, 0}, {"new: " + new_binary, {}, {}, {}, {}, 0}};
    const std::string binaries[2] = {old_binary, new_binary};
    for (int b = 0; b < 2; ++b) {
        builds[b].process.emplace(
            MeasuredServe(ollama_url, b == 0 ? "overhead_bench_old" : "overhead_bench_new", binaries[b]));
        if (!builds[b].process->WaitUp()) {
            std::fprintf(stderr, "%s did not start:\n%s\n", binaries[b].c_str(), builds[b].process->Log().c_str());
            return 1;
        }
    }
    const int per_round = std::max(1, requests / rounds);
    std::printf("summarizer-overhead-bench --ab: %d rounds of %d JSON requests from 1 client to each build, by "
                "turns\n\n",
                rounds, per_round);
    std::vector<double> ratios;
    for (int round = 0; round < rounds; ++round) {
        double cpu[2] = {0, 0};
        for (int turn = 0; turn < 2; ++turn) {
            const int b = round % 2 == 0 ? turn : 1 - turn;
            Build& build = builds[b];
            const Turn t = MeasureTurn(build.process->port(), build.process->pid(), target, per_round,
                                       round == 0 ? warmup : 1);
            cpu[b] = t.cpu_us;
            build.cpu_us.push_back(t.cpu_us);
            build.switches.push_back(t.switches);
            build.p50_ms.push_back(t.p50_ms);
            build.failures += t.failures;
        }
        if (cpu[0] > 0) ratios.push_back(cpu[1] / cpu[0]);
    }
    std::printf("| build | CPU us/req (median of rounds) | min | max | context switches/req | P50 ms |\n"
                "|---|---|---|---|---|---|\n");
    for (const auto& build : builds) {
        std::printf("| %s | %.0f | %.0f | %.0f | %.2f | %.3f |\n", build.name.c_str(), Median(build.cpu_us),
                    *std::min_element(build.cpu_us.begin(), build.cpu_us.end()),
                    *std::max_element(build.cpu_us.begin(), build.cpu_us.end()), Median(build.switches),
                    Median(build.p50_ms));
    }
    std::printf("\nnew / old CPU per request, per round: median %.3f (min %.3f, max %.3f)\n", Median(ratios),
                *std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end()));
    const int failures = builds[0].failures + builds[1].failures;
    if (failures) std::printf("%d request(s) FAILED\n", failures);
    return failures == 0 ? 0 : 1;
}

// nginx as the yardstick: one process (master_process off), proxying every request to the fake on
// kept-alive upstream connections, passing the NDJSON stream through as it comes (proxy_buffering off,
// as one sets it in front of Ollama), an access log line per request (the service writes one too).
std::string NginxConfig(const std::filesystem::path& dir, int port, int fake_port) {
    std::ostringstream conf;
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
         << "pid " << (dir / "nginx.pid").string() << ";\n"
         << "error_log " << (dir / "error.log").string() << " warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http {\n"
         << "  access_log " << (dir / "access.log").string() << ";\n"
         << "  client_body_temp_path " << (dir / "body").string() << ";\n"
         << "  proxy_temp_path " << (dir / "proxy").string() << ";\n"
         << "  upstream fake { server 127.0.0.1:" << fake_port << "; keepalive 64; }\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port << ";\n"
         << "    location / {\n"
         << "      proxy_pass http://fake;\n"
         << "      proxy_http_version 1.1;\n"
         << "      proxy_set_header Connection \"\";\n"
         << "      proxy_buffering off;\n"
         << "    }\n"
         << "  }\n"
         << "}\n";
    return conf.str();
}

bool WaitAccepting(int port, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
        httplib::Client c("127.0.0.1", port);
        c.set_connection_timeout(std::chrono::milliseconds(200));
        if (c.Get("/")) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

int RunVsNginx(const std::string& nginx_binary, int fake_port, int requests_1, int requests_32, double paced_rate,
               int warmup, int rounds, const Target& direct, const Target& service_json) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("overhead_bench_nginx_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const int nginx_port = summarizer::testing::FreePort();
    {
        std::ofstream(dir / "nginx.conf") << NginxConfig(dir, nginx_port, fake_port);
    }
    summarizer::testing::ChildProcess nginx(summarizer::testing::ChildOptions{
        .argv = {nginx_binary, "-p", dir.string(), "-c", (dir / "nginx.conf").string(), "-e",
                 (dir / "error.log").string()},
        .log_path = (dir / "stdout.log").string()});
    summarizer::testing::ServeProcess service(
        MeasuredServe("http://127.0.0.1:" + std::to_string(fake_port), "overhead_bench_vs_nginx"));
    auto cleanup = [&] {
        service.Terminate(std::chrono::seconds(10));
        kill(nginx.pid(), SIGTERM);
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    };
    if (!WaitAccepting(nginx_port, std::chrono::seconds(10))) {
        auto read = [](const fs::path& path) {
            std::ifstream in(path);
            return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        };
        std::fprintf(stderr, "%s did not start on port %d:\n%s%s\n", nginx_binary.c_str(), nginx_port,
                     read(dir / "stdout.log").c_str(), read(dir / "error.log").c_str());
        cleanup();
        return 1;
    }
    if (!service.WaitUp()) {
        std::fprintf(stderr, "summarizer serve did not start:\n%s\n", service.Log().c_str());
        cleanup();
        return 1;
    }

    // The same request to the fake itself, through nginx, and (as a summary) through the service.
    struct Path {
        std::string name;
        int port;
        pid_t pid;  // whose CPU is read (0: none: the fake is in this process)
        const Target* target;
        std::vector<double> cpu_us, switches, p50_ms, paced_p99_ms;
    };
    Path paths[3] = {{"direct to the fake", fake_port, 0, &direct, {}, {}, {}, {}},
                     {"nginx proxy_pass", nginx_port, nginx.pid(), &direct, {}, {}, {}, {}},
                     {"service /summarize (JSON)", service.port(), service.pid(), &service_json, {}, {}, {}, {}}};
    const int per_round = std::max(1, requests_1 / rounds);
    const int paced_per_client = std::max(1, requests_32 / rounds / 32);
    std::printf("summarizer-overhead-bench --vs-nginx: %d rounds, each of %d requests from 1 client%s to each path "
                "by turns (the order rotated every round)\n\n",
                rounds, per_round, paced_rate > 0 ? " and a paced run of 32 clients" : "");
    std::vector<double> cpu_ratio, p50_ratio, p99_ratio;
    int failures = 0;
    for (int round = 0; round < rounds; ++round) {
        for (int turn = 0; turn < 3; ++turn) {
            Path& path = paths[(turn + round) % 3];
            const Turn t = MeasureTurn(path.port, path.pid, *path.target, per_round, round == 0 ? warmup : 1);
            if (path.pid > 0) {
                path.cpu_us.push_back(t.cpu_us);
                path.switches.push_back(t.switches);
            }
            path.p50_ms.push_back(t.p50_ms);
            failures += t.failures;
            if (paced_rate > 0) {
                RunResult paced = Run(path.port, *path.target, 32, paced_per_client, 2, paced_rate);
                path.paced_p99_ms.push_back(Percentile(Latencies(paced), 99).value_or(0));
                failures += paced.failures;
            }
        }
        const size_t i = static_cast<size_t>(round);
        cpu_ratio.push_back(paths[2].cpu_us[i] / paths[1].cpu_us[i]);
        const double nginx_added = paths[1].p50_ms[i] - paths[0].p50_ms[i];
        if (nginx_added > 0) p50_ratio.push_back((paths[2].p50_ms[i] - paths[0].p50_ms[i]) / nginx_added);
        if (paced_rate > 0) {
            const double nginx_p99 = paths[1].paced_p99_ms[i] - paths[0].paced_p99_ms[i];
            if (nginx_p99 > 0) p99_ratio.push_back((paths[2].paced_p99_ms[i] - paths[0].paced_p99_ms[i]) / nginx_p99);
        }
    }
    auto median_or_dash = [](const std::vector<double>& v, const char* format) {
        if (v.empty()) return std::string("-");
        char buf[32];
        std::snprintf(buf, sizeof buf, format, Median(v));
        return std::string(buf);
    };
    std::printf("| path | CPU us/req (median of rounds) | min | max | context switches/req | P50 ms, 1 client | P99 ms, "
                "paced |\n|---|---|---|---|---|---|---|\n");
    for (const Path& path : paths) {
        char cpu[64] = "- | - | -";  // median | min | max
        if (!path.cpu_us.empty()) {
            const auto [min, max] = std::minmax_element(path.cpu_us.begin(), path.cpu_us.end());
            std::snprintf(cpu, sizeof cpu, "%.0f | %.0f | %.0f", Median(path.cpu_us), *min, *max);
        }
        std::printf("| %s | %s | %s | %.3f | %s |\n", path.name.c_str(), cpu,
                    median_or_dash(path.switches, "%.2f").c_str(), Median(path.p50_ms),
                    median_or_dash(path.paced_p99_ms, "%.3f").c_str());
    }
    std::printf("\nservice / nginx, median of the per-round ratios: CPU per request %s (min %.3f, max %.3f); "
                "latency added over the direct request, 1 client P50 %s; paced P99 %s\n",
                median_or_dash(cpu_ratio, "%.3f").c_str(), *std::min_element(cpu_ratio.begin(), cpu_ratio.end()),
                *std::max_element(cpu_ratio.begin(), cpu_ratio.end()), median_or_dash(p50_ratio, "%.2f").c_str(),
                median_or_dash(p99_ratio, "%.2f").c_str());
    if (failures) std::printf("%d request(s) FAILED\n", failures);
    cleanup();
    return failures == 0 ? 0 : 1;
}

}  // namespace
