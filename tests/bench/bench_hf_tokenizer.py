"""Hugging Face `tokenizers` on the same text as bench_tokenizer, single thread.
Usage: bench_hf_tokenizer.py MODEL_DIR TEXT_FILE [REPEATS]; prints key=value pairs."""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"          # one thread, like kiln's number
os.environ["TOKENIZERS_PARALLELISM"] = "false"


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def main():
    model, text_file = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    from tokenizers import Tokenizer
    rss0 = status_kb("VmRSS")
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    load_s = time.perf_counter() - t0
    rss = status_kb("VmRSS") - rss0
    peak = status_kb("VmHWM")
    with open(text_file, encoding="utf-8") as f:
        text = f.read()
    n = len(text.encode())
    best = float("inf")
    for r in range(repeats + 1):
        t = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        dt = time.perf_counter() - t
        if r > 0:
            best = min(best, dt)
    print(f"hf_mb_s={n / best / 1e6:.2f} tokens={len(ids)} load_s={load_s:.3f} "
          f"rss_mb={rss / 1024:.1f} peak_rss_mb={peak / 1024:.1f}")


if __name__ == "__main__":
    main()
