// summarizer-bench's logic: the design record's benchmark method (cases small/medium/large/xl,
// warm-up runs, measured runs, P50/P95) run against a real Ollama or against the summarizer
// service, and the report it produces (Markdown table, JSON with every sample, SVG chart).
//
// Deliberately independent of the service's logic: it speaks the two wire formats itself
// (Ollama's NDJSON /api/generate, the service's SSE /summarize), so it measures the service from
// the outside exactly as a client sees it; it shares only the pure helpers of summarizer_base
// (line and SSE framing, UTF-8, percentiles, durations). One benchmark runs its requests one after
// another, as the record did.
//
// One header per concern, all included here:
#pragma once

#include "lib/cases.hpp"     // the case files and the --cases/--lang syntax
#include "lib/client.hpp"    // one request to Ollama (NDJSON) or the service (SSE); Ollama's state
#include "lib/config.hpp"    // the target, the request settings, the targets
#include "lib/progress.hpp"  // progress for a human
#include "lib/report.hpp"    // Markdown, JSON and SVG reports
#include "lib/run.hpp"       // running every case
#include "lib/summary.hpp"   // a case's statistics (P50/P95)
#include "lib/verdict.hpp"   // a case against the targets
