#!/usr/bin/env bash
# bench_frontend.sh BUILD FIXTURES: the HTTP frontend (`kiln serve`) under load and the time it
# adds per request.
#
# 1. h2load against POST /v1/completions (stories260K, "Once upon a time", max_tokens 1,
#    temperature 0) with 1 and then 2 frontends, the engine on every CPU (--threads 0, the
#    default) and then on one (--threads 1: on a small machine the engine's spinning workers
#    otherwise take the CPUs the frontends need): HTTP/1.1 (64 clients, one request each in
#    flight) and h2c (8 clients, 32 streams each), each for DURATION_S seconds after a warm-up
#    run and a second of h2load warm-up: requests/s and latency mean/p50/p90/p99/max from
#    h2load's per-request log. Any request that fails or is not a 200 fails the bench.
# 2. The time the frontend adds per request with a 1,000-token prompt: a copy of stories260K's
#    tokenizer with max_position_embeddings 2048 and dummy weights, served by one frontend;
#    tests/bench/bench_frontend.py times the same request over HTTP and straight to that
#    serve's own engine over ZeroMQ, in turn (token ids, and text the frontend tokenizes).
# 3. A summary against the goals: 5,000 requests/s, under 1 ms added per request.
#
# Every serve is stopped with SIGTERM and must exit 0; its stderr (--log-level warn) is shown.
# BUILD and FIXTURES are relative to the repository root, as in run_bench.sh. Exits 1 on any
# failure. Environment: DURATION_S (5), ROUNDS (100, part 2).
set -u
build=${1:-build}
fixtures=${2:-../shared/fixtures}
cd "$(dirname "$0")/../.." || exit 1
kiln=$build/kiln
stories=$fixtures/models/stories260K
helper=tests/bench/bench_frontend.py
duration=${DURATION_S:-5}
rounds=${ROUNDS:-100}
goal_rps=5000
goal_added_ms=1
status=0
serve_pid=

tmp=$(mktemp -d /tmp/kiln-bench-frontend-XXXXXX) || exit 1
results=$tmp/results
: > "$results"
cleanup() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -KILL "$serve_pid" 2>/dev/null
        wait "$serve_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# serve_start MODEL_DIR FRONTENDS [FLAGS...]: starts kiln serve on a free port and waits for its
# URL line; sets serve_pid, url and name.
serve_start() {
    local model=$1 frontends=$2 i line=
    shift 2
    "$kiln" serve --model "$model" --port 0 --frontends "$frontends" --log-level warn "$@" \
        > "$tmp/serve.out" 2> "$tmp/serve.err" &
    serve_pid=$!
    for i in $(seq 600); do
        line=$(head -n 1 "$tmp/serve.out")
        case $line in *'/v1 ('*) break ;; esac
        if ! kill -0 "$serve_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    # kiln serve: NAME on http://HOST:PORT/v1 (N frontends; Ctrl-C to stop)
    url=$(printf '%s\n' "$line" | sed -n 's|.* on \(http://[^ ]*/v1\) (.*|\1|p')
    name=$(printf '%s\n' "$line" | sed -n 's|^kiln serve: \(.*\) on http://.*|\1|p')
    if [ -z "$url" ]; then
        echo "  FAILED: kiln serve --frontends $frontends did not print its URL:"
        sed 's/^/    /' "$tmp/serve.out" "$tmp/serve.err"
        return 1
    fi
}

# serve_engine_addr: the --addr of serve's engine (its child process `kiln engine`).
serve_engine_addr() {
    local p
    for p in $(pgrep -P "$serve_pid"); do
        tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | awk '
            prev == "engine" { engine = 1 } engine && prev == "--addr" { print; exit }
            { prev = $0 }'
    done | head -n 1
}

# serve_stop: SIGTERM, and serve must exit 0 within 60 s; prints what it logged.
serve_stop() {
    local rc i
    kill -TERM "$serve_pid"
    for i in $(seq 600); do
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$serve_pid" 2>/dev/null; then
        echo "  FAILED: kiln serve still runs 60 s after SIGTERM; killed"
        kill -KILL "$serve_pid"
    fi
    wait "$serve_pid"
    rc=$?
    serve_pid=
    if [ -s "$tmp/serve.err" ]; then
        echo "  kiln serve logged:"
        sed 's/^/    /' "$tmp/serve.err" | head -n 20
    fi
    if [ $rc -ne 0 ]; then
        echo "  FAILED: kiln serve exited with status $rc after SIGTERM"
        return 1
    fi
}

# load KEY LABEL H2LOAD_FLAGS...: one timed h2load run against /v1/completions.
load() {
    local key=$1 label=$2
    shift 2
    rm -f "$tmp/h2.log"
    h2load "$@" -D "$duration" --warm-up-time 1 -d "$tmp/body.json" \
        -H 'content-type: application/json' --log-file "$tmp/h2.log" "$url/completions" \
        > "$tmp/h2.out" 2>&1
    python3 "$helper" h2load "$label" "$tmp/h2.out" "$tmp/h2.log" "$results" "$key"
}

echo "h2load, POST /v1/completions, stories260K, max_tokens 1: ${duration} s per run after" \
    "warm-up ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for threads in 0 1; do
    case $threads in
    0) echo " engine --threads 0 (the default: the CPUs the frontends leave, at least one):" ;;
    *) echo " engine --threads $threads:" ;;
    esac
    for f in 1 2; do
        serve_start "$stories" $f --threads $threads || { status=1; continue; }
        printf '{"model": "%s", "prompt": "Once upon a time", "max_tokens": 1, %s}\n' \
            "$name" '"temperature": 0' > "$tmp/body.json"
        h2load --h1 -c 16 -n 2000 -d "$tmp/body.json" -H 'content-type: application/json' \
            "$url/completions" > /dev/null 2>&1
        load "h1_t${threads}_f$f" "HTTP/1.1, $f frontend(s), c=64" --h1 -c 64 -m 1 || status=1
        load "h2_t${threads}_f$f" "h2c, $f frontend(s), c=8 m=32" -c 8 -m 32 || status=1
        serve_stop || status=1
    done
done

echo
echo "time added by the frontend per request: 1,000-token prompt, max_tokens 1, 1 frontend"
model=$tmp/stories260K-2k
python3 "$helper" model "$stories" "$model" 2048 || exit 1
if serve_start "$model" 1 --load-format dummy; then
    addr=$(serve_engine_addr)
    if [ -z "$addr" ]; then
        echo "  FAILED: cannot find the engine address of kiln serve"
        status=1
    else
        python3 "$helper" ttft "$kiln" "$model" "$url" "$addr" "$name" "$results" "$rounds" 1000 ||
            status=1
    fi
    serve_stop || status=1
else
    status=1
fi

echo
echo "summary (ratio = measured / goal)"
r() { sed -n "s/^$1=//p" "$results" | tail -n 1; }
printf '  %-44s %10s %10s %7s %5s\n' measure measured goal ratio met
row() { # row LABEL VALUE GOAL MORE_IS_BETTER(1|0)
    if [ -z "$2" ]; then
        printf '  %-44s %10s %10s %7s %5s\n' "$1" - "$3" - -
        return
    fi
    awk -v l="$1" -v v="$2" -v g="$3" -v up="$4" 'BEGIN {
        met = up ? v >= g : v < g
        printf "  %-44s %10s %10s %6.2fx %5s\n", l, v, (up ? ">= " : "< ") g, v / g,
            met ? "yes" : "no" }'
}
for threads in 0 1; do
    for f in 1 2; do
        k=t${threads}_f${f}_rps
        row "req/s, HTTP/1.1, $f frontend(s), --threads $threads" "$(r "h1_$k")" $goal_rps 1
        row "req/s, h2c, $f frontend(s), --threads $threads" "$(r "h2_$k")" $goal_rps 1
    done
done
row "added ms per request, $(r added_ids_tokens) ids, p50" "$(r added_ids_p50)" $goal_added_ms 0
row "added ms per request, $(r added_ids_tokens) ids, p90" "$(r added_ids_p90)" $goal_added_ms 0
row "added ms per request, text $(r added_text_tokens) tok, p50" "$(r added_text_p50)" \
    $goal_added_ms 0
row "added ms per request, text $(r added_text_tokens) tok, p90" "$(r added_text_p90)" \
    $goal_added_ms 0
exit $status
