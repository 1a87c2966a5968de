#include "summarizer/job_key.hpp"

#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace summarizer {
namespace {

using json = nlohmann::json;

// The parts of the configuration that change what a summary says (see the header).
json ModelConfiguration(const Config& c) {
    json buckets = json::array();
    for (const auto& b : c.buckets) buckets.push_back({b.name, b.model, b.num_ctx});
    return {{"buckets", buckets},
            {"generation",
             {c.generation.temperature, c.generation.repeat_penalty, c.generation.num_predict, c.generation.num_batch}},
            {"map_reduce", {c.map_reduce.map_num_predict, c.map_reduce.reduce_num_predict, c.map_reduce.max_levels}},
            {"routing",
             {c.routing.hierarchical_threshold_chars, c.routing.hierarchical_chunk_max_chars,
              c.routing.safety_margin_tokens, c.routing.chunk_overlap_chars}}};
}

std::string Hex(const unsigned char* bytes, unsigned int size) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(static_cast<size_t>(size) * 2, '0');
    for (unsigned int i = 0; i < size; ++i) {
        out[2 * i] = kHex[bytes[i] >> 4];
        out[2 * i + 1] = kHex[bytes[i] & 0x0f];
    }
    return out;
}

// SHA-256 over the pieces in order, each preceded by its length (no two different lists of
// pieces hash alike).
std::string Sha256Of(std::initializer_list<std::string_view> pieces) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256: init failed");
    for (std::string_view piece : pieces) {
        const std::string length = std::to_string(piece.size()) + ":";
        EVP_DigestUpdate(ctx.get(), length.data(), length.size());
        EVP_DigestUpdate(ctx.get(), piece.data(), piece.size());
    }
    if (EVP_DigestFinal_ex(ctx.get(), digest, &size) != 1) throw std::runtime_error("SHA-256: final failed");
    return Hex(digest, size);
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), digest, &size) != 1) {
        throw std::runtime_error("SHA-256 failed");
    }
    return Hex(digest, size);
}

std::string_view StrategyName(Strategy strategy) {
    switch (strategy) {
        case Strategy::kAuto:
            return "auto";
        case Strategy::kSingle:
            return "single";
        case Strategy::kMapReduce:
            return "map_reduce";
    }
    return "auto";
}

std::string_view StyleName(SummaryStyle style) { return style == SummaryStyle::kBullets ? "bullets" : "paragraph"; }

std::string RequestOptionsJson(const SummarizeRequest& r) {
    return json{{"language", r.language.empty() ? "auto" : r.language},
                {"style", StyleName(r.style)},
                {"max_tokens", r.max_tokens},
                {"strategy", StrategyName(r.strategy)}}
        .dump();
}

std::string ContentHash(const SummarizeRequest& request, const Config& config) {
    SummarizeRequest effective = request;
    if (effective.max_tokens == 0) effective.max_tokens = config.generation.num_predict;
    const std::string header = json{
        {"options", json::parse(RequestOptionsJson(effective))},
        {"model", ModelConfiguration(config)},
        {"version",
         SUMMARIZER_VERSION}}.dump();
    return Sha256Of({"summarizer content hash 1", header, request.text});
}

Result<SummarizeRequest> RequestFromStored(std::string text, const std::string& options_json, std::string request_id) {
    SummarizeRequest r;
    r.text = std::move(text);
    r.request_id = std::move(request_id);
    try {
        const json o = json::parse(options_json);
        r.language = o.value("language", "auto");
        const std::string style = o.value("style", "paragraph");
        if (style != "paragraph" && style != "bullets") throw std::invalid_argument("style " + style);
        r.style = style == "bullets" ? SummaryStyle::kBullets : SummaryStyle::kParagraph;
        r.max_tokens = o.value("max_tokens", 0);
        const std::string strategy = o.value("strategy", "auto");
        if (strategy == "auto")
            r.strategy = Strategy::kAuto;
        else if (strategy == "single")
            r.strategy = Strategy::kSingle;
        else if (strategy == "map_reduce")
            r.strategy = Strategy::kMapReduce;
        else
            throw std::invalid_argument("strategy " + strategy);
    } catch (const std::exception& e) {
        return MakeError(ErrorCode::kInvalidRequest,
                         std::string("the job's stored options are not valid: ") + e.what());
    }
    return r;
}

}  // namespace summarizer
