// summarizer-overhead-bench: what the service adds on top of Ollama, measured against a fake Ollama
// that answers at once (tests/support/fake_ollama, in-process, real sockets).
//
// The same small summary is asked for directly from the fake (POST /api/generate, streaming NDJSON)
// and through the service (POST /summarize, JSON and SSE), by 1 client, by 32 concurrent clients flat
// out, and by 32 clients sending a paced 1,000 requests/s together, each on one keep-alive connection
// with TCP_NODELAY. Printed: latency P50/P99 of both (summarizer::Percentile: linear interpolation,
// as in every bench) and the difference (the added latency), time to first token (first NDJSON
// piece / first SSE delta) and its difference (the added TTFT), and requests/s through the service.
// Targets (2 cores): added P50 <= 0.3 ms, added P99 <= 1 ms, added TTFT <= 1 ms (1 client, 32
// paced), >= 3,000 req/s (32 flat out). Exit code 0 unless requests failed; the targets are
// reported, not enforced (timings depend on the machine).
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "fake_ollama.hpp"
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
    double cpu_s = 0;  // CPU time of the whole process (clients, service, fake) while measuring
    int failures = 0;
};

double ProcessCpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
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
RunResult Run(int port, const Target& target, int clients, int per_client, int warmup, double rate = 0) {
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
        go = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    result.wall_s = MsSince(start) / 1000.0;
    result.cpu_s += ProcessCpuSeconds();
    for (auto& v : per_thread) result.samples.insert(result.samples.end(), v.begin(), v.end());
    result.failures = failures.load();
    return result;
}

// Appends the samples, wall and CPU time of `more` to `into`.
void Merge(RunResult& into, RunResult&& more) {
    into.samples.insert(into.samples.end(), more.samples.begin(), more.samples.end());
    into.wall_s += more.wall_s;
    into.cpu_s += more.cpu_s;
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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"summarizer-overhead-bench: latency, TTFT and throughput the service adds on top of an instant fake Ollama"};
    int requests_1 = 2000;
    int requests_32 = 4000;
    int warmup = 20;
    int rounds = 4;
    bool log_to_stderr = false;
    double paced_rate = 1000;
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
    app.add_flag("--log-to-stderr", log_to_stderr, "access log to stderr (default: /dev/null, the cost of the write kept)");
    CLI11_PARSE(app, argc, argv);

    // The access log is part of the hot path: keep writing it, to a sink that costs a write() only.
    if (!log_to_stderr) spdlog::set_default_logger(spdlog::basic_logger_mt("access", "/dev/null"));

    namespace fake = summarizer::testing;
    fake::FakeOllama ollama;
    fake::FakeBehavior behavior;
    behavior.reply = "The council funded the first tram section; a timetable follows before summer.";
    behavior.piece_chars = 16;
    ollama.SetBehavior(behavior);

    summarizer::Config config;
    config.server.port = 0;
    config.ollama.url = ollama.url();
    // Admission must not queue the 32 clients: this measures the service's own cost, not its policy.
    config.server.max_inflight = 64;
    // Nor the upstream scheduler: the instant fake has as many slots as there are clients, and
    // no prompt to prefill (no gate), no model to preload.
    config.ollama.num_parallel = 64;
    config.scheduler.prefill_gate = false;
    config.vram.preload_hot_bucket = false;
    config.server.threads = std::max(config.server.threads, 40);
    summarizer::Service service(config);
    summarizer::HttpServer server(config, service);
    auto port = server.Bind();
    if (!port.ok()) {
        std::fprintf(stderr, "cannot bind: %s\n", port.error().message.c_str());
        return 1;
    }
    std::thread serving([&] { server.Run(); });

    const std::string text =
        "The city council met on Tuesday to discuss the new tram line. After three hours of debate, the members "
        "voted to fund the first section, from the central station to the university, and asked the transport "
        "office to publish a timetable before the summer. Residents along the route raised concerns about noise "
        "during construction; the council promised that night work would be limited to two weeks and that "
        "affected households would be told a month in advance. The first trams are expected to run in three years.";
    // What the service sends upstream for this text, give or take the prompt's wording.
    const json generate = {{"model", "gemma3-4b-16k"},
                           {"prompt", "Summarize the document below.\n<document>\n" + text + "\n</document>"},
                           {"stream", true},
                           {"keep_alive", "24h"},
                           {"truncate", false},
                           {"options", {{"num_ctx", 16384}, {"num_predict", 1200}, {"temperature", 0.15}}}};
    const Target direct{"direct /api/generate (stream)", "/api/generate", generate.dump(), "\"response\":\""};
    const Target service_json{"service /summarize (JSON)", "/summarize", json{{"text", text}}.dump(), ""};
    const Target service_sse{"service /summarize (SSE)", "/summarize", json{{"text", text}, {"stream", true}}.dump(),
                             "event: delta"};

    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    std::printf("summarizer-overhead-bench: %u cores, load average %.1f (other processes compete for the cores: "
                "compare ratios, rerun on an idle machine), fake Ollama at %s, service on port %d\n",
                std::thread::hardware_concurrency(), load[0], ollama.url().c_str(), *port);
    std::printf("\n| clients | request | P50 ms | P99 ms | TTFT P50 ms | TTFT P99 ms | req/s | CPU us/req |\n"
                "|---|---|---|---|---|---|---|---|\n");
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
            Merge(row.json, Run(*port, service_json, clients, per_client, warmup, rate));
            Merge(row.sse, Run(*port, service_sse, clients, per_client, warmup, rate));
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
            std::printf("| %s | %s | %.3f | %.3f | %s | %s | %.0f | %.0f |\n", row.Label().c_str(),
                        target->name.c_str(), Percentile(lat, 50).value_or(0), Percentile(lat, 99).value_or(0),
                        ttft50.c_str(), ttft99.c_str(), static_cast<double>(r->samples.size()) / r->wall_s,
                        r->cpu_s * 1e6 / static_cast<double>(r->samples.size()));
        }
        rows.push_back(std::move(row));
    }

    // Flat out, 32 clients keep the 2 cores busy and a request mostly waits for a core: by Little's law
    // its latency is 32 / throughput, so the service's added latency there is its added CPU times
    // 32 / 2 cores, whatever it does. The latency targets are therefore judged with 1 client and with
    // 32 clients at a paced load; the flat-out run is judged on throughput.
    // The CPU the service adds per request (the process's CPU per request through the service, less
    // that of the same request sent directly) does not depend on what else the machine runs; 2 cores
    // divided by it is what the service alone could serve if the clients and Ollama were elsewhere.
    std::printf("\n| clients | added P50 ms | added P99 ms | added TTFT P50 ms | added TTFT P99 ms | service req/s | "
                "added CPU us/req | 2 cores / added CPU |\n|---|---|---|---|---|---|---|---|\n");
    bool all_ok = failures == 0;
    for (const auto& row : rows) {
        const bool flat_out = row.clients > 1 && row.rate <= 0;
        const double p50 =
            Percentile(Latencies(row.json), 50).value_or(0) - Percentile(Latencies(row.direct), 50).value_or(0);
        const double p99 =
            Percentile(Latencies(row.json), 99).value_or(0) - Percentile(Latencies(row.direct), 99).value_or(0);
        const double t50 = Percentile(Ttfts(row.sse), 50).value_or(0) - Percentile(Ttfts(row.direct), 50).value_or(0);
        const double t99 = Percentile(Ttfts(row.sse), 99).value_or(0) - Percentile(Ttfts(row.direct), 99).value_or(0);
        const double rps = static_cast<double>(row.json.samples.size()) / row.json.wall_s;
        const double added_cpu_s = row.json.cpu_s / static_cast<double>(row.json.samples.size()) -
                                   row.direct.cpu_s / static_cast<double>(row.direct.samples.size());
        const auto verdict = [&](bool ok) { return flat_out ? "queueing, not judged" : Verdict(ok); };
        std::printf("| %s | %.3f (%s) | %.3f (%s) | %.3f (%s) | %.3f | %.0f%s | %.0f | %.0f req/s |\n",
                    row.Label().c_str(), p50, verdict(p50 <= 0.3), p99, verdict(p99 <= 1.0), t50, verdict(t50 <= 1.0),
                    t99, rps, flat_out ? (rps >= 3000 ? " (ok)" : " (MISSED)") : "", added_cpu_s * 1e6,
                    added_cpu_s > 0 ? 2.0 / added_cpu_s : 0.0);
        all_ok = all_ok && (flat_out ? rps >= 3000 : p50 <= 0.3 && p99 <= 1.0 && t50 <= 1.0);
    }
    std::printf("\ntargets: added P50 <= 0.3 ms, added P99 <= 1 ms, added TTFT <= 1 ms (1 client, 32 paced), "
                ">= 3000 req/s (32 flat out): %s\n",
                all_ok ? "all met" : "not all met");
    if (failures) std::printf("%d request(s) FAILED\n", failures);

    server.Stop();
    serving.join();
    ollama.Stop();
    return failures == 0 ? 0 : 1;
}
