// `summarizer serve` as a child process (a ChildProcess, child_process.hpp), for tests of the real
// binary (signals, exit codes, what it prints) and the load bench. Needs SUMMARIZER_BINARY (the
// binary's path) from the including target.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>

#include "child_process.hpp"

namespace summarizer::testing {

struct ServeOptions {
    std::string ollama_url;
    std::vector<std::string> env;   // "KEY=value" each
    std::vector<std::string> args;  // after `serve --port 0 --ollama-url URL`
    std::string name = "serve";     // names the log file
    std::string binary = SUMMARIZER_BINARY;
    bool inherit_environment = true;  // this process's environment under `env`; false: only `env`
};

// Runs `BINARY serve --port 0 --ollama-url URL ARGS...`; its stdout and stderr go to a log file named
// after `name`. The port is the one its "listening on" line names. Killed (SIGKILL) on destruction
// if still running. Unless `env` says otherwise, its job store is a file of its own (removed on
// destruction) and POST /summarize does not go through it (SUMMARIZER_JOBS_CACHE=false): a test of
// something else sees every request reach the fake, and no test sees another's jobs.
class ServeProcess {
public:
    explicit ServeProcess(ServeOptions options) : child_(ChildOptionsFor(std::move(options), &own_db_)) {}
    ~ServeProcess() {
        child_.Terminate(std::chrono::milliseconds(0));
        if (own_db_.empty()) return;
        std::error_code ignored;
        for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(own_db_ + suffix, ignored);
    }
    ServeProcess(const ServeProcess&) = delete;
    ServeProcess& operator=(const ServeProcess&) = delete;
    ServeProcess(const std::string& ollama_url, std::vector<std::string> env, std::vector<std::string> args = {},
                 const std::string& name = "serve")
        : ServeProcess(ServeOptions{ollama_url, std::move(env), std::move(args), name}) {}

    // The port it listens on; 0 if it printed none within 10 s.
    int port() {
        if (port_ == 0) port_ = child_.ListeningPort(std::chrono::seconds(10));
        return port_;
    }
    // Listening and answering /healthz within 10 s.
    bool WaitUp() {
        if (port() == 0) return false;
        httplib::Client client("127.0.0.1", port_);
        for (int i = 0; i < 400; ++i) {
            auto res = client.Get("/healthz");
            if (res && res->status == 200) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return false;
    }
    httplib::Client Client() {
        httplib::Client c("127.0.0.1", port());
        c.set_read_timeout(std::chrono::seconds(20));
        return c;
    }
    pid_t pid() const { return child_.pid(); }
    const std::string& log_path() const { return child_.log_path(); }
    void Signal(int sig) { child_.Signal(sig); }
    // The exit code (128 + signal when killed), or -1 if it has not exited within `limit`.
    int WaitExit(std::chrono::milliseconds limit) { return child_.WaitExit(limit); }
    // SIGTERM, up to `grace` to exit, then SIGKILL: the exit code, or -1 when it had to be killed.
    int Terminate(std::chrono::milliseconds grace) { return child_.Terminate(grace); }
    // Everything it has printed so far.
    std::string Log() const { return child_.Log(); }
    // SIGTERM, then up to 10 s for it to exit (so every line is flushed); returns what it printed.
    std::string Stop() {
        Signal(SIGTERM);
        WaitExit(std::chrono::seconds(10));
        return Log();
    }

private:
    static ChildOptions ChildOptionsFor(ServeOptions options, std::string* own_db) {
        static std::atomic<int> next_id{0};
        ChildOptions child;
        child.argv = {options.binary, "serve", "--port", "0", "--ollama-url", options.ollama_url};
        child.argv.insert(child.argv.end(), options.args.begin(), options.args.end());
        const std::string stem =
            "summarizer_" + options.name + "_" + std::to_string(getpid()) + "_" + std::to_string(++next_id);
        auto has = [&](const std::string& name) {
            for (const auto& kv : options.env) {
                if (kv.rfind(name + "=", 0) == 0) return true;
            }
            return false;
        };
        if (!has("SUMMARIZER_JOBS_DB")) {
            *own_db = (std::filesystem::temp_directory_path() / (stem + ".jobs.db")).string();
            options.env.push_back("SUMMARIZER_JOBS_DB=" + *own_db);
        }
        if (!has("SUMMARIZER_JOBS_CACHE")) options.env.push_back("SUMMARIZER_JOBS_CACHE=false");
        child.env = std::move(options.env);
        child.inherit_environment = options.inherit_environment;
        child.log_path = (std::filesystem::temp_directory_path() / (stem + ".log")).string();
        return child;
    }

    std::string own_db_;  // first: ChildOptionsFor fills it before the child starts
    ChildProcess child_;
    int port_ = 0;
};

// The environment of a `summarizer serve` that runs durable jobs on `database` (a SQLite file or a
// postgresql:// URL) with the result cache on, `slots` Ollama slots, a `lease_ms` lease, a 50 ms
// poll and no preload: the crash tests' and the jobs bench's.
inline std::vector<std::string> JobStoreEnv(const std::string& database, int slots, const std::string& lease_ms,
                                            int ollama_idle_timeout_s) {
    return {"SUMMARIZER_JOBS_DB=" + database,
            "SUMMARIZER_JOBS_CACHE=true",
            "SUMMARIZER_JOBS_LEASE_MS=" + lease_ms,
            "SUMMARIZER_JOBS_POLL_MS=50",
            "OLLAMA_NUM_PARALLEL=" + std::to_string(slots),
            "SUMMARIZER_PRELOAD_HOT_BUCKET=false",
            "SUMMARIZER_OLLAMA_IDLE_TIMEOUT_S=" + std::to_string(ollama_idle_timeout_s)};
}

}  // namespace summarizer::testing
