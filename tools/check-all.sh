#!/usr/bin/env bash
# tools/check-all.sh - the portability matrix behind `make check-all`.
#
# Builds attn.h (and the test suite, tests/*.c) under many compilers, targets and
# config macros, runs what can run here (aarch64 and armhf under qemu-user), and
# prints one line per configuration:
#     ok   <name>  (time)  notes
#     FAIL <name>  (time)  reason, then the tail of its log
#     skip <name>  (why)   an optional toolchain is missing
# Logs and build products live in build/check-all/<name>.log and build/check-all/<name>/.
#
# Configurations (required unless marked optional):
#   sections               tools/check_sections.sh: no section of the implementation uses a later one
#   stb-{gcc,clang}        C99 -Werror: one implementation TU + two declaration-only includers, linked
#   static-{gcc,clang}     ATTN_STATIC: two private implementations in one program, nothing exported
#   no-stdio-{gcc,clang}   ATTN_NO_STDIO builds, runs, and the preprocessed implementation has no stdio.h
#   alloc-hooks            ATTN_MALLOC/REALLOC/FREE hooks balanced; ATTN_NO_MALLOC references no allocator
#   openmp-gcc             ATTN_OPENMP: real threads, sgemm_mt bit-identical to sgemm
#   cxx-{g++,clang++}      the header as C++11 -pedantic -Werror, C/C++ mixed links both ways
#   tests-gcc, tests-clang default build (run-time dispatch: AVX-512, AVX2 or none);
#                          tests-gcc-mavx2 (-mavx2 -mfma)
#   tests-avx2-cap, tests-no-avx512   the AVX2 set end to end where the CPU has AVX-512:
#                          ATTN_SIMD=avx2 at run time, and ATTN_NO_AVX512 at compile time
#   tests-no-simd          ATTN_NO_SIMD
#   tests-{,clang-}asan-ubsan  -fsanitize=address,undefined -fno-sanitize-recover=all
#   aarch64-qemu, armhf-neon-qemu, armhf-neon-vfpv4-qemu   tests under qemu-user (ATTN_TEST_QUICK=1)
#   {aarch64,armhf}-asan-ubsan-qemu   the same with gcc's sanitizers (no leak check under qemu)
#   armhf-vfp-qemu, aarch64-clang-qemu, armhf-clang-qemu   smoke program only
#   fuzz                   the libFuzzer targets of tools/fuzz/ (safetensors, .npy), built with
#                          clang -fsanitize=fuzzer,address,undefined, each run CHECK_ALL_FUZZ_TIME
#                          seconds from its seed corpus; any crash, hang, leak or failed check fails
#   optional: tcc (reference kernels, tests), cortex-m (M4/M0 compile + size),
#             mingw (tests compiled; run under wine when present, prefix in build/wine),
#             msvc-target (clang --target=*-windows-msvc -ffreestanding, libc stubbed)
# Each build also checks which kernel set the binary picked (avx512 / avx2 / neon / none).
# Exit status: nonzero when a required configuration failed (optional ones only
# report, unless CHECK_ALL_STRICT=1).
#
# Environment:
#   CHECK_ALL_JOBS=N      configurations run at once (default: number of CPUs, at most 4)
#   CHECK_ALL_ONLY=REGEX  run only configurations whose name matches (grep -E)
#   CHECK_ALL_TIMEOUT=S   limit for each program run (default 600 s)
#   CHECK_ALL_STRICT=1    optional configurations that fail also fail the run
#   CHECK_ALL_TEST_SRC    test sources to use instead of tests/*.c (for trying the script)
#   CHECK_ALL_FUZZ_TIME=S seconds each fuzz target runs (default 20)
#   CHECK_ALL_FUZZ_SEED=N libFuzzer's -seed, to repeat a run (default: a random one, printed in the log)
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
OUT=build/check-all
WARN="-std=c99 -Wall -Wextra -pedantic -Werror"
CXXWARN="-std=c++11 -Wall -Wextra -pedantic -Werror"
TIMEOUT=${CHECK_ALL_TIMEOUT:-600}
STRICT=${CHECK_ALL_STRICT:-0}
ONLY=${CHECK_ALL_ONLY:-}
JOBS=${CHECK_ALL_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$JOBS" -gt 4 ] 2>/dev/null && JOBS=4
[ "$JOBS" -ge 1 ] 2>/dev/null || JOBS=2

rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/.res" "$OUT/include"
SRC=$OUT/src
# Every configuration builds the same sources: attn.h and tests/ are copied now
# (build/check-all/include/attn.h comes first on the include path; the tests are
# built from build/check-all/tests/), so edits made while this runs do not mix in.
cp attn.h "$OUT/include/attn.h" || exit 2
INC="-I$OUT/include -I."
if [ -n "${CHECK_ALL_TEST_SRC:-}" ]; then
    TEST_SRC=$CHECK_ALL_TEST_SRC
elif ls tests/*.c > /dev/null 2>&1; then
    cp -R tests "$OUT/tests" || exit 2
    TEST_SRC=$(ls "$OUT"/tests/*.c | LC_ALL=C sort | tr '\n' ' ')
else
    TEST_SRC=""
fi
# The fuzz targets, their seed corpora and dictionaries, copied for the same reason.
[ -d tools/fuzz ] && { cp -R tools/fuzz "$OUT/fuzz-src" || exit 2; }

# The host CPU decides what the x86 dispatch should pick.
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
    HOST_AVX2=1
else
    HOST_AVX2=0
fi
case "$(uname -m)" in x86_64 | amd64) HOST_X86=1 ;; *) HOST_X86=0 ;; esac
# The set a default x86 build must pick: avx512 needs F, DQ, BW and VL (the
# kernel clears these flags when the OS does not save the zmm state).
HOST_SIMD=none
[ "$HOST_AVX2" = 1 ] && HOST_SIMD=avx2
if [ "$HOST_AVX2" = 1 ] && grep -qw avx512f /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo &&
    grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
    HOST_SIMD=avx512
fi

# ---------------------------------------------------------------------------
# Small programs of our own, in tests/compile/ (not part of the test suite:
# tests/*.c does not reach into it), copied like the tests:
#   impl.c          the implementation alone, attn.h included twice
#   use.c, use2.c   declaration-only includers: the smoke program (C99 and C++11)
#   static.c        an ATTN_STATIC unit, built twice (-DSTATIC_FN=static_a, static_b);
#                   static_main.c calls both
#   alloc.c         allocator hooks (-DHOOKS) or ATTN_NO_MALLOC (-DNOMALLOC)
#   decl.c          declarations only, for targets without a C library
#   msvc-stubs/     just the C library attn.h's implementation calls, for msvc-target
# ---------------------------------------------------------------------------
[ -f tests/compile/impl.c ] || { echo "check-all: tests/compile/ is missing" >&2; exit 2; }
cp -R tests/compile/. "$SRC/" || exit 2

# ---------------------------------------------------------------------------
# Helpers. Each configuration runs in its own subshell with W (its folder) and
# LOG (its log) set; it returns 0 (ok), 1 (fail) or 3 (skip), and may leave a
# one-line reason in $W/reason and notes for the ok line in $W/note.
# ---------------------------------------------------------------------------
say() { printf '%s\n' "$*" >> "$LOG"; }
fail() { printf '%s\n' "$*" > "$W/reason"; return 1; }
skip() { printf '%s\n' "$*" > "$W/reason"; return 3; }
note() { printf '%s; ' "$*" >> "$W/note"; }
have() { command -v "$1" >/dev/null 2>&1; }

# step "what" cmd...: run a build step into the log; on error the reason says what failed.
step() {
    local what=$1
    shift
    say "+ $*"
    "$@" > "$W/step.out" 2>&1
    local rc=$?
    cat "$W/step.out" >> "$LOG"
    if [ $rc -ne 0 ]; then
        local first
        first=$(grep -m1 -E 'error|undefined reference' "$W/step.out" | cut -c1-220)
        fail "$what failed (exit $rc)${first:+: $first}"
    fi
    return $rc
}

# runprog "what" outfile cmd...: run a program with the time limit; output to outfile and the log.
runprog() {
    local what=$1 outf=$2
    shift 2
    say "+ $*"
    timeout -k 10 "$TIMEOUT" "$@" > "$outf" 2>&1
    local rc=$?
    cat "$outf" >> "$LOG"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$what timed out after ${TIMEOUT}s"
        return 1
    fi
    return $rc
}

# smoke CC "FLAGS" "LDFLAGS" [runner...]: the three-TU smoke program; checks "smoke ok".
# Leaves the SIMD set it reported in $W/simd.
smoke() {
    local cc=$1 flags=$2 ldflags=$3
    shift 3
    local f
    for f in impl use use2; do
        # shellcheck disable=SC2086
        step "compile $f.c ($cc $flags)" $cc $flags $INC -c "$SRC/$f.c" -o "$W/$f.o" || return 1
    done
    # shellcheck disable=SC2086
    step "link smoke" $cc $flags "$W/impl.o" "$W/use.o" "$W/use2.o" -o "$W/smoke" $ldflags || return 1
    runprog "smoke" "$W/smoke.out" "$@" "$W/smoke" || {
        [ -s "$W/reason" ] || fail "smoke program failed: $(grep -m1 'smoke' "$W/smoke.out" || tail -n1 "$W/smoke.out")"
        return 1
    }
    grep -q '^smoke ok$' "$W/smoke.out" || { fail "smoke program did not say ok"; return 1; }
    sed -n 's/^simd //p' "$W/smoke.out" > "$W/simd"
    return 0
}

# expect_simd NAME: the smoke program must have picked that kernel set.
expect_simd() {
    local got
    got=$(cat "$W/simd" 2>/dev/null)
    if [ "$got" != "$1" ]; then
        fail "expected the $1 kernels, the build uses '${got:-?}'"
        return 1
    fi
    note "simd=$got"
}

# tests CC "FLAGS" "LDFLAGS" [runner...]: build tests/*.c into $W/tests and run it.
tests() {
    local cc=$1 flags=$2 ldflags=$3
    shift 3
    if [ -z "$TEST_SRC" ]; then
        fail "no tests/*.c in the repository"
        return 1
    fi
    # shellcheck disable=SC2086
    step "build tests ($cc $flags)" $cc $WARN $flags $INC $TEST_SRC -o "$W/tests" $ldflags || return 1
    runprog "tests" "$W/tests.out" "$@" "$W/tests"
    local rc=$? last
    last=$(grep -v '^[[:space:]]*$' "$W/tests.out" | tail -n1)
    if [ -s "$W/reason" ]; then return 1; fi
    if [ $rc -ne 0 ] || ! printf '%s\n' "$last" | grep -qE '^[0-9]+ passed, 0 failed$'; then
        # The names of the failing tests ("FAIL <group>/<name> <file>:<line>: ..."), each once.
        local failed
        failed=$(sed -n 's|^FAIL \([A-Za-z0-9_/]*\).*|\1|p' "$W/tests.out" | awk '!seen[$0]++' | head -n 8 | paste -sd' ' -)
        fail "tests exit $rc: ${last:-no output}${failed:+ -- $failed}"
        return 1
    fi
    note "${last%%,*}"
}

# ---------------------------------------------------------------------------
# Configurations. Name, required (req) or optional (opt), function.
# ---------------------------------------------------------------------------

# 1. The stb contract: one implementation TU, two declaration-only includers, C99 -Werror.
stb() {
    local cc=$1
    have "$cc" || { fail "$cc not found"; return 1; }
    smoke "$cc" "$WARN -O2" "-lm" || return 1
    # The includers must define nothing of the library's.
    if nm --defined-only "$W/use.o" "$W/use2.o" 2>>"$LOG" | grep -E ' [A-Za-z] attn_' >> "$LOG"; then
        fail "a declaration-only translation unit defines attn_ symbols"
        return 1
    fi
    nm --defined-only "$W/impl.o" | grep -q ' T attn_sgemm$' || { fail "impl.o does not export attn_sgemm"; return 1; }
    [ "$HOST_X86" = 1 ] && { expect_simd "$HOST_SIMD" || return 1; }
    return 0
}
cfg_stb_gcc() { stb gcc; }
cfg_stb_clang() { stb clang; }

# ATTN_STATIC: two private implementations linked into one program must not clash.
static_cfg() {
    local cc=$1 x
    have "$cc" || { fail "$cc not found"; return 1; }
    for x in a b; do
        # shellcheck disable=SC2086
        step "compile static.c as static_$x" $cc $WARN -O2 -DSTATIC_FN=static_$x $INC -c "$SRC/static.c" -o "$W/static_$x.o" || return 1
    done
    # shellcheck disable=SC2086
    step "compile static_main.c" $cc $WARN -O2 -c "$SRC/static_main.c" -o "$W/static_main.o" || return 1
    step "link" $cc "$W/static_main.o" "$W/static_a.o" "$W/static_b.o" -o "$W/static" -lm || return 1
    if nm -g --defined-only "$W/static_a.o" "$W/static_b.o" | grep -E ' attn_' >> "$LOG"; then
        fail "ATTN_STATIC still exports attn_ symbols"
        return 1
    fi
    runprog "static program" "$W/static.out" "$W/static" || { [ -s "$W/reason" ] || fail "$(cat "$W/static.out")"; return 1; }
    note "two private implementations, no exported attn_ symbols"
}
cfg_static_gcc() { static_cfg gcc; }
cfg_static_clang() { static_cfg clang; }

# ATTN_NO_STDIO: builds and works, and the implementation does not pull in <stdio.h>.
nostdio() {
    local cc=$1 with without
    have "$cc" || { fail "$cc not found"; return 1; }
    # shellcheck disable=SC2086
    step "preprocess with ATTN_NO_STDIO" $cc $WARN -E -DATTN_NO_STDIO $INC "$SRC/impl.c" -o "$W/impl-nostdio.i" || return 1
    # shellcheck disable=SC2086
    step "preprocess without" $cc $WARN -E $INC "$SRC/impl.c" -o "$W/impl-stdio.i" || return 1
    with=$(grep -cE '^# [0-9]+ ".*/stdio\.h"' "$W/impl-nostdio.i")
    without=$(grep -cE '^# [0-9]+ ".*/stdio\.h"' "$W/impl-stdio.i")
    if [ "$with" != 0 ]; then
        grep -m3 -E '^# [0-9]+ ".*/stdio\.h"' "$W/impl-nostdio.i" >> "$LOG"
        fail "the implementation includes <stdio.h> under ATTN_NO_STDIO"
        return 1
    fi
    if [ "$without" != 0 ]; then
        note "stdio.h only without ATTN_NO_STDIO"
    else
        note "no stdio.h with or without ATTN_NO_STDIO"
    fi
    # Also no FILE-based symbols in the object (fopen & co.).
    smoke "$cc" "$WARN -O2 -DATTN_NO_STDIO" "-lm" || return 1
    if nm -u "$W/impl.o" | grep -wE 'fopen|fclose|fread|fwrite|fprintf|printf|puts|fputs|fseek|ftell|snprintf|vsnprintf|sprintf' >> "$LOG"; then
        fail "the ATTN_NO_STDIO implementation calls stdio functions"
        return 1
    fi
}
cfg_nostdio_gcc() { nostdio gcc; }
cfg_nostdio_clang() { nostdio clang; }

# Allocator hooks and ATTN_NO_MALLOC.
cfg_alloc_hooks() {
    # shellcheck disable=SC2086
    step "compile with ATTN_MALLOC/REALLOC/FREE" gcc $WARN -O2 -DHOOKS $INC "$SRC/alloc.c" -o "$W/hooks" -lm || return 1
    runprog "hooks program" "$W/hooks.out" "$W/hooks" || { [ -s "$W/reason" ] || fail "$(tail -n1 "$W/hooks.out")"; return 1; }
    # shellcheck disable=SC2086
    step "compile with ATTN_NO_MALLOC" gcc $WARN -O2 -DNOMALLOC $INC -c "$SRC/alloc.c" -o "$W/nomalloc.o" || return 1
    if nm -u "$W/nomalloc.o" | grep -wE 'malloc|calloc|realloc|free' >> "$LOG"; then
        fail "ATTN_NO_MALLOC still references the C allocator"
        return 1
    fi
    step "link no-malloc" gcc "$W/nomalloc.o" -o "$W/nomalloc" -lm || return 1
    runprog "no-malloc program" "$W/nomalloc.out" "$W/nomalloc" || { [ -s "$W/reason" ] || fail "$(tail -n1 "$W/nomalloc.out")"; return 1; }
    note "ATTN_MALLOC/FREE hooks balanced; ATTN_NO_MALLOC references no allocator"
}

# ATTN_OPENMP: the ready parallel-for really runs threads, and sgemm_mt stays bit-identical.
cfg_openmp_gcc() {
    # shellcheck disable=SC2086
    step "compile with ATTN_OPENMP" gcc $WARN -O2 -DATTN_OPENMP -fopenmp $INC -c "$SRC/impl.c" -o "$W/impl.o" || return 1
    local f
    for f in use use2; do
        # shellcheck disable=SC2086
        step "compile $f.c" gcc $WARN -O2 $INC -c "$SRC/$f.c" -o "$W/$f.o" || return 1
    done
    step "link" gcc -fopenmp "$W/impl.o" "$W/use.o" "$W/use2.o" -o "$W/smoke" -lm || return 1
    OMP_NUM_THREADS=3 runprog "smoke" "$W/smoke.out" "$W/smoke" || { [ -s "$W/reason" ] || fail "$(grep -m1 smoke "$W/smoke.out")"; return 1; }
    grep -q '^threads 3$' "$W/smoke.out" || { fail "attn_threads_openmp() did not report OMP_NUM_THREADS=3 threads"; return 1; }
    grep -q '^smoke ok$' "$W/smoke.out" || { fail "smoke program did not say ok"; return 1; }
    note "3 threads, sgemm_mt bit-identical to sgemm"
}

# 2. C++: the implementation compiled as C++, linked with C and C++ includers both ways.
cxx() {
    local cxx=$1 cc=$2
    have "$cxx" || { fail "$cxx not found"; return 1; }
    local f
    for f in impl use use2; do
        # shellcheck disable=SC2086
        step "compile $f.c as C++ ($cxx $CXXWARN)" $cxx $CXXWARN -O2 -x c++ $INC -c "$SRC/$f.c" -o "$W/$f.cxx.o" || return 1
        # shellcheck disable=SC2086
        step "compile $f.c as C" $cc $WARN -O2 $INC -c "$SRC/$f.c" -o "$W/$f.c.o" || return 1
    done
    step "link all-C++" $cxx "$W/impl.cxx.o" "$W/use.cxx.o" "$W/use2.cxx.o" -o "$W/smoke-cxx" -lm || return 1
    step "link C++ implementation + C includers" $cxx "$W/impl.cxx.o" "$W/use.c.o" "$W/use2.c.o" -o "$W/smoke-mix1" -lm || return 1
    step "link C implementation + C++ includers" $cxx "$W/impl.c.o" "$W/use.cxx.o" "$W/use2.cxx.o" -o "$W/smoke-mix2" -lm || return 1
    for f in smoke-cxx smoke-mix1 smoke-mix2; do
        runprog "$f" "$W/$f.out" "$W/$f" || { [ -s "$W/reason" ] || fail "$f: $(grep -m1 smoke "$W/$f.out")"; return 1; }
    done
    note "-std=c++11 -pedantic; C/C++ mixed links"
}
cfg_cxx_gpp() { cxx g++ gcc; }
cfg_cxx_clangpp() { cxx clang++ clang; }

# 2b. The header's first example, cut out of attn.h's top comment (so the manual
# cannot rot), compiled as C99 and as C++11 and run: it prints nothing when every op worked.
cfg_quickstart() {
    {
        printf '#include <stdio.h>\n#include <string.h>\n#define ATTN_IMPLEMENTATION\n#include "attn.h"\nint main(void) {\n'
        awk '/everywhere else just #include "attn.h". Then/ { on = 1; next } on && /^   Training:/ { exit } on' "$OUT/include/attn.h"
        printf '    return 0;\n}\n'
    } >"$W/quickstart.c"
    grep -q attn_context_destroy "$W/quickstart.c" || { fail "the quick start example was not found in attn.h"; return 1; }
    # shellcheck disable=SC2086
    step "compile as C99" gcc $WARN -O1 $INC "$W/quickstart.c" -o "$W/qs-c" -lm -lpthread || return 1
    # shellcheck disable=SC2086
    step "compile as C++11" g++ $CXXWARN -O1 -x c++ $INC "$W/quickstart.c" -o "$W/qs-cxx" -lm -lpthread || return 1
    for f in qs-c qs-cxx; do
        runprog "$f" "$W/$f.out" "$W/$f" || return 1
        [ ! -s "$W/$f.out" ] || { fail "$f printed: $(head -c 200 "$W/$f.out")"; return 1; }
    done
    note "the manual's first example, C99 and C++11"
}

# 3-5. The test suite natively.
cfg_tests_gcc() {
    smoke gcc "$WARN -O2" "-lm" || return 1
    expect_simd "$HOST_SIMD" || return 1
    tests gcc "-O2" "-lm -lpthread"
}
cfg_tests_clang() {
    smoke clang "$WARN -O2" "-lm" || return 1
    expect_simd "$HOST_SIMD" || return 1
    tests clang "-O2" "-lm -lpthread"
}
cfg_tests_gcc_mavx2() {
    local fl="-O2 -mavx2 -mfma"
    if [ "$HOST_AVX2" != 1 ]; then
        # Still prove the path compiles; it cannot run on this CPU.
        # shellcheck disable=SC2086
        step "compile" gcc $WARN $fl $INC -c "$SRC/impl.c" -o "$W/impl.o" || return 1
        # shellcheck disable=SC2086
        step "build tests" gcc $WARN $fl $INC $TEST_SRC -o "$W/tests" -lm -lpthread || return 1
        note "compile only: this CPU has no AVX2+FMA"
        return 0
    fi
    smoke gcc "$WARN $fl" "-lm" || return 1
    expect_simd "$HOST_SIMD" || return 1
    tests gcc "$fl" "-lm -lpthread"
}
# The AVX2 set end to end on a CPU that would pick AVX-512: capped at run time
# (ATTN_SIMD=avx2), and compiled out (ATTN_NO_AVX512).
cfg_tests_avx2_cap() {
    [ "$HOST_AVX2" = 1 ] || { skip "this CPU has no AVX2+FMA"; return 3; }
    export ATTN_SIMD=avx2
    smoke gcc "$WARN -O2" "-lm" || return 1
    expect_simd avx2 || return 1
    tests gcc "-O2" "-lm -lpthread"
}
cfg_tests_no_avx512() {
    [ "$HOST_AVX2" = 1 ] || { skip "this CPU has no AVX2+FMA"; return 3; }
    smoke gcc "$WARN -O2 -DATTN_NO_AVX512" "-lm" || return 1
    expect_simd avx2 || return 1
    tests gcc "-O2 -DATTN_NO_AVX512" "-lm -lpthread"
}
cfg_tests_no_simd() {
    smoke gcc "$WARN -O2 -DATTN_NO_SIMD" "-lm" || return 1
    expect_simd none || return 1
    tests gcc "-O2 -DATTN_NO_SIMD" "-lm -lpthread"
}
SAN="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
sanitized() {
    local cc=$1
    have "$cc" || { fail "$cc not found"; return 1; }
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
    smoke "$cc" "$WARN $SAN" "-lm" || return 1
    tests "$cc" "$SAN" "-lm -lpthread"
}
cfg_tests_asan_ubsan() { sanitized gcc; }
# clang's runtime comes from libclang-rt-14-dev.
cfg_tests_clang_asan_ubsan() { sanitized clang; }

# 6-7. ARM under qemu-user, quick sizes.
cross() { # cc sysroot qemu flags expect-fma(0/1/-) expect-simd run-tests(1/0)
    local cc=$1 sysroot=$2 qemu=$3 fl=$4 fma=$5 simd=$6 run_tests=$7
    have "${cc%% *}" || { fail "${cc%% *} not found; Debian: gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf"; return 1; }
    have "$qemu" || { fail "$qemu not found; Debian: qemu-user"; return 1; }
    [ -d "$sysroot" ] || { fail "$sysroot missing; Debian: libc6-dev-*-cross"; return 1; }
    if [ "$fma" != - ]; then
        # shellcheck disable=SC2086
        local has
        has=$($cc $fl -dM -E - < /dev/null | grep -c '__ARM_FEATURE_FMA ')
        [ "$has" = "$fma" ] || { fail "$cc $fl: __ARM_FEATURE_FMA defined=$has, expected $fma"; return 1; }
        [ "$fma" = 1 ] && note "vfmaq_f32 path" || note "vmlaq_f32 path (no FMA)"
    fi
    export ATTN_TEST_QUICK=1
    smoke "$cc" "$WARN $fl" "-lm" "$qemu" -L "$sysroot" || return 1
    expect_simd "$simd" || return 1
    if [ "$run_tests" = 1 ]; then
        tests "$cc" "$fl" "-lm -lpthread" "$qemu" -L "$sysroot"
    else
        note "smoke program only"
    fi
}
A64=/usr/aarch64-linux-gnu
AHF=/usr/arm-linux-gnueabihf
cfg_aarch64() { cross aarch64-linux-gnu-gcc $A64 qemu-aarch64 "-O2" - neon 1; }
cfg_armhf_neon() { cross arm-linux-gnueabihf-gcc $AHF qemu-arm "-O2 -mfpu=neon" 0 neon 1; }
cfg_armhf_neon_vfpv4() { cross arm-linux-gnueabihf-gcc $AHF qemu-arm "-O2 -mfpu=neon-vfpv4" 1 neon 1; }
# The NEON kernels' edges (partial vectors, tails) under gcc's ASan+UBSan. LeakSanitizer
# cannot run under qemu-user; leaks are checked by the native sanitizer builds.
cfg_aarch64_asan() {
    export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
    cross aarch64-linux-gnu-gcc $A64 qemu-aarch64 "$SAN" - neon 1
}
# Optional since 0.2.0: with the thread pool's workers the tests time out (or 32-bit ASan's
# shadow check fails) under qemu-arm; the plain armhf and aarch64 ASan runs stay required.
cfg_armhf_asan() {
    # A smaller quarantine: with the default, freed blocks pile up until qemu
    # places new ones above what 32-bit ASan can shadow ("AddrIsInMem" CHECK).
    export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:quarantine_size_mb=16
    cross arm-linux-gnueabihf-gcc $AHF qemu-arm "$SAN -mfpu=neon" 0 neon 1
}
# Debian's armhf default (VFPv3-D16, no NEON): the reference kernels.
cfg_armhf_vfp() { cross arm-linux-gnueabihf-gcc $AHF qemu-arm "-O2" - none 0; }
# clang's own arm_neon.h, on gcc's cross sysroots.
cfg_aarch64_clang() {
    have clang || { fail "clang not found"; return 1; }
    cross "clang --target=aarch64-linux-gnu" $A64 qemu-aarch64 "-O2" - neon 0
}
cfg_armhf_clang() {
    have clang || { fail "clang not found"; return 1; }
    cross "clang --target=arm-linux-gnueabihf" $AHF qemu-arm "-O2 -mfpu=neon" 0 neon 0 || return 1
    local top=$W rc
    W=$top/vfpv4
    mkdir -p "$W"
    cross "clang --target=arm-linux-gnueabihf" $AHF qemu-arm "-O2 -mfpu=neon-vfpv4" 1 neon 0
    rc=$?
    [ -s "$W/reason" ] && cp "$W/reason" "$top/reason"
    [ $rc -eq 0 ] && echo "simd=neon with -mfpu=neon (vmlaq) and -mfpu=neon-vfpv4 (vfmaq); smoke program only" > "$top/note"
    W=$top
    return $rc
}

# The parsers under libFuzzer: every fuzz_*.c of tools/fuzz/, each from its seed corpus
# (tools/fuzz/corpus/<name>/, read only: new inputs go to $W/corpus-<name>/) for
# CHECK_ALL_FUZZ_TIME seconds. A crash, a sanitizer report, a hang (-timeout), a leak,
# more than 512 MB, or a failed check of the target's own (it aborts) is a failure; the
# input that did it is left in $W/ and named in the reason.
cfg_fuzz() {
    have clang || { fail "clang not found"; return 1; }
    local dir=$OUT/fuzz-src
    [ -d "$dir" ] || { fail "no tools/fuzz/ in the repository"; return 1; }
    local secs=${CHECK_ALL_FUZZ_TIME:-20} src name bin rc line art stats n=0 bad=""
    local fl="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
    for src in "$dir"/fuzz_*.c; do
        [ -f "$src" ] || continue
        name=$(basename "$src" .c)
        name=${name#fuzz_}
        bin=$W/fuzz_$name
        # shellcheck disable=SC2086
        if ! step "build fuzz_$name" clang $WARN $fl $INC "$src" -o "$bin" -lm; then
            grep -q 'libclang_rt.fuzzer' "$W/step.out" &&
                fail "build fuzz_$name: clang's libFuzzer runtime is missing; Debian: libclang-rt-14-dev"
            return 1
        fi
        mkdir -p "$W/corpus-$name"
        local args=(-max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -max_len=32768
            -artifact_prefix="$W/$name-" -print_final_stats=1)
        [ -f "$dir/$name.dict" ] && args+=(-dict="$dir/$name.dict")
        [ -n "${CHECK_ALL_FUZZ_SEED:-}" ] && args+=(-seed="$CHECK_ALL_FUZZ_SEED")
        runprog "fuzz_$name" "$W/fuzz_$name.out" "$bin" "${args[@]}" "$W/corpus-$name" "$dir/corpus/$name"
        rc=$?
        n=$((n + 1))
        if [ -s "$W/reason" ]; then # timed out as a whole
            bad="$bad $(cat "$W/reason");"
            rm -f "$W/reason"
        elif [ $rc -ne 0 ]; then
            line=$(grep -a -m1 -E 'runtime error|ERROR: |^fuzz_[a-z_]*: ' "$W/fuzz_$name.out" | cut -c1-200)
            art=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$W/fuzz_$name.out" | head -n1)
            bad="$bad fuzz_$name exit $rc: ${line:-see the log}${art:+ (input: $art)};"
        else
            stats=$(grep -a -m1 -E '^#[0-9]+[[:space:]]+DONE' "$W/fuzz_$name.out" |
                sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+).* exec\/s: ([0-9]+).*/\1 runs, cov \2, \3 exec\/s/')
            note "$name: ${stats:-ran ${secs}s}"
        fi
    done
    [ "$n" -gt 0 ] || { fail "no tools/fuzz/fuzz_*.c"; return 1; }
    bad=${bad# }
    [ -z "$bad" ] || { fail "${bad%;}"; return 1; }
}

# attn.h's header promises "SECTIONS (each uses only the ones above it)": no function
# or macro of the implementation is used before the section that defines it.
cfg_sections() {
    local rc
    bash "$ROOT/tools/check_sections.sh" "$OUT/include/attn.h" > "$W/sections.out" 2>&1
    rc=$?
    cat "$W/sections.out" >> "$LOG"
    [ $rc -ne 0 ] && { fail "$(tail -n1 "$W/sections.out" | cut -c1-200)"; return 1; } # the list: in the log tail
    note "$(sed -n 's/^sections: ok (\(.*\))$/\1/p' "$W/sections.out")"
}

# 8. Optional toolchains.
cfg_tcc() {
    have tcc || { skip "tcc not installed; Debian: tcc"; return 3; }
    local f
    for f in impl use use2; do
        step "compile $f.c" tcc -std=c99 -Wall -Werror $INC -c "$SRC/$f.c" -o "$W/$f.o" || return 1
    done
    step "link" tcc "$W/impl.o" "$W/use.o" "$W/use2.o" -o "$W/smoke" -lm || return 1
    runprog "smoke" "$W/smoke.out" "$W/smoke" || { [ -s "$W/reason" ] || fail "$(grep -m1 smoke "$W/smoke.out")"; return 1; }
    grep -q '^smoke ok$' "$W/smoke.out" || { fail "smoke program did not say ok"; return 1; }
    sed -n 's/^simd //p' "$W/smoke.out" > "$W/simd"
    expect_simd none || return 1
    note "reference kernels (no immintrin.h)"
    tests tcc "" "-lm -lpthread"
}
cfg_cuda() {
    local rc
    bash "$ROOT/tools/cuda_check.sh" "$W/cuda" > "$W/cuda.out" 2>&1
    rc=$?
    cat "$W/cuda.out" >> "$LOG"
    [ $rc -eq 3 ] && { skip "no nvcc (the CUDA toolkit is not a Debian package)"; return 3; }
    [ $rc -ne 0 ] && { fail "$(grep -m1 -E 'failed|error' "$W/cuda.out" | cut -c1-200)"; return 1; }
    note "$(grep '^cuda-check: sm_' "$W/cuda.out" | sed 's/^cuda-check: //' | paste -sd ';' -)"
    cp "$W/cuda.out" "$OUT/cuda-ptxas.txt"
}

# The CUDA kernels on the emulator with its threads in other orders than make
# test's: a missing __syncthreads shows up as a wrong result in one of them.
cfg_cuda_emu_orders() {
    local order
    have g++ || { fail "g++ not found"; return 1; }
    step "build the emulated CUDA tests" make -s BUILD="$W/build" "$W/build/cuda_emu/test_cuda" || return 1
    for order in rev rand; do
        runprog "emulated CUDA tests, EMU_ORDER=$order" "$W/$order.out" env EMU_ORDER=$order "$W/build/cuda_emu/test_cuda" || {
            [ -s "$W/reason" ] || fail "EMU_ORDER=$order: $(grep -m1 -E 'FAIL|cuda-emu' "$W/$order.out" | cut -c1-200)"
            return 1
        }
    done
    note "$(tail -n1 "$W/rand.out" | sed 's/^cuda: //') (rev and rand orders)"
}

cfg_cortex_m() {
    have arm-none-eabi-gcc || { skip "arm-none-eabi-gcc not installed; Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi"; return 3; }
    local m4="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -ffunction-sections -fdata-sections"
    local m0="-mcpu=cortex-m0 -mthumb -mfloat-abi=soft -Os -ffunction-sections -fdata-sections"
    # shellcheck disable=SC2086
    step "Cortex-M4 compile" arm-none-eabi-gcc $WARN $m4 -DATTN_NO_STDIO $INC -c "$SRC/impl.c" -o "$W/m4.o" || return 1
    # shellcheck disable=SC2086
    step "Cortex-M4 compile, ATTN_NO_MALLOC" arm-none-eabi-gcc $WARN $m4 -DATTN_NO_STDIO -DATTN_NO_MALLOC $INC -c "$SRC/impl.c" -o "$W/m4-nomalloc.o" || return 1
    # shellcheck disable=SC2086
    step "Cortex-M0 compile" arm-none-eabi-gcc $WARN $m0 -DATTN_NO_STDIO $INC -c "$SRC/impl.c" -o "$W/m0.o" || return 1
    # shellcheck disable=SC2086
    step "preprocess" arm-none-eabi-gcc $WARN $m4 -DATTN_NO_STDIO $INC -E "$SRC/impl.c" -o "$W/m4.i" || return 1
    if grep -qE '^# [0-9]+ ".*/stdio\.h"' "$W/m4.i"; then
        fail "newlib's <stdio.h> is included under ATTN_NO_STDIO"
        return 1
    fi
    if have arm-none-eabi-size; then
        arm-none-eabi-size "$W/m4.o" "$W/m4-nomalloc.o" "$W/m0.o" >> "$LOG" 2>&1
        local s
        s=$(arm-none-eabi-size "$W/m4.o" | awk 'NR==2 {print "text " $1 " data " $2 " bss " $3}')
        note "M4 -Os: $s"
        s=$(arm-none-eabi-size "$W/m0.o" | awk 'NR==2 {print "text " $1}')
        note "M0: $s"
    fi
}
cfg_mingw() {
    have x86_64-w64-mingw32-gcc || { skip "x86_64-w64-mingw32-gcc not installed; Debian: gcc-mingw-w64-x86-64"; return 3; }
    local cc=x86_64-w64-mingw32-gcc f
    for f in impl use use2; do
        # shellcheck disable=SC2086
        step "compile $f.c" $cc $WARN -O2 $INC -c "$SRC/$f.c" -o "$W/$f.o" || return 1
    done
    step "link smoke" $cc -static "$W/impl.o" "$W/use.o" "$W/use2.o" -o "$W/smoke.exe" -lm || return 1
    if [ -z "$TEST_SRC" ]; then fail "no tests/*.c in the repository"; return 1; fi
    # shellcheck disable=SC2086
    step "build tests" $cc $WARN -O2 $INC $TEST_SRC -o "$W/tests.exe" -static -lm -lpthread || return 1
    local wine=""
    if [ -x /usr/lib/wine/wine64 ]; then wine=/usr/lib/wine/wine64; elif have wine64; then wine=wine64; fi
    if [ -n "$wine" ]; then
        mkdir -p "$ROOT/build/wine"
        export WINEPREFIX=$ROOT/build/wine WINEDEBUG=-all
        runprog "smoke under wine" "$W/smoke.out" "$wine" "$W/smoke.exe" || { [ -s "$W/reason" ] || fail "smoke.exe under wine: $(tail -n1 "$W/smoke.out")"; return 1; }
        grep -q 'smoke ok' "$W/smoke.out" || { fail "smoke.exe did not say ok"; return 1; }
        runprog "tests under wine" "$W/tests.out" "$wine" "$W/tests.exe"
        local rc=$? last
        [ -s "$W/reason" ] && return 1
        last=$(tr -d '\r' < "$W/tests.out" | grep -v '^[[:space:]]*$' | tail -n1)
        if [ $rc -ne 0 ] || ! printf '%s\n' "$last" | grep -qE '^[0-9]+ passed, 0 failed$'; then
            fail "tests.exe under wine exit $rc: ${last:-no output}"
            return 1
        fi
        note "ran under wine: ${last%%,*}"
    else
        note "compile and link only (no wine)"
    fi
}
cfg_msvc_target() {
    have clang || { skip "clang not installed"; return 3; }
    local t fl
    for t in x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
        fl="--target=$t -ffreestanding -fsyntax-only -Wall -Wextra -Werror"
        # shellcheck disable=SC2086
        step "$t: declarations (C)" clang $fl -std=c99 -pedantic $INC "$SRC/decl.c" || return 1
        # shellcheck disable=SC2086
        step "$t: declarations (C++)" clang $fl -x c++ -std=c++11 -pedantic $INC "$SRC/decl.c" || return 1
        # The implementation needs a C library; stub headers stand in for the MSVC ones.
        # shellcheck disable=SC2086
        if ! step "$t: implementation (stub libc headers)" clang $fl -std=c99 -I"$SRC/msvc-stubs" $INC "$SRC/impl.c"; then
            # clang <= 18 hides the AVX/AVX2/FMA intrinsics from <immintrin.h> on MSVC
            # targets unless they are enabled for the whole file: say so if that is it.
            # shellcheck disable=SC2086
            case $t in x86_64-*)
                if clang $fl -mavx2 -mfma -std=c99 -I"$SRC/msvc-stubs" $INC "$SRC/impl.c" >> "$LOG" 2>&1; then
                    fail "$t: the implementation compiles only with -mavx2 -mfma (clang's <immintrin.h> on MSVC targets declares AVX2/FMA intrinsics only when enabled; include <avxintrin.h> <avx2intrin.h> <fmaintrin.h> after it for clang-cl)"
                fi
                ;;
            esac
            return 1
        fi
    done
    note "x64 and arm64 (freestanding, libc stubbed)"
}

# name:required(req|opt):function
CONFIGS="
sections:req:cfg_sections
aarch64-qemu:req:cfg_aarch64
armhf-neon-qemu:req:cfg_armhf_neon
armhf-neon-vfpv4-qemu:req:cfg_armhf_neon_vfpv4
aarch64-asan-ubsan-qemu:req:cfg_aarch64_asan
armhf-asan-ubsan-qemu:opt:cfg_armhf_asan
tests-asan-ubsan:req:cfg_tests_asan_ubsan
tests-clang-asan-ubsan:req:cfg_tests_clang_asan_ubsan
fuzz:req:cfg_fuzz
armhf-vfp-qemu:req:cfg_armhf_vfp
aarch64-clang-qemu:req:cfg_aarch64_clang
armhf-clang-qemu:req:cfg_armhf_clang
stb-gcc:req:cfg_stb_gcc
stb-clang:req:cfg_stb_clang
static-gcc:req:cfg_static_gcc
static-clang:req:cfg_static_clang
no-stdio-gcc:req:cfg_nostdio_gcc
no-stdio-clang:req:cfg_nostdio_clang
alloc-hooks:req:cfg_alloc_hooks
openmp-gcc:req:cfg_openmp_gcc
cxx-g++:req:cfg_cxx_gpp
cxx-clang++:req:cfg_cxx_clangpp
quickstart:req:cfg_quickstart
tests-gcc:req:cfg_tests_gcc
tests-gcc-mavx2:req:cfg_tests_gcc_mavx2
tests-avx2-cap:req:cfg_tests_avx2_cap
tests-no-avx512:req:cfg_tests_no_avx512
tests-clang:req:cfg_tests_clang
tests-no-simd:req:cfg_tests_no_simd
tcc:opt:cfg_tcc
cortex-m:opt:cfg_cortex_m
mingw:opt:cfg_mingw
msvc-target:opt:cfg_msvc_target
cuda-nvcc:opt:cfg_cuda
cuda-emu-orders:req:cfg_cuda_emu_orders
"

now_ms() { date +%s%3N; }

run_one() {
    local name=$1 fn=$2 t0 rc
    W=$OUT/$name
    LOG=$OUT/$name.log
    mkdir -p "$W"
    : > "$LOG"
    t0=$(now_ms)
    ("$fn")
    rc=$?
    printf '%s %s\n' "$rc" "$(($(now_ms) - t0))" > "$OUT/.res/$name"
}

NAMES=()
declare -A REQ FN PRINTED
for line in $CONFIGS; do
    n=${line%%:*}
    rest=${line#*:}
    if [ -n "$ONLY" ] && ! printf '%s\n' "$n" | grep -qE "$ONLY"; then continue; fi
    NAMES+=("$n")
    REQ[$n]=${rest%%:*}
    FN[$n]=${rest#*:}
done

report() { # print the lines of configurations that have finished
    local n rc ms reason secs tag
    for n in "${NAMES[@]}"; do
        [ -n "${PRINTED[$n]:-}" ] && continue
        [ -f "$OUT/.res/$n" ] || continue
        PRINTED[$n]=1
        read -r rc ms < "$OUT/.res/$n"
        secs=$(awk -v m="$ms" 'BEGIN { printf "%.1fs", m / 1000 }')
        tag=""
        [ "${REQ[$n]}" = opt ] && tag=" [optional]"
        reason=$(cat "$OUT/$n/reason" 2>/dev/null)
        case $rc in
        0)
            local notes
            notes=$(sed 's/; $//' "$OUT/$n/note" 2>/dev/null)
            printf 'ok   %-24s %7s  %s\n' "$n" "$secs" "$notes"
            echo "ok" > "$OUT/.res/$n.status"
            ;;
        3)
            printf 'skip %-24s %7s  (%s)\n' "$n" "" "$reason"
            echo "skip" > "$OUT/.res/$n.status"
            ;;
        *)
            printf 'FAIL %-24s %7s  %s%s\n' "$n" "$secs" "${reason:-exit $rc}" "$tag"
            tail -n 12 "$OUT/$n.log" | cut -c1-220 | sed 's/^/       | /'
            printf '       | (log: %s)\n' "$OUT/$n.log"
            echo "fail" > "$OUT/.res/$n.status"
            ;;
        esac
    done
}

trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
T_START=$(now_ms)
echo "check-all: ${#NAMES[@]} configurations, $JOBS at a time; logs in $OUT/"
[ -z "$TEST_SRC" ] && echo "check-all: warning: no tests/*.c found; configurations that run the tests will fail"
for n in "${NAMES[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
        wait -n
        report
    done
    run_one "$n" "${FN[$n]}" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n
    report
done
wait
report

n_ok=0 n_fail=0 n_skip=0 n_optfail=0
failed=""
for n in "${NAMES[@]}"; do
    s=$(cat "$OUT/.res/$n.status" 2>/dev/null || echo fail)
    case $s in
    ok) n_ok=$((n_ok + 1)) ;;
    skip) n_skip=$((n_skip + 1)) ;;
    *)
        if [ "${REQ[$n]}" = opt ] && [ "$STRICT" != 1 ]; then
            n_optfail=$((n_optfail + 1))
            failed="$failed $n(optional)"
        else
            n_fail=$((n_fail + 1))
            failed="$failed $n"
        fi
        ;;
    esac
done
total=$(awk -v m="$(($(now_ms) - T_START))" 'BEGIN { printf "%.0f", m / 1000 }')
if [ -f "$OUT/cuda-ptxas.txt" ]; then # what ptxas said of every kernel of attn_cuda.cuh
    echo "---- attn_cuda.cuh, ptxas: registers, spill stores/loads (bytes), static shared memory"
    cat "$OUT/cuda-ptxas.txt"
fi
echo "----"
echo "check-all: $n_ok ok, $n_fail failed, $n_optfail optional failed, $n_skip skipped in ${total}s${failed:+; failed:$failed}"
# The same closing line as the test runner (here counting configurations), so
# that a CI log ending with check-all still ends with 'N passed, N failed'.
echo "$n_ok passed, $((n_fail + n_optfail)) failed"
[ "$n_fail" -eq 0 ]
