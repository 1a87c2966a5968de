// Waits for a condition that another thread or process makes true.
#pragma once

#include <chrono>
#include <thread>

namespace summarizer::testing {

// Whether `condition()` became true within `limit`, checked every millisecond (and once more at
// the end).
template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return condition();
}

}  // namespace summarizer::testing
