#include "summarizer/job_store.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "job_store_internal.hpp"

namespace summarizer {

using job_store_internal::Fail;

std::string_view StoreFailureName(StoreFailure failure) {
    switch (failure) {
        case StoreFailure::kUnavailable:
            return "unavailable";
        case StoreFailure::kCorrupt:
            return "corrupt";
        case StoreFailure::kNotFound:
            return "not_found";
        case StoreFailure::kConflict:
            return "conflict";
        case StoreFailure::kInternal:
            return "internal";
    }
    return "internal";
}

std::string_view JobStateName(JobState state) {
    switch (state) {
        case JobState::kQueued:
            return "queued";
        case JobState::kRunning:
            return "running";
        case JobState::kDone:
            return "done";
        case JobState::kFailed:
            return "failed";
        case JobState::kCancelled:
            return "cancelled";
    }
    return "failed";
}

std::optional<JobState> ParseJobState(std::string_view name) {
    for (int i = 0; i < kJobStateCount; ++i) {
        const auto state = static_cast<JobState>(i);
        if (JobStateName(state) == name) return state;
    }
    return std::nullopt;
}

bool IsFinished(JobState state) {
    return state == JobState::kDone || state == JobState::kFailed || state == JobState::kCancelled;
}

StoreResult<std::string> NewJobId() {
    unsigned char bytes[16];
    size_t filled = 0;
    while (filled < sizeof bytes) {
        // Flags 0: the urandom pool, which blocks only until it is first seeded at boot.
        const ssize_t n = getrandom(bytes + filled, sizeof bytes - filled, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Fail(StoreFailure::kInternal, std::string("getrandom: ") + std::strerror(errno));
        }
        filled += static_cast<size_t>(n);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id(32, '0');
    for (size_t i = 0; i < sizeof bytes; ++i) {
        id[2 * i] = kHex[bytes[i] >> 4];
        id[2 * i + 1] = kHex[bytes[i] & 0x0f];
    }
    return id;
}

StoreResult<std::unique_ptr<JobStore>> OpenJobStore(const std::string& database, const JobStoreOptions& options) {
    if (database.starts_with("postgresql://") || database.starts_with("postgres://")) {
        return OpenPgJobStore(database, options);
    }
    if (database.empty())
        return Fail(StoreFailure::kInternal, "job store: no database given (a file path or a postgresql:// URL)");
    return OpenSqliteJobStore(database, options);
}

namespace job_store_internal {

StoreStatus ValidateNewJob(const NewJob& job) {
    if (job.content_hash.empty()) return Fail(StoreFailure::kInternal, "Submit: the content hash is empty");
    if (job.options_json.empty())
        return Fail(StoreFailure::kInternal, "Submit: options_json is empty (\"{}\" for none)");
    return StoreOk();
}

StoreStatus ValidateStep(const Step& step) {
    if (step.key.kind.empty()) return Fail(StoreFailure::kInternal, "RecordStep: the step has no kind");
    return StoreOk();
}

StoreStatus ValidateLease(const std::string& owner, std::chrono::milliseconds lease) {
    if (owner.empty()) return Fail(StoreFailure::kInternal, "lease: the owner is empty");
    if (lease.count() <= 0) return Fail(StoreFailure::kInternal, "lease: the duration must be positive");
    return StoreOk();
}

StoreStatus ValidateLimit(int limit) {
    if (limit < 1) return Fail(StoreFailure::kInternal, "ListEvents: the limit must be at least 1");
    return StoreOk();
}

StoreError NotOwnedError(const std::string& job_id, const std::string& owner, bool exists, JobState state,
                         const std::string& current_owner) {
    if (!exists) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
    if (state != JobState::kRunning) {
        return Fail(StoreFailure::kConflict,
                    "job " + job_id + " is " + std::string(JobStateName(state)) + ", not running for " + owner);
    }
    return Fail(StoreFailure::kConflict, "job " + job_id + " is held by " + current_owner + ", not " + owner);
}

}  // namespace job_store_internal
}  // namespace summarizer
