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
// - riding: a call may list larger buckets it also fits (CallSpec::rides). On a host that has one of
//   them loaded (not resident: an Ollama host), the call runs on that one rather than make the host
//   swap back: a short text on the loaded 60K bucket costs what it costs on 16K, a reload costs
//   seconds for every caller. A ride stands in for a reload only: while another host has the call's
//   own bucket loaded, the call goes there. The Lease says which key the call runs as.
//
// Several hosts (the upstream pool, SchedulerOptions::hosts): the scheduler places each call. A call
// goes to a host that serves its bucket, has a free slot and is healthy (HostCondition: a host that
// just failed is avoided while another can serve the call; one whose circuit is open is not used);
// among those, to one that already has the bucket loaded (an OpenAI-compatible engine keeps its
// model resident), then to the least loaded relative to its slots (fewest calls started breaks
// ties, so equal hosts take turns). A host would have to load another model for the call: it does
// so when nothing is loaded on it, or when no other host has the call's bucket loaded; otherwise the
// call waits for a busy host that has its bucket loaded rather than make another host swap, for at
// most switch_max_wait_ms (whatever the routing policy: two hosts keep one bucket each). The slots, the prefill gate and the order above
// (interactive first, affinity, arrival order) hold per host.
// Thread-safe. Acquire() blocks the calling thread; waiters poll their CancelToken every few ms.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include <optional>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/llm_engine.hpp"

namespace summarizer {

// One host of a pool, as the scheduler sees it.
struct SchedulerHost {
    std::string name;
    int slots = 1;
    bool prefill_gate = true;
    bool resident = false;             // keeps every model it serves loaded (OpenAI-compatible engines): no swaps
    std::vector<std::string> serves;   // the call keys (bucket names) it takes; empty: every one
};

// How a host can be used now (the pool's health view).
enum class HostCondition {
    kUp,     // use it
    kAvoid,  // failed lately: only when no host in kUp can serve the call
    kDown,   // its circuit is open: never
};

struct SchedulerOptions {
    int slots = 1;                    // calls at once; Ollama's OLLAMA_NUM_PARALLEL (one host)
    bool prefill_gate = true;         // start a call only when no started call is still before its first token
    int prefill_gate_max_ms = 20000;  // ms; a call silent this long no longer holds the gate (model load, stall)
    bool bucket_affinity = false;     // prefer the current model's calls (routing.policy == "cost")
    int switch_max_wait_ms = 15000;   // ms; the longest a call for another model waits for the switch
    int batch_max_wait_ms = 20000;    // ms; a batch call waiting this long no longer yields to interactive ones
    // A pool: one entry per host (then `slots` and `prefill_gate` above are not used). Empty: one host.
    std::vector<SchedulerHost> hosts;
    // Each host's condition, asked while placing (empty: all up). Must not call into the scheduler.
    std::function<HostCondition(size_t host)> condition;
};

struct SchedulerStats {
    int active = 0;              // calls holding a slot
    int waiting = 0;             // calls waiting in Acquire()
    int64_t started = 0;         // calls started since construction
    int64_t model_switches = 0;  // a call started for another model than the previous one on its host
    int64_t rides = 0;           // calls that ran on a larger loaded bucket instead of their own
    std::string current_model;   // model of the most recent call started on the first host ("" before)
};

struct SchedulerHostStats {
    int active = 0;
    int slots = 1;
    int64_t started = 0;
    int64_t model_switches = 0;
    std::string current_model;   // of the most recent call started (or load noted) on this host
};

// One call to place. `model` is its key: the bucket name in a pool (GenerateRequest::bucket), the
// model otherwise.
struct CallSpec {
    std::string model;
    bool interactive = true;
    std::vector<size_t> exclude;  // hosts not to use (they failed this call already)
    std::vector<std::string> rides;  // larger keys it fits too: run as one of them where it is loaded
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
        // The host the call was placed on (0 with one host).
        size_t host() const { return host_; }
        // The key it runs as: CallSpec::model, or one of its rides loaded on that host.
        const std::string& key() const { return key_; }

    private:
        friend class UpstreamScheduler;
        Lease(UpstreamScheduler* owner, uint64_t id, size_t host, std::string key)
            : owner_(owner), id_(id), host_(host), key_(std::move(key)) {}
        UpstreamScheduler* owner_ = nullptr;
        uint64_t id_ = 0;
        size_t host_ = 0;
        std::string key_;
        bool first_token_ = false;
    };

    // Blocks until the call may start, then holds a slot for it until the Lease is released.
    // Errors: kCancelled when `cancel` fires while waiting (noticed within a few milliseconds);
    // kUpstreamUnreachable when no host can take the call, now or later (none serves its key, or
    // those that do are excluded or down), said at once.
    Result<Lease> Acquire(const std::string& model, bool interactive, const CancelToken& cancel);
    Result<Lease> Acquire(const CallSpec& call, const CancelToken& cancel);

    // A host loaded `model` outside any call (a preload): it counts as that host's current model.
    void NoteLoaded(size_t host, const std::string& model);
    // Host conditions changed: waiters look again now instead of at their next poll.
    void Wake();

    SchedulerStats stats() const;
    SchedulerHostStats host_stats(size_t host) const;
    size_t hosts() const { return hosts_.size(); }
    // Calls waiting or running for `model`.
    int Pending(const std::string& model) const;
    // Calls waiting (not yet placed) for `model`.
    int Waiting(const std::string& model) const;
    const SchedulerOptions& options() const { return options_; }

private:
    using Clock = std::chrono::steady_clock;
    struct Waiter {
        uint64_t id;
        std::string model;
        bool interactive;
        Clock::time_point since;
        std::vector<size_t> exclude;
        std::vector<std::string> rides;
    };
    struct Running {
        uint64_t id;
        std::string model;
        bool in_prefill;
        Clock::time_point started;
    };
    struct Host {
        SchedulerHost spec;
        std::list<Running> running;
        int64_t started = 0;
        int64_t switches = 0;
        int64_t rides = 0;  // calls started as one of their rides
        std::string current_model;
        Clock::time_point current_since{};  // when current_model last changed
    };
    // What every host can do at one instant (computed once per look).
    struct View {
        Clock::time_point now;
        std::vector<HostCondition> condition;
        std::vector<bool> open;  // a slot is free, the gate is open, not down
    };

    View LookLocked() const;
    bool CandidateLocked(const View& v, size_t h, const Waiter& w) const;  // serves, not excluded, not down
    bool AllowedLocked(const View& v, size_t h, const Waiter& w) const;    // may start w on h now
    bool LoadedLocked(size_t h, const std::string& model) const;
    // The key `w` would run as on host `h`: one of its rides when that is the host's current model.
    const std::string& KeyLocked(const View& v, size_t h, const Waiter& w) const;
    // The waiter host `h` would start now, or nullptr. Requires mutex_.
    const Waiter* PickLocked(const View& v, size_t h) const;
    // The host `w` starts on now, if any.
    std::optional<size_t> PlaceLocked(const View& v, const Waiter& w) const;
    // No host can ever take `w` (all excluded, down, or not serving it): why, else "".
    std::string HopelessLocked(const View& v, const Waiter& w) const;
    void ReleaseSlot(uint64_t id);
    void FirstToken(uint64_t id);

    SchedulerOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::list<Waiter> waiting_;  // arrival order
    std::vector<Host> hosts_;
    uint64_t next_id_ = 1;
    int64_t started_ = 0;
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
