#!/usr/bin/env bash
# Runs each example (build/<name>) with tiny settings and checks it exits 0, so
# that no example can rot. minimal takes no flags; the others take --tiny.
set -u
cd "$(dirname "$0")/.."
status=0
for name in "$@"; do
    args="--tiny"
    [ "$name" = minimal ] && args=""
    start=$(date +%s)
    if out=$(timeout 300 "build/$name" $args 2>&1); then
        echo "example $name: ok ($(( $(date +%s) - start )) s)"
    else
        echo "example $name: FAILED (exit $?)"
        printf '%s\n' "$out" | tail -n 15
        status=1
    fi
done
exit $status
