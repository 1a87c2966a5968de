// Pieces the SQLite and PostgreSQL job stores share: the connection pool, time and size helpers.
// Private to src/.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "summarizer/job_store.hpp"

namespace summarizer::job_store_internal {

inline StoreError Fail(StoreFailure kind, std::string message) { return StoreError{kind, std::move(message)}; }

inline int64_t ToMillis(StoreTime t) { return t.time_since_epoch().count(); }
inline StoreTime FromMillis(int64_t ms) { return StoreTime{std::chrono::milliseconds{ms}}; }
inline StoreTime Now() {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// What retention counts for each piece: the bytes of the text we store, not the row overhead.
inline int64_t NewJobBytes(const NewJob& job) {
    return static_cast<int64_t>(job.text.size() + job.options_json.size());
}
inline int64_t StepBytes(const Step& step) {
    return static_cast<int64_t>(step.output.size() + step.metadata_json.size());
}
inline int64_t EventBytes(const NewEvent& event) {
    return static_cast<int64_t>(event.name.size() + event.data_json.size());
}
inline int64_t OutcomeBytes(const JobOutcome& outcome) {
    return static_cast<int64_t>(outcome.result_json.size() + outcome.error_json.size());
}

// Checks shared by both stores before anything touches the database.
StoreStatus ValidateNewJob(const NewJob& job);
StoreStatus ValidateStep(const Step& step);
StoreStatus ValidateLease(const std::string& owner, std::chrono::milliseconds lease);
StoreStatus ValidateLimit(int limit);

// The message for a write of `owner` that matched no row: the job is gone, finished, or another's.
StoreError NotOwnedError(const std::string& job_id, const std::string& owner, bool exists, JobState state,
                         const std::string& current_owner);

// At most `max` connections, opened on demand by `open`, each used by one call at a time.
// A connection found broken is discarded by its holder; the next Acquire opens a new one.
template <typename Connection>
class ConnectionPool {
public:
    using Opener = std::function<StoreResult<std::unique_ptr<Connection>>()>;

    ConnectionPool(int max, Opener open) : max_(max < 1 ? 1 : max), open_(std::move(open)) {}

    // Hands the connection back on destruction, unless Discard()ed.
    class Handle {
    public:
        Handle(ConnectionPool* pool, std::unique_ptr<Connection> connection)
            : pool_(pool), connection_(std::move(connection)) {}
        Handle(Handle&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}
        Handle& operator=(Handle&&) = delete;
        Handle(const Handle&) = delete;
        Handle& operator=(const Handle&) = delete;
        ~Handle() {
            if (pool_ != nullptr) pool_->Return(std::move(connection_));
        }
        Connection& operator*() { return *connection_; }
        Connection* operator->() { return connection_.get(); }
        // The connection is broken: close it instead of giving it to the next call.
        void Discard() { connection_.reset(); }
        // Replaces a discarded connection (reconnect within one call).
        void Replace(std::unique_ptr<Connection> connection) { connection_ = std::move(connection); }

    private:
        ConnectionPool* pool_;
        std::unique_ptr<Connection> connection_;
    };

    StoreResult<Handle> Acquire() {
        std::unique_lock lock(mutex_);
        available_.wait(lock, [&] { return !idle_.empty() || open_count_ < max_; });
        if (!idle_.empty()) {
            std::unique_ptr<Connection> connection = std::move(idle_.back());
            idle_.pop_back();
            return Handle(this, std::move(connection));
        }
        ++open_count_;  // reserved while opening outside the lock: connecting may take seconds
        lock.unlock();
        StoreResult<std::unique_ptr<Connection>> opened = open_();
        if (!opened.ok()) {
            lock.lock();
            --open_count_;
            available_.notify_one();
            return opened.error();
        }
        return Handle(this, std::move(opened).value());
    }

    // Takes a connection opened elsewhere (the one that set the database up) as an idle one.
    void Add(std::unique_ptr<Connection> connection) {
        std::lock_guard lock(mutex_);
        ++open_count_;
        idle_.push_back(std::move(connection));
        available_.notify_one();
    }

    // Opens a connection outside the pool's count, for a Handle::Replace.
    StoreResult<std::unique_ptr<Connection>> Open() { return open_(); }

private:
    void Return(std::unique_ptr<Connection> connection) {
        std::lock_guard lock(mutex_);
        if (connection) {
            idle_.push_back(std::move(connection));
        } else {
            --open_count_;
        }
        available_.notify_one();
    }

    const int max_;
    const Opener open_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    int open_count_ = 0;  // idle + held + being opened
};

}  // namespace summarizer::job_store_internal
