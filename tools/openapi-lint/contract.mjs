// Checks the service's OpenAPI document against the HTTP contract (shared/design/API.md) and
// against real answers of the running service (scripts/check-openapi.sh).
//
//   node contract.mjs OPENAPI_JSON [API_MD] [--sample NAME=FILE ...]
//
// From API.md: every endpoint, every /summarize request field (type and default), every field of
// the /summarize and /summarize/plan examples, every (status, error code) pair, the error body and
// every SSE event with its data fields must be in the document. Samples are real answers: a
// "json:SCHEMA" sample is a JSON body checked against components.schemas.SCHEMA; an "sse" sample is
// an event stream whose events are checked against SummarizeStream. Without API_MD only the
// samples are checked. An "sse:SCHEMA" sample is an event stream checked against the items of that
// array schema (a job's events: JobEventStream). Prints one line per failure; exits 1 if there is any.
import fs from "node:fs";

const args = process.argv.slice(2);
const samples = [];
const positional = [];
for (let i = 0; i < args.length; ++i) {
    if (args[i] === "--sample") samples.push(args[++i]);
    else positional.push(args[i]);
}
const [openapiPath, apiMdPath] = positional;
if (!openapiPath) {
    console.error("usage: node contract.mjs OPENAPI_JSON [API_MD] [--sample json:SCHEMA=FILE|sse=FILE ...]");
    process.exit(2);
}
const doc = JSON.parse(fs.readFileSync(openapiPath, "utf8"));
const failures = [];
let checks = 0;
const check = (ok, message) => {
    ++checks;
    if (!ok) failures.push(message);
};

const resolve = (node) => {
    let seen = 0;
    while (node && node.$ref) {
        const parts = node.$ref.replace(/^#\//, "").split("/");
        node = parts.reduce((n, p) => (n ? n[p.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), doc);
        if (++seen > 20) throw new Error("$ref loop");
    }
    return node;
};
const schema = (name) => resolve({ $ref: `#/components/schemas/${name}` });

// Checks a value against the subset of JSON Schema the document uses.
function validate(value, node, where, out) {
    node = resolve(node);
    if (!node) return out.push(`${where}: no schema`);
    if (node.oneOf) {
        const fits = node.oneOf.filter((alt) => validate(value, alt, where, []).length === 0);
        if (fits.length !== 1) out.push(`${where}: matches ${fits.length} of the oneOf alternatives`);
        return out;
    }
    const type = Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
    const want = node.type;
    const typeOk = !want || want === type || (want === "integer" && Number.isInteger(value)) ||
        (want === "number" && type === "number");
    if (!typeOk) return out.push(`${where}: is ${type}, the document says ${want}`), out;
    if (node.enum && !node.enum.includes(value)) out.push(`${where}: ${JSON.stringify(value)} is not in enum ${JSON.stringify(node.enum)}`);
    if (type === "object") {
        for (const key of node.required || []) {
            if (!(key in value)) out.push(`${where}: required field "${key}" is missing from the real answer`);
        }
        for (const [key, v] of Object.entries(value)) {
            const prop = node.properties?.[key];
            if (prop) validate(v, prop, `${where}.${key}`, out);
            else if (node.additionalProperties === false || (node.properties && node.additionalProperties === undefined)) {
                out.push(`${where}: the real answer has field "${key}", which the document does not describe`);
            }
        }
    }
    if (type === "array" && node.items) value.forEach((v, i) => validate(v, node.items, `${where}[${i}]`, out));
    return out;
}

// ---- the document against API.md --------------------------------------------------------------
if (apiMdPath) {
    const md = fs.readFileSync(apiMdPath, "utf8");
    const section = (title) => {
        const start = md.indexOf(`\n## ${title}\n`);
        if (start < 0) return "";
        const rest = md.slice(start + title.length + 5);
        const end = rest.search(/\n## /);
        return end < 0 ? rest : rest.slice(0, end);
    };
    const jsonBlock = (text) => {
        const m = text.match(/```json\n([\s\S]*?)```/);
        return m ? JSON.parse(m[1].replace(/\/\/[^\n]*/g, "")) : null;
    };
    // Every key of `example` (recursively) is a property of `node`, and the document requires it.
    const sameFields = (example, node, where) => {
        node = resolve(node);
        if (Array.isArray(example)) return example.length && sameFields(example[0], node.items, `${where}[]`);
        if (example === null || typeof example !== "object") return;
        for (const [key, value] of Object.entries(example)) {
            const prop = node?.properties?.[key];
            check(prop, `${where}: API.md has field "${key}", the document does not`);
            check((node?.required || []).includes(key), `${where}: field "${key}" is not required in the document`);
            if (prop) sameFields(value, prop, `${where}.${key}`);
        }
    };

    // Endpoints: "## POST /x" headings and `GET /x` mentions.
    const endpoints = new Set();
    for (const m of md.matchAll(/(?:^## |`)(GET|POST) (\/[^\s`:]*)/gm)) endpoints.add(`${m[1]} ${m[2]}`);
    check(endpoints.size >= 8, `found only ${endpoints.size} endpoints in API.md`);
    for (const e of endpoints) {
        const [method, path] = e.split(" ");
        check(doc.paths?.[path]?.[method.toLowerCase()], `endpoint ${e} of API.md is not in the document`);
    }

    // /summarize request fields: the first table of the section.
    const summarize = section("POST /summarize");
    const request = schema("SummarizeRequest");
    const typeNames = { string: "string", integer: "integer", boolean: "boolean" };
    let fields = 0;
    for (const m of summarize.matchAll(/^\| `(\w+)` \| (\w+) \| ([^|]*)\|/gm)) {
        ++fields;
        const [, name, type, defaultText] = m;
        const prop = resolve(request?.properties?.[name]);
        check(prop, `request field "${name}" of API.md is not in SummarizeRequest`);
        if (!prop) continue;
        check(prop.type === typeNames[type], `request field "${name}": API.md says ${type}, the document ${prop.type}`);
        const literal = defaultText.trim().match(/^`(.*)`$/);
        if (literal) {
            check(JSON.stringify(prop.default) === literal[1],
                `request field "${name}": API.md default ${literal[1]}, the document ${JSON.stringify(prop.default)}`);
        }
        if (defaultText.trim() === "required") check(request.required?.includes(name), `request field "${name}" must be required`);
    }
    check(fields >= 6, `found only ${fields} request fields in API.md`);
    check(request?.additionalProperties === false, "SummarizeRequest must reject unknown fields (additionalProperties: false)");
    const media = doc.paths?.["/summarize"]?.post?.requestBody;
    const bodies = resolve(media)?.content || {};
    check(bodies["application/json"] && bodies["text/plain"], "/summarize must accept application/json and text/plain");

    const response = jsonBlock(summarize);
    check(response, "no JSON example of the /summarize response in API.md");
    if (response) sameFields(response, schema("SummarizeResponse"), "SummarizeResponse");
    const ok200 = resolve(doc.paths?.["/summarize"]?.post?.responses?.["200"]);
    check(ok200?.headers?.["X-Request-Id"], "/summarize 200 has no X-Request-Id header");
    check(ok200?.content?.["text/event-stream"], "/summarize 200 has no text/event-stream content");

    const plan = jsonBlock(section("POST /summarize/plan"));
    check(plan, "no JSON example of the plan in API.md");
    if (plan) sameFields(plan, schema("Plan"), "Plan");

    // Errors: the body, then every (status, code) pair on /summarize.
    const errors = section("Errors");
    const body = errors.match(/`(\{"error".*?\})`/);
    check(body, "no error body in API.md");
    if (body) sameFields(JSON.parse(body[1].replace(/"\.\.\."/g, '""')), schema("Error"), "Error");
    const codeEnum = resolve(schema("Error")?.properties?.error)?.properties?.code?.enum || [];
    let pairs = 0;
    for (const m of errors.matchAll(/^\| (\d{3}) \| ([^|]+)\|/gm)) {
        const status = m[1];
        const responseAt = resolve(doc.paths?.["/summarize"]?.post?.responses?.[status]);
        check(responseAt, `/summarize does not document status ${status}`);
        for (const c of m[2].matchAll(/`(\w+)`/g)) {
            ++pairs;
            check(codeEnum.includes(c[1]), `error code "${c[1]}" is not in the Error schema's enum`);
            check(responseAt?.description?.includes(`\`${c[1]}\``),
                `/summarize ${status}: the description does not name error code "${c[1]}"`);
        }
    }
    check(pairs >= 10, `found only ${pairs} error codes in API.md`);
    check(resolve(doc.paths?.["/summarize"]?.post?.responses?.["429"])?.headers?.["Retry-After"],
        "/summarize 429 has no Retry-After header");

    // SSE events: "- `event: NAME`, data `{...}`" lines.
    const stream = schema("SummarizeStream");
    const alternatives = (stream?.items?.oneOf || []).map(resolve);
    const eventNames = [];
    for (const m of summarize.matchAll(/^- (?:or )?`event: (\w+)`, data([^\n]*)/gm)) {
        const [, name, rest] = m;
        eventNames.push(name);
        const alt = alternatives.find((a) => a?.properties?.event?.enum?.includes(name));
        check(alt, `SSE event "${name}" of API.md is not in SummarizeStream`);
        const inline = rest.match(/`\{(.*)\}`/);
        if (alt && inline) {
            const data = resolve(alt.properties.data);
            for (const f of inline[1].matchAll(/"(\w+)"(?=\s*[:,}]|$)/g)) {
                if (["map", "reduce"].includes(f[1])) continue;  // values of "phase", not fields
                check(data?.properties?.[f[1]], `SSE event "${name}": data field "${f[1]}" is not in the document`);
            }
        }
    }
    check(eventNames.length >= 5, `found only ${eventNames.length} SSE events in API.md`);
    const order = (stream?.description || "").match(/\b(meta|progress|delta|done|error)\b/g) || [];
    check(eventNames.every((n) => order.includes(n)), "SummarizeStream's description does not name every event");
}

// ---- real answers against the document ---------------------------------------------------------
for (const sample of samples) {
    const [kind, file] = sample.split("=");
    const text = fs.readFileSync(file, "utf8");
    if (kind.startsWith("json:")) {
        const name = kind.slice(5);
        const out = validate(JSON.parse(text), schema(name), `${name} (${file})`, []);
        check(out.length === 0, out.join("\n"));
    } else if (kind.startsWith("sse:")) {
        const name = kind.slice(4);
        const events = text.split("\n\n").filter((b) => b.trim() && !b.startsWith(":")).map((block) => {
            const id = block.match(/^id: (.*)$/m)?.[1];
            const event = block.match(/^event: (.*)$/m)?.[1];
            const data = block.match(/^data: (.*)$/m)?.[1];
            const out = { event, data: data === undefined ? undefined : JSON.parse(data) };
            if (id !== undefined) out.id = Number(id);
            return out;
        });
        check(events.length >= 3, `${file}: only ${events.length} events`);
        check(["done", "error", "cancelled"].includes(events.at(-1)?.event), `${file}: the last event does not end the stream`);
        events.forEach((e, i) => {
            const out = validate(e, schema(name).items, `event ${i} (${e.event})`, []);
            check(out.length === 0, out.join("\n"));
        });
    } else if (kind === "sse") {
        const events = text.split("\n\n").filter((b) => b.trim()).map((block) => {
            const event = block.match(/^event: (.*)$/m)?.[1];
            const data = block.match(/^data: (.*)$/m)?.[1];
            return { event, data: data === undefined ? undefined : JSON.parse(data) };
        });
        check(events.length >= 3, `${file}: only ${events.length} events`);
        check(events[0]?.event === "meta", `${file}: the first event is ${events[0]?.event}, not meta`);
        check(["done", "error"].includes(events.at(-1)?.event), `${file}: the last event is not done or error`);
        events.forEach((e, i) => {
            const out = validate(e, schema("SummarizeStream").items, `event ${i} (${e.event})`, []);
            check(out.length === 0, out.join("\n"));
        });
    } else {
        check(false, `unknown sample kind ${kind}`);
    }
}

for (const f of failures) console.log(`contract: FAIL: ${f}`);
console.log(`contract: ${checks} checks, ${failures.length} failure(s)`);
process.exit(failures.length ? 1 : 0);
