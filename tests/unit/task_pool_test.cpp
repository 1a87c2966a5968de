// TaskPool and RunBounded when the system has no thread to give: a job is run later by one of the
// pool's own threads, or refused at once, never left in a queue no thread serves.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "summarizer/task_pool.hpp"

namespace summarizer {
namespace {

// Starts real threads until `allowed` have been started, then throws as std::thread does when the
// system is out of threads.
TaskPool::ThreadStarter StarterAllowing(const std::atomic<int>& allowed, std::atomic<int>& started) {
    return [&allowed, &started](std::function<void()> body) {
        if (started.load() >= allowed.load()) {
            throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
        }
        ++started;
        return std::thread(std::move(body));
    };
}

void WaitForCount(const std::atomic<int>& count, int value) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (count.load() < value && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

TEST(TaskPoolTest, AJobNoThreadCanRunIsRefusedNotKept) {
    std::atomic<int> allowed{0}, started{0};
    std::atomic<int> refused_ran{0}, later_ran{0};
    TaskPool pool("test", 4, StarterAllowing(allowed, started));
    EXPECT_THROW(pool.Post([&] { ++refused_ran; }), std::system_error);
    EXPECT_EQ(pool.threads(), 0u);
    // Once threads can be had again, the refused job does not run after all (its caller was told
    // it would not, and what it refers to may be gone).
    allowed = 1;
    pool.Post([&] { ++later_ran; });
    WaitForCount(later_ran, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(later_ran.load(), 1);
    EXPECT_EQ(refused_ran.load(), 0);
}

TEST(TaskPoolTest, AJobWaitsForThePoolsOwnThreadWhenNoNewOneStarts) {
    std::atomic<int> allowed{1}, started{0};
    std::mutex mutex;
    std::condition_variable cv;
    bool release = false;
    std::atomic<int> ran{0};
    TaskPool pool("test", 4, StarterAllowing(allowed, started));
    pool.Post([&] {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return release; });
        ++ran;
    });
    EXPECT_NO_THROW(pool.Post([&] { ++ran; }));  // no thread to start: it waits for the first one
    EXPECT_EQ(pool.threads(), 1u);
    {
        std::lock_guard lock(mutex);
        release = true;
    }
    cv.notify_all();
    WaitForCount(ran, 2);
    EXPECT_EQ(ran.load(), 2);
}

TEST(TaskPoolTest, RunBoundedDoesTheHelpersShareWhenThePoolHasNoThread) {
    std::atomic<int> allowed{0}, started{0};
    TaskPool pool("test", 4, StarterAllowing(allowed, started));
    CancelToken cancel;
    std::mutex mutex;
    std::set<int> done;
    std::set<std::thread::id> threads;
    const auto error = RunBounded(pool, 10, 4, cancel, "job", [&](int index) -> std::optional<Error> {
        std::lock_guard lock(mutex);
        done.insert(index);
        threads.insert(std::this_thread::get_id());
        return std::nullopt;
    });
    EXPECT_FALSE(error.has_value());
    EXPECT_EQ(done.size(), 10u);
    EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(TaskPoolTest, RunBoundedRunsEveryJobWithFewerHelpersThanAsked) {
    std::atomic<int> allowed{1}, started{0};
    TaskPool pool("test", 4, StarterAllowing(allowed, started));
    CancelToken cancel;
    std::atomic<int> done{0};
    const auto error = RunBounded(pool, 20, 4, cancel, "job", [&](int) -> std::optional<Error> {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ++done;
        return std::nullopt;
    });
    EXPECT_FALSE(error.has_value());
    EXPECT_EQ(done.load(), 20);
    EXPECT_EQ(started.load(), 1);
}

TEST(TaskPoolTest, AJobThatThrowsEndsAloneAndThePoolGoesOn) {
    TaskPool pool("test", 1);
    std::atomic<int> ran{0};
    pool.Post([] { throw std::runtime_error("boom"); });
    pool.Post([&] { ++ran; });
    WaitForCount(ran, 1);
    EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace summarizer
