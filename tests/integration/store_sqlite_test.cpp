// The SQLite store's faults, against real files: a directory or file it cannot write, a file that
// is not a database or is damaged, a full disk, a lock held beyond the busy timeout. Each fails
// as a value naming the file, and what was committed before is still there afterwards.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include "store_test_env.hpp"
#include "summarizer/job_store.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using testing::MakeJob;
using testing::MakeStep;
using testing::TempDir;
namespace fs = std::filesystem;

// What a child process's store call returned.
struct ChildOutcome {
    bool ok = false;
    StoreFailure kind = StoreFailure::kInternal;
    std::string message;
};

// Runs `call` in a child process that file permissions apply to: root (who ignores them) drops to
// nobody first. The child reports the call's outcome through a pipe.
ChildOutcome RunWithoutPrivileges(const std::function<StoreStatus()>& call) {
    int report[2];
    if (pipe(report) != 0) return ChildOutcome{false, StoreFailure::kInternal, "pipe failed"};
    const pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        std::string line;
        if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            line = "4 cannot drop privileges";
        } else {
            const StoreStatus status = call();
            line = status.ok() ? "ok"
                               : std::to_string(static_cast<int>(status.error().kind)) + " " + status.error().message;
        }
        (void)!write(report[1], line.data(), line.size());
        _exit(0);
    }
    close(report[1]);
    std::string output;
    char buffer[512];
    ssize_t n = 0;
    while ((n = read(report[0], buffer, sizeof buffer)) > 0) output.append(buffer, static_cast<size_t>(n));
    close(report[0]);
    waitpid(pid, nullptr, 0);
    if (output == "ok") return ChildOutcome{true, StoreFailure::kInternal, ""};
    const size_t space = output.find(' ');
    if (space == std::string::npos) return ChildOutcome{false, StoreFailure::kInternal, "child said: " + output};
    return ChildOutcome{false, static_cast<StoreFailure>(std::stoi(output.substr(0, space))), output.substr(space + 1)};
}

StoreStatus OpenOnly(const std::string& path) {
    StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path);
    if (!store.ok()) return store.error();
    return StoreOk();
}

// A store with one running job and one committed step, closed again: what a fault must not lose.
std::string CreateJobWithAStep(const std::string& path) {
    StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path);
    EXPECT_TRUE(store.ok()) << store.error().message;
    if (!store.ok()) return "";
    StoreResult<Submission> submitted = (*store)->Submit(MakeJob("hash-1"));
    EXPECT_TRUE(submitted.ok());
    const std::string id = submitted->job.id;
    EXPECT_TRUE((*store)->Claim(id, "owner-a", 60s).ok());
    EXPECT_TRUE((*store)->RecordStep(id, "owner-a", MakeStep("map", 0, 0, "committed before the fault")).ok());
    return id;
}

void ExpectTheStepIsThere(const std::string& path, const std::string& id) {
    StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    StoreResult<std::vector<Step>> steps = (*store)->ListSteps(id);
    ASSERT_TRUE(steps.ok()) << steps.error().message;
    ASSERT_GE(steps->size(), 1u);
    EXPECT_EQ((*steps)[0].output, "committed before the fault");
}

// The first column of the first row of `sql` on a connection of the test's own.
std::string QueryRaw(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        value = text != nullptr ? text : "";
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

TEST(SqliteJobStore, UsesOneWalFileWithForeignKeysThatCascade) {
    TempDir dir;
    const std::string path = dir.File("jobs.db");
    {
        StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
        ASSERT_OK(store);
        EXPECT_EQ((*store)->Describe(), "sqlite:" + path);
        const std::string id = (*store)->Submit(MakeJob("hash-1"))->job.id;
        ASSERT_OK((*store)->Claim(id, "owner-a", 60s));
        ASSERT_OK((*store)->RecordStep(id, "owner-a", MakeStep("map", 0, 0), NewEvent{"step", "{}"}));
        ASSERT_OK((*store)->Finish(id, "owner-a", JobOutcome{JobState::kDone, "{}", ""}));
        EXPECT_TRUE(fs::exists(path + "-wal")) << "WAL mode";
        EXPECT_EQ(QueryRaw(path, "PRAGMA journal_mode"), "wal");
        EXPECT_EQ(QueryRaw(path, "PRAGMA auto_vacuum"), "2") << "incremental";

        StoreResult<RetentionReport> report = (*store)->EnforceRetention(0ms, 1);
        ASSERT_OK(report);
        EXPECT_EQ(report->deleted_by_size, 1);
        EXPECT_EQ(QueryRaw(path, "SELECT count(*) FROM job_steps"), "0") << "steps go with their job";
        EXPECT_EQ(QueryRaw(path, "SELECT count(*) FROM job_events"), "0") << "events go with their job";
    }
    EXPECT_FALSE(fs::exists(path + "-wal")) << "the last connection checkpoints and removes the WAL";
}

TEST(SqliteJobStore, AMissingDirectoryIsUnavailableNamingTheFile) {
    TempDir dir;
    const std::string path = dir.File("no/such/dir/jobs.db");
    StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.error().kind, StoreFailure::kUnavailable);
    EXPECT_NE(store.error().message.find(path), std::string::npos) << store.error().message;
}

TEST(SqliteJobStore, AnUnwritableDirectoryIsUnavailable) {
    TempDir dir;
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec);
    const std::string path = dir.File("jobs.db");
    ChildOutcome outcome = RunWithoutPrivileges([&] { return OpenOnly(path); });
    ASSERT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.kind, StoreFailure::kUnavailable) << outcome.message;
    EXPECT_NE(outcome.message.find(path), std::string::npos) << outcome.message;
    EXPECT_NE(outcome.message.find("is not writable"), std::string::npos) << outcome.message;

    // An existing database in a directory where its WAL cannot be created fails the same way.
    const std::string id = CreateJobWithAStep(path);
    fs::permissions(path, fs::perms::all);
    outcome = RunWithoutPrivileges([&] { return OpenOnly(path); });
    ASSERT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.kind, StoreFailure::kUnavailable) << outcome.message;
    EXPECT_NE(outcome.message.find(path), std::string::npos) << outcome.message;
    ExpectTheStepIsThere(path, id);
}

TEST(SqliteJobStore, AReadOnlyFileIsUnavailable) {
    TempDir dir;
    fs::permissions(dir.path(), fs::perms::all);
    const std::string path = dir.File("jobs.db");
    const std::string id = CreateJobWithAStep(path);
    fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    ChildOutcome outcome = RunWithoutPrivileges([&] { return OpenOnly(path); });
    ASSERT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.kind, StoreFailure::kUnavailable) << outcome.message;
    EXPECT_NE(outcome.message.find("read-only"), std::string::npos) << outcome.message;
    EXPECT_NE(outcome.message.find(path), std::string::npos) << outcome.message;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    ExpectTheStepIsThere(path, id);
}

TEST(SqliteJobStore, AFileOfGarbageIsCorruptNamingTheFile) {
    TempDir dir;
    const std::string path = dir.File("jobs.db");
    {
        std::ofstream out(path, std::ios::binary);
        std::mt19937 random(42);
        for (int i = 0; i < 64 * 1024; ++i) out.put(static_cast<char>(random() & 0xff));
    }
    StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.error().kind, StoreFailure::kCorrupt) << store.error().message;
    EXPECT_NE(store.error().message.find(path), std::string::npos) << store.error().message;
    EXPECT_EQ(fs::file_size(path), 64u * 1024u) << "the file is left as it was, for an operator";
}

TEST(SqliteJobStore, ATruncatedDatabaseIsCorruptNamingTheFile) {
    TempDir dir;
    const std::string path = dir.File("jobs.db");
    {
        StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
        ASSERT_OK(store);
        for (int i = 0; i < 40; ++i) {
            const std::string id =
                (*store)->Submit(MakeJob("hash-" + std::to_string(i), std::string(3000, 't')))->job.id;
            ASSERT_OK((*store)->Claim(id, "owner", 60s));
            ASSERT_OK((*store)->RecordStep(id, "owner", MakeStep("map", 0, 0, std::string(3000, 's'))));
        }
    }
    ASSERT_FALSE(fs::exists(path + "-wal")) << "everything is in the main file";
    const auto size = fs::file_size(path);
    ASSERT_GT(size, 200u * 1024u);
    fs::resize_file(path, size / 2);

    StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
    ASSERT_FALSE(store.ok()) << "opened a database cut in half";
    EXPECT_EQ(store.error().kind, StoreFailure::kCorrupt) << store.error().message;
    EXPECT_NE(store.error().message.find(path), std::string::npos) << store.error().message;
}

// A file system of 1 MiB (tmpfs, when this process may mount) or else SQLite's page limit: the
// writes that no longer fit fail as unavailable, and what was committed stays readable.
class FullDisk {
public:
    explicit FullDisk(const TempDir& dir) : mount_point_(dir.File("small")) {
        fs::create_directory(mount_point_);
        mounted_ = mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, "size=1m") == 0;
    }
    FullDisk(const FullDisk&) = delete;
    FullDisk& operator=(const FullDisk&) = delete;
    ~FullDisk() {
        if (mounted_) umount2(mount_point_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    std::string path() const { return mount_point_ + "/jobs.db"; }
    // What the store needs to hit the limit without a small file system: 1 MiB of 4 KiB pages.
    JobStoreOptions options() const {
        JobStoreOptions options;
        if (!mounted_) options.sqlite_max_page_count = 256;
        return options;
    }
    // Makes room again: a bigger file system, or a store without the page limit.
    void Grow() {
        if (mounted_) mount("tmpfs", mount_point_.c_str(), "tmpfs", MS_REMOUNT, "size=8m");
    }

private:
    std::string mount_point_;
    bool mounted_ = false;
};

TEST(SqliteJobStore, AFullDiskFailsWritesAsUnavailableAndKeepsWhatWasCommitted) {
    TempDir dir;
    FullDisk disk(dir);
    std::cout << "[ disk full ] " << (disk.mounted() ? "a 1 MiB tmpfs" : "PRAGMA max_page_count (mount refused)")
              << "\n";
    std::string id;
    int committed = 0;
    {
        StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(disk.path(), disk.options());
        ASSERT_OK(store);
        id = (*store)->Submit(MakeJob("hash-1"))->job.id;
        ASSERT_OK((*store)->Claim(id, "owner-a", 60s));
        StoreResult<int64_t> recorded = int64_t{0};
        for (; committed < 1000; ++committed) {
            recorded = (*store)->RecordStep(id, "owner-a", MakeStep("map", 0, committed, std::string(16 * 1024, 'o')),
                                            NewEvent{"step", "{}"});
            if (!recorded.ok()) break;
        }
        ASSERT_FALSE(recorded.ok()) << "1000 steps of 16 KiB fit in 1 MiB";
        EXPECT_EQ(recorded.error().kind, StoreFailure::kUnavailable) << recorded.error().message;
        EXPECT_NE(recorded.error().message.find("disk is full"), std::string::npos) << recorded.error().message;
        EXPECT_NE(recorded.error().message.find(disk.path()), std::string::npos) << recorded.error().message;
        EXPECT_GT(committed, 10);

        // Reads go on; every committed step is whole, the failed one is absent.
        StoreResult<std::vector<Step>> steps = (*store)->ListSteps(id);
        ASSERT_OK(steps);
        EXPECT_EQ(steps->size(), static_cast<size_t>(committed));
        StoreResult<std::vector<Event>> events = (*store)->ListEvents(id, 0);
        ASSERT_OK(events);
        EXPECT_EQ(events->size(), static_cast<size_t>(committed)) << "no event without its step";
        EXPECT_FAILS_WITH((*store)->Submit(MakeJob("hash-2", std::string(64 * 1024, 'n'))), StoreFailure::kUnavailable);
    }
    disk.Grow();
    StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(disk.path());
    ASSERT_OK(store);
    ASSERT_OK((*store)->RecordStep(id, "owner-a", MakeStep("map", 0, committed, "after the disk was freed")));
    StoreResult<std::vector<Step>> steps = (*store)->ListSteps(id);
    ASSERT_OK(steps);
    EXPECT_EQ(steps->size(), static_cast<size_t>(committed + 1));
    store->reset();
    EXPECT_EQ(QueryRaw(disk.path(), "PRAGMA integrity_check"), "ok");
}

TEST(SqliteJobStore, ALockHeldBeyondTheBusyTimeoutIsUnavailable) {
    TempDir dir;
    const std::string path = dir.File("jobs.db");
    JobStoreOptions options;
    options.busy_timeout = 200ms;
    StoreResult<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path, options);
    ASSERT_OK(store);
    const std::string id = (*store)->Submit(MakeJob("hash-1"))->job.id;
    ASSERT_OK((*store)->Claim(id, "owner-a", 60s));
    ASSERT_OK((*store)->RecordStep(id, "owner-a", MakeStep("map", 0, 0, "committed before the lock")));

    // Another process's writer, as SQLite sees it: a connection of its own holding the write lock.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

    const auto started = std::chrono::steady_clock::now();
    StoreResult<int64_t> blocked = (*store)->RecordStep(id, "owner-a", MakeStep("map", 0, 1));
    const auto waited = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(blocked.ok());
    EXPECT_EQ(blocked.error().kind, StoreFailure::kUnavailable);
    EXPECT_NE(blocked.error().message.find("locked"), std::string::npos) << blocked.error().message;
    EXPECT_GE(waited, 190ms) << "it waited for the busy timeout";
    EXPECT_LT(waited, 3s);
    EXPECT_FAILS_WITH((*store)->Submit(MakeJob("hash-2")), StoreFailure::kUnavailable);

    // WAL: readers are not blocked by the writer.
    StoreResult<std::vector<Step>> steps = (*store)->ListSteps(id);
    ASSERT_OK(steps);
    EXPECT_EQ(steps->size(), 1u);

    ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
    ASSERT_OK((*store)->RecordStep(id, "owner-a", MakeStep("map", 0, 1)));
}

TEST(SqliteJobStore, ASchemaNewerThanTheBinaryIsRefused) {
    TempDir dir;
    const std::string path = dir.File("jobs.db");
    CreateJobWithAStep(path);
    QueryRaw(path, "PRAGMA user_version = 99");
    StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(path);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.error().kind, StoreFailure::kInternal);
    EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

}  // namespace
}  // namespace summarizer
