#!/usr/bin/env bash
# tools/cuda_check.sh - compile attn_cuda.cuh with nvcc for sm_80 and sm_90
# (warnings are errors, host and device side) and print what ptxas says of
# every kernel: registers, spill stores/loads, shared memory. Compile-only: no
# GPU is needed. nvcc is not a Debian package: without it this says so and
# exits 3 (a skip). Usage: tools/cuda_check.sh [out_dir]
set -u
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
    echo "cuda-check: skipped (no nvcc; install the CUDA toolkit or set NVCC)"
    exit 3
fi
OUT=${1:-build/cuda-check}
mkdir -p "$OUT"
status=0
for arch in 80 90; do
    log=$OUT/ptxas_sm_$arch.txt
    if ! "$NVCC" -std=c++14 -O2 -arch=sm_$arch -Xptxas -v -Werror all-warnings \
        -Xcompiler -Wall,-Wextra,-Werror -I. -Itests -c tests/test_cuda.cu -o "$OUT/test_cuda_sm_$arch.o" > "$log" 2>&1; then
        echo "cuda-check: sm_$arch: compile failed:"
        grep -m5 -iE 'error|warning' "$log"
        status=1
        continue
    fi
    # ptxas prints, per kernel: "Compiling entry function 'NAME' for 'sm_XX'",
    # "Function properties for NAME: ... N bytes spill stores, N bytes spill loads"
    # and "Used N registers, ... N bytes smem".
    awk -v arch="sm_$arch" '
        /Compiling entry function/ { name = $0; sub(/.*function .\047?/, "", name); sub(/\047.*/, "", name); next }
        /Function properties for/ && name != "" {
            split($0, a, ":"); st = a[3]; sub(/^.*frame, /, "", st)
            stores = st; sub(/ bytes spill stores.*/, "", stores)
            loads = st; sub(/.*stores, /, "", loads); sub(/ bytes spill loads.*/, "", loads)
            next
        }
        /Used [0-9]+ registers/ && name != "" {
            regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
            smem = "0"; if ($0 ~ /bytes smem/) { smem = $0; sub(/ bytes smem.*/, "", smem); sub(/.*, /, "", smem) }
            printf "%s %4s regs  spill %4s/%-4s smem %6s  %s\n", arch, regs, stores + 0, loads + 0, smem, name
            name = ""
        }' "$log" > "$OUT/kernels_sm_$arch.txt"
    if command -v c++filt > /dev/null; then
        c++filt < "$OUT/kernels_sm_$arch.txt" | sed -E 's/\(.*//' | sort -u -k6 > "$OUT/kernels_sm_$arch.demangled"
    else
        cp "$OUT/kernels_sm_$arch.txt" "$OUT/kernels_sm_$arch.demangled"
    fi
    n=$(wc -l < "$OUT/kernels_sm_$arch.demangled")
    spills=$(awk '{ split($4, s, "/"); if (s[1] + s[2] > 0) c++ } END { print c + 0 }' "$OUT/kernels_sm_$arch.demangled")
    maxr=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$OUT/kernels_sm_$arch.demangled")
    echo "cuda-check: sm_$arch: $n kernels, at most $maxr registers, $spills with spills"
    cat "$OUT/kernels_sm_$arch.demangled"
done
exit $status
