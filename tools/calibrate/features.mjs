// Feature extraction for the Gemma 3 token estimate. It MUST mirror src/tokens.cpp: fit.mjs fits
// the coefficients on these features, and the C++ code evaluates the same weighted sum.
//
// The text is cut into runs of one character class. Gemma's BPE has whole-word tokens for most
// English words (with their leading space), splits digits one by one, has many 1-2 character
// Japanese words, and falls back to bytes for characters outside its vocabulary.

export const Cls = Object.freeze({
    LATIN: 0, DIGIT: 1, SPACE: 2, NEWLINE: 3, PUNCT: 4, HIRAGANA: 5, KATAKANA: 6, HAN: 7,
    CJK_SYMBOL: 8, OTHER_LETTER: 9, EMOJI: 10, BYTE_FALLBACK: 11, SYMBOL: 12, HANGUL: 13,
});

export function classify(cp) {
    if (cp < 0x80) {
        if ((cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a)) return Cls.LATIN;
        if (cp >= 0x30 && cp <= 0x39) return Cls.DIGIT;
        if (cp === 0x0a || cp === 0x0d) return Cls.NEWLINE;
        if (cp === 0x20 || cp === 0x09 || cp === 0x0b || cp === 0x0c) return Cls.SPACE;
        if (cp > 0x20 && cp < 0x7f) return Cls.PUNCT;
        return Cls.SYMBOL;  // control characters
    }
    if ((cp >= 0xc0 && cp <= 0x24f && cp !== 0xd7 && cp !== 0xf7) || (cp >= 0x1e00 && cp <= 0x1eff)) return Cls.LATIN;
    if (cp === 0xa0 || cp === 0x3000 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x202f || cp === 0x205f) {
        return Cls.BYTE_FALLBACK;  // Unicode spaces are not in Gemma's vocabulary
    }
    if (cp >= 0x3040 && cp <= 0x309f) return Cls.HIRAGANA;
    if ((cp >= 0x30a0 && cp <= 0x30ff) || (cp >= 0x31f0 && cp <= 0x31ff)) return Cls.KATAKANA;
    if ((cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0xf900 && cp <= 0xfaff)) return Cls.HAN;
    if ((cp >= 0x3000 && cp <= 0x303f) || (cp >= 0xff00 && cp <= 0xffef) || (cp >= 0x3200 && cp <= 0x33ff)) {
        return Cls.CJK_SYMBOL;
    }
    if ((cp >= 0xac00 && cp <= 0xd7af) || (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0x3130 && cp <= 0x318f)) {
        return Cls.HANGUL;
    }
    if ((cp >= 0x0370 && cp <= 0x0eff) || (cp >= 0x10a0 && cp <= 0x10ff)) {
        return Cls.OTHER_LETTER;  // Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, Thai, Lao, Georgian
    }
    if ((cp >= 0x1f000 && cp <= 0x1faff) || (cp >= 0x2600 && cp <= 0x27bf) || cp === 0x200d || cp === 0xfe0f) {
        return Cls.EMOJI;
    }
    if (cp >= 0x10000) return Cls.BYTE_FALLBACK;
    return Cls.SYMBOL;
}

// Names of the features, in the order of the vector returned by extractFeatures. The last one,
// "known", sums the tokens whose cost is known without fitting (1 per digit, newline run, CJK
// symbol, emoji or other symbol; 1 per UTF-8 byte for byte fallback; a guess for other scripts).
export const FEATURES = [
    "latin_runs", "latin_long_chars", "latin_humps", "space_runs", "punct_runs", "punct_chars",
    "hiragana_chars", "hiragana_runs", "katakana_runs", "katakana_chars", "han_single_runs",
    "han_multi_runs", "han_long_chars", "latin_accented_runs", "hangul_chars", "other_letter_chars",
    "other_letter_runs", "known",
];

export const LATIN_LONG_WORD = 7;       // letters beyond this in a word start to cost extra pieces
export const HAN_LONG_RUN = 2;          // kanji beyond this in a run start to cost extra pieces
export const REPEAT_RUN_CHARS = 16;     // "----------------" is one token
export const WHITESPACE_RUN_CHARS = 31; // the longest whitespace token

function utf8Length(cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

function isLower(cp) { return cp >= 0x61 && cp <= 0x7a; }
function isUpper(cp) { return cp >= 0x41 && cp <= 0x5a; }

export function extractFeatures(text) {
    const f = Object.fromEntries(FEATURES.map((name) => [name, 0]));
    const cps = Array.from(text, (c) => c.codePointAt(0));
    const cls = cps.map(classify);
    let i = 0;
    while (i < cps.length) {
        const c = cls[i];
        let j = i + 1;
        while (j < cps.length && cls[j] === c) j++;
        const len = j - i;
        switch (c) {
        case Cls.LATIN:
            f.latin_runs += 1;
            f.latin_long_chars += Math.max(0, len - LATIN_LONG_WORD);
            for (let k = i; k < j; k++) {
                if (cps[k] >= 0x80) {
                    f.latin_accented_runs += 1;  // words of other Latin-script languages split more
                    break;
                }
            }
            for (let k = i + 1; k < j; k++) {
                if (isLower(cps[k - 1]) && isUpper(cps[k])) f.latin_humps += 1;
            }
            break;
        case Cls.DIGIT:
            f.known += len;
            break;
        case Cls.SPACE: {
            // One plain space before a word or a symbol is part of that token (" world", " (").
            const next = j < cps.length ? cls[j] : -1;
            const absorbed = len === 1 && cps[i] === 0x20 && next !== -1 && next !== Cls.DIGIT &&
                             next !== Cls.EMOJI && next !== Cls.NEWLINE && next !== Cls.BYTE_FALLBACK;
            if (!absorbed) f.space_runs += 1 + Math.floor((len - 1) / WHITESPACE_RUN_CHARS);
            break;
        }
        case Cls.NEWLINE:
            f.known += 1 + Math.floor((len - 1) / WHITESPACE_RUN_CHARS);
            for (let k = i; k < j; k++) if (cps[k] === 0x0d) f.known += 1;  // "\r" is its own token
            break;
        case Cls.PUNCT: {
            f.punct_runs += 1;
            // A character repeated 3+ times ("...", "----", "====") merges into few tokens.
            let k = i;
            while (k < j) {
                let m = k + 1;
                while (m < j && cps[m] === cps[k]) m++;
                if (m - k >= 3) {
                    f.known += Math.ceil((m - k) / REPEAT_RUN_CHARS);
                } else {
                    f.punct_chars += m - k;
                }
                k = m;
            }
            break;
        }
        case Cls.HIRAGANA:
            f.hiragana_chars += len;
            f.hiragana_runs += 1;
            break;
        case Cls.KATAKANA:
            f.katakana_runs += 1;
            f.katakana_chars += len;
            break;
        case Cls.HAN:
            if (len === 1) {
                f.han_single_runs += 1;
            } else {
                f.han_multi_runs += 1;
                f.han_long_chars += Math.max(0, len - HAN_LONG_RUN);
            }
            break;
        case Cls.HANGUL:
            f.hangul_chars += len;
            break;
        case Cls.OTHER_LETTER:
            f.other_letter_chars += len;
            f.other_letter_runs += 1;
            break;
        case Cls.BYTE_FALLBACK:
            for (let k = i; k < j; k++) f.known += utf8Length(cps[k]);
            break;
        default:  // CJK_SYMBOL, EMOJI, SYMBOL: one token each
            f.known += len;
            break;
        }
        i = j;
    }
    return FEATURES.map((name) => f[name]);
}
