// CLI11 subcommands and wiring only: serve, summarize, plan, config, jobs.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "summarizer/api.hpp"
#include "summarizer/config.hpp"
#include "summarizer/http_server.hpp"
#include "summarizer/job_client.hpp"
#include "summarizer/jobs.hpp"
#include "summarizer/service.hpp"
#include "summarizer/text.hpp"

extern char** environ;

namespace {

using namespace summarizer;

constexpr int kExitConfig = 2;

std::map<std::string, std::string> Environment() {
    std::map<std::string, std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    return env;
}

struct CommonFlags {
    std::string config_file;
    std::string host;
    int port = -1;
    std::string ollama_url;
    std::vector<std::string> sets;
    std::vector<std::string> upstreams;  // --upstream NAME=KIND@URL
};

// Loads the config with the precedence flags > env > file > defaults; exits 2 on a bad value.
Config LoadOrExit(const CommonFlags& flags) {
    ConfigSources sources;
    sources.env = Environment();
    if (!flags.config_file.empty()) {
        sources.file = flags.config_file;
    } else if (auto it = sources.env.find("SUMMARIZER_CONFIG"); it != sources.env.end() && !it->second.empty()) {
        sources.file = it->second;
    } else if (std::filesystem::exists("config/summarizer.json")) {
        sources.file = "config/summarizer.json";
    }
    auto named = [&](const std::string& path, const std::string& value, const std::string& flag) {
        sources.flags[path] = value;
        sources.flag_names[path] = flag;
    };
    if (!flags.host.empty()) named("server.host", flags.host, "--host");
    if (flags.port >= 0) named("server.port", std::to_string(flags.port), "--port");
    if (!flags.ollama_url.empty()) named("ollama.url", flags.ollama_url, "--ollama-url");
    sources.upstream_flags = flags.upstreams;
    for (const auto& set : flags.sets) {
        auto eq = set.find('=');
        if (eq == std::string::npos) {
            std::cerr << "summarizer: --set expects KEY=VALUE, got '" << set << "'\n";
            std::exit(kExitConfig);
        }
        sources.flags[set.substr(0, eq)] = set.substr(eq + 1);
    }
    auto config = LoadConfig(sources);
    if (!config.ok()) {
        std::cerr << "summarizer: configuration error: " << config.error().message << "\n";
        std::exit(kExitConfig);
    }
    return std::move(config.value());
}

void AddCommonFlags(CLI::App* app, CommonFlags& flags, bool server_flags) {
    app->add_option("--config", flags.config_file,
                    "config file (JSON; default: $SUMMARIZER_CONFIG, else ./config/summarizer.json if present)");
    app->add_option("--ollama-url", flags.ollama_url, "Ollama server URL (env OLLAMA_HOST; default 127.0.0.1:11434)");
    app->add_option("--upstream", flags.upstreams,
                    "an upstream of the pool, NAME=KIND@URL with KIND ollama or openai (repeatable; env "
                    "SUMMARIZER_UPSTREAMS; e.g. gpu1=ollama@http://10.0.0.5:11434 vllm=openai@http://10.0.0.7:8000)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->allow_extra_args(false);
    if (server_flags) {
        app->add_option("--host", flags.host, "bind address (env SUMMARIZER_HOST; default 127.0.0.1)");
        app->add_option("--port", flags.port, "TCP port (env SUMMARIZER_PORT; default 8080; 0 = any free port)")
            ->check(CLI::Range(0, 65535));
    }
    // One KEY=VALUE per --set (repeatable), so that a file name after it stays the file name.
    app->add_option("--set", flags.sets, "set any knob: --set routing.policy=cost (see `summarizer config --list`)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->allow_extra_args(false);
}

// The knobs as a Markdown table: docs/CONFIGURATION.md's table is this output
// (scripts/check-docs.sh fails when they differ).
std::string KnobMarkdown() {
    std::ostringstream out;
    out << "| key (`config/summarizer.json`) | environment variable | default | meaning |\n|---|---|---|---|\n";
    for (const auto& k : Knobs()) {
        std::string help = k.help;
        for (size_t at = 0; (at = help.find('|', at)) != std::string::npos; at += 2) help.replace(at, 1, "\\|");
        out << "| `" << k.path << "` | `" << k.env << "` | `" << (k.default_value.empty() ? "\"\"" : k.default_value)
            << "` | " << help << " |\n";
    }
    return out.str();
}

std::string KnobTable() {
    std::ostringstream out;
    out << "Settings (file key / environment variable / default):\n";
    for (const auto& k : Knobs()) {
        out << "  " << k.path << "\n      env " << k.env << ", default " << (k.default_value.empty() ? "\"\"" : k.default_value)
            << "\n      " << k.help << "\n";
    }
    return out.str();
}

Result<std::string> ReadInput(const std::string& path) {
    std::string data;
    if (path.empty() || path == "-") {
        data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream in(path, std::ios::binary);
        if (!in) return MakeError(ErrorCode::kInvalidRequest, "cannot read " + path);
        data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return data;
}

// Validates CLI input as the API would (UTF-8, not blank, options).
Result<ParsedRequest> ParseCliRequest(const std::string& text, const std::map<std::string, std::string>& options,
                                      const Config& config) {
    HttpInput input;
    input.content_type = "text/plain";
    input.body = text;
    input.query = options;
    return ParseSummarizeRequest(input, config);
}

// FILE (or - for standard input) as a validated request.
Result<ParsedRequest> ReadRequest(const std::string& path, const std::map<std::string, std::string>& options,
                                  const Config& config) {
    auto text = ReadInput(path);
    if (!text.ok()) return text.error();
    return ParseCliRequest(*text, options, config);
}

// Opens config.jobs.database: a postgresql:// URL, or a SQLite file whose directory is created.
JobStoreOpener StoreOpener(const Config& config) {
    return [&config]() -> StoreResult<std::unique_ptr<JobStore>> {
        const std::string& database = config.jobs.database;
        JobStoreOptions options;
        options.max_connections = config.jobs.max_running + 6;  // runners, heartbeat, requests, event streams
        options.busy_timeout = std::chrono::milliseconds(config.jobs.busy_timeout_ms);
        const bool url = database.rfind("postgresql://", 0) == 0 || database.rfind("postgres://", 0) == 0;
        if (!url) {
            const std::filesystem::path dir = std::filesystem::path(database).parent_path();
            std::error_code error;
            if (!dir.empty()) std::filesystem::create_directories(dir, error);
            if (error) {
                return StoreError{StoreFailure::kUnavailable, "cannot create the directory " + dir.string() +
                                                                  " of the job store (" + error.message() +
                                                                  "); set jobs.database (SUMMARIZER_JOBS_DB)"};
            }
        }
        return OpenJobStore(database, options);
    };
}

int Serve(const Config& config) {
    // Signals are waited for in one thread; stop() is not async-signal-safe.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Service service(config);
    std::unique_ptr<Jobs> jobs;
    if (config.JobsEnabled()) {
        jobs = std::make_unique<Jobs>(config, service, StoreOpener(config));
        // A damaged SQLite file (or a schema newer than this binary) stops start-up; a store that
        // is only unavailable now is retried while the server runs.
        if (auto started = jobs->Start(); !started.ok()) {
            spdlog::error("cannot start: job store {}: {}", RedactPassword(config.jobs.database),
                          started.error().message);
            return 1;
        }
    } else {
        spdlog::info("durable jobs are off (jobs.database = off): POST /jobs answers 503, nothing is cached");
    }
    HttpServer server(config, service);
    auto port = server.Bind();
    if (!port.ok()) {
        spdlog::error("{}", port.error().message);
        return 1;
    }
    std::string pool;
    for (const auto& u : service.config().Upstreams()) {
        pool += (pool.empty() ? "" : ", ") + u.name + "=" + u.kind + "@" + u.url + " (" + std::to_string(u.slots) +
                " slot(s))";
    }
    spdlog::info("summarizer listening on http://{}:{} (upstreams: {})", config.server.host, port.value(), pool);
    // First SIGTERM/SIGINT: stop accepting, let running requests finish within
    // server.shutdown_grace_s, cancel the rest upstream. A second one cancels everything now.
    std::atomic<bool> run_returned{false};
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&signals, &sig);
        if (run_returned) return;
        spdlog::info("signal {} received: shutting down (running requests get {} s; signal again to cancel them now)",
                     sig, config.server.shutdown_grace_s);
        std::thread stopper([&] { server.Stop(config.server.shutdown_grace_s); });
        sigwait(&signals, &sig);  // a second signal, or the wake-up below once Run() returned
        if (!run_returned) {
            spdlog::warn("signal {} received again: cancelling every request now", sig);
            server.Stop(0);
        }
        stopper.join();
    });
    bool ok = server.Run();
    run_returned = true;
    pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter wherever it waits
    waiter.join();
    if (jobs) jobs->Stop();  // the leases of jobs still running are released: another process resumes them
    return ok ? 0 : 1;
}

// The progress bar on standard error ("map    [####......] 3/10, ~42 s left").
void PrintProgress(const ProgressUpdate& p) {
    const bool tty = isatty(fileno(stderr));
    const int width = 30;
    const int filled = p.total > 0 ? p.done * width / p.total : 0;
    const std::string phase = p.phase == "reduce" ? "reduce " + std::to_string(p.level) : std::string(p.phase);
    std::fprintf(stderr, "%s%-8s [%s%s] %d/%d, ~%.0f s left%s", tty ? "\r" : "", phase.c_str(),
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), p.done, p.total,
                 static_cast<double>(p.remaining_ms) / 1000.0, tty ? "   " : "\n");
    if (tty && p.done == p.total) std::fputc('\n', stderr);
    std::fflush(stderr);
}

// One summary through the same Service as `serve`: the same routing, re-plans, retries, extractive
// fallback and response object. The text streams to standard output; logs go to standard error.
int Summarize(const Config& config, const std::string& path, const std::map<std::string, std::string>& options,
              bool json_out, bool quiet) {
    auto parsed = ReadRequest(path, options, config);
    if (!parsed.ok()) {
        std::cerr << "summarizer: " << parsed.error().message << "\n";
        return 1;
    }
    parsed->request.request_id = NewRequestId();
    Service service(config);
    if (config.routing.policy == "cost") service.RefreshUpstreamState();
    SummarizeEvents events;
    if (!json_out) {
        events.on_delta = [](std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        };
    }
    if (!quiet) events.on_progress = PrintProgress;
    auto ticket = service.Admit(CancelToken{});
    auto result = ticket.ok() ? service.Summarize(*ticket, parsed->request, events) : Result<SummarizeResponse>(ticket.error());
    if (!result.ok()) {
        std::cerr << "\nsummarizer: " << ErrorCodeName(result.error().code) << ": " << result.error().message << "\n";
        return 1;
    }
    if (json_out) {
        std::cout << ResponseJson(*result).dump(2) << "\n";
        return 0;
    }
    if (!result->summary.empty() && result->summary.back() != '\n') std::cout << "\n";
    if (!quiet) {
        std::fprintf(stderr, "[route %s, model %s, %d chunk(s), %.1f s, ttft %.0f ms, decode %.1f tok/s%s]\n",
                     result->route.c_str(), result->model.c_str(), result->chunks, result->timings.total_ms / 1000,
                     result->timings.ttft_ms, result->timings.decode_tokens_per_s, result->degraded ? ", degraded" : "");
    }
    return 0;
}

int PlanCommand(const Config& config, const std::string& path, const std::map<std::string, std::string>& options) {
    auto parsed = ReadRequest(path, options, config);
    if (!parsed.ok()) {
        std::cerr << "summarizer: " << parsed.error().message << "\n";
        return 1;
    }
    Service service(config);
    if (config.routing.policy == "cost") service.RefreshUpstreamState();
    auto plan = service.MakePlan(parsed->request);
    if (!plan.ok()) {
        std::cerr << "summarizer: " << ErrorCodeName(plan.error().code) << ": " << plan.error().message << "\n";
        return 1;
    }
    std::cout << PlanJson(*plan).dump(2) << "\n";
    return 0;
}

// `summarizer jobs ...`: a client of a running server's /jobs endpoints.
struct JobsFlags {
    std::string url;
    std::string api_key;
    std::string idempotency_key;
    bool no_cache = false;
    bool watch = false;
    bool json_out = false;
    bool quiet = false;
};

JobClient MakeJobClient(const JobsFlags& flags) {
    const auto env = Environment();
    JobClientOptions options;
    auto from_env = [&](const char* name) {
        auto it = env.find(name);
        return it == env.end() ? std::string() : it->second;
    };
    options.url = !flags.url.empty()                    ? flags.url
                  : !from_env("SUMMARIZER_URL").empty() ? from_env("SUMMARIZER_URL")
                                                        : options.url;
    options.api_key = !flags.api_key.empty() ? flags.api_key : from_env("SUMMARIZER_API_KEY");
    return JobClient(options);
}

int JobFailed(const Error& error) {
    std::cerr << "summarizer: " << error.message << "\n";
    return 1;
}

// Follows a job's events: a progress bar on stderr, the summary (or the whole result) on stdout.
int WatchJob(JobClient& client, const std::string& id, const JobsFlags& flags) {
    nlohmann::json result;
    std::string failure;
    auto ended = client.Watch(id, [&](const std::string& name, const nlohmann::json& data) {
        if (name == "progress" && !flags.quiet && data.is_object()) {
            const std::string phase = data.value("phase", std::string("map"));
            PrintProgress(ProgressUpdate{.phase = phase,
                                         .done = data.value("done", 0),
                                         .total = data.value("total", 0),
                                         .level = data.value("level", 0),
                                         .remaining_ms = data.value("remaining_ms", int64_t{0})});
        } else if (name == "state" && !flags.quiet && data.is_object()) {
            std::cerr << "job " << id << ": " << data.value("state", std::string("?"))
                      << (data.contains("reason") ? " (" + data.value("reason", std::string()) + ")" : "") << "\n";
        } else if (name == "meta" && !flags.quiet && data.is_object() && data.contains("replanned")) {
            std::cerr << "job " << id << ": re-planned: " << data.value("replanned", std::string()) << "\n";
        } else if (name == "done") {
            result = data;
        } else if (name == "error" || name == "cancelled") {
            failure = data.dump();
        }
    });
    if (!ended.ok()) return JobFailed(ended.error());
    if (*ended != "done") {
        std::cerr << "summarizer: job " << id << " ended: " << *ended << " " << failure << "\n";
        return 1;
    }
    if (flags.json_out) {
        std::cout << result.dump(2) << "\n";
    } else {
        std::cout << result.value("summary", std::string()) << "\n";
    }
    return 0;
}

int JobsCommand(const std::string& action, const std::string& target, const std::map<std::string, std::string>& options,
                const JobsFlags& flags) {
    JobClient client = MakeJobClient(flags);
    if (action == "submit") {
        auto text = ReadInput(target);
        if (!text.ok()) return JobFailed(text.error());
        auto submitted = client.Submit(*text, options, flags.idempotency_key, flags.no_cache);
        if (!submitted.ok()) return JobFailed(submitted.error());
        const std::string id = submitted->value("id", std::string());
        if (!flags.watch) {
            if (flags.json_out) {
                std::cout << submitted->dump(2) << "\n";
            } else {
                std::cout << id << "\n";
            }
            return 0;
        }
        if (!flags.quiet) std::cerr << "job " << id << " (" << submitted->value("state", std::string()) << ")\n";
        return WatchJob(client, id, flags);
    }
    if (action == "watch") return WatchJob(client, target, flags);
    if (action == "cancel") {
        auto cancelled = client.Cancel(target);
        if (!cancelled.ok()) return JobFailed(cancelled.error());
        std::cout << cancelled->dump(2) << "\n";
        return 0;
    }
    // fetch: the summary when done; otherwise the job's state, and exit code 3 (try again later).
    auto job = client.Get(target);
    if (!job.ok()) return JobFailed(job.error());
    const std::string state = job->value("state", std::string());
    if (flags.json_out || state != "done") {
        std::cout << job->dump(2) << "\n";
    } else {
        std::cout << (*job)["result"].value("summary", std::string()) << "\n";
    }
    if (state == "done") return 0;
    return state == "queued" || state == "running" ? 3 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App app{"summarizer: summaries from Ollama that route by size and never send a prompt that does not fit"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("summarizer ") + SUMMARIZER_VERSION);
    app.footer("Settings: `summarizer config --list` (every knob, its environment variable and default).\n"
               "Precedence: flags > environment > config file > defaults. A bad value exits with code 2.\n"
               "Docs: README.md, docs/; API: docs/API.md, GET /openapi.json");

    CommonFlags serve_flags, summarize_flags, plan_flags, config_flags;
    auto* serve = app.add_subcommand("serve", "run the HTTP server (POST /summarize, /summarize/plan, /healthz, ...)");
    AddCommonFlags(serve, serve_flags, true);

    std::string file = "-";
    std::string language = "auto", style = "paragraph", strategy = "auto";
    int max_tokens = 0;
    bool json_out = false, quiet = false;
    auto* summarize = app.add_subcommand("summarize", "summarize FILE (or - for stdin) once and print it, no server");
    AddCommonFlags(summarize, summarize_flags, false);
    summarize->add_option("file", file, "text file, or - for standard input")->capture_default_str();
    auto add_request_options = [&](CLI::App* cmd) {
        cmd->add_option("--language", language, "auto, en, ja, ...")->capture_default_str();
        cmd->add_option("--style", style, "paragraph or bullets")->capture_default_str();
        cmd->add_option("--max-tokens", max_tokens, "cap on generated tokens (default: generation.num_predict)");
        cmd->add_option("--strategy", strategy, "auto, single or map_reduce")->capture_default_str();
    };
    add_request_options(summarize);
    summarize->add_flag("--json", json_out, "print the full response object instead of streaming the text");
    summarize->add_flag("-q,--quiet", quiet, "no progress bar or summary line on stderr");

    auto* plan = app.add_subcommand("plan", "show the route FILE (or -) would take; nothing is generated");
    AddCommonFlags(plan, plan_flags, false);
    plan->add_option("file", file, "text file, or - for standard input")->capture_default_str();
    add_request_options(plan);

    JobsFlags jobs_flags;
    std::string job_target;
    auto* jobs_cmd =
        app.add_subcommand("jobs", "durable jobs on a running server (POST /jobs): submit, watch, fetch, cancel");
    jobs_cmd->require_subcommand(1);
    jobs_cmd->add_option("--url", jobs_flags.url, "the server (env SUMMARIZER_URL; default http://127.0.0.1:8080)");
    jobs_cmd->add_option("--api-key", jobs_flags.api_key, "its API key, if it needs one (env SUMMARIZER_API_KEY)");
    jobs_cmd->add_flag("-q,--quiet", jobs_flags.quiet, "no progress on stderr");
    jobs_cmd->add_flag("--json", jobs_flags.json_out,
                       "print JSON (the job, or the whole result) instead of the summary");
    auto* job_submit = jobs_cmd->add_subcommand("submit", "submit FILE (or - for stdin) as a job; prints its id");
    job_submit->add_option("file", job_target, "text file, or - for standard input")->required();
    add_request_options(job_submit);
    job_submit->add_option("--idempotency-key", jobs_flags.idempotency_key,
                           "the same key again returns the same job (a retry never submits twice)");
    job_submit->add_flag("--no-cache", jobs_flags.no_cache, "new work even if the same text was summarized already");
    job_submit->add_flag("--watch", jobs_flags.watch, "then follow it and print its summary (as `jobs watch`)");
    auto* job_watch = jobs_cmd->add_subcommand(
        "watch", "follow job ID (progress on stderr, reconnecting if the connection drops); print its summary");
    job_watch->add_option("id", job_target, "the job's id")->required();
    auto* job_fetch = jobs_cmd->add_subcommand(
        "fetch", "print job ID's summary if it is done; else its state, with exit code 3 while it runs");
    job_fetch->add_option("id", job_target, "the job's id")->required();
    auto* job_cancel = jobs_cmd->add_subcommand("cancel", "cancel job ID (its upstream calls stop)");
    job_cancel->add_option("id", job_target, "the job's id")->required();

    bool list = false, markdown = false;
    auto* config_cmd = app.add_subcommand("config", "print the effective configuration (or --list the knobs)");
    AddCommonFlags(config_cmd, config_flags, true);
    config_cmd->add_flag("--list", list, "list every knob with its environment variable and default");
    config_cmd->add_flag("--markdown", markdown, "the same list as the Markdown table of docs/CONFIGURATION.md");

    CLI11_PARSE(app, argc, argv);

    // Logs go to standard error: standard output is the summary (`summarize`) or JSON (`plan`, `--json`).
    spdlog::set_default_logger(spdlog::stderr_color_mt("summarizer"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    auto request_options = [&] {
        std::map<std::string, std::string> o{{"language", language}, {"style", style}, {"strategy", strategy}};
        if (max_tokens != 0) o["max_tokens"] = std::to_string(max_tokens);
        return o;
    };
    if (*serve) return Serve(LoadOrExit(serve_flags));
    if (*summarize) return Summarize(LoadOrExit(summarize_flags), file, request_options(), json_out, quiet);
    if (*plan) return PlanCommand(LoadOrExit(plan_flags), file, request_options());
    if (*jobs_cmd) {
        const std::string action = *job_submit ? "submit" : *job_watch ? "watch" : *job_fetch ? "fetch" : "cancel";
        return JobsCommand(action, job_target, request_options(), jobs_flags);
    }
    if (*config_cmd) {
        if (markdown) {
            std::cout << KnobMarkdown();
            return 0;
        }
        if (list) {
            std::cout << KnobTable();
            return 0;
        }
        std::cout << ConfigToJson(LoadOrExit(config_flags)) << "\n";
        return 0;
    }
    return 0;
}
