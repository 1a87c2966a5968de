// Checks the service's OpenAPI document against the HTTP contract in words (docs/API.md) and
// against real answers of the running service (scripts/check-openapi.sh).
//
//   node contract.mjs OPENAPI_JSON [API_MD] [--sample NAME=FILE ...]
//
// docs/API.md and the document must say the same, both ways (something in one and not in the
// other is a failure):
//   - endpoints: every "## METHOD /path[, /path]" heading is an operation, every operation has one;
//   - answers: each endpoint section's table "| status | code | when |" lists exactly the statuses
//     of the operation, and for each status exactly the error codes its description names;
//   - fields: a table after "<!-- schema: Name -->" lists exactly the fields of components.schemas
//     Name, nested ones as "a.b" and "a[].b", with the same type, "(optional)" exactly where the
//     schema does not require the field, "or null" exactly where it is nullable, every enum value
//     named, and (request tables, which have a "default" column) the same defaults;
//   - examples: a ```json block after "<!-- example: Name -->" is valid against schema Name;
//   - SSE events: the table after "<!-- events -->" lists exactly the events of SummarizeStream,
//     each with exactly its data fields (or the name of its data schema);
//   - error codes: the table after "<!-- codes -->" lists exactly the codes of the Error schema,
//     each with the status of every response that names it, and exactly the headers (but
//     X-Request-Id) those responses carry; a code no operation names is named in info.description.
// Samples are real answers: a "json:SCHEMA" sample is a JSON body checked against
// components.schemas.SCHEMA; an "sse" sample is an event stream whose events are checked against
// SummarizeStream. Without API_MD only the samples are checked. Prints one line per failure; exits
// 1 if there is any.
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
const refName = (node) => node?.$ref?.split("/").pop();

// Checks a value against the subset of JSON Schema the document uses.
function validate(value, node, where, out) {
    node = resolve(node);
    if (!node) return out.push(`${where}: no schema`), out;
    if (node.oneOf) {
        const fits = node.oneOf.filter((alt) => validate(value, alt, where, []).length === 0);
        if (fits.length !== 1) out.push(`${where}: matches ${fits.length} of the oneOf alternatives`);
        return out;
    }
    if (value === null && node.nullable) return out;
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

// Every field of a schema, nested ones as "a.b" and "a[].b": type, nullable, required, default, enum.
function flatten(node, prefix = "", out = new Map()) {
    node = resolve(node);
    for (const [key, raw] of Object.entries(node?.properties || {})) {
        const prop = resolve(raw);
        const path = prefix + key;
        out.set(path, { type: prop?.type, nullable: !!prop?.nullable, required: (node.required || []).includes(key),
                        default: prop?.default, enum: prop?.enum });
        if (prop?.type === "object" && prop.properties) flatten(prop, `${path}.`, out);
        const items = prop?.type === "array" ? resolve(prop.items) : undefined;
        if (items?.properties) flatten(items, `${path}[].`, out);
    }
    return out;
}

// ---- the document against docs/API.md ----------------------------------------------------------
if (apiMdPath) {
    const md = fs.readFileSync(apiMdPath, "utf8");
    const lines = md.split("\n");
    const methods = ["get", "post", "put", "patch", "delete", "options", "head"];
    const codeEnum = resolve(schema("Error")?.properties?.error)?.properties?.code?.enum || [];
    // Error codes a piece of text names in backticks.
    const codesIn = (text) => [...(text || "").matchAll(/`(\w+)`/g)].map((m) => m[1]).filter((c) => codeEnum.includes(c));
    const cells = (line) => line.split("|").slice(1, -1).map((c) => c.trim());
    // The table rows (as cells) that start at or after line `from`, header and separator dropped.
    const tableAfter = (from) => {
        let i = from;
        while (i < lines.length && !lines[i].startsWith("|")) {
            if (lines[i].startsWith("#")) return null;
            ++i;
        }
        if (i >= lines.length) return null;
        const header = cells(lines[i]).map((h) => h.toLowerCase());
        const rows = [];
        for (i += 2; i < lines.length && lines[i].startsWith("|"); ++i) rows.push(cells(lines[i]));
        return { header, rows };
    };
    const blockAfter = (from) => {
        const rest = lines.slice(from).join("\n");
        const m = rest.match(/^```json\n([\s\S]*?)```/m);
        return m ? m[1] : null;
    };

    // Endpoint sections.
    const sections = [];
    lines.forEach((line, i) => {
        const h = line.match(/^## ([A-Z]+) (\/.*)$/);
        if (!h || !methods.includes(h[1].toLowerCase())) return;
        const paths = [...h[2].replace(/\(.*\)/, "").matchAll(/\/[^\s,`]*/g)].map((m) => m[0]);
        let end = lines.findIndex((l, j) => j > i && l.startsWith("## "));
        if (end < 0) end = lines.length;
        sections.push({ method: h[1].toLowerCase(), paths, start: i, end, title: line.slice(3) });
    });
    const mdOps = new Set(sections.flatMap((s) => s.paths.map((p) => `${s.method.toUpperCase()} ${p}`)));
    const docOps = new Set();
    for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const m of methods) if (item[m]) docOps.add(`${m.toUpperCase()} ${path}`);
    }
    for (const op of mdOps) check(docOps.has(op), `endpoint ${op}: in docs/API.md, not in the document`);
    for (const op of docOps) check(mdOps.has(op), `endpoint ${op}: in the document, no "## ${op}" section in docs/API.md`);
    check(mdOps.size >= 8, `found only ${mdOps.size} endpoints in docs/API.md`);

    // The overview table lists the same endpoints (OPTIONS "any path" aside).
    const overview = new Set();
    for (const m of md.matchAll(/^\| ([A-Z]+) \| `(\/[^`]*)` \|/gm)) overview.add(`${m[1]} ${m[2]}`);
    for (const op of overview) check(mdOps.has(op), `endpoint ${op}: in docs/API.md's overview table, no section for it`);
    for (const op of mdOps) {
        if (!op.startsWith("OPTIONS")) check(overview.has(op), `endpoint ${op}: has a section, not in docs/API.md's overview table`);
    }

    // Each endpoint's answers: statuses, and per status the error codes.
    for (const s of sections) {
        const rows = [];
        for (let i = s.start; i < s.end; ++i) {
            const m = lines[i].match(/^\| (\d{3}) \|/);
            if (m) rows.push(cells(lines[i]));
        }
        for (const path of s.paths) {
            const op = doc.paths?.[path]?.[s.method];
            if (!op) continue;
            const where = `${s.method.toUpperCase()} ${path}`;
            check(rows.length > 0, `${where}: docs/API.md has no "| status | code | when |" table`);
            const mdStatuses = new Set(rows.map((r) => r[0]));
            const docStatuses = new Set(Object.keys(op.responses || {}));
            for (const st of mdStatuses) check(docStatuses.has(st), `${where}: status ${st} in docs/API.md, not in the document`);
            for (const st of docStatuses) check(mdStatuses.has(st), `${where}: status ${st} in the document, not in docs/API.md`);
            for (const r of rows) {
                const response = resolve(op.responses?.[r[0]]);
                if (!response) continue;
                const mdCodes = new Set(codesIn(r[1]));
                const docCodes = new Set(codesIn(response.description));
                for (const c of mdCodes) check(docCodes.has(c), `${where} ${r[0]}: code "${c}" in docs/API.md, the document's description does not name it`);
                for (const c of docCodes) check(mdCodes.has(c), `${where} ${r[0]}: code "${c}" in the document, not in docs/API.md's row`);
            }
        }
    }

    // Field tables.
    let tables = 0;
    lines.forEach((line, i) => {
        const marker = line.match(/^<!-- schema: (\w+) -->$/);
        if (!marker) return;
        ++tables;
        const name = marker[1];
        const node = schema(name);
        check(node, `docs/API.md has a table for schema ${name}, the document has no such schema`);
        const table = tableAfter(i + 1);
        check(table, `schema ${name}: no table after its marker in docs/API.md`);
        if (!node || !table) return;
        const typeCol = table.header.indexOf("type");
        const defaultCol = table.header.indexOf("default");
        const fields = flatten(node);
        const documented = new Set();
        for (const row of table.rows) {
            const path = row[0].match(/^`([^`]+)`$/)?.[1];
            if (!path) continue;
            documented.add(path);
            const f = fields.get(path);
            check(f, `${name}: field "${path}" in docs/API.md, not in the document`);
            if (!f) continue;
            const typeText = row[typeCol] || "";
            const type = typeText.split(/\s/)[0];
            check(type === f.type, `${name}.${path}: docs/API.md says ${type}, the document ${f.type}`);
            check(/\bor null\b/.test(typeText) === f.nullable,
                `${name}.${path}: nullable in ${f.nullable ? "the document, not docs/API.md" : "docs/API.md, not the document"}`);
            const rowText = row.slice(1).join(" | ");
            if (defaultCol >= 0) {
                const def = (row[defaultCol] || "").trim();
                check((def === "required") === f.required,
                    `${name}.${path}: required in ${f.required ? "the document, not docs/API.md" : "docs/API.md, not the document"}`);
                const literal = def.match(/^`(.*)`$/);
                if (literal || f.default !== undefined) {
                    check(literal && JSON.stringify(f.default) === literal[1],
                        `${name}.${path}: default ${literal ? literal[1] : def} in docs/API.md, ${JSON.stringify(f.default)} in the document`);
                }
            } else {
                const optional = /\(optional\)/.test(typeText);
                check(optional === !f.required,
                    `${name}.${path}: ${f.required ? "required in the document, (optional) in docs/API.md" : "optional in the document, not marked (optional) in docs/API.md"}`);
            }
            // (The Error code's values are the codes table's business, below.)
            for (const value of f.enum === codeEnum ? [] : f.enum || []) {
                check(rowText.includes(`\`${value}\``) || rowText.includes(`\`"${value}"\``),
                    `${name}.${path}: docs/API.md does not name the value "${value}"`);
            }
        }
        for (const path of fields.keys()) check(documented.has(path), `${name}: field "${path}" in the document, not in docs/API.md`);
    });
    for (const name of ["SummarizeRequest", "SummarizeResponse", "Plan", "Error"]) {
        check(md.includes(`<!-- schema: ${name} -->`), `docs/API.md has no field table for ${name}`);
    }

    // Examples.
    lines.forEach((line, i) => {
        const marker = line.match(/^<!-- example: (\w+) -->$/);
        if (!marker) return;
        const text = blockAfter(i + 1);
        check(text, `example ${marker[1]}: no json block after its marker in docs/API.md`);
        if (!text) return;
        let value;
        try {
            value = JSON.parse(text.replace(/\/\/[^\n]*/g, ""));
        } catch (e) {
            check(false, `example ${marker[1]} in docs/API.md is not JSON: ${e.message}`);
            return;
        }
        const out = validate(value, schema(marker[1]), `example ${marker[1]} in docs/API.md`, []);
        check(out.length === 0, out.join("\n"));
    });

    // SSE events.
    const stream = schema("SummarizeStream");
    const alternatives = (stream?.items?.oneOf || []).map((a) => resolve(a));
    const docEvents = new Map();
    for (const alt of alternatives) for (const e of alt?.properties?.event?.enum || []) docEvents.set(e, alt);
    const eventsAt = lines.findIndex((l) => l === "<!-- events -->");
    check(eventsAt >= 0, "docs/API.md has no <!-- events --> table");
    const mdEvents = new Set();
    for (const row of (eventsAt >= 0 ? tableAfter(eventsAt + 1)?.rows : []) || []) {
        const name = row[0].match(/^`(\w+)`$/)?.[1];
        if (!name) continue;
        mdEvents.add(name);
        const alt = docEvents.get(name);
        check(alt, `SSE event "${name}": in docs/API.md, not in SummarizeStream`);
        if (!alt) continue;
        const inline = row[1].match(/`\{(.*)\}`/);
        if (inline) {
            const data = resolve(alt.properties.data);
            const listed = new Set([...inline[1].matchAll(/"(\w+)"/g)].map((m) => m[1]));
            const props = new Set(Object.keys(data?.properties || {}));
            for (const f of listed) check(props.has(f), `SSE event "${name}": data field "${f}" in docs/API.md, not in the document`);
            for (const f of props) check(listed.has(f), `SSE event "${name}": data field "${f}" in the document, not in docs/API.md`);
            for (const f of listed) check((data?.required || []).includes(f), `SSE event "${name}": data field "${f}" is not required in the document`);
        } else {
            const named = row[1].match(/`(\w+)`/)?.[1];
            check(named && refName(alt.properties.data) === named,
                `SSE event "${name}": docs/API.md says its data is ${named}, the document ${refName(alt.properties.data)}`);
        }
    }
    for (const name of docEvents.keys()) check(mdEvents.has(name), `SSE event "${name}": in the document, not in docs/API.md`);
    const order = (stream?.description || "").match(/\b(meta|progress|delta|done|error)\b/g) || [];
    check([...mdEvents].every((n) => order.includes(n)), "SummarizeStream's description does not name every event");

    // Error codes: the codes table against the Error enum and every response that names a code.
    const codesAt = lines.findIndex((l) => l === "<!-- codes -->");
    check(codesAt >= 0, "docs/API.md has no <!-- codes --> table");
    const mdCodes = new Map();  // code -> {status, headers}
    for (const row of (codesAt >= 0 ? tableAfter(codesAt + 1)?.rows : []) || []) {
        const code = row[1]?.match(/^`(\w+)`$/)?.[1];
        if (!code) continue;
        const headers = new Set([...(row[3] || "").matchAll(/`([\w-]+)(?::[^`]*)?`/g)].map((m) => m[1].toLowerCase()));
        mdCodes.set(code, { status: row[0], headers });
    }
    for (const c of mdCodes.keys()) check(codeEnum.includes(c), `error code "${c}": in docs/API.md, not in the Error schema's enum`);
    for (const c of codeEnum) check(mdCodes.has(c), `error code "${c}": in the Error schema's enum, not in docs/API.md's codes table`);
    const named = new Set();
    for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const m of methods) {
            for (const [status, raw] of Object.entries(item[m]?.responses || {})) {
                const response = resolve(raw);
                const codes = codesIn(response?.description);
                const headers = Object.keys(response?.headers || {}).map((h) => h.toLowerCase()).filter((h) => h !== "x-request-id");
                for (const c of codes) {
                    named.add(c);
                    const row = mdCodes.get(c);
                    if (!row) continue;
                    const where = `${m.toUpperCase()} ${path} ${status}`;
                    check(row.status === status, `error code "${c}": status ${row.status} in docs/API.md's codes table, ${status} at ${where}`);
                    for (const h of headers) check(row.headers.has(h), `error code "${c}": the document sends header ${h} with it (${where}), docs/API.md's codes table does not`);
                    for (const h of row.headers) check(headers.includes(h), `error code "${c}": docs/API.md's codes table names header ${h}, ${where} does not have it`);
                }
            }
        }
    }
    for (const c of mdCodes.keys()) {
        check(named.has(c) || (doc.info?.description || "").includes(`\`${c}\``),
            `error code "${c}": no operation's response names it, nor does info.description`);
    }

    // The request: both media types, unknown fields refused, the query parameters are the options.
    const request = schema("SummarizeRequest");
    check(request?.additionalProperties === false, "SummarizeRequest must reject unknown fields (additionalProperties: false)");
    for (const path of ["/summarize", "/summarize/plan"]) {
        const op = doc.paths?.[path]?.post;
        const bodies = resolve(op?.requestBody)?.content || {};
        check(bodies["application/json"] && bodies["text/plain"], `${path} must accept application/json and text/plain`);
        const query = (op?.parameters || []).map(resolve).filter((p) => p?.in === "query").map((p) => p.name).sort();
        const options = Object.keys(request?.properties || {}).filter((k) => k !== "text").sort();
        check(JSON.stringify(query) === JSON.stringify(options),
            `${path}: query parameters ${query.join(",")} are not the request's options ${options.join(",")}`);
    }
    const ok200 = resolve(doc.paths?.["/summarize"]?.post?.responses?.["200"]);
    check(ok200?.headers?.["X-Request-Id"], "/summarize 200 has no X-Request-Id header");
    check(ok200?.content?.["text/event-stream"], "/summarize 200 has no text/event-stream content");
    check(tables >= 4, `found only ${tables} field tables in docs/API.md`);
}

// ---- real answers against the document ---------------------------------------------------------
for (const sample of samples) {
    const [kind, file] = sample.split("=");
    const text = fs.readFileSync(file, "utf8");
    if (kind.startsWith("json:")) {
        const name = kind.slice(5);
        const out = validate(JSON.parse(text), schema(name), `${name} (${file})`, []);
        check(out.length === 0, out.join("\n"));
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
