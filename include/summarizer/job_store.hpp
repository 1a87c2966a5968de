// Durable jobs (issue #15): the storage behind POST /jobs, resume after a restart, the result
// cache and several replicas sharing one job table.
//
// Per job a store keeps the request (text, options), its content hash and Idempotency-Key, the
// plan state and every finished step, an append-only event log (SSE replay), progress, the
// result or error, and who runs it (owner and lease). Plan, steps' metadata, events, result and
// error are opaque text (JSON) owned by the executor: the schema does not depend on their content.
//
// Two implementations, chosen by OpenJobStore(database):
//   - SQLite, for a file path: one file in WAL mode; the zero-set-up default of one process.
//   - PostgreSQL, for a postgresql:// or postgres:// URL: one job table shared by replicas.
// Both pass the same contract tests (tests/integration/store_contract_test.cpp).
//
// Durability: every write is one transaction, committed when the call returns successfully.
// A caller that sends a step's event only after RecordStep returned never announces a step that
// a crash, a restart or a full disk can lose.
//
// Failures are values: every call returns StoreResult<T>; nothing throws out of a store.
//
// Text is stored as given. PostgreSQL refuses NUL bytes and invalid UTF-8 in text (kInternal);
// the API validates its input before it gets here.
//
// Thread safety: every method may be called from any thread at once; a call holds one connection
// of a small pool for its duration.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "summarizer/error.hpp"

namespace summarizer {

// What went wrong, as the caller must react to it. The integration maps these to HTTP:
// kNotFound -> 404, kUnavailable -> 503 (Retry-After), kConflict -> 409, kCorrupt and
// kInternal -> 500. (error.hpp has no codes for these yet: ErrorCode belongs to the API layer,
// and the routes that need them are not built; kInternal here is what ErrorCode::kInternal is.)
enum class StoreFailure {
    // The database cannot be used now; retry later. SQLite: the file or its directory cannot be
    // opened or written, the disk is full, the database stayed locked beyond the busy timeout.
    // PostgreSQL: the server is unreachable, restarted or shutting down (the next call
    // reconnects), out of disk. The call changed nothing, except when the connection broke
    // during COMMIT: then the message says the outcome is unknown.
    kUnavailable,
    // The SQLite file is not a database or is damaged (or PostgreSQL reported data corruption).
    // The message names the file. Needs an operator; retrying does not help.
    kCorrupt,
    // No job with that id (never created, or deleted by retention).
    kNotFound,
    // The call lost to another writer or came in the wrong state: the job is held by another
    // owner, is not running (finished, released), the step is already recorded, or an
    // Idempotency-Key was reused for a different request.
    kConflict,
    // A bug: an argument the store refuses (empty content hash, negative lease) or SQL the
    // database rejected.
    kInternal,
};

// "unavailable", "corrupt", "not_found", "conflict", "internal".
std::string_view StoreFailureName(StoreFailure failure);

struct StoreError {
    StoreFailure kind = StoreFailure::kInternal;
    std::string message;  // for logs and the error body: names the job, the file or the server
};

// A value or a StoreError; the shape of Result<T> (error.hpp).
template <typename T>
class [[nodiscard]] StoreResult {
public:
    StoreResult(T value) : data_(std::move(value)) {}           // NOLINT(google-explicit-constructor)
    StoreResult(StoreError error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return data_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(data_); }
    const T& value() const& { return std::get<0>(data_); }
    T&& value() && { return std::get<0>(std::move(data_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    const StoreError& error() const { return std::get<1>(data_); }

private:
    std::variant<T, StoreError> data_;
};

using StoreStatus = StoreResult<Unit>;
inline StoreStatus StoreOk() { return Unit{}; }

// Wall-clock time in milliseconds since the Unix epoch, as stored.
using StoreTime = std::chrono::sys_time<std::chrono::milliseconds>;

enum class JobState { kQueued, kRunning, kDone, kFailed, kCancelled };
inline constexpr int kJobStateCount = 5;

// "queued", "running", "done", "failed", "cancelled": the API's names, and the stored ones.
std::string_view JobStateName(JobState state);
std::optional<JobState> ParseJobState(std::string_view name);
// done, failed or cancelled: the job will not change again.
bool IsFinished(JobState state);

// 128 bits from the kernel's CSPRNG (getrandom(2)) as 32 lowercase hex digits: an id nobody can
// guess from another. kInternal if the kernel has no randomness to give.
StoreResult<std::string> NewJobId();

struct JobProgress {
    int64_t done = 0;   // steps finished
    int64_t total = 0;  // steps planned
    int level = 0;      // the reduce level being worked on (0: the map)
};

struct NewJob {
    std::string text;                 // the input
    std::string options_json = "{}";  // the request's options, as JSON text
    std::string content_hash;         // hex, from text + options + model configuration; required
    std::string idempotency_key;      // the Idempotency-Key header; empty: none
    bool force_new = false;           // Cache-Control: no-cache: never reuse a job by content hash
                                      // (an Idempotency-Key still finds its job)
};

// What GetJob returns besides the job's state: kStatus leaves out the input text and the plan
// (GET /jobs/{id} and SSE need neither, and a 1.5M-character input is worth not copying).
enum class JobView { kStatus, kFull };

struct Job {
    std::string id;
    JobState state = JobState::kQueued;
    StoreTime created{};
    StoreTime updated{};
    std::optional<StoreTime> started;   // first claimed
    std::optional<StoreTime> finished;  // done, failed or cancelled

    std::string text;  // JobView::kFull only
    std::string options_json;
    std::string content_hash;
    std::string idempotency_key;  // empty: none

    std::string plan_json;  // JobView::kFull only; empty until SavePlan
    std::string replanned;  // why the job was re-planned on resume; empty: it was not
    JobProgress progress;
    std::string result_json;  // when done
    std::string error_json;   // when failed

    std::string owner;                       // who runs or ran it; empty: never claimed or released
    std::optional<StoreTime> lease_expires;  // while running
    bool cancel_requested = false;
    int64_t claims = 0;          // times claimed: > 1 means it was taken over or resumed
    int64_t last_event_seq = 0;  // seq of the newest event; 0: none
    int64_t bytes = 0;           // text and JSON stored for it, steps and events included
};

enum class SubmitOutcome {
    kCreated,         // a new queued job
    kIdempotencyKey,  // the job this Idempotency-Key created earlier
    kContentHash,     // a queued, running or done job for the same content (the result cache)
};

struct Submission {
    Job job;  // JobView::kStatus
    SubmitOutcome outcome = SubmitOutcome::kCreated;
    bool created() const { return outcome == SubmitOutcome::kCreated; }
};

// A finished step of the executor: (kind, level, index) names it within its job, e.g.
// ("map", 0, 3), ("merge", 1, 0), ("final", 2, 0), ("single", 0, 0).
struct StepKey {
    std::string kind;
    int level = 0;
    int index = 0;
    friend bool operator==(const StepKey&, const StepKey&) = default;
};

struct Step {
    StepKey key;
    std::string output;  // the generated text
    int64_t prompt_tokens = 0;
    int64_t output_tokens = 0;
    std::string metadata_json = "{}";  // the executor's (model, timings, chunk range...)
    StoreTime recorded{};              // set by the store
};

struct NewEvent {
    std::string name;  // the SSE event name: "progress", "step", "done"...
    std::string data_json = "{}";
};

struct Event {
    int64_t seq = 0;  // 1, 2, 3... per job: the SSE id (Last-Event-ID)
    std::string name;
    std::string data_json;
    StoreTime created{};
};

// How a job ends. Finish() stores result_json for kDone, error_json for kFailed (either may be
// given for kCancelled, e.g. a partial result).
struct JobOutcome {
    JobState state = JobState::kDone;  // kDone, kFailed or kCancelled
    std::string result_json;
    std::string error_json;
};

struct PlanUpdate {
    std::string plan_json;       // chunk offsets etc.: whatever the executor resumes from
    std::string replanned;       // non-empty: why the plan changed on resume (shown to users)
    bool discard_steps = false;  // delete the finished steps in the same transaction: they
                                 // belong to the old plan
};

struct LeaseState {
    StoreTime expires{};
    bool cancel_requested = false;  // someone asked to cancel: stop, then Finish(kCancelled)
};

struct StoreStats {
    std::array<int64_t, kJobStateCount> jobs{};  // by JobState, indexed by its value
    int64_t content_bytes = 0;                   // what retention counts: Job::bytes summed
    int64_t database_bytes = 0;                  // on disk: SQLite page_count * page_size; PostgreSQL
                                                 // pg_total_relation_size of the store's tables
    int64_t jobs_in(JobState state) const { return jobs[static_cast<int>(state)]; }
};

struct RetentionReport {
    int64_t deleted_by_age = 0;
    int64_t deleted_by_size = 0;
    StoreStats after;
};

class JobStore {
public:
    virtual ~JobStore() = default;

    // "sqlite:/var/lib/summarizer/jobs.db" or "postgresql://host:port/db" (without password),
    // for logs and /status.
    virtual std::string Describe() const = 0;

    // --- Submitting and reading -----------------------------------------------------------------

    // Creates a queued job, or returns an existing one instead: the job created earlier with the
    // same Idempotency-Key (kConflict if that key was used for a different content hash), else,
    // unless force_new, a queued, running or done job with the same content hash. A force_new
    // job becomes the one later submissions of that content find. Concurrent identical
    // submissions (threads, processes, replicas) create one job: unique indexes decide, not a
    // check before the insert.
    virtual StoreResult<Submission> Submit(const NewJob& job) = 0;

    virtual StoreResult<Job> GetJob(const std::string& job_id, JobView view = JobView::kStatus) = 0;

    // The queued, running or done job a submission of this content would return; nullopt if none
    // (the synchronous /summarize's cache lookup). Creates nothing.
    virtual StoreResult<std::optional<Job>> FindByContentHash(const std::string& content_hash) = 0;

    // Steps in (level, index, kind) order. kNotFound for an unknown job.
    virtual StoreResult<std::vector<Step>> ListSteps(const std::string& job_id) = 0;

    // Events with seq > after_seq in seq order, at most `limit` (>= 1). kNotFound for an unknown job.
    virtual StoreResult<std::vector<Event>> ListEvents(const std::string& job_id, int64_t after_seq,
                                                       int limit = 1000) = 0;

    // Appends an event (any state, any caller: the route's "queued", a cancel request); returns
    // its seq. The runner's events go with RecordStep or Finish, which check the lease.
    virtual StoreResult<int64_t> AppendEvent(const std::string& job_id, const NewEvent& event) = 0;

    // --- Running: leases --------------------------------------------------------------------------
    // A runner claims a job for `lease`, renews the lease well before it expires (a heartbeat),
    // and finishes or releases it. Every write of a runner names its owner and fails with
    // kConflict once another owner has taken the job over: a runner whose lease expired keeps it
    // until someone else claims it. Lease times are the database's clock on PostgreSQL (replicas'
    // clocks may differ), this process's on SQLite.

    // Claims for `owner` the oldest job (by creation) that is queued or running with an expired
    // lease (its owner died: the caller resumes it from its steps); nullopt if none. The job is
    // returned in JobView::kFull. A claimed job with cancel_requested set is to be finished as
    // cancelled. PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so replicas never wait on or
    // claim the same job.
    virtual StoreResult<std::optional<Job>> ClaimNext(const std::string& owner, std::chrono::milliseconds lease) = 0;

    // Claims this job, as ClaimNext would (queued, or running with an expired lease): for a
    // replica that starts the job it has just accepted without waiting for its next poll.
    // nullopt if it is held by a live lease or finished; kNotFound if there is no such job.
    virtual StoreResult<std::optional<Job>> Claim(const std::string& job_id, const std::string& owner,
                                                  std::chrono::milliseconds lease) = 0;

    // Extends the lease to now + lease. kConflict if the job is not running or another owner
    // holds it. Reports a cancel request.
    virtual StoreResult<LeaseState> RenewLease(const std::string& job_id, const std::string& owner,
                                               std::chrono::milliseconds lease) = 0;

    // Gives a running job back (a graceful shutdown): queued again, claimable at once by anyone;
    // cancelled instead if a cancel was requested. Its steps stay.
    virtual StoreStatus ReleaseLease(const std::string& job_id, const std::string& owner) = 0;

    // Asks for a job's cancellation, from any replica. A queued job is cancelled at once; a
    // running one gets cancel_requested, which its owner sees in RenewLease or IsCancelRequested
    // and answers with Finish(kCancelled); a finished job is left as it is. Returns the state
    // after the call.
    virtual StoreResult<JobState> RequestCancel(const std::string& job_id) = 0;

    virtual StoreResult<bool> IsCancelRequested(const std::string& job_id) = 0;

    // Ends the leases of running jobs held by anyone but `except_owner` now, so that they can be
    // claimed at once; returns how many. For a process that knows it is the only one using the
    // store (a SQLite file it holds an exclusive lock beside): the owners of those leases are
    // processes that died, and their jobs need not wait for the leases to run out.
    virtual StoreResult<int64_t> ExpireLeases(const std::string& except_owner) = 0;

    // --- Running: the owner's writes (kConflict unless running and held by `owner`) -------------

    virtual StoreStatus SavePlan(const std::string& job_id, const std::string& owner, const PlanUpdate& plan) = 0;

    virtual StoreStatus UpdateProgress(const std::string& job_id, const std::string& owner,
                                       const JobProgress& progress) = 0;

    // Commits a finished step, and in the same transaction the event announcing it (returns its
    // seq; 0 without one) and the progress. kConflict if the step is already recorded.
    virtual StoreResult<int64_t> RecordStep(const std::string& job_id, const std::string& owner, const Step& step,
                                            const std::optional<NewEvent>& event = std::nullopt,
                                            const std::optional<JobProgress>& progress = std::nullopt) = 0;

    // Ends a running job with its result or error, and appends its last event in the same
    // transaction (returns its seq; 0 without one). A failed or cancelled job is no longer found by
    // its content hash. kInternal if outcome.state is not a finished state.
    virtual StoreResult<int64_t> Finish(const std::string& job_id, const std::string& owner, const JobOutcome& outcome,
                                        const std::optional<NewEvent>& event = std::nullopt) = 0;

    // --- Housekeeping -------------------------------------------------------------------------

    // Deletes finished jobs (with their steps and events) that finished more than max_age ago,
    // then the oldest finished ones until content_bytes <= max_total_bytes. Queued and running
    // jobs are never deleted, so content_bytes may stay above the limit. max_age <= 0 or
    // max_total_bytes <= 0: that rule is off. SQLite also gives the freed pages back to the file
    // system (incremental vacuum).
    virtual StoreResult<RetentionReport> EnforceRetention(std::chrono::milliseconds max_age,
                                                          int64_t max_total_bytes) = 0;

    virtual StoreResult<StoreStats> Stats() = 0;
};

struct JobStoreOptions {
    // Connections a store opens at most; a call holds one, more calls at once wait for one.
    // Raise with the number of threads that use the store at once (runners, SSE streams).
    int max_connections = 4;

    // SQLite: how long a write waits for another connection or process holding the write lock
    // before failing with kUnavailable. PostgreSQL: lock_timeout, the same for row locks.
    std::chrono::milliseconds busy_timeout{5000};

    // SQLite: synchronous=FULL fsyncs the WAL at every commit, so a committed step survives a
    // power loss; false (NORMAL) survives a process crash only, with one fsync less per commit.
    bool sqlite_full_sync = true;

    // SQLite: PRAGMA quick_check when the store opens, so a damaged file stops start-up with a
    // message naming it instead of failing jobs later. Reads the whole file once (retention
    // bounds its size); turn off for a very large file whose start-up time matters more.
    bool sqlite_check_on_open = true;

    // SQLite: PRAGMA max_page_count when > 0: the file cannot grow beyond it, and writes fail as on
    // a full disk. For tests that have no small file system to fill.
    int64_t sqlite_max_page_count = 0;

    // PostgreSQL: how long connecting may take before the call fails with kUnavailable.
    std::chrono::seconds pg_connect_timeout{5};
};

// A postgresql:// or postgres:// URL opens OpenPgJobStore, anything else is a file path for
// OpenSqliteJobStore. Creates the tables if missing (the same on every replica, safely at once).
// Errors: kUnavailable (cannot open, create or reach), kCorrupt (the file is not a sound SQLite
// database; the message names it), kInternal (the schema is newer than this binary).
StoreResult<std::unique_ptr<JobStore>> OpenJobStore(const std::string& database, const JobStoreOptions& options = {});

// Creates the file if missing; WAL mode, foreign keys on, incremental auto-vacuum. Fails with
// kUnavailable if the file can only be opened read-only or its directory is not writable (the WAL
// files live beside it).
StoreResult<std::unique_ptr<JobStore>> OpenSqliteJobStore(const std::string& path, const JobStoreOptions& options = {});

// Any libpq connection URL. The tables go into the first schema of the search_path, so
// ?options=-csearch_path%3Dname keeps several stores in one database apart (the tests do).
StoreResult<std::unique_ptr<JobStore>> OpenPgJobStore(const std::string& url, const JobStoreOptions& options = {});

}  // namespace summarizer
