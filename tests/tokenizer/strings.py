"""Deterministic generator of test strings for the tokenizer differential tests.

Mixes scripts, emoji (with ZWJ sequences, skin tones and flags), whitespace runs (ASCII and
Unicode), digit runs (ASCII and other scripts), punctuation, contractions, code, decomposed
accents (for NFC), the tokenizer's own special-token text (whole, glued to words and cut in
half), and random code points. Random code points are drawn only from characters that are
assigned in Unicode 14.0 (Python 3.11's unicodedata; PCRE2 10.42 and utf8proc 2.8 know at least
as much), so that the two implementations' Unicode tables agree on them.
"""
import random
import unicodedata

WORDS = {
    "latin": ["hello", "world", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
              "tokenizer", "Internationalization", "don't", "I'm", "we'll", "they've", "she'd",
              "IT'S", "You'RE", "O'Neil", "naïve", "café", "façade", "Ångström", "straße",
              "İstanbul", "ǅemal", "ﬁne", "Ⅻ", "x²", "µs", "ΩMEGA"],
    "greek": ["αλφα", "Βήτα", "γάμμα", "Ελληνικά", "ψυχή"],
    "cyrillic": ["привет", "Мир", "ёжик", "Україна", "щука"],
    "arabic": ["مرحبا", "العالم", "كتاب", "٣٤٥"],
    "hebrew": ["שלום", "עולם", "ספר"],
    "devanagari": ["नमस्ते", "दुनिया", "हिन्दी", "१२३"],
    "thai": ["สวัสดี", "ภาษาไทย"],
    "cjk": ["你好", "世界", "中文字符", "漢字", "東京", "数据库", "的", "是"],
    "japanese": ["こんにちは", "カタカナ", "ひらがな", "ﾊﾝｶｸ"],
    "korean": ["안녕하세요", "세계", "한국어"],
    "vietnamese": ["việc", "Tiếng", "Việt", "người"],
    "code": ["def", "return", "x+=1;", "if(a<b){", "}", "->", "::", "==", "!=", "/*", "*/",
             "#include", "<stdio.h>", "0x1F", "snake_case", "camelCase", "__init__", "`code`"],
    "emoji": ["😀", "🌍", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "✨", "🤖", "☃", "🧑‍💻"],
}
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2028",
          "\u2003", " \t\n", "\x0b", "\x0c", "\u200b", "\u202f", "          "]
PUNCT = [".", ",", "!", "?", "...", ";", ":", "—", "–", "«", "»", "“", "”", "'", '"', "(",
         ")", "[", "]", "{", "}", "¿", "¡", "、", "。", "！", "＂", "@", "#", "$", "%", "^", "&",
         "*", "~", "|", "\\", "/", "-", "_", "+", "="]
DIGITS = ["0", "7", "42", "123", "2024", "31415926535", "1,000,000", "3.14", "٣", "४२", "１２",
          "½", "Ⅳ", "00001"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u0301", "A\u030a"]

_ASSIGNED = {}


def assigned_codepoints(old=False):
    """Code points assigned in Unicode 14.0 (old: also in Unicode 3.2, for components of HF
    that carry old Unicode tables, such as StripAccents' combining-mark test)."""
    if old not in _ASSIGNED:
        db = unicodedata.ucd_3_2_0 if old else unicodedata
        _ASSIGNED[old] = [c for c in range(0x20, 0x30000)
                          if not (0xD800 <= c <= 0xDFFF)
                          and unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")
                          and db.category(chr(c)) not in ("Cn", "Cs", "Co")]
    return _ASSIGNED[old]


def random_chars(rng, n, old=False):
    cps = assigned_codepoints(old)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.4:
            out.append(chr(rng.randint(0x20, 0x7e)))
        elif r < 0.5:
            out.append(chr(rng.randint(0, 0x1f)))
        else:
            out.append(chr(rng.choice(cps)))
    return "".join(out)


def piece(rng, specials, old=False):
    r = rng.random()
    if r < 0.45:
        return rng.choice(WORDS[rng.choice(list(WORDS))])
    if r < 0.60:
        return rng.choice(SPACES)
    if r < 0.70:
        return rng.choice(PUNCT)
    if r < 0.78:
        return rng.choice(DIGITS)
    if r < 0.82:
        return rng.choice(COMBINING)
    if r < 0.90 and specials:
        s = rng.choice(specials)
        k = rng.random()
        if k < 0.6:
            return s
        if k < 0.8:
            return s[: max(1, len(s) // 2)]
        return s.upper() if k < 0.9 else " " + s + " "
    return random_chars(rng, rng.randint(1, 8), old)


def generate(seed, n, specials=(), old_unicode=False):
    """n strings, reproducible for a given seed and specials list."""
    rng = random.Random(seed)
    specials = sorted(specials)
    out = ["", " ", "  leading", "trailing  ", "\n", "a", "A" * 300, "1" * 50, " " * 40,
           "\t\t\tx", "x\r\n\r\ny"]
    while len(out) < n:
        k = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
        sep = rng.random()
        parts = [piece(rng, specials, old_unicode) for _ in range(k)]
        out.append(("" if sep < 0.5 else " ").join(parts))
    return out[:n]
