#!/usr/bin/env bash
# make bench: tokenizer encode throughput, kiln against Hugging Face tokenizers, on the same
# ~1 MB mixed-language text, single thread, for the Llama 3 and Mistral tokenizers; chat
# template rendering against jinja2; the sampler; the engine's scheduler per step and the engine
# end to end over ZeroMQ (stories260K); the HTTP frontend under h2load and the time it adds per
# request; the CPU model against the machine's limits.
set -eu
build=${1:-build}
cd "$(dirname "$0")/../.."
fixtures=${KILN_FIXTURES:-../shared/fixtures}
mkdir -p "$build/bench"
text="$build/bench/mixed-1MB.txt"
python3 tests/bench/bench_text.py "$text" 1048576
val() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
echo "tokenizer encode, single thread, $(wc -c < "$text") bytes of mixed-language text"
printf '%-12s %10s %10s %7s %12s %12s %9s %9s %13s\n' tokenizer kiln_MB/s hf_MB/s ratio \
    kiln_rss_MB hf_rss_MB kiln_load hf_load utf8_scan_MB/s
status=0
for name in llama3 mistral-v3; do
    dir="$fixtures/tokenizers/$name"
    k=$("$build/tests/bench/bench_tokenizer" "$dir" "$text" 20)
    h=$(python3 tests/bench/bench_hf_tokenizer.py "$dir" "$text" 3)
    km=$(val "$k" kiln_mb_s); hm=$(val "$h" hf_mb_s)
    printf '%-12s %10s %10s %6.1fx %12s %12s %8ss %8ss %13s\n' "$name" "$km" "$hm" \
        "$(awk -v a="$km" -v b="$hm" 'BEGIN { print a / b }')" "$(val "$k" rss_mb) (peak $(val "$k" peak_rss_mb))" \
        "$(val "$h" rss_mb) (peak $(val "$h" peak_rss_mb))" "$(val "$k" load_s)" \
        "$(val "$h" load_s)" "$(val "$k" utf8_scan_mb_s)"
    if [ "$(val "$k" tokens)" != "$(val "$h" tokens)" ]; then
        echo "  MISMATCH: kiln made $(val "$k" tokens) tokens, HF $(val "$h" tokens)"
        status=1
    fi
done
echo "(ratio = kiln / HF; utf8_scan = one validation pass over the text, the floor any"
echo " tokenizer pays; rss = resident growth from loading the tokenizer, peak = process peak)"
echo
python3 tests/bench/bench_chat_template.py "$build/tests/bench/bench_chat_template" "$fixtures" \
    "$build/bench" || status=1
echo
echo "sampler: ns per sample, one thread"
"$build/tests/bench/bench_sampler" || status=1
echo
echo "engine: scheduler + input preparation per step (no model), one thread"
"$build/tests/bench/bench_scheduler" || status=1
echo
echo "engine end to end over ZeroMQ: stories260K, one engine thread"
"$build/tests/bench/bench_engine" "$build/kiln" "$fixtures/models/stories260K" || status=1
echo
echo "frontend: kiln serve under h2load (stories260K, max_tokens 1), time added per request"
tests/bench/bench_frontend.sh "$build" "$fixtures" || status=1
echo
echo "CPU model: TinyLlama-1.1B shapes, dummy bf16 weights, every CPU"
"$build/tests/bench/bench_model" "$fixtures/shapes/tinyllama-1.1b-chat" || status=1
exit $status
