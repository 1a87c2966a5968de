#include "summarizer/http_types.hpp"

#include <algorithm>
#include <cctype>

namespace summarizer {

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](unsigned char x, unsigned char y) {
        return std::tolower(x) < std::tolower(y);
    });
}

std::string HttpRequest::Header(std::string_view name) const {
    auto it = headers.find(std::string(name));
    return it == headers.end() ? std::string() : it->second;
}

void EventStream::Push(std::string bytes) {
    std::function<void()> wakeup;
    {
        std::lock_guard lock(mutex_);
        if (finished_) return;
        queue_.push_back(std::move(bytes));
        last_push_ = std::chrono::steady_clock::now();
        wakeup = wakeup_;
    }
    cv_.notify_one();
    if (wakeup) wakeup();
}

void EventStream::Finish() {
    std::function<void()> wakeup;
    {
        std::lock_guard lock(mutex_);
        finished_ = true;
        wakeup = wakeup_;
    }
    cv_.notify_one();
    if (wakeup) wakeup();
}

EventStream::TakeResult EventStream::Take(std::string& out, std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (queue_.empty() && !finished_ && wait.count() > 0) {
        cv_.wait_for(lock, wait, [&] { return !queue_.empty() || finished_; });
    }
    if (!queue_.empty()) {
        for (auto& piece : queue_) out += piece;
        queue_.clear();
        return TakeResult::kData;
    }
    return finished_ ? TakeResult::kFinished : TakeResult::kEmpty;
}

void EventStream::SetWakeup(std::function<void()> wakeup) {
    std::lock_guard lock(mutex_);
    wakeup_ = std::move(wakeup);
}

bool EventStream::finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
}

std::chrono::steady_clock::time_point EventStream::last_push() const {
    std::lock_guard lock(mutex_);
    return last_push_;
}

void HttpResponse::SetHeader(std::string name, std::string value) {
    CaseInsensitiveLess less;
    for (auto& [key, existing] : headers) {
        if (!less(key, name) && !less(name, key)) {
            existing = std::move(value);
            return;
        }
    }
    headers.emplace_back(std::move(name), std::move(value));
}

std::string HttpResponse::Header(std::string_view name) const {
    CaseInsensitiveLess less;
    for (const auto& [key, value] : headers) {
        if (!less(key, name) && !less(name, key)) return value;
    }
    return "";
}

}  // namespace summarizer
