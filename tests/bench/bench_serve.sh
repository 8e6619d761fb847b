#!/usr/bin/env bash
# make bench-serve: kiln serve against llama.cpp's llama-server on this machine, one after the
# other, on the same weights and the same workloads, measured by `kiln bench serve` (vLLM's
# metric definitions), then one table side by side with ratios (tests/bench/bench_serve_table.py).
#
#   tests/bench/bench_serve.sh [BUILD_DIR]
#
# Models: stories260K (its real weights) and dummy weights at TinyLlama-1.1B's shapes in f16
# (tests/bench/make_dummy_model.py), each converted to GGUF for llama.cpp
# (tests/bench/hf_to_gguf.py); llama-server is built once from the llama-cpp-python sdist
# (tests/bench/peer_llamacpp.sh, ~5-9 minutes the first time, cached in BUILD_DIR/peer).
# Workloads per model and server: single-request decode, TTFT of a long prompt (512 tokens;
# 480 for stories260K, whose context is 512), and random 256-in/128-out at concurrency 1, 8, 32.
# Each server gets every core: kiln serve --threads $(nproc) (one frontend), llama-server -t
# $(nproc) with 32 slots and continuous batching. Results: BUILD_DIR/bench-serve/*.json.
#
# Environment: BENCH_MODELS ("stories260K tinyllama"), BENCH_SERVERS ("kiln llamacpp").
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/../.."
fixtures=${KILN_FIXTURES:-../shared/fixtures}
out=$build/bench-serve
mkdir -p "$out"
kiln=$build/kiln
threads=$(nproc)
models=${BENCH_MODELS:-stories260K tinyllama}
servers=${BENCH_SERVERS:-kiln llamacpp}
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q gguf 2>/dev/null ||
    python3 -m pip install -q --break-system-packages gguf

peer=""
case " $servers " in *" llamacpp "*) peer=$(tests/bench/peer_llamacpp.sh "$build" | tail -1) ;; esac

# prepare MODEL: sets dir (HF), gguf, tok, long (TTFT prompt tokens), ctx (llama.cpp context)
prepare() {
    case $1 in
    stories260K)
        dir=$fixtures/models/stories260K
        tok=$dir
        long=480
        ctx=16384
        gguf=$out/stories260K.gguf
        [ -f "$gguf" ] || python3 tests/bench/hf_to_gguf.py "$dir" "$gguf" >&2
        ;;
    tinyllama)
        dir=$out/tinyllama-dummy-f16
        tok=$fixtures/shapes/tinyllama-1.1b-chat
        long=512
        ctx=32768
        gguf=$out/tinyllama-dummy-f16.gguf
        [ -f "$dir/model.safetensors" ] || python3 tests/bench/make_dummy_model.py "$dir" \
            --shapes "$tok" --dtype f16 --seed 0 >&2
        [ -f "$gguf" ] || python3 tests/bench/hf_to_gguf.py "$dir" "$gguf" --outtype f16 >&2
        ;;
    *)
        echo "bench_serve: unknown model $1" >&2
        exit 2
        ;;
    esac
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid=""
stop_server() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
trap stop_server EXIT

# start_server SERVER MODEL: starts it on a free port (sets url) and waits until it answers
start_server() {
    local port
    port=$(free_port)
    url=http://127.0.0.1:$port
    case $1 in
    kiln)
        "$kiln" serve --model "$dir" --served-model-name "$2" --port "$port" --frontends 1 \
            --threads "$threads" --max-num-seqs 64 --log-level warn >"$out/$2-kiln.log" 2>&1 &
        ;;
    llamacpp)
        "$peer" -m "$gguf" --alias "$2" --host 127.0.0.1 --port "$port" -t "$threads" \
            -c "$ctx" -np 32 --no-webui >"$out/$2-llamacpp.log" 2>&1 &
        ;;
    esac
    pid=$!
    for _ in $(seq 600); do
        if curl -sf "$url/v1/models" >/dev/null 2>&1 &&
            curl -sf "$url/health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench_serve: $1 did not start; see $out/$2-$1.log" >&2
    exit 1
}

# run NAME SEED FLAGS...: one kiln bench serve run into $out/MODEL-SERVER-NAME.json. Each
# workload has its own seed, so no workload's prompts share a prefix with another's (the
# random prompts of one seed are prefixes of each other across lengths); both servers get the
# same prompts.
run() {
    local name=$1 seed=$2
    shift 2
    "$kiln" bench serve --base-url "$url" --model "$model" --tokenizer "$tok" --temperature 0 \
        --ignore-eos --ready-check-timeout-sec 0 --seed "$seed" \
        --result-file "$out/$model-$server-$name.json" "$@" >"$out/$model-$server-$name.txt"
    grep -E "^(Successful|Failed) requests|^Output token throughput|^Mean TTFT|^Median TPOT" \
        "$out/$model-$server-$name.txt" | tr -s ' ' | paste -sd ';' |
        sed "s/^/  $model $server $name: /"
}

# cpu_times: "busy steal total" jiffies of every CPU (steal: time the hypervisor gave to other
# guests; a noisy neighbour shows here)
cpu_times() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $2 + $3 + $4 + $7 + $8, $9, t }' /proc/stat
}

for model in $models; do
    prepare "$model"
    for server in $servers; do
        start_server "$server" "$model"
        before=$(cpu_times)
        # warm the server (page cache, first-call costs) on a prompt no workload repeats
        "$kiln" bench serve --base-url "$url" --model "$model" --tokenizer "$tok" \
            --num-prompts 2 --random-input-len 16 --random-output-len 4 --ignore-eos \
            --seed 99 >/dev/null
        run decode 1 --num-prompts 2 --max-concurrency 1 --random-input-len 32 \
            --random-output-len 128
        run ttft 2 --num-prompts 3 --max-concurrency 1 --random-input-len "$long" \
            --random-output-len 1
        if [ "$model" = tinyllama ]; then n1=2 n8=8 n32=32; else n1=8 n8=64 n32=256; fi
        run c1 3 --num-prompts $n1 --max-concurrency 1 --random-input-len 256 \
            --random-output-len 128
        run c8 4 --num-prompts $n8 --max-concurrency 8 --random-input-len 256 \
            --random-output-len 128
        run c32 5 --num-prompts $n32 --max-concurrency 32 --random-input-len 256 \
            --random-output-len 128
        after=$(cpu_times)
        # shellcheck disable=SC2086
        set -- $before $after
        awk -v s=$(($5 - $2)) -v t=$(($6 - $3)) -v m="$model" -v v="$server" \
            'BEGIN { printf "  %s %s: cpu steal %.1f%% of the run\n", m, v, t ? 100 * s / t : 0 }' |
            tee "$out/$model-$server-steal.txt"
        stop_server
    done
done
python3 tests/bench/bench_serve_table.py "$out" $models
