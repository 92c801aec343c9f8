#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# replay.sh - runs every fuzz target over its seed corpus (make check).
#
# Each directory tests/fuzz/corpus/NAME/ belongs to the target
# tests/fuzz/fuzz_NAME in the build tree, which runs every file in it once:
# seeds plus every crash ever found, so a fixed bug stays fixed. -runs=0
# makes a libFuzzer build (--enable-fuzzing) replay instead of fuzzing; the
# standalone driver ignores it. Fails if any target fails; skips (77) only
# when a target is not built and nothing failed.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}

status=0
missing=
for corpus in "$top_srcdir"/tests/fuzz/corpus/*/; do
    name=$(basename "$corpus")
    bin=$top_builddir/tests/fuzz/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "replay: $bin not built"
        missing="$missing $name"
        continue
    fi
    if ! "$bin" -runs=0 "$corpus"; then
        echo "replay: FAIL fuzz_$name"
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
if [ -n "$missing" ]; then
    echo "replay: SKIP, not built:$missing"
    exit 77
fi
exit 0
