"""Writes the benchmark text: about 1 MB of deterministic mixed-language text (English,
code, Chinese, Japanese, Korean, Russian, German, French, Spanish, Arabic, Hindi, Vietnamese,
emoji, numbers), in paragraphs. Usage: bench_text.py OUT [BYTES]"""
import random
import sys

LANGS = {
    "en": (0.40, "the of and to in is that it was for on are with as his they be at one have "
                 "this from or had by not word but what some we can out other were all there "
                 "when up use your how said an each she which do their time if will way about "
                 "many then them write would like so these her long make thing see him two has "
                 "look more day could go come did number sound no most people my over know "
                 "water than call first who may down side been now find model server token "
                 "inference latency throughput memory request response stream batch kernel"),
    "code": (0.12, "def return import from class self if else elif for while in not None True "
                   "False int main(void) { } ( ) ; = == != -> :: #include <stdio.h> printf "
                   "x += 1; const char *p = buf; size_t n = strlen(s); std::vector<int> "
                   "async await fn let mut impl struct enum match => Option<T> .unwrap()"),
    "zh": (0.08, "我们 你好 世界 中国 人工智能 模型 数据 计算 服务器 语言 学习 的 是 在 了 和 有 "
                 "这个 一个 不是 可以 因为 所以 但是 我们的 研究 发展 技术"),
    "ja": (0.05, "こんにちは 世界 日本語 の テキスト です ます カタカナ ひらがな 東京 "
                 "機械学習 モデル データ を 使って 処理 します"),
    "ko": (0.03, "안녕하세요 세계 한국어 텍스트 모델 데이터 처리 서버 입니다 그리고"),
    "ru": (0.07, "привет мир это пример текста на русском языке модель данные сервер "
                 "обработка запрос ответ и в не что он на я с со как а то все она так его"),
    "de": (0.06, "der die das und ist nicht ein eine Straße Größe Übersetzung Mädchen schön "
                 "Verarbeitung Sprachmodell Anfrage Antwort über für mit"),
    "fr": (0.05, "le la les et est une des pour avec être français élève à où ça déjà "
                 "modèle données réponse requête très"),
    "es": (0.04, "el la los las y es una para con año niño señor qué cómo está modelo datos"),
    "ar": (0.03, "مرحبا العالم هذا نص باللغة العربية نموذج بيانات خادم طلب استجابة"),
    "hi": (0.03, "नमस्ते दुनिया यह हिन्दी पाठ है मॉडल डेटा सर्वर अनुरोध"),
    "vi": (0.02, "xin chào thế giới đây là văn bản tiếng Việt mô hình dữ liệu máy chủ việc"),
    "emoji": (0.02, "😀 🚀 ❤️ 👍🏽 🌍 ✨ 🤖 👨‍👩‍👧 🇫🇷 🎉"),
}


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    rng = random.Random(2026)
    names = list(LANGS)
    weights = [LANGS[n][0] for n in names]
    words = {n: LANGS[n][1].split() for n in names}
    parts, total = [], 0
    while total < size:
        lang = rng.choices(names, weights)[0]
        sentence = " ".join(rng.choice(words[lang]) for _ in range(rng.randint(4, 18)))
        if lang in ("en", "de", "fr", "es", "ru", "vi"):
            sentence = sentence[0].upper() + sentence[1:]
        r = rng.random()
        if r < 0.1:
            sentence += " " + str(rng.randint(0, 10 ** rng.randint(1, 9)))
        sentence += rng.choice([". ", ", ", "! ", "? ", ".\n", ".\n\n", "; ", ": "])
        if lang == "code" and r < 0.5:
            sentence = "    " + sentence.strip() + "\n"
        parts.append(sentence)
        total += len(sentence.encode())
    text = "".join(parts).encode()[:size].decode("utf-8", "ignore")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
