// FUZZ_CHECK(condition, message): the fuzz targets' assertion. Unlike assert() it stays on in
// every build type; on failure it prints what was violated and aborts, which libFuzzer reports
// as a finding and saves the input as crash-<sha1>.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, message)                                                                    \
    do {                                                                                                  \
        if (!(condition)) {                                                                               \
            std::fprintf(stderr, "%s:%d: invariant violated: %s (%s)\n", __FILE__, __LINE__, #condition, \
                         message);                                                                        \
            std::abort();                                                                                 \
        }                                                                                                 \
    } while (false)
