// summarizer-load-bench: N concurrent clients for T seconds against the real `summarizer serve`
// (a child process) backed by the fake Ollama with a GPU cost model (realistic rates, time-scaled),
// while one large map-reduce job after another runs. Reports the answers by status (only 200 and
// 429 are acceptable), errors in the service's log, the service's peak RSS (/proc), and latency
// percentiles of the short requests, separately while the large job was running.
// Only 127.0.0.1; bounded in clients and time. Exit code 1 when --assert and a check failed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "fake_ollama.hpp"
#include "serve_process.hpp"
#include "summarizer/stats.hpp"

namespace {

using summarizer::Percentile;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace fake = summarizer::testing;

struct Options {
    int clients = 64;
    double duration_s = 60;
    double time_scale = 10;       // the fake GPU runs this many times faster than an RTX 4060
    int slots = 1;                // OLLAMA_NUM_PARALLEL
    int max_inflight = 0;         // service knobs (0: the service's default)
    int max_queue = -1;
    int queue_timeout_s = 0;
    bool large_job = true;
    std::string binary = SUMMARIZER_BINARY;
    std::string cases_dir = SUMMARIZER_BENCH_CASES_DIR;
    std::string json_out;
    bool assert_checks = false;
    int max_retry_after_s = 2;    // a client honours Retry-After up to this long
};

std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}


// Resident set of a process from /proc: current and peak (VmHWM), in KiB.
std::pair<long, long> RssKib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    long rss = 0, hwm = 0;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6));
        if (line.rfind("VmHWM:", 0) == 0) hwm = std::stol(line.substr(6));
    }
    return {rss, hwm};
}

struct Sample {
    double start_s;   // since the run began
    double latency_s;
    int status;       // 0: transport error
    bool large;
};

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Options o;
    CLI::App app{"summarizer-load-bench: concurrent clients against summarizer serve + the fake Ollama (127.0.0.1)"};
    app.add_option("--clients", o.clients, "concurrent clients sending short texts")->check(CLI::Range(1, 512));
    app.add_option("--duration-s", o.duration_s, "how long the clients send")->check(CLI::Range(1.0, 3600.0));
    app.add_option("--time-scale", o.time_scale, "the fake GPU runs this many times faster than real time");
    app.add_option("--slots", o.slots, "fake Ollama parallel slots (OLLAMA_NUM_PARALLEL)");
    app.add_option("--max-inflight", o.max_inflight, "service server.max_inflight (0: default)");
    app.add_option("--max-queue", o.max_queue, "service server.max_queue (-1: default)");
    app.add_option("--queue-timeout-s", o.queue_timeout_s, "service server.queue_timeout_s (0: default)");
    app.add_option("--binary", o.binary, "the summarizer binary")->capture_default_str();
    app.add_option("--cases-dir", o.cases_dir, "bench/cases")->capture_default_str();
    app.add_option("--json", o.json_out, "also write the report as JSON to this file");
    app.add_flag("!--no-large-job", o.large_job, "do not run the large map-reduce job meanwhile");
    app.add_flag("--assert", o.assert_checks, "exit 1 unless only 200/429 were seen and the log has no errors");
    CLI11_PARSE(app, argc, argv);

    // The fake Ollama with realistic rates (an RTX 4060 running gemma3:4b), time-scaled.
    fake::FakeOllama ollama;
    fake::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.slots = o.slots;
    gpu.time_scale = o.time_scale;
    ollama.SetGpuModel(gpu);

    // Only these variables: a run does not depend on the caller's SUMMARIZER_* settings.
    std::vector<std::string> env = {"OLLAMA_HOST=" + ollama.url(), "OLLAMA_NUM_PARALLEL=" + std::to_string(o.slots)};
    if (o.max_inflight > 0) env.push_back("SUMMARIZER_MAX_INFLIGHT=" + std::to_string(o.max_inflight));
    if (o.max_queue >= 0) env.push_back("SUMMARIZER_MAX_QUEUE=" + std::to_string(o.max_queue));
    if (o.queue_timeout_s > 0) env.push_back("SUMMARIZER_QUEUE_TIMEOUT_S=" + std::to_string(o.queue_timeout_s));
    env.push_back("SUMMARIZER_THREADS=" + std::to_string(std::max(32, o.clients + 16)));
    // The scheduler's waits are in real time while the fake's GPU runs time_scale times faster:
    // scale them the same way, or a large job's map calls wait 20 simulated minutes behind short ones.
    const auto scaled_ms = [&](double ms) { return std::to_string(std::max(1, static_cast<int>(ms / o.time_scale))); };
    // No start-up preload: the run waits for the fake's first call to know the large job is admitted.
    env.push_back("SUMMARIZER_PRELOAD_HOT_BUCKET=false");
    env.push_back("SUMMARIZER_BATCH_MAX_WAIT_MS=" + scaled_ms(20000));
    env.push_back("SUMMARIZER_SWITCH_MAX_WAIT_MS=" + scaled_ms(15000));
    env.push_back("SUMMARIZER_PREFILL_GATE_MAX_MS=" + scaled_ms(20000));

    fake::ServeProcess service({.ollama_url = ollama.url(),
                                .env = env,
                                .name = "load_bench",
                                .binary = o.binary,
                                .inherit_environment = false});
    const auto stop_service = [&] { return service.Terminate(std::chrono::seconds(10)); };
    if (!service.WaitUp()) {
        std::cerr << "summarizer-load-bench: the service did not start; log " << service.log_path() << ":\n"
                  << service.Log();
        stop_service();
        return 1;
    }
    const int port = service.port();
    const pid_t pid = service.pid();

    const std::vector<std::string> shorts = {ReadFile(o.cases_dir + "/small.en.txt"),
                                             ReadFile(o.cases_dir + "/small.ja.txt"),
                                             ReadFile(o.cases_dir + "/medium.en.txt")};
    std::string large;
    for (int i = 0; i < 2; ++i) {
        for (const char* name : {"xl.en.txt", "xl.ja.txt", "large.en.txt", "large.ja.txt"}) {
            large += ReadFile(o.cases_dir + "/" + name) + "\n\n";
        }
    }
    if (shorts[0].empty() || large.size() < 100000) {
        std::cerr << "summarizer-load-bench: cannot read the cases in " << o.cases_dir << "\n";
        stop_service();
        return 1;
    }

    const auto begin = Clock::now();
    const auto deadline = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
    auto since = [&](Clock::time_point t) { return std::chrono::duration<double>(t - begin).count(); };
    std::mutex mutex;
    std::vector<Sample> samples;
    std::vector<std::pair<double, double>> large_runs;  // [start, end) of each large job
    std::map<std::string, int> transport_errors;         // client-side failures by kind
    std::atomic<long> peak_rss{0};
    std::atomic<bool> done{false};

    std::thread sampler([&] {
        while (!done) {
            peak_rss = std::max(peak_rss.load(), RssKib(pid).first);
            std::this_thread::sleep_for(100ms);
        }
    });
    std::thread large_client([&] {
        if (!o.large_job) return;
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(600));
        const std::string body = json{{"text", large}}.dump();
        while (Clock::now() < deadline) {
            const auto start = Clock::now();
            auto res = c.Post("/summarize", body, "application/json");
            const auto end = Clock::now();
            const int status = res ? res->status : 0;
            if (status == 429 || status == 0) {  // not admitted: back off, as the short clients do
                std::this_thread::sleep_for(std::chrono::seconds(o.max_retry_after_s));
                continue;
            }
            std::lock_guard lock(mutex);
            large_runs.emplace_back(since(start), since(end));
            samples.push_back({since(start), std::chrono::duration<double>(end - start).count(), status, true});
            if (status == 200) {
                auto doc = json::parse(res->body, nullptr, false);
                if (!doc.is_discarded() && doc.value("route", "") != "map_reduce") {
                    std::cerr << "note: the large job took route " << doc.value("route", "?") << "\n";
                }
            }
        }
    });
    // The large job is admitted first; the short clients then queue behind and beside it.
    if (o.large_job) ollama.WaitForRequests(1, 2000ms);
    std::vector<std::thread> clients;
    for (int i = 0; i < o.clients; ++i) {
        clients.emplace_back([&, i] {
            httplib::Client c("127.0.0.1", port);
            c.set_tcp_nodelay(true);
            c.set_read_timeout(std::chrono::seconds(300));  // bounded even if the service stalled
            size_t k = static_cast<size_t>(i);
            while (Clock::now() < deadline) {
                const std::string body = json{{"text", shorts[k++ % shorts.size()]}}.dump();
                const auto start = Clock::now();
                auto res = c.Post("/summarize", body, "application/json");
                const auto end = Clock::now();
                const int status = res ? res->status : 0;
                {
                    std::lock_guard lock(mutex);
                    samples.push_back({since(start), std::chrono::duration<double>(end - start).count(), status, false});
                    if (!res) ++transport_errors[httplib::to_string(res.error())];
                }
                if (status == 429) {
                    // A polite client: back off as told (capped, so the run stays bounded).
                    int after = 1;
                    try {
                        after = std::stoi(res->get_header_value("Retry-After"));
                    } catch (const std::exception&) {
                    }
                    auto wake = std::min(deadline, Clock::now() + std::chrono::seconds(std::min(after, o.max_retry_after_s)));
                    while (Clock::now() < wake) std::this_thread::sleep_for(20ms);
                } else if (status == 0) {
                    std::this_thread::sleep_for(50ms);
                }
            }
        });
    }
    for (auto& t : clients) t.join();
    const double clients_done_s = since(Clock::now());
    large_client.join();
    const double large_done_s = since(Clock::now());
    done = true;
    sampler.join();
    const long peak_hwm = RssKib(pid).second;
    const int exit_code = stop_service();

    // Errors in the log: spdlog level "error" or "critical".
    int log_errors = 0;
    std::vector<std::string> error_lines;
    {
        std::ifstream in(service.log_path());
        std::string line;
        while (std::getline(in, line)) {
            if (line.find(" error ") != std::string::npos || line.find(" critical ") != std::string::npos) {
                ++log_errors;
                if (error_lines.size() < 5) error_lines.push_back(line);
            }
        }
    }

    std::map<int, int> by_status;
    std::vector<double> short_all, short_during_large, short_ok;
    int large_ok = 0, large_total = 0;
    for (const auto& s : samples) {
        if (s.large) {
            ++large_total;
            if (s.status == 200) ++large_ok;
            continue;
        }
        ++by_status[s.status];
        if (s.status != 200) continue;
        short_ok.push_back(s.latency_s);
        const double end = s.start_s + s.latency_s;
        bool during = std::any_of(large_runs.begin(), large_runs.end(),
                                  [&](const auto& r) { return s.start_s >= r.first && end <= r.second; });
        if (during) short_during_large.push_back(s.latency_s);
    }
    int bad = 0;
    for (const auto& [status, count] : by_status) {
        if (status != 200 && status != 429) bad += count;
    }

    std::ostringstream report;
    report << "summarizer-load-bench: " << o.clients << " clients x " << o.duration_s << " s, fake GPU x"
           << o.time_scale << " time scale, " << o.slots << " slot(s)" << (o.large_job ? ", large map-reduce job meanwhile" : "")
           << "\n";
    report << "  short requests by status:";
    for (const auto& [status, count] : by_status) report << " " << (status == 0 ? std::string("transport-error") : std::to_string(status)) << "=" << count;
    for (const auto& [kind, count] : transport_errors) report << " (" << kind << ": " << count << ")";
    report << "\n";
    for (const auto& s : samples) {
        if (s.status == 0) report << "    transport error: sent at " << s.start_s << " s, after " << s.latency_s << " s\n";
    }
    report << "  short 200 latency: P50 " << Percentile(short_ok, 50).value_or(0) << " s, P95 "
           << Percentile(short_ok, 95).value_or(0) << " s, max "
           << (short_ok.empty() ? 0 : *std::max_element(short_ok.begin(), short_ok.end())) << " s (" << short_ok.size()
           << ")\n";
    report << "  short 200 latency while the large job ran: P95 " << Percentile(short_during_large, 95).value_or(0)
           << " s (" << short_during_large.size() << " requests)\n";
    report << "  large jobs: " << large_ok << "/" << large_total << " answered 200";
    for (size_t i = 0; i < large_runs.size() && i < 5; ++i) {
        report << " [" << large_runs[i].first << " s .. " << large_runs[i].second << " s]";
    }
    report << "\n";
    report << "  service peak RSS: " << std::max(peak_rss.load(), peak_hwm) / 1024.0 << " MiB (VmHWM " << peak_hwm / 1024.0
           << " MiB); log errors: " << log_errors << "; exit code after SIGTERM: " << exit_code << "\n";
    report << "  clients finished at " << clients_done_s << " s, large job at " << large_done_s << " s\n";
    for (const auto& line : error_lines) report << "  log: " << line << "\n";
    std::cout << report.str();

    if (!o.json_out.empty()) {
        json doc = {{"clients", o.clients},
                    {"duration_s", o.duration_s},
                    {"time_scale", o.time_scale},
                    {"by_status", json::object()},
                    {"short_p50_s", Percentile(short_ok, 50).value_or(0)},
                    {"short_p95_s", Percentile(short_ok, 95).value_or(0)},
                    {"short_p95_during_large_s", Percentile(short_during_large, 95).value_or(0)},
                    {"short_during_large", short_during_large.size()},
                    {"large_ok", large_ok},
                    {"large_total", large_total},
                    {"peak_rss_mib", std::max(peak_rss.load(), peak_hwm) / 1024.0},
                    {"log_errors", log_errors},
                    {"exit_code", exit_code}};
        for (const auto& [status, count] : by_status) doc["by_status"][std::to_string(status)] = count;
        std::ofstream(o.json_out) << doc.dump(2) << "\n";
    }
    bool ok = bad == 0 && log_errors == 0 && exit_code == 0 && (!o.large_job || large_ok >= 1) && !short_ok.empty();
    if (!ok) std::cout << "  CHECK FAILED: " << bad << " answers other than 200/429, " << log_errors << " log errors, exit "
                       << exit_code << ", large ok " << large_ok << "\n";
    else std::filesystem::remove(service.log_path());
    return o.assert_checks && !ok ? 1 : 0;
}
