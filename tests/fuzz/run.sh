#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# run.sh - a bounded fuzz run: every libFuzzer target for a fixed time.
#
#   tests/fuzz/run.sh BUILDDIR OUTDIR
#
# BUILDDIR is a build configured with CC=clang --enable-fuzzing
# --enable-sanitizers whose targets are built (tests/run-all.sh makes one).
# For every corpus tests/fuzz/corpus/NAME/, BUILDDIR/tests/fuzz/fuzz_NAME
# runs for FUZZ_SECONDS on a copy of that corpus in OUTDIR/NAME/ (the source
# tree stays clean; what it finds stays there), FUZZ_JOBS targets at a time.
# A target fails on a non-zero exit (a crash, an abort() of a broken
# promise, a leak, a timeout, too much memory: libFuzzer exits non-zero for
# each and writes the input under OUTDIR/NAME/artifacts/), and on any
# sanitizer report in its log even if it did not stop the run.
#
# Prints one line per target ("fuzz: PASS fuzz_NAME ..." or "fuzz: FAIL
# ...", with executions, executions per second, libFuzzer's final cov: and
# ft: numbers and the corpus size), the log's end for each failure, and
# writes the same figures, tab-separated, to OUTDIR/results.tsv. Exits 0
# when every target passed, 1 otherwise, 2 on bad usage.
#
# Environment: FUZZ_SECONDS (default 60), FUZZ_JOBS (default 2),
# FUZZ_RSS_MB (default 2048: libFuzzer's -rss_limit_mb), FUZZ_TIMEOUT
# (default 10: seconds one input may take), FUZZ_TARGETS (names to run,
# space-separated; default every corpus).

set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILDDIR OUTDIR" >&2
    exit 2
fi
builddir=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" || exit 2
outdir=$(cd "$2" && pwd) || exit 2
srcdir=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
rss_mb=${FUZZ_RSS_MB:-2048}
timeout=${FUZZ_TIMEOUT:-10}

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a names <<<"$FUZZ_TARGETS"
else
    names=()
    for corpus in "$srcdir"/tests/fuzz/corpus/*/; do
        names+=("$(basename "$corpus")")
    done
fi

# One target, in the background: its exit status goes to NAME/rc.
run_one() {
    local name=$1 dir=$outdir/$1 bin=$builddir/tests/fuzz/fuzz_$1 rc
    rm -rf "$dir"
    mkdir -p "$dir/artifacts"
    cp -R "$srcdir/tests/fuzz/corpus/$name" "$dir/corpus"
    chmod -R u+w "$dir/corpus"
    ls "$dir/corpus" | wc -l >"$dir/seeds"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is not built" >"$dir/log"
        echo 127 >"$dir/rc"
        return
    fi
    (
        cd "$dir" || exit 1
        # UBSan's findings are fatal in this build (-fno-sanitize-recover);
        # halt_on_error says so again should the flags change.
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
            "$bin" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
            -timeout="$timeout" -detect_leaks=1 -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1
    )
    rc=$?
    echo "$rc" >"$dir/rc"
}

echo "fuzz: ${#names[@]} targets, ${seconds} s each, $jobs at a time, in $outdir"
running=0
for name in "${names[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$name" &
    running=$((running + 1))
done
wait

# The last value of "stat::NAME: N" in log $1.
stat_of() {
    sed -n "s/^stat::$2: *\([0-9][0-9]*\)$/\1/p" "$1" | tail -n 1
}

status=0
passed=0
failed=0
printf 'target\tresult\texecutions\texec_per_s\tcov\tft\tcorpus\tseeds\tseconds\n' >"$outdir/results.tsv"
for name in "${names[@]}"; do
    dir=$outdir/$name
    log=$dir/log
    rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
    execs=$(stat_of "$log" number_of_executed_units)
    rate=$(stat_of "$log" average_exec_per_sec)
    # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ..."),
    # else its last line with coverage figures.
    last=$(grep -E '^#[0-9]+[[:space:]]+DONE[[:space:]]' "$log" | tail -n 1)
    [ -n "$last" ] || last=$(grep -E '^#[0-9]+[[:space:]].* cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9][0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9][0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "$dir/corpus" -type f 2>/dev/null | wc -l)
    seeds=$(cat "$dir/seeds" 2>/dev/null || echo 0)
    reason=
    if [ "$rc" -ne 0 ]; then
        reason="exit status $rc"
    fi
    if grep -qE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer|ERROR: libFuzzer' "$log"; then
        reason="${reason:+$reason, }sanitizer or libFuzzer report"
    fi
    if [ -z "$reason" ] && [ -z "$last" ]; then
        reason="no coverage line in the log (did it run?)"
    fi
    if [ -z "$reason" ]; then
        result=PASS
        passed=$((passed + 1))
    else
        result=FAIL
        failed=$((failed + 1))
        status=1
    fi
    printf 'fuzz: %s fuzz_%s: %s executions, %s exec/s, cov %s, ft %s, corpus %s (%s seeds)%s\n' \
        "$result" "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$seeds" \
        "${reason:+: $reason}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "fuzz_$name" "$result" "${execs:-}" \
        "${rate:-}" "${cov:-}" "${ft:-}" "$corpus" "$seeds" "$seconds" >>"$outdir/results.tsv"
    if [ "$result" = FAIL ]; then
        echo "--- fuzz_$name: the end of $log (inputs that failed: $dir/artifacts/)"
        tail -n 60 "$log"
        ls -l "$dir/artifacts"
        echo "--- (replay one: $builddir/tests/fuzz/fuzz_$name $dir/artifacts/FILE)"
    fi
done
echo "fuzz: $passed passed, $failed failed (figures in $outdir/results.tsv)"
exit "$status"
