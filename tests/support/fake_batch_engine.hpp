// A continuous-batching GPU for the fake's OpenAI-compatible mode (vLLM, llama.cpp's server): up to
// `max_seqs` sequences share every engine step. A step decodes one token of each running sequence
// and prefills up to `max_batched_tokens` prompt tokens (chunked prefill, first come first served);
// it takes step_ms + step_ms_per_seq per extra decoding sequence + its prefill tokens at the prefill
// rate. Sequences beyond max_seqs wait in arrival order. Simulated time runs `time_scale` times
// faster than real time. A test double: never linked into the product. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace summarizer::testing {

struct FakeBatchModel {
    int max_seqs = 16;               // vLLM max_num_seqs, llama.cpp --parallel
    int max_batched_tokens = 2048;   // tokens one step processes (decodes + a prefill chunk)
    double prefill_tokens_per_s = 3000.0;
    double step_ms = 1000.0 / 60.0;  // a step with one decoding sequence (60 tok/s alone, as the Ollama model)
    double step_ms_per_seq = 0.6;    // each further decoding sequence (batching is nearly free: memory-bound)
    double time_scale = 1.0;
};

class FakeBatchEngine {
public:
    // One request's progress. Read under the engine's lock (Wait); written by the engine thread.
    struct Sequence {
        int64_t prompt_tokens = 0;
        int64_t max_tokens = 0;        // tokens to generate
        int64_t prompt_done = 0;
        int64_t generated = 0;
        bool cancelled = false;
        bool finished = false;
        double queued_s = 0, prefill_s = 0, decode_s = 0;  // simulated seconds in each phase
    };

    explicit FakeBatchEngine(FakeBatchModel model);
    ~FakeBatchEngine();
    FakeBatchEngine(const FakeBatchEngine&) = delete;
    FakeBatchEngine& operator=(const FakeBatchEngine&) = delete;

    std::shared_ptr<Sequence> Submit(int64_t prompt_tokens, int64_t max_tokens);
    // Waits until the sequence has generated more than `seen` tokens or finished, or `timeout` passes.
    // Returns its state then (a copy).
    Sequence Wait(const std::shared_ptr<Sequence>& seq, int64_t seen, std::chrono::milliseconds timeout);
    void Cancel(const std::shared_ptr<Sequence>& seq);
    int Running() const;
    int MaxRunning() const;

private:
    void Loop();

    const FakeBatchModel model_;
    mutable std::mutex mutex_;
    std::condition_variable work_cv_, progress_cv_;
    std::deque<std::shared_ptr<Sequence>> waiting_;
    std::vector<std::shared_ptr<Sequence>> running_;
    int max_running_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace summarizer::testing
