// A bounded pool of threads, started on demand and kept, for work the service runs off the
// calling thread: streamed summaries, the upstream calls of a map or merge level. Every job runs
// inside an exception boundary: a job that throws is logged and ends, the thread and the
// process go on. Thread-safe. The destructor runs the jobs already posted, then joins.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "summarizer/error.hpp"
#include "summarizer/llm_engine.hpp"

namespace summarizer {

class TaskPool {
public:
    // Starts a thread that runs `body`; std::thread's constructor unless a test gives one that
    // throws std::system_error as std::thread does when the system has no thread to give.
    using ThreadStarter = std::function<std::thread(std::function<void()> body)>;

    // `name` appears in the log line of a job that threw.
    TaskPool(std::string name, int max_threads, ThreadStarter start = {});
    ~TaskPool();
    TaskPool(const TaskPool&) = delete;
    TaskPool& operator=(const TaskPool&) = delete;

    // Runs `job` on a pool thread: a new one while fewer than max_threads exist and none is idle,
    // else the next free one (jobs wait in FIFO order). When the system refuses a new thread the
    // job waits for one of the pool's own; with none, it is not kept and std::system_error is
    // thrown (a job left in a queue no thread serves would never run, and what it refers to
    // would be gone when a thread finally took it).
    void Post(std::function<void()> job);

    size_t threads() const;

private:
    void Loop();

    const std::string name_;
    const size_t max_threads_;
    const ThreadStarter start_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool stopping_ = false;
};

// Runs `job(0) .. job(count - 1)`, at most `parallel` at once: the calling thread works too and
// `parallel - 1` helpers run on `pool` (fewer when the pool cannot take them: the calling thread
// then does their share); returns when all have ended. The first error stops new
// jobs from starting and cancels `cancel` (which the running jobs watch); it is returned. A job
// that throws counts as a kInternal error naming `what`.
std::optional<Error> RunBounded(TaskPool& pool, int count, int parallel, const CancelToken& cancel,
                                const std::string& what, const std::function<std::optional<Error>(int index)>& job);

// Calls `fn`, turning an exception into a kInternal error naming `what` (and logging it).
std::optional<Error> CatchAll(const std::string& what, const std::function<std::optional<Error>()>& fn);

}  // namespace summarizer
