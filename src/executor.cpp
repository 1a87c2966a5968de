#include "summarizer/executor.hpp"

#include <algorithm>
#include <cmath>

#include "summarizer/prompts.hpp"
#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;

std::vector<std::string> Texts(const std::vector<StepOutput>& items) {
    std::vector<std::string> texts;
    texts.reserve(items.size());
    for (const auto& item : items) texts.push_back(item.text);
    return texts;
}

json OutputToJson(const StepOutput& o) {
    return {{"text", o.text},
            {"prompt_tokens", o.prompt_tokens},
            {"output_tokens", o.output_tokens},
            {"prefill_ns", o.prefill.count()},
            {"decode_ns", o.decode.count()},
            {"load_ns", o.load.count()}};
}

StepOutput OutputFromJson(const json& j) {
    StepOutput o;
    o.text = j.at("text").get<std::string>();
    o.prompt_tokens = j.at("prompt_tokens").get<int64_t>();
    o.output_tokens = j.at("output_tokens").get<int64_t>();
    o.prefill = std::chrono::nanoseconds(j.value("prefill_ns", int64_t{0}));
    o.decode = std::chrono::nanoseconds(j.value("decode_ns", int64_t{0}));
    o.load = std::chrono::nanoseconds(j.value("load_ns", int64_t{0}));
    return o;
}

json PlanToJson(const Plan& p) {
    json chunks = json::array();
    for (const auto& c : p.chunks) {
        chunks.push_back({{"begin", c.begin}, {"end", c.end}, {"overlap_begin", c.overlap_begin},
                          {"chars", c.chars}, {"estimated_tokens", c.estimated_tokens}});
    }
    return {{"kind", p.kind == RouteKind::kMapReduce ? "map_reduce" : "single"},
            {"bucket", p.bucket},
            {"model", p.model},
            {"num_ctx", p.num_ctx},
            {"keep_alive", p.keep_alive},
            {"chars", p.chars},
            {"text_tokens", p.text_tokens},
            {"estimated_prompt_tokens", p.estimated_prompt_tokens},
            {"chunks", chunks},
            {"reason", p.reason},
            {"interactive_maps", p.interactive_maps}};
}

Plan PlanFromJson(const json& j) {
    Plan p;
    const std::string kind = j.at("kind").get<std::string>();
    if (kind != "single" && kind != "map_reduce") throw std::invalid_argument("plan.kind must be single or map_reduce");
    p.kind = kind == "map_reduce" ? RouteKind::kMapReduce : RouteKind::kSingle;
    p.bucket = j.at("bucket").get<std::string>();
    p.model = j.at("model").get<std::string>();
    p.num_ctx = j.at("num_ctx").get<int>();
    p.keep_alive = j.at("keep_alive").get<std::string>();
    p.chars = j.at("chars").get<int64_t>();
    p.text_tokens = j.at("text_tokens").get<int64_t>();
    p.estimated_prompt_tokens = j.at("estimated_prompt_tokens").get<int64_t>();
    for (const auto& c : j.at("chunks")) {
        p.chunks.push_back(Chunk{c.at("begin").get<size_t>(), c.at("end").get<size_t>(),
                                 c.at("overlap_begin").get<size_t>(), c.at("chars").get<int64_t>(),
                                 c.at("estimated_tokens").get<int64_t>()});
    }
    p.reason = j.at("reason").get<std::string>();
    p.interactive_maps = j.value("interactive_maps", false);
    return p;
}

}  // namespace

std::string_view StepKindName(StepKind kind) {
    switch (kind) {
        case StepKind::kSingle: return "single";
        case StepKind::kMap: return "map";
        case StepKind::kMerge: return "merge";
        case StepKind::kFinal: return "final";
    }
    return "single";
}

int64_t StepOutput::ExcessTokens() const { return std::max<int64_t>(0, output_tokens - EstimateTokens(text)); }

int ExecutionState::FinishedSteps() const {
    int n = final ? 1 : 0;
    for (const auto& level : levels) {
        n += static_cast<int>(std::count_if(level.begin(), level.end(), [](const auto& o) { return o.has_value(); }));
    }
    return n;
}

json StateToJson(const ExecutionState& s) {
    json levels = json::array();
    for (const auto& level : s.levels) {
        json outputs = json::array();
        for (const auto& o : level) outputs.push_back(o ? OutputToJson(*o) : json(nullptr));
        levels.push_back(outputs);
    }
    json groups = json::array();
    for (const auto& level : s.groups) {
        json ranges = json::array();
        for (const auto& [first, last] : level) ranges.push_back({first, last});
        groups.push_back(ranges);
    }
    return {{"version", 1},
            {"plan", PlanToJson(s.plan)},
            {"safety", s.safety},
            {"replans", s.replans},
            {"replan_notes", s.replan_notes},
            {"levels", levels},
            {"groups", groups},
            {"final", s.final ? OutputToJson(*s.final) : json(nullptr)},
            {"spent", {{"prompt_tokens", s.spent.prompt_tokens}, {"output_tokens", s.spent.output_tokens},
                       {"calls", s.spent.calls}, {"prefill_ns", s.spent.prefill.count()},
                       {"decode_ns", s.spent.decode.count()}, {"load_ns", s.spent.load.count()}}}};
}

Result<ExecutionState> StateFromJson(const json& doc) {
    try {
        if (doc.at("version").get<int>() != 1) return MakeError(ErrorCode::kInvalidRequest, "state version must be 1");
        ExecutionState s;
        s.plan = PlanFromJson(doc.at("plan"));
        s.safety = doc.at("safety").get<double>();
        s.replans = doc.at("replans").get<int>();
        s.replan_notes = doc.at("replan_notes").get<std::string>();
        for (const auto& level : doc.at("levels")) {
            auto& outputs = s.levels.emplace_back();
            for (const auto& o : level) outputs.push_back(o.is_null() ? std::nullopt : std::optional(OutputFromJson(o)));
        }
        for (const auto& level : doc.at("groups")) {
            auto& ranges = s.groups.emplace_back();
            for (const auto& r : level) ranges.emplace_back(r.at(0).get<int>(), r.at(1).get<int>());
        }
        if (!doc.at("final").is_null()) s.final = OutputFromJson(doc.at("final"));
        const json& spent = doc.at("spent");
        s.spent.prompt_tokens = spent.at("prompt_tokens").get<int64_t>();
        s.spent.output_tokens = spent.at("output_tokens").get<int64_t>();
        s.spent.calls = spent.at("calls").get<int>();
        s.spent.prefill = std::chrono::nanoseconds(spent.at("prefill_ns").get<int64_t>());
        s.spent.decode = std::chrono::nanoseconds(spent.at("decode_ns").get<int64_t>());
        s.spent.load = std::chrono::nanoseconds(spent.at("load_ns").get<int64_t>());
        if (s.plan.kind == RouteKind::kMapReduce && !s.levels.empty() && s.levels[0].size() != s.plan.chunks.size()) {
            return MakeError(ErrorCode::kInvalidRequest, "state: levels[0] must hold one slot per chunk");
        }
        for (size_t l = 1; l < s.levels.size(); ++l) {
            if (l >= s.groups.size() || s.groups[l].size() != s.levels[l].size()) {
                return MakeError(ErrorCode::kInvalidRequest, "state: merge level " + std::to_string(l) +
                                                                 " must have one slot per group");
            }
        }
        return s;
    } catch (const std::exception& e) {
        return MakeError(ErrorCode::kInvalidRequest, std::string("state: ") + e.what());
    }
}

ReplanDecision DecideReplan(double safety, int replans, const OverflowReport& overflow, bool text_streamed,
                            int max_replans) {
    ReplanDecision d;
    if (text_streamed) {
        d.note = "the engine cut the prompt after the summary had started streaming (" + overflow.what +
                 "); retry the request";
        return d;
    }
    if (replans >= max_replans) {
        d.note = "the engine kept reporting prompts over num_ctx after " + std::to_string(max_replans) +
                 " re-plans: " + overflow.what;
        return d;
    }
    d.safety = std::max(1.0, safety) * 1.25;
    if (overflow.reported_tokens > 0 && overflow.estimated_tokens > 0) {
        const double measured = static_cast<double>(overflow.reported_tokens) / static_cast<double>(overflow.estimated_tokens);
        d.safety = std::max(d.safety, safety * measured + 0.1);
    }
    const bool merge = overflow.kind == StepKind::kMerge || overflow.kind == StepKind::kFinal;
    d.action = merge ? ReplanDecision::Action::kRegroup : ReplanDecision::Action::kReplan;
    d.note = merge ? "; merged again in smaller groups after the engine reported a prompt over num_ctx (" + overflow.what + ")"
                   : "; re-planned after the engine reported a prompt over num_ctx (" + overflow.what + ")";
    return d;
}

int64_t MergePromptTokens(const std::vector<StepOutput>& items, bool final_pass, const PromptOptions& options,
                          double safety) {
    const Prompt p = BuildReducePrompt(Texts(items), final_pass, options);
    int64_t excess = 0;
    for (const auto& item : items) excess += item.ExcessTokens();
    // + Gemma's turn markers and the template's own tokens.
    return static_cast<int64_t>(
        std::ceil(static_cast<double>(EstimateTokens(p.system) + EstimateTokens(p.prompt) + 16 + excess) * safety));
}

std::vector<std::pair<int, int>> GroupForMerge(const std::vector<StepOutput>& items, double safety,
                                               const PromptOptions& options, int64_t budget) {
    // Greedy: extend the current group while its merge prompt fits.
    std::vector<std::pair<int, int>> groups;
    const int n = static_cast<int>(items.size());
    for (int k = 0; k < n; ++k) {
        if (!groups.empty()) {
            auto& [first, last] = groups.back();
            std::vector<StepOutput> extended(items.begin() + first, items.begin() + k + 1);
            if (MergePromptTokens(extended, false, options, safety) <= budget) {
                last = k + 1;
                continue;
            }
        }
        groups.emplace_back(k, k + 1);
    }
    return groups;
}

}  // namespace summarizer
