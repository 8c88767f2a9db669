/* tests/main.c - the runner, the harness, and the one attn.h implementation.

   Every test is named GROUP/TEST: GROUP is its file's (gemm for
   tests/test_gemm.c, from the groups table below), TEST its function's name.

       build/tests                  every test
       build/tests attention gemm   the tests whose GROUP/TEST contains "attention"
                                    or "gemm" (plain substrings, case-sensitive):
                                    all of gemm/ and attention/, and also
                                    e.g. threads/threads_sgemm_bit_identical_...
       build/tests gemm/gemm_k_zero_and_empty    that one test
       build/tests --list [WORD...] the names, one per line; nothing runs
       build/tests --help           usage

   The last line of a run is always `N passed, N failed` (N = test cases). Exit
   status: 0 all passed, 1 a test failed, 2 an unknown option or a WORD that no
   test name contains (so a typo is never a silent green). Environment:
   ATTN_TEST_QUICK=1 shrinks the biggest sizes (qemu), ATTN_TEST_DIR=DIR the
   tests/ folder holding fixtures/, ATTN_TEST_VERBOSE=1 more output from some.

   The allocator hooks are defined here, before the implementation, so that
   every call the library makes to an allocator lands in test_alloc_*: the
   no-malloc tests count those calls and can make them fail. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define ATTN_MALLOC(sz, u) test_alloc_malloc((sz), (u))
#define ATTN_REALLOC(p, sz, u) test_alloc_realloc((p), (sz), (u))
#define ATTN_FREE(p, u) test_alloc_free((p), (u))
#define ATTN_IMPLEMENTATION
#include "attn.h"

/* ---- The groups, one per test file ---- */
extern const test_case test_group_kernels[];
extern const test_case test_group_gemm[];
extern const test_case test_group_threads[];
extern const test_case test_group_memory[];
extern const test_case test_group_tensor[];
extern const test_case test_group_train[];
extern const test_case test_group_autodiff[];
extern const test_case test_group_attention[];
extern const test_case test_group_transformer[];
extern const test_case test_group_infer[];
extern const test_case test_group_files[];
extern const test_case test_group_backend[];
extern const test_case test_group_same_bits[];

/* The group names are the first half of every test's name (GROUP/TEST). */
static const struct test_group {
    const char *name;
    const test_case *tests;
} groups[] = {
    {"kernels", test_group_kernels}, {"gemm", test_group_gemm}, {"threads", test_group_threads},
    {"memory", test_group_memory}, {"tensor", test_group_tensor}, {"train", test_group_train},
    {"autodiff", test_group_autodiff}, {"attention", test_group_attention},
    {"transformer", test_group_transformer}, {"infer", test_group_infer}, {"files", test_group_files},
    {"backend", test_group_backend}, {"same_bits", test_group_same_bits}
};
#define N_GROUPS (sizeof groups / sizeof groups[0])

/* ---- Checks ---- */
#define MAX_FAIL_LINES 20 /* per test: past this a loop gone wrong is only counted */

static const char *current_test = "";
static int current_failures;

int test_check(const char *file, int line, int ok, const char *fmt, ...) {
    va_list ap;
    if (ok) return 1;
    current_failures++;
    if (current_failures > MAX_FAIL_LINES) return 0;
    printf("FAIL %s %s:%d: ", current_test, file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return 0;
}

int test_quick(void) {
    const char *q = getenv("ATTN_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

/* ---- Test data ---- */
void test_rng_seed(test_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull; }

uint32_t test_rng_u32(test_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

double test_rng_uniform(test_rng *r) { return test_rng_u32(r) * (1.0 / 4294967296.0); }

float test_rng_range(test_rng *r, float lo, float hi) {
    float v = (float)(lo + (hi - (double)lo) * test_rng_uniform(r));
    return v < hi ? v : lo; /* rounding up to hi would break [lo, hi) */
}

void test_fill(test_rng *r, float *x, size_t n, float lo, float hi) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = test_rng_range(r, lo, hi);
}

uint32_t test_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
int test_is_nan(float x) { return isnan(x); }
int test_is_inf(float x) { return isinf(x); }

/* ---- Guarded buffers ---- */
#define GUARD 16
static const uint32_t guard_bits = TEST_SENTINEL_BITS;

float *test_buf_new(test_buf *b, size_t n, size_t offset) {
    size_t i, total = GUARD + offset + n + GUARD;
    b->mem = (float *)malloc(total * sizeof(float));
    b->n = n;
    b->offset = offset;
    b->p = b->mem ? b->mem + GUARD + offset : NULL;
    if (!b->mem) return NULL;
    for (i = 0; i < total; i++) memcpy(b->mem + i, &guard_bits, sizeof guard_bits);
    return b->p;
}

int test_buf_guards_ok(const test_buf *b) {
    size_t i, total = GUARD + b->offset + b->n + GUARD;
    for (i = 0; i < total; i++) {
        if (b->mem + i >= b->p && b->mem + i < b->p + b->n) continue;
        if (test_bits(b->mem[i]) != guard_bits) return 0;
    }
    return 1;
}

void test_buf_free(test_buf *b) {
    free(b->mem);
    b->mem = b->p = NULL;
}

/* ---- The allocator hooks ---- */
static test_allocator global_allocator;

test_allocator *test_allocator_global(void) { return &global_allocator; }

static test_allocator *pick(void *user) { return user ? (test_allocator *)user : &global_allocator; }

void *test_alloc_malloc(size_t size, void *user) {
    test_allocator *a = pick(user);
    void *p;
    a->mallocs++;
    if (a->fail) return NULL;
    if (a->fail_after > 0 && --a->fail_after == 0) a->fail = 1;
    /* a cap, so that a test of absurd sizes meets NULL here and not a
       sanitizer's "allocation size too big" abort inside malloc */
    if (size > ((size_t)1 << 30)) return NULL;
    p = malloc(size ? size : 1);
    if (p) a->live++;
    return p;
}

void *test_alloc_realloc(void *p, size_t size, void *user) {
    test_allocator *a = pick(user);
    void *q;
    a->reallocs++;
    if (a->fail || size > ((size_t)1 << 30)) return NULL;
    q = realloc(p, size ? size : 1);
    if (q && !p) a->live++;
    return q;
}

void test_alloc_free(void *p, void *user) {
    test_allocator *a = pick(user);
    a->frees++;
    if (p) a->live--;
    free(p);
}

long test_alloc_calls(void) { return global_allocator.mallocs + global_allocator.reallocs + global_allocator.frees; }

/* ---- The runner ---- */
static void usage(FILE *f) {
    fprintf(f,
            "usage: build/tests [WORD...]         run the tests whose name contains any WORD\n"
            "       build/tests --list [WORD...]  print their names instead, one per line\n"
            "       build/tests --help            this\n"
            "A test's name is GROUP/TEST: GROUP from its file tests/test_GROUP.c, TEST its\n"
            "function, e.g. gemm/gemm_k_zero_and_empty. A WORD matches every name that contains\n"
            "it (plain substring, case-sensitive): 'gemm' runs gemm/* and threads/threads_sgemm_*.\n"
            "No WORD: every test. The last line is 'N passed, N failed'. Exit status: 1 when a\n"
            "test failed; 2 for an unknown option or a WORD that no test name contains.\n"
            "Environment: ATTN_TEST_QUICK=1 smaller sizes (for qemu), ATTN_TEST_DIR=DIR the\n"
            "tests/ folder (fixtures/ in it), ATTN_TEST_VERBOSE=1 more output from some tests.\n");
}

/* GROUP/TEST into buf (names are short identifiers: 128 is plenty, and snprintf cuts). */
static const char *full_name(char *buf, size_t size, const char *group, const char *test) {
    snprintf(buf, size, "%s/%s", group, test);
    return buf;
}

/* 1 when no words were given or name contains one of them. */
static int selected(const char *name, char **words, int n_words) {
    int i;
    if (n_words == 0) return 1;
    for (i = 0; i < n_words; i++)
        if (strstr(name, words[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, list = 0, n_words = 0, n_selected = 0, n_total = 0, bad_words = 0, i;
    char **words = argv + 1; /* the non-option arguments, compacted in place */
    char name[128];
    size_t g;
    const test_case *t;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "build/tests: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            words[n_words++] = argv[i];
        }
    }
    /* Every word must name at least one test. */
    for (i = 0; i < n_words; i++) {
        int hit = 0;
        for (g = 0; g < N_GROUPS && !hit; g++)
            for (t = groups[g].tests; t->name && !hit; t++)
                hit = strstr(full_name(name, sizeof name, groups[g].name, t->name), words[i]) != NULL;
        if (!hit) {
            printf("no test name contains '%s' (build/tests --list shows them all)\n", words[i]);
            bad_words++;
        }
    }
    if (bad_words) {
        printf("0 passed, 0 failed\n");
        return 2;
    }
    for (g = 0; g < N_GROUPS; g++)
        for (t = groups[g].tests; t->name; t++) {
            n_total++;
            if (selected(full_name(name, sizeof name, groups[g].name, t->name), words, n_words)) n_selected++;
        }
    if (list) {
        for (g = 0; g < N_GROUPS; g++)
            for (t = groups[g].tests; t->name; t++)
                if (selected(full_name(name, sizeof name, groups[g].name, t->name), words, n_words)) puts(name);
        return 0;
    }

    printf("attn.h %s tests, kernels: %s%s", ATTN_VERSION_STRING, attn_simd_name(attn_simd_active()),
           test_quick() ? " (quick)" : "");
    if (n_words) printf(", %d of %d tests", n_selected, n_total);
    printf("\n");
    fflush(stdout);
    for (g = 0; g < N_GROUPS; g++) {
        for (t = groups[g].tests; t->name; t++) {
            if (!selected(full_name(name, sizeof name, groups[g].name, t->name), words, n_words)) continue;
            current_test = name;
            current_failures = 0;
            t->fn();
            if (current_failures > MAX_FAIL_LINES)
                printf("FAIL %s: %d more failures not shown\n", name, current_failures - MAX_FAIL_LINES);
            if (current_failures) failed++; else passed++;
        }
    }
    current_test = "";
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
