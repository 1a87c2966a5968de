// The fake Ollama server (see fake_ollama.hpp). Layout of a generate/chat call:
//   handler (worker thread): parse, record, headers_delay_ms, 400/404/fail_status, then hand a chunked
//   content provider to httplib, which sends the 200 headers and calls Serve():
//   Serve(): wait for a slot (GPU model) -> load the runner -> prefill -> decode piece by piece -> final line.
// Every wait in Serve() runs in steps of at most kPollStep and polls sink.is_writable(), so a client that goes
// away is noticed within a few milliseconds (and Stop() within the same).
#include "fake_ollama.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include <httplib.h>

#include "fake_batch_engine.hpp"
#include "summarizer/duration.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // responses keep Ollama's field order
using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

constexpr int kThreads = 128;  // one per connection (keep-alive and streams each hold one)
constexpr auto kPollStep = std::chrono::milliseconds(2);
constexpr const char* kJson = "application/json; charset=utf-8";
// Runner size estimate when FakeModel::size_bytes is 0: the gemma3:4b Q4_K_M weights (its size on disk) plus a KV
// cache of ~24 KiB per token per slot (Gemma 3 4B in f16 with its sliding-window layers sized to the window).
constexpr int64_t kWeightsBytes = 3'338'801'804;
constexpr int64_t kKvBytesPerToken = 24 * 1024;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
int64_t Ns(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e9)); }

bool IsCjk(char32_t c) {
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0xFF00 && c <= 0xFFEF) || (c >= 0x20000 && c <= 0x3FFFF);
}

// The longest prefix of at most `max_bytes` that does not cut a UTF-8 sequence.
std::string Utf8Prefix(std::string_view text, size_t max_bytes) {
    return std::string(text.substr(0, CodePointStartAtOrBefore(text, max_bytes)));
}

std::vector<std::string> SplitPieces(const std::string& text, int piece_chars) {
    std::vector<std::string> pieces;
    const size_t step = piece_chars > 0 ? static_cast<size_t>(piece_chars) : std::max<size_t>(1, text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t end = CodePointStartAtOrAfter(text, i + step);
        pieces.push_back(text.substr(i, end - i));
        i = end;
    }
    return pieces;
}

// "Summary: " + the first 60 bytes of the last <document ...>...</document> block (or of the prompt).
std::string DefaultReply(const std::string& prompt) {
    std::string_view block = prompt;
    for (size_t open = prompt.rfind("<document"); open != std::string::npos;
         open = open == 0 ? std::string::npos : prompt.rfind("<document", open - 1)) {
        const char next = open + 9 < prompt.size() ? prompt[open + 9] : '\0';
        const size_t gt = prompt.find('>', open);
        if ((next != '>' && !std::isspace(static_cast<unsigned char>(next))) || gt == std::string::npos) continue;
        const size_t close = prompt.find("</document>", gt);
        block = std::string_view(prompt).substr(gt + 1, close == std::string::npos ? close : close - gt - 1);
        break;
    }
    while (!block.empty() && std::isspace(static_cast<unsigned char>(block.front()))) block.remove_prefix(1);
    return "Summary: " + Utf8Prefix(block, 60);
}

std::string Rfc3339(SysClock::time_point t) {
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    const std::time_t secs = ns / 1'000'000'000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(ns % 1'000'000'000));
    return buf;
}

// keep_alive: absent = 5 minutes, a number = seconds, a string = a Go duration; negative = forever.
std::optional<double> ParseKeepAlive(const json& value) {
    if (value.is_null()) return 300.0;
    if (value.is_number()) return value.get<double>();
    if (value.is_string()) return ParseGoDuration(value.get<std::string>());
    return std::nullopt;
}

std::string TagName(const std::string& name) {
    return name.find(':') == std::string::npos ? name + ":latest" : name;
}

bool SameModel(const std::string& a, const std::string& b) { return TagName(a) == TagName(b); }

std::string FakeDigest(const std::string& name) {
    std::string digest;
    for (size_t seed = 0; digest.size() < 64; ++seed) {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016zx", std::hash<std::string>{}(name + std::to_string(seed)));
        digest += buf;
    }
    return digest.substr(0, 64);
}

ojson Details(const std::string& parent) {
    return {{"parent_model", parent}, {"format", "gguf"},           {"family", "gemma3"},
            {"families", {"gemma3"}}, {"parameter_size", "4.3B"}, {"quantization_level", "Q4_K_M"}};
}

// httplib 0.11 keeps an idle keep-alive connection for up to 5 s after stop() and gives no handle on accepted
// sockets. Shut down every connected socket of this process whose local port is ours: Stop() returns at once and
// clients see their connections close, as when Ollama is killed.
void ShutdownAcceptedSockets(int port) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const int fd = std::atoi(entry.path().filename().c_str());
        sockaddr_in local{}, peer{};
        socklen_t local_len = sizeof local, peer_len = sizeof peer;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 || local.sin_family != AF_INET ||
            ntohs(local.sin_port) != port || getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
            continue;
        }
        ::shutdown(fd, SHUT_RDWR);
    }
}

// A runner: one loaded model instance (per model, or per model file with one_runner_per_file).
struct Runner {
    std::string model;  // the FakeModel name it was loaded for
    int64_t num_ctx = 0;
    int64_t size = 0;
    int64_t size_vram = 0;
    Clock::time_point ready_at;      // end of the load (GPU model)
    SysClock::time_point expires_at;
    bool forever = false;
    int active = 0;                  // calls admitted to it
};

// One generate/chat call.
struct Call {
    std::shared_ptr<RecordedRequest> record;
    FakeBehavior behavior;  // snapshots taken on arrival
    FakeGpuModel gpu;
    FakeModel info;
    bool chat = false;
    std::string model;      // as the request named it (echoed back)
    std::string prompt;     // what DefaultReply quotes
    std::string runner_key;
    int64_t num_ctx = 0;
    int64_t num_predict = -1;
    int64_t prompt_tokens = 0;
    double keep_alive_s = 300;
    bool stream = true;
    bool load_only = false;
    // Progress, set by Serve() and read by Release()/Finish() (same worker thread).
    Clock::time_point ready_at;
    double spill = 1.0;
    bool admitted = false, released = false, completed = false, dropped = false, stopped = false;
    bool disconnected = false;
    int64_t pieces = 0;
};

const std::function<double()> kOne = [] { return 1.0; };

}  // namespace

int64_t CountFakeTokens(const std::string& text, double scale) {
    double latin = 0, cjk = 0;
    for (size_t i = 0; i < text.size();) (IsCjk(DecodeCodePoint(text, i)) ? cjk : latin) += 1;
    return static_cast<int64_t>(std::ceil((latin / 4.0 + cjk / 1.6) * scale - 1e-9));
}

struct FakeOllama::Impl {
    int port = 0;
    mutable std::mutex mu;
    mutable std::condition_variable cv;  // requests arrived, slots freed, calls finished
    FakeBehavior behavior;
    int failures = 0;  // fail_status answers since SetBehavior
    FakeGpuModel gpu;
    std::vector<FakeModel> models = {{"gemma3-4b-16k", 16384}, {"gemma3-4b-60k", 61440}};
    std::vector<std::shared_ptr<RecordedRequest>> requests;
    int active = 0, max_active = 0, loads = 0, reloads = 0, disconnects = 0;
    int prefilling = 0, decoding = 0;  // GPU model: calls in each phase
    std::map<std::string, Runner> runners;
    std::deque<uint64_t> queue;        // GPU model: calls waiting for a slot, FIFO
    uint64_t next_ticket = 0;
    std::atomic<bool> stopping{false};
    FakeApi api = FakeApi::kOllama;
    int tokenize_calls = 0;
    std::unique_ptr<FakeBatchEngine> batch;  // OpenAI-compatible mode with a GPU model (made on first use)
    uint64_t next_completion = 0;
    std::unique_ptr<httplib::Server> server;
    std::thread thread;

    // Counts a call in a phase for as long as it lives.
    struct Busy {
        Impl& impl;
        int* counter;
        Busy(Impl& i, int* c) : impl(i), counter(c) {
            std::lock_guard lock(impl.mu);
            if (counter) ++*counter;
        }
        ~Busy() {
            std::lock_guard lock(impl.mu);
            if (counter) --*counter;
        }
    };

    // httplib 0.11 listens with a backlog of 5 (Ollama's Go server: SOMAXCONN). A burst of new
    // connections overflows it and a dropped handshake looks like a silent Ollama: listen again, wider.
    class WideBacklogServer : public httplib::Server {
    public:
        void RaiseBacklog(int backlog) {
            const auto sock = svr_sock_.load();
            if (sock != INVALID_SOCKET) ::listen(sock, backlog);
        }
    };

    void Start(int wanted_port) {
        auto svr = std::make_unique<WideBacklogServer>();
        svr->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
        svr->set_tcp_nodelay(true);
        svr->set_keep_alive_max_count(1'000'000);  // Go's server does not close busy keep-alive connections
        AddRoutes(*svr);
        const int bound = wanted_port > 0 ? (svr->bind_to_port("127.0.0.1", wanted_port) ? wanted_port : -1)
                                          : svr->bind_to_any_port("127.0.0.1");
        if (bound <= 0) throw std::runtime_error("fake ollama: cannot bind 127.0.0.1:" + std::to_string(wanted_port));
        port = bound;
        svr->RaiseBacklog(1024);
        server = std::move(svr);
        thread = std::thread([s = server.get()] { s->listen_after_bind(); });
        const auto deadline = Clock::now() + std::chrono::seconds(5);
        while (!server->is_running() && Clock::now() < deadline) std::this_thread::sleep_for(kPollStep);
        if (!server->is_running()) {
            StopServer();
            throw std::runtime_error("fake ollama: the server did not start on port " + std::to_string(port));
        }
    }

    void StopServer() {
        if (!server) return;
        stopping = true;
        cv.notify_all();
        server->stop();
        ShutdownAcceptedSockets(port);
        thread.join();  // listen_after_bind() returns once every worker has finished
        server.reset();
        std::lock_guard lock(mu);
        runners.clear();  // a restarted Ollama has nothing loaded
        queue.clear();
        stopping = false;
    }

    FakeApi Api() const {
        std::lock_guard lock(mu);
        return api;
    }
    // Ollama's paths on an OpenAI-compatible fake (and the reverse) answer as a missing route does.
    bool WrongApi(httplib::Response& res, bool ollama_path) const {
        if ((Api() == FakeApi::kOllama) == ollama_path) return false;
        res.status = 404;
        res.set_content(ollama_path ? R"({"detail":"Not Found"})" : "404 page not found",
                        ollama_path ? kJson : "text/plain");
        return true;
    }

    void AddRoutes(httplib::Server& svr) {
        svr.Post("/api/generate", [this](const httplib::Request& req, httplib::Response& res) {
            if (!WrongApi(res, true)) HandleGenerate(req, res, false);
        });
        svr.Post("/api/chat", [this](const httplib::Request& req, httplib::Response& res) {
            if (!WrongApi(res, true)) HandleGenerate(req, res, true);
        });
        svr.Get("/api/tags", [this](const httplib::Request&, httplib::Response& res) {
            if (!WrongApi(res, true)) HandleTags(res);
        });
        svr.Post("/api/show", [this](const httplib::Request& req, httplib::Response& res) {
            if (!WrongApi(res, true)) HandleShow(req, res);
        });
        svr.Get("/api/ps", [this](const httplib::Request&, httplib::Response& res) {
            if (!WrongApi(res, true)) HandlePs(res);
        });
        svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
            if (!WrongApi(res, false)) HandleChatCompletions(req, res);
        });
        svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
            if (!WrongApi(res, false)) HandleModels(res);
        });
        svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
            if (!WrongApi(res, false)) HandleTokenize(req, res);
        });
        svr.Get("/props", [this](const httplib::Request&, httplib::Response& res) {
            if (!WrongApi(res, false)) HandleProps(res);
        });
        svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
            if (!WrongApi(res, false)) HandleHealth(res);
        });
        svr.Get("/api/version", [this](const httplib::Request&, httplib::Response& res) {
            std::lock_guard lock(mu);  // an "old" Ollama ignores truncate:false
            res.set_content(ojson{{"version", behavior.ignore_truncate_flag ? "0.12.3" : "0.12.6"}}.dump(), kJson);
        });
        svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_content("Ollama is running", "text/plain; charset=utf-8");
        });
    }

    static void Error(httplib::Response& res, int status, const std::string& message) {
        res.status = status;
        res.set_content(ojson{{"error", message}}.dump(), kJson);
    }

    // The known model called `name` (with or without ":latest"), unless listed in missing_models.
    std::optional<FakeModel> FindModelLocked(const std::string& name) const {
        for (const auto& missing : behavior.missing_models) {
            if (SameModel(missing, name)) return std::nullopt;
        }
        for (const auto& model : models) {
            if (SameModel(model.name, name)) return model;
        }
        return std::nullopt;
    }

    void PruneExpiredLocked() {
        const auto now = SysClock::now();
        std::erase_if(runners, [&](const auto& kv) {
            return kv.second.active == 0 && !kv.second.forever && kv.second.expires_at <= now;
        });
    }

    static void SetExpiry(Runner& runner, double keep_alive_s) {
        runner.forever = keep_alive_s < 0;
        runner.expires_at = SysClock::now() + std::chrono::duration_cast<SysClock::duration>(
                                                  std::chrono::duration<double>(std::max(0.0, keep_alive_s)));
    }

    // GPU model: the call may take a slot on a matching runner, or replace an idle one.
    bool CanAdmitLocked(const Call& c) {
        PruneExpiredLocked();
        const auto it = runners.find(c.runner_key);
        if (it == runners.end()) return true;
        const Runner& r = it->second;
        if (r.model == c.info.name && r.num_ctx == c.num_ctx) return r.active < std::max(1, c.gpu.slots);
        return r.active == 0;
    }

    // Waits for a slot (GPU model, FIFO), then takes it, loading the runner if needed.
    bool Admit(Call& c, const std::function<bool()>& alive) {
        std::unique_lock lock(mu);
        const uint64_t ticket = next_ticket++;
        if (c.gpu.enabled) {
            queue.push_back(ticket);
            while (!(queue.front() == ticket && CanAdmitLocked(c))) {
                cv.wait_for(lock, kPollStep);
                lock.unlock();
                const bool ok = alive();
                lock.lock();
                if (!ok) {
                    if (auto it = std::find(queue.begin(), queue.end(), ticket); it != queue.end()) queue.erase(it);
                    cv.notify_all();
                    return false;
                }
            }
            queue.pop_front();
        }
        PruneExpiredLocked();
        auto it = runners.find(c.runner_key);
        if (it == runners.end() || it->second.model != c.info.name || it->second.num_ctx != c.num_ctx) {
            ++loads;
            if (it != runners.end()) ++reloads;
            Runner fresh;
            fresh.model = c.info.name;
            fresh.num_ctx = c.num_ctx;
            fresh.size = c.info.size_bytes > 0 ? c.info.size_bytes
                                               : kWeightsBytes + c.num_ctx * std::max(1, c.gpu.slots) * kKvBytesPerToken;
            fresh.size_vram = std::min(fresh.size, c.gpu.vram_budget_bytes);
            const double load_real_s = c.gpu.enabled ? c.gpu.load_ms / 1000.0 / c.gpu.time_scale : 0.0;
            fresh.ready_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(load_real_s));
            fresh.active = it != runners.end() ? it->second.active : 0;  // without a GPU model: swapped under them
            it = runners.insert_or_assign(c.runner_key, fresh).first;
        }
        Runner& r = it->second;
        ++r.active;
        SetExpiry(r, c.keep_alive_s);
        c.ready_at = r.ready_at;
        c.spill = r.size > c.gpu.vram_budget_bytes ? std::max(1.0, c.gpu.spill_slowdown) : 1.0;
        c.admitted = true;
        max_active = std::max(max_active, ++active);
        cv.notify_all();
        return true;
    }

    // Spends `work` units at rate() units per simulated second, simulated time running `scale` times faster than
    // real time, in real steps of at most kPollStep (polling alive()). Adds the simulated seconds to *sim_s.
    static bool Spend(double work, const std::function<double()>& rate, double scale,
                      const std::function<bool()>& alive, double* sim_s) {
        auto last = Clock::now();
        while (work > 1e-12) {
            if (!alive()) return false;
            const double r = std::max(rate(), 1e-9);
            const std::chrono::duration<double> need(work / r / scale);
            std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(need, kPollStep));
            const auto now = Clock::now();
            const double dt = Seconds(now - last) * scale;
            last = now;
            if (dt * r >= work) {
                *sim_s += work / r;
                work = 0;
            } else {
                *sim_s += dt;
                work -= dt * r;
            }
        }
        return true;
    }

    bool SleepUnlessStopping(int ms) {
        const auto until = Clock::now() + std::chrono::milliseconds(ms);
        while (Clock::now() < until) {
            if (stopping) return false;
            std::this_thread::sleep_for(std::min<Clock::duration>(kPollStep, until - Clock::now()));
        }
        return !stopping;
    }

    static ojson Message(const Call& c, const std::string& text) {
        ojson j;
        j["model"] = c.model;
        j["created_at"] = Rfc3339(SysClock::now());
        if (c.chat) {
            j["message"] = {{"role", "assistant"}, {"content", text}};
        } else {
            j["response"] = text;
        }
        j["done"] = false;
        return j;
    }

    void HandleGenerate(const httplib::Request& req, httplib::Response& res, bool chat) {
        auto call = std::make_shared<Call>();
        Call& c = *call;
        c.chat = chat;
        c.record = std::make_shared<RecordedRequest>();
        c.record->path = req.path;
        c.record->received = Clock::now();
        json body;
        std::string parse_error;
        try {
            body = json::parse(req.body);
        } catch (const json::exception& e) {
            parse_error = e.what();
        }
        {
            std::lock_guard lock(mu);
            c.record->body = parse_error.empty() ? body : json(req.body);
            c.behavior = behavior;
            c.gpu = gpu;
            requests.push_back(c.record);
        }
        cv.notify_all();
        const auto error = [&](int status, const std::string& message) {
            Error(res, status, message);
            std::lock_guard lock(mu);
            c.record->finished = Clock::now();
        };

        if (!SleepUnlessStopping(c.behavior.headers_delay_ms)) {  // stopped while stalling: the connection dies
            res.set_chunked_content_provider("application/json", [](size_t, httplib::DataSink&) { return false; });
            return;
        }
        if (!parse_error.empty() || !body.is_object()) {
            return error(400, parse_error.empty() ? "invalid request body" : parse_error);
        }
        bool truncate = true;
        std::optional<double> keep_alive;
        try {
            c.model = body.value("model", "");
            if (c.model.empty()) return error(400, "model is required");
            std::optional<FakeModel> info;
            bool fail = false;
            {
                std::lock_guard lock(mu);
                info = FindModelLocked(c.model);
                if (info && behavior.fail_status != 0 && (behavior.fail_count < 0 || failures < behavior.fail_count)) {
                    ++failures;
                    fail = true;
                }
            }
            if (!info) return error(404, "model '" + c.model + "' not found");
            if (fail) return error(c.behavior.fail_status, c.behavior.fail_message);
            c.info = *info;
            c.runner_key = c.gpu.one_runner_per_file ? c.info.base : c.info.name;
            const json options = body.value("options", json::object());
            c.num_ctx = options.contains("num_ctx") ? options["num_ctx"].get<int64_t>() : 0;
            if (c.num_ctx <= 0) c.num_ctx = c.info.num_ctx;
            c.num_predict = options.value("num_predict", int64_t{-1});
            c.stream = body.value("stream", true);
            truncate = body.value("truncate", true);
            keep_alive = ParseKeepAlive(body.contains("keep_alive") ? body["keep_alive"] : json());
            if (chat) {
                const json messages = body.value("messages", json::array());
                c.load_only = messages.empty();
                for (const auto& m : messages) {
                    const std::string content = m.value("content", "");
                    c.prompt += content + "\n";
                    c.prompt_tokens += CountFakeTokens(content, c.behavior.token_scale);
                }
            } else {
                c.prompt = body.value("prompt", "");
                c.load_only = c.prompt.empty();
                c.prompt_tokens = CountFakeTokens(body.value("system", ""), c.behavior.token_scale) +
                                  CountFakeTokens(c.prompt, c.behavior.token_scale);
            }
        } catch (const json::exception& e) {
            return error(400, e.what());
        }
        if (!keep_alive) return error(400, "time: invalid duration " + body["keep_alive"].dump());
        c.keep_alive_s = *keep_alive;

        if (c.load_only && c.keep_alive_s == 0) {  // unload
            {
                std::lock_guard lock(mu);
                if (auto it = runners.find(c.runner_key); it != runners.end()) {
                    if (it->second.active == 0) {
                        runners.erase(it);
                    } else {
                        SetExpiry(it->second, 0);  // goes when its calls end
                    }
                }
            }
            ojson reply = Message(c, "");
            reply["done"] = true;
            reply["done_reason"] = "unload";
            res.set_content(reply.dump(), kJson);
            std::lock_guard lock(mu);
            c.record->finished = Clock::now();
            return;
        }
        if (!c.load_only && !truncate && !c.behavior.ignore_truncate_flag && c.prompt_tokens > c.num_ctx) {
            return error(400, "the input length exceeds the context length");
        }
        res.set_chunked_content_provider(
            c.stream && !c.load_only ? "application/x-ndjson" : kJson,
            [this, call](size_t, httplib::DataSink& sink) {
                const bool ok = Serve(*call, sink);
                Release(*call);
                if (ok) sink.done();
                return ok;  // false: httplib closes the connection
            },
            [this, call](bool) { Finish(*call); });
    }

    bool Serve(Call& c, httplib::DataSink& sink) {
        const auto alive = [&] {
            c.stopped = stopping;
            c.disconnected = !c.stopped && !sink.is_writable();
            return !c.stopped && !c.disconnected;
        };
        const auto write = [&](const std::string& text) {
            c.disconnected = !sink.write(text.data(), text.size());
            return !c.disconnected;
        };
        // The last write: the call is over for the fake before the client can see its end.
        const auto end_with = [&](const std::string& text) {
            Release(c);
            return c.completed = text.empty() || write(text);
        };
        const FakeBehavior& b = c.behavior;
        const FakeGpuModel& g = c.gpu;
        const double scale = g.enabled ? std::max(g.time_scale, 1e-6) : 1.0;
        double ignored = 0;

        if (!Admit(c, alive)) return false;
        double load_s = 0;  // GPU model: waiting for the runner to be loaded
        if (g.enabled && !Spend(std::max(0.0, Seconds(c.ready_at - Clock::now())) * scale, kOne, scale, alive, &load_s)) {
            return false;
        }
        const int64_t load_ns = g.enabled ? Ns(load_s) : b.load_duration_ns;
        if (c.load_only) {
            ojson reply = Message(c, "");
            reply["done"] = true;
            reply["done_reason"] = "load";
            return end_with(reply.dump());
        }

        // Prefill: the prompt, cut to num_ctx as Ollama does, at a rate shared by the calls prefilling at once.
        const int64_t prompt_count = std::min(c.prompt_tokens, c.num_ctx);
        double prefill_s = prompt_count / std::max(b.prefill_tokens_per_s, 1e-9);
        if (g.enabled) {
            prefill_s = 0;
            Busy busy(*this, &prefilling);
            const auto rate = [&] {
                std::lock_guard lock(mu);
                return g.prefill_tokens_per_s / std::max(1, prefilling) / c.spill;
            };
            if (!Spend(static_cast<double>(prompt_count), rate, scale, alive, &prefill_s)) return false;
        }
        if (!Spend(b.first_piece_delay_ms / 1000.0, kOne, 1.0, alive, &ignored)) return false;

        // What is generated: the reply, cut when num_predict comes first.
        std::string text = b.reply.empty() ? DefaultReply(c.prompt) : b.reply;
        const int64_t natural = g.enabled ? g.output_tokens : CountFakeTokens(text, b.token_scale);
        int64_t eval_count = natural;
        std::string done_reason = "stop";
        if (c.num_predict >= 0 && c.num_predict < natural) {
            eval_count = c.num_predict;
            done_reason = "length";
            text = Utf8Prefix(text, text.size() * eval_count / natural);
        }
        const std::vector<std::string> pieces = SplitPieces(text, b.piece_chars);

        // Decode, piece by piece, with the injected failures.
        double eval_s = g.enabled ? 0.0 : eval_count / std::max(b.decode_tokens_per_s, 1e-9);
        Busy busy(*this, g.enabled ? &decoding : nullptr);
        int64_t generated = 0;
        const auto decode_rate = [&] {
            std::lock_guard lock(mu);
            const double context = static_cast<double>(prompt_count + generated);
            return g.decode_tokens_per_s / (1 + g.decode_context_slowdown * context / 16384.0) /
                   (1 + g.decode_concurrency_slowdown * std::max(0, decoding - 1)) / c.spill;
        };
        const size_t n = pieces.size();
        std::string all;
        for (size_t i = 0; i <= n; ++i) {
            const auto at = [&](int k) { return k >= 0 && (static_cast<size_t>(k) == i || (i == n && size_t(k) > n)); };
            if (at(b.drop_after_pieces)) {
                c.dropped = true;
                return false;
            }
            if (at(b.error_line_after_pieces)) return end_with(ojson{{"error", b.fail_message}}.dump() + "\n");
            if (at(b.garbage_after_pieces)) return end_with("{\"model\": <html>Bad Gateway</html>\n");
            if (i == n) break;
            const int64_t parts = static_cast<int64_t>(n), k = static_cast<int64_t>(i);
            const int64_t tokens = (k + 1) * eval_count / parts - k * eval_count / parts;
            if (g.enabled && !Spend(static_cast<double>(tokens), decode_rate, scale, alive, &eval_s)) return false;
            generated += tokens;
            if (i > 0 && !Spend(b.piece_delay_ms / 1000.0, kOne, 1.0, alive, &ignored)) return false;
            if (c.stream && !write(Message(c, pieces[i]).dump() + "\n")) return false;
            all += pieces[i];
            ++c.pieces;
        }
        if (g.enabled && n == 0 && !Spend(static_cast<double>(eval_count), decode_rate, scale, alive, &eval_s)) {
            return false;
        }

        if (c.stream && b.omit_final) return end_with("");
        ojson last = Message(c, c.stream ? "" : all);
        if (!b.omit_final) {
            last["done"] = true;
            last["done_reason"] = done_reason;
            if (!c.chat) {  // /api/generate's (deprecated) token context: long, like the real one
                std::vector<int> context(static_cast<size_t>(prompt_count + eval_count));
                for (size_t i = 0; i < context.size(); ++i) context[i] = static_cast<int>((i * 7919 + 2) % 262144);
                last["context"] = context;
            }
            const double sum_s = static_cast<double>(load_ns) / 1e9 + prefill_s + eval_s;
            last["total_duration"] = Ns(std::max(Seconds(Clock::now() - c.record->received) * scale, sum_s));
            last["load_duration"] = load_ns;
            last["prompt_eval_count"] = prompt_count;
            last["prompt_eval_duration"] = Ns(prefill_s);
            last["eval_count"] = static_cast<int64_t>(std::ceil(static_cast<double>(eval_count) * b.eval_count_scale));
            last["eval_duration"] = Ns(eval_s);
        }
        return end_with(last.dump() + (c.stream ? "\n" : ""));
    }

    // Frees the call's slot and records its end; once per call.
    void Release(Call& c) {
        std::lock_guard lock(mu);
        if (std::exchange(c.released, true)) return;
        if (c.admitted) {
            if (auto it = runners.find(c.runner_key); it != runners.end()) {
                it->second.active = std::max(0, it->second.active - 1);
                SetExpiry(it->second, c.keep_alive_s);
            }
            --active;
        }
        c.record->finished = Clock::now();
        c.record->pieces_sent = c.pieces;
        // With the end of the call, so that whoever sees it end (ActiveCalls) sees how it ended.
        if (c.disconnected) RecordDisconnectLocked(c);
        cv.notify_all();
    }

    void RecordDisconnectLocked(Call& c) {
        if (std::exchange(c.record->client_disconnected, true)) return;
        ++disconnects;
    }

    // httplib's releaser: runs when the response is over, however it ended (maybe before Serve() ran).
    void Finish(Call& c) {
        // Not completed, not dropped on purpose, not stopped: the client went away.
        if (!c.completed && !c.dropped && !c.stopped && !stopping) c.disconnected = true;
        Release(c);
        if (!c.disconnected) return;
        std::lock_guard lock(mu);
        RecordDisconnectLocked(c);  // when Serve() had released the call before its last write failed
    }

    void HandleTags(httplib::Response& res) {
        ojson list = ojson::array();
        std::lock_guard lock(mu);
        for (const auto& m : models) {
            if (!FindModelLocked(m.name)) continue;
            list.push_back({{"name", TagName(m.name)},
                            {"model", TagName(m.name)},
                            {"modified_at", "2025-10-01T12:00:00.000000000Z"},
                            {"size", kWeightsBytes},
                            {"digest", FakeDigest(m.base)},
                            {"details", Details("")}});
        }
        res.set_content(ojson{{"models", list}}.dump(), kJson);
    }

    void HandleShow(const httplib::Request& req, httplib::Response& res) {
        const json body = json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.is_object()) return Error(res, 400, "invalid request body");
        const json name_field = body.contains("model") ? body["model"] : body.value("name", json(""));
        const std::string name = name_field.is_string() ? name_field.get<std::string>() : "";
        if (name.empty()) return Error(res, 400, "model is required");
        std::optional<FakeModel> model;
        {
            std::lock_guard lock(mu);
            model = FindModelLocked(name);
        }
        if (!model) return Error(res, 404, "model '" + name + "' not found");
        // Ollama pads each parameter name to 30 columns.
        std::string parameters;
        const std::vector<std::pair<std::string, std::string>> params = {{"num_ctx", std::to_string(model->num_ctx)},
                                                                         {"stop", "\"<end_of_turn>\""},
                                                                         {"temperature", "1"},
                                                                         {"top_k", "64"},
                                                                         {"top_p", "0.95"}};
        for (const auto& [key, value] : params) {
            char line[128];
            std::snprintf(line, sizeof line, "%-30s %s", key.c_str(), value.c_str());
            parameters += (parameters.empty() ? "" : "\n") + std::string(line);
        }
        ojson show;
        show["modelfile"] = "FROM " + model->base + "\nPARAMETER num_ctx " + std::to_string(model->num_ctx) + "\n";
        show["parameters"] = parameters;
        show["template"] =
            "{{- range $i, $_ := .Messages }}<start_of_turn>{{ .Role }}\n{{ .Content }}<end_of_turn>\n{{ end }}"
            "<start_of_turn>model\n";
        show["details"] = Details(model->base);
        show["model_info"] = {{"general.architecture", "gemma3"},
                              {"general.parameter_count", 4299915632LL},
                              {"general.file_type", 15},
                              {"gemma3.context_length", 131072},
                              {"gemma3.embedding_length", 2560},
                              {"gemma3.block_count", 34},
                              {"gemma3.attention.sliding_window", 1024}};
        show["capabilities"] = {"completion", "vision"};
        show["modified_at"] = "2025-10-01T12:00:00.000000000Z";
        res.set_content(show.dump(), kJson);
    }

    // ---- OpenAI-compatible mode (vLLM, llama.cpp) ------------------------------------------------

    // The served model: the first of the list.
    FakeModel ServedLocked() const {
        return models.empty() ? FakeModel{"google/gemma-3-4b-it", 32768} : models.front();
    }

    static void OpenAiError(httplib::Response& res, FakeApi api, int status, const std::string& message,
                            const std::string& type) {
        res.status = status;
        ojson e;
        if (api == FakeApi::kLlamaCpp) {
            e = {{"error", {{"code", status}, {"message", message}, {"type", type}}}};
        } else {
            e = {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", status}}}};
        }
        res.set_content(e.dump(), kJson);
    }

    void HandleModels(httplib::Response& res) {
        std::lock_guard lock(mu);
        const FakeModel m = ServedLocked();
        ojson entry = {{"id", m.name}, {"object", "model"}, {"created", 1759320000}};
        if (api == FakeApi::kVllm) {
            entry["owned_by"] = "vllm";
            entry["root"] = m.name;
            entry["parent"] = nullptr;
            entry["max_model_len"] = m.num_ctx;
        } else {
            entry["owned_by"] = "llamacpp";
            entry["meta"] = {{"vocab_type", 2}, {"n_vocab", 262144}, {"n_ctx_train", 131072}, {"n_embd", 2560}};
        }
        res.set_content(ojson{{"object", "list"}, {"data", ojson::array({entry})}}.dump(), kJson);
    }

    void HandleProps(httplib::Response& res) {
        std::lock_guard lock(mu);
        if (api != FakeApi::kLlamaCpp) {
            res.status = 404;
            res.set_content(R"({"detail":"Not Found"})", kJson);
            return;
        }
        const FakeModel m = ServedLocked();
        const int slots = std::max(1, gpu.slots);
        res.set_content(ojson{{"default_generation_settings", {{"n_ctx", m.num_ctx}, {"temperature", 0.8}}},
                              {"total_slots", slots},
                              {"model_path", "/models/" + m.name + ".gguf"},
                              {"chat_template", "{{ bos_token }}..."},
                              {"build_info", "b6500-fake"}}
                            .dump(),
                        kJson);
    }

    void HandleHealth(httplib::Response& res) {
        std::lock_guard lock(mu);
        if (behavior.health_status != 0 && behavior.health_status != 200) {
            OpenAiError(res, api, behavior.health_status, "Loading model", "unavailable_error");
            return;
        }
        if (api == FakeApi::kLlamaCpp) res.set_content(R"({"status":"ok"})", kJson);
    }

    void HandleTokenize(const httplib::Request& req, httplib::Response& res) {
        const json body = json::parse(req.body, nullptr, false);
        std::lock_guard lock(mu);
        ++tokenize_calls;
        if (body.is_discarded() || !body.is_object()) return OpenAiError(res, api, 400, "invalid JSON", "BadRequestError");
        std::string text;
        if (api == FakeApi::kLlamaCpp) {
            text = body.value("content", "");
        } else if (body.contains("prompt")) {
            text = body.value("prompt", "");
        } else {
            for (const auto& m : body.value("messages", json::array())) text += m.value("content", "") + "\n";
        }
        const int64_t n = CountFakeTokens(text, behavior.token_scale);
        ojson tokens = ojson::array();
        for (int64_t i = 0; i < n; ++i) tokens.push_back((i * 7919 + 2) % 262144);
        if (api == FakeApi::kLlamaCpp) {
            res.set_content(ojson{{"tokens", tokens}}.dump(), kJson);
        } else {
            res.set_content(
                ojson{{"count", n}, {"max_model_len", ServedLocked().num_ctx}, {"tokens", tokens}, {"token_strs", nullptr}}
                    .dump(),
                kJson);
        }
    }

    // One chat completion in the making.
    struct Chat {
        std::shared_ptr<Call> call;
        FakeApi api = FakeApi::kVllm;
        std::string id;
        int64_t context = 0;
        int64_t max_tokens = -1;
        bool include_usage = false;
    };

    static ojson ChunkJson(const Chat& chat, const ojson& delta, const ojson& finish_reason) {
        ojson j;
        j["id"] = chat.id;
        j["object"] = "chat.completion.chunk";
        j["created"] = 1759320000;
        j["model"] = chat.call->model;
        j["choices"] = ojson::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}});
        return j;
    }

    static std::string Sse(const ojson& j) { return "data: " + j.dump() + "\n\n"; }

    void HandleChatCompletions(const httplib::Request& req, httplib::Response& res) {
        auto chat = std::make_shared<Chat>();
        chat->call = std::make_shared<Call>();
        Call& c = *chat->call;
        c.chat = true;
        c.record = std::make_shared<RecordedRequest>();
        c.record->path = req.path;
        c.record->received = Clock::now();
        const json body = json::parse(req.body, nullptr, false);
        FakeModel served;
        {
            std::lock_guard lock(mu);
            c.record->body = body.is_discarded() ? json(req.body) : body;
            c.behavior = behavior;
            c.gpu = gpu;
            chat->api = api;
            chat->id = "chatcmpl-" + std::to_string(++next_completion);
            served = ServedLocked();
            requests.push_back(c.record);
        }
        cv.notify_all();
        const auto error = [&](int status, const std::string& message, const std::string& type) {
            OpenAiError(res, chat->api, status, message, type);
            std::lock_guard lock(mu);
            c.record->finished = Clock::now();
        };
        if (!SleepUnlessStopping(c.behavior.headers_delay_ms)) {
            res.set_chunked_content_provider("application/json", [](size_t, httplib::DataSink&) { return false; });
            return;
        }
        if (body.is_discarded() || !body.is_object()) return error(400, "invalid JSON body", "BadRequestError");
        c.model = body.value("model", "");
        const bool missing = std::any_of(c.behavior.missing_models.begin(), c.behavior.missing_models.end(),
                                         [&](const std::string& m) { return m == c.model; });
        if (c.model != served.name || missing) {
            return error(404, "The model `" + c.model + "` does not exist.", "NotFoundError");
        }
        {
            std::lock_guard lock(mu);
            if (behavior.fail_status != 0 && (behavior.fail_count < 0 || failures < behavior.fail_count)) {
                ++failures;
                return error(c.behavior.fail_status, c.behavior.fail_message,
                             c.behavior.fail_status >= 500 ? "InternalServerError" : "BadRequestError");
            }
        }
        for (const auto& m : body.value("messages", json::array())) {
            const std::string content = m.is_object() && m.contains("content") && m["content"].is_string()
                                            ? m["content"].get<std::string>() : "";
            c.prompt += content + "\n";
        }
        // + the chat template's turn markers
        c.prompt_tokens = CountFakeTokens(c.prompt, c.behavior.token_scale) + 8;
        chat->context = served.num_ctx;
        chat->max_tokens = body.contains("max_tokens") && body["max_tokens"].is_number()
                               ? body["max_tokens"].get<int64_t>()
                               : body.value("max_completion_tokens", int64_t{-1});
        c.num_predict = chat->max_tokens;
        c.stream = body.value("stream", false);
        chat->include_usage = body.contains("stream_options") && body["stream_options"].is_object() &&
                              body["stream_options"].value("include_usage", false);
        const std::string p = std::to_string(c.prompt_tokens), n = std::to_string(chat->context);
        if (chat->api == FakeApi::kLlamaCpp && c.prompt_tokens > chat->context) {
            // llama.cpp: the prompt alone against the slot's n_ctx.
            res.status = 400;
            res.set_content(ojson{{"error", {{"code", 400},
                                             {"message", "request (" + p + " tokens) exceeds the available context size (" +
                                                             n + " tokens), try increasing it"},
                                             {"type", "exceed_context_size_error"},
                                             {"n_prompt_tokens", c.prompt_tokens},
                                             {"n_ctx", chat->context}}}}
                                .dump(),
                            kJson);
            std::lock_guard lock(mu);
            c.record->finished = Clock::now();
            return;
        }
        if (chat->api == FakeApi::kVllm) {
            // vLLM: the prompt, and the prompt + max_tokens, against max_model_len.
            if (c.prompt_tokens >= chat->context) {
                return error(400, "This model's maximum context length is " + n + " tokens. However, your request has " +
                                      p + " input tokens. Please reduce the length of the input messages.",
                             "BadRequestError");
            }
            if (chat->max_tokens > 0 && c.prompt_tokens + chat->max_tokens > chat->context) {
                const std::string x = std::to_string(chat->max_tokens);
                return error(400, "'max_tokens' or 'max_completion_tokens' is too large: " + x +
                                      ". This model's maximum context length is " + n + " tokens and your request has " +
                                      p + " input tokens (" + x + " > " + n + " - " + p + ").",
                             "BadRequestError");
            }
        }
        res.set_chunked_content_provider(
            c.stream ? "text/event-stream" : kJson,
            [this, chat](size_t, httplib::DataSink& sink) {
                const bool ok = ServeChat(*chat, sink);
                Release(*chat->call);
                if (ok) sink.done();
                return ok;
            },
            [this, chat](bool) { Finish(*chat->call); });
    }

    bool ServeChat(Chat& chat, httplib::DataSink& sink) {
        Call& c = *chat.call;
        const auto alive = [&] {
            c.stopped = stopping;
            c.disconnected = !c.stopped && !sink.is_writable();
            return !c.stopped && !c.disconnected;
        };
        const auto write = [&](const std::string& text) {
            c.disconnected = !sink.write(text.data(), text.size());
            return !c.disconnected;
        };
        const FakeBehavior& b = c.behavior;
        const FakeGpuModel& g = c.gpu;
        {
            std::lock_guard lock(mu);
            c.admitted = true;
            max_active = std::max(max_active, ++active);
        }
        // What is generated: the reply, cut by max_tokens or (llama.cpp) by the slot's context.
        std::string text = b.reply.empty() ? DefaultReply(c.prompt) : b.reply;
        const int64_t natural = g.enabled ? g.output_tokens : CountFakeTokens(text, b.token_scale);
        int64_t count = natural;
        std::string finish = "stop";
        if (chat.max_tokens >= 0 && chat.max_tokens < count) {
            count = chat.max_tokens;
            finish = "length";
        }
        if (chat.api == FakeApi::kLlamaCpp && c.prompt_tokens + count > chat.context) {
            count = std::max<int64_t>(0, chat.context - c.prompt_tokens);  // the slot is full: context shift is off
            finish = "length";
        }
        if (count < natural) text = Utf8Prefix(text, text.size() * static_cast<size_t>(count) / static_cast<size_t>(natural));
        const std::vector<std::string> pieces = SplitPieces(text, b.piece_chars);
        const size_t n = pieces.size();

        std::shared_ptr<FakeBatchEngine::Sequence> seq;
        FakeBatchEngine* engine = nullptr;
        if (g.enabled) {
            std::lock_guard lock(mu);
            if (!batch) {
                FakeBatchModel m;
                m.max_seqs = std::max(1, g.slots);
                m.max_batched_tokens = g.max_batched_tokens;
                m.prefill_tokens_per_s = g.prefill_tokens_per_s;
                m.step_ms = 1000.0 / g.decode_tokens_per_s;
                m.step_ms_per_seq = g.batch_step_ms_per_seq;
                m.time_scale = std::max(g.time_scale, 1e-6);
                batch = std::make_unique<FakeBatchEngine>(m);
            }
            engine = batch.get();
            seq = engine->Submit(c.prompt_tokens, std::max<int64_t>(1, count));
        }
        struct CancelOnExit {
            FakeBatchEngine* engine;
            std::shared_ptr<FakeBatchEngine::Sequence> seq;
            ~CancelOnExit() {
                if (engine) engine->Cancel(seq);
            }
        } cancel_on_exit{engine, seq};
        FakeBatchEngine::Sequence progress;
        // Waits until the batch engine generated `tokens` (GPU model) or the behaviour's delay passed.
        const auto reach = [&](int64_t tokens, int delay_ms) {
            if (!engine) return SleepWhileAlive(delay_ms, alive);
            while (progress.generated < tokens && !progress.finished) {
                if (!alive()) return false;
                progress = engine->Wait(seq, progress.generated, std::chrono::milliseconds(5));
            }
            return alive();
        };
        if (!reach(1, b.first_piece_delay_ms)) return false;
        if (c.stream && !write(Sse(ChunkJson(chat, {{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
        std::string all;
        for (size_t i = 0; i <= n; ++i) {
            const auto at = [&](int k) { return k >= 0 && (static_cast<size_t>(k) == i || (i == n && size_t(k) > n)); };
            if (at(b.drop_after_pieces)) {
                c.dropped = true;
                return false;
            }
            if (at(b.error_line_after_pieces)) {
                Release(c);
                c.completed = true;
                ojson e = {{"error", {{"message", b.fail_message}, {"type", "InternalServerError"}, {"code", 500}}}};
                return write(Sse(e) + "data: [DONE]\n\n");
            }
            if (at(b.garbage_after_pieces)) {
                Release(c);
                c.completed = true;
                return write("data: {\"id\": <html>Bad Gateway</html>\n\n");
            }
            if (i == n) break;
            const int64_t tokens = static_cast<int64_t>(i + 1) * count / static_cast<int64_t>(n);
            if (i > 0 && !reach(tokens, b.piece_delay_ms)) return false;
            if (c.stream && !write(Sse(ChunkJson(chat, {{"content", pieces[i]}}, nullptr)))) return false;
            all += pieces[i];
            ++c.pieces;
        }
        if (engine && !reach(std::max<int64_t>(1, count), 0)) return false;
        if (c.stream && b.omit_final) {
            Release(c);
            c.completed = true;
            return true;
        }
        // Simulated phases: the batch engine's, else the behaviour's rates.
        const double prefill_s = engine ? progress.prefill_s : c.prompt_tokens / std::max(b.prefill_tokens_per_s, 1e-9);
        const double decode_s = engine ? progress.decode_s : count / std::max(b.decode_tokens_per_s, 1e-9);
        ojson usage = {{"prompt_tokens", c.prompt_tokens}, {"completion_tokens", count},
                       {"total_tokens", c.prompt_tokens + count}};
        ojson timings = {{"cache_n", 0},
                         {"prompt_n", c.prompt_tokens},
                         {"prompt_ms", prefill_s * 1000},
                         {"prompt_per_token_ms", prefill_s * 1000 / std::max<int64_t>(1, c.prompt_tokens)},
                         {"prompt_per_second", c.prompt_tokens / std::max(prefill_s, 1e-9)},
                         {"predicted_n", count},
                         {"predicted_ms", decode_s * 1000},
                         {"predicted_per_token_ms", decode_s * 1000 / std::max<int64_t>(1, count)},
                         {"predicted_per_second", count / std::max(decode_s, 1e-9)}};
        Release(c);
        c.completed = true;
        if (!c.stream) {
            ojson whole = {{"id", chat.id}, {"object", "chat.completion"}, {"created", 1759320000}, {"model", c.model},
                           {"choices", ojson::array({{{"index", 0},
                                                      {"message", {{"role", "assistant"}, {"content", all}}},
                                                      {"finish_reason", finish}}})},
                           {"usage", usage}};
            if (chat.api == FakeApi::kLlamaCpp) whole["timings"] = timings;
            return write(whole.dump());
        }
        ojson last = ChunkJson(chat, ojson::object(), finish);
        if (chat.api == FakeApi::kLlamaCpp) last["timings"] = timings;
        std::string tail = Sse(last);
        if (chat.include_usage) {
            ojson u = ChunkJson(chat, ojson::object(), nullptr);
            u["choices"] = ojson::array();
            u["usage"] = usage;
            tail += Sse(u);
        }
        return write(tail + "data: [DONE]\n\n");
    }

    bool SleepWhileAlive(int ms, const std::function<bool()>& alive) {
        const auto until = Clock::now() + std::chrono::milliseconds(ms);
        while (Clock::now() < until) {
            if (!alive()) return false;
            std::this_thread::sleep_for(std::min<Clock::duration>(kPollStep, until - Clock::now()));
        }
        return alive();
    }

    void HandlePs(httplib::Response& res) {
        ojson list = ojson::array();
        std::lock_guard lock(mu);
        PruneExpiredLocked();
        for (const auto& [key, r] : runners) {
            const auto expires = r.forever ? SysClock::now() + std::chrono::hours(24 * 365 * 100) : r.expires_at;
            list.push_back({{"name", TagName(r.model)},
                            {"model", TagName(r.model)},
                            {"size", r.size},
                            {"digest", FakeDigest(key)},
                            {"details", Details("")},
                            {"expires_at", Rfc3339(expires)},
                            {"size_vram", r.size_vram},
                            {"context_length", r.num_ctx}});
        }
        res.set_content(ojson{{"models", list}}.dump(), kJson);
    }
};

FakeOllama::FakeOllama(int port) : impl_(std::make_unique<Impl>()) { impl_->Start(port); }

FakeOllama::~FakeOllama() { impl_->StopServer(); }

int FakeOllama::port() const { return impl_->port; }

std::string FakeOllama::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

void FakeOllama::SetBehavior(const FakeBehavior& behavior) {
    std::lock_guard lock(impl_->mu);
    impl_->behavior = behavior;
    impl_->failures = 0;
}

FakeBehavior FakeOllama::behavior() const {
    std::lock_guard lock(impl_->mu);
    return impl_->behavior;
}

void FakeOllama::SetGpuModel(const FakeGpuModel& gpu) {
    std::unique_ptr<FakeBatchEngine> old;
    std::lock_guard lock(impl_->mu);
    impl_->gpu = gpu;
    old = std::move(impl_->batch);  // made again, with these settings, by the next call (set before traffic)
}

void FakeOllama::SetModels(const std::vector<FakeModel>& models) {
    std::lock_guard lock(impl_->mu);
    impl_->models = models;
}

void FakeOllama::SetApi(FakeApi api) {
    std::lock_guard lock(impl_->mu);
    if (impl_->api == FakeApi::kOllama && api != FakeApi::kOllama) impl_->models = {{"google/gemma-3-4b-it", 32768}};
    impl_->api = api;
}

int FakeOllama::TokenizeCalls() const {
    std::lock_guard lock(impl_->mu);
    return impl_->tokenize_calls;
}

void FakeOllama::Stop() { impl_->StopServer(); }

void FakeOllama::Restart() {
    if (!impl_->server) impl_->Start(impl_->port);
}

std::vector<RecordedRequest> FakeOllama::Requests() const {
    std::lock_guard lock(impl_->mu);
    std::vector<RecordedRequest> out;
    for (const auto& r : impl_->requests) out.push_back(*r);
    return out;
}

void FakeOllama::ClearRequests() {
    std::lock_guard lock(impl_->mu);
    impl_->requests.clear();
}

int FakeOllama::MaxConcurrency() const {
    std::lock_guard lock(impl_->mu);
    return impl_->max_active;
}

int FakeOllama::ActiveCalls() const {
    std::lock_guard lock(impl_->mu);
    return impl_->active;
}

int FakeOllama::Loads() const {
    std::lock_guard lock(impl_->mu);
    return impl_->loads;
}

int FakeOllama::Reloads() const {
    std::lock_guard lock(impl_->mu);
    return impl_->reloads;
}

int FakeOllama::ClientDisconnects() const {
    std::lock_guard lock(impl_->mu);
    return impl_->disconnects;
}

bool FakeOllama::WaitForRequests(size_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mu);
    return impl_->cv.wait_for(lock, timeout, [&] { return impl_->requests.size() >= count; });
}

}  // namespace summarizer::testing
