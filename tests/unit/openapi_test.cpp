// The served OpenAPI document (src/openapi.cpp) against the code, both ways: every error code the
// service sends is in it with its status; every JSON document the code writes has exactly the
// fields the document describes; the languages it lists are exactly those the request parser
// accepts. (docs/API.md against the document: tools/openapi-lint/contract.mjs, in
// scripts/check-openapi.sh.)
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "summarizer/api.hpp"
#include "summarizer/openapi.hpp"
#include "summarizer/prompts.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;

const json& Doc() {
    static const json doc = json::parse(OpenApiDocument());
    return doc;
}

const json& Resolve(const json& node) {
    const json* at = &node;
    while (at->is_object() && at->contains("$ref")) {
        at = &Doc().at(json::json_pointer(at->at("$ref").get<std::string>().substr(1)));
    }
    return *at;
}

const json& Schema(const std::string& name) { return Doc().at("components").at("schemas").at(name); }

// The field paths ("a.b", "a[].b") a schema describes; an object without properties (the
// configuration in /status) is one field.
void SchemaPaths(const json& raw, const std::string& prefix, std::set<std::string>& out) {
    const json& node = Resolve(raw);
    if (!node.contains("properties")) return;
    for (const auto& [key, prop_raw] : node.at("properties").items()) {
        const json& prop = Resolve(prop_raw);
        out.insert(prefix + key);
        if (prop.value("type", "") == "object") SchemaPaths(prop, prefix + key + ".", out);
        if (prop.value("type", "") == "array" && prop.contains("items")) SchemaPaths(prop.at("items"), prefix + key + "[].", out);
    }
}

// The field paths of `value` where `schema` describes fields; fails on a field it does not
// describe and on a required one that is missing.
void ValuePaths(const json& value, const json& raw, const std::string& prefix, std::set<std::string>& out) {
    const json& node = Resolve(raw);
    if (value.is_array() && node.contains("items")) {
        for (const auto& item : value) ValuePaths(item, node.at("items"), prefix.substr(0, prefix.size() - 1) + "[].", out);
        return;
    }
    if (!value.is_object() || !node.contains("properties")) return;
    for (const auto& key : node.value("required", json::array())) {
        EXPECT_TRUE(value.contains(key.get<std::string>())) << prefix << key << " is required by the document";
    }
    for (const auto& [key, v] : value.items()) {
        const std::string path = prefix + key;
        out.insert(path);
        if (!node.at("properties").contains(key)) {
            ADD_FAILURE() << "the code writes field " << path << ", the document does not describe it";
            continue;
        }
        ValuePaths(v, node.at("properties").at(key), path + ".", out);
    }
}

// The documents the code writes, together, have exactly the fields of schema `name`.
void ExpectSameFields(const std::string& name, const std::vector<json>& written) {
    SCOPED_TRACE(name);
    std::set<std::string> described, seen;
    SchemaPaths(Schema(name), "", described);
    for (const auto& doc : written) ValuePaths(doc, Schema(name), "", seen);
    for (const auto& path : described) EXPECT_TRUE(seen.count(path)) << "the document describes " << path << ", the code never writes it";
}

TEST(OpenApi, IsOpenApi303WithEveryEndpoint) {
    EXPECT_EQ(Doc().at("openapi"), "3.0.3");
    for (const char* path : {"/summarize", "/summarize/plan", "/healthz", "/readyz", "/status", "/metrics", "/openapi.json", "/"}) {
        EXPECT_TRUE(Doc().at("paths").contains(path)) << path;
    }
}

TEST(OpenApi, EveryErrorCodeIsDocumentedWithItsStatus) {
    const json& codes = Resolve(Schema("Error").at("properties").at("error")).at("properties").at("code").at("enum");
    std::set<std::string> sent;
    for (int i = 0; i <= static_cast<int>(ErrorCode::kInternal); ++i) {
        const auto code = static_cast<ErrorCode>(i);
        if (code == ErrorCode::kCancelled) continue;  // the client is gone: never sent
        const std::string name(ErrorCodeName(code));
        const std::string status = std::to_string(HttpStatusFor(code));
        sent.insert(name);
        EXPECT_NE(std::find(codes.begin(), codes.end(), name), codes.end()) << name << " is not in the Error enum";
        // An operation's answer with that status names it, or (not_found, internal_error: any path)
        // the document's description does, with its status.
        bool documented = false;
        for (const auto& [path, item] : Doc().at("paths").items()) {
            for (const auto& [method, op] : item.items()) {
                if (!op.contains("responses")) continue;
                for (const auto& [st, response] : op.at("responses").items()) {
                    const std::string text = Resolve(response).value("description", "");
                    if (text.find("`" + name + "`") == std::string::npos) continue;
                    EXPECT_EQ(st, status) << method << " " << path << " names " << name;
                    documented = true;
                }
            }
        }
        const std::string info = Doc().at("info").at("description");
        documented = documented || (info.find("`" + name + "`") != std::string::npos && info.find(status) != std::string::npos);
        EXPECT_TRUE(documented) << name << " (" << status << ") is named by no answer of the document";
    }
    for (const auto& name : codes) EXPECT_TRUE(sent.count(name.get<std::string>())) << name << ": no ErrorCode is sent as it";
}

TEST(OpenApi, TheResponseAndItsEventsHaveTheDocumentsFields) {
    SummarizeResponse r;
    ExpectSameFields("SummarizeResponse", {ResponseJson(r)});
    Plan plan;
    plan.chunks.push_back(Chunk{});
    ExpectSameFields("Plan", {PlanJson(plan)});
    {
        SCOPED_TRACE("MetaEvent");
        std::set<std::string> described, seen;
        SchemaPaths(Schema("MetaEvent").at("properties").at("data"), "", described);
        ValuePaths(MetaEventJson(plan, "id"), Schema("MetaEvent").at("properties").at("data"), "", seen);
        EXPECT_EQ(described, seen);
    }
    ExpectSameFields("Error", {ErrorJson(MakeError(ErrorCode::kOverloaded, "busy"), "id")});
}

TEST(OpenApi, ReadinessAndStatusHaveTheDocumentsFields) {
    Readiness ready;
    ready.ready = true;
    ready.upstream_url = "http://127.0.0.1:11434";
    Readiness missing;
    missing.reason = "bucket model(s) missing";
    missing.missing_models = {"gemma3-4b-60k"};
    Readiness unreachable;
    unreachable.reason = "cannot connect";
    unreachable.circuit = "open";
    unreachable.extractive_instead = true;
    Readiness pool;
    pool.ready = true;
    pool.upstream_url = "http://10.0.0.5:11434";
    pool.upstreams = {{"gpu1", "ready"}, {"vllm", "cannot connect"}};
    Readiness stopping;
    stopping.shutting_down = true;
    stopping.reason = "shutting down";
    ExpectSameFields("Readiness",
                     {ReadyJson(ready), ReadyJson(missing), ReadyJson(unreachable), ReadyJson(pool), ReadyJson(stopping)});

    const Config config;
    ServiceStatus up;
    BucketStatus bucket;
    bucket.name = "16k";
    bucket.measured = MeasuredFootprint{};
    up.manager.buckets = {bucket};
    up.manager.ollama_reachable = true;
    up.manager.loaded = {LoadedModel{}};
    UpstreamStatus gpu;  // an Ollama host serving the bucket
    gpu.name = "gpu1";
    gpu.kind = "ollama";
    gpu.manager.buckets = {bucket};
    UpstreamStatus vllm;  // an OpenAI-compatible engine that stated its model and context
    vllm.name = "vllm";
    vllm.kind = "openai";
    vllm.model = "google/gemma-3-4b-it";
    vllm.context_tokens = 32768;
    vllm.last_error = "cannot connect";
    up.upstreams = {gpu, vllm};
    ServiceStatus down;
    down.manager.ollama_error = "cannot connect";
    // GET /status adds the job store's own object (ApiRoutes::Status: Jobs::StatusJson, or
    // {"enabled": false}); check-openapi validates a real /status against the document.
    std::vector<json> written = {StatusJson(up, config), StatusJson(down, config)};
    for (json& doc : written) {
        EXPECT_FALSE(doc.contains("jobs"));
        doc["jobs"] = json{{"enabled", false}};
    }
    ExpectSameFields("Status", written);
}

TEST(OpenApi, ListsExactlyTheLanguagesTheParserAccepts) {
    const std::string text = Schema("Language").at("description");
    std::set<std::string> listed;
    for (size_t at = text.find(": en English"); at != std::string::npos && at + 4 < text.size();) {
        // "..., xx Name, yy Name. Anything else ..."
        const std::string code = text.substr(at + 2, 2);
        const size_t name_end = text.find_first_of(",.", at + 5);
        const std::string name = text.substr(at + 5, name_end - at - 5);
        EXPECT_EQ(NormalizeLanguage(code).value_or("?"), code);
        EXPECT_EQ(NormalizeLanguage(name).value_or("?"), code) << name;
        listed.insert(code);
        if (text[name_end] == '.') break;
        at = name_end;
    }
    EXPECT_GE(listed.size(), 30u);
    for (char a = 'a'; a <= 'z'; ++a) {
        for (char b = 'a'; b <= 'z'; ++b) {
            const std::string code{a, b};
            if (NormalizeLanguage(code)) {
                EXPECT_TRUE(listed.count(code)) << code << " is accepted, not documented";
            }
        }
    }
    EXPECT_FALSE(NormalizeLanguage("klingon"));
}

}  // namespace
}  // namespace summarizer
