// fake-ollama: the test double as a standalone server, for integration tests, the browser test, benchmarks and
// the README demo. Prints "listening on http://127.0.0.1:PORT" and serves until SIGINT/SIGTERM.
#include <pthread.h>

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "fake_ollama.hpp"

int main(int argc, char** argv) {
    namespace fake = summarizer::testing;
    CLI::App app{"fake-ollama: a fake Ollama (or vLLM, llama.cpp server) speaking its wire format (a test double)"};
    int port = 0;
    fake::FakeBehavior behavior;
    fake::FakeGpuModel gpu;
    std::vector<std::string> model_specs;
    app.add_option("--port", port, "Port on 127.0.0.1 (0: any free port)");
    app.add_option("--reply", behavior.reply, "Text generated (default: \"Summary: \" + the start of the document)");
    app.add_option("--piece-chars", behavior.piece_chars, "Bytes per streamed piece");
    app.add_option("--piece-delay-ms", behavior.piece_delay_ms, "Delay between pieces");
    app.add_option("--first-piece-delay-ms", behavior.first_piece_delay_ms, "Delay before the first piece");
    app.add_option("--headers-delay-ms", behavior.headers_delay_ms, "Stall before answering");
    app.add_option("--fail-status", behavior.fail_status, "Answer generate/chat with this HTTP status");
    app.add_option("--fail-count", behavior.fail_count, "How many calls fail (-1: all)");
    app.add_flag("--gpu", gpu.enabled, "Simulate a GPU (slots, prefill/decode rates, loads)");
    app.add_option("--slots", gpu.slots, "GPU: parallel slots (OLLAMA_NUM_PARALLEL)");
    app.add_option("--prefill-tps", gpu.prefill_tokens_per_s, "GPU: prefill tokens/s, shared");
    app.add_option("--decode-tps", gpu.decode_tokens_per_s, "GPU: decode tokens/s per stream");
    app.add_option("--load-ms", gpu.load_ms, "GPU: runner load time");
    app.add_option("--time-scale", gpu.time_scale, "GPU: simulated time runs this many times faster");
    app.add_option("--output-tokens", gpu.output_tokens, "GPU: tokens generated per call");
    app.add_option("--model", model_specs,
                   "A model as name:num_ctx (repeatable; default: the two buckets; OpenAI-compatible: the one it serves, "
                   "num_ctx its context)");
    std::string api = "ollama";
    app.add_option("--api", api, "ollama, vllm or llamacpp (the OpenAI-compatible modes)")
        ->check(CLI::IsMember({"ollama", "vllm", "llamacpp"}));
    CLI11_PARSE(app, argc, argv);

    std::vector<fake::FakeModel> models;
    for (const auto& spec : model_specs) {
        const size_t colon = spec.rfind(':');
        fake::FakeModel model;
        try {
            if (colon == std::string::npos || colon == 0) throw std::invalid_argument(spec);
            model.name = spec.substr(0, colon);
            model.num_ctx = std::stoll(spec.substr(colon + 1));
        } catch (const std::exception&) {
            std::cerr << "fake-ollama: --model wants name:num_ctx, got '" << spec << "'\n";
            return 2;
        }
        models.push_back(model);
    }

    // Block the signals before any thread starts (they all inherit the mask); wait for them below.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        fake::FakeOllama server(port);
        if (api != "ollama") server.SetApi(api == "vllm" ? fake::FakeApi::kVllm : fake::FakeApi::kLlamaCpp);
        server.SetBehavior(behavior);
        server.SetGpuModel(gpu);
        if (!models.empty()) server.SetModels(models);
        std::cout << "listening on " << server.url() << std::endl;
        int signal = 0;
        sigwait(&signals, &signal);
        server.Stop();
    } catch (const std::exception& e) {
        std::cerr << "fake-ollama: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
