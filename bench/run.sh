#!/usr/bin/env bash
# make bench: build the benches into build/bench/ and run them against the peers
# (OpenBLAS for SGEMM, PyTorch for softmax, training and attention), all in this one run.
# See bench/README.md.
#
# attn.h is built the way a user builds it: `cc -O2`, no -march flags (the
# library picks AVX2 at run time). Override with CC=... BENCH_CFLAGS=...
# A missing peer is reported and skipped; it never fails the run.
#
# bash bench/run.sh [sgemm] [softmax] [train] [attention]   runs only the named sections
# (all of them without arguments; make bench runs all).
set -eu

want() { # is section $1 selected?
    [ ${#SECTIONS[@]} -eq 0 ] && return 0
    local s
    for s in ${SECTIONS[@]+"${SECTIONS[@]}"}; do [ "$s" = "$1" ] && return 0; done
    return 1
}
SECTIONS=("$@")
for s in ${SECTIONS[@]+"${SECTIONS[@]}"}; do
    case $s in sgemm|softmax|train|attention) ;; *) echo "run.sh: unknown section '$s' (sgemm, softmax, train, attention)" >&2; exit 2 ;; esac
done

cd "$(dirname "$0")/.."
CC=${CC:-cc}
CFLAGS=${BENCH_CFLAGS:--O2}
WARN="-std=c99 -Wall -Wextra -pedantic"
# The Debian interpreter with python3-torch; the python3 first on PATH may lack torch.
PY=${BENCH_PYTHON:-/usr/bin/python3}
OUT=build/bench
mkdir -p "$OUT"
start=$(date +%s)

# ---- build ----
have_blas=1
printf '#include <cblas.h>\nint main(void) { float a = 1, b = 1, c = 0;\n cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);\n return c != 1; }\n' >"$OUT/probe_blas.c"
if ! $CC "$OUT/probe_blas.c" -o "$OUT/probe_blas" -lopenblas >/dev/null 2>&1; then
    have_blas=0
fi
if [ $have_blas = 1 ]; then
    $CC $WARN $CFLAGS -I. -Ibench bench/bench_sgemm.c -o "$OUT/bench_sgemm" -lopenblas -lpthread -lm
else
    $CC $WARN $CFLAGS -I. -Ibench -DBENCH_NO_OPENBLAS bench/bench_sgemm.c -o "$OUT/bench_sgemm" -lpthread -lm
fi
$CC $WARN $CFLAGS -I. -Ibench bench/bench_softmax.c -o "$OUT/bench_softmax" -lpthread -lm
$CC $WARN $CFLAGS -I. -Ibench bench/bench_train.c -o "$OUT/bench_train" -lpthread -lm
$CC $WARN $CFLAGS -I. -Ibench bench/bench_attention.c -o "$OUT/bench_attention" -lpthread -lm

# ---- machine ----
echo "== attn.h benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC')) =="
"$OUT/bench_sgemm" --info
echo "compiler: $($CC --version 2>/dev/null | head -n 1), flags: $CFLAGS (no -march)"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') (shared machine: compare ratios within one run)"
if [ $have_blas = 0 ]; then
    echo "OpenBLAS: NOT FOUND (no cblas.h or -lopenblas; install libopenblas-dev) - SGEMM peer skipped"
elif command -v dpkg-query >/dev/null 2>&1; then
    v=$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || true)
    [ -n "$v" ] && echo "OpenBLAS package: libopenblas0-pthread $v"
fi
echo

# ---- SGEMM ----
if want sgemm; then
"$OUT/bench_sgemm"
echo
fi

# ---- softmax ----
if want softmax; then
torch_args=(--no-torch "PyTorch: NOT MEASURED ($PY not found) - softmax peer skipped")
if [ -x "$PY" ]; then
    if tout=$("$PY" bench/softmax_torch.py 2>&1); then
        t1=$(printf '%s\n' "$tout" | awk '$1 == "torch_ms" && $2 == 1 { print $3 }')
        t2=$(printf '%s\n' "$tout" | awk '$1 == "torch_ms" && $2 == 2 { print $3 }')
        b1=$(printf '%s\n' "$tout" | awk '$1 == "torch_ms" && $2 == 1 { print $4 }')
        b2=$(printf '%s\n' "$tout" | awk '$1 == "torch_ms" && $2 == 2 { print $4 }')
        tv=$(printf '%s\n' "$tout" | awk '$1 == "torch_version" { print $2 }')
        if [ -n "$t1" ] && [ -n "$t2" ]; then
            pkg=""
            command -v dpkg-query >/dev/null 2>&1 && pkg=$(dpkg-query -W -f=' (Debian python3-torch ${Version})' python3-torch 2>/dev/null || true)
            echo "PyTorch $tv$pkg via $PY, measured just before attn below"
            torch_args=(--torch "$t1" "$t2" "${b1:--1}" "${b2:--1}")
        else
            torch_args=(--no-torch "PyTorch: NOT MEASURED - $(printf '%s\n' "$tout" | tail -n 1 | sed 's/^skip //') - softmax peer skipped")
        fi
    else
        torch_args=(--no-torch "PyTorch: NOT MEASURED - softmax_torch.py failed: $(printf '%s\n' "$tout" | tail -n 1) - softmax peer skipped")
    fi
fi
"$OUT/bench_softmax" "${torch_args[@]}"
echo
fi

# ---- training: MLP forward + backward, AdamW ----
# bench_train --dump writes the MLP's numbers (attn's init) for train_torch.py,
# which runs three times: as installed, OPENBLAS_NUM_THREADS=1 (PyTorch's GEMMs
# on one core) and OMP_WAIT_POLICY=PASSIVE; bench_train then prints both sides.
if want train; then
TD="$OUT/train_data"
mkdir -p "$TD"
rm -f "$TD/mlp.f32" "$TD/mlp_grads_torch.f32" "$OUT/train_torch.txt"
"$OUT/bench_train" --dump "$TD"
train_args=(--no-torch "PyTorch: NOT MEASURED ($PY not found) - training peer skipped")
if [ -x "$PY" ]; then
    if tout=$("$PY" bench/train_torch.py "$TD" 2>&1) && printf '%s\n' "$tout" | grep -q '^torch_ms '; then
        printf '%s\n' "$tout" >"$OUT/train_torch.txt"
        for mode in blas1 passive; do
            "$PY" bench/train_torch.py "$TD" --mode $mode 2>&1 | grep '^torch_ms ' >>"$OUT/train_torch.txt" || true
        done
        tv=$(printf '%s\n' "$tout" | awk '$1 == "torch_version" { print $2 }')
        pkg=""
        command -v dpkg-query >/dev/null 2>&1 && pkg=$(dpkg-query -W -f=' (Debian python3-torch ${Version})' python3-torch 2>/dev/null || true)
        echo "PyTorch $tv$pkg via $PY, measured just before attn below (3 processes: as installed, OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE)"
        train_args=(--torch "$OUT/train_torch.txt")
    else
        train_args=(--no-torch "PyTorch: NOT MEASURED - $(printf '%s\n' "$tout" | tail -n 1 | sed 's/^skip //') - training peer skipped")
    fi
fi
"$OUT/bench_train" --data "$TD" "${train_args[@]}"
echo
fi
# ---- attention: MHA forward + backward, the fused kernel, a GPT training step, memory ----
# bench_attention --dump writes the MHA and GPT numbers (attn's init) for
# attention_torch.py, which runs four times: as installed, OPENBLAS_NUM_THREADS=1,
# OMP_WAIT_POLICY=PASSIVE, and the T=16384 memory case (under an address-space
# limit); bench_attention then checks and prints both sides.
if want attention; then
AD="$OUT/attention_data"
mkdir -p "$AD"
rm -f "$AD"/*.f32 "$AD"/*.i32 "$AD"/*.txt "$OUT/attention_torch.txt"
"$OUT/bench_attention" --dump "$AD"
att_args=(--no-torch "PyTorch: NOT MEASURED ($PY not found) - attention peer skipped")
if [ -x "$PY" ]; then
    if tout=$("$PY" bench/attention_torch.py "$AD" 2>&1) && printf '%s\n' "$tout" | grep -q '^torch_ms '; then
        printf '%s\n' "$tout" | grep '^torch_' >"$OUT/attention_torch.txt"
        for mode in blas1 passive memory; do
            "$PY" bench/attention_torch.py "$AD" --mode $mode 2>&1 | grep '^torch_\(ms\|mem\) ' >>"$OUT/attention_torch.txt" || true
        done
        tv=$(printf '%s\n' "$tout" | awk '$1 == "torch_version" { print $2 }')
        pkg=""
        command -v dpkg-query >/dev/null 2>&1 && pkg=$(dpkg-query -W -f=' (Debian python3-torch ${Version})' python3-torch 2>/dev/null || true)
        echo "PyTorch $tv$pkg via $PY, measured just before attn below (4 processes: as installed, OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE, memory)"
        att_args=(--torch "$OUT/attention_torch.txt")
    else
        att_args=(--no-torch "PyTorch: NOT MEASURED - $(printf '%s\n' "$tout" | tail -n 1 | sed 's/^skip //') - attention peer skipped")
    fi
fi
"$OUT/bench_attention" --data "$AD" "${att_args[@]}"
echo
fi
echo "(make bench took $(($(date +%s) - start)) s)"
