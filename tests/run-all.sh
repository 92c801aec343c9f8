#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# run-all.sh - every test, the way CI runs them: the README's test command.
#
#   tests/run-all.sh
#
# From the source tree (any working directory):
#   1. autoreconf -fi
#   2. a normal build: configure, make, make check
#   3. a second build with --enable-sanitizers (ASan + UBSan): make check
#   4. make distcheck (the tarball builds and passes make check on its own)
#   5. the Debian package (tests/deb/run.sh): make deb, lintian, install and
#      purge in a fresh Debian 12 root; counted as one test, skipped (and
#      said so) when not run as root
#   6. a bounded fuzz run (tests/fuzz/run.sh): a clang --enable-fuzzing
#      build with ASan + UBSan, each libFuzzer target for FUZZ_SECONDS (60)
#      two at a time, one test per target; skipped, loudly, without clang's
#      libFuzzer
# Builds are out of tree, under $BUILD_ROOT (default ./build-tests), so the
# source tree stays clean. Every step runs even after one fails. The last
# line is always "tests: N passed, N failed", summed over automake's
# "# PASS:" and "# FAIL:" counts (ERROR and XPASS count as failed, and so
# does a build step that fails); the exit status is non-zero if anything
# failed. Failing tests' logs are printed.
#
# Every build is configured with --enable-werror: a warning fails the run
# here and in CI, while release builds (plain ./configure) only warn.
#
# Environment: BUILD_ROOT, JOBS (parallel make jobs, default nproc),
# CONFIGURE_FLAGS (extra configure arguments for every build), FUZZ_SECONDS
# (seconds per fuzz target, default 60; 0 skips), FUZZ_JOBS (targets at a
# time, default 2).

set -uo pipefail

srcdir=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
build_root=${BUILD_ROOT:-$srcdir/build-tests}
jobs=${JOBS:-$(nproc)}
read -r -a extra_flags <<<"--enable-werror ${CONFIGURE_FLAGS:-}"

passed=0
failed=0
skipped=0
failures=()

step() {
    printf '\n=== %s\n' "$*"
}

# Adds the "# PASS:", "# SKIP:", "# FAIL:", "# XPASS:" and "# ERROR:"
# counts that automake prints (in test-suite.log and in make check's
# output) from $2 to the totals; $1 names the build in the report.
count_results() {
    local name=$1 file=$2 p s f
    p=$(sed -n 's/^# PASS: *\([0-9][0-9]*\)$/\1/p' "$file" | tail -n 1)
    s=$(sed -n 's/^# SKIP: *\([0-9][0-9]*\)$/\1/p' "$file" | tail -n 1)
    f=$(sed -n 's/^# \(FAIL\|XPASS\|ERROR\): *\([0-9][0-9]*\)$/\2/p' "$file" |
        tail -n 3 | awk '{ n += $1 } END { print n + 0 }')
    p=${p:-0}
    s=${s:-0}
    printf '%s: %d passed, %d skipped, %d failed\n' "$name" "$p" "$s" "$f"
    passed=$((passed + p))
    skipped=$((skipped + s))
    failed=$((failed + f))
    [ "$f" -eq 0 ] || failures+=("$name")
}

# A step that is not a test run (autoreconf, configure, make) failed: count
# it, so the summary can never say "0 failed" when something broke.
step_failed() {
    printf '%s: FAILED\n' "$1"
    failed=$((failed + 1))
    failures+=("$1")
}

# configure + make + make check in $build_root/$1, with configure args $2...
# Returns non-zero if configure or make failed (make check may fail: its
# results are counted instead).
build_and_check() {
    local name=$1 dir=$build_root/$1
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        step "$name: configure $*"
        "$srcdir/configure" -q "$@" "${extra_flags[@]}" || exit 1
        step "$name: make"
        make -j"$jobs" || exit 1
    ) || { step_failed "$name build"; return 1; }
    step "$name: make check"
    make -C "$dir" -j"$jobs" check
    if [ -f "$dir/test-suite.log" ]; then
        count_results "$name" "$dir/test-suite.log"
        if grep -q '^# \(FAIL\|XPASS\|ERROR\): *[1-9]' "$dir/test-suite.log"; then
            step "$name: logs of the failing tests ($dir/test-suite.log)"
            cat "$dir/test-suite.log"
        fi
    else
        step_failed "$name make check (no test-suite.log)"
    fi
    return 0
}

# --- 1. autotools ---------------------------------------------------------------
step "autoreconf -fi"
if ! (cd "$srcdir" && autoreconf -fi); then
    step_failed "autoreconf"
    echo "tests: $passed passed, $failed failed"
    exit 1
fi
if [ -f "$srcdir/config.status" ]; then
    # automake refuses out-of-tree builds of a tree configured in place.
    step_failed "source tree is configured in place: run 'make distclean' there first"
    echo "tests: $passed passed, $failed failed"
    exit 1
fi

# --- 2. normal build --------------------------------------------------------------
normal_ok=0
build_and_check normal && normal_ok=1

# --- 3. sanitizers --------------------------------------------------------------
# -fno-sanitize-recover=all already makes every finding fatal; ask UBSan
# for a stack trace too, so the log shows where.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} build_and_check sanitizers --enable-sanitizers

# --- 4. distcheck ---------------------------------------------------------------
if [ "$normal_ok" -eq 1 ]; then
    step "distcheck"
    log=$build_root/distcheck.log
    make -C "$build_root/normal" -j"$jobs" distcheck \
        DISTCHECK_CONFIGURE_FLAGS="${extra_flags[*]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if grep -q '^# PASS:' "$log"; then
        count_results distcheck "$log"
    fi
    if [ "$rc" -ne 0 ]; then
        # A failure outside the test run (dist, install, uninstall,
        # distclean) has no FAIL count of its own.
        grep -q '^# \(FAIL\|XPASS\|ERROR\): *[1-9]' "$log" || step_failed "distcheck"
        for f in "$build_root"/normal/spicegate-*/_build/sub/test-suite.log; do
            [ -f "$f" ] || continue
            step "distcheck: logs of the failing tests ($f)"
            cat "$f"
        done
    fi
else
    echo "distcheck: not run, the normal build failed"
fi

# --- 5. the Debian package ------------------------------------------------------
step "deb: tests/deb/run.sh (make deb, lintian, install and purge on a fresh Debian 12)"
rm -rf "$build_root/deb"
"$srcdir/tests/deb/run.sh" "$build_root/deb"
case $? in
    0) echo "deb: PASS"; passed=$((passed + 1)) ;;
    77) echo "deb: SKIP (not root)"; skipped=$((skipped + 1)) ;;
    *) echo "deb: FAIL"; failed=$((failed + 1)); failures+=("deb") ;;
esac

# --- 6. a bounded fuzz run ----------------------------------------------------
# With clang and libFuzzer (Debian's clang and libclang-rt-14-dev): one
# more build, CC=clang --enable-fuzzing --enable-sanitizers (ASan + UBSan,
# every finding fatal), only the fuzz targets; then tests/fuzz/run.sh runs
# each for FUZZ_SECONDS (default 60; 0 skips the step), two at a time.
# One test per target; without the toolchain each is counted as skipped.
fuzz_names=()
for corpus in "$srcdir"/tests/fuzz/corpus/*/; do
    fuzz_names+=("$(basename "$corpus")")
done
fuzz_dir=$build_root/fuzz
fuzz_seconds=${FUZZ_SECONDS:-60}
step "fuzz: ${#fuzz_names[@]} libFuzzer targets, ${fuzz_seconds} s each (FUZZ_SECONDS)"
rm -rf "$fuzz_dir"
mkdir -p "$fuzz_dir"
fuzz_probe=$fuzz_dir/probe
if [ "$fuzz_seconds" = 0 ]; then
    echo "fuzz: SKIP: FUZZ_SECONDS=0 (${#fuzz_names[@]} targets not run)"
    skipped=$((skipped + ${#fuzz_names[@]}))
elif ! command -v clang >/dev/null 2>&1 ||
     ! printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' |
         clang -fsanitize=fuzzer,address,undefined -x c - -o "$fuzz_probe" >"$fuzz_probe.log" 2>&1; then
    echo "fuzz: SKIP !!! no clang with libFuzzer here (apt-get install clang libclang-rt-14-dev):"
    echo "fuzz: SKIP !!! ${#fuzz_names[@]} fuzz targets NOT RUN"
    skipped=$((skipped + ${#fuzz_names[@]}))
elif (
    cd "$fuzz_dir" || exit 1
    step "fuzz: configure CC=clang --enable-fuzzing --enable-sanitizers"
    "$srcdir/configure" -q CC=clang --enable-fuzzing --enable-sanitizers "${extra_flags[@]}" ||
        exit 1
    step "fuzz: make the fuzz targets"
    make -j"$jobs" "${fuzz_names[@]/#/tests/fuzz/fuzz_}"
); then
    FUZZ_SECONDS=$fuzz_seconds FUZZ_JOBS=${FUZZ_JOBS:-2} \
        "$srcdir/tests/fuzz/run.sh" "$fuzz_dir" "$fuzz_dir/run" | tee "$fuzz_dir/run.log"
    p=$(grep -c '^fuzz: PASS ' "$fuzz_dir/run.log")
    f=$(grep -c '^fuzz: FAIL ' "$fuzz_dir/run.log")
    # A target that printed no line at all (the script died) is a failure.
    f=$((f + ${#fuzz_names[@]} - p - f))
    printf 'fuzz: %d passed, %d failed (figures in %s)\n' "$p" "$f" "$fuzz_dir/run/results.tsv"
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -eq 0 ] || failures+=("fuzz")
else
    step_failed "fuzz build"
fi

# --- summary --------------------------------------------------------------------
# The failures again, short, at the very end: a CI page that keeps only
# the head and the tail of a long log still shows what failed and why.
# unittest's FAIL/ERROR reports (from the "=====" line to "Ran N tests"),
# node's "not ok" entries with their error lines, check's failed checks.
failure_digest() {
    local log=$1 found
    printf -- '--- %s\n' "$log"
    found=$(
        awk '/^==========+$/ { p = 1 } /^Ran [0-9]+ tests? in/ { p = 0 } p' "$log" | head -n 120
        grep --no-group-separator -A 14 '^ *not ok ' "$log" |
            grep -v '^ *\(duration_ms\|\.\.\.\|---\)' | head -n 80
        grep -E '^[^ ]+\.c:[0-9]+:[EF]:' "$log" | head -n 20
    )
    # Nothing of those shapes (docs.sh, a sanitizer report, a script that
    # died early): the end of the log says it.
    if [ -n "$found" ]; then
        printf '%s\n' "$found"
    else
        tail -n 30 "$log"
    fi
}
digest_printed=0
for dir in "$build_root"/normal "$build_root"/sanitizers "$build_root"/normal/spicegate-*/_build/sub; do
    [ -f "$dir/test-suite.log" ] || continue
    for t in $(sed -n 's/^\(FAIL\|ERROR\|XPASS\): \([^ ]*\)$/\2/p' "$dir/test-suite.log" | sort -u); do
        [ -f "$dir/$t.log" ] || continue
        [ "$digest_printed" -eq 1 ] || step "digest of the failures"
        digest_printed=1
        failure_digest "$dir/$t.log"
    done
done
echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
[ "$skipped" -eq 0 ] || echo "skipped: $skipped (see the logs for why)"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
