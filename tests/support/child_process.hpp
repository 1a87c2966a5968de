// A child process for the tests and benches that run a real binary (`summarizer serve`, through
// serve_process.hpp): arguments and environment of its own, stdout and stderr in a log file, the
// port its "listening on" line names, signals, the exit code. Everything the child needs is built
// before fork(): the child of a threaded process must not allocate, so it only opens the log,
// redirects and execs. Killed (SIGKILL) and reaped on destruction if still running. Not thread-safe.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace summarizer::testing {

struct ChildOptions {
    std::vector<std::string> argv;    // argv[0] is the executable's path (no PATH search)
    std::vector<std::string> env;     // "KEY=value" each, replacing a variable of the same name
    bool inherit_environment = true;  // start from this process's environment; false: only `env`
    std::string log_path;             // stdout and stderr go here (removed first, then created)
};

class ChildProcess {
public:
    explicit ChildProcess(ChildOptions options) : log_path_(std::move(options.log_path)) {
        std::vector<std::string> envp;
        if (options.inherit_environment) {
            for (char** e = environ; *e; ++e) {
                const std::string kv = *e;
                const std::string name = kv.substr(0, kv.find('=') + 1);
                bool replaced = false;
                for (const auto& mine : options.env) replaced |= name == mine.substr(0, mine.find('=') + 1);
                if (!replaced) envp.push_back(kv);
            }
        }
        envp.insert(envp.end(), options.env.begin(), options.env.end());
        std::vector<char*> cargs, cenv;
        for (auto& a : options.argv) cargs.push_back(a.data());
        cargs.push_back(nullptr);
        for (auto& e : envp) cenv.push_back(e.data());
        cenv.push_back(nullptr);
        // A stale log of an earlier run must not be read as this one's (its "listening on" line).
        std::error_code ignored;
        std::filesystem::remove(log_path_, ignored);
        const char* log = log_path_.c_str();
        pid_ = fork();
        if (pid_ == 0) {
            const int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) _exit(126);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            if (fd != STDOUT_FILENO && fd != STDERR_FILENO) close(fd);
            execve(cargs[0], cargs.data(), cenv.data());
            _exit(127);
        }
        exited_ = pid_ < 0;  // fork failed: nothing to wait for
    }
    ~ChildProcess() {
        if (!exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& log_path() const { return log_path_; }

    // Everything it has printed so far.
    std::string Log() const {
        std::ifstream in(log_path_, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    // The port of its first "listening on http://HOST:PORT" line; 0 if it printed none within
    // `limit` or exited first.
    int ListeningPort(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        static const std::regex listening(R"(listening on http://(?:\[[^\]\s]*\]|[^:\s]+):(\d+))");
        const auto until = std::chrono::steady_clock::now() + limit;
        while (true) {
            std::smatch m;
            const std::string text = Log();
            if (std::regex_search(text, m, listening)) return std::stoi(m[1]);
            if (Reaped() || std::chrono::steady_clock::now() >= until) return 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
    }

    void Signal(int sig) {
        if (!exited_) kill(pid_, sig);
    }

    // The exit code (128 + signal when a signal ended it), or -1 if it has not exited within `limit`.
    int WaitExit(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (!Reaped()) {
            if (std::chrono::steady_clock::now() >= until) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return exit_code_;
    }

    // SIGTERM, then up to `grace` for it to exit, then SIGKILL. The exit code as WaitExit gives it,
    // or -1 when it had to be killed.
    int Terminate(std::chrono::milliseconds grace) {
        Signal(SIGTERM);
        const int code = WaitExit(grace);
        if (code != -1) return code;
        Signal(SIGKILL);
        WaitExit(std::chrono::seconds(10));
        return -1;
    }

private:
    // True once it has exited (and then exit_code_ is set); never blocks.
    bool Reaped() {
        if (exited_) return true;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
        exited_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
    }

    std::string log_path_;
    pid_t pid_ = -1;
    bool exited_ = false;
    int exit_code_ = -1;
};

}  // namespace summarizer::testing
