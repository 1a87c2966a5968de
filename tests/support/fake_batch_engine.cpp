#include "fake_batch_engine.hpp"

#include <algorithm>

namespace summarizer::testing {

using Clock = std::chrono::steady_clock;

FakeBatchEngine::FakeBatchEngine(FakeBatchModel model) : model_(model), thread_([this] { Loop(); }) {}

FakeBatchEngine::~FakeBatchEngine() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_cv_.notify_all();
    progress_cv_.notify_all();
    thread_.join();
}

std::shared_ptr<FakeBatchEngine::Sequence> FakeBatchEngine::Submit(int64_t prompt_tokens, int64_t max_tokens) {
    auto seq = std::make_shared<Sequence>();
    seq->prompt_tokens = std::max<int64_t>(1, prompt_tokens);
    seq->max_tokens = std::max<int64_t>(1, max_tokens);
    {
        std::lock_guard lock(mutex_);
        waiting_.push_back(seq);
    }
    work_cv_.notify_all();
    return seq;
}

FakeBatchEngine::Sequence FakeBatchEngine::Wait(const std::shared_ptr<Sequence>& seq, int64_t seen,
                                                std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    progress_cv_.wait_for(lock, timeout, [&] { return stopping_ || seq->finished || seq->generated > seen; });
    return *seq;
}

void FakeBatchEngine::Cancel(const std::shared_ptr<Sequence>& seq) {
    std::lock_guard lock(mutex_);
    seq->cancelled = true;
}

int FakeBatchEngine::Running() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(running_.size());
}

int FakeBatchEngine::MaxRunning() const {
    std::lock_guard lock(mutex_);
    return max_running_;
}

void FakeBatchEngine::Loop() {
    std::unique_lock lock(mutex_);
    auto next_step = Clock::now();  // steps are laid out on an absolute clock: no drift from sleep overshoot
    for (;;) {
        work_cv_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
        if (stopping_) return;
        std::erase_if(running_, [](const auto& s) { return s->cancelled || s->finished; });
        std::erase_if(waiting_, [](const auto& s) { return s->cancelled; });
        while (static_cast<int>(running_.size()) < model_.max_seqs && !waiting_.empty()) {
            running_.push_back(waiting_.front());
            waiting_.pop_front();
        }
        max_running_ = std::max(max_running_, static_cast<int>(running_.size()));
        if (running_.empty()) {
            next_step = Clock::now();
            continue;
        }
        // One step: a token for every decoding sequence, then prefill chunks in arrival order.
        int64_t budget = model_.max_batched_tokens;
        int decoding = 0;
        for (const auto& s : running_) {
            if (s->prompt_done == s->prompt_tokens) ++decoding;
        }
        budget -= decoding;
        std::vector<std::pair<Sequence*, int64_t>> prefills;
        int64_t prefill_tokens = 0;
        for (const auto& s : running_) {
            if (s->prompt_done == s->prompt_tokens || budget <= 0) continue;
            const int64_t take = std::min(budget, s->prompt_tokens - s->prompt_done);
            prefills.emplace_back(s.get(), take);
            prefill_tokens += take;
            budget -= take;
        }
        const double step_s = (model_.step_ms + model_.step_ms_per_seq * std::max(0, decoding - 1)) / 1000.0 +
                              static_cast<double>(prefill_tokens) / model_.prefill_tokens_per_s;
        next_step = std::max(next_step, Clock::now() - std::chrono::milliseconds(50)) +
                    std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(step_s / model_.time_scale));
        for (const auto& s : waiting_) s->queued_s += step_s;
        // Sleep out the step (cancellations and arrivals wait for its end, as in an engine).
        lock.unlock();
        std::this_thread::sleep_until(next_step);
        lock.lock();
        for (const auto& s : running_) {
            if (s->cancelled) continue;
            if (s->prompt_done == s->prompt_tokens) {
                ++s->generated;
                s->decode_s += step_s;
            } else {
                s->prefill_s += step_s;
            }
        }
        for (auto& [s, take] : prefills) {
            s->prompt_done += take;
            if (s->prompt_done == s->prompt_tokens) s->generated = 1;  // the step that ends a prefill samples a token
        }
        for (const auto& s : running_) {
            if (s->generated >= s->max_tokens) s->finished = true;
        }
        progress_cv_.notify_all();
    }
}

}  // namespace summarizer::testing
