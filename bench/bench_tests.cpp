// Tests of summarizer-bench's library: arguments, cases, statistics per case, report rendering, and
// whole runs against the fake Ollama (tests/support) and a small in-test SSE service. (Percentile,
// the line framer and the SSE reader are summarizer_base's: tests/unit/base_*_test.cpp.)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "bench_lib.hpp"
#include "fake_ollama.hpp"

namespace summarizer::bench {
namespace {

using json = nlohmann::json;
using summarizer::testing::FakeBehavior;
using summarizer::testing::FakeOllama;

// ---- Small parsers ------------------------------------------------------------------------------

TEST(ArgumentsTest, SplitsCommaLists) {
    EXPECT_EQ(SplitCommaList("small, medium,,xl "), (std::vector<std::string>{"small", "medium", "xl"}));
    EXPECT_TRUE(SplitCommaList(" , ").empty());
}

TEST(ArgumentsTest, ParsesBaseUrls) {
    auto url = ParseBaseUrl("http://127.0.0.1:11434/");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->scheme_host_port, "http://127.0.0.1:11434");
    EXPECT_EQ(url->path_prefix, "");
    url = ParseBaseUrl("https://gpu.example:8443/ollama/");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->scheme_host_port, "https://gpu.example:8443");
    EXPECT_EQ(url->path_prefix, "/ollama");
    url = ParseBaseUrl("localhost:11434");  // OLLAMA_HOST style
    ASSERT_TRUE(url);
    EXPECT_EQ(url->scheme_host_port, "http://localhost:11434");
    EXPECT_FALSE(ParseBaseUrl("ftp://host"));
    EXPECT_FALSE(ParseBaseUrl("http:///path"));
}

class TempDir {
public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() /
                ("bench_tests_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }
    void Write(const std::string& name, const std::string& content) const {
        std::ofstream(path_ / name, std::ios::binary) << content;
    }

private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

TEST(LoadCasesTest, LoadsNameMajorAndCountsCodePoints) {
    TempDir dir;
    dir.Write("small.en.txt", "Hello world.");
    dir.Write("small.ja.txt", "日本語の文章。");
    dir.Write("large.en.txt", "Big text.");
    dir.Write("large.ja.txt", "大きい。");
    const CaseLoadResult loaded = LoadCases(dir.path(), {"small", "large"}, {"en", "ja"});
    ASSERT_TRUE(loaded.ok()) << loaded.error;
    ASSERT_EQ(loaded.cases.size(), 4u);
    EXPECT_EQ(loaded.cases[0].name + "." + loaded.cases[0].lang, "small.en");
    EXPECT_EQ(loaded.cases[1].name + "." + loaded.cases[1].lang, "small.ja");
    EXPECT_EQ(loaded.cases[2].name + "." + loaded.cases[2].lang, "large.en");
    EXPECT_EQ(loaded.cases[1].chars, 7);  // code points, not the 21 bytes
}

TEST(LoadCasesTest, NamesEveryMissingOrBlankFile) {
    TempDir dir;
    dir.Write("small.en.txt", "Hello.");
    dir.Write("small.ja.txt", "  \n");
    const CaseLoadResult loaded = LoadCases(dir.path(), {"small", "xl"}, {"en", "ja"});
    EXPECT_FALSE(loaded.ok());
    EXPECT_TRUE(loaded.cases.empty());
    EXPECT_NE(loaded.error.find("small.ja.txt (blank)"), std::string::npos) << loaded.error;
    EXPECT_NE(loaded.error.find("xl.en.txt"), std::string::npos);
    EXPECT_NE(loaded.error.find("xl.ja.txt"), std::string::npos);
}

TEST(PromptTest, AsksForTheCaseLanguageAndDelimitsTheText) {
    const std::string en = BuildOllamaPrompt("en", "THE TEXT");
    EXPECT_NE(en.find("<document>\nTHE TEXT\n</document>"), std::string::npos);
    EXPECT_NE(en.find("in English"), std::string::npos);
    const std::string ja = BuildOllamaPrompt("ja", "本文");
    EXPECT_NE(ja.find("<document>\n本文\n</document>"), std::string::npos);
    EXPECT_NE(ja.find("日本語で"), std::string::npos);
}

// ---- Summary and verdict ----------------------------------------------------------------------

RunSample MakeSample(bool warmup, bool ok, double ttft, double latency, double prefill, double decode) {
    RunSample sample;
    sample.warmup = warmup;
    sample.ok = ok;
    if (!ok) {
        sample.error = "HTTP 500: boom";
        sample.latency_s = latency;
        return sample;
    }
    sample.ttft_s = ttft;
    sample.latency_s = latency;
    sample.prefill_tps = prefill;
    sample.decode_tps = decode;
    sample.prompt_tokens = 300;
    sample.output_tokens = 240;
    return sample;
}

TEST(SummarizeCaseTest, ExcludesWarmupsAndFailures) {
    const std::vector<RunSample> samples = {
        MakeSample(true, true, 9.0, 20.0, 100, 10),  // a cold warm-up: must not count
        MakeSample(true, false, 0, 1.0, 0, 0),       MakeSample(false, true, 0.2, 5.0, 3000, 60),
        MakeSample(false, true, 0.4, 7.0, 2000, 50), MakeSample(false, false, 0, 0.5, 0, 0),
        MakeSample(false, true, 0.3, 6.0, 2500, 55),
    };
    const CaseSummary summary = SummarizeCase(samples, Targets{});
    EXPECT_EQ(summary.runs_ok, 3);
    EXPECT_EQ(summary.runs_failed, 1);
    EXPECT_EQ(summary.warmup_failed, 1);
    EXPECT_EQ(summary.first_error, "HTTP 500: boom");
    EXPECT_DOUBLE_EQ(*summary.ttft_p50_s, 0.3);
    EXPECT_NEAR(*summary.ttft_p95_s, 0.39, 1e-12);
    EXPECT_DOUBLE_EQ(*summary.latency_p50_s, 6.0);
    EXPECT_DOUBLE_EQ(*summary.prefill_tps_p50, 2500);
    EXPECT_DOUBLE_EQ(*summary.decode_tps_p50, 55);
    EXPECT_EQ(*summary.prompt_tokens, 300);
    EXPECT_TRUE(summary.verdict.pass);
}

TEST(SummarizeCaseTest, VerdictNamesEachMissedTarget) {
    const std::vector<RunSample> samples = {MakeSample(false, true, 2.5, 9.0, 400, 30)};
    CaseSummary summary = SummarizeCase(samples, Targets{});
    EXPECT_FALSE(summary.verdict.pass);
    EXPECT_EQ(summary.verdict.reasons, (std::vector<std::string>{"TTFT", "decode", "prefill"}));

    const std::vector<RunSample> failed = {MakeSample(false, false, 0, 1, 0, 0)};
    summary = SummarizeCase(failed, Targets{});
    EXPECT_FALSE(summary.verdict.pass);
    EXPECT_EQ(summary.verdict.reasons, (std::vector<std::string>{"all runs failed"}));
}

TEST(SummarizeCaseTest, AMetricTheTargetDoesNotReportIsNotHeldAgainstIt) {
    RunSample sample = MakeSample(false, true, 0.5, 5.0, 0, 60);
    sample.prefill_tps.reset();
    const CaseSummary summary = SummarizeCase({sample}, Targets{});
    EXPECT_FALSE(summary.prefill_tps_p50);
    EXPECT_TRUE(summary.verdict.pass);
}

// ---- Rendering --------------------------------------------------------------------------------

BenchReport MakeReport() {
    BenchReport report;
    report.config.ollama_url = "http://127.0.0.1:11434";
    report.config.model = "gemma3-4b-16k";
    report.config.warmup_runs = 1;
    report.config.measured_runs = 2;
    report.started_at = "2026-01-01T00:00:00Z";
    report.wall_s = 12.5;
    const auto add_case = [&](const std::string& name, const std::string& lang, std::vector<RunSample> samples) {
        CaseResult result;
        result.name = name;
        result.lang = lang;
        result.chars = 500;
        result.samples = std::move(samples);
        result.summary = SummarizeCase(result.samples, report.config.targets);
        VramSnapshot vram;
        vram.ok = true;
        vram.size_bytes = vram.size_vram_bytes = 5LL << 30;
        vram.models.push_back({"gemma3-4b-16k:latest", 5LL << 30, 5LL << 30, 16384});
        result.vram = vram;
        report.cases.push_back(std::move(result));
    };
    add_case("small", "en",
             {MakeSample(true, true, 1, 9, 3000, 60), MakeSample(false, true, 0.25, 5.86, 3020.5, 61.4),
              MakeSample(false, true, 0.27, 6.1, 3000, 61.0)});
    add_case("large", "ja", {MakeSample(false, true, 2.4, 11.0, 450, 51.3), MakeSample(false, false, 0, 2, 0, 0)});
    add_case("xl<&>", "ja", {MakeSample(false, false, 0, 1, 0, 0), MakeSample(false, false, 0, 1, 0, 0)});
    return report;
}

TEST(RenderMarkdownTest, HasAHeaderAndOneRowPerCase) {
    const std::string markdown = RenderMarkdown(MakeReport());
    std::istringstream lines(markdown);
    std::vector<std::string> table;
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("|", 0) == 0) table.push_back(line);
    }
    ASSERT_EQ(table.size(), 2u + 3u) << markdown;
    EXPECT_NE(table[0].find("| TTFT P50 | TTFT P95 |"), std::string::npos);
    const auto columns = [](const std::string& row) { return std::count(row.begin(), row.end(), '|'); };
    for (const auto& row : table) EXPECT_EQ(columns(row), columns(table[0])) << row;
    EXPECT_NE(table[2].find("| small | en | 500 | 2/2 | 0.26s |"), std::string::npos) << table[2];
    EXPECT_NE(table[2].find("| 5.00 GiB | PASS |"), std::string::npos) << table[2];
    EXPECT_NE(table[3].find("| 1/2 |"), std::string::npos) << table[3];
    EXPECT_NE(table[3].find("FAIL (TTFT, prefill)"), std::string::npos) << table[3];
    EXPECT_NE(table[4].find("FAIL (all runs failed)"), std::string::npos) << table[4];
    EXPECT_NE(markdown.find("large/ja: 1 of 2 measured runs failed; first: HTTP 500: boom"), std::string::npos);
}

TEST(RenderJsonTest, ParsesAndHoldsEverySample) {
    const BenchReport report = MakeReport();
    const json parsed = json::parse(RenderJson(report).dump());
    EXPECT_EQ(parsed["tool"], "summarizer-bench");
    EXPECT_FALSE(parsed["config"].contains("api_key"));
    ASSERT_EQ(parsed["cases"].size(), 3u);
    EXPECT_EQ(parsed["cases"][0]["samples"].size(), 3u);  // the warm-up too, flagged
    EXPECT_TRUE(parsed["cases"][0]["samples"][0]["warmup"].get<bool>());
    EXPECT_DOUBLE_EQ(parsed["cases"][0]["summary"]["decode_tps_p50"].get<double>(), 61.2);
    EXPECT_EQ(parsed["cases"][0]["summary"]["verdict"], "PASS");
    EXPECT_TRUE(parsed["cases"][2]["summary"]["ttft_p50_s"].is_null());
    EXPECT_EQ(parsed["cases"][0]["vram"]["models"][0]["context_length"], 16384);
    EXPECT_EQ(parsed["totals"]["measured_ok"], 3);
    EXPECT_EQ(parsed["totals"]["measured_failed"], 3);
}

// Checks that every tag is closed in order (an XML well-formedness check good enough for our SVG:
// no CDATA, no comments) and returns the root element's start tag.
std::string CheckBalancedTags(const std::string& xml) {
    std::vector<std::string> open;
    std::string root;
    const std::regex tag(R"(<(/?)([A-Za-z][\w:-]*)([^<>]*?)(/?)>)");
    size_t covered = 0;
    for (auto it = std::sregex_iterator(xml.begin(), xml.end(), tag); it != std::sregex_iterator(); ++it) {
        const std::smatch& m = *it;
        const std::string between = xml.substr(covered, m.position() - covered);
        EXPECT_EQ(between.find('<'), std::string::npos) << "stray '<' before " << m.str();
        covered = m.position() + m.length();
        if (root.empty()) root = m.str();
        if (m[1] == "/") {
            EXPECT_FALSE(open.empty()) << "close without open: " << m.str();
            if (open.empty()) return root;
            EXPECT_EQ(open.back(), m[2].str());
            open.pop_back();
        } else if (m[4] != "/") {
            open.push_back(m[2]);
        }
        if (open.empty() && covered < xml.size()) {
            EXPECT_EQ(xml.find('<', covered), std::string::npos) << "content after the root element";
        }
    }
    EXPECT_TRUE(open.empty()) << "unclosed: " << (open.empty() ? "" : open.back());
    return root;
}

size_t CountOccurrences(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

TEST(RenderSvgTest, IsWellFormedWithOneBarPerCaseAndMetric) {
    const std::string svg = RenderSvg(MakeReport());
    const std::string root = CheckBalancedTags(svg);
    EXPECT_EQ(root.rfind("<svg ", 0), 0u) << root;
    EXPECT_NE(root.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    // Two cases have data, the third failed every run: it gets no bars, only "n/a".
    EXPECT_EQ(CountOccurrences(svg, "class=\"bar ttft\""), 2u);
    EXPECT_EQ(CountOccurrences(svg, "class=\"bar latency\""), 2u);
    EXPECT_NE(svg.find(">small/en<"), std::string::npos);
    EXPECT_NE(svg.find(">xl&lt;&amp;&gt;/ja<"), std::string::npos);  // escaped
    EXPECT_NE(svg.find("class=\"axis y\""), std::string::npos);
    EXPECT_NE(svg.find("TTFT target 2 s"), std::string::npos);
    EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(RenderSvgTest, BarHeightsAreProportional) {
    const std::string svg = RenderSvg(MakeReport());
    const std::regex bar(R"re(class="bar (ttft|latency)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)")re");
    std::vector<double> heights;
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator(); ++it) {
        heights.push_back(std::stod((*it)[2]));
    }
    ASSERT_EQ(heights.size(), 4u);
    // small/en latency P50 (5.98 s) against large/ja latency (11 s).
    EXPECT_NEAR(heights[1] / heights[3], 5.98 / 11.0, 0.01);
}

TEST(WriteReportFilesTest, WritesTheThreeFiles) {
    TempDir dir;
    const auto out = dir.path() / "nested" / "out";
    EXPECT_EQ(WriteReportFiles(MakeReport(), out), "");
    for (const char* name : {"report.md", "report.json", "report.svg"}) {
        EXPECT_GT(std::filesystem::file_size(out / name), 100u) << name;
    }
    std::ifstream in(out / "report.json");
    EXPECT_FALSE(json::parse(in, nullptr, false).is_discarded());
}

TEST(ProgressPrinterTest, PlainLinesWithoutATty) {
    std::ostringstream out;
    ProgressPrinter printer(out, false);
    RunSample sample = MakeSample(false, true, 0.25, 5.0, 3000, 60);
    ProgressEvent event;
    event.case_count = 2;
    event.case_name = "small";
    event.lang = "en";
    event.run = 1;
    event.runs = 3;
    event.stage = ProgressEvent::Stage::kRunStarting;
    printer(event);
    event.stage = ProgressEvent::Stage::kRunFinished;
    event.sample = &sample;
    printer(event);
    EXPECT_EQ(out.str(), "[1/2] small/en run 1/3: TTFT 0.25s, latency 5.00s, decode 60.0 tok/s\n");
}

TEST(ProgressPrinterTest, RewritesOneLineOnATty) {
    std::ostringstream out;
    ProgressPrinter printer(out, true);
    RunSample sample = MakeSample(true, true, 0.25, 5.0, 3000, 60);
    ProgressEvent event;
    event.case_count = 1;
    event.case_name = "small";
    event.lang = "ja";
    event.warmup = true;
    event.run = 1;
    event.runs = 1;
    printer(event);
    event.stage = ProgressEvent::Stage::kRunFinished;
    event.sample = &sample;
    printer(event);
    EXPECT_EQ(out.str().find('\n'), std::string::npos);
    EXPECT_EQ(CountOccurrences(out.str(), "\r"), 2u);
    EXPECT_NE(out.str().find("\r[1/1] small/ja warm-up 1/1 ..."), std::string::npos);
}

// ---- Against the fake Ollama ------------------------------------------------------------------

constexpr double kPrefillRate = 2500.0;
constexpr double kDecodeRate = 80.0;
constexpr int kFirstPieceDelayMs = 60;

class OllamaBenchTest : public ::testing::Test {
protected:
    void SetUp() override {
        FakeBehavior behavior;
        behavior.reply = "The elevator is out of service for a week; use elevator A or the dock lift meanwhile.";
        behavior.piece_chars = 12;
        behavior.first_piece_delay_ms = kFirstPieceDelayMs;
        behavior.piece_delay_ms = 2;
        behavior.prefill_tokens_per_s = kPrefillRate;
        behavior.decode_tokens_per_s = kDecodeRate;
        fake_.SetBehavior(behavior);

        config_.ollama_url = fake_.url();
        config_.model = "gemma3-4b-16k";
        config_.warmup_runs = 1;
        config_.measured_runs = 2;
        config_.timeout_s = 5;
        cases_ = {BenchCase{"small", "en", std::string(600, 'a') + " elevator notice.", 617},
                  BenchCase{"small", "ja", "エレベーターB号機は点検のため停止します。" + std::string(200, 'x'), 221}};
    }

    FakeOllama fake_;
    BenchConfig config_;
    std::vector<BenchCase> cases_;
};

TEST_F(OllamaBenchTest, MeasuresTheFakesRatesAndTtft) {
    std::vector<ProgressEvent::Stage> stages;
    const BenchReport report =
        RunBenchmark(config_, cases_, [&](const ProgressEvent& e) { stages.push_back(e.stage); });
    ASSERT_EQ(report.cases.size(), 2u);
    EXPECT_EQ(report.MeasuredRunsOk(), 4);
    EXPECT_EQ(report.MeasuredRunsFailed(), 0);
    EXPECT_EQ(report.ollama_version, "0.12.6");
    EXPECT_EQ(stages.size(), 2u * (2u * 3u + 1u));  // per case: start+finish per run, then case done
    for (const CaseResult& c : report.cases) {
        const CaseSummary& s = c.summary;
        EXPECT_EQ(c.samples.size(), 3u);
        EXPECT_NEAR(*s.prefill_tps_p50, kPrefillRate, kPrefillRate * 0.05) << c.name << "/" << c.lang;
        EXPECT_NEAR(*s.decode_tps_p50, kDecodeRate, kDecodeRate * 0.05);
        EXPECT_GE(*s.ttft_p50_s, kFirstPieceDelayMs / 1000.0);
        EXPECT_GE(*s.latency_p50_s, *s.ttft_p50_s);
        EXPECT_GT(*s.prompt_tokens, 0);
        EXPECT_EQ(*s.output_tokens, summarizer::testing::CountFakeTokens(fake_.behavior().reply));
        EXPECT_EQ(s.route, "-");
        EXPECT_TRUE(s.verdict.pass) << c.name;
        for (const RunSample& sample : c.samples) {
            EXPECT_TRUE(sample.ok) << sample.error;
            EXPECT_EQ(sample.output_preview, fake_.behavior().reply);
            EXPECT_GE(*sample.ttft_s, kFirstPieceDelayMs / 1000.0);
        }
        ASSERT_TRUE(c.vram);
        EXPECT_TRUE(c.vram->ok) << c.vram->error;
        EXPECT_GT(c.vram->size_vram_bytes, 0);
        ASSERT_EQ(c.vram->models.size(), 1u);
        EXPECT_EQ(c.vram->models[0].context_length, 16384);
    }
}

TEST_F(OllamaBenchTest, SendsTheRecordsRequest) {
    const BenchReport report = RunBenchmark(config_, {cases_[0]});
    const auto requests = fake_.Requests();
    ASSERT_EQ(requests.size(), 3u);
    std::set<std::string> prompts;
    for (const auto& request : requests) {
        const json& body = request.body;
        EXPECT_EQ(request.path, "/api/generate");
        EXPECT_EQ(body["model"], "gemma3-4b-16k");
        EXPECT_EQ(body["stream"], true);
        EXPECT_EQ(body["truncate"], false);
        EXPECT_EQ(body["keep_alive"], "24h");
        EXPECT_EQ(body["options"]["num_ctx"], 16384);
        EXPECT_EQ(body["options"]["num_batch"], 1024);
        EXPECT_DOUBLE_EQ(body["options"]["temperature"].get<double>(), 0.15);
        EXPECT_DOUBLE_EQ(body["options"]["repeat_penalty"].get<double>(), 1.15);
        EXPECT_EQ(body["options"]["num_predict"], 1200);
        const std::string prompt = body["prompt"];
        EXPECT_NE(prompt.find(cases_[0].text), std::string::npos);
        prompts.insert(prompt);
    }
    EXPECT_EQ(prompts.size(), 3u) << "every request's text starts differently (no prompt-cache reuse)";

    config_.bust_prompt_cache = false;
    config_.keep_alive = "-1";  // a number for Ollama, not a duration string
    fake_.ClearRequests();
    RunBenchmark(config_, {cases_[0]});
    const auto unchanged = fake_.Requests();
    ASSERT_EQ(unchanged.size(), 3u);
    EXPECT_EQ(unchanged[0].body["prompt"], unchanged[2].body["prompt"]);
    EXPECT_EQ(unchanged[0].body["keep_alive"], -1);
}

TEST_F(OllamaBenchTest, VerdictFlipsWithTheTargets) {
    config_.targets = {1.0, kDecodeRate * 0.9, kPrefillRate * 0.9};
    BenchReport report = RunBenchmark(config_, {cases_[0]});
    ASSERT_EQ(report.cases.size(), 1u);
    EXPECT_TRUE(report.cases[0].summary.verdict.pass);
    EXPECT_NE(RenderMarkdown(report).find("| PASS |"), std::string::npos);

    ApplyTargets(report, {1.0, kDecodeRate * 1.1, kPrefillRate * 0.9});
    EXPECT_EQ(report.cases[0].summary.verdict.reasons, (std::vector<std::string>{"decode"}));
    ApplyTargets(report, {1.0, kDecodeRate * 0.9, kPrefillRate * 1.1});
    EXPECT_EQ(report.cases[0].summary.verdict.reasons, (std::vector<std::string>{"prefill"}));
    ApplyTargets(report, {kFirstPieceDelayMs / 1000.0, kDecodeRate * 0.9, kPrefillRate * 0.9});
    EXPECT_EQ(report.cases[0].summary.verdict.reasons, (std::vector<std::string>{"TTFT"}));

    // Through a whole run too: the targets in the config decide.
    config_.targets = {kFirstPieceDelayMs / 1000.0, kDecodeRate * 1.1, kPrefillRate * 1.1};
    report = RunBenchmark(config_, {cases_[0]});
    EXPECT_FALSE(report.cases[0].summary.verdict.pass);
    EXPECT_NE(RenderMarkdown(report).find("| FAIL (TTFT, decode, prefill) |"), std::string::npos);
}

TEST_F(OllamaBenchTest, FailedRunsAreCountedNotFatal) {
    FakeBehavior behavior = fake_.behavior();
    behavior.fail_status = 500;
    behavior.fail_count = 2;  // the warm-up and the first measured run
    fake_.SetBehavior(behavior);
    const BenchReport report = RunBenchmark(config_, {cases_[0]});
    const CaseSummary& s = report.cases[0].summary;
    EXPECT_EQ(s.warmup_failed, 1);
    EXPECT_EQ(s.runs_ok, 1);
    EXPECT_EQ(s.runs_failed, 1);
    EXPECT_EQ(s.first_error, "HTTP 500: llama runner process has terminated");
    EXPECT_TRUE(s.verdict.pass);  // judged on the run that worked; the failure is reported beside it
}

TEST_F(OllamaBenchTest, ReportsEachWayARunCanFail) {
    config_.warmup_runs = 0;
    config_.measured_runs = 1;
    const auto run_error = [&](const FakeBehavior& behavior) {
        fake_.SetBehavior(behavior);
        const BenchReport report = RunBenchmark(config_, {cases_[0]});
        EXPECT_EQ(report.MeasuredRunsOk(), 0);
        return report.cases[0].summary.first_error;
    };
    const FakeBehavior good = fake_.behavior();
    FakeBehavior b = good;
    b.missing_models = {"gemma3-4b-16k"};
    EXPECT_EQ(run_error(b), "HTTP 404: model 'gemma3-4b-16k' not found");
    b = good;
    b.error_line_after_pieces = 2;
    EXPECT_EQ(run_error(b), "error mid-stream: llama runner process has terminated");
    b = good;
    b.garbage_after_pieces = 1;
    EXPECT_NE(run_error(b).find("not a JSON object"), std::string::npos);
    b = good;
    b.omit_final = true;
    EXPECT_EQ(run_error(b), "the stream ended before its final event");
    b = good;
    b.drop_after_pieces = 1;
    EXPECT_FALSE(run_error(b).empty());

    fake_.SetBehavior(good);
    config_.num_ctx = 64;  // the prompt is longer: refused, not truncated
    EXPECT_EQ(run_error(good), "HTTP 400: the input length exceeds the context length");
    b = good;
    b.ignore_truncate_flag = true;  // an old Ollama cuts silently: caught from prompt_eval_count
    EXPECT_NE(run_error(b).find("probably truncated"), std::string::npos);
}

TEST(OllamaBenchUnreachableTest, EveryRunFailsQuickly) {
    int port = 0;
    {
        FakeOllama gone;  // a port that was free a moment ago and now refuses connections
        port = gone.port();
    }
    BenchConfig config;
    config.ollama_url = "http://127.0.0.1:" + std::to_string(port);
    config.model = "m";
    config.warmup_runs = 0;
    config.measured_runs = 2;
    const BenchReport report = RunBenchmark(config, {BenchCase{"small", "en", "text", 4}});
    EXPECT_EQ(report.MeasuredRunsFailed(), 2);
    EXPECT_NE(report.cases[0].summary.first_error.find("transport"), std::string::npos);
    ASSERT_TRUE(report.cases[0].vram);
    EXPECT_FALSE(report.cases[0].vram->ok);
    EXPECT_NE(RenderMarkdown(report).find("| ? | FAIL (all runs failed) |"), std::string::npos);
}

// ---- Against a small SSE service --------------------------------------------------------------

// Plays the service's /summarize stream: meta, deltas, done (or an error event), with a delay
// before the first delta.
class FakeService {
public:
    FakeService() {
        server_.set_tcp_nodelay(true);
        server_.Post("/summarize", [this](const httplib::Request& request, httplib::Response& response) {
            last_authorization_ = request.get_header_value("Authorization");
            last_body_ = request.body;
            if (!api_key_.empty() && last_authorization_ != "Bearer " + api_key_) {
                response.status = 401;
                response.set_content(
                    R"({"error":{"code":"unauthorized","message":"missing API key","request_id":"r1"}})",
                    "application/json");
                return;
            }
            response.set_chunked_content_provider("text/event-stream", [this](size_t, httplib::DataSink& sink) {
                const auto send = [&](const std::string& event, const json& data) {
                    const std::string frame = "event: " + event + "\ndata: " + data.dump() + "\n\n";
                    sink.write(frame.data(), frame.size());
                };
                send("meta",
                     {{"request_id", "r1"}, {"route", "map_reduce"}, {"model", "gemma3-4b-16k"}, {"chunks", 3}});
                send("progress", {{"phase", "map"}, {"done", 1}, {"total", 3}});
                std::this_thread::sleep_for(std::chrono::milliseconds(first_delta_delay_ms));
                if (fail) {
                    send("error", {{"error", {{"code", "upstream_error"}, {"message", "Ollama broke off"}}}});
                    sink.done();
                    return true;
                }
                send("delta", {{"text", ""}});  // an empty piece is not the first token
                send("delta", {{"text", "Elevator B "}});
                send("delta", {{"text", "is out."}});
                send("done", {{"summary", "Elevator B is out."},
                              {"route", "map_reduce"},
                              {"model", "gemma3-4b-16k"},
                              {"usage", {{"prompt_tokens", 812}, {"completion_tokens", 240}}},
                              {"timings",
                               {{"ttft_ms", 250.3}, {"prefill_tokens_per_s", 3020.5}, {"decode_tokens_per_s", 61.4}}}});
                sink.done();
                return true;
            });
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~FakeService() {
        server_.stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

    std::string api_key_;
    std::string last_authorization_;
    std::string last_body_;
    std::atomic<int> first_delta_delay_ms{50};
    std::atomic<bool> fail{false};

private:
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

TEST(ServiceBenchTest, ReadsTheSseStream) {
    FakeService service;
    service.api_key_ = "secret";
    BenchConfig config;
    config.kind = TargetKind::kService;
    config.service_url = service.url();
    config.api_key = "secret";
    config.warmup_runs = 0;
    config.measured_runs = 2;
    const BenchReport report = RunBenchmark(config, {BenchCase{"medium", "en", "Elevator notice text.", 21}});
    ASSERT_EQ(report.cases.size(), 1u);
    const CaseResult& c = report.cases[0];
    EXPECT_EQ(c.summary.runs_ok, 2) << c.summary.first_error;
    EXPECT_EQ(c.summary.route, "map_reduce");
    EXPECT_DOUBLE_EQ(*c.summary.prefill_tps_p50, 3020.5);
    EXPECT_DOUBLE_EQ(*c.summary.decode_tps_p50, 61.4);
    EXPECT_EQ(*c.summary.prompt_tokens, 812);
    EXPECT_EQ(*c.summary.output_tokens, 240);
    EXPECT_GE(*c.summary.ttft_p50_s, 0.05);
    EXPECT_EQ(c.samples[0].output_preview, "Elevator B is out.");
    EXPECT_FALSE(c.vram);  // no --ollama: VRAM skipped
    EXPECT_EQ(service.last_authorization_, "Bearer secret");
    const json body = json::parse(service.last_body_);
    EXPECT_EQ(body["stream"], true);
    EXPECT_NE(body["text"].get<std::string>().find("Elevator notice text."), std::string::npos);
    EXPECT_NE(RenderMarkdown(report).find("| map_reduce | - | PASS |"), std::string::npos);
}

TEST(ServiceBenchTest, ErrorEventsAndStatusesFailTheRun) {
    FakeService service;
    BenchConfig config;
    config.kind = TargetKind::kService;
    config.service_url = service.url();
    config.warmup_runs = 0;
    config.measured_runs = 1;
    const BenchCase text{"small", "en", "text", 4};

    service.fail = true;
    service.first_delta_delay_ms = 0;
    BenchReport report = RunBenchmark(config, {text});
    EXPECT_EQ(report.cases[0].summary.first_error, "error event: upstream_error: Ollama broke off");

    service.fail = false;
    service.api_key_ = "secret";  // we send none
    report = RunBenchmark(config, {text});
    EXPECT_EQ(report.cases[0].summary.first_error, "HTTP 401: unauthorized: missing API key");
}

}  // namespace
}  // namespace summarizer::bench
