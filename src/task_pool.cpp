#include "summarizer/task_pool.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <system_error>

#include <spdlog/spdlog.h>

namespace summarizer {

TaskPool::TaskPool(std::string name, int max_threads, ThreadStarter start)
    : name_(std::move(name)),
      max_threads_(static_cast<size_t>(std::max(1, max_threads))),
      start_(start ? std::move(start) : [](std::function<void()> body) { return std::thread(std::move(body)); }) {}

TaskPool::~TaskPool() {
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();
}

void TaskPool::Post(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
        try {
            threads_.push_back(start_([this] { Loop(); }));
            return;
        } catch (const std::system_error& e) {
            if (threads_.empty()) {
                jobs_.pop_back();
                spdlog::error("{}: no thread could be started ({}); the job is refused", name_, e.what());
                throw;
            }
            spdlog::warn("{}: no new thread ({}); the job waits for one of the {} running", name_, e.what(),
                         threads_.size());
        }
    }
    cv_.notify_one();
}

size_t TaskPool::threads() const {
    std::lock_guard lock(mutex_);
    return threads_.size();
}

void TaskPool::Loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) return;  // stopping, and every posted job has run
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        // The boundary: a stray exception ends this job, never the process.
        (void)CatchAll(name_ + " job", [&]() -> std::optional<Error> {
            job();
            return std::nullopt;
        });
        job = nullptr;
        lock.lock();
    }
}

std::optional<Error> CatchAll(const std::string& what, const std::function<std::optional<Error>()>& fn) {
    std::string message;
    try {
        return fn();
    } catch (const std::exception& e) {
        message = e.what();
    } catch (...) {
        message = "unknown exception";
    }
    spdlog::error("internal error in {}: {}", what, message);
    return MakeError(ErrorCode::kInternal, "internal error in " + what + ": " + message);
}

std::optional<Error> RunBounded(TaskPool& pool, int count, int parallel, const CancelToken& cancel,
                                const std::string& what, const std::function<std::optional<Error>(int index)>& job) {
    struct Shared {
        std::atomic<int> next{0};
        std::mutex mutex;
        std::condition_variable done_cv;
        int running_helpers = 0;
        std::optional<Error> first_error;
    };
    auto shared = std::make_shared<Shared>();
    auto work = [shared, count, &cancel, &what, &job] {
        while (!cancel.cancelled()) {
            const int index = shared->next.fetch_add(1);
            if (index >= count) return;
            auto error = CatchAll(what + " " + std::to_string(index + 1), [&] { return job(index); });
            if (error) {
                std::lock_guard lock(shared->mutex);
                if (!shared->first_error) shared->first_error = std::move(error);
                cancel.Cancel();
                return;
            }
        }
    };
    const int helpers = std::max(0, std::min(parallel, count) - 1);
    shared->running_helpers = helpers;
    for (int i = 0; i < helpers; ++i) {
        try {
            pool.Post([shared, work] {
                work();
                std::lock_guard lock(shared->mutex);
                if (--shared->running_helpers == 0) shared->done_cv.notify_all();
            });
        } catch (const std::system_error&) {
            // The pool has no thread at all: this thread does the helpers' share (Post logged it).
            std::lock_guard lock(shared->mutex);
            shared->running_helpers -= helpers - i;
            break;
        }
    }
    work();
    std::unique_lock lock(shared->mutex);
    shared->done_cv.wait(lock, [&] { return shared->running_helpers == 0; });
    return shared->first_error;
}

}  // namespace summarizer
