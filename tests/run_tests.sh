#!/usr/bin/env bash
# Runs every C test binary in BUILD/tests and the Python suites under tests/, then prints one
# line "N passed, N failed". Exits non-zero when any test failed or any binary crashed.
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
passed=0
failed=0
crashed=0
for bin in $(find "$build/tests/common" "$build/tests/templates" "$build/tests/worker" \
    "$build/tests/frontend" "$build/tests/benchserve" -type f -perm -u+x -name 'test_*' \
    2>/dev/null | sort); do
    out=$("$bin" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^ok  ' 
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
    if [ -z "$line" ]; then
        echo "CRASH $bin (exit $rc, no summary line)"
        crashed=$((crashed + 1))
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "CRASH $bin (exit $rc after its summary)"
        crashed=$((crashed + 1))
        failed=$((failed + 1))
    fi
done
# Python suites (differential tests against reference implementations).
if [ -d tests ] && ls tests/*/test_*.py >/dev/null 2>&1; then
    pyout=$(python3 -m pytest -q -p no:cacheprovider tests 2>&1)
    printf '%s\n' "$pyout" | tail -25
    summary=$(printf '%s\n' "$pyout" | grep -E '(passed|failed|error)' | tail -1)
    p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    if [ -z "$summary" ]; then
        echo "CRASH pytest (no summary)"
        failed=$((failed + 1))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
