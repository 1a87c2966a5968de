// A fake Ollama server for tests and benchmarks: a real HTTP server on 127.0.0.1 speaking
// Ollama's wire format (docs/api.md): NDJSON streaming /api/generate and /api/chat with
// nanosecond timings, {"error": ...} bodies, /api/tags, /api/show, /api/ps, keep_alive,
// empty-prompt load and keep_alive 0 unload, "truncate": false.
// In its OpenAI-compatible mode (SetApi) it speaks like vLLM or llama.cpp's llama-server instead:
// streamed /v1/chat/completions (SSE chunks, the usage chunk, [DONE]; llama.cpp's timings), each
// engine's 400 body for a prompt over the context (vLLM counts prompt + max_tokens, llama.cpp the
// prompt alone per slot, and ends a generation that fills the slot with finish_reason "length"),
// /v1/models (vLLM max_model_len), /props (llama.cpp n_ctx, total_slots), /tokenize, /health; with a
// GPU model, a continuous-batching engine (fake_batch_engine.hpp) of `slots` sequences.
// It can be told to be slow, fail, drop the connection, send garbage, or truncate.
// A test double: never linked into the product.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace summarizer::testing {

// How the next /api/generate or /api/chat calls behave. Set any time (thread-safe).
struct FakeBehavior {
    // Text generated, split into pieces of `piece_chars` bytes (on UTF-8 boundaries). Empty: the
    // fake writes "Summary: " followed by the first 60 bytes of the prompt's last
    // <document>...</document> block (or of the prompt), so tests can see what was summarized.
    std::string reply;
    int piece_chars = 8;
    int first_piece_delay_ms = 0;   // after headers, before the first piece (prefill time)
    int piece_delay_ms = 0;         // between pieces (decode time)
    int headers_delay_ms = 0;       // before sending the status line (a stalled server)

    // Failures. fail_status != 0: answer that status with {"error": fail_message}.
    int fail_status = 0;
    std::string fail_message = "llama runner process has terminated";
    int fail_count = -1;            // how many calls fail before success; -1 = all

    int drop_after_pieces = -1;     // >= 0: close the connection after that many pieces
    int error_line_after_pieces = -1;  // >= 0: send {"error": ...} as a line, then end
    int garbage_after_pieces = -1;  // >= 0: send a line that is not JSON, then end
    bool omit_final = false;        // end the stream without the done:true object

    // Context handling. When a request has "truncate": false and the prompt's token count (see
    // CountFakeTokens) exceeds num_ctx, answer 400 {"error":"the input length exceeds the
    // context length"} -- as Ollama >= 0.12.4 does -- unless `ignore_truncate_flag` (an old
    // Ollama), in which case it cuts silently and reports prompt_eval_count = num_ctx.
    bool ignore_truncate_flag = false;
    // Multiply the fake token count (a tokenizer denser than the service's estimate).
    double token_scale = 1.0;
    // Multiply the eval_count reported (< 1: generated text that takes more tokens when read back in a
    // prompt than its generation counted).
    double eval_count_scale = 1.0;

    // Models that answer 404 {"error":"model 'x' not found"}.
    std::vector<std::string> missing_models;
    // OpenAI-compatible mode: GET /health answers this status when not 0 (llama.cpp: 503 "Loading model").
    int health_status = 0;

    // Reported timings (ns) when no GPU model is set: prefill/decode rates used to compute
    // prompt_eval_duration and eval_duration from the counts.
    double prefill_tokens_per_s = 3000.0;
    double decode_tokens_per_s = 60.0;
    int64_t load_duration_ns = 0;
};

// Optional GPU cost model (benchmarks): calls really take the time a GPU would, scaled.
struct FakeGpuModel {
    bool enabled = false;
    int slots = 1;                         // OLLAMA_NUM_PARALLEL: calls beyond wait in a queue
    double prefill_tokens_per_s = 3000.0;  // shared: concurrent prefills split it
    double decode_tokens_per_s = 60.0;     // per stream at an empty context
    double decode_context_slowdown = 0.15; // decode rate / (1 + this * context_tokens / 16384)
    double decode_concurrency_slowdown = 0.08;  // rate / (1 + this * (other active decodes))
    double load_ms = 3000.0;               // loading a runner (first use, or num_ctx change)
    bool one_runner_per_file = true;       // models with the same base share a runner
    int64_t vram_budget_bytes = 8188LL << 20;
    double spill_slowdown = 5.0;           // rates divided by this when the runner spills
    double time_scale = 1.0;               // sleep durations are divided by this
    int output_tokens = 300;               // tokens generated per call (capped by num_predict)
    // OpenAI-compatible mode: continuous batching of `slots` sequences (FakeBatchModel).
    double batch_step_ms_per_seq = 0.6;    // step time added by each further decoding sequence
    int max_batched_tokens = 2048;         // tokens per step (decodes + a chunk of prefill)
};

// Which server the fake is.
enum class FakeApi {
    kOllama,    // /api/* (the default)
    kVllm,      // /v1/chat/completions, /v1/models with max_model_len, /tokenize {prompt} -> count, /health
    kLlamaCpp,  // /v1/chat/completions with timings, /props, /tokenize {content} -> tokens, /health
};

// A model the fake knows (/api/tags, /api/show) with its Modelfile num_ctx.
struct FakeModel {
    std::string name;
    int64_t num_ctx = 4096;
    std::string base = "gemma3:4b";        // runner identity for one_runner_per_file
    int64_t size_bytes = 0;                // as /api/ps reports; 0 = derived from num_ctx
};

// What a request looked like when it reached the fake.
struct RecordedRequest {
    std::string path;                      // "/api/generate", "/api/chat", "/v1/chat/completions"
    nlohmann::json body;
    std::chrono::steady_clock::time_point received;
    std::chrono::steady_clock::time_point finished;
    bool client_disconnected = false;      // the client closed the connection mid-stream
    int64_t pieces_sent = 0;
};

// Token count the fake attributes to a text: Latin ~4 chars/token, CJK ~1.6 chars/token,
// scaled by FakeBehavior::token_scale.
int64_t CountFakeTokens(const std::string& text, double scale = 1.0);

class FakeOllama {
public:
    // Starts listening on 127.0.0.1 on a free port (or `port` if > 0). Models default to the two
    // buckets: gemma3-4b-16k (16384) and gemma3-4b-60k (61440).
    explicit FakeOllama(int port = 0);
    ~FakeOllama();
    FakeOllama(const FakeOllama&) = delete;
    FakeOllama& operator=(const FakeOllama&) = delete;

    int port() const;
    std::string url() const;  // "http://127.0.0.1:PORT"

    void SetBehavior(const FakeBehavior& behavior);
    FakeBehavior behavior() const;
    void SetGpuModel(const FakeGpuModel& gpu);
    // Ollama: the models it has. OpenAI-compatible: the first is the model it serves, its num_ctx the
    // context (vLLM max_model_len; llama.cpp n_ctx per slot).
    void SetModels(const std::vector<FakeModel>& models);
    // Ollama (default) or an OpenAI-compatible engine; the other API's paths answer 404. In an
    // OpenAI-compatible mode the models default to one: google/gemma-3-4b-it with a context of 32768.
    void SetApi(FakeApi api);

    // Stops answering (connection refused from then on) / starts again on the same port.
    void Stop();
    void Restart();

    std::vector<RecordedRequest> Requests() const;   // generate/chat calls, in arrival order
    void ClearRequests();
    int MaxConcurrency() const;        // most generate/chat calls being served at once
    int ActiveCalls() const;
    int Loads() const;                 // runner loads (first use, reloads, empty-prompt loads)
    int Reloads() const;               // loads that replaced another runner
    int ClientDisconnects() const;     // streams whose client went away mid-stream
    int TokenizeCalls() const;         // POST /tokenize requests

    // Waits until `count` generate/chat calls have arrived (or the timeout passes).
    bool WaitForRequests(size_t count, std::chrono::milliseconds timeout) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace summarizer::testing
