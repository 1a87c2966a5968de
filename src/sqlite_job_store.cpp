// The SQLite job store: one file in WAL mode, a pool of connections, every write in a
// BEGIN IMMEDIATE transaction (the write lock is taken up front, so two writers never deadlock
// upgrading a read lock, and the busy timeout applies to the whole wait).
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>

#include "job_store_internal.hpp"
#include "summarizer/job_store.hpp"

namespace summarizer {
namespace {

using namespace job_store_internal;  // NOLINT(google-build-using-namespace): this file's own helpers

constexpr int kSchemaVersion = 1;

// auto_vacuum must be set before the first table exists; it is a no-op on an existing file.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    finished_ms      INTEGER,
    input_text       TEXT NOT NULL,
    options_json     TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    dedup_hash       TEXT,
    idempotency_key  TEXT,
    plan_json        TEXT NOT NULL DEFAULT '',
    replanned        TEXT NOT NULL DEFAULT '',
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER NOT NULL DEFAULT 0,
    progress_level   INTEGER NOT NULL DEFAULT 0,
    result_json      TEXT NOT NULL DEFAULT '',
    error_json       TEXT NOT NULL DEFAULT '',
    owner            TEXT NOT NULL DEFAULT '',
    lease_expires_ms INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    claims           INTEGER NOT NULL DEFAULT 0,
    last_event_seq   INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_dedup_hash ON jobs (dedup_hash) WHERE dedup_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (state, created_ms);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_steps (
    job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    level         INTEGER NOT NULL,
    idx           INTEGER NOT NULL,
    output        TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    metadata_json TEXT NOT NULL,
    recorded_ms   INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind, level, idx)
);
CREATE TABLE IF NOT EXISTS job_events (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    data_json  TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);
)sql";

// The columns ReadJob expects, in its order; the status view leaves out the two large ones.
#define SUMMARIZER_JOB_COLUMNS(input, plan)                                                                          \
    "id, state, created_ms, updated_ms, started_ms, finished_ms, " input                                             \
    ", options_json, content_hash, idempotency_key, " plan                                                           \
    ", replanned, progress_done, progress_total, progress_level, result_json, error_json, owner, lease_expires_ms, " \
    "cancel_requested, claims, last_event_seq, bytes"
constexpr const char* kFullColumns = SUMMARIZER_JOB_COLUMNS("input_text", "plan_json");
constexpr const char* kStatusColumns = SUMMARIZER_JOB_COLUMNS("''", "''");
#undef SUMMARIZER_JOB_COLUMNS

std::string Columns(JobView view) { return view == JobView::kFull ? kFullColumns : kStatusColumns; }

StoreFailure FailureOf(int rc) {
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_FULL:
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
        case SQLITE_PERM:
        case SQLITE_NOMEM:
        case SQLITE_PROTOCOL:
        case SQLITE_NOLFS:
            return StoreFailure::kUnavailable;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return StoreFailure::kCorrupt;
        case SQLITE_CONSTRAINT:
            return StoreFailure::kConflict;
        default:
            return StoreFailure::kInternal;
    }
}

// Why the file cannot be opened or written, in the operator's terms; "" if the permissions do not
// explain it. SQLite's own message ("unable to open database file") does not say which part fails,
// and it also needs to create path-wal and path-shm in the file's directory.
std::string DiagnoseAccess(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::path file(path);
    const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, error)) return "the directory " + dir.string() + " does not exist";
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
        return "the directory " + dir.string() + " is not writable (the WAL files are created beside the database)";
    }
    if (fs::exists(file, error) && access(file.c_str(), R_OK | W_OK) != 0)
        return "the file is not readable and writable";
    return "";
}

class Connection;

// A cached prepared statement in use: reset and unbound when it goes out of scope. Text is bound
// without a copy (SQLITE_STATIC): the bound strings must outlive the Statement.
class Statement {
public:
    Statement(Connection* connection, sqlite3_stmt* stmt) : connection_(connection), stmt_(stmt) {}
    Statement(Statement&& other) noexcept
        : connection_(other.connection_), stmt_(std::exchange(other.stmt_, nullptr)), bind_error_(other.bind_error_) {}
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() {
        if (stmt_ == nullptr) return;
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

    Statement& Bind(int index, std::string_view text) {
        // A null data pointer would bind NULL, not an empty string.
        Check(sqlite3_bind_text64(stmt_, index, text.data() != nullptr ? text.data() : "", text.size(), SQLITE_STATIC,
                                  SQLITE_UTF8));
        return *this;
    }
    Statement& Bind(int index, int64_t value) {
        Check(sqlite3_bind_int64(stmt_, index, value));
        return *this;
    }
    Statement& BindNull(int index) {
        Check(sqlite3_bind_null(stmt_, index));
        return *this;
    }
    // Empty text binds NULL (the optional columns: idempotency_key).
    Statement& BindOrNull(int index, std::string_view text) {
        return text.empty() ? BindNull(index) : Bind(index, text);
    }

    // true: a row is there to read; false: done.
    StoreResult<bool> Step();
    // Runs to completion, ignoring rows.
    StoreStatus Run();

    std::string Text(int column) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
    }
    int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
    bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
    std::optional<StoreTime> Time(int column) const {
        if (IsNull(column)) return std::nullopt;
        return FromMillis(Int(column));
    }

private:
    void Check(int rc) {
        if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
    }

    Connection* connection_;
    sqlite3_stmt* stmt_;
    int bind_error_ = SQLITE_OK;
};

class Connection {
public:
    Connection(std::string path, const JobStoreOptions& options) : path_(std::move(path)), options_(options) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
        for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
        sqlite3_close_v2(db_);
    }

    // Opens and configures the connection. `first`: also sets the file up (WAL, schema, check).
    StoreStatus Open(bool first);

    StoreError ErrorFrom(int rc, std::string_view during) const {
        std::string message = "job store " + path_ + ": ";
        const int primary = rc & 0xff;
        if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
            message += "the database is locked by another connection or process (waited " +
                       std::to_string(options_.busy_timeout.count()) + " ms)";
        } else if (primary == SQLITE_FULL) {
            message += "the disk is full (or the file reached its size limit)";
        } else {
            message += db_ != nullptr && sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            if (primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY || primary == SQLITE_PERM) {
                if (const std::string why = DiagnoseAccess(path_); !why.empty()) message += ": " + why;
            } else if (const int system_errno = db_ != nullptr ? sqlite3_system_errno(db_) : 0;
                       system_errno != 0 && primary == SQLITE_IOERR) {
                message += std::string(" (") + std::strerror(system_errno) + ")";
            }
        }
        message += " [" + std::string(during) + "; SQLite error " + std::to_string(rc) + "]";
        if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
            message += ": not a sound SQLite database; restore it from a backup, or move it away to start empty";
        }
        return Fail(FailureOf(rc), std::move(message));
    }

    StoreResult<Statement> Prepare(const std::string& sql) {
        auto it = cache_.find(sql);
        if (it == cache_.end()) {
            sqlite3_stmt* stmt = nullptr;
            const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                              &stmt, nullptr);
            if (rc != SQLITE_OK) return ErrorFrom(rc, "preparing " + sql.substr(0, 60));
            it = cache_.emplace(sql, stmt).first;
        }
        return Statement(this, it->second);
    }

    // For statements run once (schema, pragmas); `sql` may hold several.
    StoreStatus Exec(const char* sql, std::string_view during) {
        const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) return ErrorFrom(rc, during);
        return StoreOk();
    }

    // The first column of the first row of a one-off query (a PRAGMA).
    StoreResult<std::string> QueryText(const char* sql) {
        sqlite3_stmt* stmt = nullptr;
        int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
        if (rc != SQLITE_OK) return ErrorFrom(rc, sql);
        std::string value;
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
            if (p != nullptr) value = p;
            while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            }
        }
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE) return ErrorFrom(rc, sql);
        return value;
    }

    void RollbackIfOpen() {
        // SQLite may already have rolled back (a full disk, an I/O error); then autocommit is on.
        if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }

    sqlite3* db() { return db_; }
    const std::string& path() const { return path_; }

private:
    StoreStatus SetUpFile();

    std::string path_;
    JobStoreOptions options_;
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

StoreResult<bool> Statement::Step() {
    if (bind_error_ != SQLITE_OK) return connection_->ErrorFrom(bind_error_, "binding parameters");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return connection_->ErrorFrom(rc,
                                  sqlite3_sql(stmt_) != nullptr ? std::string(sqlite3_sql(stmt_)).substr(0, 60) : "");
}

StoreStatus Statement::Run() {
    for (;;) {
        StoreResult<bool> row = Step();
        if (!row.ok()) return row.error();
        if (!*row) return StoreOk();
    }
}

StoreStatus Connection::Open(bool first) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) return ErrorFrom(rc, "cannot open");
    sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));
    if (sqlite3_db_readonly(db_, "main") == 1) {
        const std::string why = DiagnoseAccess(path_);
        return Fail(StoreFailure::kUnavailable,
                    "job store " + path_ + ": the file can only be opened read-only" + (why.empty() ? "" : ": " + why));
    }
    if (first) {
        if (StoreStatus s = SetUpFile(); !s.ok()) return s;
    }
    if (StoreStatus s = Exec(options_.sqlite_full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                             "setting synchronous");
        !s.ok()) {
        return s;
    }
    if (StoreStatus s = Exec("PRAGMA foreign_keys=ON", "enabling foreign keys"); !s.ok()) return s;
    if (options_.sqlite_max_page_count > 0) {
        const std::string pragma = "PRAGMA max_page_count=" + std::to_string(options_.sqlite_max_page_count);
        if (StoreResult<std::string> r = QueryText(pragma.c_str()); !r.ok()) return r.error();
    }
    return StoreOk();
}

// Once per store: the journal mode and the schema are properties of the file.
StoreStatus Connection::SetUpFile() {
    // The first read of the file: a file that is not a database fails here (SQLITE_NOTADB).
    StoreResult<std::string> version = QueryText("PRAGMA user_version");
    if (!version.ok()) return version.error();
    if (std::stoi(*version) > kSchemaVersion) {
        return Fail(StoreFailure::kInternal, "job store " + path_ + ": schema version " + *version +
                                                 " is newer than this binary's (" + std::to_string(kSchemaVersion) +
                                                 ")");
    }
    if (StoreStatus s = Exec("PRAGMA auto_vacuum=INCREMENTAL", "setting auto_vacuum"); !s.ok()) return s;
    StoreResult<std::string> mode = QueryText("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return mode.error();
    if (*mode != "wal") {
        return Fail(StoreFailure::kUnavailable, "job store " + path_ + ": cannot use WAL mode (journal_mode is " +
                                                    *mode + "); is the file system a network one?");
    }
    if (options_.sqlite_check_on_open) {
        StoreResult<std::string> check = QueryText("PRAGMA quick_check");
        if (!check.ok()) return check.error();
        if (*check != "ok") {
            return Fail(StoreFailure::kCorrupt, "job store " + path_ +
                                                    ": the database is damaged (quick_check: " + *check +
                                                    "); restore it from a backup, or move it away to start empty");
        }
    }
    if (StoreStatus s = Exec("BEGIN IMMEDIATE", "creating the schema"); !s.ok()) return s;
    StoreStatus created = Exec(kSchema, "creating the schema");
    if (created.ok()) {
        created = Exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str(), "setting user_version");
    }
    if (created.ok()) created = Exec("COMMIT", "creating the schema");
    if (!created.ok()) RollbackIfOpen();
    return created;
}

Job ReadJob(const Statement& row) {
    Job job;
    job.id = row.Text(0);
    job.state = ParseJobState(row.Text(1)).value_or(JobState::kFailed);
    job.created = FromMillis(row.Int(2));
    job.updated = FromMillis(row.Int(3));
    job.started = row.Time(4);
    job.finished = row.Time(5);
    job.text = row.Text(6);
    job.options_json = row.Text(7);
    job.content_hash = row.Text(8);
    job.idempotency_key = row.Text(9);
    job.plan_json = row.Text(10);
    job.replanned = row.Text(11);
    job.progress = JobProgress{row.Int(12), row.Int(13), static_cast<int>(row.Int(14))};
    job.result_json = row.Text(15);
    job.error_json = row.Text(16);
    job.owner = row.Text(17);
    job.lease_expires = row.Time(18);
    job.cancel_requested = row.Int(19) != 0;
    job.claims = row.Int(20);
    job.last_event_seq = row.Int(21);
    job.bytes = row.Int(22);
    return job;
}

// Runs `body` in a transaction: BEGIN IMMEDIATE for writes, a plain (read) BEGIN otherwise.
// Commits if it succeeded, rolls back if not.
template <typename T, typename Body>
StoreResult<T> InTransaction(Connection& c, bool write, Body&& body) {
    if (StoreStatus s = c.Exec(write ? "BEGIN IMMEDIATE" : "BEGIN", "beginning a transaction"); !s.ok()) {
        return s.error();
    }
    StoreResult<T> result = body();
    if (!result.ok()) {
        c.RollbackIfOpen();
        return result;
    }
    if (StoreStatus s = c.Exec("COMMIT", "committing"); !s.ok()) {
        c.RollbackIfOpen();
        return s.error();
    }
    return result;
}

class SqliteJobStore final : public JobStore {
public:
    SqliteJobStore(std::string path, const JobStoreOptions& options)
        : path_(std::move(path)),
          options_(options),
          pool_(options.max_connections, [this]() { return OpenConnection(false); }) {}

    // Opens the first connection (which sets the file up) and keeps it in the pool.
    StoreStatus Init() {
        StoreResult<std::unique_ptr<Connection>> first = OpenConnection(true);
        if (!first.ok()) return first.error();
        pool_.Add(std::move(first).value());
        return StoreOk();
    }

    std::string Describe() const override { return "sqlite:" + path_; }

    StoreResult<Submission> Submit(const NewJob& job) override {
        if (StoreStatus s = ValidateNewJob(job); !s.ok()) return s.error();
        StoreResult<std::string> id = NewJobId();
        if (!id.ok()) return id.error();
        return WithConnection<Submission>(true, [&](Connection& c) -> StoreResult<Submission> {
            // Within BEGIN IMMEDIATE nobody else writes, so these look-ups cannot go stale; the
            // unique indexes and ON CONFLICT still guard the insert.
            if (StoreResult<std::optional<Submission>> found = FindExisting(c, job); !found.ok() || *found) {
                if (!found.ok()) return found.error();
                return std::move(**found);
            }
            if (job.force_new) {
                StoreResult<Statement> clear = c.Prepare("UPDATE jobs SET dedup_hash = NULL WHERE dedup_hash = ?1");
                if (!clear.ok()) return clear.error();
                clear->Bind(1, job.content_hash);
                if (StoreStatus s = clear->Run(); !s.ok()) return s.error();
            }
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> insert = c.Prepare(
                "INSERT INTO jobs (id, state, created_ms, updated_ms, input_text, options_json, content_hash, "
                "dedup_hash, idempotency_key, bytes) VALUES (?1, 'queued', ?2, ?2, ?3, ?4, ?5, ?5, ?6, ?7) "
                "ON CONFLICT DO NOTHING RETURNING " +
                Columns(JobView::kStatus));
            if (!insert.ok()) return insert.error();
            insert->Bind(1, *id).Bind(2, now).Bind(3, job.text).Bind(4, job.options_json).Bind(5, job.content_hash);
            insert->BindOrNull(6, job.idempotency_key).Bind(7, NewJobBytes(job));
            StoreResult<bool> row = insert->Step();
            if (!row.ok()) return row.error();
            if (*row) return Submission{ReadJob(*insert), SubmitOutcome::kCreated};
            return Fail(StoreFailure::kInternal, "Submit: the insert conflicted with no job to return");
        });
    }

    StoreResult<Job> GetJob(const std::string& job_id, JobView view) override {
        return WithConnection<Job>(false, [&](Connection& c) -> StoreResult<Job> {
            StoreResult<std::optional<Job>> job = SelectJob(c, "id", job_id, view);
            if (!job.ok()) return job.error();
            if (!*job) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return std::move(**job);
        });
    }

    StoreResult<std::optional<Job>> FindByContentHash(const std::string& content_hash) override {
        return WithConnection<std::optional<Job>>(
            false, [&](Connection& c) { return SelectJob(c, "dedup_hash", content_hash, JobView::kStatus); });
    }

    StoreResult<std::vector<Step>> ListSteps(const std::string& job_id) override {
        return WithConnection<std::vector<Step>>(false, [&](Connection& c) -> StoreResult<std::vector<Step>> {
            if (StoreStatus s = CheckExists(c, job_id); !s.ok()) return s.error();
            StoreResult<Statement> select = c.Prepare(
                "SELECT kind, level, idx, output, prompt_tokens, output_tokens, metadata_json, recorded_ms "
                "FROM job_steps WHERE job_id = ?1 ORDER BY level, idx, kind");
            if (!select.ok()) return select.error();
            select->Bind(1, job_id);
            std::vector<Step> steps;
            for (;;) {
                StoreResult<bool> row = select->Step();
                if (!row.ok()) return row.error();
                if (!*row) break;
                Step step;
                step.key = StepKey{select->Text(0), static_cast<int>(select->Int(1)), static_cast<int>(select->Int(2))};
                step.output = select->Text(3);
                step.prompt_tokens = select->Int(4);
                step.output_tokens = select->Int(5);
                step.metadata_json = select->Text(6);
                step.recorded = FromMillis(select->Int(7));
                steps.push_back(std::move(step));
            }
            return steps;
        });
    }

    StoreResult<std::vector<Event>> ListEvents(const std::string& job_id, int64_t after_seq, int limit) override {
        if (StoreStatus s = ValidateLimit(limit); !s.ok()) return s.error();
        return WithConnection<std::vector<Event>>(false, [&](Connection& c) -> StoreResult<std::vector<Event>> {
            if (StoreStatus s = CheckExists(c, job_id); !s.ok()) return s.error();
            StoreResult<Statement> select = c.Prepare(
                "SELECT seq, name, data_json, created_ms FROM job_events WHERE job_id = ?1 AND seq > ?2 "
                "ORDER BY seq LIMIT ?3");
            if (!select.ok()) return select.error();
            select->Bind(1, job_id).Bind(2, after_seq).Bind(3, static_cast<int64_t>(limit));
            std::vector<Event> events;
            for (;;) {
                StoreResult<bool> row = select->Step();
                if (!row.ok()) return row.error();
                if (!*row) break;
                events.push_back(Event{select->Int(0), select->Text(1), select->Text(2), FromMillis(select->Int(3))});
            }
            return events;
        });
    }

    StoreResult<int64_t> AppendEvent(const std::string& job_id, const NewEvent& event) override {
        return WithConnection<int64_t>(true, [&](Connection& c) -> StoreResult<int64_t> {
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> bump = c.Prepare(
                "UPDATE jobs SET last_event_seq = last_event_seq + 1, bytes = bytes + ?2, updated_ms = ?3 "
                "WHERE id = ?1 RETURNING last_event_seq");
            if (!bump.ok()) return bump.error();
            bump->Bind(1, job_id).Bind(2, EventBytes(event)).Bind(3, now);
            StoreResult<bool> row = bump->Step();
            if (!row.ok()) return row.error();
            if (!*row) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            const int64_t seq = bump->Int(0);
            if (StoreStatus s = InsertEvent(c, job_id, seq, event, now); !s.ok()) return s.error();
            return seq;
        });
    }

    StoreResult<std::optional<Job>> ClaimNext(const std::string& owner, std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return WithConnection<std::optional<Job>>(true, [&](Connection& c) -> StoreResult<std::optional<Job>> {
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> claim = c.Prepare(
                "UPDATE jobs SET state = 'running', owner = ?1, lease_expires_ms = ?2 + ?3, "
                "started_ms = COALESCE(started_ms, ?2), updated_ms = ?2, claims = claims + 1 "
                "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_expires_ms <= "
                "?2) "
                "ORDER BY created_ms, id LIMIT 1) RETURNING " +
                Columns(JobView::kFull));
            if (!claim.ok()) return claim.error();
            claim->Bind(1, owner).Bind(2, now).Bind(3, static_cast<int64_t>(lease.count()));
            StoreResult<bool> row = claim->Step();
            if (!row.ok()) return row.error();
            if (!*row) return std::optional<Job>();
            return std::optional<Job>(ReadJob(*claim));
        });
    }

    StoreResult<std::optional<Job>> Claim(const std::string& job_id, const std::string& owner,
                                          std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return WithConnection<std::optional<Job>>(true, [&](Connection& c) -> StoreResult<std::optional<Job>> {
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> claim = c.Prepare(
                "UPDATE jobs SET state = 'running', owner = ?1, lease_expires_ms = ?2 + ?3, "
                "started_ms = COALESCE(started_ms, ?2), updated_ms = ?2, claims = claims + 1 "
                "WHERE id = ?4 AND (state = 'queued' OR (state = 'running' AND lease_expires_ms <= ?2)) "
                "RETURNING " +
                Columns(JobView::kFull));
            if (!claim.ok()) return claim.error();
            claim->Bind(1, owner).Bind(2, now).Bind(3, static_cast<int64_t>(lease.count())).Bind(4, job_id);
            StoreResult<bool> row = claim->Step();
            if (!row.ok()) return row.error();
            if (*row) return std::optional<Job>(ReadJob(*claim));
            if (StoreStatus s = CheckExists(c, job_id); !s.ok()) return s.error();
            return std::optional<Job>();
        });
    }

    StoreResult<LeaseState> RenewLease(const std::string& job_id, const std::string& owner,
                                       std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return WithConnection<LeaseState>(true, [&](Connection& c) -> StoreResult<LeaseState> {
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> renew = c.Prepare(
                "UPDATE jobs SET lease_expires_ms = ?3 + ?4, updated_ms = ?3 "
                "WHERE id = ?1 AND owner = ?2 AND state = 'running' RETURNING lease_expires_ms, cancel_requested");
            if (!renew.ok()) return renew.error();
            renew->Bind(1, job_id).Bind(2, owner).Bind(3, now).Bind(4, static_cast<int64_t>(lease.count()));
            StoreResult<bool> row = renew->Step();
            if (!row.ok()) return row.error();
            if (!*row) return NotOwned(c, job_id, owner);
            return LeaseState{FromMillis(renew->Int(0)), renew->Int(1) != 0};
        });
    }

    StoreStatus ReleaseLease(const std::string& job_id, const std::string& owner) override {
        return WithConnection<Unit>(true, [&](Connection& c) -> StoreStatus {
            StoreResult<Statement> release = c.Prepare(
                "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
                "finished_ms = CASE WHEN cancel_requested THEN ?3 END, "
                "dedup_hash = CASE WHEN cancel_requested THEN NULL ELSE dedup_hash END, "
                "owner = '', lease_expires_ms = NULL, updated_ms = ?3 "
                "WHERE id = ?1 AND owner = ?2 AND state = 'running' RETURNING id");
            if (!release.ok()) return release.error();
            release->Bind(1, job_id).Bind(2, owner).Bind(3, ToMillis(Now()));
            StoreResult<bool> row = release->Step();
            if (!row.ok()) return row.error();
            if (!*row) return NotOwned(c, job_id, owner);
            return StoreOk();
        });
    }

    StoreResult<JobState> RequestCancel(const std::string& job_id) override {
        return WithConnection<JobState>(true, [&](Connection& c) -> StoreResult<JobState> {
            StoreResult<Statement> cancel = c.Prepare(
                "UPDATE jobs SET "
                "state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, "
                "finished_ms = CASE WHEN state = 'queued' THEN ?2 ELSE finished_ms END, "
                "dedup_hash = CASE WHEN state = 'queued' THEN NULL ELSE dedup_hash END, "
                "cancel_requested = CASE WHEN state IN ('queued', 'running') THEN 1 ELSE cancel_requested END, "
                "updated_ms = ?2 WHERE id = ?1 RETURNING state");
            if (!cancel.ok()) return cancel.error();
            cancel->Bind(1, job_id).Bind(2, ToMillis(Now()));
            StoreResult<bool> row = cancel->Step();
            if (!row.ok()) return row.error();
            if (!*row) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return ParseJobState(cancel->Text(0)).value_or(JobState::kFailed);
        });
    }

    StoreResult<int64_t> ExpireLeases(const std::string& except_owner) override {
        return WithConnection<int64_t>(true, [&](Connection& c) -> StoreResult<int64_t> {
            const int64_t now = ToMillis(Now());
            StoreResult<Statement> expire = c.Prepare(
                "UPDATE jobs SET lease_expires_ms = ?2 WHERE state = 'running' AND owner <> ?1 AND "
                "lease_expires_ms > ?2");
            if (!expire.ok()) return expire.error();
            expire->Bind(1, except_owner).Bind(2, now);
            if (StoreStatus s = expire->Run(); !s.ok()) return s.error();
            return static_cast<int64_t>(sqlite3_changes(c.db()));
        });
    }

    StoreResult<bool> IsCancelRequested(const std::string& job_id) override {
        return WithConnection<bool>(false, [&](Connection& c) -> StoreResult<bool> {
            StoreResult<Statement> select = c.Prepare("SELECT cancel_requested FROM jobs WHERE id = ?1");
            if (!select.ok()) return select.error();
            select->Bind(1, job_id);
            StoreResult<bool> row = select->Step();
            if (!row.ok()) return row.error();
            if (!*row) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return select->Int(0) != 0;
        });
    }

    StoreStatus SavePlan(const std::string& job_id, const std::string& owner, const PlanUpdate& plan) override {
        return WithConnection<Unit>(true, [&](Connection& c) -> StoreStatus {
            int64_t discarded_bytes = 0;
            if (plan.discard_steps) {
                StoreResult<Statement> remove = c.Prepare(
                    "DELETE FROM job_steps WHERE job_id = ?1 AND EXISTS "
                    "(SELECT 1 FROM jobs WHERE id = ?1 AND owner = ?2 AND state = 'running') "
                    "RETURNING length(CAST(output AS BLOB)) + length(CAST(metadata_json AS BLOB))");
                if (!remove.ok()) return remove.error();
                remove->Bind(1, job_id).Bind(2, owner);
                for (;;) {
                    StoreResult<bool> row = remove->Step();
                    if (!row.ok()) return row.error();
                    if (!*row) break;
                    discarded_bytes += remove->Int(0);
                }
            }
            StoreResult<Statement> save = c.Prepare(
                "UPDATE jobs SET bytes = bytes - length(CAST(plan_json AS BLOB)) - length(CAST(replanned AS BLOB)) "
                "+ ?3 - ?4, plan_json = ?5, replanned = ?6, updated_ms = ?7 "
                "WHERE id = ?1 AND owner = ?2 AND state = 'running' RETURNING id");
            if (!save.ok()) return save.error();
            save->Bind(1, job_id).Bind(2, owner);
            save->Bind(3, static_cast<int64_t>(plan.plan_json.size() + plan.replanned.size())).Bind(4, discarded_bytes);
            save->Bind(5, plan.plan_json).Bind(6, plan.replanned).Bind(7, ToMillis(Now()));
            StoreResult<bool> row = save->Step();
            if (!row.ok()) return row.error();
            if (!*row) return NotOwned(c, job_id, owner);
            return StoreOk();
        });
    }

    StoreStatus UpdateProgress(const std::string& job_id, const std::string& owner,
                               const JobProgress& progress) override {
        return WithConnection<Unit>(true, [&](Connection& c) -> StoreStatus {
            StoreResult<int64_t> seq = TouchOwned(c, job_id, owner, 0, std::nullopt, progress);
            if (!seq.ok()) return seq.error();
            return StoreOk();
        });
    }

    StoreResult<int64_t> RecordStep(const std::string& job_id, const std::string& owner, const Step& step,
                                    const std::optional<NewEvent>& event,
                                    const std::optional<JobProgress>& progress) override {
        if (StoreStatus s = ValidateStep(step); !s.ok()) return s.error();
        return WithConnection<int64_t>(true, [&](Connection& c) -> StoreResult<int64_t> {
            const int64_t now = ToMillis(Now());
            const int64_t bytes = StepBytes(step) + (event ? EventBytes(*event) : 0);
            StoreResult<int64_t> seq = TouchOwned(c, job_id, owner, bytes, event, progress);
            if (!seq.ok()) return seq;
            StoreResult<Statement> insert = c.Prepare(
                "INSERT INTO job_steps (job_id, kind, level, idx, output, prompt_tokens, output_tokens, metadata_json, "
                "recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING");
            if (!insert.ok()) return insert.error();
            insert->Bind(1, job_id).Bind(2, step.key.kind).Bind(3, static_cast<int64_t>(step.key.level));
            insert->Bind(4, static_cast<int64_t>(step.key.index)).Bind(5, step.output).Bind(6, step.prompt_tokens);
            insert->Bind(7, step.output_tokens).Bind(8, step.metadata_json).Bind(9, now);
            if (StoreStatus s = insert->Run(); !s.ok()) return s.error();
            if (sqlite3_changes(c.db()) == 0) {
                return Fail(StoreFailure::kConflict, "job " + job_id + ": step " + step.key.kind + " " +
                                                         std::to_string(step.key.level) + "." +
                                                         std::to_string(step.key.index) + " is already recorded");
            }
            if (event) {
                if (StoreStatus s = InsertEvent(c, job_id, *seq, *event, now); !s.ok()) return s.error();
            }
            return *seq;
        });
    }

    StoreResult<int64_t> Finish(const std::string& job_id, const std::string& owner, const JobOutcome& outcome,
                                const std::optional<NewEvent>& event) override {
        if (!IsFinished(outcome.state)) {
            return Fail(StoreFailure::kInternal,
                        "Finish: " + std::string(JobStateName(outcome.state)) + " is not a finished state");
        }
        return WithConnection<int64_t>(true, [&](Connection& c) -> StoreResult<int64_t> {
            const int64_t now = ToMillis(Now());
            const std::string_view state = JobStateName(outcome.state);
            StoreResult<Statement> finish = c.Prepare(
                "UPDATE jobs SET state = ?3, result_json = ?4, error_json = ?5, finished_ms = ?6, updated_ms = ?6, "
                "lease_expires_ms = NULL, dedup_hash = CASE WHEN ?3 = 'done' THEN dedup_hash END, "
                "bytes = bytes - length(CAST(result_json AS BLOB)) - length(CAST(error_json AS BLOB)) + ?7, "
                "last_event_seq = last_event_seq + ?8 "
                "WHERE id = ?1 AND owner = ?2 AND state = 'running' RETURNING last_event_seq");
            if (!finish.ok()) return finish.error();
            finish->Bind(1, job_id).Bind(2, owner).Bind(3, state).Bind(4, outcome.result_json);
            finish->Bind(5, outcome.error_json).Bind(6, now);
            finish->Bind(7, OutcomeBytes(outcome) + (event ? EventBytes(*event) : 0)).Bind(8, int64_t{event ? 1 : 0});
            StoreResult<bool> row = finish->Step();
            if (!row.ok()) return row.error();
            if (!*row) return NotOwned(c, job_id, owner);
            if (!event) return int64_t{0};
            const int64_t seq = finish->Int(0);
            if (StoreStatus s = InsertEvent(c, job_id, seq, *event, now); !s.ok()) return s.error();
            return seq;
        });
    }

    StoreResult<RetentionReport> EnforceRetention(std::chrono::milliseconds max_age, int64_t max_total_bytes) override {
        StoreResult<RetentionReport> report =
            WithConnection<RetentionReport>(true, [&](Connection& c) -> StoreResult<RetentionReport> {
                RetentionReport r;
                if (max_age.count() > 0) {
                    StoreResult<Statement> old = c.Prepare(
                        "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1 "
                        "AND state IN ('done', 'failed', 'cancelled')");
                    if (!old.ok()) return old.error();
                    old->Bind(1, ToMillis(Now()) - static_cast<int64_t>(max_age.count()));
                    if (StoreStatus s = old->Run(); !s.ok()) return s.error();
                    r.deleted_by_age = sqlite3_changes64(c.db());
                }
                if (max_total_bytes > 0) {
                    StoreResult<int64_t> deleted = DeleteOldestBeyond(c, max_total_bytes);
                    if (!deleted.ok()) return deleted.error();
                    r.deleted_by_size = *deleted;
                }
                return r;
            });
        if (!report.ok()) return report;
        if (report->deleted_by_age + report->deleted_by_size > 0) {
            // Give the freed pages back to the file system; a failure here loses nothing.
            (void)WithConnection<Unit>(
                false,
                [](Connection& c) -> StoreStatus { return c.Exec("PRAGMA incremental_vacuum", "incremental vacuum"); },
                /*transaction=*/false);
        }
        StoreResult<StoreStats> stats = Stats();
        if (!stats.ok()) return stats.error();
        report->after = *stats;
        return report;
    }

    StoreResult<StoreStats> Stats() override {
        return WithConnection<StoreStats>(false, [&](Connection& c) -> StoreResult<StoreStats> {
            StoreStats stats;
            StoreResult<Statement> select =
                c.Prepare("SELECT state, COUNT(*), COALESCE(SUM(bytes), 0) FROM jobs GROUP BY state");
            if (!select.ok()) return select.error();
            for (;;) {
                StoreResult<bool> row = select->Step();
                if (!row.ok()) return row.error();
                if (!*row) break;
                if (std::optional<JobState> state = ParseJobState(select->Text(0))) {
                    stats.jobs[static_cast<int>(*state)] = select->Int(1);
                }
                stats.content_bytes += select->Int(2);
            }
            StoreResult<Statement> size =
                c.Prepare("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
            if (!size.ok()) return size.error();
            StoreResult<bool> row = size->Step();
            if (!row.ok()) return row.error();
            if (*row) stats.database_bytes = size->Int(0);
            return stats;
        });
    }

private:
    StoreResult<std::unique_ptr<Connection>> OpenConnection(bool first) {
        auto connection = std::make_unique<Connection>(path_, options_);
        if (StoreStatus s = connection->Open(first); !s.ok()) return s.error();
        return connection;
    }

    // Takes a connection and runs `body` on it, in a transaction unless told otherwise.
    template <typename T, typename Body>
    StoreResult<T> WithConnection(bool write, Body&& body, bool transaction = true) {
        StoreResult<ConnectionPool<Connection>::Handle> handle = pool_.Acquire();
        if (!handle.ok()) return handle.error();
        Connection& c = **handle;
        if (!transaction) return body(c);
        return InTransaction<T>(c, write, [&]() { return body(c); });
    }

    static StoreResult<std::optional<Job>> SelectJob(Connection& c, const char* column, const std::string& value,
                                                     JobView view) {
        StoreResult<Statement> select = c.Prepare("SELECT " + Columns(view) + " FROM jobs WHERE " + column + " = ?1");
        if (!select.ok()) return select.error();
        select->Bind(1, value);
        StoreResult<bool> row = select->Step();
        if (!row.ok()) return row.error();
        if (!*row) return std::optional<Job>();
        return std::optional<Job>(ReadJob(*select));
    }

    // The job an identical earlier submission created, if any (see JobStore::Submit).
    static StoreResult<std::optional<Submission>> FindExisting(Connection& c, const NewJob& job) {
        if (!job.idempotency_key.empty()) {
            StoreResult<std::optional<Job>> by_key =
                SelectJob(c, "idempotency_key", job.idempotency_key, JobView::kStatus);
            if (!by_key.ok()) return by_key.error();
            if (*by_key) {
                if ((*by_key)->content_hash != job.content_hash) {
                    return Fail(StoreFailure::kConflict, "Idempotency-Key " + job.idempotency_key +
                                                             " was used for a different request (job " + (*by_key)->id +
                                                             ")");
                }
                return std::optional<Submission>(Submission{std::move(**by_key), SubmitOutcome::kIdempotencyKey});
            }
        }
        if (!job.force_new) {
            StoreResult<std::optional<Job>> by_hash = SelectJob(c, "dedup_hash", job.content_hash, JobView::kStatus);
            if (!by_hash.ok()) return by_hash.error();
            if (*by_hash)
                return std::optional<Submission>(Submission{std::move(**by_hash), SubmitOutcome::kContentHash});
        }
        return std::optional<Submission>();
    }

    static StoreStatus CheckExists(Connection& c, const std::string& job_id) {
        StoreResult<Statement> select = c.Prepare("SELECT 1 FROM jobs WHERE id = ?1");
        if (!select.ok()) return select.error();
        select->Bind(1, job_id);
        StoreResult<bool> row = select->Step();
        if (!row.ok()) return row.error();
        if (!*row) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
        return StoreOk();
    }

    // Why a write of `owner` matched no row.
    static StoreError NotOwned(Connection& c, const std::string& job_id, const std::string& owner) {
        StoreResult<Statement> select = c.Prepare("SELECT state, owner FROM jobs WHERE id = ?1");
        if (!select.ok()) return select.error();
        select->Bind(1, job_id);
        StoreResult<bool> row = select->Step();
        if (!row.ok()) return row.error();
        if (!*row) return NotOwnedError(job_id, owner, false, JobState::kFailed, "");
        return NotOwnedError(job_id, owner, true, ParseJobState(select->Text(0)).value_or(JobState::kFailed),
                             select->Text(1));
    }

    // The owner's write to the job row: checks the lease, adds `bytes`, takes the next event seq
    // if there is an event, sets the progress if given. Returns the event's seq (0: none).
    static StoreResult<int64_t> TouchOwned(Connection& c, const std::string& job_id, const std::string& owner,
                                           int64_t bytes, const std::optional<NewEvent>& event,
                                           const std::optional<JobProgress>& progress) {
        StoreResult<Statement> touch = c.Prepare(
            "UPDATE jobs SET bytes = bytes + ?3, last_event_seq = last_event_seq + ?4, updated_ms = ?5, "
            "progress_done = CASE WHEN ?6 THEN ?7 ELSE progress_done END, "
            "progress_total = CASE WHEN ?6 THEN ?8 ELSE progress_total END, "
            "progress_level = CASE WHEN ?6 THEN ?9 ELSE progress_level END "
            "WHERE id = ?1 AND owner = ?2 AND state = 'running' RETURNING last_event_seq");
        if (!touch.ok()) return touch.error();
        const JobProgress p = progress.value_or(JobProgress{});
        touch->Bind(1, job_id).Bind(2, owner).Bind(3, bytes).Bind(4, int64_t{event ? 1 : 0}).Bind(5, ToMillis(Now()));
        touch->Bind(6, int64_t{progress ? 1 : 0})
            .Bind(7, p.done)
            .Bind(8, p.total)
            .Bind(9, static_cast<int64_t>(p.level));
        StoreResult<bool> row = touch->Step();
        if (!row.ok()) return row.error();
        if (!*row) return NotOwned(c, job_id, owner);
        return event ? touch->Int(0) : int64_t{0};
    }

    static StoreStatus InsertEvent(Connection& c, const std::string& job_id, int64_t seq, const NewEvent& event,
                                   int64_t now) {
        StoreResult<Statement> insert =
            c.Prepare("INSERT INTO job_events (job_id, seq, name, data_json, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
        if (!insert.ok()) return insert.error();
        insert->Bind(1, job_id).Bind(2, seq).Bind(3, event.name).Bind(4, event.data_json).Bind(5, now);
        return insert->Run();
    }

    // Deletes the oldest finished jobs until the content bytes are within `max_total_bytes`.
    static StoreResult<int64_t> DeleteOldestBeyond(Connection& c, int64_t max_total_bytes) {
        StoreResult<Statement> total = c.Prepare("SELECT COALESCE(SUM(bytes), 0) FROM jobs");
        if (!total.ok()) return total.error();
        StoreResult<bool> row = total->Step();
        if (!row.ok()) return row.error();
        int64_t excess = total->Int(0) - max_total_bytes;
        if (excess <= 0) return int64_t{0};
        std::vector<std::string> victims;
        {
            StoreResult<Statement> oldest = c.Prepare(
                "SELECT id, bytes FROM jobs WHERE finished_ms IS NOT NULL AND state IN ('done', 'failed', 'cancelled') "
                "ORDER BY finished_ms, id");
            if (!oldest.ok()) return oldest.error();
            while (excess > 0) {
                StoreResult<bool> next = oldest->Step();
                if (!next.ok()) return next.error();
                if (!*next) break;
                victims.push_back(oldest->Text(0));
                excess -= oldest->Int(1);
            }
        }
        for (const std::string& id : victims) {
            StoreResult<Statement> remove = c.Prepare("DELETE FROM jobs WHERE id = ?1");
            if (!remove.ok()) return remove.error();
            remove->Bind(1, id);
            if (StoreStatus s = remove->Run(); !s.ok()) return s.error();
        }
        return static_cast<int64_t>(victims.size());
    }

    const std::string path_;
    const JobStoreOptions options_;
    ConnectionPool<Connection> pool_;
};

}  // namespace

StoreResult<std::unique_ptr<JobStore>> OpenSqliteJobStore(const std::string& path, const JobStoreOptions& options) {
    auto store = std::make_unique<SqliteJobStore>(path, options);
    if (StoreStatus s = store->Init(); !s.ok()) return s.error();
    return std::unique_ptr<JobStore>(std::move(store));
}

}  // namespace summarizer
