// `summarizer serve` as a child process, for tests of the real binary (signals, exit codes, what it
// prints). Needs SUMMARIZER_BINARY (the binary's path) from the including target.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>

namespace summarizer::testing {

// Runs `summarizer serve --port 0 --ollama-url URL ARGS...` with this process's environment plus
// `env` ("KEY=value" each); its stdout and stderr go to a log file named after `name`. The port is
// the one its "listening on" line names. Killed (SIGKILL) on destruction if still running.
class ServeProcess {
public:
    ServeProcess(const std::string& ollama_url, std::vector<std::string> env, std::vector<std::string> args = {},
                 const std::string& name = "serve")
        : log_((std::filesystem::temp_directory_path() / ("summarizer_" + name + "_" + std::to_string(getpid()) +
                                                           "_" + std::to_string(NextId()) + ".log"))
                   .string()) {
        std::filesystem::remove(log_);
        std::vector<std::string> argv = {SUMMARIZER_BINARY, "serve", "--port", "0", "--ollama-url", ollama_url};
        argv.insert(argv.end(), args.begin(), args.end());
        // This environment, each of `env` replacing a variable of the same name.
        std::vector<std::string> envp;
        for (char** e = environ; *e; ++e) {
            const std::string kv = *e;
            bool replaced = false;
            for (const auto& mine : env) replaced |= kv.substr(0, kv.find('=') + 1) == mine.substr(0, mine.find('=') + 1);
            if (!replaced) envp.push_back(kv);
        }
        envp.insert(envp.end(), env.begin(), env.end());
        // Everything the child needs is built before fork(): a child of a threaded process must not allocate.
        std::vector<char*> cargs, cenv;
        for (auto& a : argv) cargs.push_back(a.data());
        cargs.push_back(nullptr);
        for (auto& e : envp) cenv.push_back(e.data());
        cenv.push_back(nullptr);
        pid_ = fork();
        if (pid_ == 0) {
            const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) _exit(126);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            execve(cargs[0], cargs.data(), cenv.data());
            _exit(127);
        }
    }
    ~ServeProcess() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    ServeProcess(const ServeProcess&) = delete;
    ServeProcess& operator=(const ServeProcess&) = delete;

    // The port it listens on; 0 if it printed none within 10 s.
    int port() {
        static const std::regex listening(R"(listening on http://[^:\s]+:(\d+))");
        for (int i = 0; i < 400 && port_ == 0 && !exited_; ++i) {
            std::smatch m;
            const std::string text = Log();
            if (std::regex_search(text, m, listening)) {
                port_ = std::stoi(m[1]);
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(25));
            }
        }
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
    void Signal(int sig) {
        if (pid_ > 0 && !exited_) kill(pid_, sig);
    }
    // The exit code (128 + signal when killed), or -1 if it has not exited within `limit`.
    int WaitExit(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (!exited_) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            if (std::chrono::steady_clock::now() >= until) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return exit_code_;
    }
    // Everything it has printed so far.
    std::string Log() const {
        std::ifstream in(log_, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // SIGTERM, then up to 10 s for it to exit (so every line is flushed); returns what it printed.
    std::string Stop() {
        Signal(SIGTERM);
        WaitExit(std::chrono::seconds(10));
        return Log();
    }

private:
    static int NextId() {
        static std::atomic<int> next{0};
        return ++next;
    }

    std::string log_;
    pid_t pid_ = -1;
    int port_ = 0;
    bool exited_ = false;
    int exit_code_ = -1;
};

}  // namespace summarizer::testing
