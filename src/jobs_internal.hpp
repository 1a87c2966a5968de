// Pieces of the durable jobs shared by jobs.cpp (the facade, runners, heartbeat) and
// job_execution.cpp (one run of a claimed job). Private to src/.
#pragma once

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "summarizer/executor.hpp"
#include "summarizer/jobs.hpp"

namespace summarizer {

// Why a job this process runs was told to stop (by whoever noticed first).
enum class StopReason : int {
    kNone = 0,
    kCancelRequested,  // DELETE /jobs/{id}, on any replica
    kLeaseLost,        // another owner holds the job now: it is no longer ours to write
    kStoreFailed,      // a step could not be committed: the job resumes from its last committed one
    kShutdown,         // this process stops: the lease is released
};

struct Jobs::Held {
    std::string id;
    CancelToken cancel;  // a child of the ticket's: the executor's calls watch it
    bool sync = false;   // a /summarize client waits for it
    std::atomic<int> reason{static_cast<int>(StopReason::kNone)};

    // The first reason wins; the job's calls stop.
    void Stop(StopReason why) {
        int none = static_cast<int>(StopReason::kNone);
        reason.compare_exchange_strong(none, static_cast<int>(why));
        cancel.Cancel();
    }
    StopReason stopped() const { return static_cast<StopReason>(reason.load()); }
};

// Failures of an upstream that passes: a job that meets one goes back to the queue.
bool IsTransientUpstreamFailure(const Error& error);

// The message when a store call failed, for logs.
std::string DescribeStoreError(const StoreError& error);

// One Server-Sent Event with its id: "id: SEQ\nevent: NAME\ndata: JSON\n\n".
std::string FormatJobEvent(const Event& event);

}  // namespace summarizer
