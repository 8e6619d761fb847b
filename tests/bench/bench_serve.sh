#!/usr/bin/env bash
# make bench-serve: kiln serve against llama.cpp's llama-server on this machine, taking turns,
# on the same weights and the same workloads, measured by `kiln bench serve` (vLLM's metric
# definitions), then one table side by side with ratios (tests/bench/bench_serve_table.py).
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
# $(nproc) with 32 slots and continuous batching. Both run at once and take turns on each
# workload; the short workloads (decode, TTFT, concurrency 1) run BENCH_ROUNDS times each and
# the table shows the median round. Results: BUILD_DIR/bench-serve/*.json.
#
# BENCH_SERVERS="kiln llamacpp llamacpp-python" adds llama-cpp-python's own server (one
# request at a time; tests/bench/peer_llamacpp_python.sh installs it once, ~8 minutes), and
# takes ~20 minutes instead of ~10.
#
# Environment: BENCH_MODELS ("stories260K tinyllama"), BENCH_SERVERS ("kiln llamacpp"),
# BENCH_ROUNDS (3).
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
rounds=${BENCH_ROUNDS:-3}
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q gguf 2>/dev/null ||
    python3 -m pip install -q --break-system-packages gguf

peer="" lcp_py=""
case " $servers " in *" llamacpp "*) peer=$(tests/bench/peer_llamacpp.sh "$build" | tail -1) ;; esac
case " $servers " in
*" llamacpp-python "*) lcp_py=$(tests/bench/peer_llamacpp_python.sh "$build" | tail -1) ;;
esac

# prepare MODEL: sets dir (HF), gguf, tok, long (TTFT prompt tokens), ctx and lcp_ctx (the
# contexts of llama-server, all slots, and of llama-cpp-python), eos (its token id)
prepare() {
    case $1 in
    stories260K)
        dir=$fixtures/models/stories260K
        tok=$dir
        long=480
        ctx=16384
        lcp_ctx=512
        gguf=$out/stories260K.gguf
        [ -f "$gguf" ] || python3 tests/bench/hf_to_gguf.py "$dir" "$gguf" >&2
        ;;
    tinyllama)
        dir=$out/tinyllama-dummy-f16
        tok=$fixtures/shapes/tinyllama-1.1b-chat
        long=512
        ctx=32768
        lcp_ctx=2048
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
    eos=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["eos_token_id"])' \
        "$dir/config.json")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

declare -A pids urls
stop_servers() {
    local v
    for v in "${!pids[@]}"; do
        kill -TERM "${pids[$v]}" 2>/dev/null || true
        wait "${pids[$v]}" 2>/dev/null || true
        unset "pids[$v]"
    done
}
trap stop_servers EXIT

# start_server SERVER MODEL: starts it on a free port (sets urls[SERVER]) and waits until it
# answers
start_server() {
    local port url pid
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
    llamacpp-python)
        # --interrupt_requests false: by default a new request cuts the running one short,
        # and under concurrency most requests would end after a token or two
        "$lcp_py" -m llama_cpp.server --model "$gguf" --model_alias "$2" --host 127.0.0.1 \
            --port "$port" --n_threads "$threads" --n_threads_batch "$threads" \
            --n_ctx "$lcp_ctx" --n_batch 512 --interrupt_requests false \
            >"$out/$2-llamacpp-python.log" 2>&1 &
        ;;
    esac
    pid=$!
    pids[$1]=$pid
    urls[$1]=$url
    local health=$url/health
    [ "$1" = llamacpp-python ] && health=$url/v1/models # it has no /health
    for _ in $(seq 600); do
        if curl -sf "$url/v1/models" >/dev/null 2>&1 &&
            curl -sf "$health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench_serve: $1 did not start; see $out/$2-$1.log" >&2
    exit 1
}

# run SERVER NAME SEED FLAGS...: one kiln bench serve run into $out/MODEL-SERVER-NAME.json.
# Each workload has its own seed, so no workload's prompts share a prefix with another's (the
# random prompts of one seed are prefixes of each other across lengths); both servers get the
# same prompts.
run() {
    local server=$1 name=$2 seed=$3 extra=()
    shift 3
    # llama-cpp-python has no ignore_eos: a large negative logit bias on EOS does the same
    [ "$server" = llamacpp-python ] && extra=(--extra-body "{\"logit_bias\": {\"$eos\": -10000}}")
    "$kiln" bench serve --base-url "${urls[$server]}" --model "$model" --tokenizer "$tok" \
        --temperature 0 --ignore-eos --ready-check-timeout-sec 0 --seed "$seed" \
        --result-file "$out/$model-$server-$name.json" "${extra[@]}" "$@" \
        >"$out/$model-$server-$name.txt"
    grep -E "^(Successful|Failed) requests|^Output token throughput|^Mean TTFT|^Median TPOT" \
        "$out/$model-$server-$name.txt" | tr -s ' ' | paste -sd ';' |
        sed "s/^/  $model $server $name: /"
}

# workload NAME ROUNDS SEED FLAGS...: ROUNDS runs of the workload on every server, taking
# turns (the order flips each round), into NAME-r1, NAME-r2, ... Each round has prompts of its
# own (seed SEED * 100 + round): a round repeating the last one's would time prefix caches.
workload() {
    local name=$1 rounds=$2 seed=$3 r server order
    shift 3
    for r in $(seq "$rounds"); do
        order=$servers
        [ $((r % 2)) = 0 ] && order=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')
        for server in $order; do
            run "$server" "$name-r$r" $((seed * 100 + r)) "$@"
        done
    done
}

# cpu_times: "busy steal total" jiffies of every CPU (steal: time the hypervisor gave to other
# guests; a noisy neighbour shows here)
cpu_times() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $2 + $3 + $4 + $7 + $8, $9, t }' /proc/stat
}

rm -f "$out"/*-r[0-9]*.json "$out"/*-r[0-9]*.txt
for model in $models; do
    prepare "$model"
    # every server up at once (an idle one costs nothing), so that the servers take turns on
    # each workload: this machine's speed drifts by 10-30% over minutes (other guests), and
    # turns keep both servers' runs of a workload within seconds of each other
    for server in $servers; do
        start_server "$server" "$model"
        # warm the server (page cache, first-call costs) on a prompt no workload repeats
        run "$server" warm 99 --num-prompts 2 --random-input-len 16 --random-output-len 4 \
            >/dev/null
    done
    before=$(cpu_times)
    if [ "$model" = tinyllama ]; then n1=2 n8=8 n32=32; else n1=8 n8=64 n32=256; fi
    workload decode "$rounds" 1 --num-prompts 2 --max-concurrency 1 --random-input-len 32 \
        --random-output-len 128
    workload ttft "$rounds" 2 --num-prompts 3 --max-concurrency 1 --random-input-len "$long" \
        --random-output-len 1
    workload c1 "$rounds" 3 --num-prompts $n1 --max-concurrency 1 --random-input-len 256 \
        --random-output-len 128
    workload c8 1 4 --num-prompts $n8 --max-concurrency 8 --random-input-len 256 \
        --random-output-len 128
    workload c32 1 5 --num-prompts $n32 --max-concurrency 32 --random-input-len 256 \
        --random-output-len 128
    after=$(cpu_times)
    # shellcheck disable=SC2086
    set -- $before $after
    awk -v s=$(($5 - $2)) -v t=$(($6 - $3)) -v m="$model" \
        'BEGIN { printf "  %s: cpu steal %.1f%% of the run\n", m, t ? 100 * s / t : 0 }' |
        tee "$out/$model-steal.txt"
    stop_servers
done
# shellcheck disable=SC2086 # one argument per model
python3 tests/bench/bench_serve_table.py "$out" $models
