/* tests/test.h - the tiny harness every test file (tests/NAME.c) shares.

   A test is a plain function `TEST(name) { ... }`. Each file lists its tests in
   a table, TEST_GROUP(file) = { TEST_ENTRY(a), TEST_ENTRY(b), TEST_END };
   and tests/main.c runs every group it names (C99 has no constructors, so the
   list of groups, with their names, is written out once in main.c). A test's
   full name is GROUP/TEST, e.g. gemm/gemm_k_zero_and_empty; `build/tests WORD...`
   runs the tests whose name contains a WORD, `build/tests --list` names them all.

   CHECK(cond, fmt, ...) records a failure with file:line and a printf message;
   the runner prints one line `FAIL group/test file:line: message` per failure
   and ends with `N passed, N failed` (N = test cases). Tests that loop over many
   elements compute the worst error first and CHECK once, so a broken kernel
   gives one readable line instead of a thousand. */
#ifndef ATTN_TESTS_TEST_H
#define ATTN_TESTS_TEST_H

#include <stddef.h>
#include <stdint.h>
#include "attn.h"

typedef void (*test_fn)(void);
typedef struct test_case {
    const char *name;
    test_fn fn;
} test_case;

#define TEST(name) static void name(void)
#define TEST_ENTRY(name) { #name, name }
#define TEST_END { NULL, NULL }
#define TEST_GROUP(group) const test_case test_group_##group[]

#if defined(__GNUC__) || defined(__clang__)
#  define TEST_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#  define TEST_PRINTF(fmt_index, first_arg)
#endif

/* Returns ok; on !ok records a failure of the running test. */
int test_check(const char *file, int line, int ok, const char *fmt, ...) TEST_PRINTF(4, 5);
#define CHECK(...) test_check(__FILE__, __LINE__, __VA_ARGS__)

/* 1 when ATTN_TEST_QUICK=1 (qemu runs): tests shrink their biggest sizes. */
int test_quick(void);

/* ---- Test data: a generator of our own (xorshift64*), so the inputs never
   depend on the library's RNG that is itself under test. ---- */
typedef struct test_rng {
    uint64_t s;
} test_rng;
void test_rng_seed(test_rng *r, uint64_t seed);
uint32_t test_rng_u32(test_rng *r);
double test_rng_uniform(test_rng *r);                 /* [0, 1) */
float test_rng_range(test_rng *r, float lo, float hi); /* [lo, hi) */
void test_fill(test_rng *r, float *x, size_t n, float lo, float hi);

/* float with a given bit pattern and back (memcpy: no aliasing games) */
uint32_t test_bits(float x);
int test_is_nan(float x);
int test_is_inf(float x);

/* n floats with guard floats of a sentinel NaN pattern on both sides, the
   first of them `offset` floats past the buffer's start (offset 1: a pointer
   that is not 8-, 16- or 32-byte aligned). Every float of p[0..n) starts out
   as the sentinel too. test_buf_guards_ok: nothing outside p[0..n) changed. */
#define TEST_SENTINEL_BITS 0x7FC0DEADu /* a quiet NaN no kernel makes */
typedef struct test_buf {
    float *mem, *p;
    size_t n, offset;
} test_buf;
float *test_buf_new(test_buf *b, size_t n, size_t offset);
int test_buf_guards_ok(const test_buf *b);
void test_buf_free(test_buf *b);

/* ---- The allocator behind ATTN_MALLOC/ATTN_REALLOC/ATTN_FREE (tests/main.c
   routes the hooks here). u (the alloc_user) may point at a test_allocator;
   NULL means the global one, test_allocator_global(). ---- */
typedef struct test_allocator {
    long mallocs, reallocs, frees; /* calls seen */
    long live;                     /* blocks handed out and not yet freed */
    int fail;                      /* 1: every malloc/realloc returns NULL */
    long fail_after;               /* > 0: this many more mallocs succeed, then fail */
} test_allocator;
test_allocator *test_allocator_global(void);
void *test_alloc_malloc(size_t size, void *user);
void *test_alloc_realloc(void *p, size_t size, void *user);
void test_alloc_free(void *p, void *user);
/* mallocs + reallocs + frees seen by the global allocator */
long test_alloc_calls(void);

/* ---- The library's pool behind a counting hook (tests/test_threads.c), so
   that any test can run the library on N threads and see that it did. ---- */
typedef struct test_pool {
    int n_threads;
    long calls;         /* parallel_for calls seen */
    long max_tasks;     /* most tasks one call asked for */
    attn_threads inner; /* attn_threads_create(n_threads) */
} test_pool;
/* An attn_threads whose parallel_for runs the tasks on the library's pool of
   n_threads threads; test_pool_free stops it. */
attn_threads test_pool_threads(test_pool *pool, int n_threads);
void test_pool_free(test_pool *pool);

/* ---- PyTorch fixtures (tests/fixture.c) ---- */
typedef struct fx_rec {
    char name[64];
    int n;
    float *v;
} fx_rec;

typedef struct fx_file {
    fx_rec *recs;
    int n_recs;
    char path[512];
} fx_file;
/* Load fixtures/<file>; 0 (after CHECK failures that say why) when it cannot be read or parsed. */
int fx_load(fx_file *fx, const char *file);
void fx_free(fx_file *fx);
/* The record called name, or NULL. */
const fx_rec *fx_find(const fx_file *fx, const char *name);

#endif
