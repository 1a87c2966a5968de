// One scheduler for every upstream call of the process, so the GPU's slots are shared fairly:
// - at most `slots` calls run at once (Ollama's OLLAMA_NUM_PARALLEL; more would only queue
//   inside Ollama and hide progress);
// - optionally one prompt prefill at a time (the "prefill gate"): the next call starts when the
//   previous one has produced its first token (or has been silent for prefill_gate_max_ms), so
//   prefills, which share the GPU's compute, do not slow each other down and overlap with other
//   calls' decoding instead; the first token of every call comes sooner;
// - interactive calls (a single pass, a final reduce: a client waits on their tokens) go before
//   batch calls (map chunks, intermediate reduces of large jobs); a batch call that has waited
//   `batch_max_wait_ms` is served in arrival order with the interactive ones, so nothing starves;
// - with bucket affinity (the "cost" routing policy), calls for the model most recently started
//   go first, so a run of calls does not make Ollama swap models back and forth; the scheduler
//   switches to another model when no call for the current one is waiting, or when a call for
//   another model has waited `switch_max_wait_ms` (counted from the last switch, so two busy
//   models alternate in turns of at least that long instead of call by call).
// Within a class, calls start in arrival order.
// Thread-safe. Acquire() blocks the calling thread; waiters poll their CancelToken every few ms.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/llm_engine.hpp"

namespace summarizer {

struct SchedulerOptions {
    int slots = 1;                    // calls at once; Ollama's OLLAMA_NUM_PARALLEL
    bool prefill_gate = true;         // start a call only when no started call is still before its first token
    int prefill_gate_max_ms = 20000;  // ms; a call silent this long no longer holds the gate (model load, stall)
    bool bucket_affinity = false;     // prefer the current model's calls (routing.policy == "cost")
    int switch_max_wait_ms = 15000;   // ms; the longest a call for another model waits for the switch
    int batch_max_wait_ms = 20000;    // ms; a batch call waiting this long no longer yields to interactive ones
};

struct SchedulerStats {
    int active = 0;              // calls holding a slot
    int waiting = 0;             // calls waiting in Acquire()
    int64_t started = 0;         // calls started since construction
    int64_t model_switches = 0;  // a call started for another model than the previous one
    std::string current_model;   // model of the most recent call started ("" before the first)
};

class UpstreamScheduler {
public:
    explicit UpstreamScheduler(SchedulerOptions options);
    UpstreamScheduler(const UpstreamScheduler&) = delete;
    UpstreamScheduler& operator=(const UpstreamScheduler&) = delete;

    // A running call's hold on a slot; releases it when destroyed (or moved-from into another).
    // Must not outlive its scheduler.
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&& other) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease();
        // The call produced its first token: its prefill is over, the next call may start.
        // Idempotent; cheap after the first call.
        void MarkFirstToken();
        // Gives the slot back now (the destructor does it otherwise). Idempotent.
        void Release();

    private:
        friend class UpstreamScheduler;
        Lease(UpstreamScheduler* owner, uint64_t id) : owner_(owner), id_(id) {}
        UpstreamScheduler* owner_ = nullptr;
        uint64_t id_ = 0;
        bool first_token_ = false;
    };

    // Blocks until the call may start, then holds a slot for it until the Lease is released.
    // Errors: kCancelled when `cancel` fires while waiting (noticed within a few milliseconds).
    Result<Lease> Acquire(const std::string& model, bool interactive, const CancelToken& cancel);

    SchedulerStats stats() const;
    // Calls waiting or running for `model`.
    int Pending(const std::string& model) const;
    const SchedulerOptions& options() const { return options_; }

private:
    using Clock = std::chrono::steady_clock;
    struct Waiter {
        uint64_t id;
        std::string model;
        bool interactive;
        Clock::time_point since;
    };
    struct Running {
        uint64_t id;
        std::string model;
        bool in_prefill;
        Clock::time_point started;
    };

    // The waiter that may start now, or nullptr. Requires mutex_.
    const Waiter* PickLocked(Clock::time_point now) const;
    void ReleaseSlot(uint64_t id);
    void FirstToken(uint64_t id);

    SchedulerOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::list<Waiter> waiting_;  // arrival order
    std::list<Running> running_;
    uint64_t next_id_ = 1;
    int64_t started_ = 0;
    int64_t switches_ = 0;
    std::string current_model_;
    Clock::time_point current_since_{};  // when current_model_ last changed
};

// An LlmEngine that runs every Generate through the scheduler: it waits for a slot (kCancelled
// if cancelled meanwhile), tells the scheduler about the call's first token, and frees the slot
// when the call ends however it ends. The inner backend's retries run inside the one slot.
// Health, CountTokens and ContextSize pass straight through (they are not generations and must not
// queue behind a long job). Thread-safe; `inner` and `scheduler` must outlive it.
class ScheduledEngine : public ForwardingEngine {
public:
    ScheduledEngine(LlmEngine& inner, UpstreamScheduler& scheduler)
        : ForwardingEngine(inner), scheduler_(scheduler) {}

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;

    UpstreamScheduler& scheduler() { return scheduler_; }

private:
    UpstreamScheduler& scheduler_;
};

// The scheduler options a Config asks for: slots = ollama.num_parallel, bucket affinity when
// routing.policy is "cost", the scheduler.* knobs.
SchedulerOptions SchedulerOptionsFromConfig(const Config& config);

}  // namespace summarizer
