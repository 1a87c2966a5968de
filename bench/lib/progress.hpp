// Progress of a run for a human at a terminal or in a log.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "lib/run.hpp"

namespace summarizer::bench {

// Renders progress for a human: on a TTY one line rewritten with '\r' per case, otherwise one
// plain line per finished run (logs and CI stay readable).
class ProgressPrinter {
public:
    ProgressPrinter(std::ostream& out, bool is_tty) : out_(out), is_tty_(is_tty) {}
    void operator()(const ProgressEvent& event);

private:
    void Rewrite(const std::string& line);
    std::ostream& out_;
    bool is_tty_;
    size_t last_width_ = 0;
};

}  // namespace summarizer::bench
