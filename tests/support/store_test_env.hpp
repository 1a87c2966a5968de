// What the job store tests run against: a temporary directory for SQLite files, and for
// PostgreSQL the server named by SUMMARIZER_TEST_PG_URL (scripts/lib/postgres.sh starts one)
// with a schema of its own per test, so tests running at once (ctest -j) never see each
// other's jobs. Also a private PostgreSQL cluster that a test may stop and start.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "summarizer/job_store.hpp"

// The call succeeded; prints its error otherwise.
#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        const auto& result_ = (expr);                                          \
        ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().message; \
    } while (0)

// The call failed with `kind`; prints the value's absence or the other failure otherwise.
#define EXPECT_FAILS_WITH(expr, failure)                                                          \
    do {                                                                                          \
        const auto& result_ = (expr);                                                             \
        EXPECT_FALSE(result_.ok()) << #expr << " succeeded";                                      \
        if (!result_.ok()) {                                                                      \
            EXPECT_EQ(result_.error().kind, failure) << #expr << ": " << result_.error().message; \
        }                                                                                         \
    } while (0)

// The job is still there.
#define EXPECT_OK_JOB(store, id)                                                                     \
    do {                                                                                             \
        const StoreResult<Job> job_ = (store).GetJob(id);                                            \
        EXPECT_TRUE(job_.ok()) << "job " << (id) << ": " << (job_.ok() ? "" : job_.error().message); \
    } while (0)

namespace summarizer::testing {

inline NewJob MakeJob(const std::string& hash, const std::string& text = "the input text",
                      const std::string& key = "") {
    NewJob job;
    job.text = text;
    job.options_json = R"({"length":"short"})";
    job.content_hash = hash;
    job.idempotency_key = key;
    return job;
}

inline Step MakeStep(const std::string& kind, int level, int index, const std::string& output = "partial summary") {
    Step step;
    step.key = StepKey{kind, level, index};
    step.output = output;
    step.prompt_tokens = 1000 + index;
    step.output_tokens = 100 + index;
    step.metadata_json = R"({"model":"m"})";
    return step;
}

inline int64_t StepBytesForTest(const Step& step) {
    return static_cast<int64_t>(step.output.size() + step.metadata_json.size());
}

// A fresh directory under /tmp, deleted with its contents.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "store-test.XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add,
                                     ignored);
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }
    std::string File(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

inline const char* PgTestUrl() {
    const char* url = std::getenv("SUMMARIZER_TEST_PG_URL");
    return url != nullptr && *url != '\0' ? url : nullptr;
}

inline constexpr const char* kPgSkipMessage =
    "SUMMARIZER_TEST_PG_URL is not set: no PostgreSQL server to test against. scripts/test.sh starts one "
    "(scripts/lib/postgres.sh: source it, run pg_start, then ctest -L store)";

// `url` with one more libpq parameter.
inline std::string WithParameter(const std::string& url, const std::string& parameter) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + parameter;
}

// A libpq connection for the test's own SQL (creating schemas, killing backends, holding locks).
class PgAdmin {
public:
    explicit PgAdmin(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK) {
            ADD_FAILURE() << "cannot connect to " << url << ": " << PQerrorMessage(conn_);
            return;
        }
        Exec("SET client_min_messages = warning");  // no NOTICE per dropped table in the test log
    }
    PgAdmin(const PgAdmin&) = delete;
    PgAdmin& operator=(const PgAdmin&) = delete;
    ~PgAdmin() { PQfinish(conn_); }

    // Runs `sql`; returns the first field of the first row ("" if none). A failure fails the test.
    std::string Exec(const std::string& sql) {
        PGresult* result = PQexec(conn_, sql.c_str());
        const ExecStatusType status = PQresultStatus(result);
        std::string value;
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
        } else if (PQntuples(result) > 0 && PQnfields(result) > 0) {
            value = PQgetvalue(result, 0, 0);
        }
        PQclear(result);
        return value;
    }

private:
    PGconn* conn_;
};

// A schema of its own on the shared test server; dropped at the end.
class PgSchema {
public:
    explicit PgSchema(std::string base_url) : base_url_(std::move(base_url)), admin_(base_url_) {
        const StoreResult<std::string> id = NewJobId();
        name_ = "store_test_" + (id.ok() ? id->substr(0, 12) : std::to_string(getpid()));
        admin_.Exec("CREATE SCHEMA " + name_);
    }
    PgSchema(const PgSchema&) = delete;
    PgSchema& operator=(const PgSchema&) = delete;
    ~PgSchema() { admin_.Exec("DROP SCHEMA " + name_ + " CASCADE"); }

    // The store's URL: its tables go into this schema; its connections are named after it, so a
    // test can find (and kill) them.
    std::string Url() const {
        return WithParameter(WithParameter(base_url_, "options=-csearch_path%3D" + name_), "application_name=" + name_);
    }
    const std::string& name() const { return name_; }
    PgAdmin& admin() { return admin_; }

private:
    std::string base_url_;
    PgAdmin admin_;
    std::string name_;
};

// Runs `command` with /bin/sh; returns its stdout. `status` gets the exit status.
inline std::string RunCommand(const std::string& command, int* status) {
    std::string output;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        *status = -1;
        return output;
    }
    std::array<char, 512> buffer{};
    size_t n = 0;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
    const int raw = pclose(pipe);
    *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    return output;
}

// A PostgreSQL cluster of this test's own (scripts/lib/postgres.sh), which the test can stop and
// start again without disturbing the tests that share the CI server.
class PrivatePgCluster {
public:
    PrivatePgCluster() { url_ = Run("pg_start \"$1\" >&2 && echo \"$SUMMARIZER_TEST_PG_URL\""); }
    PrivatePgCluster(const PrivatePgCluster&) = delete;
    PrivatePgCluster& operator=(const PrivatePgCluster&) = delete;
    ~PrivatePgCluster() { Run("pg_stop \"$1\""); }

    const std::string& url() const { return url_; }
    // Stops the server (fast shutdown: sessions are terminated), keeping its data.
    void Halt() { Run("pg_halt \"$1\""); }
    // Starts it again on the same port.
    void Start() { Run("pg_start \"$1\" >&2"); }

private:
    std::string Run(const std::string& script) {
        const std::string command = "bash -c '. \"$0\" && " + script +
                                    "' " SUMMARIZER_SOURCE_DIR "/scripts/lib/postgres.sh " + dir_.path().string();
        int status = 0;
        std::string output = RunCommand(command, &status);
        EXPECT_EQ(status, 0) << command;
        while (!output.empty() && output.back() == '\n') output.pop_back();
        return output;
    }

    TempDir dir_;
    std::string url_;
};

}  // namespace summarizer::testing
