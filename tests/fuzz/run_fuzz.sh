#!/usr/bin/env bash
# make fuzz: runs every libFuzzer driver in BUILD for FUZZ_SECONDS each, from a seed corpus.
# Exits non-zero when a driver finds a crash, a leak or a timeout.
set -u
build=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
cd "$(dirname "$0")/../.."
fixtures=${KILN_FIXTURES:-../shared/fixtures}
status=0
for drv in "$build"/fuzz_*; do
    [ -x "$drv" ] || continue
    name=$(basename "$drv")
    corpus="$build/corpus-$name"
    mkdir -p "$corpus"
    extra=()
    case $name in
    fuzz_tok_load)
        python3 tests/fuzz/seeds_tok_load.py "$fixtures" "$corpus"
        extra=(-dict=tests/fuzz/tokenizer_json.dict -max_len=65536)
        ;;
    fuzz_tok_encode)
        python3 tests/fuzz/seeds_tok_encode.py "$corpus"
        extra=(-max_len=4096)
        ;;
    fuzz_jinja_compile)
        python3 tests/fuzz/seeds_jinja.py compile "$fixtures" "$corpus"
        extra=(-dict=tests/fuzz/jinja.dict -max_len=16384)
        ;;
    fuzz_safetensors)
        python3 tests/fuzz/seeds_safetensors.py "$fixtures" "$corpus"
        extra=(-dict=tests/fuzz/safetensors.dict -max_len=1048576)
        ;;
    fuzz_model_config)
        python3 tests/fuzz/seeds_model_config.py "$fixtures" "$corpus"
        extra=(-dict=tests/fuzz/model_config.dict -max_len=16384)
        ;;
    fuzz_wire)
        python3 tests/fuzz/seeds_wire.py "$corpus"
        extra=(-max_len=65536)
        ;;
    fuzz_jinja_render)
        python3 tests/fuzz/seeds_jinja.py render "$fixtures" "$corpus"
        extra=(-max_len=16384)
        ;;
    esac
    echo "== $name: ${secs}s"
    if ! KILN_FIXTURES="$fixtures" "$drv" -max_total_time="$secs" -timeout=20 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build/$name-" \
        "${extra[@]}" "$corpus" > "$build/$name.log" 2>&1; then
        echo "FINDING in $name (see $build/$name.log):"
        tail -40 "$build/$name.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/$name.log" | tr '\n' ' '
        echo
    fi
done
exit $status
