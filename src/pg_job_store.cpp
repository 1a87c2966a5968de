// The PostgreSQL job store: one job table shared by replicas. A pool of libpq connections, named
// prepared statements per connection, every call one transaction (READ COMMITTED). Times are the
// server's clock, so replicas with skewed clocks agree on leases.
//
// A connection that breaks (server restarted, backend killed, network) fails the call in flight
// with kUnavailable and is dropped; the next call connects again. A write whose BEGIN finds its
// pooled connection dead has sent nothing yet, and a read can be repeated: both reconnect and go
// on, so a restart costs only the writes that were in flight.
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "job_store_internal.hpp"
#include "summarizer/job_store.hpp"

namespace summarizer {
namespace {

using namespace job_store_internal;  // NOLINT(google-build-using-namespace): this file's own helpers

constexpr int kSchemaVersion = 1;
// Serializes schema creation by several replicas starting at once (CREATE TABLE IF NOT EXISTS
// races otherwise); any constant unique to this program.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(7215005470563110923)";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS job_store_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id               text PRIMARY KEY,
    state            text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    created_ms       bigint NOT NULL,
    updated_ms       bigint NOT NULL,
    started_ms       bigint,
    finished_ms      bigint,
    input_text       text NOT NULL,
    options_json     text NOT NULL,
    content_hash     text NOT NULL,
    dedup_hash       text,
    idempotency_key  text,
    plan_json        text NOT NULL DEFAULT '',
    replanned        text NOT NULL DEFAULT '',
    progress_done    bigint NOT NULL DEFAULT 0,
    progress_total   bigint NOT NULL DEFAULT 0,
    progress_level   integer NOT NULL DEFAULT 0,
    result_json      text NOT NULL DEFAULT '',
    error_json       text NOT NULL DEFAULT '',
    owner            text NOT NULL DEFAULT '',
    lease_expires_ms bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    claims           bigint NOT NULL DEFAULT 0,
    last_event_seq   bigint NOT NULL DEFAULT 0,
    bytes            bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_dedup_hash ON jobs (dedup_hash) WHERE dedup_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (state, created_ms);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_steps (
    job_id        text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    level         integer NOT NULL,
    idx           integer NOT NULL,
    output        text NOT NULL,
    prompt_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    metadata_json text NOT NULL,
    recorded_ms   bigint NOT NULL,
    PRIMARY KEY (job_id, kind, level, idx)
);
CREATE TABLE IF NOT EXISTS job_events (
    job_id     text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    name       text NOT NULL,
    data_json  text NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (job_id, seq)
);
)sql";

// The transaction's start on the server's clock, in ms: one value for every use in a transaction.
#define NOW_MS "(floor(extract(epoch FROM now()) * 1000)::bigint)"
#define JOB_COLUMNS(input, plan)                                                                                     \
    "id, state, created_ms, updated_ms, started_ms, finished_ms, " input                                             \
    ", options_json, content_hash, idempotency_key, " plan                                                           \
    ", replanned, progress_done, progress_total, progress_level, result_json, error_json, owner, lease_expires_ms, " \
    "cancel_requested, claims, last_event_seq, bytes"
#define FULL_COLUMNS JOB_COLUMNS("input_text", "plan_json")
#define STATUS_COLUMNS JOB_COLUMNS("''", "''")

// A statement prepared once per connection under its name.
struct Query {
    const char* name;
    const char* sql;
};

constexpr Query kSelectJobById{"select_job", "SELECT " STATUS_COLUMNS " FROM jobs WHERE id = $1"};
constexpr Query kSelectFullJobById{"select_full_job", "SELECT " FULL_COLUMNS " FROM jobs WHERE id = $1"};
constexpr Query kSelectJobByKey{"select_job_by_key", "SELECT " STATUS_COLUMNS " FROM jobs WHERE idempotency_key = $1"};
constexpr Query kSelectJobByHash{"select_job_by_hash", "SELECT " STATUS_COLUMNS " FROM jobs WHERE dedup_hash = $1"};
constexpr Query kClearHash{"clear_hash", "UPDATE jobs SET dedup_hash = NULL WHERE dedup_hash = $1"};
constexpr Query kInsertJob{
    "insert_job",
    "INSERT INTO jobs (id, state, created_ms, updated_ms, input_text, options_json, content_hash, dedup_hash, "
    "idempotency_key, bytes) VALUES ($1, 'queued', " NOW_MS ", " NOW_MS
    ", $2, $3, $4, $4, $5, $6::bigint) "
    "ON CONFLICT DO NOTHING RETURNING " STATUS_COLUMNS};
constexpr Query kJobExists{"job_exists", "SELECT 1 FROM jobs WHERE id = $1"};
constexpr Query kJobOwner{"job_owner", "SELECT state, owner FROM jobs WHERE id = $1"};
// The reads below are one statement each, so they need no transaction: the job's row is joined
// in, so an unknown job is no row at all, and a job without steps or events one row of NULLs.
constexpr Query kSelectSteps{"select_steps",
                             "SELECT s.kind, s.level, s.idx, s.output, s.prompt_tokens, s.output_tokens, "
                             "s.metadata_json, s.recorded_ms FROM jobs j LEFT JOIN job_steps s ON s.job_id = j.id "
                             "WHERE j.id = $1 ORDER BY s.level, s.idx, s.kind COLLATE \"C\""};
constexpr Query kSelectEvents{"select_events",
                              "SELECT e.seq, e.name, e.data_json, e.created_ms FROM jobs j LEFT JOIN LATERAL "
                              "(SELECT seq, name, data_json, created_ms FROM job_events WHERE job_id = j.id "
                              "AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint) e ON true WHERE j.id = $1 "
                              "ORDER BY e.seq"};
constexpr Query kBumpEventSeq{"bump_event_seq",
                              "UPDATE jobs SET last_event_seq = last_event_seq + 1, bytes = bytes + $2::bigint, "
                              "updated_ms = " NOW_MS " WHERE id = $1 RETURNING last_event_seq"};
constexpr Query kInsertEvent{"insert_event",
                             "INSERT INTO job_events (job_id, seq, name, data_json, created_ms) "
                             "VALUES ($1, $2::bigint, $3, $4, " NOW_MS ")"};
// SKIP LOCKED: a job another replica is claiming right now is passed over, not waited for.
constexpr Query kClaimNext{
    "claim_next",
    "UPDATE jobs SET state = 'running', owner = $1, lease_expires_ms = " NOW_MS
    " + $2::bigint, "
    "started_ms = COALESCE(started_ms, " NOW_MS "), updated_ms = " NOW_MS
    ", claims = claims + 1 "
    "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_expires_ms <= " NOW_MS
    ") "
    "ORDER BY created_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " FULL_COLUMNS};
constexpr Query kClaim{"claim",
                       "UPDATE jobs SET state = 'running', owner = $1, lease_expires_ms = " NOW_MS
                       " + $2::bigint, "
                       "started_ms = COALESCE(started_ms, " NOW_MS "), updated_ms = " NOW_MS
                       ", claims = claims + 1 "
                       "WHERE id = $3 AND (state = 'queued' OR (state = 'running' AND lease_expires_ms <= " NOW_MS
                       ")) "
                       "RETURNING " FULL_COLUMNS};
constexpr Query kRenewLease{"renew_lease",
                            "UPDATE jobs SET lease_expires_ms = " NOW_MS " + $3::bigint, updated_ms = " NOW_MS
                            " "
                            "WHERE id = $1 AND owner = $2 AND state = 'running' "
                            "RETURNING lease_expires_ms, cancel_requested"};
constexpr Query kReleaseLease{"release_lease",
                              "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
                              "finished_ms = CASE WHEN cancel_requested THEN " NOW_MS
                              " END, "
                              "dedup_hash = CASE WHEN cancel_requested THEN NULL ELSE dedup_hash END, "
                              "owner = '', lease_expires_ms = NULL, updated_ms = " NOW_MS
                              " "
                              "WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING id"};
constexpr Query kRequestCancel{"request_cancel",
                               "UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, "
                               "finished_ms = CASE WHEN state = 'queued' THEN " NOW_MS
                               " ELSE finished_ms END, "
                               "dedup_hash = CASE WHEN state = 'queued' THEN NULL ELSE dedup_hash END, "
                               "cancel_requested = cancel_requested OR state IN ('queued', 'running'), "
                               "updated_ms = " NOW_MS " WHERE id = $1 RETURNING state"};
constexpr Query kIsCancelRequested{"is_cancel_requested", "SELECT cancel_requested FROM jobs WHERE id = $1"};
constexpr Query kExpireLeases{"expire_leases", "UPDATE jobs SET lease_expires_ms = " NOW_MS
                                               " WHERE state = 'running' AND owner <> $1 AND lease_expires_ms > " NOW_MS
                                               " RETURNING id"};
constexpr Query kDiscardSteps{"discard_steps",
                              "DELETE FROM job_steps WHERE job_id = $1 AND EXISTS "
                              "(SELECT 1 FROM jobs WHERE id = $1 AND owner = $2 AND state = 'running') "
                              "RETURNING octet_length(output) + octet_length(metadata_json)"};
constexpr Query kSavePlan{
    "save_plan",
    "UPDATE jobs SET bytes = bytes - octet_length(plan_json) - octet_length(replanned) + $3::bigint - $4::bigint, "
    "plan_json = $5, replanned = $6, updated_ms = " NOW_MS
    " "
    "WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING id"};
// The owner's write to the job row (see TouchOwned).
constexpr Query kTouchOwned{
    "touch_owned",
    "UPDATE jobs SET bytes = bytes + $3::bigint, last_event_seq = last_event_seq + $4::bigint, updated_ms = " NOW_MS
    ", progress_done = CASE WHEN $5::boolean THEN $6::bigint ELSE progress_done END, "
    "progress_total = CASE WHEN $5::boolean THEN $7::bigint ELSE progress_total END, "
    "progress_level = CASE WHEN $5::boolean THEN $8::integer ELSE progress_level END "
    "WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING last_event_seq"};
constexpr Query kInsertStep{
    "insert_step",
    "INSERT INTO job_steps (job_id, kind, level, idx, output, prompt_tokens, output_tokens, metadata_json, "
    "recorded_ms) VALUES ($1, $2, $3::integer, $4::integer, $5, $6::bigint, $7::bigint, $8, " NOW_MS
    ") "
    "ON CONFLICT DO NOTHING"};
constexpr Query kFinish{"finish", "UPDATE jobs SET state = $3, result_json = $4, error_json = $5, finished_ms = " NOW_MS
                                  ", updated_ms = " NOW_MS
                                  ", lease_expires_ms = NULL, dedup_hash = CASE WHEN $3 = 'done' THEN dedup_hash END, "
                                  "bytes = bytes - octet_length(result_json) - octet_length(error_json) + $6::bigint, "
                                  "last_event_seq = last_event_seq + $7::bigint "
                                  "WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING last_event_seq"};
constexpr Query kDeleteOld{"delete_old", "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < " NOW_MS
                                         " - $1::bigint "
                                         "AND state IN ('done', 'failed', 'cancelled')"};
constexpr Query kTotalBytes{"total_bytes", "SELECT COALESCE(SUM(bytes), 0) FROM jobs"};
// The oldest finished jobs whose deletion brings the total down by at least $1 bytes: each job
// whose predecessors (in finishing order) do not already free that much.
constexpr Query kDeleteOldest{
    "delete_oldest",
    "DELETE FROM jobs WHERE id IN (SELECT id FROM (SELECT id, bytes, SUM(bytes) OVER (ORDER BY finished_ms, id) AS "
    "upto "
    "FROM jobs WHERE finished_ms IS NOT NULL AND state IN ('done', 'failed', 'cancelled')) AS oldest "
    "WHERE upto - bytes < $1::bigint)"};
constexpr Query kCountByState{"count_by_state",
                              "SELECT state, count(*), COALESCE(SUM(bytes), 0) FROM jobs GROUP BY state"};
constexpr Query kDatabaseBytes{"database_bytes",
                               "SELECT pg_total_relation_size('jobs') + pg_total_relation_size('job_steps') + "
                               "pg_total_relation_size('job_events')"};

#undef STATUS_COLUMNS
#undef FULL_COLUMNS
#undef JOB_COLUMNS
#undef NOW_MS

// Text parameters for PQexecPrepared. Strings are not copied: they must outlive the call.
class Params {
public:
    Params& Add(const std::string& text) {
        Check(text);
        values_.push_back(text.c_str());
        return *this;
    }
    Params& Add(std::string_view text) {
        Check(text);
        owned_.emplace_back(text);
        values_.push_back(owned_.back().c_str());
        return *this;
    }
    Params& Add(int64_t value) {
        owned_.push_back(std::to_string(value));
        values_.push_back(owned_.back().c_str());
        return *this;
    }
    Params& Add(const char*) = delete;  // would otherwise bind as a bool
    Params& Add(bool value) {
        values_.push_back(value ? "true" : "false");
        return *this;
    }
    Params& AddOrNull(const std::string& text) {
        Check(text);
        values_.push_back(text.empty() ? nullptr : text.c_str());
        return *this;
    }
    int size() const { return static_cast<int>(values_.size()); }
    const char* const* values() const { return values_.data(); }
    // A text parameter held a NUL byte: PostgreSQL's text cannot, and the text format would
    // silently cut the value there.
    bool has_nul() const { return has_nul_; }

private:
    void Check(std::string_view text) {
        if (text.find('\0') != std::string_view::npos) has_nul_ = true;
    }

    bool has_nul_ = false;
    std::vector<const char*> values_;
    std::deque<std::string> owned_;  // a deque: adding does not move the strings already pointed to
};

struct ResultDeleter {
    void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// Reads the text format of one result: fields by row and column.
class Rows {
public:
    explicit Rows(PgResult result) : result_(std::move(result)) {}
    int size() const { return PQntuples(result_.get()); }
    bool empty() const { return size() == 0; }
    std::string Text(int row, int column) const {
        return std::string(PQgetvalue(result_.get(), row, column),
                           static_cast<size_t>(PQgetlength(result_.get(), row, column)));
    }
    int64_t Int(int row, int column) const { return std::strtoll(PQgetvalue(result_.get(), row, column), nullptr, 10); }
    bool Bool(int row, int column) const { return PQgetvalue(result_.get(), row, column)[0] == 't'; }
    bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
    std::optional<StoreTime> Time(int row, int column) const {
        if (IsNull(row, column)) return std::nullopt;
        return FromMillis(Int(row, column));
    }
    int64_t Affected() const { return std::strtoll(PQcmdTuples(result_.get()), nullptr, 10); }

private:
    PgResult result_;
};

// The URL without its password, for messages and Describe().
std::string Redacted(const std::string& url) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
    if (options == nullptr) {
        PQfreemem(error);
        return "postgresql://(unparsable URL)";
    }
    std::string user;
    std::string host;
    std::string port;
    std::string dbname;
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view keyword = o->keyword;
        if (keyword == "user") user = o->val;
        if (keyword == "host" || (keyword == "hostaddr" && host.empty())) host = o->val;
        if (keyword == "port") port = o->val;
        if (keyword == "dbname") dbname = o->val;
    }
    PQconninfoFree(options);
    std::string redacted = "postgresql://";
    if (!user.empty()) redacted += user + "@";
    redacted += host;
    if (!port.empty()) redacted += ":" + port;
    return redacted + "/" + dbname;
}

// libpq's messages span lines and tabs; ours are one line.
std::string OneLine(std::string_view text) {
    std::string line;
    for (char ch : text) {
        const bool space = ch == '\n' || ch == '\t' || ch == ' ';
        if (space && (line.empty() || line.back() == ' ')) continue;
        line += space ? ' ' : ch;
    }
    if (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
}

void LogNotice(void* /*arg*/, const char* message) { spdlog::debug("job store: postgresql: {}", message); }

StoreFailure FailureOfSqlState(std::string_view state) {
    if (state.starts_with("08") || state.starts_with("53") || state.starts_with("57P") || state == "57014" ||
        state == "55P03" || state == "40001" || state == "40P01") {
        // connection, insufficient resources (disk full, too many connections), shutdown,
        // statement cancelled, lock timeout, serialization or deadlock: try again later
        return StoreFailure::kUnavailable;
    }
    if (state == "XX001" || state == "XX002") return StoreFailure::kCorrupt;
    if (state.starts_with("23")) return StoreFailure::kConflict;
    return StoreFailure::kInternal;
}

class Connection {
public:
    Connection(PGconn* conn, std::string where) : conn_(conn), where_(std::move(where)) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { PQfinish(conn_); }

    static StoreResult<std::unique_ptr<Connection>> Connect(const std::string& url, const std::string& where,
                                                            const JobStoreOptions& options) {
        const std::string timeout = std::to_string(options.pg_connect_timeout.count());
        // Keywords before dbname are defaults that the URL (expanded from dbname) overrides.
        // Keepalives and tcp_user_timeout: a server that vanishes without closing the connection
        // (a host down, a partition) fails the call within about 30 s instead of the kernel's hours.
        const char* keywords[] = {
            "connect_timeout",  "fallback_application_name", "keepalives_idle", "keepalives_interval",
            "keepalives_count", "tcp_user_timeout",          "dbname",          nullptr};
        const char* values[] = {timeout.c_str(), "summarizer", "10", "5", "3", "30000", url.c_str(), nullptr};
        PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
        auto connection = std::make_unique<Connection>(conn, where);
        if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
            return Fail(StoreFailure::kUnavailable,
                        "job store " + where + ": cannot connect: " + connection->LastMessage());
        }
        PQsetNoticeProcessor(conn, LogNotice, nullptr);
        const std::string lock_timeout = "SET lock_timeout = " + std::to_string(options.busy_timeout.count());
        if (StoreStatus s = connection->Exec(lock_timeout.c_str(), "setting lock_timeout"); !s.ok()) return s.error();
        return connection;
    }

    bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }

    // A one-off command or script without parameters.
    StoreStatus Exec(const char* sql, std::string_view during) {
        PgResult result(PQexec(conn_, sql));
        return Check(result, during);
    }

    // Runs a prepared statement, preparing it on this connection first if needed.
    StoreResult<Rows> Run(const Query& query, const Params& params) {
        if (params.has_nul()) {
            return Fail(StoreFailure::kInternal,
                        std::string(query.name) + ": a text holds a NUL byte, which PostgreSQL cannot store");
        }
        if (!prepared_.contains(query.name)) {
            PgResult prepared(PQprepare(conn_, query.name, query.sql, 0, nullptr));
            if (StoreStatus s = Check(prepared, std::string("preparing ") + query.name); !s.ok()) return s.error();
            prepared_.insert(query.name);
        }
        PgResult result(PQexecPrepared(conn_, query.name, params.size(), params.values(), nullptr, nullptr, 0));
        if (StoreStatus s = Check(result, query.name); !s.ok()) return s.error();
        return Rows(std::move(result));
    }

    void RollbackIfOpen() {
        if (PQtransactionStatus(conn_) == PQTRANS_INERROR || PQtransactionStatus(conn_) == PQTRANS_INTRANS) {
            PgResult result(PQexec(conn_, "ROLLBACK"));
        }
    }

    std::string LastMessage() const { return OneLine(conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory"); }

private:
    StoreStatus Check(const PgResult& result, std::string_view during) {
        const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return StoreOk();
        const char* sqlstate = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
        StoreFailure kind = sqlstate != nullptr ? FailureOfSqlState(sqlstate) : StoreFailure::kUnavailable;
        if (broken()) kind = StoreFailure::kUnavailable;
        std::string message = result ? OneLine(PQresultErrorMessage(result.get())) : "";
        if (message.empty()) message = LastMessage();
        return Fail(kind, "job store " + where_ + ": " + std::string(during) + ": " + message +
                              (sqlstate != nullptr ? std::string(" [SQLSTATE ") + sqlstate + "]" : std::string()));
    }

    PGconn* conn_;
    std::string where_;
    std::unordered_set<std::string> prepared_;
};

Job ReadJob(const Rows& rows, int row) {
    Job job;
    job.id = rows.Text(row, 0);
    job.state = ParseJobState(rows.Text(row, 1)).value_or(JobState::kFailed);
    job.created = FromMillis(rows.Int(row, 2));
    job.updated = FromMillis(rows.Int(row, 3));
    job.started = rows.Time(row, 4);
    job.finished = rows.Time(row, 5);
    job.text = rows.Text(row, 6);
    job.options_json = rows.Text(row, 7);
    job.content_hash = rows.Text(row, 8);
    job.idempotency_key = rows.Text(row, 9);
    job.plan_json = rows.Text(row, 10);
    job.replanned = rows.Text(row, 11);
    job.progress = JobProgress{rows.Int(row, 12), rows.Int(row, 13), static_cast<int>(rows.Int(row, 14))};
    job.result_json = rows.Text(row, 15);
    job.error_json = rows.Text(row, 16);
    job.owner = rows.Text(row, 17);
    job.lease_expires = rows.Time(row, 18);
    job.cancel_requested = rows.Bool(row, 19);
    job.claims = rows.Int(row, 20);
    job.last_event_seq = rows.Int(row, 21);
    job.bytes = rows.Int(row, 22);
    return job;
}

StoreResult<std::optional<Job>> SelectJob(Connection& c, const Query& query, const std::string& value) {
    StoreResult<Rows> rows = c.Run(query, Params().Add(value));
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<Job>();
    return std::optional<Job>(ReadJob(*rows, 0));
}

StoreStatus CheckExists(Connection& c, const std::string& job_id) {
    StoreResult<Rows> rows = c.Run(kJobExists, Params().Add(job_id));
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
    return StoreOk();
}

StoreError NotOwned(Connection& c, const std::string& job_id, const std::string& owner) {
    StoreResult<Rows> rows = c.Run(kJobOwner, Params().Add(job_id));
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return NotOwnedError(job_id, owner, false, JobState::kFailed, "");
    return NotOwnedError(job_id, owner, true, ParseJobState(rows->Text(0, 0)).value_or(JobState::kFailed),
                         rows->Text(0, 1));
}

// The job an identical earlier submission created, if any (see JobStore::Submit).
StoreResult<std::optional<Submission>> FindExisting(Connection& c, const NewJob& job, bool by_hash) {
    if (!job.idempotency_key.empty()) {
        StoreResult<std::optional<Job>> by_key = SelectJob(c, kSelectJobByKey, job.idempotency_key);
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
    if (by_hash) {
        StoreResult<std::optional<Job>> found = SelectJob(c, kSelectJobByHash, job.content_hash);
        if (!found.ok()) return found.error();
        if (*found) return std::optional<Submission>(Submission{std::move(**found), SubmitOutcome::kContentHash});
    }
    return std::optional<Submission>();
}

// The owner's write to the job row: checks the lease, adds `bytes`, takes the next event seq if
// there is an event, sets the progress if given. Returns the event's seq (0: none).
StoreResult<int64_t> TouchOwned(Connection& c, const std::string& job_id, const std::string& owner, int64_t bytes,
                                const std::optional<NewEvent>& event, const std::optional<JobProgress>& progress) {
    const JobProgress p = progress.value_or(JobProgress{});
    StoreResult<Rows> rows = c.Run(kTouchOwned, Params()
                                                    .Add(job_id)
                                                    .Add(owner)
                                                    .Add(bytes)
                                                    .Add(int64_t{event ? 1 : 0})
                                                    .Add(progress.has_value())
                                                    .Add(p.done)
                                                    .Add(p.total)
                                                    .Add(static_cast<int64_t>(p.level)));
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return NotOwned(c, job_id, owner);
    return event ? rows->Int(0, 0) : int64_t{0};
}

StoreStatus InsertEvent(Connection& c, const std::string& job_id, int64_t seq, const NewEvent& event) {
    StoreResult<Rows> rows = c.Run(kInsertEvent, Params().Add(job_id).Add(seq).Add(event.name).Add(event.data_json));
    if (!rows.ok()) return rows.error();
    return StoreOk();
}

class PgJobStore final : public JobStore {
public:
    PgJobStore(std::string url, const JobStoreOptions& options)
        : url_(std::move(url)),
          where_(Redacted(url_)),
          options_(options),
          pool_(options.max_connections, [this]() { return Connection::Connect(url_, where_, options_); }) {}

    // Connects once and creates the schema if missing.
    StoreStatus Init() {
        return Transact<Unit>([](Connection& c) -> StoreStatus {
            // Another replica may be creating the schema: wait for it longer than a job call would.
            if (StoreStatus s = c.Exec("SET LOCAL lock_timeout = '60s'", "setting lock_timeout"); !s.ok()) return s;
            if (StoreStatus s = c.Exec(kSchemaLock, "locking the schema"); !s.ok()) return s;
            if (StoreStatus s = c.Exec(kSchema, "creating the schema"); !s.ok()) return s;
            StoreResult<Rows> version = c.Run(Query{"schema_version", "SELECT max(version) FROM job_store_schema"}, {});
            if (!version.ok()) return version.error();
            if (version->IsNull(0, 0)) {
                StoreResult<Rows> set =
                    c.Run(Query{"set_schema_version", "INSERT INTO job_store_schema VALUES ($1::integer)"},
                          Params().Add(int64_t{kSchemaVersion}));
                if (!set.ok()) return set.error();
            } else if (version->Int(0, 0) > kSchemaVersion) {
                return Fail(StoreFailure::kInternal, "job store: schema version " + version->Text(0, 0) +
                                                         " is newer than this binary's (" +
                                                         std::to_string(kSchemaVersion) + ")");
            }
            return StoreOk();
        });
    }

    std::string Describe() const override { return where_; }

    StoreResult<Submission> Submit(const NewJob& job) override {
        if (StoreStatus s = ValidateNewJob(job); !s.ok()) return s.error();
        StoreResult<std::string> id = NewJobId();
        if (!id.ok()) return id.error();
        return Transact<Submission>([&](Connection& c) -> StoreResult<Submission> {
            if (StoreResult<std::optional<Submission>> found = FindExisting(c, job, !job.force_new);
                !found.ok() || *found) {
                if (!found.ok()) return found.error();
                return std::move(**found);
            }
            if (job.force_new) {
                if (StoreResult<Rows> r = c.Run(kClearHash, Params().Add(job.content_hash)); !r.ok()) return r.error();
            }
            StoreResult<Rows> inserted = c.Run(kInsertJob, Params()
                                                               .Add(*id)
                                                               .Add(job.text)
                                                               .Add(job.options_json)
                                                               .Add(job.content_hash)
                                                               .AddOrNull(job.idempotency_key)
                                                               .Add(NewJobBytes(job)));
            if (!inserted.ok()) return inserted.error();
            if (!inserted->empty()) return Submission{ReadJob(*inserted, 0), SubmitOutcome::kCreated};
            // A concurrent identical submission committed first (the insert waited for it on the
            // unique index): this statement's fresh snapshot sees its job.
            StoreResult<std::optional<Submission>> winner = FindExisting(c, job, /*by_hash=*/true);
            if (!winner.ok()) return winner.error();
            if (*winner) return std::move(**winner);
            return Fail(StoreFailure::kInternal, "Submit: the insert conflicted with no job to return");
        });
    }

    StoreResult<Job> GetJob(const std::string& job_id, JobView view) override {
        return Read<Job>([&](Connection& c) -> StoreResult<Job> {
            StoreResult<std::optional<Job>> job =
                SelectJob(c, view == JobView::kFull ? kSelectFullJobById : kSelectJobById, job_id);
            if (!job.ok()) return job.error();
            if (!*job) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return std::move(**job);
        });
    }

    StoreResult<std::optional<Job>> FindByContentHash(const std::string& content_hash) override {
        return Read<std::optional<Job>>([&](Connection& c) { return SelectJob(c, kSelectJobByHash, content_hash); });
    }

    StoreResult<std::vector<Step>> ListSteps(const std::string& job_id) override {
        return Read<std::vector<Step>>([&](Connection& c) -> StoreResult<std::vector<Step>> {
            StoreResult<Rows> rows = c.Run(kSelectSteps, Params().Add(job_id));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            std::vector<Step> steps;
            steps.reserve(static_cast<size_t>(rows->size()));
            for (int i = 0; i < rows->size() && !rows->IsNull(i, 0); ++i) {
                Step step;
                step.key =
                    StepKey{rows->Text(i, 0), static_cast<int>(rows->Int(i, 1)), static_cast<int>(rows->Int(i, 2))};
                step.output = rows->Text(i, 3);
                step.prompt_tokens = rows->Int(i, 4);
                step.output_tokens = rows->Int(i, 5);
                step.metadata_json = rows->Text(i, 6);
                step.recorded = FromMillis(rows->Int(i, 7));
                steps.push_back(std::move(step));
            }
            return steps;
        });
    }

    StoreResult<std::vector<Event>> ListEvents(const std::string& job_id, int64_t after_seq, int limit) override {
        if (StoreStatus s = ValidateLimit(limit); !s.ok()) return s.error();
        return Read<std::vector<Event>>([&](Connection& c) -> StoreResult<std::vector<Event>> {
            StoreResult<Rows> rows =
                c.Run(kSelectEvents, Params().Add(job_id).Add(after_seq).Add(static_cast<int64_t>(limit)));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            std::vector<Event> events;
            events.reserve(static_cast<size_t>(rows->size()));
            for (int i = 0; i < rows->size() && !rows->IsNull(i, 0); ++i) {
                events.push_back(
                    Event{rows->Int(i, 0), rows->Text(i, 1), rows->Text(i, 2), FromMillis(rows->Int(i, 3))});
            }
            return events;
        });
    }

    StoreResult<int64_t> AppendEvent(const std::string& job_id, const NewEvent& event) override {
        return Transact<int64_t>([&](Connection& c) -> StoreResult<int64_t> {
            StoreResult<Rows> bumped = c.Run(kBumpEventSeq, Params().Add(job_id).Add(EventBytes(event)));
            if (!bumped.ok()) return bumped.error();
            if (bumped->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            const int64_t seq = bumped->Int(0, 0);
            if (StoreStatus s = InsertEvent(c, job_id, seq, event); !s.ok()) return s.error();
            return seq;
        });
    }

    StoreResult<std::optional<Job>> ClaimNext(const std::string& owner, std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return Transact<std::optional<Job>>([&](Connection& c) -> StoreResult<std::optional<Job>> {
            StoreResult<Rows> rows = c.Run(kClaimNext, Params().Add(owner).Add(static_cast<int64_t>(lease.count())));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return std::optional<Job>();
            return std::optional<Job>(ReadJob(*rows, 0));
        });
    }

    StoreResult<std::optional<Job>> Claim(const std::string& job_id, const std::string& owner,
                                          std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return Transact<std::optional<Job>>([&](Connection& c) -> StoreResult<std::optional<Job>> {
            StoreResult<Rows> rows =
                c.Run(kClaim, Params().Add(owner).Add(static_cast<int64_t>(lease.count())).Add(job_id));
            if (!rows.ok()) return rows.error();
            if (!rows->empty()) return std::optional<Job>(ReadJob(*rows, 0));
            if (StoreStatus s = CheckExists(c, job_id); !s.ok()) return s.error();
            return std::optional<Job>();
        });
    }

    StoreResult<LeaseState> RenewLease(const std::string& job_id, const std::string& owner,
                                       std::chrono::milliseconds lease) override {
        if (StoreStatus s = ValidateLease(owner, lease); !s.ok()) return s.error();
        return Transact<LeaseState>([&](Connection& c) -> StoreResult<LeaseState> {
            StoreResult<Rows> rows =
                c.Run(kRenewLease, Params().Add(job_id).Add(owner).Add(static_cast<int64_t>(lease.count())));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return NotOwned(c, job_id, owner);
            return LeaseState{FromMillis(rows->Int(0, 0)), rows->Bool(0, 1)};
        });
    }

    StoreStatus ReleaseLease(const std::string& job_id, const std::string& owner) override {
        return Transact<Unit>([&](Connection& c) -> StoreStatus {
            StoreResult<Rows> rows = c.Run(kReleaseLease, Params().Add(job_id).Add(owner));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return NotOwned(c, job_id, owner);
            return StoreOk();
        });
    }

    StoreResult<JobState> RequestCancel(const std::string& job_id) override {
        return Transact<JobState>([&](Connection& c) -> StoreResult<JobState> {
            StoreResult<Rows> rows = c.Run(kRequestCancel, Params().Add(job_id));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return ParseJobState(rows->Text(0, 0)).value_or(JobState::kFailed);
        });
    }

    StoreResult<int64_t> ExpireLeases(const std::string& except_owner) override {
        return Transact<int64_t>([&](Connection& c) -> StoreResult<int64_t> {
            StoreResult<Rows> rows = c.Run(kExpireLeases, Params().Add(except_owner));
            if (!rows.ok()) return rows.error();
            return static_cast<int64_t>(rows->size());
        });
    }

    StoreResult<bool> IsCancelRequested(const std::string& job_id) override {
        return Read<bool>([&](Connection& c) -> StoreResult<bool> {
            StoreResult<Rows> rows = c.Run(kIsCancelRequested, Params().Add(job_id));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return Fail(StoreFailure::kNotFound, "job " + job_id + " not found");
            return rows->Bool(0, 0);
        });
    }

    StoreStatus SavePlan(const std::string& job_id, const std::string& owner, const PlanUpdate& plan) override {
        return Transact<Unit>([&](Connection& c) -> StoreStatus {
            int64_t discarded_bytes = 0;
            if (plan.discard_steps) {
                StoreResult<Rows> removed = c.Run(kDiscardSteps, Params().Add(job_id).Add(owner));
                if (!removed.ok()) return removed.error();
                for (int i = 0; i < removed->size(); ++i) discarded_bytes += removed->Int(i, 0);
            }
            StoreResult<Rows> saved =
                c.Run(kSavePlan, Params()
                                     .Add(job_id)
                                     .Add(owner)
                                     .Add(static_cast<int64_t>(plan.plan_json.size() + plan.replanned.size()))
                                     .Add(discarded_bytes)
                                     .Add(plan.plan_json)
                                     .Add(plan.replanned));
            if (!saved.ok()) return saved.error();
            if (saved->empty()) return NotOwned(c, job_id, owner);
            return StoreOk();
        });
    }

    StoreStatus UpdateProgress(const std::string& job_id, const std::string& owner,
                               const JobProgress& progress) override {
        return Transact<Unit>([&](Connection& c) -> StoreStatus {
            StoreResult<int64_t> seq = TouchOwned(c, job_id, owner, 0, std::nullopt, progress);
            if (!seq.ok()) return seq.error();
            return StoreOk();
        });
    }

    StoreResult<int64_t> RecordStep(const std::string& job_id, const std::string& owner, const Step& step,
                                    const std::optional<NewEvent>& event,
                                    const std::optional<JobProgress>& progress) override {
        if (StoreStatus s = ValidateStep(step); !s.ok()) return s.error();
        return Transact<int64_t>([&](Connection& c) -> StoreResult<int64_t> {
            const int64_t bytes = StepBytes(step) + (event ? EventBytes(*event) : 0);
            StoreResult<int64_t> seq = TouchOwned(c, job_id, owner, bytes, event, progress);
            if (!seq.ok()) return seq;
            StoreResult<Rows> inserted = c.Run(kInsertStep, Params()
                                                                .Add(job_id)
                                                                .Add(step.key.kind)
                                                                .Add(static_cast<int64_t>(step.key.level))
                                                                .Add(static_cast<int64_t>(step.key.index))
                                                                .Add(step.output)
                                                                .Add(step.prompt_tokens)
                                                                .Add(step.output_tokens)
                                                                .Add(step.metadata_json));
            if (!inserted.ok()) return inserted.error();
            if (inserted->Affected() == 0) {
                return Fail(StoreFailure::kConflict, "job " + job_id + ": step " + step.key.kind + " " +
                                                         std::to_string(step.key.level) + "." +
                                                         std::to_string(step.key.index) + " is already recorded");
            }
            if (event) {
                if (StoreStatus s = InsertEvent(c, job_id, *seq, *event); !s.ok()) return s.error();
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
        return Transact<int64_t>([&](Connection& c) -> StoreResult<int64_t> {
            StoreResult<Rows> rows = c.Run(kFinish, Params()
                                                        .Add(job_id)
                                                        .Add(owner)
                                                        .Add(JobStateName(outcome.state))
                                                        .Add(outcome.result_json)
                                                        .Add(outcome.error_json)
                                                        .Add(OutcomeBytes(outcome) + (event ? EventBytes(*event) : 0))
                                                        .Add(int64_t{event ? 1 : 0}));
            if (!rows.ok()) return rows.error();
            if (rows->empty()) return NotOwned(c, job_id, owner);
            if (!event) return int64_t{0};
            const int64_t seq = rows->Int(0, 0);
            if (StoreStatus s = InsertEvent(c, job_id, seq, *event); !s.ok()) return s.error();
            return seq;
        });
    }

    StoreResult<RetentionReport> EnforceRetention(std::chrono::milliseconds max_age, int64_t max_total_bytes) override {
        StoreResult<RetentionReport> report =
            Transact<RetentionReport>([&](Connection& c) -> StoreResult<RetentionReport> {
                RetentionReport r;
                if (max_age.count() > 0) {
                    StoreResult<Rows> deleted = c.Run(kDeleteOld, Params().Add(static_cast<int64_t>(max_age.count())));
                    if (!deleted.ok()) return deleted.error();
                    r.deleted_by_age = deleted->Affected();
                }
                if (max_total_bytes > 0) {
                    StoreResult<Rows> total = c.Run(kTotalBytes, {});
                    if (!total.ok()) return total.error();
                    const int64_t excess = total->Int(0, 0) - max_total_bytes;
                    if (excess > 0) {
                        StoreResult<Rows> deleted = c.Run(kDeleteOldest, Params().Add(excess));
                        if (!deleted.ok()) return deleted.error();
                        r.deleted_by_size = deleted->Affected();
                    }
                }
                return r;
            });
        if (!report.ok()) return report;
        StoreResult<StoreStats> stats = Stats();
        if (!stats.ok()) return stats.error();
        report->after = *stats;
        return report;
    }

    StoreResult<StoreStats> Stats() override {
        return Read<StoreStats>([&](Connection& c) -> StoreResult<StoreStats> {
            StoreStats stats;
            StoreResult<Rows> rows = c.Run(kCountByState, {});
            if (!rows.ok()) return rows.error();
            for (int i = 0; i < rows->size(); ++i) {
                if (std::optional<JobState> state = ParseJobState(rows->Text(i, 0))) {
                    stats.jobs[static_cast<int>(*state)] = rows->Int(i, 1);
                }
                stats.content_bytes += rows->Int(i, 2);
            }
            StoreResult<Rows> size = c.Run(kDatabaseBytes, {});
            if (!size.ok()) return size.error();
            stats.database_bytes = size->Int(0, 0);
            return stats;
        });
    }

private:
    // Runs `body`, which only reads (any number of statements, each its own snapshot), without a
    // transaction: one round trip for the usual one-statement read. A broken connection is
    // replaced and the body run again once: reading twice changes nothing.
    template <typename T, typename Body>
    StoreResult<T> Read(Body&& body) {
        StoreResult<ConnectionPool<Connection>::Handle> handle = pool_.Acquire();
        if (!handle.ok()) return handle.error();
        for (int attempt = 0;; ++attempt) {
            StoreResult<T> result = body(**handle);
            if (result.ok() || !(*handle)->broken()) return result;
            handle->Discard();
            if (attempt > 0) return result;
            StoreResult<std::unique_ptr<Connection>> fresh = pool_.Open();
            if (!fresh.ok()) return fresh.error();
            handle->Replace(std::move(fresh).value());
        }
    }

    // Runs `body` in a transaction on a pooled connection; see the file comment for reconnects.
    template <typename T, typename Body>
    StoreResult<T> Transact(Body&& body) {
        StoreResult<ConnectionPool<Connection>::Handle> handle = pool_.Acquire();
        if (!handle.ok()) return handle.error();
        for (int attempt = 0;; ++attempt) {
            Connection& c = **handle;
            if (StoreStatus begun = c.Exec("BEGIN", "beginning a transaction"); !begun.ok()) {
                if (!c.broken()) return begun.error();
                handle->Discard();
                if (attempt > 0) return begun.error();
                // A pooled connection from before a restart: nothing was sent yet, start afresh.
                StoreResult<std::unique_ptr<Connection>> fresh = pool_.Open();
                if (!fresh.ok()) return fresh.error();
                handle->Replace(std::move(fresh).value());
                continue;
            }
            StoreResult<T> result = body(c);
            if (!result.ok()) {
                c.RollbackIfOpen();
                if (c.broken()) handle->Discard();
                return result;
            }
            if (StoreStatus committed = c.Exec("COMMIT", "committing"); !committed.ok()) {
                c.RollbackIfOpen();
                if (c.broken()) {
                    handle->Discard();
                    return Fail(
                        StoreFailure::kUnavailable,
                        committed.error().message + " (the connection broke during COMMIT: the outcome is unknown)");
                }
                return committed.error();
            }
            return result;
        }
    }

    const std::string url_;
    const std::string where_;
    const JobStoreOptions options_;
    ConnectionPool<Connection> pool_;
};

}  // namespace

StoreResult<std::unique_ptr<JobStore>> OpenPgJobStore(const std::string& url, const JobStoreOptions& options) {
    auto store = std::make_unique<PgJobStore>(url, options);
    if (StoreStatus s = store->Init(); !s.ok()) return s.error();
    return std::unique_ptr<JobStore>(std::move(store));
}

}  // namespace summarizer
