/* attn.h - tensors, autodiff, attention and Transformers in one C file.
   Version 0.2.0. Public domain or MIT, your choice (see the end of the file).

   QUICK START
   -----------
   In exactly one C or C++ file of your program:

       #define ATTN_IMPLEMENTATION
       #include "attn.h"

   everywhere else just #include "attn.h". Then (C99 and C++ alike):

       attn_context *ctx = attn_context_create(NULL);     // growing arena, 1 thread
       attn_tensor *x = attn_tensor_3d(ctx, 1, 4, 8);      // (batch, tokens, features)
       attn_tensor *w = attn_tensor_2d(ctx, 8, 8);
       attn_attention_opts o;
       memset(&o, 0, sizeof o);                            // zero: the usual defaults
       o.causal = 1;
       attn_init_normal(ctx, x, 0.0f, 1.0f);               // seeded RNG in the context
       attn_init_normal(ctx, w, 0.0f, 0.3f);
       attn_tensor *q = attn_linear(ctx, x, w, NULL);      // ops compute at once
       attn_tensor *y = attn_softmax(ctx, attn_attention(ctx, q, x, x, 2, &o));
       float out[32];
       if (!y || attn_tensor_download(ctx, y, out, 32))    // a failed op returns NULL
           puts(attn_error_message(ctx));                  // and says why
       attn_context_destroy(ctx);

   Training: parameters by name, ops record a tape, backward, an optimizer.

       int shape[2] = {1, 3};
       attn_tensor *fc = attn_param_new(ctx, "fc.weight", 2, shape);
       attn_optim_desc od;
       memset(&od, 0, sizeof od);
       od.kind = ATTN_OPTIM_ADAMW;
       od.lr = 1e-3;
       attn_optim *opt = attn_optim_create(ctx, &od);     // after the parameters
       for (...) {
           attn_context_pos m = attn_context_mark(ctx);
           attn_tensor *loss = attn_mse(ctx, attn_linear(ctx, x, fc, NULL), y);
           attn_params_zero_grad(ctx);
           attn_backward(ctx, loss);
           attn_optim_step(opt);
           attn_context_reset(ctx, m);                     // the step's memory, in O(1)
       }

   Embedded (no malloc, ever): give the context its memory (see MEMORY).

       static unsigned char mem[256 * 1024];
       attn_context_desc d;
       memset(&d, 0, sizeof d);
       d.memory = mem;
       d.memory_size = sizeof mem;
       attn_context *ctx = attn_context_create(&d);      // NULL only if mem is too small

   THREADS AND DETERMINISM
   -----------------------
   A context runs on one thread unless attn_context_desc.threads has a
   parallel-for: attn_threads_create(n) is the library's own pool (pthreads or
   Windows threads; its threads sleep when idle), attn_threads_openmp() one on
   OpenMP (ATTN_OPENMP; on a shared or loaded machine set
   OMP_WAIT_POLICY=passive, or OpenMP's spinning threads can make small steps
   ten times slower), or plug in your own job system. Results never depend on
   the thread count: work is split so that each output element is computed the
   same way whoever computes it, and the tests compare 1 and 2 threads bit for
   bit. The SIMD set is chosen at run time (attn_simd_active): on x86-64 the
   widest of AVX-512 and AVX2 that the CPU and OS support (the environment
   variable ATTN_SIMD=avx2 or ATTN_SIMD=none caps it, read once), NEON on ARM.
   The reference, AVX2, AVX-512 and NEON kernels agree to a stated tolerance,
   not bit for bit (elementwise kernels do the same operations per lane; sums
   and dot products add in another order).

   BACKENDS
   --------
   attn_context_desc.backend puts a context's data in a backend's memory and
   runs its ops through that backend's table (section 5): attn_cuda.cuh fills
   one for NVIDIA GPUs. Without one a context runs the CPU table's functions
   directly; attn_backend_cpu() is that same table, so a plain context and a
   context on attn_backend_cpu() give identical bits. With a backend, read and
   write data with attn_tensor_upload / attn_tensor_download, never ->data.

   MEMORY
   ------
   Everything a context makes lives in its arena: a growing chain of blocks
   (the default) or the one buffer you give it, which is never exceeded and
   never leads to a malloc. To size a fixed buffer, run the same work once on a
   growing context (a dry run) and take attn_arena_peak(attn_context_arena(ctx))
   plus attn_context_overhead() plus 64 bytes of alignment slack; a training
   loop's steady state is reached after its first step (marks and resets give
   the step's memory back). Running out is an error (ATTN_ERR_OUT_OF_MEMORY)
   naming the request, never a crash.

   REVISIONS
   ---------
   What changed between versions, renames included, is listed at the end of
   this file.

   CONFIG MACROS (define before the #include that has ATTN_IMPLEMENTATION)
   -------------
   ATTN_STATIC          every function is static (private to one translation unit)
   ATTN_MALLOC(sz,u)    allocator hooks: define all three or none; u is
   ATTN_REALLOC(p,sz,u) attn_context_desc.alloc_user. Defaults: malloc/realloc/free.
   ATTN_FREE(p,u)
   ATTN_NO_MALLOC       no default allocator: only caller-given memory works
   ATTN_ASSERT(x)       internal invariants only (never bad input); default assert()
   ATTN_NO_STDIO        no <stdio.h>: file helpers vanish, parsers still work on memory
   ATTN_NO_SIMD         plain C kernels everywhere (the reference versions)
   ATTN_NO_AVX512       no AVX-512 kernel set (x86-64 then has AVX2 and the reference)
   ATTN_OPENMP          a ready parallel-for on OpenMP (compile with -fopenmp;
                        OMP_WAIT_POLICY=passive on a shared machine)
   ATTN_NO_THREADS      no thread pool: attn_threads_create gives one thread.
                        The pool is built on pthreads on Unix-likes (link
                        -lpthread on glibc < 2.34) and on Windows threads on
                        _WIN32; bare-metal targets have no pool anyway
   ATTN_THREADS_SPIN    pause instructions a pool thread spins before it
                        sleeps (default 256, a few microseconds; 0: never)
   ATTN_GEMM_KC, ATTN_GEMM_MC, ATTN_GEMM_NC
                        GEMM cache blocking. The packed GEMM keeps
                        (MC+NC)*KC floats on the stack (default 328 KiB).

   SECTIONS (each uses only the ones above it; make check-all checks it)
   --------
   1. Config and platform    version, linkage, allocator, SIMD detection, threads
   2. Errors                 attn_status, per-context messages
   3. Memory: arenas         bump allocation over a buffer or growing blocks;
                             the context and its seeded RNG
   4. Kernels                all the math on raw floats, each forward beside its
                             backward: sgemm, softmax, norms, GELU, attention, ...
   5. Backends               the table of heavy ops, the CPU table, and the
                             dispatch block: the one place that picks a backend
   6. Tensors                f32, up to 4 dims, strided views, init, transfers
   7. Autodiff               the tape, ops with backward, losses, parameters
   8. Layers                 multi-head attention, encoder/decoder layers and
                             stacks, nn.Transformer, positional encodings, KV cache
   9. Training               optimizers, clipping, LR schedules
   10. Files                 safetensors, .npy, checkpoints

   CONVENTIONS
   -----------
   Row-major everywhere. Fallible calls return an attn_status (0 = ATTN_OK) or
   NULL; the message is in attn_error_message(ctx). Bad input (a shape that does
   not fit, a file that lies) is an error, never a crash or an abort. There is no
   global mutable state: everything hangs off the context you create.
*/
#ifndef ATTN_H_INCLUDED
#define ATTN_H_INCLUDED

/* ============================================================================
   1. Config and platform (declarations)
   ========================================================================= */
#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 2
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "0.2.0"

#include <stddef.h>
#include <stdint.h>

#ifndef ATTN_API
#  ifdef ATTN_STATIC
#    if defined(__GNUC__) || defined(__clang__)
#      define ATTN_API static __attribute__((unused))
#    else
#      define ATTN_API static
#    endif
#  else
#    define ATTN_API extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_context attn_context;
typedef struct attn_backend attn_backend; /* section 5 */

/* Which SIMD kernel set is in use. */
typedef enum attn_simd {
    ATTN_SIMD_NONE = 0, /* plain C reference kernels */
    ATTN_SIMD_AVX2 = 1, /* x86-64 AVX2 + FMA, chosen at run time with cpuid */
    ATTN_SIMD_NEON = 2,  /* ARM NEON (aarch64, or 32-bit ARM with -mfpu=neon) */
    ATTN_SIMD_AVX512 = 3 /* x86-64 AVX-512 F/DQ (with AVX2 + FMA), chosen at run time */
} attn_simd;

/* The threading hook. A parallel-for must call fn(data, i) once for every i in
   [0, n_tasks), on any threads, in any order, and return when all are done.
   Results never depend on the thread count: work is split so that every output
   element is computed the same way whoever computes it. */
typedef void (*attn_task_fn)(void *data, int task);
typedef void (*attn_parallel_for_fn)(void *user, int n_tasks, attn_task_fn fn, void *data);
typedef struct attn_threads {
    attn_parallel_for_fn parallel_for; /* NULL: run on the calling thread */
    void *user;                        /* passed to parallel_for */
    int n_threads;                     /* how many can run at once; <= 1 means 1 */
} attn_threads;

/* The SIMD kernel set the public kernels use on this CPU with this build. */
ATTN_API attn_simd attn_simd_active(void);
/* "none", "avx2" or "neon". */
ATTN_API const char *attn_simd_name(attn_simd simd);
/* A ready parallel-for on OpenMP (only with ATTN_OPENMP; n_threads = omp_get_max_threads()). */
ATTN_API attn_threads attn_threads_openmp(void);
/* The library's own thread pool: n_threads - 1 workers (pthreads, or Windows
   threads on _WIN32) plus the calling thread; n_threads <= 0 means one per CPU.
   Without a pool (ATTN_NO_THREADS, bare metal), on failure or for 1 thread it
   returns a single-threaded attn_threads (parallel_for NULL). */
ATTN_API attn_threads attn_threads_create(int n_threads);
/* Stops and frees a pool from attn_threads_create and leaves *t single-threaded;
   any other attn_threads (OpenMP, a job system's, zero) is left alone. Call it
   when no parallel_for on *t is running. */
ATTN_API void attn_threads_destroy(attn_threads *t);

/* ============================================================================
   2. Errors (declarations)
   ========================================================================= */
typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID_ARGUMENT, /* a NULL, a bad flag or index */
    ATTN_ERR_SHAPE,            /* a bad shape (negative or too big) or shapes that do not fit together */
    ATTN_ERR_OUT_OF_MEMORY,    /* the arena (or the allocator) ran out */
    ATTN_ERR_UNSUPPORTED,      /* valid, but this build cannot do it */
    ATTN_ERR_FORMAT,           /* a file or buffer that is not what it claims */
    ATTN_ERR_IO                /* a file could not be opened, read or written */
} attn_status;

/* A short fixed name for a status ("ok", "invalid argument", ...). */
ATTN_API const char *attn_status_name(attn_status status);
/* Status of the last failed call on ctx (ATTN_OK if none since the last clear).
   An op that fails only because an input is NULL keeps the earlier error, which
   is usually what made that input NULL, so a chain of ops reports its cause. */
ATTN_API attn_status attn_error_status(const attn_context *ctx);
/* A readable message for that failure, "" when there is none. */
ATTN_API const char *attn_error_message(const attn_context *ctx);
/* Forget the last error. */
ATTN_API void attn_error_clear(attn_context *ctx);

/* ============================================================================
   3. Memory: arenas (declarations)
   ========================================================================= */
/* A bump allocator. Fixed mode works inside one caller buffer and never calls
   the allocator; growing mode chains blocks from ATTN_MALLOC. Resetting to a mark
   frees everything allocated after it in O(1) and keeps the blocks for reuse. */
typedef struct attn_arena {
    unsigned char *base;  /* current block's bytes */
    size_t size;          /* current block's capacity */
    size_t used;          /* bytes used in the current block */
    size_t used_before;   /* bytes used in the blocks before the current one */
    size_t peak;          /* most bytes ever in use at once */
    void *block;          /* growing mode: current block header; NULL when fixed */
    void *first_block;    /* growing mode: head of the block chain */
    size_t block_size;    /* growing mode: minimum size of a new block */
    void *alloc_user;     /* growing mode: passed to the allocator hooks */
    struct attn_arena *companion; /* marks and resets move this one too (a context's backend memory) */
} attn_arena;

typedef struct attn_arena_pos {
    void *block;
    size_t used;
    size_t used_before;
    size_t companion_used;
} attn_arena_pos;

/* Fixed arena over buf (any alignment); never allocates. */
ATTN_API void attn_arena_init_buffer(attn_arena *arena, void *buf, size_t size);
/* Growing arena; block_size 0 means 1 MiB. */
ATTN_API void attn_arena_init_growing(attn_arena *arena, size_t block_size, void *alloc_user);
/* bytes aligned to align (a power of two; 0 means 64). NULL when out of room. */
ATTN_API void *attn_arena_alloc(attn_arena *arena, size_t bytes, size_t align);
/* Where the arena is now, to return to later. */
ATTN_API attn_arena_pos attn_arena_mark(const attn_arena *arena);
/* Drop everything allocated since pos was taken. */
ATTN_API void attn_arena_reset(attn_arena *arena, attn_arena_pos pos);
/* Bytes in use now (including alignment padding). */
ATTN_API size_t attn_arena_used(const attn_arena *arena);
/* Most bytes that were ever in use at once. */
ATTN_API size_t attn_arena_peak(const attn_arena *arena);
/* Give growing blocks back to the allocator; the arena is then empty. */
ATTN_API void attn_arena_release(attn_arena *arena);

/* ============================================================================
   Context
   ========================================================================= */
typedef struct attn_rng {
    uint64_t state; /* PCG32 (O'Neill): 64-bit LCG state, permuted 32-bit output */
    uint64_t inc;
} attn_rng;

/* Zero means the usual default for every field. */
typedef struct attn_context_desc {
    void *memory;          /* caller memory: the context and its arena live here, no malloc */
    size_t memory_size;
    size_t block_size;     /* growing arena block size when memory is NULL (0: 1 MiB) */
    void *alloc_user;      /* passed to ATTN_MALLOC/ATTN_FREE */
    attn_threads threads;  /* parallel-for hook; zero: single-threaded (OpenMP with ATTN_OPENMP) */
    uint64_t seed;         /* seed of the context's RNG */
    const attn_backend *backend; /* NULL: host memory, CPU kernels; else section 5 */
    size_t backend_memory; /* bytes of backend memory for the context's data (0: 256 MiB) */
} attn_context_desc;

/* A new context (desc may be NULL). NULL only when its own memory (or, with
   desc.backend, the backend memory) cannot be had. */
ATTN_API attn_context *attn_context_create(const attn_context_desc *desc);
/* Free the context and everything in its arena (NULL is fine). */
ATTN_API void attn_context_destroy(attn_context *ctx);
/* The arena that tensors of this context live in. */
ATTN_API attn_arena *attn_context_arena(attn_context *ctx);
/* The threading hook of the context. */
ATTN_API const attn_threads *attn_context_threads(const attn_context *ctx);
/* The context's random generator (seeded from desc.seed). */
ATTN_API attn_rng *attn_context_rng(attn_context *ctx);
/* bytes from the context's arena, 64-byte aligned; NULL and an error when out of room. */
ATTN_API void *attn_alloc(attn_context *ctx, size_t bytes);
/* Bytes needed by attn_context_create for the context itself in fixed mode. */
ATTN_API size_t attn_context_overhead(void);

/* ============================================================================
   4. Kernels (declarations)
   Pure functions on raw float arrays: no tensors, no allocation, no state.
   Each dispatches to the best SIMD set (attn_simd_active) and has a plain C
   reference reachable through attn_kernels_get(ATTN_SIMD_NONE).
   ========================================================================= */

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K (A stored
   K x M when transA), op(B) is K x N (B stored N x K when transB). Leading
   dimensions may exceed the widths. beta == 0 never reads C (NaNs there vanish).
   transA/transB must be 0 or 1; invalid arguments leave C untouched (see
   attn_sgemm_mt for a status). Single-threaded. */
ATTN_API void attn_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta,
                         float *C, int ldc);
/* attn_sgemm split over threads (NULL: one thread); bit-identical for any thread
   count. Returns ATTN_ERR_INVALID_ARGUMENT (and touches nothing) on bad arguments. */
ATTN_API attn_status attn_sgemm_mt(const attn_threads *threads, int transA, int transB,
                                   int M, int N, int K, float alpha, const float *A, int lda,
                                   const float *B, int ldb, float beta, float *C, int ldc);

/* y[r] = softmax(x[r]) for each row; max-subtracted. x == y is fine. */
ATTN_API void attn_softmax_rows(const attn_threads *threads, int rows, int cols,
                                const float *x, int ldx, float *y, int ldy);
/* y[r] = log_softmax(x[r]) for each row. x == y is fine. */
ATTN_API void attn_log_softmax_rows(const attn_threads *threads, int rows, int cols,
                                    const float *x, int ldx, float *y, int ldy);
/* y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta, biased variance as in
   PyTorch. gamma/beta may be NULL (1 and 0); mean/rstd (rows floats each) may be
   NULL, else they receive each row's mean and 1/sqrt(var+eps) for the backward pass. */
ATTN_API void attn_layernorm_rows(const attn_threads *threads, int rows, int cols,
                                  const float *x, int ldx, const float *gamma,
                                  const float *beta, float eps, float *y, int ldy,
                                  float *mean, float *rstd);
/* y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), PyTorch's default GELU. SIMD versions:
   relative error < 6e-7 (measured on [-10, 10]: 4.5e-7 with AVX2 and aarch64,
   5.7e-7 on 32-bit ARM without FMA; the tests hold it to 1e-6). */
ATTN_API void attn_vec_gelu(size_t n, const float *x, float *y);
/* y = exp(x). SIMD versions: relative error < 4e-7 for x in [-87.3, 88.376];
   below -87.3366 the result is 0 (no denormals), above 88.3763 it is +inf
   (the true overflow is at 88.7228). */
ATTN_API void attn_vec_exp(size_t n, const float *x, float *y);
/* y = a + b, a - b, a * b (elementwise; y may alias a or b). */
ATTN_API void attn_vec_add(size_t n, const float *a, const float *b, float *y);
ATTN_API void attn_vec_sub(size_t n, const float *a, const float *b, float *y);
ATTN_API void attn_vec_mul(size_t n, const float *a, const float *b, float *y);
/* y = s * x. */
ATTN_API void attn_vec_scale(size_t n, float s, const float *x, float *y);
/* y += alpha * x. */
ATTN_API void attn_vec_axpy(size_t n, float alpha, const float *x, float *y);
/* y = max(x, 0). */
ATTN_API void attn_vec_relu(size_t n, const float *x, float *y);
/* Sum of x (accumulated in a fixed order, so the same everywhere for one build). */
ATTN_API float attn_vec_sum(size_t n, const float *x);
/* Dot product of a and b. */
ATTN_API float attn_vec_dot(size_t n, const float *a, const float *b);

/* Fused scaled-dot-product attention, O = softmax(Q K^T scale + mask) V, for
   every (batch, head), tiled with an online softmax (flash-attention style):
   memory O(T d) per head, never a T x T matrix; key tiles that are masked
   entirely (causal, past a key length) are skipped. Heads are read in place:
   element i of head h at position t of batch b of Q is
   q[b * q_batch_stride + t * q_row_stride + h * head_dim + i] (so Q, K and V
   may be column ranges of one fused projection); K, V and O likewise. */
#define ATTN_ATTENTION_MAX_DIM 256 /* head_dim and v_dim limit (stack tiles) */
typedef struct attn_attention_desc {
    int batch, heads, q_len, kv_len;
    int head_dim;            /* of Q and K */
    int v_dim;               /* of V and O (0: head_dim) */
    int q_row_stride, k_row_stride, v_row_stride, o_row_stride; /* 0: heads * dim (packed) */
    size_t q_batch_stride, k_batch_stride, v_batch_stride, o_batch_stride; /* 0: len * row stride */
    float scale;             /* 0: 1 / sqrt(head_dim) */
    int causal;              /* query i sees key j only when j <= i + kv_len - q_len */
    const int *key_lengths;  /* (batch) or NULL: keys at or past the length are masked */
    const unsigned char *key_padding_mask; /* (batch, kv_len) or NULL: nonzero masks (PyTorch's True) */
    const float *bias;       /* additive (q_len, kv_len) per (batch, head), or NULL */
    size_t bias_batch_stride, bias_head_stride; /* 0 broadcasts the bias over that dim */
    float dropout;           /* drop probability on the attention weights (0: none) */
    uint64_t dropout_seed;   /* the mask is a hash of (seed, b, h, i, j): thread-independent */
} attn_attention_desc;

/* O and, if lse is not NULL, the rows' log-sum-exp (batch, heads, q_len) that
   the backward pass needs. A query that sees no key gets NaN (as PyTorch). */
ATTN_API attn_status attn_attention_forward(const attn_threads *threads, const attn_attention_desc *desc,
                                            const float *q, const float *k, const float *v, float *o,
                                            float *lse);
/* Adds dL/dQ, dL/dK, dL/dV into dq, dk, dv (laid out as q, k, v) from dL/dO,
   recomputing the weights from lse. Any of dq, dk, dv may be NULL. */
ATTN_API attn_status attn_attention_backward(const attn_threads *threads, const attn_attention_desc *desc,
                                             const float *q, const float *k, const float *v, const float *o,
                                             const float *lse, const float *dout, float *dq, float *dk,
                                             float *dv);

/* One kernel set: what the public kernels dispatch to. Tests and benches use it
   to compare a SIMD set with the reference. Row kernels here are single-threaded. */
typedef struct attn_kernels {
    attn_simd simd;
    void (*sgemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);
    void (*softmax_rows)(int rows, int cols, const float *x, int ldx, float *y, int ldy);
    void (*log_softmax_rows)(int rows, int cols, const float *x, int ldx, float *y, int ldy);
    void (*layernorm_rows)(int rows, int cols, const float *x, int ldx, const float *gamma,
                           const float *beta, float eps, float *y, int ldy, float *mean,
                           float *rstd);
    void (*gelu)(size_t n, const float *x, float *y);
    /* dx += dy * GELU'(x) */
    void (*gelu_backward)(size_t n, const float *x, const float *dy, float *dx);
    void (*exp)(size_t n, const float *x, float *y);
    void (*add)(size_t n, const float *a, const float *b, float *y);
    void (*sub)(size_t n, const float *a, const float *b, float *y);
    void (*mul)(size_t n, const float *a, const float *b, float *y);
    void (*scale)(size_t n, float s, const float *x, float *y);
    void (*axpy)(size_t n, float alpha, const float *x, float *y);
    void (*relu)(size_t n, const float *x, float *y);
    float (*sum)(size_t n, const float *x);
    float (*dot)(size_t n, const float *a, const float *b);
} attn_kernels;

/* The kernel set for simd, or NULL when this build or this CPU lacks it. */
ATTN_API const attn_kernels *attn_kernels_get(attn_simd simd);

/* ============================================================================
   5. Backends (declarations)
   A context made with desc.backend keeps all its float data (tensors, grads,
   optimizer state, the ops' saved statistics) in that backend's memory and
   runs its ops through the table below; tensor structs, the tape and names
   stay in host memory. attn.h never dereferences a backend address, so the
   same model code runs on any backend; read and write data with
   attn_tensor_upload / attn_tensor_download, not through ->data. A context
   without a backend runs the CPU table's own functions on its threads;
   attn_backend_cpu() is that table, so a plain context and one on
   attn_backend_cpu() give the same bits (the tests check it, and use the
   table to check that model code reaches data through the table only).
   On a backend: tensors, views, copy, fill, init, every op of section 7 but
   attn_attention_weights, the layers of section 8 (KV cache too) but
   attn_rope, the losses but attn_mse, the optimizers, clipping, and section
   10's params/checkpoint/.npy files. attn_mse, attn_rope, attn_attention_weights
   fail there with ATTN_ERR_UNSUPPORTED and say so. attn_tensor_elem gives a
   backend address (for arithmetic, not for reading). attn_cuda.cuh fills the
   table for NVIDIA GPUs.
   ========================================================================= */
/* Elementwise op codes of the table: binary4 takes the first three, unary and
   unary_backward the other four (no two share a value). */
enum {
    ATTN_BE_ADD = 0, ATTN_BE_SUB = 1, ATTN_BE_MUL = 2,                     /* binary4 */
    ATTN_BE_SCALE = 3, ATTN_BE_RELU = 4, ATTN_BE_GELU = 5, ATTN_BE_TANH = 6 /* unary */
};

/* One optimizer update (w, g, m, v have n elements), the scalars already
   folded in double and rounded as torch 1.13 does (see attn_optim_step). */
typedef struct attn_backend_update {
    int kind;                    /* an attn_optim_kind: ATTN_OPTIM_SGD, _ADAM, _ADAMW, _ADAGRAD */
    int nesterov, first;         /* first: SGD's first step copies the grad into m */
    float lr_neg, wd, mom, damp, b1, one_b1, b2, one_b2, bc2_sqrt, eps, decay;
} attn_backend_update;

/* Every entry takes user first and returns ATTN_OK or an error whose message
   is last_error(user). Entries may run asynchronously (in order); download
   and sync wait for them. Shapes and strides of the *4 entries are 4-D,
   right-aligned, in elements; a stride of 0 repeats (broadcasts) that dim.
   "+=" entries accumulate into their output. */
struct attn_backend {
    const char *name;                  /* "cpu", "cuda" */
    void *user;
    const char *(*last_error)(void *user);
    /* memory: a context takes one block at creation (desc.backend_memory) */
    void *(*alloc)(void *user, size_t bytes);
    void (*free)(void *user, void *ptr);
    attn_status (*upload)(void *user, void *dst, const void *host_src, size_t bytes);
    attn_status (*download)(void *user, void *host_dst, const void *src, size_t bytes);
    attn_status (*sync)(void *user);
    /* data movement */
    attn_status (*fill)(void *user, size_t n, float value, float *y);
    /* y[i] (strides ys) = or += x[i] (strides xs) over shape */
    attn_status (*copy4)(void *user, const int *shape, const float *x, const int *xs, float *y,
                         const int *ys, int accumulate);
    /* y (dense over shape) = a op b */
    attn_status (*binary4)(void *user, int op, const int *shape, const float *a, const int *as,
                           const float *b, const int *bs, float *y);
    /* dst (strides ds; a 0 stride sums over that dim) += sign * g (dense over
       shape) * other (strides os; other NULL means 1) */
    attn_status (*reduce4)(void *user, const int *shape, float *dst, const int *ds, const float *g,
                           const float *other, const int *os, float sign);
    /* compute */
    /* C = alpha op(A) op(B) + beta C as attn_sgemm, for batch matrices at
       element strides sA, sB, sC apart (beta 0 never reads C) */
    attn_status (*gemm)(void *user, int transA, int transB, int M, int N, int K, float alpha,
                        const float *A, int lda, ptrdiff_t sA, const float *B, int ldb, ptrdiff_t sB,
                        float beta, float *C, int ldc, ptrdiff_t sC, int batch);
    /* y = s x, relu(x), gelu(x) (erf form), tanh(x) */
    attn_status (*unary)(void *user, int op, size_t n, float s, const float *x, float *y);
    /* dx += dy f'(x); y = f(x) (tanh uses it) */
    attn_status (*unary_backward)(void *user, int op, size_t n, float s, const float *x, const float *y,
                                  const float *dy, float *dx);
    /* y = or += x * keep / (1 - p), keep from the hash of attn.h's attn_dropout (same mask) */
    attn_status (*dropout)(void *user, uint64_t seed, float p, size_t n, const float *x, float *y,
                           int accumulate);
    /* rows of cols: y = softmax(x) or log_softmax(x) (log != 0) */
    attn_status (*softmax)(void *user, int log, int rows, int cols, const float *x, float *y);
    /* dx += softmax backward from y (the forward's output) and dy */
    attn_status (*softmax_backward)(void *user, int log, int rows, int cols, const float *y, const float *dy,
                                    float *dx);
    /* LayerNorm (rms 0) or RMSNorm (rms 1, beta and mean unused) of rows; gamma,
       beta may be NULL; mean and rstd (rows each) receive the statistics */
    attn_status (*norm_forward)(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                const float *beta, float eps, float *y, float *mean, float *rstd);
    /* dx, dgamma, dbeta += (any may be NULL) */
    attn_status (*norm_backward)(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 float *dgamma, float *dbeta);
    /* y[i, :] = w[idx[i], :] (idx in backend memory, checked by attn.h) */
    attn_status (*embedding)(void *user, size_t n, int dim, const int32_t *idx, const float *w, float *y);
    /* dw[idx[i], :] += dy[i, :] */
    attn_status (*embedding_backward)(void *user, size_t n, int dim, const int32_t *idx, const float *dy,
                                      float *dw);
    /* loss[0] = mean over rows whose target is not ignore of
       -((1 - ls) logp[t] + ls mean(logp)); logp (rows x C) is kept; NaN when
       every row is ignored */
    attn_status (*cross_entropy)(void *user, int rows, int C, const float *logits, const int32_t *targets,
                                 int ignore, float ls, float *logp, float *loss);
    /* dlogits += d loss / d logits, dloss a one-float backend address */
    attn_status (*cross_entropy_backward)(void *user, int rows, int C, const float *logp,
                                          const int32_t *targets, int ignore, float ls, const float *dloss,
                                          float *dlogits);
    /* attn_attention_forward / backward, the desc's mask arrays in backend memory */
    attn_status (*attention)(void *user, const attn_attention_desc *desc, const float *q, const float *k,
                             const float *v, float *o, float *lse);
    attn_status (*attention_backward)(void *user, const attn_attention_desc *desc, const float *q,
                                      const float *k, const float *v, const float *o, const float *lse,
                                      const float *dout, float *dq, float *dk, float *dv);
    /* out[0] = sum of x (squares != 0: of x^2) / divide_by, rounded once, one
       float in backend memory (a mean is as exact as a sum) */
    attn_status (*sum)(void *user, size_t n, const float *x, int squares, double divide_by, float *out);
    /* y += s[0] / divide_by, a float division as PyTorch's by a scalar (s one float in
       backend memory) */
    attn_status (*add_scalar)(void *user, size_t n, const float *s, float divide_by, float *y);
    /* one optimizer step over n elements */
    attn_status (*optim_update)(void *user, size_t n, const attn_backend_update *u, float *w, const float *g,
                                float *m, float *v);
};

/* The CPU kernels behind the table, the very functions a context without a
   backend runs; its "memory" is ATTN_MALLOC'ed host memory. A context copies
   the table it is given, so this one may be a local variable. */
ATTN_API attn_backend attn_backend_cpu(void);
/* The first entry a table lacks ("gemm"), NULL when it has them all.
   attn_context_create refuses an incomplete table. */
ATTN_API const char *attn_backend_missing(const attn_backend *be);
/* The context's copy of its backend table, NULL for a context without one. */
ATTN_API const attn_backend *attn_context_backend(const attn_context *ctx);

/* ============================================================================
   6. Tensors (declarations)
   ========================================================================= */
#define ATTN_MAX_DIMS 4

typedef enum attn_dtype { ATTN_F32 = 0 } attn_dtype;

/* Element (i0, i1, ...) is data[i0*stride[0] + i1*stride[1] + ...]. Views share
   data with the tensor they come from. Tensors live in their context's arena. */
typedef struct attn_tensor {
    float *data;
    int ndim;                     /* 0 (a scalar) .. ATTN_MAX_DIMS */
    int shape[ATTN_MAX_DIMS];     /* unused dims are 1 */
    int stride[ATTN_MAX_DIMS];    /* in elements; unused dims are 0 */
    attn_dtype dtype;
    const attn_backend *backend;  /* where data lives (section 5); NULL: host memory */
    /* autodiff (section 7): */
    float *grad;                  /* d loss / d this, contiguous row-major; NULL until needed */
    int requires_grad;            /* parameters, and results of ops on them while grad is on */
    struct attn_node *node;       /* the op that made it (NULL for leaves) */
} attn_tensor;

/* A zero-filled contiguous tensor. NULL (and an error on ctx) on bad shape or no room. */
ATTN_API attn_tensor *attn_tensor_new(attn_context *ctx, int ndim, const int *shape);
ATTN_API attn_tensor *attn_tensor_1d(attn_context *ctx, int n0);
ATTN_API attn_tensor *attn_tensor_2d(attn_context *ctx, int n0, int n1);
ATTN_API attn_tensor *attn_tensor_3d(attn_context *ctx, int n0, int n1, int n2);
ATTN_API attn_tensor *attn_tensor_4d(attn_context *ctx, int n0, int n1, int n2, int n3);
/* A contiguous tensor over caller memory (not copied, not owned). */
ATTN_API attn_tensor *attn_tensor_wrap(attn_context *ctx, int ndim, const int *shape, float *data);
/* Arena bytes attn_tensor_new takes for this shape, padding included (an upper
   bound to size a fixed buffer with, next to attn_context_overhead); 0 if the
   shape is invalid. */
ATTN_API size_t attn_tensor_bytes(int ndim, const int *shape);
/* Number of elements. */
ATTN_API size_t attn_tensor_numel(const attn_tensor *t);
/* 1 when the elements are dense in row-major order. */
ATTN_API int attn_tensor_is_contiguous(const attn_tensor *t);
/* Pointer to one element; index has t->ndim entries. NULL when out of range. */
ATTN_API float *attn_tensor_elem(const attn_tensor *t, const int *index);
/* The views (attn_reshape, attn_transpose, attn_slice, attn_detach) are in section 7. */
/* t itself when contiguous, else a contiguous copy. */
ATTN_API attn_tensor *attn_tensor_contiguous(attn_context *ctx, const attn_tensor *t);
/* Copy src into dst (same shape, any strides). */
ATTN_API attn_status attn_tensor_copy(attn_context *ctx, attn_tensor *dst, const attn_tensor *src);
/* Set every element to value. */
ATTN_API void attn_tensor_fill(attn_tensor *t, float value);

/* Seed a generator; equal seeds give equal streams on every platform. */
ATTN_API void attn_rng_seed(attn_rng *rng, uint64_t seed);
/* 32 random bits. */
ATTN_API uint32_t attn_rng_u32(attn_rng *rng);
/* Uniform in [0, 1), 24 bits. */
ATTN_API float attn_rng_uniform(attn_rng *rng);
/* Standard normal (Box-Muller). */
ATTN_API float attn_rng_normal(attn_rng *rng);

/* Fill t from the context's RNG (torch.nn.init semantics). Fans follow PyTorch:
   fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field,
   which needs ndim >= 2. */
ATTN_API attn_status attn_init_uniform(attn_context *ctx, attn_tensor *t, float lo, float hi);
ATTN_API attn_status attn_init_normal(attn_context *ctx, attn_tensor *t, float mean, float std);
ATTN_API attn_status attn_init_xavier_uniform(attn_context *ctx, attn_tensor *t, float gain);
ATTN_API attn_status attn_init_xavier_normal(attn_context *ctx, attn_tensor *t, float gain);
/* Kaiming with leaky_relu slope a and fan_in mode; a = sqrt(5) is nn.Linear's default. */
ATTN_API attn_status attn_init_kaiming_uniform(attn_context *ctx, attn_tensor *t, float a);
ATTN_API attn_status attn_init_kaiming_normal(attn_context *ctx, attn_tensor *t, float a);

/* ---- data between host memory and a context's (backend) memory ---- */
/* Copy n = numel floats, row-major, from host memory into t (any strides) or
   out of it; plain copies without a backend. */
ATTN_API attn_status attn_tensor_upload(attn_context *ctx, attn_tensor *t, const float *host, size_t n);
ATTN_API attn_status attn_tensor_download(attn_context *ctx, const attn_tensor *t, float *host, size_t n);
/* t's grad into host (n = numel); zeros when t has no grad yet. */
ATTN_API attn_status attn_tensor_download_grad(attn_context *ctx, const attn_tensor *t, float *host, size_t n);

/* ============================================================================
   7. Autodiff (declarations)
   Define-by-run: every op below computes at once and, when grad is on and an
   input requires grad, records a node on the context's tape (in its arena).
   attn_backward walks the tape in reverse and accumulates into ->grad.
   Grads are contiguous row-major buffers of the tensor's shape. Parameter
   grads live as long as the parameter; other grads are made in the arena by
   the backward pass and go away with the next attn_context_reset.
   ========================================================================= */
typedef struct attn_node attn_node;
typedef struct attn_param attn_param;

/* Turn recording on or off (on by default); returns the previous setting.
   Off: ops record nothing and allocate no more than their results. */
ATTN_API int attn_grad_enable(attn_context *ctx, int on);
/* Where the arena and the tape are now, and going back there in O(1): drops
   every tensor, node and activation grad made since (parameters and optimizers
   made before stay; those registered after are dropped). Use these rather than
   the raw arena calls once ops are recorded. */
typedef struct attn_context_pos { attn_arena_pos arena; attn_node *tape; attn_param *params_last; } attn_context_pos;
ATTN_API attn_context_pos attn_context_mark(const attn_context *ctx);
ATTN_API void attn_context_reset(attn_context *ctx, attn_context_pos pos);
/* Backpropagate from a scalar (one-element) loss: adds d loss / d t into the
   grad of every tensor t that requires grad. Frees the loss's graph (other
   graphs on the tape stay): a second backward through it is an error (use
   attn_backward_ex with retain). */
ATTN_API attn_status attn_backward(attn_context *ctx, attn_tensor *loss);
/* seed: d ? / d out (numel floats, row-major), required when out is not a
   scalar; retain != 0 keeps the graph for another backward. */
ATTN_API attn_status attn_backward_ex(attn_context *ctx, attn_tensor *out, const float *seed, int retain);
/* A view of t that shares its data but is cut from the graph. */
ATTN_API attn_tensor *attn_detach(attn_context *ctx, const attn_tensor *t);

/* Named parameters (their names are what files save and load). */
struct attn_param {
    const char *name;
    attn_tensor *tensor;          /* requires_grad = 1, grad allocated and zeroed */
    attn_param *next;             /* in registration order */
};
/* Register t as a parameter named name (copied; unique per context). */
ATTN_API attn_status attn_param_add(attn_context *ctx, const char *name, attn_tensor *t);
/* A new zero-filled tensor registered as a parameter; NULL and an error on failure. */
ATTN_API attn_tensor *attn_param_new(attn_context *ctx, const char *name, int ndim, const int *shape);
/* The first parameter (follow ->next), or NULL. */
ATTN_API attn_param *attn_params(attn_context *ctx);
/* The parameter with this name, or NULL. */
ATTN_API attn_param *attn_param_find(attn_context *ctx, const char *name);
/* Set every parameter's grad to zero. */
ATTN_API void attn_params_zero_grad(attn_context *ctx);

/* Ops. Each returns a new tensor (NULL and an error on ctx on failure). Inputs
   may be strided views; outputs are contiguous except for the views (reshape,
   transpose, slice, detach), which share data. Binary ops broadcast as NumPy
   and PyTorch do (shapes aligned on the right, a dim of 1 stretches). */
ATTN_API attn_tensor *attn_add(attn_context *ctx, attn_tensor *a, attn_tensor *b);
ATTN_API attn_tensor *attn_sub(attn_context *ctx, attn_tensor *a, attn_tensor *b);
ATTN_API attn_tensor *attn_mul(attn_context *ctx, attn_tensor *a, attn_tensor *b);
/* s * x */
ATTN_API attn_tensor *attn_scale(attn_context *ctx, attn_tensor *x, float s);
/* Sum or mean of all elements: a scalar (ndim 0). */
ATTN_API attn_tensor *attn_sum(attn_context *ctx, attn_tensor *x);
ATTN_API attn_tensor *attn_mean(attn_context *ctx, attn_tensor *x);
/* a (..., M, K) @ b (..., K, N); b may also be 2-D and shared by every batch. */
ATTN_API attn_tensor *attn_matmul(attn_context *ctx, attn_tensor *a, attn_tensor *b);
/* x (..., in) @ w^T + bias: w is (out, in) as in nn.Linear; bias (out) or NULL. */
ATTN_API attn_tensor *attn_linear(attn_context *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *bias);
/* Views: same data, no copy. Each records a node only when a grad flows
   (recording on and x requires grad); the view of attn_detach(ctx, x) never
   records. */
/* x with a new shape; one dim may be -1. A non-contiguous x is first made
   contiguous (a recorded copy, as attn_contiguous), and the result views that copy. */
ATTN_API attn_tensor *attn_reshape(attn_context *ctx, attn_tensor *x, int ndim, const int *shape);
/* x with dims d0 and d1 swapped. */
ATTN_API attn_tensor *attn_transpose(attn_context *ctx, attn_tensor *x, int d0, int d1);
/* [start, end) of x along dim. */
ATTN_API attn_tensor *attn_slice(attn_context *ctx, attn_tensor *x, int dim, int start, int end);
/* A contiguous copy (recorded). */
ATTN_API attn_tensor *attn_contiguous(attn_context *ctx, attn_tensor *x);
/* xs[0..n-1] joined along dim (all other dims equal). */
ATTN_API attn_tensor *attn_concat(attn_context *ctx, attn_tensor *const *xs, int n, int dim);
/* Rows of weight (V, D) picked by indices (ndim dims, shape[]): (shape..., D).
   An index outside [0, V) is an error. */
ATTN_API attn_tensor *attn_embedding(attn_context *ctx, attn_tensor *weight, const int32_t *indices,
                                     int ndim, const int *shape);
/* Along the last dim. */
ATTN_API attn_tensor *attn_softmax(attn_context *ctx, attn_tensor *x);
ATTN_API attn_tensor *attn_log_softmax(attn_context *ctx, attn_tensor *x);
/* LayerNorm / RMSNorm over the last dim; weight and bias (last dim) may be NULL. */
ATTN_API attn_tensor *attn_layernorm(attn_context *ctx, attn_tensor *x, attn_tensor *weight,
                                     attn_tensor *bias, float eps);
ATTN_API attn_tensor *attn_rmsnorm(attn_context *ctx, attn_tensor *x, attn_tensor *weight, float eps);
ATTN_API attn_tensor *attn_gelu(attn_context *ctx, attn_tensor *x);
ATTN_API attn_tensor *attn_relu(attn_context *ctx, attn_tensor *x);
ATTN_API attn_tensor *attn_tanh(attn_context *ctx, attn_tensor *x);
/* Masks and options of attn_attention (zero: no mask, no dropout, 1/sqrt(d)). */
typedef struct attn_attention_opts {
    int causal;                            /* query i sees keys j <= i + Tk - Tq */
    const int *key_lengths;                /* (B): keys at or past the length are masked */
    const unsigned char *key_padding_mask; /* (B, Tk): nonzero masks the key (PyTorch's True) */
    attn_tensor *mask;                     /* additive float mask (Tq, Tk), (B, 1|H, Tq, Tk) or
                                              (1, 1|H, Tq, Tk); no gradient flows into it */
    float dropout;                         /* on the attention weights, when training */
    int training;
    float scale;                           /* 0: 1 / sqrt(head dim) */
} attn_attention_opts;
/* Multi-head scaled-dot-product attention, fused (see attn_attention_forward):
   q (B, Tq, H*dh), k (B, Tk, H*dh), v (B, Tk, H*dv) -> (B, Tq, H*dv), heads
   split in place. opts may be NULL. Never materialises the weights. */
ATTN_API attn_tensor *attn_attention(attn_context *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                     int heads, const attn_attention_opts *opts);
/* The attention weights (B, H, Tq, Tk) of the same call, for looking at them
   (they are materialised only here; not recorded, dropout not applied). */
ATTN_API attn_tensor *attn_attention_weights(attn_context *ctx, attn_tensor *q, attn_tensor *k, int heads,
                                             const attn_attention_opts *opts);
/* Zero each element with probability p and scale the rest by 1/(1-p), when
   training != 0 (else x itself). The mask comes from a counter-based generator
   seeded from the context's RNG, so it does not depend on the thread count. */
ATTN_API attn_tensor *attn_dropout(attn_context *ctx, attn_tensor *x, float p, int training);

/* ---- losses: ops like the others, with a scalar result ---- */
/* Mean cross-entropy of logits (N, C) against class indices targets (N), as
   torch.nn.functional.cross_entropy: rows whose target is ignore_index count
   for nothing (the mean is over the others; all ignored gives NaN, as in
   PyTorch); label_smoothing in [0, 1]. A target outside [0, C) that is not
   ignore_index is an error. Returns a scalar. */
ATTN_API attn_tensor *attn_cross_entropy(attn_context *ctx, attn_tensor *logits, const int32_t *targets,
                                         int ignore_index, float label_smoothing);
/* mean((a - b)^2), a scalar. Shapes must be equal. */
ATTN_API attn_tensor *attn_mse(attn_context *ctx, attn_tensor *a, attn_tensor *b);

/* ============================================================================
   8. Layers (declarations)
   Modules mirror torch.nn with batch_first=True: inputs are (B, T, d). Their
   parameters are registered under PyTorch's state_dict names, below a prefix
   ("" for none, else e.g. "encoder.layers.0."), and initialised as PyTorch
   does. Descs are plain structs where zero means PyTorch's default.
   ========================================================================= */
typedef struct attn_mha_desc {
    int embed_dim, heads;
    int kdim, vdim;        /* 0: embed_dim */
    int no_bias;           /* 1: bias=False */
    float dropout;         /* on the attention weights */
} attn_mha_desc;

/* nn.MultiheadAttention: in_proj_weight (3E, E) and in_proj_bias (3E) when
   kdim = vdim = E, else q_proj_weight, k_proj_weight, v_proj_weight;
   out_proj.weight (E, E), out_proj.bias (E). */
typedef struct attn_mha {
    int embed_dim, heads, kdim, vdim;
    float dropout;
    attn_tensor *in_proj_weight, *q_proj_weight, *k_proj_weight, *v_proj_weight;
    attn_tensor *in_proj_bias, *out_proj_weight, *out_proj_bias; /* biases NULL with no_bias */
} attn_mha;

/* Register and initialise an MHA's parameters under prefix. */
ATTN_API attn_status attn_mha_init(attn_context *ctx, attn_mha *m, const char *prefix, const attn_mha_desc *desc);
/* query (B, Tq, E), key (B, Tk, kdim), value (B, Tk, vdim) -> (B, Tq, E).
   opts gives the masks and training; the dropout is the module's (opts->dropout
   is ignored here). */
ATTN_API attn_tensor *attn_mha_forward(attn_context *ctx, const attn_mha *m, attn_tensor *query, attn_tensor *key,
                                       attn_tensor *value, const attn_attention_opts *opts);

/* Keys and values of the positions decoded so far, for incremental decoding:
   each step attends over the cache plus itself, and equals full recomputation. */
typedef struct attn_kv_cache {
    attn_tensor *k, *v;    /* (B, capacity, E): projected keys and values */
    int length;            /* positions filled */
} attn_kv_cache;
/* A cache for batch x capacity positions of m (allocated in the arena). */
ATTN_API attn_status attn_kv_cache_init(attn_context *ctx, attn_kv_cache *cache, const attn_mha *m, int batch,
                                        int capacity);
/* Self-attention of x (B, T, E), the next T positions, over the cache (which
   grows by T); causal within the new positions. Not recorded for autodiff. */
ATTN_API attn_tensor *attn_mha_forward_cached(attn_context *ctx, const attn_mha *m, attn_tensor *x,
                                              attn_kv_cache *cache);

typedef enum attn_activation { ATTN_ACT_RELU = 0, ATTN_ACT_GELU = 1 } attn_activation;

/* nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / the stacks and
   nn.Transformer, with batch_first=True. */
typedef struct attn_layer_desc {
    int d_model, heads;
    int dim_feedforward;   /* 0: 2048 */
    float dropout;         /* 0 here means no dropout (PyTorch's default is 0.1) */
    attn_activation activation;
    int norm_first;
    float layer_norm_eps;  /* 0: 1e-5 */
    int num_layers;        /* stacks, and nn.Transformer's encoder; 0: 6 */
    int num_decoder_layers;/* nn.Transformer's decoder; 0: num_layers */
    int final_norm;        /* stacks: a LayerNorm "norm" after the last layer */
} attn_layer_desc;

typedef struct attn_layernorm_params { attn_tensor *weight, *bias; float eps; } attn_layernorm_params;

typedef struct attn_encoder_layer {
    attn_layer_desc desc;
    attn_mha self_attn;
    attn_tensor *linear1_weight, *linear1_bias, *linear2_weight, *linear2_bias;
    attn_layernorm_params norm1, norm2;
} attn_encoder_layer;

typedef struct attn_decoder_layer {
    attn_layer_desc desc;
    attn_mha self_attn, multihead_attn;
    attn_tensor *linear1_weight, *linear1_bias, *linear2_weight, *linear2_bias;
    attn_layernorm_params norm1, norm2, norm3;
} attn_decoder_layer;

/* Masks of a layer's attentions (NULL: none). */
typedef struct attn_layer_masks {
    const attn_attention_opts *self_attn;   /* src_mask/tgt_mask and key padding of the input */
    const attn_attention_opts *cross_attn;  /* decoder: memory_mask and memory key padding */
} attn_layer_masks;

ATTN_API attn_status attn_encoder_layer_init(attn_context *ctx, attn_encoder_layer *l, const char *prefix,
                                             const attn_layer_desc *desc);
ATTN_API attn_tensor *attn_encoder_layer_forward(attn_context *ctx, const attn_encoder_layer *l, attn_tensor *src,
                                                 const attn_layer_masks *masks, int training);
ATTN_API attn_status attn_decoder_layer_init(attn_context *ctx, attn_decoder_layer *l, const char *prefix,
                                             const attn_layer_desc *desc);
ATTN_API attn_tensor *attn_decoder_layer_forward(attn_context *ctx, const attn_decoder_layer *l, attn_tensor *tgt,
                                                 attn_tensor *memory, const attn_layer_masks *masks, int training);

/* Stacks: "layers.N." and, with final_norm, "norm." under the prefix; the
   layers live in caller arrays of desc->num_layers entries. */
typedef struct attn_encoder {
    attn_layer_desc desc;
    attn_encoder_layer *layers;
    attn_layernorm_params norm; /* weight NULL without final_norm */
} attn_encoder;
typedef struct attn_decoder {
    attn_layer_desc desc;
    attn_decoder_layer *layers;
    attn_layernorm_params norm;
} attn_decoder;
ATTN_API attn_status attn_encoder_init(attn_context *ctx, attn_encoder *e, attn_encoder_layer *layers,
                                       const char *prefix, const attn_layer_desc *desc);
ATTN_API attn_tensor *attn_encoder_forward(attn_context *ctx, const attn_encoder *e, attn_tensor *src,
                                           const attn_layer_masks *masks, int training);
ATTN_API attn_status attn_decoder_init(attn_context *ctx, attn_decoder *d, attn_decoder_layer *layers,
                                       const char *prefix, const attn_layer_desc *desc);
ATTN_API attn_tensor *attn_decoder_forward(attn_context *ctx, const attn_decoder *d, attn_tensor *tgt,
                                           attn_tensor *memory, const attn_layer_masks *masks, int training);

/* nn.Transformer: "encoder." and "decoder." stacks, each with its final norm. */
typedef struct attn_transformer {
    attn_encoder encoder;
    attn_decoder decoder;
} attn_transformer;
/* enc_layers / dec_layers: arrays of num_layers / num_decoder_layers entries. */
ATTN_API attn_status attn_transformer_init(attn_context *ctx, attn_transformer *t, attn_encoder_layer *enc_layers,
                                           attn_decoder_layer *dec_layers, const char *prefix,
                                           const attn_layer_desc *desc);
/* masks->self_attn of enc_masks: src mask/padding; of dec_masks: tgt mask/padding,
   and dec_masks->cross_attn: memory mask/padding. */
ATTN_API attn_tensor *attn_transformer_forward(attn_context *ctx, const attn_transformer *t, attn_tensor *src,
                                               attn_tensor *tgt, const attn_layer_masks *enc_masks,
                                               const attn_layer_masks *dec_masks, int training);

/* A decoder-only language model (GPT-style): token embedding + learned
   positions, num_layers pre-LN blocks with causal self-attention (encoder
   layers with norm_first = 1), a final LayerNorm and a linear head, tied to
   the token embedding or not. Names: tok_emb.weight, pos_emb.weight,
   layers.N.*, norm.*, head.weight (untied). */
typedef struct attn_lm_desc {
    int vocab, max_len;    /* tokens and positions */
    attn_layer_desc layer; /* d_model, heads, dim_feedforward, dropout, activation, num_layers */
    int untied;            /* 1: a separate head.weight; 0: logits use tok_emb.weight */
} attn_lm_desc;
typedef struct attn_lm {
    attn_lm_desc desc;
    attn_tensor *tok_emb, *pos_emb, *head; /* head == tok_emb when tied */
    attn_encoder_layer *layers;            /* desc.layer.num_layers of them */
    attn_layernorm_params norm;
} attn_lm;
ATTN_API attn_status attn_lm_init(attn_context *ctx, attn_lm *lm, attn_encoder_layer *layers, const char *prefix,
                                  const attn_lm_desc *desc);
/* Logits (B, T, vocab) for tokens (B, T), row-major. */
ATTN_API attn_tensor *attn_lm_forward(attn_context *ctx, const attn_lm *lm, const int32_t *tokens, int batch, int T,
                                      int training);

/* Positional encodings. Sinusoidal, as in "Attention Is All You Need":
   pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(same). A (T, d) table. */
ATTN_API attn_tensor *attn_sinusoidal_table(attn_context *ctx, int T, int d);
/* x (B, T, d) + pe[start .. start+T) (recorded; pe is a constant) */
ATTN_API attn_tensor *attn_add_positions(attn_context *ctx, attn_tensor *x, attn_tensor *pe, int start);
/* Rotary embedding of x (B, T, H*dh) for positions start..start+T-1: in each
   head, pairs (i, i + dh/2) rotate by angle p * base^(-2i/dh) (the GPT-NeoX /
   LLaMA "rotate half" layout); base 0 means 10000. Recorded (the backward
   rotates back). */
ATTN_API attn_tensor *attn_rope(attn_context *ctx, attn_tensor *x, int heads, int start, float base);

/* ============================================================================
   9. Training (declarations): optimizers, clipping, schedules
   ========================================================================= */
typedef enum attn_optim_kind {
    ATTN_OPTIM_SGD = 0, ATTN_OPTIM_ADAM, ATTN_OPTIM_ADAMW, ATTN_OPTIM_ADAGRAD
} attn_optim_kind;

/* torch.optim's semantics, field for field. Zero means PyTorch's default for
   betas and eps; weight_decay is taken as given (0 = none; note PyTorch's AdamW
   defaults to 0.01). The numbers are doubles, like the Python floats PyTorch
   takes: scalars such as 1 - beta1 are formed in double and rounded to float
   where PyTorch rounds them, so trajectories match PyTorch's. */
typedef struct attn_optim_desc {
    attn_optim_kind kind;
    double lr;
    double weight_decay;  /* SGD, Adam, Adagrad: L2 added to the grad; AdamW: decoupled */
    double momentum;      /* SGD */
    double dampening;     /* SGD */
    int nesterov;         /* SGD */
    double beta1, beta2;  /* Adam, AdamW (0: 0.9, 0.999) */
    double eps;           /* Adam, AdamW (0: 1e-8), Adagrad (0: 1e-10) */
    double lr_decay;      /* Adagrad */
    double initial_accumulator_value; /* Adagrad */
} attn_optim_desc;

typedef struct attn_optim attn_optim;
/* An optimizer over every parameter registered so far; its state lives in the
   arena (make it before the first attn_context_mark of the training loop). */
ATTN_API attn_optim *attn_optim_create(attn_context *ctx, const attn_optim_desc *desc);
/* One update of every parameter from its grad. */
ATTN_API attn_status attn_optim_step(attn_optim *opt);
/* The learning rate for the next steps (e.g. from attn_lr_at). */
ATTN_API void attn_optim_set_lr(attn_optim *opt, double lr);
ATTN_API double attn_optim_get_lr(const attn_optim *opt);
/* Steps taken so far. */
ATTN_API int attn_optim_steps(const attn_optim *opt);
/* Scale all parameter grads so their global L2 norm is at most max_norm, as
   torch.nn.utils.clip_grad_norm_ (coefficient max_norm / (norm + 1e-6), only
   when below 1). Returns the norm before clipping. */
ATTN_API float attn_clip_grad_norm(attn_context *ctx, float max_norm);

typedef enum attn_lr_kind {
    ATTN_LR_CONSTANT = 0,
    ATTN_LR_WARMUP_COSINE, /* linear warmup over warmup_steps, then cosine down to min_lr at total_steps */
    ATTN_LR_STEP           /* lr * gamma^(step / step_size), as torch.optim.lr_scheduler.StepLR */
} attn_lr_kind;
typedef struct attn_lr_desc {
    attn_lr_kind kind;
    double lr;            /* the base (peak) rate */
    int warmup_steps, total_steps;
    double min_lr;
    int step_size;
    double gamma;
} attn_lr_desc;
/* The learning rate at step (0-based). Warmup: lr * (step + 1) / warmup_steps;
   cosine: min_lr + (lr - min_lr) (1 + cos(pi t)) / 2 with t the fraction of the
   post-warmup steps done (held at min_lr after total_steps). */
ATTN_API double attn_lr_at(const attn_lr_desc *desc, int step);

/* ============================================================================
   10. Files (declarations)
   Parsers and writers work on memory buffers, so they run under ATTN_NO_STDIO;
   the *_file helpers (stdio) vanish there. Every length, offset, shape and
   name that comes from a file is checked: bad input is an error with a
   message, never a crash, a hang or an out-of-bounds read.
   ========================================================================= */
/* One tensor of a safetensors image. data points into the caller's buffer. */
typedef struct attn_st_entry {
    const char *name;               /* NUL-terminated copy in the arena */
    int dtype;                      /* ATTN_ST_F32, ATTN_ST_F16, ATTN_ST_BF16 */
    int ndim;
    int shape[ATTN_MAX_DIMS];
    const unsigned char *data;      /* little-endian elements */
    size_t nbytes;
} attn_st_entry;
enum { ATTN_ST_F32 = 0, ATTN_ST_F16 = 1, ATTN_ST_BF16 = 2 };

typedef struct attn_safetensors {
    int count;
    attn_st_entry *entries;         /* in the arena, in file order */
    int *by_name;                   /* entry indices sorted by name (for lookups) */
    int meta_count;                 /* "__metadata__" string pairs */
    const char **meta_keys, **meta_values;
} attn_safetensors;

/* Index a safetensors image (8-byte header length, JSON header, data). The
   entries point into buf, which must outlive them. Other dtypes (I64, F64...)
   are an error naming the tensor. */
ATTN_API attn_status attn_safetensors_parse(attn_context *ctx, const void *buf, size_t size, attn_safetensors *out);
/* The entry with this name, or NULL. */
ATTN_API const attn_st_entry *attn_safetensors_find(const attn_safetensors *st, const char *name);
/* Copy entry e into t (same shape; F16 and BF16 are converted to f32). */
ATTN_API attn_status attn_safetensors_read(attn_context *ctx, const attn_st_entry *e, attn_tensor *t);

/* Load every registered parameter from a safetensors image by name. Missing
   parameters, tensors of the wrong shape, and (when strict) tensors that are
   not parameters are errors that name the tensor; nothing is changed then. */
ATTN_API attn_status attn_params_load(attn_context *ctx, const void *buf, size_t size, int strict);
/* Bytes of the safetensors image attn_params_save writes (F32, every parameter). */
ATTN_API size_t attn_params_save_bytes(attn_context *ctx);
/* Write every parameter (PyTorch's state_dict names) as safetensors into buf. */
ATTN_API attn_status attn_params_save(attn_context *ctx, void *buf, size_t size);

/* .npy (format versions 1-3, little-endian f4, C order). The tensor and its
   data are copied into the arena. */
ATTN_API attn_tensor *attn_npy_parse(attn_context *ctx, const void *buf, size_t size);
/* Bytes of t as .npy (version 1.0), and writing them. */
ATTN_API size_t attn_npy_bytes(const attn_tensor *t);
ATTN_API attn_status attn_npy_write(attn_context *ctx, const attn_tensor *t, void *buf, size_t size);

/* Checkpoints: parameters, the optimizer's state, its step and the context's
   RNG, as one safetensors image ("optim.m.<name>", "optim.v.<name>", and the
   step and RNG in __metadata__). Resuming gives bit-identical training. */
ATTN_API size_t attn_checkpoint_bytes(attn_context *ctx, const attn_optim *opt);
ATTN_API attn_status attn_checkpoint_save(attn_context *ctx, const attn_optim *opt, void *buf, size_t size);
ATTN_API attn_status attn_checkpoint_load(attn_context *ctx, attn_optim *opt, const void *buf, size_t size);

#ifndef ATTN_NO_STDIO
/* The same from and to files. */
ATTN_API attn_status attn_params_load_file(attn_context *ctx, const char *path, int strict);
ATTN_API attn_status attn_params_save_file(attn_context *ctx, const char *path);
ATTN_API attn_tensor *attn_npy_load_file(attn_context *ctx, const char *path);
ATTN_API attn_status attn_npy_save_file(attn_context *ctx, const attn_tensor *t, const char *path);
ATTN_API attn_status attn_checkpoint_save_file(attn_context *ctx, const attn_optim *opt, const char *path);
ATTN_API attn_status attn_checkpoint_load_file(attn_context *ctx, attn_optim *opt, const char *path);
#endif

#ifdef __cplusplus
}
#endif
#endif /* ATTN_H_INCLUDED */

/* ############################################################################
   Implementation
   ######################################################################### */
#ifdef ATTN_IMPLEMENTATION
#ifndef ATTN_IMPLEMENTATION_DONE
#define ATTN_IMPLEMENTATION_DONE

#include <string.h>
#include <math.h>
#include <stdarg.h>

/* ============================================================================
   1. Config and platform
   ========================================================================= */
#if defined(ATTN_MALLOC) || defined(ATTN_REALLOC) || defined(ATTN_FREE)
#  if !defined(ATTN_MALLOC) || !defined(ATTN_REALLOC) || !defined(ATTN_FREE)
#    error "attn.h: define all of ATTN_MALLOC, ATTN_REALLOC and ATTN_FREE, or none of them"
#  endif
#elif defined(ATTN_NO_MALLOC)
#  define ATTN_MALLOC(sz, u) ((void)(u), (void)(sz), (void *)0)
#  define ATTN_REALLOC(p, sz, u) ((void)(u), (void)(p), (void)(sz), (void *)0)
#  define ATTN_FREE(p, u) ((void)(u), (void)(p))
#else
#  include <stdlib.h>
#  define ATTN_MALLOC(sz, u) ((void)(u), malloc(sz))
#  define ATTN_REALLOC(p, sz, u) ((void)(u), realloc(p, sz))
#  define ATTN_FREE(p, u) ((void)(u), free(p))
#endif

#ifndef ATTN_ASSERT
#  include <assert.h>
#  define ATTN_ASSERT(x) assert(x)
#endif

#ifdef ATTN_OPENMP
#  include <omp.h>
#endif

/* The thread pool (attn_threads_create) is built where there are threads to
   build it on: native Windows threads on _WIN32 (so mingw needs no
   winpthreads), pthreads on Unix-likes. Bare metal has neither and gets none. */
#if !defined(ATTN_NO_THREADS)
#  if defined(_WIN32)
#    define ATTN__POOL_WIN32 1
#  elif defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#    define ATTN__POOL_POSIX 1
#  endif
#endif
#if defined(ATTN__POOL_WIN32)
   /* sokol's choice: lean (no winsock, no rpcndr.h macros such as `small`) and
      NOMINMAX (C++ code after this include keeps std::min and std::max) */
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <windows.h>
#  define ATTN__POOL 1
#elif defined(ATTN__POOL_POSIX)
#  include <pthread.h>
#  include <unistd.h>
#  define ATTN__POOL 1
#endif
#ifndef ATTN_THREADS_SPIN
#  define ATTN_THREADS_SPIN 256
#endif

/* GEMM blocking. MC must be a multiple of every micro-kernel's MR (6, 8, 4) and
   NC of every NR (16, 8). KC x NC floats of B stay packed (in L2), MC x KC of A. */
#ifndef ATTN_GEMM_KC
#  define ATTN_GEMM_KC 256
#endif
#ifndef ATTN_GEMM_MC
#  define ATTN_GEMM_MC 72
#endif
#ifndef ATTN_GEMM_NC
#  define ATTN_GEMM_NC 256
#endif
#if ATTN_GEMM_MC % 24 != 0 || ATTN_GEMM_NC % 16 != 0 || ATTN_GEMM_KC < 1
#  error "attn.h: ATTN_GEMM_MC must be a multiple of 24 and ATTN_GEMM_NC of 16"
#endif

/* Which SIMD sets are compiled in. x86-64 kernels carry target attributes and
   are chosen at run time, so a plain `cc -O2` build still uses AVX-512 or AVX2
   where the CPU has it. tcc has no <immintrin.h>: it gets the reference kernels. */
#if !defined(ATTN_NO_SIMD)
#  if (defined(__x86_64__) || defined(_M_X64)) && !defined(__TINYC__)
#    define ATTN__X86 1
#  elif defined(__ARM_NEON) || defined(__ARM_NEON__) || defined(_M_ARM64)
#    define ATTN__NEON 1
#  endif
#endif

#if defined(ATTN__X86)
#  include <immintrin.h>
#  if defined(_MSC_VER)
#    include <intrin.h>
#  endif
#  if defined(_MSC_VER) && defined(__clang__)
     /* clang's <immintrin.h> hides AVX/AVX2/FMA on MSVC targets unless the whole
        file is built for them; the target attribute below needs them declared */
#    include <avxintrin.h>
#    include <avx2intrin.h>
#    include <fmaintrin.h>
#    if !defined(ATTN_NO_AVX512)
#      include <smmintrin.h> /* _MM_FROUND_*, which avx512fintrin.h uses */
#      include <avx512fintrin.h>
#      include <avx512dqintrin.h>
#    endif
#  endif
#  if !defined(ATTN_NO_AVX512)
#    define ATTN__AVX512 1
#  endif
   /* Kernels for a set carry its target attribute (MSVC needs none), so the
      file is built without -march and each set is chosen at run time. */
#  if defined(_MSC_VER) && !defined(__clang__)
#    define ATTN__TARGET_AVX2
#    define ATTN__TARGET_AVX512
#  else
#    define ATTN__TARGET_AVX2 __attribute__((target("avx2,fma")))
#    define ATTN__TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#  endif
#elif defined(ATTN__NEON)
#  include <arm_neon.h>
#endif

#define ATTN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define ATTN__MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(ATTN__X86)
/* The widest kernel set this CPU and its OS support. cpuid says what the CPU
   has; XCR0 (xgetbv) says whether the OS saves the ymm (bits 1-2) and the zmm
   and mask registers (bits 5-7) on a context switch: without that, AVX-512
   instructions would fault or lose state. Asked once (see attn__simd_chosen). */
#  if defined(_MSC_VER) && defined(__clang__)
__attribute__((target("xsave")))
#  endif
static attn_simd attn__cpu_simd(void) {
    unsigned r[4], leaf1_ecx, leaf7_ebx;
    unsigned long long xcr0;
#  if defined(_MSC_VER)
    __cpuid((int *)r, 0);
    if (r[0] < 7) return ATTN_SIMD_NONE;
    __cpuid((int *)r, 1);
    leaf1_ecx = r[2];
    if (!((leaf1_ecx >> 27) & 1)) return ATTN_SIMD_NONE; /* no OSXSAVE: xgetbv would fault */
    xcr0 = _xgetbv(0);
    __cpuidex((int *)r, 7, 0);
    leaf7_ebx = r[1];
#  else
    unsigned lo, hi;
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(0), "c"(0));
    if (r[0] < 7) return ATTN_SIMD_NONE;
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(1), "c"(0));
    leaf1_ecx = r[2];
    if (!((leaf1_ecx >> 27) & 1)) return ATTN_SIMD_NONE;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(7), "c"(0));
    leaf7_ebx = r[1];
#  endif
    /* AVX (ecx 28), FMA (ecx 12), AVX2 (leaf 7 ebx 5), ymm state saved */
    if (!((leaf1_ecx >> 28) & 1) || !((leaf1_ecx >> 12) & 1) || !((leaf7_ebx >> 5) & 1) || (xcr0 & 6) != 6)
        return ATTN_SIMD_NONE;
#  if defined(ATTN__AVX512)
    /* AVX-512 F (ebx 16), DQ (17), BW (30), VL (31), zmm and mask state saved */
    if (((leaf7_ebx >> 16) & 1) && ((leaf7_ebx >> 17) & 1) && ((leaf7_ebx >> 30) & 1) && ((leaf7_ebx >> 31) & 1) &&
        (xcr0 & 0xE6) == 0xE6)
        return ATTN_SIMD_AVX512;
#  endif
    return ATTN_SIMD_AVX2;
}
#endif

/* Run fn over [0, n_tasks) through the hook, or inline when there is none. */
static void attn__parallel(const attn_threads *threads, int n_tasks, attn_task_fn fn, void *data) {
    int i;
    if (threads && threads->parallel_for && n_tasks > 1) {
        threads->parallel_for(threads->user, n_tasks, fn, data);
        return;
    }
    for (i = 0; i < n_tasks; i++) fn(data, i);
}

static int attn__thread_count(const attn_threads *threads) {
    if (!threads || !threads->parallel_for || threads->n_threads < 1) return 1;
    return threads->n_threads;
}

#ifdef ATTN_OPENMP
static void attn__openmp_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    int i;
    (void)user;
#  pragma omp parallel for schedule(dynamic, 1)
    for (i = 0; i < n_tasks; i++) fn(data, i);
}
#endif

ATTN_API attn_threads attn_threads_openmp(void) {
    attn_threads t;
    memset(&t, 0, sizeof t);
#ifdef ATTN_OPENMP
    t.parallel_for = attn__openmp_for;
    t.n_threads = omp_get_max_threads();
#endif
    if (t.n_threads < 1) t.n_threads = 1;
    return t;
}

/* ---- The thread pool behind attn_threads_create ----
   n - 1 workers and the calling thread share each call's tasks; a worker that
   finds no new call spins for ATTN_THREADS_SPIN pause instructions (a few
   microseconds, about what a wake-up through the OS costs) and then sleeps on
   a condition variable, so a waiting core is never burnt for longer than that:
   on a loaded machine a spinning waiter takes the core from the thread that
   has the work. The caller runs tasks too, so a worker that is slow to wake
   costs nothing but its share. Tasks are handed out from one counter, so which
   thread runs which task changes from call to call; the library's kernels are
   written so that this never changes a result.

   A call made while another is in progress (from inside a task, or from a
   second thread) runs its tasks inline on its own thread: waiting for the pool
   would deadlock a nested call. The caller returns only when every worker has
   left the call, so the job fields are never read across two calls. */
#if defined(ATTN__POOL)
#  define ATTN__POOL_MAX 256                 /* threads; more is surely a mistake */
#  define ATTN__POOL_STACK ((size_t)8 << 20) /* the GEMM keeps ~330 KiB of panels on the stack:
                                                more than some systems' default (macOS: 512 KiB) */
/* The lock-free parts (the spin, the task counter) need atomics, which C99
   lacks: GCC/clang builtins, or Interlocked* on MSVC. Elsewhere (tcc) the
   counters live under the mutex and nobody spins. */
#  if (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#    define ATTN__ATOMIC 1
#    define ATTN__GET(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#    define ATTN__SET(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#    define ATTN__ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#  elif defined(ATTN__POOL_WIN32)
#    define ATTN__ATOMIC 1
#    define ATTN__GET(p) InterlockedCompareExchange((p), 0, 0)
#    define ATTN__SET(p, v) ((void)InterlockedExchange((p), (v)))
#    define ATTN__ADD(p, v) InterlockedExchangeAdd((p), (v))
#  else
#    define ATTN__GET(p) (*(p))
#    define ATTN__SET(p, v) ((void)(*(p) = (v)))
#  endif
#  if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__TINYC__)
#    define ATTN__PAUSE() __builtin_ia32_pause()
#  elif defined(__GNUC__) && (defined(__aarch64__) || (defined(__ARM_ARCH) && __ARM_ARCH >= 7))
#    define ATTN__PAUSE() __asm__ __volatile__("yield")
#  elif defined(ATTN__POOL_WIN32)
#    define ATTN__PAUSE() YieldProcessor()
#  else
#    define ATTN__PAUSE() ((void)0)
#  endif

#  if defined(ATTN__POOL_WIN32)
typedef SRWLOCK attn__mutex;
typedef CONDITION_VARIABLE attn__cond;
typedef HANDLE attn__thread;
#  else
typedef pthread_mutex_t attn__mutex;
typedef pthread_cond_t attn__cond;
typedef pthread_t attn__thread;
#  endif

typedef struct attn__pool {
    attn__mutex mu;
    attn__cond wake; /* workers wait here for a call */
    attn__cond done; /* the caller waits here for the last worker to leave */
    attn_task_fn fn; /* the current call: written under mu before gen moves */
    void *data;
    long n_tasks;
    long next;    /* the next task to hand out (atomic, or under mu) */
    long pending; /* tasks not finished yet (atomic, or under mu) */
    long gen;     /* moves once per shared call; written under mu, read by spinners */
    long quit;    /* as gen */
    long active;  /* workers inside the current call; written under mu */
    int busy;     /* a call is in progress: another one runs inline */
    int sleepers; /* workers blocked on wake */
    int caller_waiting;
    int n_workers;
    attn__thread *threads;
} attn__pool;

#  if defined(ATTN__POOL_WIN32)
static int attn__mutex_init(attn__mutex *m) { InitializeSRWLock(m); return 0; }
static void attn__mutex_destroy(attn__mutex *m) { (void)m; }
static void attn__lock(attn__mutex *m) { AcquireSRWLockExclusive(m); }
static void attn__unlock(attn__mutex *m) { ReleaseSRWLockExclusive(m); }
static int attn__cond_init(attn__cond *c) { InitializeConditionVariable(c); return 0; }
static void attn__cond_destroy(attn__cond *c) { (void)c; }
static void attn__cond_wait(attn__cond *c, attn__mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static void attn__cond_signal(attn__cond *c) { WakeConditionVariable(c); }
static void attn__cond_broadcast(attn__cond *c) { WakeAllConditionVariable(c); }
#  else
static int attn__mutex_init(attn__mutex *m) { return pthread_mutex_init(m, NULL); }
static void attn__mutex_destroy(attn__mutex *m) { pthread_mutex_destroy(m); }
static void attn__lock(attn__mutex *m) { pthread_mutex_lock(m); }
static void attn__unlock(attn__mutex *m) { pthread_mutex_unlock(m); }
static int attn__cond_init(attn__cond *c) { return pthread_cond_init(c, NULL); }
static void attn__cond_destroy(attn__cond *c) { pthread_cond_destroy(c); }
static void attn__cond_wait(attn__cond *c, attn__mutex *m) { pthread_cond_wait(c, m); }
static void attn__cond_signal(attn__cond *c) { pthread_cond_signal(c); }
static void attn__cond_broadcast(attn__cond *c) { pthread_cond_broadcast(c); }
#  endif

static long attn__pool_take(attn__pool *p) {
#  if defined(ATTN__ATOMIC)
    return ATTN__ADD(&p->next, 1);
#  else
    long t;
    attn__lock(&p->mu);
    t = p->next++;
    attn__unlock(&p->mu);
    return t;
#  endif
}

/* Run tasks of the current call until none are left (mu not held). The job
   fields are stable here: the caller wrote them before this thread joined
   (under mu) and changes them only after every worker has left. */
static void attn__pool_run(attn__pool *p) {
    attn_task_fn fn = p->fn;
    void *data = p->data;
    long n = p->n_tasks, t;
    while ((t = attn__pool_take(p)) < n) {
        fn(data, (int)t);
#  if defined(ATTN__ATOMIC)
        ATTN__ADD(&p->pending, -1);
#  else
        attn__lock(&p->mu);
        p->pending--;
        attn__unlock(&p->mu);
#  endif
    }
}

static void attn__pool_worker(attn__pool *p) {
    long seen = 0;
    attn__lock(&p->mu);
    while (!p->quit) {
        if (p->gen != seen) {
            seen = p->gen;
            if (p->busy) { /* the call is still open: join it (a late waker finds it closed) */
                ATTN__SET(&p->active, p->active + 1);
                attn__unlock(&p->mu);
                attn__pool_run(p);
                attn__lock(&p->mu);
                ATTN__SET(&p->active, p->active - 1);
                if (!p->active && p->caller_waiting) attn__cond_signal(&p->done);
            }
            continue;
        }
#  if defined(ATTN__ATOMIC)
        {   /* calls come in bursts (one per op of a step): catch the next one awake */
            int i;
            attn__unlock(&p->mu);
            for (i = 0; i < ATTN_THREADS_SPIN && ATTN__GET(&p->gen) == seen && !ATTN__GET(&p->quit); i++) ATTN__PAUSE();
            attn__lock(&p->mu);
        }
#  endif
        while (p->gen == seen && !p->quit) {
            p->sleepers++;
            attn__cond_wait(&p->wake, &p->mu);
            p->sleepers--;
        }
    }
    attn__unlock(&p->mu);
}

#  if defined(ATTN__POOL_WIN32)
static DWORD WINAPI attn__pool_main(LPVOID arg) {
    attn__pool_worker((attn__pool *)arg);
    return 0;
}
static int attn__thread_start(attn__thread *t, attn__pool *p) {
    *t = CreateThread(NULL, ATTN__POOL_STACK, attn__pool_main, p, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    return *t ? 0 : -1;
}
static void attn__thread_join(attn__thread t) {
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
static int attn__cpu_count(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return (int)si.dwNumberOfProcessors;
}
#  else
static void *attn__pool_main(void *arg) {
    attn__pool_worker((attn__pool *)arg);
    return NULL;
}
static int attn__thread_start(attn__thread *t, attn__pool *p) {
    pthread_attr_t attr;
    int rc;
    if (pthread_attr_init(&attr) != 0) return -1;
    (void)pthread_attr_setstacksize(&attr, ATTN__POOL_STACK); /* if refused, the default will do or not */
    rc = pthread_create(t, &attr, attn__pool_main, p);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}
static void attn__thread_join(attn__thread t) { pthread_join(t, NULL); }
static int attn__cpu_count(void) {
#    if defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > ATTN__POOL_MAX ? ATTN__POOL_MAX : (int)n;
#    else
    return 1; /* a system that will not say: ask for a number */
#    endif
}
#  endif

/* The attn_threads.parallel_for of the pool. */
static void attn__pool_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    attn__pool *p = (attn__pool *)user;
    int i, wake;
    attn__lock(&p->mu);
    if (p->busy || n_tasks < 2) {
        attn__unlock(&p->mu);
        for (i = 0; i < n_tasks; i++) fn(data, i);
        return;
    }
    p->busy = 1;
    p->fn = fn;
    p->data = data;
    p->n_tasks = n_tasks;
    ATTN__SET(&p->next, 0);
    ATTN__SET(&p->pending, (long)n_tasks);
    ATTN__SET(&p->gen, (p->gen + 1) & 0x7fffffffL);
    wake = ATTN__MIN(p->sleepers, n_tasks - 1); /* spinning workers see gen move by themselves */
    for (i = 0; i < wake; i++) attn__cond_signal(&p->wake);
    attn__unlock(&p->mu);
    attn__pool_run(p);
#  if defined(ATTN__ATOMIC)
    for (i = 0; i < ATTN_THREADS_SPIN && (ATTN__GET(&p->pending) || ATTN__GET(&p->active)); i++) ATTN__PAUSE();
#  endif
    attn__lock(&p->mu);
    while (ATTN__GET(&p->pending) || p->active) { /* only tasks a worker holds are left */
        p->caller_waiting = 1;
        attn__cond_wait(&p->done, &p->mu);
    }
    p->caller_waiting = 0;
    p->busy = 0;
    attn__unlock(&p->mu);
}

/* Undo attn_threads_create up to `stage`: 1 pool, 2 +threads array, 3 +mutex,
   4 +wake, 5 +done. */
static void attn__pool_free(attn__pool *p, int stage) {
    if (stage >= 5) attn__cond_destroy(&p->done);
    if (stage >= 4) attn__cond_destroy(&p->wake);
    if (stage >= 3) attn__mutex_destroy(&p->mu);
    if (stage >= 2) ATTN_FREE(p->threads, NULL);
    ATTN_FREE(p, NULL);
}
#endif /* ATTN__POOL */

ATTN_API attn_threads attn_threads_create(int n_threads) {
    attn_threads t;
    memset(&t, 0, sizeof t);
    t.n_threads = 1;
#if defined(ATTN__POOL)
    {
        attn__pool *p;
        if (n_threads <= 0) n_threads = attn__cpu_count();
        if (n_threads > ATTN__POOL_MAX) n_threads = ATTN__POOL_MAX;
        if (n_threads < 2) return t; /* one thread needs no pool */
        if (!(p = (attn__pool *)ATTN_MALLOC(sizeof *p, NULL))) return t;
        memset(p, 0, sizeof *p);
        p->threads = (attn__thread *)ATTN_MALLOC(sizeof(attn__thread) * (size_t)(n_threads - 1), NULL);
        if (!p->threads) { attn__pool_free(p, 1); return t; }
        if (attn__mutex_init(&p->mu) != 0) { attn__pool_free(p, 2); return t; }
        if (attn__cond_init(&p->wake) != 0) { attn__pool_free(p, 3); return t; }
        if (attn__cond_init(&p->done) != 0) { attn__pool_free(p, 4); return t; }
        while (p->n_workers < n_threads - 1 && attn__thread_start(&p->threads[p->n_workers], p) == 0) p->n_workers++;
        if (!p->n_workers) { attn__pool_free(p, 5); return t; } /* fewer than asked is still a pool */
        t.parallel_for = attn__pool_for;
        t.user = p;
        t.n_threads = p->n_workers + 1;
    }
#else
    (void)n_threads;
#endif
    return t;
}

ATTN_API void attn_threads_destroy(attn_threads *t) {
#if defined(ATTN__POOL)
    attn__pool *p;
    int i;
    if (!t || t->parallel_for != attn__pool_for) return;
    p = (attn__pool *)t->user;
    attn__lock(&p->mu);
    ATTN__SET(&p->quit, 1L);
    attn__cond_broadcast(&p->wake);
    attn__unlock(&p->mu);
    for (i = 0; i < p->n_workers; i++) attn__thread_join(p->threads[i]);
    attn__pool_free(p, 5);
    memset(t, 0, sizeof *t);
    t->n_threads = 1;
#else
    (void)t;
#endif
}

ATTN_API const char *attn_simd_name(attn_simd simd) {
    switch (simd) {
    case ATTN_SIMD_AVX2: return "avx2";
    case ATTN_SIMD_NEON: return "neon";
    case ATTN_SIMD_AVX512: return "avx512";
    default: return "none";
    }
}

/* ============================================================================
   2. Errors
   ========================================================================= */
#define ATTN__MESSAGE_SIZE 256

struct attn_context {
    attn_arena arena;
    attn_threads threads;
    attn_rng rng;
    attn_status status;
    char message[ATTN__MESSAGE_SIZE];
    int owns_self;    /* 1 when the context itself came from ATTN_MALLOC */
    void *alloc_user;
    /* autodiff (section 7) */
    int grad_off;                 /* 1 after attn_grad_enable(ctx, 0) */
    struct attn_node *tape;       /* the newest recorded node; ->prev goes back */
    attn_param *params, *params_last;
    /* backend (section 5): the data lives in backend memory, bump-allocated by `data` */
    const attn_backend *be;       /* &backend_table, or NULL: the CPU table's functions on `threads` */
    attn_backend backend_table;
    void *backend_block;
    attn_arena data;
};

/* A tiny printf (%s %d %zu %%) so that messages need no <stdio.h>. */
static void attn__format(char *out, size_t cap, const char *fmt, va_list ap) {
    size_t n = 0;
    while (*fmt && n + 1 < cap) {
        char digits[24];
        const char *s = digits;
        int k = (int)sizeof digits - 1;
        digits[k] = 0;
        if (*fmt != '%') { out[n++] = *fmt++; continue; }
        fmt++;
        if (*fmt == 's') {
            s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            fmt++;
        } else if (*fmt == 'd' || (fmt[0] == 'z' && fmt[1] == 'u')) {
            unsigned long long v;
            int negative = 0;
            if (*fmt == 'd') {
                int d = va_arg(ap, int);
                negative = d < 0;
                v = negative ? 0ull - (unsigned long long)(long long)d : (unsigned long long)d;
                fmt++;
            } else {
                v = va_arg(ap, size_t);
                fmt += 2;
            }
            do { digits[--k] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
            if (negative) digits[--k] = '-';
            s = digits + k;
        } else {
            s = "%";
            if (*fmt) fmt++;
        }
        while (*s && n + 1 < cap) out[n++] = *s++;
    }
    out[n] = 0;
}

/* Record an error on ctx (if any) and return its status, for `return attn__fail(...)`. */
static attn_status attn__fail(attn_context *ctx, attn_status status, const char *fmt, ...) {
    va_list ap;
    if (!ctx) return status;
    ctx->status = status;
    va_start(ap, fmt);
    attn__format(ctx->message, sizeof ctx->message, fmt, ap);
    va_end(ap);
    return status;
}

ATTN_API const char *attn_status_name(attn_status status) {
    switch (status) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ATTN_ERR_SHAPE: return "shape mismatch";
    case ATTN_ERR_OUT_OF_MEMORY: return "out of memory";
    case ATTN_ERR_UNSUPPORTED: return "unsupported";
    case ATTN_ERR_FORMAT: return "bad format";
    case ATTN_ERR_IO: return "i/o error";
    }
    return "unknown status";
}

ATTN_API attn_status attn_error_status(const attn_context *ctx) { return ctx ? ctx->status : ATTN_ERR_INVALID_ARGUMENT; }
ATTN_API const char *attn_error_message(const attn_context *ctx) { return ctx ? ctx->message : "no context"; }
ATTN_API void attn_error_clear(attn_context *ctx) {
    if (!ctx) return;
    ctx->status = ATTN_OK;
    ctx->message[0] = 0;
}

/* ============================================================================
   3. Memory: arenas
   ========================================================================= */
/* A growing arena's block: this header, padded to 64 bytes, then the bytes. */
typedef struct attn__block {
    struct attn__block *next;
    size_t size;
} attn__block;
#define ATTN__BLOCK_HEADER 64

static unsigned char *attn__block_data(attn__block *b) { return (unsigned char *)b + ATTN__BLOCK_HEADER; }

static size_t attn__align_pad(const unsigned char *p, size_t align) {
    return (size_t)(0u - (uintptr_t)p) & (align - 1);
}

ATTN_API void attn_arena_init_buffer(attn_arena *arena, void *buf, size_t size) {
    memset(arena, 0, sizeof *arena);
    arena->base = (unsigned char *)buf;
    arena->size = buf ? size : 0;
}

ATTN_API void attn_arena_init_growing(attn_arena *arena, size_t block_size, void *alloc_user) {
    memset(arena, 0, sizeof *arena);
    arena->block_size = block_size ? block_size : (size_t)1 << 20;
    arena->alloc_user = alloc_user;
}

/* Step into the block after the current one, first making one big enough for
   `need` bytes when the next one is missing or too small. */
static int attn__arena_next_block(attn_arena *arena, size_t need) {
    attn__block *cur = (attn__block *)arena->block;
    attn__block *next = cur ? cur->next : (attn__block *)arena->first_block;
    if (!next || next->size < need) {
        size_t size = ATTN__MAX(arena->block_size, need);
        attn__block *fresh;
        if (size > (size_t)-1 - ATTN__BLOCK_HEADER) return 0;
        fresh = (attn__block *)ATTN_MALLOC(size + ATTN__BLOCK_HEADER, arena->alloc_user);
        if (!fresh) return 0;
        fresh->size = size;
        fresh->next = next;
        if (cur) cur->next = fresh; else arena->first_block = fresh;
        next = fresh;
    }
    arena->used_before += arena->used;
    arena->block = next;
    arena->base = attn__block_data(next);
    arena->size = next->size;
    arena->used = 0;
    return 1;
}

ATTN_API void *attn_arena_alloc(attn_arena *arena, size_t bytes, size_t align) {
    if (!arena) return NULL;
    if (align == 0) align = 64;
    if (align & (align - 1)) return NULL;
    for (;;) {
        if (arena->base) {
            size_t room = arena->size - arena->used;
            size_t pad = attn__align_pad(arena->base + arena->used, align);
            if (pad <= room && bytes <= room - pad) {
                void *p = arena->base + arena->used + pad;
                size_t now;
                arena->used += pad + bytes;
                now = arena->used_before + arena->used;
                if (now > arena->peak) arena->peak = now;
                return p;
            }
        }
        if (!arena->block_size) return NULL; /* fixed: out of room */
        if (bytes > (size_t)-1 - align) return NULL;
        if (!attn__arena_next_block(arena, bytes + align)) return NULL;
    }
}

ATTN_API attn_arena_pos attn_arena_mark(const attn_arena *arena) {
    attn_arena_pos m;
    m.block = arena->block;
    m.used = arena->used;
    m.used_before = arena->used_before;
    m.companion_used = arena->companion ? arena->companion->used : 0;
    return m;
}

ATTN_API void attn_arena_reset(attn_arena *arena, attn_arena_pos pos) {
    if (arena->block_size) {
        attn__block *b = (attn__block *)pos.block;
        arena->block = b;
        arena->base = b ? attn__block_data(b) : NULL;
        arena->size = b ? b->size : 0;
    }
    ATTN_ASSERT(pos.used <= arena->size);
    arena->used = pos.used;
    arena->used_before = pos.used_before;
    if (arena->companion) arena->companion->used = pos.companion_used;
}

ATTN_API size_t attn_arena_used(const attn_arena *arena) { return arena->used_before + arena->used; }
ATTN_API size_t attn_arena_peak(const attn_arena *arena) { return arena->peak; }

ATTN_API void attn_arena_release(attn_arena *arena) {
    attn__block *b = (attn__block *)arena->first_block;
    size_t block_size = arena->block_size;
    void *user = arena->alloc_user;
    attn_arena *companion = arena->companion;
    if (companion) companion->used = 0; /* empty too, and still tied to this arena */
    if (!block_size) { /* fixed: just empty it */
        arena->used = 0;
        return;
    }
    while (b) {
        attn__block *next = b->next;
        ATTN_FREE(b, user);
        b = next;
    }
    attn_arena_init_growing(arena, block_size, user);
    arena->companion = companion;
}

/* ---- Random numbers: PCG32 (M. O'Neill, 2014), all state in attn_rng ---- */
ATTN_API uint32_t attn_rng_u32(attn_rng *rng) {
    uint64_t old = rng->state;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    rng->state = old * 6364136223846793005ull + rng->inc;
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

ATTN_API void attn_rng_seed(attn_rng *rng, uint64_t seed) {
    rng->state = 0;
    rng->inc = 1442695040888963407ull; /* any odd increment picks a stream; this one is fixed */
    attn_rng_u32(rng);
    rng->state += seed;
    attn_rng_u32(rng);
}

ATTN_API float attn_rng_uniform(attn_rng *rng) { return (float)(attn_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); }

ATTN_API float attn_rng_normal(attn_rng *rng) {
    /* u1 in (0, 1] so the log is finite */
    float u1 = (float)((attn_rng_u32(rng) >> 8) + 1) * (1.0f / 16777216.0f);
    float u2 = attn_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958648f * u2);
}

/* ============================================================================
   Context
   ========================================================================= */
/* The name of the first missing entry of a table, NULL when it is complete. */
ATTN_API const char *attn_backend_missing(const attn_backend *be) {
#define ATTN__NEED(entry) if (!be->entry) return #entry;
    if (!be) return "the table";
    ATTN__NEED(name) ATTN__NEED(alloc) ATTN__NEED(free) ATTN__NEED(upload) ATTN__NEED(download)
    ATTN__NEED(sync) ATTN__NEED(fill) ATTN__NEED(copy4) ATTN__NEED(binary4) ATTN__NEED(reduce4) ATTN__NEED(gemm)
    ATTN__NEED(unary) ATTN__NEED(unary_backward) ATTN__NEED(dropout) ATTN__NEED(softmax)
    ATTN__NEED(softmax_backward) ATTN__NEED(norm_forward) ATTN__NEED(norm_backward) ATTN__NEED(embedding)
    ATTN__NEED(embedding_backward) ATTN__NEED(cross_entropy) ATTN__NEED(cross_entropy_backward)
    ATTN__NEED(attention) ATTN__NEED(attention_backward) ATTN__NEED(sum) ATTN__NEED(add_scalar)
    ATTN__NEED(optim_update)
#undef ATTN__NEED
    return NULL;
}

ATTN_API size_t attn_context_overhead(void) { return sizeof(attn_context) + 63; }

ATTN_API attn_context *attn_context_create(const attn_context_desc *desc) {
    attn_context_desc d;
    attn_context *ctx;
    if (desc) d = *desc; else memset(&d, 0, sizeof d);
    if (d.memory) {
        unsigned char *p = (unsigned char *)d.memory;
        size_t pad = attn__align_pad(p, 64);
        if (d.memory_size < pad + sizeof(attn_context)) return NULL;
        ctx = (attn_context *)(void *)(p + pad);
        memset(ctx, 0, sizeof *ctx);
        attn_arena_init_buffer(&ctx->arena, p + pad + sizeof(attn_context),
                               d.memory_size - pad - sizeof(attn_context));
    } else {
        ctx = (attn_context *)ATTN_MALLOC(sizeof(attn_context), d.alloc_user);
        if (!ctx) return NULL;
        memset(ctx, 0, sizeof *ctx);
        ctx->owns_self = 1;
        attn_arena_init_growing(&ctx->arena, d.block_size, d.alloc_user);
    }
    ctx->alloc_user = d.alloc_user;
    ctx->threads = d.threads;
    if (!ctx->threads.parallel_for) ctx->threads = attn_threads_openmp();
    if (ctx->threads.n_threads < 1) ctx->threads.n_threads = 1;
    attn_rng_seed(&ctx->rng, d.seed);
    if (d.backend) { /* one block of backend memory, bump-allocated like the arena */
        size_t bytes = d.backend_memory ? d.backend_memory : (size_t)256 << 20;
        if (attn_backend_missing(d.backend) || !(ctx->backend_block = d.backend->alloc(d.backend->user, bytes))) {
            attn_context_destroy(ctx);
            return NULL;
        }
        ctx->backend_table = *d.backend;
        ctx->be = &ctx->backend_table;
        attn_arena_init_buffer(&ctx->data, ctx->backend_block, bytes);
        ctx->arena.companion = &ctx->data;
    }
    return ctx;
}

ATTN_API void attn_context_destroy(attn_context *ctx) {
    if (!ctx) return;
    if (ctx->backend_block) ctx->backend_table.free(ctx->backend_table.user, ctx->backend_block);
    attn_arena_release(&ctx->arena);
    if (ctx->owns_self) ATTN_FREE(ctx, ctx->alloc_user);
}

ATTN_API attn_arena *attn_context_arena(attn_context *ctx) { return &ctx->arena; }
ATTN_API const attn_threads *attn_context_threads(const attn_context *ctx) { return &ctx->threads; }
ATTN_API attn_rng *attn_context_rng(attn_context *ctx) { return &ctx->rng; }

ATTN_API void *attn_alloc(attn_context *ctx, size_t bytes) {
    void *p;
    if (!ctx) return NULL;
    p = attn_arena_alloc(&ctx->arena, bytes ? bytes : 1, 64);
    if (!p)
        attn__fail(ctx, ATTN_ERR_OUT_OF_MEMORY, "arena out of memory: asked for %zu bytes with %zu in use",
                   bytes, attn_arena_used(&ctx->arena));
    return p;
}

/* ============================================================================
   4. Kernels
   ========================================================================= */

/* ---- 4a. Plain C references: the ground truth for the SIMD versions, and what
   ATTN_NO_SIMD builds and CPUs without SIMD run. ---- */

static void attn__scale_rows(int M, int N, float beta, float *C, int ldc) {
    int i, j;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f; /* never read C */
        else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    }
}

static void attn__sgemm_ref(int transA, int transB, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb, float beta,
                            float *C, int ldc) {
    int i, j, k;
    if (M <= 0 || N <= 0) return;
    if (transB) { /* rows of B are columns of op(B): dot products run along memory */
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                float s = 0.0f, *c = C + (size_t)i * ldc + j;
                const float *b = B + (size_t)j * ldb;
                for (k = 0; k < K; k++)
                    s += (transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) * b[k];
                *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
            }
        return;
    }
    attn__scale_rows(M, N, beta, C, ldc);
    for (i = 0; i < M; i++) { /* C row += a(i,k) * B row: inner loop along memory */
        float *c = C + (size_t)i * ldc;
        for (k = 0; k < K; k++) {
            float a = alpha * (transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            const float *b = B + (size_t)k * ldb;
            for (j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

static void attn__softmax_rows_ref(int rows, int cols, const float *x, int ldx, float *y, int ldy) {
    int r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float m = -INFINITY, s = 0.0f, inv;
        for (j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
        for (j = 0; j < cols; j++) { yr[j] = expf(xr[j] - m); s += yr[j]; }
        inv = 1.0f / s;
        for (j = 0; j < cols; j++) yr[j] *= inv;
    }
}

static void attn__log_softmax_rows_ref(int rows, int cols, const float *x, int ldx, float *y, int ldy) {
    int r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float m = -INFINITY, s = 0.0f, lse;
        for (j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
        for (j = 0; j < cols; j++) s += expf(xr[j] - m);
        lse = logf(s);
        for (j = 0; j < cols; j++) yr[j] = (xr[j] - m) - lse;
    }
}

static void attn__layernorm_rows_ref(int rows, int cols, const float *x, int ldx, const float *gamma,
                                     const float *beta, float eps, float *y, int ldy, float *mean,
                                     float *rstd) {
    int r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float mu = 0.0f, var = 0.0f, rs;
        for (j = 0; j < cols; j++) mu += xr[j];
        mu /= (float)cols;
        for (j = 0; j < cols; j++) var += (xr[j] - mu) * (xr[j] - mu);
        var /= (float)cols;
        rs = 1.0f / sqrtf(var + eps);
        for (j = 0; j < cols; j++) {
            float v = (xr[j] - mu) * rs;
            yr[j] = v * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
        }
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}

/* GELU(x) = x Phi(x), Phi(x) = erfc(-x/sqrt2)/2. For u = |x|/sqrt2,
   erfc(u) = exp(-u^2) g(u) with g smooth; g(u) ~ t poly(t), t = 1/(1+u/2), with
   these coefficients fitted by tools/fit_erfc.py (relative error 1.7e-8 in
   double). The SIMD versions compute the same formula. It needs only expf from
   libm (some libms' erfcf lose 2e-6 in the tail) and keeps the relative
   accuracy for negative x, where 1 + erf(x) would cancel. */
static const float attn__erfc_coef[11] = {
    3.940237717e-02f, -2.109200988e-01f, 4.287909263e-01f, -3.541067521e-01f,
    3.349540755e-02f, 4.070932375e-03f, 6.662618995e-02f, 1.827181487e-01f,
    2.456182185e-01f, 2.822147740e-01f, 2.820898930e-01f };

/* x with the low 12 mantissa bits cleared: its square is exact in float */
static float attn__high_half(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= 0xFFFFF000u;
    memcpy(&x, &bits, sizeof bits);
    return x;
}

/* Phi(x) and, when pdf is not NULL, phi(x) = exp(-x^2/2) / sqrt(2 pi). */
static float attn__normal_cdf(float x, float *pdf) {
    float u, t, p, xh, xl, b, exp_b, e, half;
    int k;
    /* beyond |x| = 14, Phi is exactly 1 or 0 in float; NaN stays NaN below */
    if (x > 14.0f || x < -14.0f) {
        if (pdf) *pdf = 0.0f;
        return x > 0.0f ? 1.0f : 0.0f;
    }
    u = fabsf(x) * 0.70710678118654752f;
    t = 1.0f / (1.0f + 0.5f * u);
    xh = attn__high_half(x);
    xl = x - xh;
    b = -0.5f * (2.0f * xh + xl) * xl; /* x^2/2 = xh^2/2 - b, xh^2 exact */
    exp_b = 1.0f + b * (1.0f + b * (0.5f + b * (1.0f / 6.0f + b * (1.0f / 24.0f))));
    p = attn__erfc_coef[0];
    for (k = 1; k < 11; k++) p = p * t + attn__erfc_coef[k];
    e = expf(-0.5f * (xh * xh)) * exp_b; /* exp(-x^2/2) */
    if (pdf) *pdf = e * 0.39894228040143268f;
    half = 0.5f * e * t * p;
    return x >= 0.0f ? 1.0f - half : half;
}

static void attn__gelu_ref(size_t n, const float *x, float *y) {
    size_t i;
    /* x * 0 for x < -14 keeps -0, and NaN for -inf as in PyTorch */
    for (i = 0; i < n; i++) y[i] = x[i] * attn__normal_cdf(x[i], NULL);
}

static void attn__gelu_backward_ref(size_t n, const float *x, const float *dy, float *dx) {
    size_t i;
    for (i = 0; i < n; i++) {
        float pdf, cdf = attn__normal_cdf(x[i], &pdf);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}
static void attn__exp_ref(size_t n, const float *x, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = expf(x[i]);
}
static void attn__add_ref(size_t n, const float *a, const float *b, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = a[i] + b[i];
}
static void attn__sub_ref(size_t n, const float *a, const float *b, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = a[i] - b[i];
}
static void attn__mul_ref(size_t n, const float *a, const float *b, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = a[i] * b[i];
}
static void attn__scale_ref(size_t n, float s, const float *x, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = s * x[i];
}
static void attn__axpy_ref(size_t n, float alpha, const float *x, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] += alpha * x[i];
}
static void attn__relu_ref(size_t n, const float *x, float *y) {
    size_t i;
    for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f; /* NaN -> 0, as max(x,0) in C */
}
static float attn__sum_ref(size_t n, const float *x) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += x[i];
    return (float)s;
}
static float attn__dot_ref(size_t n, const float *a, const float *b) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)a[i] * b[i];
    return (float)s;
}

/* One optimizer update over n floats, in torch.optim's (1.13) operation order
   so that trajectories match PyTorch's: its add_(x, alpha) is a fused
   multiply-add, addcmul is self + (value t1) t2 and addcdiv self + (value t1) / t2.
   kind: 0 SGD, 1 Adam, 2 AdamW, 3 Adagrad (as attn_optim_kind). */
typedef attn_backend_update attn__update; /* declared in section 5: backends run it too */

static void attn__update_ref(size_t n, const attn__update *u, float *w, const float *g, float *m, float *v) {
    size_t k;
    for (k = 0; k < n; k++) {
        float gk = u->wd != 0.0f && u->kind != 2 ? fmaf(w[k], u->wd, g[k]) : g[k];
        if (u->kind == 0) {
            if (m) {
                m[k] = u->first ? gk : fmaf(gk, u->damp, m[k] * u->mom);
                gk = u->nesterov ? fmaf(m[k], u->mom, gk) : m[k];
            }
            w[k] = fmaf(gk, u->lr_neg, w[k]);
        } else if (u->kind == 3) {
            m[k] = m[k] + gk * gk;
            w[k] = w[k] + (u->lr_neg * gk) / (sqrtf(m[k]) + u->eps);
        } else {
            if (u->kind == 2) w[k] = w[k] * u->decay;
            m[k] = fmaf(gk, u->one_b1, m[k] * u->b1);
            v[k] = v[k] * u->b2 + (u->one_b2 * gk) * gk;
            w[k] = w[k] + (u->lr_neg * m[k]) / (sqrtf(v[k]) / u->bc2_sqrt + u->eps);
        }
    }
}

/* A kernel set: the public table first (so a pointer to the table converts
   back to its set), then what only the library's own code needs. */
typedef struct attn__kernel_set {
    attn_kernels pub;
    int gemm_mr, gemm_nr; /* the micro-kernel's tile: threaded GEMMs cut at whole tiles */
    void (*update)(size_t n, const attn__update *u, float *w, const float *g, float *m, float *v);
    /* The fused attention's row steps: the largest of x, and y = exp(x - m)
       (y may be x) returning the sum of y (x <= m, or -inf, as after a max). */
    float (*row_max)(int n, const float *x);
    float (*row_exp_sum)(int n, const float *x, float m, float *y);
} attn__kernel_set;

static float attn__row_max_ref(int n, const float *x) {
    float m = -INFINITY;
    int j;
    for (j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}
static float attn__row_exp_sum_ref(int n, const float *x, float m, float *y) {
    double s = 0.0;
    int j;
    for (j = 0; j < n; j++) s += y[j] = expf(x[j] - m);
    return (float)s;
}

static const attn__kernel_set attn__kernels_ref = {
    { ATTN_SIMD_NONE, attn__sgemm_ref, attn__softmax_rows_ref, attn__log_softmax_rows_ref, attn__layernorm_rows_ref,
      attn__gelu_ref, attn__gelu_backward_ref, attn__exp_ref, attn__add_ref, attn__sub_ref, attn__mul_ref,
      attn__scale_ref, attn__axpy_ref, attn__relu_ref, attn__sum_ref, attn__dot_ref },
    8, 16, attn__update_ref, attn__row_max_ref, attn__row_exp_sum_ref
};

/* ---- 4b. The packed GEMM driver (BLIS-style loops), shared by every SIMD set.
   jc (NC columns) -> pc (KC depth) -> pack B -> ic (MC rows) -> pack A (only
   when transposed: row-major A is read in place) -> jr (NR) -> ir (MR) ->
   micro-kernel. Panels are zero-padded (and rows of A past the edge repeat a
   valid row), so the micro-kernel always runs a full MR x NR tile and each C
   element gets exactly the same sequence of operations wherever its tile
   falls: that is what makes threaded results bit-identical for any split. ---- */
#if defined(ATTN__X86) || defined(ATTN__NEON)

/* C[m x n] = alpha * (A panel)(B panel) + beta * C, beta == 0 never reads C.
   lda == 0: a is a packed panel (a[k*MR + i]); lda > 0: a is row-major A itself
   (a[i*lda + k]), which spares packing when A is not transposed: its rows are
   read in order, which the prefetchers follow. */
typedef void (*attn__microkernel)(int kc, const float *a, int lda, const float *b, float *c, int ldc,
                                  int m, int n, float alpha, float beta);

/* Packs one full panel (mr or nr wide) of A or B (NULL: the generic loop).
   A set's own copy matters for the small GEMMs of attention tiles: a memcpy
   per row of a panel compiled to `rep movs`, whose start-up cost was paid 64
   times a tile, and the scalar loops took 10% of the attention backward. */
typedef void (*attn__pack_panel_fn)(const float *src, int ld, int kb, float *dst);

/* Panels of a transposed A (stored K x M): mr consecutive floats per k. */
static void attn__pack_a(const float *A, int lda, int mb, int kb, int mr, float *dst, attn__pack_panel_fn pack_at) {
    int ip, i, k;
    for (ip = 0; ip < mb; ip += mr) {
        int m = ATTN__MIN(mr, mb - ip);
        if (m == mr && pack_at) {
            pack_at(A + ip, lda, kb, dst);
            dst += (size_t)mr * kb;
            continue;
        }
        for (k = 0; k < kb; k++, dst += mr) {
            const float *src = A + (size_t)k * lda + ip;
            for (i = 0; i < m; i++) dst[i] = src[i];
            for (; i < mr; i++) dst[i] = 0.0f;
        }
    }
}


static void attn__pack_b(int transB, const float *B, int ldb, int kb, int nb, int nr, float *dst,
                         attn__pack_panel_fn pack_bt, attn__pack_panel_fn pack_bn) {
    int jp, j, k;
    for (jp = 0; jp < nb; jp += nr, dst += (size_t)nr * kb) {
        int n = ATTN__MIN(nr, nb - jp);
        if (transB && n == nr && pack_bt) {
            pack_bt(B + (size_t)jp * ldb, ldb, kb, dst);
        } else if (transB) {
            for (j = 0; j < n; j++) {
                const float *src = B + (size_t)(jp + j) * ldb;
                for (k = 0; k < kb; k++) dst[(size_t)k * nr + j] = src[k];
            }
            for (; j < nr; j++)
                for (k = 0; k < kb; k++) dst[(size_t)k * nr + j] = 0.0f;
        } else if (n == nr && pack_bn) {
            pack_bn(B + jp, ldb, kb, dst);
        } else if (n == nr) { /* the common case: whole rows of the panel */
            for (k = 0; k < kb; k++) memcpy(dst + (size_t)k * nr, B + (size_t)k * ldb + jp, (size_t)nr * sizeof(float));
        } else {
            for (k = 0; k < kb; k++) {
                const float *src = B + (size_t)k * ldb + jp;
                float *d = dst + (size_t)k * nr;
                for (j = 0; j < n; j++) d[j] = src[j];
                for (; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}

static void attn__sgemm_blocked(attn__microkernel kernel, attn__pack_panel_fn pack_at, attn__pack_panel_fn pack_bt,
                                attn__pack_panel_fn pack_bn, int mr, int nr,
                                int transA, int transB, int M, int N, int K, float alpha, const float *A,
                                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    /* The packing buffers live on the stack: kernels never allocate. */
    float a_space[ATTN_GEMM_MC * ATTN_GEMM_KC + 16];
    float b_space[ATTN_GEMM_KC * ATTN_GEMM_NC + 16];
    float *ap = (float *)(void *)((uintptr_t)(a_space + 15) & ~(uintptr_t)63);
    float *bp = (float *)(void *)((uintptr_t)(b_space + 15) & ~(uintptr_t)63);
    int jc, pc, ic, jr, ir;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        attn__scale_rows(M, N, beta, C, ldc);
        return;
    }
    for (jc = 0; jc < N; jc += ATTN_GEMM_NC) {
        int nb = ATTN__MIN(ATTN_GEMM_NC, N - jc);
        for (pc = 0; pc < K; pc += ATTN_GEMM_KC) {
            int kb = ATTN__MIN(ATTN_GEMM_KC, K - pc);
            float beta_here = pc == 0 ? beta : 1.0f;
            attn__pack_b(transB, transB ? B + (size_t)jc * ldb + pc : B + (size_t)pc * ldb + jc,
                         ldb, kb, nb, nr, bp, pack_bt, pack_bn);
            for (ic = 0; ic < M; ic += ATTN_GEMM_MC) {
                int mb = ATTN__MIN(ATTN_GEMM_MC, M - ic);
                if (transA) attn__pack_a(A + (size_t)pc * lda + ic, lda, mb, kb, mr, ap, pack_at);
                for (jr = 0; jr < nb; jr += nr)
                    for (ir = 0; ir < mb; ir += mr)
                        kernel(kb, transA ? ap + (size_t)ir * kb : A + (size_t)(ic + ir) * lda + pc,
                               transA ? 0 : lda, bp + (size_t)jr * kb,
                               C + (size_t)(ic + ir) * ldc + jc + jr, ldc,
                               ATTN__MIN(mr, mb - ir), ATTN__MIN(nr, nb - jr), alpha, beta_here);
            }
        }
    }
}
#endif

/* ---- 4c. The SIMD kernels, written once. An instruction set (4d) supplies a
   vector type attn__v of ATTN__W floats, the primitives attn__v_* on it and a
   target attribute ATTN__TARGET; ATTN__SIMD_KERNELS then stamps out its exp,
   GELU, row and vector kernels, named by ATTN__K(name) = attn__<set>_<name>.
   So AVX2, AVX-512 and NEON run one body (a compile error inside it is
   reported at the ATTN__SIMD_KERNELS line; gcc's "in expansion of macro" note
   gives the line within). ---- */
#if defined(ATTN__X86) || defined(ATTN__NEON)
/* The names the bodies use, resolved to the set being stamped out. */
#define attn__v ATTN__K(v)
#define attn__v_load ATTN__K(v_load)
#define attn__v_store ATTN__K(v_store)
#define attn__v_set ATTN__K(v_set)
#define attn__v_add ATTN__K(v_add)
#define attn__v_sub ATTN__K(v_sub)
#define attn__v_mul ATTN__K(v_mul)
#define attn__v_div ATTN__K(v_div)
#define attn__v_sqrt ATTN__K(v_sqrt)
#define attn__v_fma ATTN__K(v_fma)
#define attn__v_max ATTN__K(v_max)
#define attn__v_min ATTN__K(v_min)
#define attn__v_abs ATTN__K(v_abs)
#define attn__v_relu ATTN__K(v_relu)
#define attn__v_high_half ATTN__K(v_high_half)
#define attn__v_select_nonneg ATTN__K(v_select_nonneg)
#define attn__v_hsum ATTN__K(v_hsum)
#define attn__v_hmax ATTN__K(v_hmax)
#define attn__v_low_bits_to_exponent ATTN__K(v_low_bits_to_exponent)
#define attn__v_inf_above ATTN__K(v_inf_above)
#define attn__v_zero_below ATTN__K(v_zero_below)
#define attn__v_load_part ATTN__K(v_load_part)
#define attn__v_store_part ATTN__K(v_store_part)
#define attn__v_exp_core ATTN__K(v_exp_core)
#define attn__v_exp ATTN__K(v_exp)
#define attn__v_exp_nonpos ATTN__K(v_exp_nonpos)
#define attn__v_normal_cdf ATTN__K(v_normal_cdf)
#define attn__row_max ATTN__K(row_max)
#define attn__row_exp_sum ATTN__K(row_exp_sum)
#define attn__row_affine ATTN__K(row_affine)
#define attn__softmax_rows_simd ATTN__K(softmax_rows)
#define attn__log_softmax_rows_simd ATTN__K(log_softmax_rows)
#define attn__layernorm_rows_simd ATTN__K(layernorm_rows)
#define attn__gelu_simd ATTN__K(gelu)
#define attn__gelu_backward_simd ATTN__K(gelu_backward)
#define attn__exp_simd ATTN__K(exp)
#define attn__add_simd ATTN__K(add)
#define attn__sub_simd ATTN__K(sub)
#define attn__mul_simd ATTN__K(mul)
#define attn__scale_simd ATTN__K(scale)
#define attn__axpy_simd ATTN__K(axpy)
#define attn__relu_simd ATTN__K(relu)
#define attn__update_simd ATTN__K(update)
#define attn__sum_simd ATTN__K(sum)
#define attn__dot_simd ATTN__K(dot)

#define ATTN__EXP_HI 88.3762626647949f
#define ATTN__EXP_LO -87.3365478515625f
#define ATTN__EACH(n, stmt)                                                              \
    do {                                                                                 \
        size_t i_ = 0;                                                                   \
        for (; i_ + ATTN__W <= (n); i_ += ATTN__W) { const size_t k_ = ATTN__W; stmt; }  \
        if (i_ < (n)) { const size_t k_ = (n) - i_; stmt; }                              \
    } while (0)
#define ATTN__LD(p) (k_ == ATTN__W ? attn__v_load((p) + i_) : attn__v_load_part((p) + i_, k_, 0.0f))
#define ATTN__ST(p, v) (k_ == ATTN__W ? attn__v_store((p) + i_, v) : attn__v_store_part((p) + i_, v, k_))

/* Tails through a full vector, so they get exactly the same arithmetic (sets
   with masked loads and stores define these two themselves). */
#define ATTN__SIMD_PARTS_BY_COPY \
ATTN__TARGET static inline attn__v attn__v_load_part(const float *p, size_t n, float fill) { \
    float tmp[ATTN__W]; \
    size_t i; \
    for (i = 0; i < ATTN__W; i++) tmp[i] = i < n ? p[i] : fill; \
    return attn__v_load(tmp); \
} \
ATTN__TARGET static inline void attn__v_store_part(float *p, attn__v v, size_t n) { \
    float tmp[ATTN__W]; \
    size_t i; \
    attn__v_store(tmp, v); \
    for (i = 0; i < n; i++) p[i] = tmp[i]; \
}

#define ATTN__SIMD_KERNELS \
/* exp(x): x = n ln2 + r with |r| <= ln2/2 (Cody-Waite, ln2 split in two), then \
   e^r by a degree-6 polynomial (fitted by tools/fit_exp.py: truncation 3e-9 \
   relative) and 2^n built in the exponent bits. Max relative error 4e-7 over \
   [-87.3, 88.3] (the tests check it). Below -87.34 -> 0, above 88.37 -> +inf. \
   The core wants c already clamped to [ATTN__EXP_LO, ATTN__EXP_HI]. \
   Rounding adds 1.5 * 2^23 + 127: the sum's low mantissa bits then hold n + 127 \
   (1..254), so shifting its bit pattern left by 23 is 2^n, with no conversion. */ \
ATTN__TARGET static inline attn__v attn__v_exp_core(attn__v c) { \
    attn__v magic = attn__v_set(12583039.0f); /* 1.5 * 2^23 + 127 */ \
    attn__v t = attn__v_fma(c, attn__v_set(1.44269504088896341f), magic); \
    attn__v n = attn__v_sub(t, magic); \
    attn__v r = attn__v_fma(n, attn__v_set(-0.693145751953125f), c); \
    attn__v p; \
    r = attn__v_fma(n, attn__v_set(-1.428606765330187e-06f), r); \
    p = attn__v_set(1.381461104e-03f); \
    p = attn__v_fma(p, r, attn__v_set(8.368710080e-03f)); \
    p = attn__v_fma(p, r, attn__v_set(4.166838741e-02f)); \
    p = attn__v_fma(p, r, attn__v_set(1.666652069e-01f)); \
    p = attn__v_fma(p, r, attn__v_set(4.999999345e-01f)); \
    p = attn__v_fma(p, r, attn__v_set(1.0f)); \
    p = attn__v_fma(p, r, attn__v_set(1.0f)); \
    return attn__v_mul(p, attn__v_low_bits_to_exponent(t)); \
} \
ATTN__TARGET static inline attn__v attn__v_exp(attn__v x) { \
    attn__v c = attn__v_min(attn__v_set(ATTN__EXP_HI), attn__v_max(attn__v_set(ATTN__EXP_LO), x)); \
    return attn__v_zero_below(x, attn__v_inf_above(x, attn__v_exp_core(c), ATTN__EXP_HI), ATTN__EXP_LO); \
} \
/* exp(x) for x <= 0 (or -inf, or NaN), as softmax has after subtracting the max. */ \
ATTN__TARGET static inline attn__v attn__v_exp_nonpos(attn__v x) { \
    return attn__v_zero_below(x, attn__v_exp_core(attn__v_max(attn__v_set(ATTN__EXP_LO), x)), ATTN__EXP_LO); \
} \
\
/* Phi(x) and phi(x) by the formula of attn__normal_cdf (see there). */ \
ATTN__TARGET static inline attn__v attn__v_normal_cdf(attn__v x, attn__v *pdf) { \
    const float *g = attn__erfc_coef; \
    /* Clamping to [-14, 14], where Phi is already exactly 0 or 1 in float, \
       keeps the arithmetic finite; NaN stays NaN (x is the operand max/min \
       pass through). */ \
    attn__v xc = attn__v_min(attn__v_set(14.0f), attn__v_max(attn__v_set(-14.0f), x)); \
    attn__v u = attn__v_mul(attn__v_abs(xc), attn__v_set(0.70710678118654752f)); \
    attn__v one = attn__v_set(1.0f); \
    attn__v t = attn__v_div(one, attn__v_fma(u, attn__v_set(0.5f), one)); \
    attn__v p = attn__v_set(g[0]), xh, xl, b, exp_b, e, half; \
    int i; \
    for (i = 1; i < 11; i++) p = attn__v_fma(p, t, attn__v_set(g[i])); \
    /* exp(-x^2/2) from x, not from the rounded u. With x = xh + xl, xh*xh is \
       exact and b = -(2 xh + xl) xl / 2 is small (|b| < 0.1 where the result \
       is not 0), so exp(-xh^2/2) * (degree-4 series of e^b) needs no fused \
       multiply-add and stays accurate. */ \
    xh = attn__v_high_half(xc); \
    xl = attn__v_sub(xc, xh); \
    b = attn__v_mul(attn__v_mul(attn__v_fma(xh, attn__v_set(2.0f), xl), xl), attn__v_set(-0.5f)); \
    exp_b = attn__v_fma(b, attn__v_set(1.0f / 24.0f), attn__v_set(1.0f / 6.0f)); \
    exp_b = attn__v_fma(exp_b, b, attn__v_set(0.5f)); \
    exp_b = attn__v_fma(exp_b, b, one); \
    exp_b = attn__v_fma(exp_b, b, one); \
    e = attn__v_mul(attn__v_exp(attn__v_mul(attn__v_mul(xh, xh), attn__v_set(-0.5f))), exp_b); \
    if (pdf) *pdf = attn__v_mul(e, attn__v_set(0.39894228040143268f)); \
    half = attn__v_mul(attn__v_mul(e, attn__v_set(0.5f)), attn__v_mul(t, p)); \
    return attn__v_select_nonneg(xc, attn__v_sub(one, half), half); \
} \
\
/* One elementwise loop for the vector kernels: stmt sees i_ (the offset) and k_ \
   (lanes in play, ATTN__W except at the tail). */ \
\
ATTN__TARGET static float attn__row_max(int n, const float *x) { \
    attn__v m0 = attn__v_set(-INFINITY), m1 = m0; \
    int j = 0; \
    for (; j + 2 * ATTN__W <= n; j += 2 * ATTN__W) { \
        m0 = attn__v_max(m0, attn__v_load(x + j)); \
        m1 = attn__v_max(m1, attn__v_load(x + j + ATTN__W)); \
    } \
    for (; j + ATTN__W <= n; j += ATTN__W) m0 = attn__v_max(m0, attn__v_load(x + j)); \
    if (j < n) m1 = attn__v_max(m1, attn__v_load_part(x + j, (size_t)(n - j), -INFINITY)); \
    return attn__v_hmax(attn__v_max(m0, m1)); \
} \
\
/* sum of exp(x - m); also stores the exps in y when y is not NULL */ \
ATTN__TARGET static float attn__row_exp_sum(int n, const float *x, float m, float *y) { \
    attn__v vm = attn__v_set(m), s0 = attn__v_set(0.0f), s1 = s0; \
    int j = 0; \
    for (; j + 2 * ATTN__W <= n; j += 2 * ATTN__W) { \
        attn__v e0 = attn__v_exp_nonpos(attn__v_sub(attn__v_load(x + j), vm)); \
        attn__v e1 = attn__v_exp_nonpos(attn__v_sub(attn__v_load(x + j + ATTN__W), vm)); \
        if (y) { attn__v_store(y + j, e0); attn__v_store(y + j + ATTN__W, e1); } \
        s0 = attn__v_add(s0, e0); \
        s1 = attn__v_add(s1, e1); \
    } \
    for (; j < n; j += ATTN__W) { \
        size_t k = (size_t)ATTN__MIN(ATTN__W, n - j); \
        attn__v e = attn__v_exp_nonpos(attn__v_sub(attn__v_load_part(x + j, k, -INFINITY), vm)); \
        if (y) attn__v_store_part(y + j, e, k); \
        s0 = attn__v_add(s0, e); \
    } \
    return attn__v_hsum(attn__v_add(s0, s1)); \
} \
\
/* y = (x + add) * mul over a row */ \
ATTN__TARGET static void attn__row_affine(int n, const float *x, float add, float mul, float *y) { \
    attn__v va = attn__v_set(add), vm = attn__v_set(mul); \
    int j = 0; \
    for (; j + ATTN__W <= n; j += ATTN__W) attn__v_store(y + j, attn__v_mul(attn__v_add(attn__v_load(x + j), va), vm)); \
    if (j < n) { \
        size_t k = (size_t)(n - j); \
        attn__v_store_part(y + j, attn__v_mul(attn__v_add(attn__v_load_part(x + j, k, 0.0f), va), vm), k); \
    } \
} \
\
ATTN__TARGET static void attn__softmax_rows_simd(int rows, int cols, const float *x, int ldx, float *y, int ldy) { \
    int r; \
    for (r = 0; r < rows; r++) { \
        const float *xr = x + (size_t)r * ldx; \
        float *yr = y + (size_t)r * ldy; \
        float m = attn__row_max(cols, xr); \
        float s = attn__row_exp_sum(cols, xr, m, yr); \
        attn__row_affine(cols, yr, 0.0f, 1.0f / s, yr); \
    } \
} \
\
ATTN__TARGET static void attn__log_softmax_rows_simd(int rows, int cols, const float *x, int ldx, float *y, int ldy) { \
    int r; \
    for (r = 0; r < rows; r++) { \
        const float *xr = x + (size_t)r * ldx; \
        float m = attn__row_max(cols, xr); \
        float lse = logf(attn__row_exp_sum(cols, xr, m, NULL)); \
        /* (x - m) - lse, as the reference does, to keep the large terms apart */ \
        attn__v vm = attn__v_set(m), vl = attn__v_set(lse); \
        float *yr = y + (size_t)r * ldy; \
        int j = 0; \
        for (; j + ATTN__W <= cols; j += ATTN__W) \
            attn__v_store(yr + j, attn__v_sub(attn__v_sub(attn__v_load(xr + j), vm), vl)); \
        if (j < cols) { \
            size_t k = (size_t)(cols - j); \
            attn__v_store_part(yr + j, attn__v_sub(attn__v_sub(attn__v_load_part(xr + j, k, 0.0f), vm), vl), k); \
        } \
    } \
} \
\
ATTN__TARGET static void attn__layernorm_rows_simd(int rows, int cols, const float *x, int ldx, \
                                                   const float *gamma, const float *beta, float eps, \
                                                   float *y, int ldy, float *mean, float *rstd) { \
    int r, j; \
    for (r = 0; r < rows; r++) { \
        const float *xr = x + (size_t)r * ldx; \
        float *yr = y + (size_t)r * ldy; \
        attn__v s0 = attn__v_set(0.0f), s1 = s0, vmu, vrs; \
        float mu, var, rs; \
        for (j = 0; j + ATTN__W <= cols; j += ATTN__W) s0 = attn__v_add(s0, attn__v_load(xr + j)); \
        if (j < cols) s1 = attn__v_load_part(xr + j, (size_t)(cols - j), 0.0f); \
        mu = attn__v_hsum(attn__v_add(s0, s1)) / (float)cols; \
        vmu = attn__v_set(mu); \
        s0 = attn__v_set(0.0f); \
        s1 = s0; \
        for (j = 0; j + ATTN__W <= cols; j += ATTN__W) { \
            attn__v d = attn__v_sub(attn__v_load(xr + j), vmu); \
            s0 = attn__v_fma(d, d, s0); \
        } \
        if (j < cols) { \
            attn__v d = attn__v_sub(attn__v_load_part(xr + j, (size_t)(cols - j), mu), vmu); \
            s1 = attn__v_mul(d, d); \
        } \
        var = attn__v_hsum(attn__v_add(s0, s1)) / (float)cols; \
        rs = 1.0f / sqrtf(var + eps); \
        vrs = attn__v_set(rs); \
        ATTN__EACH((size_t)cols, { \
            attn__v v = attn__v_mul(attn__v_sub(ATTN__LD(xr), vmu), vrs); \
            attn__v g = gamma ? ATTN__LD(gamma) : attn__v_set(1.0f); \
            attn__v b = beta ? ATTN__LD(beta) : attn__v_set(0.0f); \
            ATTN__ST(yr, attn__v_fma(v, g, b)); \
        }); \
        if (mean) mean[r] = mu; \
        if (rstd) rstd[r] = rs; \
    } \
} \
\
ATTN__TARGET static void attn__gelu_simd(size_t n, const float *x, float *y) { \
    ATTN__EACH(n, { \
        attn__v v = ATTN__LD(x); \
        ATTN__ST(y, attn__v_mul(v, attn__v_normal_cdf(v, NULL))); \
    }); \
} \
ATTN__TARGET static void attn__gelu_backward_simd(size_t n, const float *x, const float *dy, float *dx) { \
    attn__v pdf; \
    ATTN__EACH(n, { \
        attn__v v = ATTN__LD(x); \
        attn__v cdf = attn__v_normal_cdf(v, &pdf); \
        ATTN__ST(dx, attn__v_fma(ATTN__LD(dy), attn__v_fma(v, pdf, cdf), ATTN__LD(dx))); \
    }); \
} \
ATTN__TARGET static void attn__exp_simd(size_t n, const float *x, float *y) { \
    ATTN__EACH(n, ATTN__ST(y, attn__v_exp(ATTN__LD(x)))); \
} \
ATTN__TARGET static void attn__add_simd(size_t n, const float *a, const float *b, float *y) { \
    ATTN__EACH(n, ATTN__ST(y, attn__v_add(ATTN__LD(a), ATTN__LD(b)))); \
} \
ATTN__TARGET static void attn__sub_simd(size_t n, const float *a, const float *b, float *y) { \
    ATTN__EACH(n, ATTN__ST(y, attn__v_sub(ATTN__LD(a), ATTN__LD(b)))); \
} \
ATTN__TARGET static void attn__mul_simd(size_t n, const float *a, const float *b, float *y) { \
    ATTN__EACH(n, ATTN__ST(y, attn__v_mul(ATTN__LD(a), ATTN__LD(b)))); \
} \
ATTN__TARGET static void attn__scale_simd(size_t n, float s, const float *x, float *y) { \
    attn__v vs = attn__v_set(s); \
    ATTN__EACH(n, ATTN__ST(y, attn__v_mul(vs, ATTN__LD(x)))); \
} \
ATTN__TARGET static void attn__axpy_simd(size_t n, float alpha, const float *x, float *y) { \
    attn__v va = attn__v_set(alpha); \
    ATTN__EACH(n, ATTN__ST(y, attn__v_fma(va, ATTN__LD(x), ATTN__LD(y)))); \
} \
ATTN__TARGET static void attn__relu_simd(size_t n, const float *x, float *y) { \
    ATTN__EACH(n, ATTN__ST(y, attn__v_relu(ATTN__LD(x)))); \
} \
/* attn__update_ref with vectors (fused where it fuses; plain ARMv7 NEON has no \
   fused op, so there the last bit can differ from PyTorch) */ \
ATTN__TARGET static void attn__update_simd(size_t n, const attn__update *u, float *w, const float *g, float *m, float *v) { \
    attn__v wd = attn__v_set(u->wd), lr_neg = attn__v_set(u->lr_neg), eps = attn__v_set(u->eps); \
    int l2 = u->wd != 0.0f && u->kind != 2; \
    if (u->kind == 0) { \
        attn__v mom = attn__v_set(u->mom), damp = attn__v_set(u->damp); \
        ATTN__EACH(n, { \
            attn__v gk = l2 ? attn__v_fma(ATTN__LD(w), wd, ATTN__LD(g)) : ATTN__LD(g); \
            if (m) { \
                attn__v mk = u->first ? gk : attn__v_fma(gk, damp, attn__v_mul(ATTN__LD(m), mom)); \
                ATTN__ST(m, mk); \
                gk = u->nesterov ? attn__v_fma(mk, mom, gk) : mk; \
            } \
            ATTN__ST(w, attn__v_fma(gk, lr_neg, ATTN__LD(w))); \
        }); \
    } else if (u->kind == 3) { \
        ATTN__EACH(n, { \
            attn__v gk = l2 ? attn__v_fma(ATTN__LD(w), wd, ATTN__LD(g)) : ATTN__LD(g); \
            attn__v mk = attn__v_add(ATTN__LD(m), attn__v_mul(gk, gk)); \
            ATTN__ST(m, mk); \
            ATTN__ST(w, attn__v_add(ATTN__LD(w), attn__v_div(attn__v_mul(lr_neg, gk), attn__v_add(attn__v_sqrt(mk), eps)))); \
        }); \
    } else { \
        attn__v b1 = attn__v_set(u->b1), one_b1 = attn__v_set(u->one_b1), b2 = attn__v_set(u->b2); \
        attn__v one_b2 = attn__v_set(u->one_b2), bc2 = attn__v_set(u->bc2_sqrt), decay = attn__v_set(u->decay); \
        ATTN__EACH(n, { \
            attn__v gk = l2 ? attn__v_fma(ATTN__LD(w), wd, ATTN__LD(g)) : ATTN__LD(g); \
            attn__v wk = u->kind == 2 ? attn__v_mul(ATTN__LD(w), decay) : ATTN__LD(w); \
            attn__v mk = attn__v_fma(gk, one_b1, attn__v_mul(ATTN__LD(m), b1)); \
            attn__v vk = attn__v_add(attn__v_mul(ATTN__LD(v), b2), attn__v_mul(attn__v_mul(one_b2, gk), gk)); \
            attn__v denom = attn__v_add(attn__v_div(attn__v_sqrt(vk), bc2), eps); \
            ATTN__ST(m, mk); \
            ATTN__ST(v, vk); \
            ATTN__ST(w, attn__v_add(wk, attn__v_div(attn__v_mul(lr_neg, mk), denom))); \
        }); \
    } \
} \
\
ATTN__TARGET static float attn__sum_simd(size_t n, const float *x) { \
    attn__v s = attn__v_set(0.0f); \
    ATTN__EACH(n, s = attn__v_add(s, ATTN__LD(x))); \
    return attn__v_hsum(s); \
} \
ATTN__TARGET static float attn__dot_simd(size_t n, const float *a, const float *b) { \
    attn__v s = attn__v_set(0.0f); \
    ATTN__EACH(n, s = attn__v_fma(ATTN__LD(a), ATTN__LD(b), s)); \
    return attn__v_hsum(s); \
}
#endif /* SIMD bodies */

/* ---- 4d. The instruction sets: each one's primitives, then its kernels. ---- */
#if defined(ATTN__X86)
/* AVX2 + FMA: 8 lanes. */
#  define ATTN__K(name) attn__avx2_##name
#  define ATTN__W 8
#  define ATTN__TARGET ATTN__TARGET_AVX2
typedef __m256 attn__v;
ATTN__TARGET static inline attn__v attn__v_load(const float *p) { return _mm256_loadu_ps(p); }
ATTN__TARGET static inline void attn__v_store(float *p, attn__v v) { _mm256_storeu_ps(p, v); }
ATTN__TARGET static inline attn__v attn__v_set(float s) { return _mm256_set1_ps(s); }
ATTN__TARGET static inline attn__v attn__v_add(attn__v a, attn__v b) { return _mm256_add_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_sub(attn__v a, attn__v b) { return _mm256_sub_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_mul(attn__v a, attn__v b) { return _mm256_mul_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_div(attn__v a, attn__v b) { return _mm256_div_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_sqrt(attn__v a) { return _mm256_sqrt_ps(a); }
/* a * b + c, fused */
ATTN__TARGET static inline attn__v attn__v_fma(attn__v a, attn__v b, attn__v c) { return _mm256_fmadd_ps(a, b, c); }
/* max/min return the second operand when one is NaN: callers put x second. */
ATTN__TARGET static inline attn__v attn__v_max(attn__v a, attn__v b) { return _mm256_max_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_min(attn__v a, attn__v b) { return _mm256_min_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_abs(attn__v a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* max(x, 0) with NaN -> 0, like the reference (maxps returns its second operand on NaN) */
ATTN__TARGET static inline attn__v attn__v_relu(attn__v x) { return _mm256_max_ps(x, _mm256_setzero_ps()); }
/* x with the low 12 mantissa bits cleared: its square is exact in float */
ATTN__TARGET static inline attn__v attn__v_high_half(attn__v x) {
    return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32((int)0xFFFFF000u)));
}
/* where x >= 0 (not NaN) pick a, else b */
ATTN__TARGET static inline attn__v attn__v_select_nonneg(attn__v x, attn__v a, attn__v b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
}
ATTN__TARGET static inline float attn__v_hsum(attn__v v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
ATTN__TARGET static inline float attn__v_hmax(attn__v v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
/* the low 9 bits of t's pattern moved to the top (see attn__v_exp_core) */
ATTN__TARGET static inline attn__v attn__v_low_bits_to_exponent(attn__v t) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
}
/* y, but +inf where x > hi */
ATTN__TARGET static inline attn__v attn__v_inf_above(attn__v x, attn__v y, float hi) {
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(hi), _CMP_GT_OQ));
}
/* y, but 0 where x < lo */
ATTN__TARGET static inline attn__v attn__v_zero_below(attn__v x, attn__v y, float lo) {
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(lo), _CMP_LT_OQ), y);
}
ATTN__SIMD_PARTS_BY_COPY
ATTN__SIMD_KERNELS
#  undef ATTN__K
#  undef ATTN__W
#  undef ATTN__TARGET

#  if defined(ATTN__AVX512)
#    if defined(__GNUC__) && !defined(__clang__)
       /* g++ 12 warns inside its own AVX-512 headers (their _mm512_undefined_*
          idiom reads as uninitialized once inlined): not ours to fix */
#      pragma GCC diagnostic push
#      pragma GCC diagnostic ignored "-Wuninitialized"
#      pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    endif
/* AVX-512 (F, DQ, BW, VL): 16 lanes, 32 registers, and masks for the tails. */
#    define ATTN__K(name) attn__avx512_##name
#    define ATTN__W 16
#    define ATTN__TARGET ATTN__TARGET_AVX512
typedef __m512 attn__v;
ATTN__TARGET static inline attn__v attn__v_load(const float *p) { return _mm512_loadu_ps(p); }
ATTN__TARGET static inline void attn__v_store(float *p, attn__v v) { _mm512_storeu_ps(p, v); }
ATTN__TARGET static inline attn__v attn__v_set(float s) { return _mm512_set1_ps(s); }
ATTN__TARGET static inline attn__v attn__v_add(attn__v a, attn__v b) { return _mm512_add_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_sub(attn__v a, attn__v b) { return _mm512_sub_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_mul(attn__v a, attn__v b) { return _mm512_mul_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_div(attn__v a, attn__v b) { return _mm512_div_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_sqrt(attn__v a) { return _mm512_sqrt_ps(a); }
ATTN__TARGET static inline attn__v attn__v_fma(attn__v a, attn__v b, attn__v c) { return _mm512_fmadd_ps(a, b, c); }
/* like AVX2's maxps/minps: the second operand when one is NaN */
ATTN__TARGET static inline attn__v attn__v_max(attn__v a, attn__v b) { return _mm512_max_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_min(attn__v a, attn__v b) { return _mm512_min_ps(a, b); }
ATTN__TARGET static inline attn__v attn__v_abs(attn__v a) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF)));
}
ATTN__TARGET static inline attn__v attn__v_relu(attn__v x) { return _mm512_max_ps(x, _mm512_setzero_ps()); }
ATTN__TARGET static inline attn__v attn__v_high_half(attn__v x) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0xFFFFF000u)));
}
/* mask_blend(k, a, b) takes b where k is set */
ATTN__TARGET static inline attn__v attn__v_select_nonneg(attn__v x, attn__v a, attn__v b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), b, a);
}
/* the two 256-bit halves added, then AVX2's order */
ATTN__TARGET static inline float attn__v_hsum(attn__v v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
ATTN__TARGET static inline float attn__v_hmax(attn__v v) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
ATTN__TARGET static inline attn__v attn__v_low_bits_to_exponent(attn__v t) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
}
ATTN__TARGET static inline attn__v attn__v_inf_above(attn__v x, attn__v y, float hi) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(hi), _CMP_GT_OQ), y, _mm512_set1_ps(INFINITY));
}
ATTN__TARGET static inline attn__v attn__v_zero_below(attn__v x, attn__v y, float lo) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_LT_OQ), y, _mm512_setzero_ps());
}
/* Tails with masked loads and stores (masked-off lanes are never touched, so
   they cannot fault): lanes past n read as fill. */
ATTN__TARGET static inline attn__v attn__v_load_part(const float *p, size_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1u), p);
}
ATTN__TARGET static inline void attn__v_store_part(float *p, attn__v v, size_t n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v);
}
ATTN__SIMD_KERNELS
#    undef ATTN__K
#    undef ATTN__W
#    undef ATTN__TARGET
#    if defined(__GNUC__) && !defined(__clang__)
#      pragma GCC diagnostic pop
#    endif
#  endif /* ATTN__AVX512 */
#elif defined(ATTN__NEON)
#  define ATTN__K(name) attn__neon_##name
#  define ATTN__W 4
#  define ATTN__TARGET
typedef float32x4_t attn__v;
#  if defined(__aarch64__) || defined(_M_ARM64) || defined(__ARM_FEATURE_FMA)
#    define ATTN__NEON_FMA(acc, a, b) vfmaq_f32(acc, a, b)
#  else
#    define ATTN__NEON_FMA(acc, a, b) vmlaq_f32(acc, a, b) /* no fused op on plain ARMv7 NEON */
#  endif
static inline attn__v attn__v_load(const float *p) { return vld1q_f32(p); }
static inline void attn__v_store(float *p, attn__v v) { vst1q_f32(p, v); }
static inline attn__v attn__v_set(float s) { return vdupq_n_f32(s); }
static inline attn__v attn__v_add(attn__v a, attn__v b) { return vaddq_f32(a, b); }
static inline attn__v attn__v_sub(attn__v a, attn__v b) { return vsubq_f32(a, b); }
static inline attn__v attn__v_mul(attn__v a, attn__v b) { return vmulq_f32(a, b); }
static inline attn__v attn__v_div(attn__v a, attn__v b) {
#  if defined(__aarch64__) || defined(_M_ARM64)
    return vdivq_f32(a, b);
#  else /* ARMv7 has no vector divide: reciprocal estimate and two Newton steps */
    float32x4_t r = vrecpeq_f32(b);
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    return vmulq_f32(a, r);
#  endif
}
static inline attn__v attn__v_fma(attn__v a, attn__v b, attn__v c) { return ATTN__NEON_FMA(c, a, b); }
static inline attn__v attn__v_sqrt(attn__v a) {
#  if defined(__aarch64__) || defined(_M_ARM64)
    return vsqrtq_f32(a);
#  else /* ARMv7: per lane, to stay correctly rounded like PyTorch's sqrt */
    float t[4];
    vst1q_f32(t, a);
    t[0] = sqrtf(t[0]); t[1] = sqrtf(t[1]); t[2] = sqrtf(t[2]); t[3] = sqrtf(t[3]);
    return vld1q_f32(t);
#  endif
}
static inline attn__v attn__v_max(attn__v a, attn__v b) { return vmaxq_f32(a, b); } /* NaN propagates */
static inline attn__v attn__v_min(attn__v a, attn__v b) { return vminq_f32(a, b); }
static inline attn__v attn__v_abs(attn__v a) { return vabsq_f32(a); }
static inline attn__v attn__v_high_half(attn__v x) {
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0xFFFFF000u)));
}
static inline attn__v attn__v_relu(attn__v x) { /* NaN -> 0, like the reference */
    return vbslq_f32(vcgtq_f32(x, vdupq_n_f32(0.0f)), x, vdupq_n_f32(0.0f));
}
static inline attn__v attn__v_select_nonneg(attn__v x, attn__v a, attn__v b) {
    return vbslq_f32(vcgeq_f32(x, vdupq_n_f32(0.0f)), a, b);
}
static inline float attn__v_hsum(attn__v v) {
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
}
static inline float attn__v_hmax(attn__v v) {
    float32x2_t s = vmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(s, s), 0);
}
static inline attn__v attn__v_low_bits_to_exponent(attn__v t) {
    return vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(t), 23));
}
static inline attn__v attn__v_inf_above(attn__v x, attn__v y, float hi) {
    return vbslq_f32(vcgtq_f32(x, vdupq_n_f32(hi)), vdupq_n_f32(INFINITY), y);
}
static inline attn__v attn__v_zero_below(attn__v x, attn__v y, float lo) {
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), vcltq_f32(x, vdupq_n_f32(lo))));
}
ATTN__SIMD_PARTS_BY_COPY
ATTN__SIMD_KERNELS
#  undef ATTN__K
#  undef ATTN__W
#  undef ATTN__TARGET
#endif

/* ---- 4e. GEMM micro-kernels. Each keeps an MR x NR tile of C in registers for
   the whole depth kc. The write-back goes through one helper per row, and edge
   tiles go through a full-size scratch tile with the same helper, so every C
   element sees the same operations. ---- */
#if defined(ATTN__X86)
#  define ATTN__MR 6
#  define ATTN__NR 16
/* c = alpha * acc + beta * c over 16 floats (beta == 0: c is not read) */
ATTN__TARGET_AVX2 static inline void attn__avx_store_row(float *c, __m256 x0, __m256 x1, float alpha, float beta) {
    __m256 va = _mm256_set1_ps(alpha);
    x0 = _mm256_mul_ps(va, x0);
    x1 = _mm256_mul_ps(va, x1);
    if (beta != 0.0f) {
        __m256 vb = _mm256_set1_ps(beta);
        x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), x0);
        x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), x1);
    }
    _mm256_storeu_ps(c, x0);
    _mm256_storeu_ps(c + 8, x1);
}

ATTN__TARGET_AVX2 static void attn__microkernel_avx2(int kc, const float *a, int lda, const float *b, float *c,
                                                int ldc, int m, int n, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    float tile[ATTN__MR * ATTN__NR];
    float *out = c;
    int ldo = ldc, k, i, j;
#  define ATTN__ROW(r, addr)                          \
        av = _mm256_broadcast_ss(addr);                 \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);     \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);
    if (lda == 0) {
        for (k = 0; k < kc; k++, a += ATTN__MR, b += ATTN__NR) {
            __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
            ATTN__ROW(0, a) ATTN__ROW(1, a + 1) ATTN__ROW(2, a + 2)
            ATTN__ROW(3, a + 3) ATTN__ROW(4, a + 4) ATTN__ROW(5, a + 5)
        }
    } else { /* rows past m repeat row 0: never read outside A, results dropped */
        const float *a0 = a, *a1 = m > 1 ? a + lda : a, *a2 = m > 2 ? a + 2 * (size_t)lda : a;
        const float *a3 = m > 3 ? a + 3 * (size_t)lda : a, *a4 = m > 4 ? a + 4 * (size_t)lda : a;
        const float *a5 = m > 5 ? a + 5 * (size_t)lda : a;
        for (k = 0; k < kc; k++, b += ATTN__NR) {
            __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
            ATTN__ROW(0, a0 + k) ATTN__ROW(1, a1 + k) ATTN__ROW(2, a2 + k)
            ATTN__ROW(3, a3 + k) ATTN__ROW(4, a4 + k) ATTN__ROW(5, a5 + k)
        }
    }
#  undef ATTN__ROW
    if (m < ATTN__MR || n < ATTN__NR) { /* edge: work on a scratch copy of the tile */
        out = tile;
        ldo = ATTN__NR;
        for (i = 0; i < ATTN__MR; i++)
            for (j = 0; j < ATTN__NR; j++)
                tile[i * ATTN__NR + j] = (i < m && j < n && beta != 0.0f) ? c[(size_t)i * ldc + j] : 0.0f;
    }
    attn__avx_store_row(out, c00, c01, alpha, beta);
    attn__avx_store_row(out + ldo, c10, c11, alpha, beta);
    attn__avx_store_row(out + 2 * ldo, c20, c21, alpha, beta);
    attn__avx_store_row(out + 3 * ldo, c30, c31, alpha, beta);
    attn__avx_store_row(out + 4 * ldo, c40, c41, alpha, beta);
    attn__avx_store_row(out + 5 * ldo, c50, c51, alpha, beta);
    if (out == tile)
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[(size_t)i * ldc + j] = tile[i * ATTN__NR + j];
}
/* An 8 x 8 block of src (rows lds apart) transposed into dst (rows ldd apart). */
ATTN__TARGET_AVX2 static inline void attn__transpose8_avx2(const float *src, int lds, float *dst, int ldd) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
    __m256 r2 = _mm256_loadu_ps(src + 2 * (size_t)lds), r3 = _mm256_loadu_ps(src + 3 * (size_t)lds);
    __m256 r4 = _mm256_loadu_ps(src + 4 * (size_t)lds), r5 = _mm256_loadu_ps(src + 5 * (size_t)lds);
    __m256 r6 = _mm256_loadu_ps(src + 6 * (size_t)lds), r7 = _mm256_loadu_ps(src + 7 * (size_t)lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * (size_t)ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * (size_t)ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * (size_t)ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * (size_t)ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * (size_t)ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * (size_t)ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/* A 16-column panel of transposed B: B's rows jp..jp+15 become the panel's
   columns, 8 x 8 blocks at a time (the scalar loop does one float a cycle). */
ATTN__TARGET_AVX2 static void attn__pack_bt_avx2(const float *B, int ldb, int kb, float *dst) {
    int k = 0, j;
    for (; k + 8 <= kb; k += 8) {
        attn__transpose8_avx2(B + k, ldb, dst + (size_t)k * ATTN__NR, ATTN__NR);
        attn__transpose8_avx2(B + 8 * (size_t)ldb + k, ldb, dst + (size_t)k * ATTN__NR + 8, ATTN__NR);
    }
    for (; k < kb; k++)
        for (j = 0; j < ATTN__NR; j++) dst[(size_t)k * ATTN__NR + j] = B[(size_t)j * ldb + k];
}
/* A 6-row panel of transposed A: 6 floats per k, through masked moves. */
ATTN__TARGET_AVX2 static void attn__pack_at_avx2(const float *A, int lda, int kb, float *dst) {
    const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    int k;
    for (k = 0; k < kb; k++, A += lda, dst += ATTN__MR) _mm256_maskstore_ps(dst, six, _mm256_maskload_ps(A, six));
}
/* A 16-column panel of B as it is: two vectors per row. */
ATTN__TARGET_AVX2 static void attn__pack_bn_avx2(const float *B, int ldb, int kb, float *dst) {
    int k;
    for (k = 0; k < kb; k++, B += ldb, dst += ATTN__NR) {
        _mm256_store_ps(dst, _mm256_loadu_ps(B));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(B + 8));
    }
}
#  if defined(ATTN__AVX512)
/* AVX-512: a 12 x 32 tile is 24 of the 32 zmm registers, and per step of k
   24 FMAs meet 2 panel loads and 12 broadcasts (folded into the FMAs), so the
   two FMA units stay the limit. */
#    define ATTN__AVX512_MR 12
#    define ATTN__AVX512_NR 32
/* c = alpha * acc + beta * c over 32 floats (beta == 0: c is not read) */
ATTN__TARGET_AVX512 static inline void attn__avx512_store_row(float *c, __m512 x0, __m512 x1, float alpha,
                                                              float beta) {
    __m512 va = _mm512_set1_ps(alpha);
    x0 = _mm512_mul_ps(va, x0);
    x1 = _mm512_mul_ps(va, x1);
    if (beta != 0.0f) {
        __m512 vb = _mm512_set1_ps(beta);
        x0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c), x0);
        x1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16), x1);
    }
    _mm512_storeu_ps(c, x0);
    _mm512_storeu_ps(c + 16, x1);
}

ATTN__TARGET_AVX512 static void attn__microkernel_avx512(int kc, const float *a, int lda, const float *b, float *c,
                                                         int ldc, int m, int n, float alpha, float beta) {
    __m512 z = _mm512_setzero_ps();
    __m512 c0_0 = z, c0_1 = z, c1_0 = z, c1_1 = z, c2_0 = z, c2_1 = z, c3_0 = z, c3_1 = z;
    __m512 c4_0 = z, c4_1 = z, c5_0 = z, c5_1 = z, c6_0 = z, c6_1 = z, c7_0 = z, c7_1 = z;
    __m512 c8_0 = z, c8_1 = z, c9_0 = z, c9_1 = z, c10_0 = z, c10_1 = z, c11_0 = z, c11_1 = z;
    float tile[ATTN__AVX512_MR * ATTN__AVX512_NR];
    float *out = c;
    int ldo = ldc, k, i, j;
#    define ATTN__ROW(r, addr)                              \
        av = _mm512_set1_ps(*(addr));                       \
        c##r##_0 = _mm512_fmadd_ps(av, b0, c##r##_0);       \
        c##r##_1 = _mm512_fmadd_ps(av, b1, c##r##_1);
#    define ATTN__ROWS(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11)                       \
        ATTN__ROW(0, a0) ATTN__ROW(1, a1) ATTN__ROW(2, a2) ATTN__ROW(3, a3) ATTN__ROW(4, a4)    \
        ATTN__ROW(5, a5) ATTN__ROW(6, a6) ATTN__ROW(7, a7) ATTN__ROW(8, a8) ATTN__ROW(9, a9)    \
        ATTN__ROW(10, a10) ATTN__ROW(11, a11)
    if (lda == 0) {
        for (k = 0; k < kc; k++, a += ATTN__AVX512_MR, b += ATTN__AVX512_NR) {
            __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
            ATTN__ROWS(a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, a + 7, a + 8, a + 9, a + 10, a + 11)
        }
    } else { /* rows past m repeat row 0: never read outside A, results dropped */
        const float *r[ATTN__AVX512_MR];
        for (i = 0; i < ATTN__AVX512_MR; i++) r[i] = i < m ? a + (size_t)i * lda : a;
        for (k = 0; k < kc; k++, b += ATTN__AVX512_NR) {
            __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
            ATTN__ROWS(r[0] + k, r[1] + k, r[2] + k, r[3] + k, r[4] + k, r[5] + k, r[6] + k, r[7] + k,
                       r[8] + k, r[9] + k, r[10] + k, r[11] + k)
        }
    }
#    undef ATTN__ROWS
#    undef ATTN__ROW
    if (m < ATTN__AVX512_MR || n < ATTN__AVX512_NR) { /* edge: work on a scratch copy of the tile */
        out = tile;
        ldo = ATTN__AVX512_NR;
        for (i = 0; i < ATTN__AVX512_MR; i++)
            for (j = 0; j < ATTN__AVX512_NR; j++)
                tile[i * ATTN__AVX512_NR + j] = (i < m && j < n && beta != 0.0f) ? c[(size_t)i * ldc + j] : 0.0f;
    }
    attn__avx512_store_row(out, c0_0, c0_1, alpha, beta);
    attn__avx512_store_row(out + ldo, c1_0, c1_1, alpha, beta);
    attn__avx512_store_row(out + 2 * ldo, c2_0, c2_1, alpha, beta);
    attn__avx512_store_row(out + 3 * ldo, c3_0, c3_1, alpha, beta);
    attn__avx512_store_row(out + 4 * ldo, c4_0, c4_1, alpha, beta);
    attn__avx512_store_row(out + 5 * ldo, c5_0, c5_1, alpha, beta);
    attn__avx512_store_row(out + 6 * ldo, c6_0, c6_1, alpha, beta);
    attn__avx512_store_row(out + 7 * ldo, c7_0, c7_1, alpha, beta);
    attn__avx512_store_row(out + 8 * ldo, c8_0, c8_1, alpha, beta);
    attn__avx512_store_row(out + 9 * ldo, c9_0, c9_1, alpha, beta);
    attn__avx512_store_row(out + 10 * ldo, c10_0, c10_1, alpha, beta);
    attn__avx512_store_row(out + 11 * ldo, c11_0, c11_1, alpha, beta);
    if (out == tile)
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[(size_t)i * ldc + j] = tile[i * ATTN__AVX512_NR + j];
}

/* A 32-column panel of transposed B, as four 8 x 8 transposes per 8 of k. */
ATTN__TARGET_AVX512 static void attn__pack_bt_avx512(const float *B, int ldb, int kb, float *dst) {
    int k = 0, j, q;
    for (; k + 8 <= kb; k += 8)
        for (q = 0; q < 4; q++)
            attn__transpose8_avx2(B + 8 * (size_t)q * ldb + k, ldb, dst + (size_t)k * ATTN__AVX512_NR + 8 * q,
                                  ATTN__AVX512_NR);
    for (; k < kb; k++)
        for (j = 0; j < ATTN__AVX512_NR; j++) dst[(size_t)k * ATTN__AVX512_NR + j] = B[(size_t)j * ldb + k];
}
/* A 12-row panel of transposed A: 12 floats per k, through masked moves. */
ATTN__TARGET_AVX512 static void attn__pack_at_avx512(const float *A, int lda, int kb, float *dst) {
    int k;
    for (k = 0; k < kb; k++, A += lda, dst += ATTN__AVX512_MR)
        _mm512_mask_storeu_ps(dst, 0x0FFF, _mm512_maskz_loadu_ps(0x0FFF, A));
}
/* A 32-column panel of B as it is: two vectors per row. */
ATTN__TARGET_AVX512 static void attn__pack_bn_avx512(const float *B, int ldb, int kb, float *dst) {
    int k;
    for (k = 0; k < kb; k++, B += ldb, dst += ATTN__AVX512_NR) {
        _mm512_store_ps(dst, _mm512_loadu_ps(B));
        _mm512_store_ps(dst + 16, _mm512_loadu_ps(B + 16));
    }
}
#  endif /* ATTN__AVX512 */
#elif defined(ATTN__NEON)
#  if defined(__aarch64__) || defined(_M_ARM64)
#    define ATTN__MR 8 /* 16 accumulators of 32 registers */
#  else
#    define ATTN__MR 4 /* ARMv7 has 16 q registers */
#  endif
#  define ATTN__NR 8
static inline void attn__neon_store_row(float *c, float32x4_t x0, float32x4_t x1, float alpha, float beta) {
    x0 = vmulq_n_f32(x0, alpha);
    x1 = vmulq_n_f32(x1, alpha);
    if (beta != 0.0f) {
        x0 = ATTN__NEON_FMA(x0, vld1q_f32(c), vdupq_n_f32(beta));
        x1 = ATTN__NEON_FMA(x1, vld1q_f32(c + 4), vdupq_n_f32(beta));
    }
    vst1q_f32(c, x0);
    vst1q_f32(c + 4, x1);
}

static void attn__microkernel_neon(int kc, const float *a, int lda, const float *b, float *c, int ldc,
                                   int m, int n, float alpha, float beta) {
    float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
#  if ATTN__MR == 8
    float32x4_t c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
#  endif
    float tile[ATTN__MR * ATTN__NR];
    float *out = c;
    int ldo = ldc, k, i, j;
    const float *ar[ATTN__MR]; /* row starts; rows past m repeat row 0 (results dropped) */
    size_t step = lda ? 1 : ATTN__MR;
    for (i = 0; i < ATTN__MR; i++) ar[i] = lda == 0 ? a + i : (i < m ? a + (size_t)i * lda : a);
    for (k = 0; k < kc; k++, b += ATTN__NR) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), av;
        size_t o = (size_t)k * step;
#  define ATTN__ROW(r)                                 \
        av = vld1q_dup_f32(ar[r] + o);                 \
        c##r##0 = ATTN__NEON_FMA(c##r##0, b0, av);     \
        c##r##1 = ATTN__NEON_FMA(c##r##1, b1, av);
        ATTN__ROW(0) ATTN__ROW(1) ATTN__ROW(2) ATTN__ROW(3)
#  if ATTN__MR == 8
        ATTN__ROW(4) ATTN__ROW(5) ATTN__ROW(6) ATTN__ROW(7)
#  endif
#  undef ATTN__ROW
    }
    if (m < ATTN__MR || n < ATTN__NR) {
        out = tile;
        ldo = ATTN__NR;
        for (i = 0; i < ATTN__MR; i++)
            for (j = 0; j < ATTN__NR; j++)
                tile[i * ATTN__NR + j] = (i < m && j < n && beta != 0.0f) ? c[(size_t)i * ldc + j] : 0.0f;
    }
    attn__neon_store_row(out, c00, c01, alpha, beta);
    attn__neon_store_row(out + ldo, c10, c11, alpha, beta);
    attn__neon_store_row(out + 2 * ldo, c20, c21, alpha, beta);
    attn__neon_store_row(out + 3 * ldo, c30, c31, alpha, beta);
#  if ATTN__MR == 8
    attn__neon_store_row(out + 4 * ldo, c40, c41, alpha, beta);
    attn__neon_store_row(out + 5 * ldo, c50, c51, alpha, beta);
    attn__neon_store_row(out + 6 * ldo, c60, c61, alpha, beta);
    attn__neon_store_row(out + 7 * ldo, c70, c71, alpha, beta);
#  endif
    if (out == tile)
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[(size_t)i * ldc + j] = tile[i * ATTN__NR + j];
}
#endif

/* The kernel sets this build has: each SIMD set's body from 4c, its GEMM
   micro-kernel on the blocked driver of 4b, and its optimizer update. */
#define ATTN__KERNEL_SET(P, id, mr, nr)                                                                       \
    { { id, attn__##P##_sgemm, attn__##P##_softmax_rows, attn__##P##_log_softmax_rows,                        \
        attn__##P##_layernorm_rows, attn__##P##_gelu, attn__##P##_gelu_backward, attn__##P##_exp,             \
        attn__##P##_add, attn__##P##_sub, attn__##P##_mul, attn__##P##_scale, attn__##P##_axpy,               \
        attn__##P##_relu, attn__##P##_sum, attn__##P##_dot },                                                 \
      mr, nr, attn__##P##_update, attn__##P##_row_max, attn__##P##_row_exp_sum }
#if defined(ATTN__X86)
static void attn__avx2_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc) {
    attn__sgemm_blocked(attn__microkernel_avx2, attn__pack_at_avx2, attn__pack_bt_avx2, attn__pack_bn_avx2, ATTN__MR, ATTN__NR, transA, transB, M, N, K,
                        alpha, A, lda, B, ldb, beta, C, ldc);
}
static const attn__kernel_set attn__kernels_avx2 = ATTN__KERNEL_SET(avx2, ATTN_SIMD_AVX2, ATTN__MR, ATTN__NR);
#  if defined(ATTN__AVX512)
static void attn__avx512_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                               const float *B, int ldb, float beta, float *C, int ldc) {
    attn__sgemm_blocked(attn__microkernel_avx512, attn__pack_at_avx512, attn__pack_bt_avx512, attn__pack_bn_avx512, ATTN__AVX512_MR, ATTN__AVX512_NR, transA,
                        transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static const attn__kernel_set attn__kernels_avx512 =
    ATTN__KERNEL_SET(avx512, ATTN_SIMD_AVX512, ATTN__AVX512_MR, ATTN__AVX512_NR);
#  endif
#elif defined(ATTN__NEON)
static void attn__neon_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc) {
    attn__sgemm_blocked(attn__microkernel_neon, NULL, NULL, NULL, ATTN__MR, ATTN__NR, transA, transB, M, N, K, alpha, A, lda,
                        B, ldb, beta, C, ldc);
}
static const attn__kernel_set attn__kernels_neon = ATTN__KERNEL_SET(neon, ATTN_SIMD_NEON, ATTN__MR, ATTN__NR);
#endif

/* ---- 4f. Dispatch and the public kernels ---- */

/* The set the library runs: the widest the CPU has, capped by the environment
   variable ATTN_SIMD (none, avx2 or avx512; anything else is ignored), read on
   first use. Asked once: cpuid traps to the hypervisor in a VM, and the
   answer cannot change. Every thread computes the same value, so the race on
   the cache is benign; relaxed atomics say so to ThreadSanitizer. */
#if defined(ATTN__X86)
static volatile int attn__cpu_simd_cache = -1, attn__simd_chosen_cache = -1;
#  if defined(__GNUC__) || defined(__clang__)
#    define ATTN__CACHE_LOAD(c) __atomic_load_n(&(c), __ATOMIC_RELAXED)
#    define ATTN__CACHE_STORE(c, v) __atomic_store_n(&(c), (v), __ATOMIC_RELAXED)
#  else
#    define ATTN__CACHE_LOAD(c) (c)
#    define ATTN__CACHE_STORE(c, v) ((c) = (v))
#  endif
static attn_simd attn__cpu_simd_cached(void) {
    int s = ATTN__CACHE_LOAD(attn__cpu_simd_cache);
    if (s < 0) {
        s = (int)attn__cpu_simd();
        ATTN__CACHE_STORE(attn__cpu_simd_cache, s);
    }
    return (attn_simd)s;
}
static attn_simd attn__simd_chosen(void) {
    int s = ATTN__CACHE_LOAD(attn__simd_chosen_cache);
    if (s < 0) {
        const char *cap;
        s = (int)attn__cpu_simd_cached();
#  if defined(_MSC_VER)
#    pragma warning(suppress : 4996) /* getenv: only read, never kept */
#  endif
        cap = getenv("ATTN_SIMD");
        if (cap && strcmp(cap, "none") == 0) s = ATTN_SIMD_NONE;
        else if (cap && strcmp(cap, "avx2") == 0 && s == ATTN_SIMD_AVX512) s = ATTN_SIMD_AVX2;
        ATTN__CACHE_STORE(attn__simd_chosen_cache, s);
    }
    return (attn_simd)s;
}
#endif

static const attn__kernel_set *attn__kernel_set_get(attn_simd simd) {
#if defined(ATTN__X86)
    attn_simd best = attn__cpu_simd_cached(); /* NONE < AVX2 < AVX512 on x86 */
    if (simd == ATTN_SIMD_AVX2 && (best == ATTN_SIMD_AVX2 || best == ATTN_SIMD_AVX512)) return &attn__kernels_avx2;
#  if defined(ATTN__AVX512)
    if (simd == ATTN_SIMD_AVX512 && best == ATTN_SIMD_AVX512) return &attn__kernels_avx512;
#  endif
#elif defined(ATTN__NEON)
    if (simd == ATTN_SIMD_NEON) return &attn__kernels_neon;
#endif
    return simd == ATTN_SIMD_NONE ? &attn__kernels_ref : NULL;
}

ATTN_API const attn_kernels *attn_kernels_get(attn_simd simd) {
    const attn__kernel_set *set = attn__kernel_set_get(simd);
    return set ? &set->pub : NULL;
}

/* The set every public kernel and op runs on. */
static const attn__kernel_set *attn__active_set(void) {
#if defined(ATTN__X86)
    return attn__kernel_set_get(attn__simd_chosen());
#elif defined(ATTN__NEON)
    return &attn__kernels_neon;
#else
    return &attn__kernels_ref;
#endif
}
static const attn_kernels *attn__kernels(void) { return &attn__active_set()->pub; }

ATTN_API attn_simd attn_simd_active(void) { return attn__kernels()->simd; }

/* Rows of C one micro-kernel call makes with kernel set k (k is always one of
   the sets above: the first member of its attn__kernel_set). */
static int attn__gemm_tile_rows(const attn_kernels *k) { return ((const attn__kernel_set *)(const void *)k)->gemm_mr; }
static int attn__gemm_tile_cols(const attn_kernels *k) { return ((const attn__kernel_set *)(const void *)k)->gemm_nr; }

static int attn__sgemm_args_ok(int transA, int transB, int M, int N, int K, const float *A, int lda,
                               const float *B, int ldb, const float *C, int ldc) {
    int a_width = transA ? M : K, b_width = transB ? K : N;
    if ((transA != 0 && transA != 1) || (transB != 0 && transB != 1)) return 0;
    if (M < 0 || N < 0 || K < 0) return 0;
    if (lda < ATTN__MAX(1, a_width) || ldb < ATTN__MAX(1, b_width) || ldc < ATTN__MAX(1, N)) return 0;
    if ((M > 0 && K > 0 && !A) || (N > 0 && K > 0 && !B) || (M > 0 && N > 0 && !C)) return 0;
    return 1;
}

ATTN_API void attn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!attn__sgemm_args_ok(transA, transB, M, N, K, A, lda, B, ldb, C, ldc)) return;
    attn__kernels()->sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A threaded GEMM is several independent GEMMs on bands of C. */
typedef struct attn__gemm_job {
    const attn_kernels *k;
    int transA, transB, M, N, K, lda, ldb, ldc, by_rows, band;
    float alpha, beta;
    const float *A, *B;
    float *C;
} attn__gemm_job;

static void attn__gemm_task(void *data, int task) {
    const attn__gemm_job *j = (const attn__gemm_job *)data;
    int start = task * j->band;
    if (j->by_rows) {
        int m = ATTN__MIN(j->band, j->M - start);
        if (m <= 0) return;
        j->k->sgemm(j->transA, j->transB, m, j->N, j->K, j->alpha,
                    j->transA ? j->A + start : j->A + (size_t)start * j->lda, j->lda, j->B, j->ldb,
                    j->beta, j->C + (size_t)start * j->ldc, j->ldc);
    } else {
        int n = ATTN__MIN(j->band, j->N - start);
        if (n <= 0) return;
        j->k->sgemm(j->transA, j->transB, j->M, n, j->K, j->alpha, j->A, j->lda,
                    j->transB ? j->B + (size_t)start * j->ldb : j->B + start, j->ldb,
                    j->beta, j->C + start, j->ldc);
    }
}

ATTN_API attn_status attn_sgemm_mt(const attn_threads *threads, int transA, int transB, int M, int N,
                                   int K, float alpha, const float *A, int lda, const float *B, int ldb,
                                   float beta, float *C, int ldc) {
    attn__gemm_job j;
    int nt = attn__thread_count(threads), tasks;
    double flops = 2.0 * M * N * K;
    if (!attn__sgemm_args_ok(transA, transB, M, N, K, A, lda, B, ldb, C, ldc)) return ATTN_ERR_INVALID_ARGUMENT;
    j.k = attn__kernels();
    if (nt <= 1 || flops < 1e6) { /* below ~10 us of work a hand-off costs more than it saves */
        j.k->sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return ATTN_OK;
    }
    j.transA = transA; j.transB = transB; j.M = M; j.N = N; j.K = K;
    j.lda = lda; j.ldb = ldb; j.ldc = ldc; j.alpha = alpha; j.beta = beta;
    j.A = A; j.B = B; j.C = C;
    /* One band per thread, cut at whole micro-tiles so no band ends in a ragged
       tile (any cut gives the same bits; this one gives the least waste). */
    j.by_rows = M >= N;
    if (j.by_rows) {
        int mr = attn__gemm_tile_rows(j.k);
        j.band = ((M + nt - 1) / nt + mr - 1) / mr * mr;
        tasks = (M + j.band - 1) / j.band;
    } else {
        int nr = attn__gemm_tile_cols(j.k);
        j.band = ((N + nt - 1) / nt + nr - 1) / nr * nr;
        tasks = (N + j.band - 1) / j.band;
    }
    attn__parallel(threads, tasks, attn__gemm_task, &j);
    return ATTN_OK;
}

/* Row kernels split their rows over threads the same way. */
typedef struct attn__rows_job {
    const attn_kernels *k;
    int kind, rows, cols, ldx, ldy, band;
    const float *x, *gamma, *beta;
    float *y, *mean, *rstd;
    float eps;
} attn__rows_job;

enum { ATTN__ROWS_SOFTMAX, ATTN__ROWS_LOG_SOFTMAX, ATTN__ROWS_LAYERNORM };

static void attn__rows_task(void *data, int task) {
    const attn__rows_job *j = (const attn__rows_job *)data;
    int r0 = task * j->band, n = ATTN__MIN(j->band, j->rows - r0);
    const float *x = j->x + (size_t)r0 * j->ldx;
    float *y = j->y + (size_t)r0 * j->ldy;
    if (n <= 0) return;
    if (j->kind == ATTN__ROWS_SOFTMAX) j->k->softmax_rows(n, j->cols, x, j->ldx, y, j->ldy);
    else if (j->kind == ATTN__ROWS_LOG_SOFTMAX) j->k->log_softmax_rows(n, j->cols, x, j->ldx, y, j->ldy);
    else j->k->layernorm_rows(n, j->cols, x, j->ldx, j->gamma, j->beta, j->eps, y, j->ldy,
                              j->mean ? j->mean + r0 : NULL, j->rstd ? j->rstd + r0 : NULL);
}

static void attn__rows_run(const attn_threads *threads, attn__rows_job *j) {
    int nt = attn__thread_count(threads);
    if (j->rows <= 0 || j->cols <= 0 || !j->x || !j->y || j->ldx < j->cols || j->ldy < j->cols) return;
    j->k = attn__kernels();
    if ((double)j->rows * j->cols < 32768.0) nt = 1; /* too little work to share */
    j->band = (j->rows + nt - 1) / nt;
    attn__parallel(threads, (j->rows + j->band - 1) / j->band, attn__rows_task, j);
}

ATTN_API void attn_softmax_rows(const attn_threads *threads, int rows, int cols, const float *x, int ldx,
                                float *y, int ldy) {
    attn__rows_job j;
    memset(&j, 0, sizeof j);
    j.kind = ATTN__ROWS_SOFTMAX; j.rows = rows; j.cols = cols; j.x = x; j.ldx = ldx; j.y = y; j.ldy = ldy;
    attn__rows_run(threads, &j);
}

ATTN_API void attn_log_softmax_rows(const attn_threads *threads, int rows, int cols, const float *x,
                                    int ldx, float *y, int ldy) {
    attn__rows_job j;
    memset(&j, 0, sizeof j);
    j.kind = ATTN__ROWS_LOG_SOFTMAX; j.rows = rows; j.cols = cols; j.x = x; j.ldx = ldx; j.y = y; j.ldy = ldy;
    attn__rows_run(threads, &j);
}

ATTN_API void attn_layernorm_rows(const attn_threads *threads, int rows, int cols, const float *x, int ldx,
                                  const float *gamma, const float *beta, float eps, float *y, int ldy,
                                  float *mean, float *rstd) {
    attn__rows_job j;
    memset(&j, 0, sizeof j);
    j.kind = ATTN__ROWS_LAYERNORM; j.rows = rows; j.cols = cols; j.x = x; j.ldx = ldx; j.y = y; j.ldy = ldy;
    j.gamma = gamma; j.beta = beta; j.eps = eps; j.mean = mean; j.rstd = rstd;
    attn__rows_run(threads, &j);
}

/* ---- the row kernels' backward and RMSNorm, beside the forward ones above ---- */
/* dx += the (log-)softmax backward of rows with output y and grad dy. */
static void attn__softmax_backward_rows(int log, size_t rows, int cols, const float *y, const float *dy, float *dx) {
    size_t r;
    int j;
    for (r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *g = dy + r * cols;
        float *d = dx + r * cols;
        if (!log) { /* dx = y (g - sum(g y)) */
            float dot = attn_vec_dot((size_t)cols, g, yr);
            for (j = 0; j < cols; j++) d[j] += yr[j] * (g[j] - dot);
        } else { /* log-softmax: dx = g - softmax * sum(g) */
            float s = attn_vec_sum((size_t)cols, g);
            for (j = 0; j < cols; j++) d[j] += g[j] - expf(yr[j]) * s;
        }
    }
}

/* y = x / sqrt(mean(x^2) + eps) * w for each row; rstd receives 1 / sqrt(...). */
static void attn__rmsnorm_rows(int rows, int cols, const float *x, const float *w, float eps, float *y, float *rstd) {
    int r;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        rstd[r] = 1.0f / sqrtf(attn_vec_dot((size_t)cols, xr, xr) / (float)cols + eps);
        attn_vec_scale((size_t)cols, rstd[r], xr, yr);
        if (w) attn_vec_mul((size_t)cols, yr, w, yr);
    }
}

/* LayerNorm (bias != NULL or not) and RMSNorm share this backward: with
   xhat = (x - mean) rstd (mean = 0 for RMSNorm) and gh = g * weight,
   dx = rstd (gh - mean(gh) - xhat mean(gh xhat)), where RMSNorm drops mean(gh). */
/* dx, dw, db += (any may be NULL) for rows; mean NULL means RMSNorm. */
static void attn__norm_backward_rows(int rows, int cols, const float *x, const float *w, const float *mean_of,
                                     const float *rstd_of, const float *dy, float *gx, float *gw, float *gb) {
    int r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols, *g = dy + (size_t)r * cols;
        float mean = mean_of ? mean_of[r] : 0.0f, rstd = rstd_of[r];
        double sum_gh = 0.0, sum_ghx = 0.0;
        for (j = 0; j < cols; j++) {
            float xhat = (xr[j] - mean) * rstd, gh = g[j] * (w ? w[j] : 1.0f);
            sum_gh += gh;
            sum_ghx += (double)gh * xhat;
            if (gw) gw[j] += g[j] * xhat;
            if (gb) gb[j] += g[j];
        }
        if (gx) {
            float m_gh = mean_of ? (float)(sum_gh / cols) : 0.0f, m_ghx = (float)(sum_ghx / cols);
            float *d = gx + (size_t)r * cols;
            for (j = 0; j < cols; j++) {
                float xhat = (xr[j] - mean) * rstd, gh = g[j] * (w ? w[j] : 1.0f);
                d[j] += rstd * (gh - m_gh - xhat * m_ghx);
            }
        }
    }
}

static void attn__optimizer_update(size_t n, const attn__update *u, float *w, const float *g, float *m, float *v) {
    attn__active_set()->update(n, u, w, g, m, v);
}

ATTN_API void attn_vec_gelu(size_t n, const float *x, float *y) { if (x && y) attn__kernels()->gelu(n, x, y); }
ATTN_API void attn_vec_exp(size_t n, const float *x, float *y) { if (x && y) attn__kernels()->exp(n, x, y); }
ATTN_API void attn_vec_add(size_t n, const float *a, const float *b, float *y) { if (a && b && y) attn__kernels()->add(n, a, b, y); }
ATTN_API void attn_vec_sub(size_t n, const float *a, const float *b, float *y) { if (a && b && y) attn__kernels()->sub(n, a, b, y); }
ATTN_API void attn_vec_mul(size_t n, const float *a, const float *b, float *y) { if (a && b && y) attn__kernels()->mul(n, a, b, y); }
ATTN_API void attn_vec_scale(size_t n, float s, const float *x, float *y) { if (x && y) attn__kernels()->scale(n, s, x, y); }
ATTN_API void attn_vec_axpy(size_t n, float alpha, const float *x, float *y) { if (x && y) attn__kernels()->axpy(n, alpha, x, y); }
ATTN_API void attn_vec_relu(size_t n, const float *x, float *y) { if (x && y) attn__kernels()->relu(n, x, y); }
ATTN_API float attn_vec_sum(size_t n, const float *x) { return x ? attn__kernels()->sum(n, x) : 0.0f; }
ATTN_API float attn_vec_dot(size_t n, const float *a, const float *b) { return a && b ? attn__kernels()->dot(n, a, b) : 0.0f; }

/* ---- 4g. Fused attention (see attn_attention_desc) ---- */
#define ATTN__ATT_TILE 64

/* Dropout's keep decision for element i: a hash of (seed, i), so any thread
   can compute any element (splitmix64's finaliser: a counter-based RNG). */
static int attn__dropout_keep(uint64_t seed, uint64_t i, float p) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}

/* The descriptor with its zeros resolved to the defaults. */
static attn_status attn__attention_resolve(const attn_attention_desc *in, attn_attention_desc *d) {
    if (!in) return ATTN_ERR_INVALID_ARGUMENT;
    *d = *in;
    if (!d->v_dim) d->v_dim = d->head_dim;
    if (d->batch < 0 || d->heads < 1 || d->q_len < 0 || d->kv_len < 0 || d->head_dim < 1 ||
        d->head_dim > ATTN_ATTENTION_MAX_DIM || d->v_dim < 1 || d->v_dim > ATTN_ATTENTION_MAX_DIM ||
        !(d->dropout >= 0.0f && d->dropout < 1.0f))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (!d->q_row_stride) d->q_row_stride = d->heads * d->head_dim;
    if (!d->k_row_stride) d->k_row_stride = d->heads * d->head_dim;
    if (!d->v_row_stride) d->v_row_stride = d->heads * d->v_dim;
    if (!d->o_row_stride) d->o_row_stride = d->heads * d->v_dim;
    if (!d->q_batch_stride) d->q_batch_stride = (size_t)d->q_len * d->q_row_stride;
    if (!d->k_batch_stride) d->k_batch_stride = (size_t)d->kv_len * d->k_row_stride;
    if (!d->v_batch_stride) d->v_batch_stride = (size_t)d->kv_len * d->v_row_stride;
    if (!d->o_batch_stride) d->o_batch_stride = (size_t)d->q_len * d->o_row_stride;
    if (d->q_row_stride < d->heads * d->head_dim || d->k_row_stride < d->heads * d->head_dim ||
        d->v_row_stride < d->heads * d->v_dim || d->o_row_stride < d->heads * d->v_dim)
        return ATTN_ERR_INVALID_ARGUMENT;
    if (d->scale == 0.0f) d->scale = 1.0f / sqrtf((float)d->head_dim);
    return ATTN_OK;
}

/* Keys [0, end) can matter to batch b's queries (past a key length they cannot). */
static int attn__attention_key_end(const attn_attention_desc *d, int b) {
    int end = d->kv_len;
    if (d->key_lengths) end = ATTN__MAX(0, ATTN__MIN(end, d->key_lengths[b]));
    return end;
}

/* Scores of a tile: S = scale Q_i K_j^T, then the masks (-inf) and the bias. */
static void attn__attention_scores(const attn_attention_desc *d, int b, int h, int i0, int rows, int j0, int cols,
                                   const float *q, const float *k, float *S) {
    int i, j, shift = d->kv_len - d->q_len;
    const unsigned char *pad = d->key_padding_mask ? d->key_padding_mask + (size_t)b * d->kv_len + j0 : NULL;
    const float *bias = d->bias ? d->bias + b * d->bias_batch_stride + h * d->bias_head_stride : NULL;
    attn_sgemm(0, 1, rows, cols, d->head_dim, d->scale,
               q + b * d->q_batch_stride + (size_t)i0 * d->q_row_stride + (size_t)h * d->head_dim, d->q_row_stride,
               k + b * d->k_batch_stride + (size_t)j0 * d->k_row_stride + (size_t)h * d->head_dim, d->k_row_stride,
               0.0f, S, ATTN__ATT_TILE);
    for (i = 0; i < rows; i++) {
        float *s = S + i * ATTN__ATT_TILE;
        int last = d->causal ? i0 + i + shift - j0 : cols - 1; /* the last key this row sees, in the tile */
        if (bias) attn_vec_add((size_t)cols, s, bias + (size_t)(i0 + i) * d->kv_len + j0, s);
        for (j = ATTN__MAX(last + 1, 0); j < cols; j++) s[j] = -INFINITY;
        if (pad)
            for (j = 0; j < cols; j++)
                if (pad[j]) s[j] = -INFINITY;
    }
}

/* Dropout's keep factor for weight (b, h, i, j): 0 or 1 / (1 - p). */
static float attn__attention_keep(const attn_attention_desc *d, int b, int h, int i, int j) {
    uint64_t cell = (((uint64_t)b * (uint64_t)d->heads + (uint64_t)h) * (uint64_t)d->q_len + (uint64_t)i) *
                    (uint64_t)d->kv_len + (uint64_t)j;
    return attn__dropout_keep(d->dropout_seed, cell, d->dropout) ? 1.0f / (1.0f - d->dropout) : 0.0f;
}

typedef struct attn__attention_job {
    attn_attention_desc d;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv;
    int q_blocks;
} attn__attention_job;

/* Forward of one block of up to 64 queries of one (batch, head). */
static void attn__attention_forward_task(void *data, int task) {
    const attn__attention_job *jb = (const attn__attention_job *)data;
    const attn_attention_desc *d = &jb->d;
    int bh = task / jb->q_blocks, b = bh / d->heads, h = bh % d->heads;
    int i0 = (task % jb->q_blocks) * ATTN__ATT_TILE, rows = ATTN__MIN(ATTN__ATT_TILE, d->q_len - i0);
    int end = attn__attention_key_end(d, b), i, j, j0, dv = d->v_dim;
    float S[ATTN__ATT_TILE * ATTN__ATT_TILE], acc[ATTN__ATT_TILE * ATTN_ATTENTION_MAX_DIM];
    float m[ATTN__ATT_TILE], l[ATTN__ATT_TILE];
    const attn__kernel_set *set = attn__active_set();
    float *o = jb->out + b * d->o_batch_stride + (size_t)i0 * d->o_row_stride + (size_t)h * dv;
    if (d->causal) end = ATTN__MIN(end, ATTN__MAX(0, i0 + rows + d->kv_len - d->q_len)); /* later tiles: all masked */
    for (i = 0; i < rows; i++) m[i] = -INFINITY, l[i] = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)rows * dv);
    for (j0 = 0; j0 < end; j0 += ATTN__ATT_TILE) {
        int cols = ATTN__MIN(ATTN__ATT_TILE, end - j0);
        attn__attention_scores(d, b, h, i0, rows, j0, cols, jb->q, jb->k, S);
        for (i = 0; i < rows; i++) { /* online softmax: rescale what came before to the new max */
            float *s = S + i * ATTN__ATT_TILE, mx = ATTN__MAX(m[i], set->row_max(cols, s)), alpha;
            if (mx == -INFINITY) { /* nothing visible yet in this row */
                memset(s, 0, sizeof(float) * (size_t)cols);
                continue;
            }
            alpha = expf(m[i] - mx); /* m = -inf: 0 */
            l[i] = l[i] * alpha + set->row_exp_sum(cols, s, mx, s);
            if (alpha != 1.0f) attn_vec_scale((size_t)dv, alpha, acc + (size_t)i * dv, acc + (size_t)i * dv);
            m[i] = mx;
            if (d->dropout > 0.0f) /* dropped weights still count in the normaliser, as in PyTorch */
                for (j = 0; j < cols; j++) s[j] *= attn__attention_keep(d, b, h, i0 + i, j0 + j);
        }
        attn_sgemm(0, 0, rows, dv, cols, 1.0f, S, ATTN__ATT_TILE,
                   jb->v + b * d->v_batch_stride + (size_t)j0 * d->v_row_stride + (size_t)h * dv, d->v_row_stride,
                   1.0f, acc, dv);
    }
    for (i = 0; i < rows; i++) { /* a row that saw no key: 0/0 = NaN, as PyTorch */
        attn_vec_scale((size_t)dv, 1.0f / l[i], acc + (size_t)i * dv, o + (size_t)i * d->o_row_stride);
        if (l[i] == 0.0f)
            for (j = 0; j < dv; j++) o[(size_t)i * d->o_row_stride + j] = NAN;
        if (jb->lse_out)
            jb->lse_out[((size_t)b * d->heads + h) * d->q_len + i0 + i] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
    }
}

ATTN_API attn_status attn_attention_forward(const attn_threads *threads, const attn_attention_desc *desc,
                                            const float *q, const float *k, const float *v, float *o, float *lse) {
    attn__attention_job jb;
    attn_status s = attn__attention_resolve(desc, &jb.d);
    if (s) return s;
    if (!q || !k || !v || !o) return ATTN_ERR_INVALID_ARGUMENT;
    jb.q = q; jb.k = k; jb.v = v; jb.out = o; jb.lse_out = lse;
    jb.q_blocks = (jb.d.q_len + ATTN__ATT_TILE - 1) / ATTN__ATT_TILE;
    attn__parallel(threads, jb.d.batch * jb.d.heads * jb.q_blocks, attn__attention_forward_task, &jb);
    return ATTN_OK;
}

/* Backward of one (batch, head): query tiles outside (D = rowsum(dO o O) once
   per tile, dQ gathered locally), key tiles inside, dK and dV added straight
   into the caller's buffers. The task owns its head, so nothing else writes them. */
static void attn__attention_backward_task(void *data, int task) {
    const attn__attention_job *jb = (const attn__attention_job *)data;
    const attn_attention_desc *d = &jb->d;
    int b = task / d->heads, h = task % d->heads, dh = d->head_dim, dv = d->v_dim;
    int end = attn__attention_key_end(d, b), shift = d->kv_len - d->q_len, i, j, i0, j0;
    float P[ATTN__ATT_TILE * ATTN__ATT_TILE], dP[ATTN__ATT_TILE * ATTN__ATT_TILE];
    float dQ[ATTN__ATT_TILE * ATTN_ATTENTION_MAX_DIM], D[ATTN__ATT_TILE];
    const float *lse = jb->lse + ((size_t)b * d->heads + h) * d->q_len;
    const attn__kernel_set *set = attn__active_set();
    for (i0 = 0; i0 < d->q_len; i0 += ATTN__ATT_TILE) {
        int rows = ATTN__MIN(ATTN__ATT_TILE, d->q_len - i0), row_end = end;
        const float *qi = jb->q + b * d->q_batch_stride + (size_t)i0 * d->q_row_stride + (size_t)h * dh;
        const float *oi = jb->o + b * d->o_batch_stride + (size_t)i0 * d->o_row_stride + (size_t)h * dv;
        const float *doi = jb->dout + b * d->o_batch_stride + (size_t)i0 * d->o_row_stride + (size_t)h * dv;
        if (d->causal) row_end = ATTN__MIN(end, ATTN__MAX(0, i0 + rows + shift)); /* later keys: masked */
        for (i = 0; i < rows; i++)
            D[i] = attn_vec_dot((size_t)dv, doi + (size_t)i * d->o_row_stride, oi + (size_t)i * d->o_row_stride);
        memset(dQ, 0, sizeof(float) * (size_t)rows * dh);
        for (j0 = 0; j0 < row_end; j0 += ATTN__ATT_TILE) {
            int cols = ATTN__MIN(ATTN__ATT_TILE, row_end - j0);
            const float *kj = jb->k + b * d->k_batch_stride + (size_t)j0 * d->k_row_stride + (size_t)h * dh;
            const float *vj = jb->v + b * d->v_batch_stride + (size_t)j0 * d->v_row_stride + (size_t)h * dv;
            attn__attention_scores(d, b, h, i0, rows, j0, cols, jb->q, jb->k, P);
            for (i = 0; i < rows; i++) { /* P = exp(S - lse): the forward's weights */
                float *p = P + i * ATTN__ATT_TILE, m = lse[i0 + i];
                if (m == -INFINITY) { memset(p, 0, sizeof(float) * (size_t)cols); continue; } /* no key: no grad */
                set->row_exp_sum(cols, p, m, p);
            }
            /* dP = dO V^T */
            attn_sgemm(0, 1, rows, cols, dv, 1.0f, doi, d->o_row_stride, vj, d->v_row_stride, 0.0f, dP, ATTN__ATT_TILE);
            if (d->dropout > 0.0f) { /* dV uses the dropped weights; dP goes through the same mask */
                float keep[ATTN__ATT_TILE * ATTN__ATT_TILE];
                for (i = 0; i < rows; i++)
                    for (j = 0; j < cols; j++) {
                        float kf = attn__attention_keep(d, b, h, i0 + i, j0 + j);
                        keep[i * ATTN__ATT_TILE + j] = P[i * ATTN__ATT_TILE + j] * kf;
                        dP[i * ATTN__ATT_TILE + j] *= kf;
                    }
                if (jb->dv)
                    attn_sgemm(1, 0, cols, dv, rows, 1.0f, keep, ATTN__ATT_TILE, doi, d->o_row_stride, 1.0f,
                               jb->dv + b * d->v_batch_stride + (size_t)j0 * d->v_row_stride + (size_t)h * dv,
                               d->v_row_stride);
            } else if (jb->dv) { /* dV += P^T dO */
                attn_sgemm(1, 0, cols, dv, rows, 1.0f, P, ATTN__ATT_TILE, doi, d->o_row_stride, 1.0f,
                           jb->dv + b * d->v_batch_stride + (size_t)j0 * d->v_row_stride + (size_t)h * dv,
                           d->v_row_stride);
            }
            for (i = 0; i < rows; i++) { /* dS = P (dP - D) */
                float *p = P + i * ATTN__ATT_TILE, *g = dP + i * ATTN__ATT_TILE;
                if (lse[i0 + i] == -INFINITY) { memset(g, 0, sizeof(float) * (size_t)cols); continue; }
                for (j = 0; j < cols; j++) g[j] = p[j] * (g[j] - D[i]);
            }
            /* dQ += scale dS K, dK += scale dS^T Q */
            attn_sgemm(0, 0, rows, dh, cols, d->scale, dP, ATTN__ATT_TILE, kj, d->k_row_stride, 1.0f, dQ, dh);
            if (jb->dk)
                attn_sgemm(1, 0, cols, dh, rows, d->scale, dP, ATTN__ATT_TILE, qi, d->q_row_stride, 1.0f,
                           jb->dk + b * d->k_batch_stride + (size_t)j0 * d->k_row_stride + (size_t)h * dh,
                           d->k_row_stride);
        }
        if (jb->dq)
            for (i = 0; i < rows; i++) {
                float *dst = jb->dq + b * d->q_batch_stride + (size_t)(i0 + i) * d->q_row_stride + (size_t)h * dh;
                attn_vec_add((size_t)dh, dst, dQ + (size_t)i * dh, dst);
            }
    }
}

ATTN_API attn_status attn_attention_backward(const attn_threads *threads, const attn_attention_desc *desc,
                                             const float *q, const float *k, const float *v, const float *o,
                                             const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    attn__attention_job jb;
    attn_status s = attn__attention_resolve(desc, &jb.d);
    if (s) return s;
    if (!q || !k || !v || !o || !lse || !dout) return ATTN_ERR_INVALID_ARGUMENT;
    jb.q = q; jb.k = k; jb.v = v; jb.o = o; jb.lse = lse; jb.dout = dout;
    jb.dq = dq; jb.dk = dk; jb.dv = dv;
    attn__parallel(threads, jb.d.batch * jb.d.heads, attn__attention_backward_task, &jb);
    return ATTN_OK;
}

/* The weights the fused kernel never materialises, (B, H, Tq, Tk): its scores
   and masks, a full row at a time, then softmax (dropout is not applied). */
static void attn__attention_weights_rows(const attn_threads *threads, attn_attention_desc *d, const float *q,
                                         const float *k, float *w) {
    int b, h, i, j, heads = d->heads;
    attn__attention_resolve(d, d);
    for (b = 0; b < d->batch; b++)
        for (h = 0; h < heads; h++) {
            float *S = w + ((size_t)b * heads + h) * d->q_len * d->kv_len;
            int end = attn__attention_key_end(d, b);
            for (i = 0; i < d->q_len; i++) {
                float *s = S + (size_t)i * d->kv_len;
                int shift = d->kv_len - d->q_len;
                const float *qi = q + b * d->q_batch_stride + (size_t)i * d->q_row_stride + (size_t)h * d->head_dim;
                for (j = 0; j < d->kv_len; j++) {
                    const float *kj = k + b * d->k_batch_stride + (size_t)j * d->k_row_stride + (size_t)h * d->head_dim;
                    int masked = j >= end || (d->causal && j > i + shift) ||
                                 (d->key_padding_mask && d->key_padding_mask[(size_t)b * d->kv_len + j]);
                    s[j] = masked ? -INFINITY : d->scale * attn_vec_dot((size_t)d->head_dim, qi, kj) +
                               (d->bias ? d->bias[b * d->bias_batch_stride + h * d->bias_head_stride + (size_t)i * d->kv_len + j] : 0.0f);
                }
            }
            attn_softmax_rows(threads, d->q_len, d->kv_len, S, d->kv_len, S, d->kv_len);
        }
}

/* ---- 4h. Elementwise, broadcast, loss and position math: what the ops of
   section 7 compute on raw floats, each forward beside its backward ---- */
/* y (strides ys) = or += x (strides xs), over a right-aligned 4-D shape. */
static void attn__copy4_host(const int *shape, const float *x, const int *xs, float *y, const int *ys, int accumulate) {
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < shape[0]; i0++)
        for (i1 = 0; i1 < shape[1]; i1++)
            for (i2 = 0; i2 < shape[2]; i2++) {
                const float *px = x + (ptrdiff_t)i0 * xs[0] + (ptrdiff_t)i1 * xs[1] + (ptrdiff_t)i2 * xs[2];
                float *py = y + (ptrdiff_t)i0 * ys[0] + (ptrdiff_t)i1 * ys[1] + (ptrdiff_t)i2 * ys[2];
                if (xs[3] == 1 && ys[3] == 1) { /* rows along memory (x + y is y + x: the same bits) */
                    if (accumulate) attn_vec_add((size_t)shape[3], py, px, py);
                    else memmove(py, px, (size_t)shape[3] * sizeof(float));
                } else if (accumulate) for (i3 = 0; i3 < shape[3]; i3++) py[(ptrdiff_t)i3 * ys[3]] += px[(ptrdiff_t)i3 * xs[3]];
                else for (i3 = 0; i3 < shape[3]; i3++) py[(ptrdiff_t)i3 * ys[3]] = px[(ptrdiff_t)i3 * xs[3]];
            }
}

/* po (dense over so) = a op b, a and b walked with strides da, db (0 broadcasts). */
static void attn__binary4_host(int op, const int *so, const float *a, const int *da, const float *b, const int *db,
                               float *po) {
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < so[0]; i0++)
        for (i1 = 0; i1 < so[1]; i1++)
            for (i2 = 0; i2 < so[2]; i2++, po += so[3]) {
                const float *pa = a + (ptrdiff_t)i0 * da[0] + (ptrdiff_t)i1 * da[1] + (ptrdiff_t)i2 * da[2];
                const float *pb = b + (ptrdiff_t)i0 * db[0] + (ptrdiff_t)i1 * db[1] + (ptrdiff_t)i2 * db[2];
                if (da[3] == 1 && db[3] == 1) { /* rows along memory: the vector kernels */
                    if (op == ATTN_BE_ADD) attn_vec_add((size_t)so[3], pa, pb, po);
                    else if (op == ATTN_BE_SUB) attn_vec_sub((size_t)so[3], pa, pb, po);
                    else attn_vec_mul((size_t)so[3], pa, pb, po);
                    continue;
                }
                for (i3 = 0; i3 < so[3]; i3++) {
                    float x = pa[(ptrdiff_t)i3 * da[3]], y = pb[(ptrdiff_t)i3 * db[3]];
                    po[i3] = op == ATTN_BE_ADD ? x + y : op == ATTN_BE_SUB ? x - y : x * y;
                }
            }
}

/* dst (strides dst_s, 0 where broadcast) += sign * g * other (strides other_s;
   other NULL means 1), over the output shape so. */
static void attn__bcast_accumulate(const int *so, float *dst, const int *dst_s, const float *g,
                                   const float *other, const int *other_s, float sign) {
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < so[0]; i0++)
        for (i1 = 0; i1 < so[1]; i1++)
            for (i2 = 0; i2 < so[2]; i2++, g += so[3]) {
                float *pd = dst + (ptrdiff_t)i0 * dst_s[0] + (ptrdiff_t)i1 * dst_s[1] + (ptrdiff_t)i2 * dst_s[2];
                const float *po = other ? other + (ptrdiff_t)i0 * other_s[0] + (ptrdiff_t)i1 * other_s[1] +
                                              (ptrdiff_t)i2 * other_s[2] : NULL;
                if (!po && dst_s[3] == 1) /* a bias-like grad: the vector kernel (the same bits: g * 1 is exact) */
                    attn_vec_axpy((size_t)so[3], sign, g, pd);
                else
                    for (i3 = 0; i3 < so[3]; i3++)
                        pd[(ptrdiff_t)i3 * dst_s[3]] += sign * g[i3] * (po ? po[(ptrdiff_t)i3 * other_s[3]] : 1.0f);
            }
}

/* GELU forward (dy NULL: out = gelu(x)) or backward (out += dy gelu'(x)),
   split into chunks over the context's threads: elementwise, so any split
   gives the same bits. */
typedef struct attn__gelu_job {
    const attn_kernels *k;
    size_t n, chunk;
    const float *x, *dy;
    float *out;
} attn__gelu_job;

static void attn__gelu_task(void *data, int task) {
    const attn__gelu_job *j = (const attn__gelu_job *)data;
    size_t start = (size_t)task * j->chunk, n = ATTN__MIN(j->chunk, j->n - start);
    if (j->dy) j->k->gelu_backward(n, j->x + start, j->dy + start, j->out + start);
    else j->k->gelu(n, j->x + start, j->out + start);
}

static void attn__gelu_threaded(const attn_threads *threads, size_t n, const float *x, const float *dy, float *out) {
    attn__gelu_job j;
    size_t nt = (size_t)attn__thread_count(threads);
    if (n < 32768) nt = 1; /* ~50 us of work: not worth a hand-off */
    j.k = attn__kernels();
    j.n = n;
    j.chunk = ((n + nt - 1) / nt + 63) / 64 * 64;
    j.x = x;
    j.dy = dy;
    j.out = out;
    if (n) attn__parallel(threads, (int)((n + j.chunk - 1) / j.chunk), attn__gelu_task, &j);
}

/* The unary ops (ATTN_BE_* codes) on the host: out = f(x), or, given dy,
   out += dy f'(x) (y = f(x) is what tanh's derivative reads). The ops and
   attn_backend_cpu() share it. */
static void attn__unary_host(const attn_threads *threads, int op, size_t n, float s, const float *x, const float *y,
                             const float *dy, float *out) {
    size_t i;
    if (op == ATTN_BE_GELU) attn__gelu_threaded(threads, n, x, dy, out);
    else if (op == ATTN_BE_SCALE) {
        if (dy) attn_vec_axpy(n, s, dy, out);
        else attn_vec_scale(n, s, x, out);
    } else if (op == ATTN_BE_RELU) {
        if (dy) for (i = 0; i < n; i++) out[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        else attn_vec_relu(n, x, out);
    } else { /* tanh */
        if (dy) for (i = 0; i < n; i++) out[i] += dy[i] * (1.0f - y[i] * y[i]);
        else for (i = 0; i < n; i++) out[i] = tanhf(x[i]);
    }
}

static void attn__dropout_apply(uint64_t seed, float p, size_t n, const float *x, float *y, int accumulate) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    size_t i;
    for (i = 0; i < n; i++) {
        float v = attn__dropout_keep(seed, i, p) ? x[i] * scale : 0.0f;
        if (accumulate) y[i] += v; else y[i] = v;
    }
}

/* The mean loss over rows whose target is not ignored (0 / 0: NaN, as PyTorch gives). */
static float attn__cross_entropy_mean(int N, int C, const float *logp, const int32_t *targets, int ignore, float ls) {
    double total = 0.0;
    long count = 0;
    int r, c;
    for (r = 0; r < N; r++) {
        const float *lp = logp + (size_t)r * C;
        double smooth = 0.0;
        if (targets[r] == ignore) continue;
        for (c = 0; c < C; c++) smooth += lp[c];
        total -= (1.0 - ls) * lp[targets[r]] + ls * smooth / C;
        count++;
    }
    return (float)(total / (double)count);
}

/* dlogits += d loss / d logits, given d loss = dloss. */
static void attn__cross_entropy_backward_rows(int N, int C, const float *logp, const int32_t *targets, int ignore,
                                              float eps, float dloss, float *gl) {
    long count = 0;
    int r, c;
    float scale;
    for (r = 0; r < N; r++) count += targets[r] != ignore;
    if (!count) return;
    scale = dloss / (float)count;
    /* As PyTorch's graph does it: d loss / d logp_c = -scale ((1 - eps) [c = t] +
       eps / C), then log-softmax's backward: g_c - softmax_c * sum(g). */
    {
        float g_other = -scale * (eps / (float)C), g_target = g_other - scale * (1.0f - eps);
        float total = g_target + g_other * (float)(C - 1);
        for (r = 0; r < N; r++) {
            const float *lp = logp + (size_t)r * C;
            float *d = gl + (size_t)r * C;
            if (targets[r] == ignore) continue;
            for (c = 0; c < C; c++) d[c] += (c == targets[r] ? g_target : g_other) - expf(lp[c]) * total;
        }
    }
}

/* The mean of (a - b)^2 over n (in double, rounded once; NaN when n is 0)... */
static float attn__mse(size_t n, const float *a, const float *b) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        s += e * e;
    }
    return (float)(s / (double)n);
}

/* ... and its backward, given d loss = dloss: ga += k (a - b), gb -= k (a - b)
   with k = 2 dloss / n (either grad may be NULL). */
static void attn__mse_backward(size_t n, float dloss, const float *a, const float *b, float *ga, float *gb) {
    float k = 2.0f * dloss / (float)n;
    size_t i;
    for (i = 0; i < n; i++) {
        float e = k * (a[i] - b[i]);
        if (ga) ga[i] += e;
        if (gb) gb[i] -= e;
    }
}

/* RoPE on x (B, T, W = heads * dh, dense): y = rotate(x) (sign +1) or its
   inverse (sign -1, the backward), added into y when accumulate. */
static void attn__rope_rows(int B, int T, int W, const float *x, float *y, int heads, int start, float base,
                            float sign, int accumulate) {
    int dh = W / heads, half = dh / 2, b, t, h, i;
    for (t = 0; t < T; t++)
        for (i = 0; i < half; i++) { /* one angle per (position, pair), shared by batches and heads */
            double angle = (double)(start + t) * pow((double)base, -2.0 * i / dh);
            float c = (float)cos(angle), s = sign * (float)sin(angle);
            for (b = 0; b < B; b++)
                for (h = 0; h < heads; h++) {
                    size_t o = ((size_t)b * T + t) * W + (size_t)h * dh + i;
                    float x1 = x[o], x2 = x[o + half], y1 = x1 * c - x2 * s, y2 = x1 * s + x2 * c;
                    if (accumulate) { y[o] += y1; y[o + half] += y2; }
                    else { y[o] = y1; y[o + half] = y2; }
                }
        }
}

/* ============================================================================
   5. Backends: the CPU table and the dispatch block
   A context without a backend runs the CPU table's own functions on its
   threads; a context on attn_backend_cpu() runs the same functions through
   the table. So the two agree bit for bit, and the dispatch block below is the
   only code that asks which backend a context has (apart from where its
   memory comes from).
   ========================================================================= */
/* ---- 5a. The CPU table: section 4's kernels behind the entries. user is the
   attn_threads to run on, NULL for the calling thread (results do not depend
   on it). ---- */
static const attn_threads *attn__cpu_threads(void *user) { return (const attn_threads *)user; }

static const char *attn__cpu_last_error(void *user) {
    (void)user;
    return "out of host memory, or arguments the CPU kernels refuse";
}
static void *attn__cpu_alloc(void *user, size_t bytes) { (void)user; return ATTN_MALLOC(bytes, NULL); }
static void attn__cpu_free(void *user, void *ptr) { (void)user; ATTN_FREE(ptr, NULL); }
static attn_status attn__cpu_upload(void *user, void *dst, const void *src, size_t bytes) {
    (void)user;
    memmove(dst, src, bytes);
    return ATTN_OK;
}
static attn_status attn__cpu_download(void *user, void *dst, const void *src, size_t bytes) {
    return attn__cpu_upload(user, dst, src, bytes);
}
static attn_status attn__cpu_sync(void *user) { (void)user; return ATTN_OK; }
static attn_status attn__cpu_fill(void *user, size_t n, float value, float *y) {
    uint32_t bits;
    size_t i;
    (void)user;
    memcpy(&bits, &value, sizeof bits);
    if (bits == 0) memset(y, 0, n * sizeof(float)); /* +0.0 only: -0.0 keeps its sign */
    else for (i = 0; i < n; i++) y[i] = value;
    return ATTN_OK;
}
static attn_status attn__cpu_copy4(void *user, const int *shape, const float *x, const int *xs, float *y, const int *ys,
                                   int accumulate) {
    (void)user;
    attn__copy4_host(shape, x, xs, y, ys, accumulate);
    return ATTN_OK;
}
static attn_status attn__cpu_binary4(void *user, int op, const int *shape, const float *a, const int *as,
                                     const float *b, const int *bs, float *y) {
    (void)user;
    if (op != ATTN_BE_ADD && op != ATTN_BE_SUB && op != ATTN_BE_MUL) return ATTN_ERR_INVALID_ARGUMENT;
    attn__binary4_host(op, shape, a, as, b, bs, y);
    return ATTN_OK;
}
static attn_status attn__cpu_reduce4(void *user, const int *shape, float *dst, const int *ds, const float *g,
                                     const float *other, const int *os, float sign) {
    (void)user;
    attn__bcast_accumulate(shape, dst, ds, g, other, os, sign);
    return ATTN_OK;
}
static attn_status attn__cpu_gemm(void *user, int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                                  ptrdiff_t sA, const float *B, int ldb, ptrdiff_t sB, float beta, float *C, int ldc,
                                  ptrdiff_t sC, int batch) {
    int i;
    for (i = 0; i < batch; i++)
        if (attn_sgemm_mt(attn__cpu_threads(user), tA, tB, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta,
                          C + i * sC, ldc))
            return ATTN_ERR_INVALID_ARGUMENT;
    return ATTN_OK;
}
static attn_status attn__cpu_unary(void *user, int op, size_t n, float s, const float *x, float *y) {
    if (op < ATTN_BE_SCALE || op > ATTN_BE_TANH) return ATTN_ERR_INVALID_ARGUMENT;
    attn__unary_host(attn__cpu_threads(user), op, n, s, x, NULL, NULL, y);
    return ATTN_OK;
}
static attn_status attn__cpu_unary_backward(void *user, int op, size_t n, float s, const float *x, const float *y,
                                            const float *dy, float *dx) {
    if (op < ATTN_BE_SCALE || op > ATTN_BE_TANH) return ATTN_ERR_INVALID_ARGUMENT;
    attn__unary_host(attn__cpu_threads(user), op, n, s, x, y, dy, dx);
    return ATTN_OK;
}
static attn_status attn__cpu_dropout(void *user, uint64_t seed, float p, size_t n, const float *x, float *y,
                                     int accumulate) {
    (void)user;
    attn__dropout_apply(seed, p, n, x, y, accumulate);
    return ATTN_OK;
}
static attn_status attn__cpu_softmax(void *user, int log, int rows, int cols, const float *x, float *y) {
    if (log) attn_log_softmax_rows(attn__cpu_threads(user), rows, cols, x, cols, y, cols);
    else attn_softmax_rows(attn__cpu_threads(user), rows, cols, x, cols, y, cols);
    return ATTN_OK;
}
static attn_status attn__cpu_softmax_backward(void *user, int log, int rows, int cols, const float *y, const float *dy,
                                              float *dx) {
    (void)user;
    attn__softmax_backward_rows(log, (size_t)rows, cols, y, dy, dx);
    return ATTN_OK;
}
static attn_status attn__cpu_norm_forward(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                          const float *beta, float eps, float *y, float *mean, float *rstd) {
    if (rms) attn__rmsnorm_rows(rows, cols, x, gamma, eps, y, rstd);
    else attn_layernorm_rows(attn__cpu_threads(user), rows, cols, x, cols, gamma, beta, eps, y, cols, mean, rstd);
    return ATTN_OK;
}
static attn_status attn__cpu_norm_backward(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                           const float *mean, const float *rstd, const float *dy, float *dx,
                                           float *dgamma, float *dbeta) {
    (void)user;
    attn__norm_backward_rows(rows, cols, x, gamma, rms ? NULL : mean, rstd, dy, dx, dgamma, dbeta);
    return ATTN_OK;
}
static attn_status attn__cpu_embedding(void *user, size_t n, int dim, const int32_t *idx, const float *w, float *y) {
    size_t i;
    (void)user;
    for (i = 0; i < n; i++) memcpy(y + i * (size_t)dim, w + (size_t)idx[i] * dim, (size_t)dim * sizeof(float));
    return ATTN_OK;
}
static attn_status attn__cpu_embedding_backward(void *user, size_t n, int dim, const int32_t *idx, const float *dy,
                                                float *dw) {
    size_t i;
    (void)user;
    for (i = 0; i < n; i++) attn_vec_axpy((size_t)dim, 1.0f, dy + i * (size_t)dim, dw + (size_t)idx[i] * dim);
    return ATTN_OK;
}
static attn_status attn__cpu_cross_entropy(void *user, int rows, int C, const float *logits, const int32_t *targets,
                                           int ignore, float ls, float *logp, float *loss) {
    attn_log_softmax_rows(attn__cpu_threads(user), rows, C, logits, C, logp, C);
    loss[0] = attn__cross_entropy_mean(rows, C, logp, targets, ignore, ls);
    return ATTN_OK;
}
static attn_status attn__cpu_cross_entropy_backward(void *user, int rows, int C, const float *logp,
                                                    const int32_t *targets, int ignore, float ls, const float *dloss,
                                                    float *dlogits) {
    (void)user;
    attn__cross_entropy_backward_rows(rows, C, logp, targets, ignore, ls, dloss[0], dlogits);
    return ATTN_OK;
}
static attn_status attn__cpu_attention(void *user, const attn_attention_desc *desc, const float *q, const float *k,
                                       const float *v, float *o, float *lse) {
    return attn_attention_forward(attn__cpu_threads(user), desc, q, k, v, o, lse);
}
static attn_status attn__cpu_attention_backward(void *user, const attn_attention_desc *desc, const float *q,
                                                const float *k, const float *v, const float *o, const float *lse,
                                                const float *dout, float *dq, float *dk, float *dv) {
    return attn_attention_backward(attn__cpu_threads(user), desc, q, k, v, o, lse, dout, dq, dk, dv);
}
static attn_status attn__cpu_sum(void *user, size_t n, const float *x, int squares, double divide_by, float *out) {
    double s = 0.0;
    size_t i;
    (void)user;
    for (i = 0; i < n; i++) s += squares ? (double)x[i] * x[i] : (double)x[i];
    out[0] = (float)(s / divide_by); /* one rounding: a mean is as exact as a sum; 0 / 0 is NaN */
    return ATTN_OK;
}
static attn_status attn__cpu_add_scalar(void *user, size_t n, const float *s, float divide_by, float *y) {
    float v = s[0] / divide_by;
    size_t i;
    (void)user;
    for (i = 0; i < n; i++) y[i] += v;
    return ATTN_OK;
}
static attn_status attn__cpu_optim_update(void *user, size_t n, const attn_backend_update *u, float *w, const float *g,
                                          float *m, float *v) {
    (void)user;
    if ((unsigned)u->kind > (unsigned)ATTN_OPTIM_ADAGRAD) return ATTN_ERR_INVALID_ARGUMENT;
    attn__optimizer_update(n, u, w, g, m, v);
    return ATTN_OK;
}

/* Filled by field name (C++ before C++20 has no designated initializers), so
   that two entries of one type cannot trade places unnoticed. */
ATTN_API attn_backend attn_backend_cpu(void) {
    attn_backend t;
    memset(&t, 0, sizeof t);
    t.name = "cpu";
    t.last_error = attn__cpu_last_error;
    t.alloc = attn__cpu_alloc;
    t.free = attn__cpu_free;
    t.upload = attn__cpu_upload;
    t.download = attn__cpu_download;
    t.sync = attn__cpu_sync;
    t.fill = attn__cpu_fill;
    t.copy4 = attn__cpu_copy4;
    t.binary4 = attn__cpu_binary4;
    t.reduce4 = attn__cpu_reduce4;
    t.gemm = attn__cpu_gemm;
    t.unary = attn__cpu_unary;
    t.unary_backward = attn__cpu_unary_backward;
    t.dropout = attn__cpu_dropout;
    t.softmax = attn__cpu_softmax;
    t.softmax_backward = attn__cpu_softmax_backward;
    t.norm_forward = attn__cpu_norm_forward;
    t.norm_backward = attn__cpu_norm_backward;
    t.embedding = attn__cpu_embedding;
    t.embedding_backward = attn__cpu_embedding_backward;
    t.cross_entropy = attn__cpu_cross_entropy;
    t.cross_entropy_backward = attn__cpu_cross_entropy_backward;
    t.attention = attn__cpu_attention;
    t.attention_backward = attn__cpu_attention_backward;
    t.sum = attn__cpu_sum;
    t.add_scalar = attn__cpu_add_scalar;
    t.optim_update = attn__cpu_optim_update;
    return t;
}

/* ---- 5b. The dispatch block: one shim per entry. Sections 6-10 reach the
   kernels only through these. ---- */
static attn_status attn__dispatched(attn_context *ctx, attn_status s, const char *who) {
    if (s) {
        const char *why = ctx->be && ctx->be->last_error ? ctx->be->last_error(ctx->be->user)
                                                          : attn__cpu_last_error(NULL);
        attn__fail(ctx, s, "%s: %s backend: %s", who, ctx->be ? ctx->be->name : "cpu", why ? why : "failed");
    }
    return s;
}
/* The context's entry, or the CPU table's function on the context's threads. */
#define ATTN__DISPATCH(ctx, who, entry, ...)                                                     \
    attn__dispatched((ctx), (ctx)->be ? (ctx)->be->entry((ctx)->be->user, __VA_ARGS__)         \
                                      : attn__cpu_##entry((void *)&(ctx)->threads, __VA_ARGS__), \
                     (who))

/* 1 (and an error) when ctx has a backend: for what only the host path does. */
static int attn__host_only(attn_context *ctx, const char *who) {
    if (!ctx->be) return 0;
    attn__fail(ctx, ATTN_ERR_UNSUPPORTED, "%s is not available on the %s backend (attn.h section 5 lists "
               "what is)", who, ctx->be->name);
    return 1;
}

/* 1 when the context's data memory is host memory that this file may read and
   write directly (no backend): what lets a host-side step skip a staging copy. */
static int attn__data_on_host(const attn_context *ctx) { return !ctx->be; }

/* n floats of the context's data memory (not cleared): the arena, or the
   block of backend memory the context took at creation. */
static float *attn__alloc_floats(attn_context *ctx, size_t n) {
    void *p;
    if (!ctx->be) return (float *)attn_alloc(ctx, n * sizeof(float));
    if (n > (size_t)-1 / sizeof(float) || !(p = attn_arena_alloc(&ctx->data, n ? n * sizeof(float) : 1, 256))) {
        attn__fail(ctx, ATTN_ERR_OUT_OF_MEMORY, "%s backend memory is full: asked for %zu floats with %zu bytes "
                   "in use (raise attn_context_desc.backend_memory)", ctx->be->name, n, ctx->data.used);
        return NULL;
    }
    return (float *)p;
}

static attn_status attn__k_upload(attn_context *ctx, void *dst, const void *src, size_t bytes, const char *who) {
    return bytes ? ATTN__DISPATCH(ctx, who, upload, dst, src, bytes) : ATTN_OK;
}
static attn_status attn__k_download(attn_context *ctx, void *dst, const void *src, size_t bytes, const char *who) {
    return bytes ? ATTN__DISPATCH(ctx, who, download, dst, src, bytes) : ATTN_OK;
}
static attn_status attn__k_fill(attn_context *ctx, size_t n, float value, float *y, const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, fill, n, value, y) : ATTN_OK;
}
/* y (strides ys) = or += x (strides xs), over a right-aligned 4-D shape. */
static attn_status attn__k_copy4(attn_context *ctx, const int *shape, const float *x, const int *xs, float *y,
                                 const int *ys, int accumulate, const char *who) {
    if (!shape[0] || !shape[1] || !shape[2] || !shape[3]) return ATTN_OK;
    return ATTN__DISPATCH(ctx, who, copy4, shape, x, xs, y, ys, accumulate);
}
static attn_status attn__k_binary4(attn_context *ctx, int op, const int *shape, const float *a, const int *as,
                                   const float *b, const int *bs, float *y, const char *who) {
    if (!shape[0] || !shape[1] || !shape[2] || !shape[3]) return ATTN_OK;
    return ATTN__DISPATCH(ctx, who, binary4, op, shape, a, as, b, bs, y);
}
static attn_status attn__k_reduce4(attn_context *ctx, const int *shape, float *dst, const int *ds, const float *g,
                                   const float *other, const int *os, float sign, const char *who) {
    if (!shape[0] || !shape[1] || !shape[2] || !shape[3]) return ATTN_OK;
    return ATTN__DISPATCH(ctx, who, reduce4, shape, dst, ds, g, other, os, sign);
}
/* C = alpha op(A) op(B) + beta C for batch matrices (element strides sA, sB, sC). */
static attn_status attn__k_gemm(attn_context *ctx, int tA, int tB, int M, int N, int K, float alpha, const float *A,
                                int lda, ptrdiff_t sA, const float *B, int ldb, ptrdiff_t sB, float beta, float *C,
                                int ldc, ptrdiff_t sC, int batch, const char *who) {
    if (!M || !N || !batch) return ATTN_OK;
    return ATTN__DISPATCH(ctx, who, gemm, tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
/* out = f(x), or, given dy, out += dy f'(x) (y = f(x), which tanh's derivative reads). */
static attn_status attn__k_unary(attn_context *ctx, int op, size_t n, float s, const float *x, const float *y,
                                 const float *dy, float *out, const char *who) {
    if (!n) return ATTN_OK;
    return dy ? ATTN__DISPATCH(ctx, who, unary_backward, op, n, s, x, y, dy, out)
              : ATTN__DISPATCH(ctx, who, unary, op, n, s, x, out);
}
static attn_status attn__k_dropout(attn_context *ctx, uint64_t seed, float p, size_t n, const float *x, float *y,
                                   int accumulate, const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, dropout, seed, p, n, x, y, accumulate) : ATTN_OK;
}
static attn_status attn__k_softmax(attn_context *ctx, int log, int rows, int cols, const float *x, float *y,
                                   const char *who) {
    return rows && cols ? ATTN__DISPATCH(ctx, who, softmax, log, rows, cols, x, y) : ATTN_OK;
}
static attn_status attn__k_softmax_backward(attn_context *ctx, int log, int rows, int cols, const float *y,
                                            const float *dy, float *dx, const char *who) {
    return rows && cols ? ATTN__DISPATCH(ctx, who, softmax_backward, log, rows, cols, y, dy, dx) : ATTN_OK;
}
static attn_status attn__k_norm_forward(attn_context *ctx, int rms, int rows, int cols, const float *x,
                                        const float *gamma, const float *beta, float eps, float *y, float *mean,
                                        float *rstd, const char *who) {
    return rows ? ATTN__DISPATCH(ctx, who, norm_forward, rms, rows, cols, x, gamma, beta, eps, y, mean, rstd) : ATTN_OK;
}
static attn_status attn__k_norm_backward(attn_context *ctx, int rms, int rows, int cols, const float *x,
                                         const float *gamma, const float *mean, const float *rstd, const float *dy,
                                         float *dx, float *dgamma, float *dbeta, const char *who) {
    return rows ? ATTN__DISPATCH(ctx, who, norm_backward, rms, rows, cols, x, gamma, mean, rstd, dy, dx, dgamma, dbeta)
                : ATTN_OK;
}
static attn_status attn__k_embedding(attn_context *ctx, size_t n, int dim, const int32_t *idx, const float *w, float *y,
                                     const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, embedding, n, dim, idx, w, y) : ATTN_OK;
}
static attn_status attn__k_embedding_backward(attn_context *ctx, size_t n, int dim, const int32_t *idx,
                                              const float *dy, float *dw, const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, embedding_backward, n, dim, idx, dy, dw) : ATTN_OK;
}
static attn_status attn__k_cross_entropy(attn_context *ctx, int rows, int C, const float *logits,
                                         const int32_t *targets, int ignore, float ls, float *logp, float *loss,
                                         const char *who) {
    return ATTN__DISPATCH(ctx, who, cross_entropy, rows, C, logits, targets, ignore, ls, logp, loss);
}
static attn_status attn__k_cross_entropy_backward(attn_context *ctx, int rows, int C, const float *logp,
                                                  const int32_t *targets, int ignore, float ls, const float *dloss,
                                                  float *dlogits, const char *who) {
    return ATTN__DISPATCH(ctx, who, cross_entropy_backward, rows, C, logp, targets, ignore, ls, dloss, dlogits);
}
static attn_status attn__k_attention(attn_context *ctx, const attn_attention_desc *d, const float *q, const float *k,
                                     const float *v, float *o, float *lse, const char *who) {
    return ATTN__DISPATCH(ctx, who, attention, d, q, k, v, o, lse);
}
static attn_status attn__k_attention_backward(attn_context *ctx, const attn_attention_desc *d, const float *q,
                                              const float *k, const float *v, const float *o, const float *lse,
                                              const float *dout, float *dq, float *dk, float *dv, const char *who) {
    return ATTN__DISPATCH(ctx, who, attention_backward, d, q, k, v, o, lse, dout, dq, dk, dv);
}
/* out[0] = the sum of x (of x^2 when squares) / divide_by, in one float of data memory. */
static attn_status attn__k_sum(attn_context *ctx, size_t n, const float *x, int squares, double divide_by, float *out,
                               const char *who) {
    return ATTN__DISPATCH(ctx, who, sum, n, x, squares, divide_by, out);
}
/* y += s[0] / divide_by (s one float of data memory) */
static attn_status attn__k_add_scalar(attn_context *ctx, size_t n, const float *s, float divide_by, float *y,
                                      const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, add_scalar, n, s, divide_by, y) : ATTN_OK;
}
static attn_status attn__k_optim_update(attn_context *ctx, size_t n, const attn_backend_update *u, float *w,
                                        const float *g, float *m, float *v, const char *who) {
    return n ? ATTN__DISPATCH(ctx, who, optim_update, n, u, w, g, m, v) : ATTN_OK;
}
/* attn_tensor_fill has no context: the tensor's own table, or the CPU's. */
static void attn__fill_on(const attn_backend *be, size_t n, float value, float *y) {
    if (be) be->fill(be->user, n, value, y); /* a failure shows at the next download */
    else attn__cpu_fill(NULL, n, value, y);
}

/* ============================================================================
   6. Tensors
   ========================================================================= */
/* t's shape and data strides right-aligned into 4 dims (unused dims 1 and 0). */
static void attn__shape4(const attn_tensor *t, int *shape, int *stride) {
    int d, k = ATTN_MAX_DIMS - t->ndim;
    for (d = 0; d < ATTN_MAX_DIMS; d++) shape[d] = 1, stride[d] = 0;
    for (d = 0; d < t->ndim; d++) shape[k + d] = t->shape[d], stride[k + d] = t->stride[d];
}

/* int32 indices copied into the context's data memory (the node keeps them). */
static int32_t *attn__indices_copy(attn_context *ctx, const int32_t *host, size_t n, const char *who) {
    int32_t *p = (int32_t *)(void *)attn__alloc_floats(ctx, n); /* int32 and float have one size */
    if (p && attn__k_upload(ctx, p, host, n * sizeof(int32_t), who)) return NULL;
    return p;
}

/* Dense row-major host floats into t (any strides), in backend memory or not. */
static attn_status attn__tensor_from_host(attn_context *ctx, attn_tensor *t, const float *host, const char *who) {
    attn_arena_pos mark = attn_arena_mark(&ctx->arena);
    size_t n = attn_tensor_numel(t);
    int shape[4], ts[4], ds[4], d, g = 1;
    float *dense;
    attn_status st;
    if (attn_tensor_is_contiguous(t)) return attn__k_upload(ctx, t->data, host, n * sizeof(float), who);
    attn__shape4(t, shape, ts);
    for (d = 3; d >= 0; d--) ds[d] = g, g *= shape[d];
    if (attn__data_on_host(ctx)) return attn__k_copy4(ctx, shape, host, ds, t->data, ts, 0, who);
    if (!(dense = attn__alloc_floats(ctx, n))) return ctx->status;
    if (!(st = attn__k_upload(ctx, dense, host, n * sizeof(float), who)))
        st = attn__k_copy4(ctx, shape, dense, ds, t->data, ts, 0, who);
    attn_arena_reset(&ctx->arena, mark);
    return st;
}

/* t's elements as dense row-major host floats: t's own data when that is
   already so, else a copy in the arena (downloaded from the backend). */
static const float *attn__tensor_to_host(attn_context *ctx, const attn_tensor *t, const char *who) {
    size_t n = attn_tensor_numel(t);
    int shape[4], ts[4], ds[4], d, g = 1;
    const float *src = t->data;
    float *host;
    if (attn__data_on_host(ctx) && attn_tensor_is_contiguous(t)) return t->data;
    if (!(host = (float *)attn_alloc(ctx, (n ? n : 1) * sizeof(float)))) return NULL;
    attn__shape4(t, shape, ts);
    for (d = 3; d >= 0; d--) ds[d] = g, g *= shape[d];
    if (attn__data_on_host(ctx)) return attn__k_copy4(ctx, shape, t->data, ts, host, ds, 0, who) ? NULL : host;
    if (!attn_tensor_is_contiguous(t)) {
        float *dense = attn__alloc_floats(ctx, n);
        if (!dense || attn__k_copy4(ctx, shape, t->data, ts, dense, ds, 0, who)) return NULL;
        src = dense;
    }
    return attn__k_download(ctx, host, src, n * sizeof(float), who) ? NULL : host;
}

static attn_tensor *attn__tensor_header(attn_context *ctx) {
    attn_tensor *t = (attn_tensor *)attn_alloc(ctx, sizeof(attn_tensor));
    if (t) {
        memset(t, 0, sizeof *t);
        t->backend = ctx->be;
    }
    return t;
}

/* Fill shape/stride for a contiguous layout; fails on a bad or too large shape. */
static attn_status attn__set_shape(attn_context *ctx, attn_tensor *t, int ndim, const int *shape, const char *who) {
    int d;
    size_t numel = 1, span = 1;
    if (ndim < 0 || ndim > ATTN_MAX_DIMS)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: %d dims (0..%d allowed)", who, ndim, ATTN_MAX_DIMS);
    if (ndim > 0 && !shape) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: shape is NULL", who);
    for (d = 0; d < ndim; d++) { /* span: the product with zeros read as 1, which the strides reach */
        if (shape[d] < 0) return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: dim %d is negative (%d)", who, d, shape[d]);
        if (shape[d] > 0 && span > (size_t)0x7fffffff / (size_t)shape[d])
            return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: more than 2^31-1 elements", who);
        span *= (size_t)(shape[d] ? shape[d] : 1);
        numel *= (size_t)shape[d];
    }
    if (numel > (size_t)-1 / sizeof(float)) /* a 32-bit size_t cannot count the bytes */
        return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %zu elements do not fit in this platform's memory", who, numel);
    t->ndim = ndim;
    for (d = ATTN_MAX_DIMS - 1; d >= 0; d--) {
        t->shape[d] = d < ndim ? shape[d] : 1;
        t->stride[d] = 0;
    }
    {
        int stride = 1;
        for (d = ndim - 1; d >= 0; d--) {
            t->stride[d] = stride;
            stride *= t->shape[d] ? t->shape[d] : 1;
        }
    }
    return ATTN_OK;
}

ATTN_API size_t attn_tensor_bytes(int ndim, const int *shape) {
    attn_tensor probe;
    size_t data;
    if (attn__set_shape(NULL, &probe, ndim, shape, "attn_tensor_bytes")) return 0;
    data = attn_tensor_numel(&probe) * sizeof(float);
    /* each allocation starts 64-aligned: at most 63 bytes of padding before the
       header, and the header and data each rounded up to 64 */
    return 63 + ((sizeof(attn_tensor) + 63) & ~(size_t)63) + ((ATTN__MAX(data, 1) + 63) & ~(size_t)63);
}

ATTN_API size_t attn_tensor_numel(const attn_tensor *t) {
    size_t n = 1;
    int d;
    for (d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

ATTN_API attn_tensor *attn_tensor_new(attn_context *ctx, int ndim, const int *shape) {
    attn_arena_pos mark;
    attn_tensor *t;
    size_t bytes;
    if (!ctx) return NULL;
    mark = attn_arena_mark(&ctx->arena);
    t = attn__tensor_header(ctx);
    if (!t) return NULL;
    if (attn__set_shape(ctx, t, ndim, shape, "attn_tensor_new")) goto fail;
    bytes = attn_tensor_numel(t);
    t->data = attn__alloc_floats(ctx, bytes);
    if (!t->data || attn__k_fill(ctx, bytes, 0.0f, t->data, "attn_tensor_new")) goto fail;
    return t;
fail:
    attn_arena_reset(&ctx->arena, mark); /* nothing half-made stays behind */
    return NULL;
}

ATTN_API attn_tensor *attn_tensor_1d(attn_context *ctx, int n0) { return attn_tensor_new(ctx, 1, &n0); }
ATTN_API attn_tensor *attn_tensor_2d(attn_context *ctx, int n0, int n1) {
    int s[2];
    s[0] = n0; s[1] = n1;
    return attn_tensor_new(ctx, 2, s);
}
ATTN_API attn_tensor *attn_tensor_3d(attn_context *ctx, int n0, int n1, int n2) {
    int s[3];
    s[0] = n0; s[1] = n1; s[2] = n2;
    return attn_tensor_new(ctx, 3, s);
}
ATTN_API attn_tensor *attn_tensor_4d(attn_context *ctx, int n0, int n1, int n2, int n3) {
    int s[4];
    s[0] = n0; s[1] = n1; s[2] = n2; s[3] = n3;
    return attn_tensor_new(ctx, 4, s);
}

ATTN_API attn_tensor *attn_tensor_wrap(attn_context *ctx, int ndim, const int *shape, float *data) {
    attn_arena_pos mark;
    attn_tensor *t;
    if (!ctx) return NULL;
    mark = attn_arena_mark(&ctx->arena);
    t = attn__tensor_header(ctx);
    if (!t) return NULL;
    if (attn__set_shape(ctx, t, ndim, shape, "attn_tensor_wrap")) {
        attn_arena_reset(&ctx->arena, mark);
        return NULL;
    }
    if (!data && attn_tensor_numel(t) > 0) {
        attn_arena_reset(&ctx->arena, mark);
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_tensor_wrap: data is NULL");
        return NULL;
    }
    t->data = data;
    return t;
}

ATTN_API int attn_tensor_is_contiguous(const attn_tensor *t) {
    int d, expect = 1;
    if (attn_tensor_numel(t) == 0) return 1; /* nothing to lay out, as in PyTorch */
    for (d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

static ptrdiff_t attn__offset(const attn_tensor *t, const int *index) {
    ptrdiff_t off = 0;
    int d;
    for (d = 0; d < t->ndim; d++) off += (ptrdiff_t)index[d] * t->stride[d];
    return off;
}

/* Advance a row-major index over t's shape; 0 once it wraps around. */
static int attn__next_index(const attn_tensor *t, int *index) {
    int d;
    for (d = t->ndim - 1; d >= 0; d--) {
        if (++index[d] < t->shape[d]) return 1;
        index[d] = 0;
    }
    return 0;
}

ATTN_API float *attn_tensor_elem(const attn_tensor *t, const int *index) {
    int d;
    if (!t || (t->ndim > 0 && !index)) return NULL;
    for (d = 0; d < t->ndim; d++)
        if (index[d] < 0 || index[d] >= t->shape[d]) return NULL;
    return t->data + attn__offset(t, index);
}

static attn_tensor *attn__view(attn_context *ctx, const attn_tensor *t, const char *who) {
    attn_tensor *v;
    if (!ctx) return NULL;
    if (!t) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", who);
        return NULL;
    }
    v = attn__tensor_header(ctx);
    if (v) {
        *v = *t;
        v->grad = NULL; /* a view starts outside the graph; the ops record it */
        v->requires_grad = 0;
        v->node = NULL;
    }
    return v;
}

/* The views, unrecorded (section 7's attn_reshape, attn_transpose and attn_slice
   record them); who names the public function in errors. t must be contiguous. */
static attn_tensor *attn__view_reshape(attn_context *ctx, const attn_tensor *t, int ndim, const int *shape,
                                       const char *who) {
    int d, infer = -1, s[ATTN_MAX_DIMS];
    size_t known = 1, numel;
    attn_tensor *v;
    if (!ctx) return NULL;
    if (!t || ndim < 0 || ndim > ATTN_MAX_DIMS || (ndim > 0 && !shape)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: bad tensor, ndim or shape", who);
        return NULL;
    }
    ATTN_ASSERT(attn_tensor_is_contiguous(t));
    numel = attn_tensor_numel(t);
    for (d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (shape[d] == -1 && infer < 0) { infer = d; continue; }
        if (shape[d] < 0) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: dim %d is %d", who, d, shape[d]);
            return NULL;
        }
        known *= (size_t)shape[d];
        if (known > numel && numel > 0) break;
    }
    if (infer >= 0) {
        if (known == 0 || numel % known) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %zu elements do not divide into the shape", who, numel);
            return NULL;
        }
        s[infer] = (int)(numel / known);
        known *= (size_t)s[infer];
    }
    if (known != numel) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %zu elements cannot take a shape of %zu", who, numel, known);
        return NULL;
    }
    v = attn__view(ctx, t, who);
    if (v && attn__set_shape(ctx, v, ndim, s, who)) return NULL;
    return v;
}

static attn_tensor *attn__view_transpose(attn_context *ctx, const attn_tensor *t, int d0, int d1, const char *who) {
    attn_tensor *v;
    int tmp;
    if (!ctx) return NULL;
    if (t && (d0 < 0 || d1 < 0 || d0 >= t->ndim || d1 >= t->ndim)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: dims %d, %d of a %d-dim tensor", who, d0, d1, t->ndim);
        return NULL;
    }
    v = attn__view(ctx, t, who);
    if (!v) return NULL;
    tmp = v->shape[d0]; v->shape[d0] = v->shape[d1]; v->shape[d1] = tmp;
    tmp = v->stride[d0]; v->stride[d0] = v->stride[d1]; v->stride[d1] = tmp;
    return v;
}

static attn_tensor *attn__view_slice(attn_context *ctx, const attn_tensor *t, int dim, int start, int end,
                                     const char *who) {
    attn_tensor *v;
    if (!ctx) return NULL;
    if (t && (dim < 0 || dim >= t->ndim || start < 0 || end < start || end > t->shape[dim])) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: [%d, %d) of dim %d does not fit", who, start, end, dim);
        return NULL;
    }
    v = attn__view(ctx, t, who);
    if (!v) return NULL;
    if (end > start) v->data += (ptrdiff_t)start * v->stride[dim];
    v->shape[dim] = end - start;
    return v;
}

ATTN_API attn_status attn_tensor_copy(attn_context *ctx, attn_tensor *dst, const attn_tensor *src) {
    int d, shape[4], xs[4], ys[4];
    if (!dst || !src) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_tensor_copy: tensor is NULL");
    if (dst->ndim != src->ndim) return attn__fail(ctx, ATTN_ERR_SHAPE, "attn_tensor_copy: %d dims into %d", src->ndim, dst->ndim);
    for (d = 0; d < src->ndim; d++)
        if (dst->shape[d] != src->shape[d])
            return attn__fail(ctx, ATTN_ERR_SHAPE, "attn_tensor_copy: dim %d is %d in src, %d in dst", d, src->shape[d], dst->shape[d]);
    if (dst->backend != src->backend)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_tensor_copy: one tensor is in %s memory, the other "
                          "in %s memory (use attn_tensor_upload / attn_tensor_download)",
                          dst->backend ? dst->backend->name : "host", src->backend ? src->backend->name : "host");
    if (attn_tensor_numel(src) == 0) return ATTN_OK;
    attn__shape4(src, shape, xs);
    attn__shape4(dst, shape, ys);
    if (!ctx) { /* allowed for host tensors: nothing to report to */
        if (dst->backend) return ATTN_ERR_INVALID_ARGUMENT;
        attn__copy4_host(shape, src->data, xs, dst->data, ys, 0);
        return ATTN_OK;
    }
    return attn__k_copy4(ctx, shape, src->data, xs, dst->data, ys, 0, "attn_tensor_copy");
}

ATTN_API attn_tensor *attn_tensor_contiguous(attn_context *ctx, const attn_tensor *t) {
    attn_tensor *c;
    if (!ctx) return NULL;
    if (!t) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_tensor_contiguous: tensor is NULL");
        return NULL;
    }
    if (attn_tensor_is_contiguous(t)) return (attn_tensor *)t;
    c = attn_tensor_new(ctx, t->ndim, t->shape);
    if (c) attn_tensor_copy(ctx, c, t);
    return c;
}

ATTN_API void attn_tensor_fill(attn_tensor *t, float value) {
    int shape[4], ts[4], i0, i1, i2, i3;
    if (!t || attn_tensor_numel(t) == 0) return;
    if (attn_tensor_is_contiguous(t)) {
        attn__fill_on(t->backend, attn_tensor_numel(t), value, t->data);
        return;
    }
    attn__shape4(t, shape, ts);
    for (i0 = 0; i0 < shape[0]; i0++) /* a view: row by row */
        for (i1 = 0; i1 < shape[1]; i1++)
            for (i2 = 0; i2 < shape[2]; i2++) {
                float *row = t->data + (ptrdiff_t)i0 * ts[0] + (ptrdiff_t)i1 * ts[1] + (ptrdiff_t)i2 * ts[2];
                if (ts[3] == 1) attn__fill_on(t->backend, (size_t)shape[3], value, row);
                else for (i3 = 0; i3 < shape[3]; i3++) attn__fill_on(t->backend, 1, value, row + (ptrdiff_t)i3 * ts[3]);
            }
}

enum { ATTN__INIT_UNIFORM, ATTN__INIT_NORMAL };

static attn_status attn__init_fill(attn_context *ctx, attn_tensor *t, int kind, float a, float b, const char *who) {
    int index[ATTN_MAX_DIMS] = {0, 0, 0, 0};
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", who);
    if (!(a == a) || !(b == b)) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: NaN parameter", who);
    if (attn_tensor_numel(t) == 0) return ATTN_OK;
    if (!attn__data_on_host(ctx)) { /* the same numbers, made on the host and uploaded */
        attn_arena_pos mark = attn_arena_mark(&ctx->arena);
        size_t i, n = attn_tensor_numel(t);
        float *host = (float *)attn_alloc(ctx, n * sizeof(float));
        attn_status st = ATTN_ERR_OUT_OF_MEMORY;
        if (host) {
            for (i = 0; i < n; i++)
                host[i] = kind == ATTN__INIT_UNIFORM ? a + (b - a) * attn_rng_uniform(&ctx->rng)
                                                     : a + b * attn_rng_normal(&ctx->rng);
            st = attn__tensor_from_host(ctx, t, host, who);
        }
        attn_arena_reset(&ctx->arena, mark);
        return st ? ctx->status : ATTN_OK;
    }
    do {
        float v = kind == ATTN__INIT_UNIFORM ? a + (b - a) * attn_rng_uniform(&ctx->rng)
                                             : a + b * attn_rng_normal(&ctx->rng);
        t->data[attn__offset(t, index)] = v;
    } while (attn__next_index(t, index));
    return ATTN_OK;
}

/* PyTorch's fans: dim 1 is input, dim 0 output, the rest a receptive field. */
static attn_status attn__fans(attn_context *ctx, const attn_tensor *t, float *fan_in, float *fan_out, const char *who) {
    float receptive = 1.0f;
    int d;
    *fan_in = *fan_out = 0.0f;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", who);
    if (t->ndim < 2) return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: fans need at least 2 dims, got %d", who, t->ndim);
    for (d = 2; d < t->ndim; d++) receptive *= (float)t->shape[d];
    *fan_in = (float)t->shape[1] * receptive;
    *fan_out = (float)t->shape[0] * receptive;
    if (*fan_in <= 0.0f || *fan_out <= 0.0f) return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: a fan is zero", who);
    return ATTN_OK;
}

ATTN_API attn_status attn_init_uniform(attn_context *ctx, attn_tensor *t, float lo, float hi) {
    return attn__init_fill(ctx, t, ATTN__INIT_UNIFORM, lo, hi, "attn_init_uniform");
}
ATTN_API attn_status attn_init_normal(attn_context *ctx, attn_tensor *t, float mean, float std) {
    return attn__init_fill(ctx, t, ATTN__INIT_NORMAL, mean, std, "attn_init_normal");
}
ATTN_API attn_status attn_init_xavier_uniform(attn_context *ctx, attn_tensor *t, float gain) {
    float fi, fo, bound;
    attn_status s = attn__fans(ctx, t, &fi, &fo, "attn_init_xavier_uniform");
    if (s) return s;
    bound = gain * sqrtf(6.0f / (fi + fo));
    return attn__init_fill(ctx, t, ATTN__INIT_UNIFORM, -bound, bound, "attn_init_xavier_uniform");
}
ATTN_API attn_status attn_init_xavier_normal(attn_context *ctx, attn_tensor *t, float gain) {
    float fi, fo;
    attn_status s = attn__fans(ctx, t, &fi, &fo, "attn_init_xavier_normal");
    if (s) return s;
    return attn__init_fill(ctx, t, ATTN__INIT_NORMAL, 0.0f, gain * sqrtf(2.0f / (fi + fo)), "attn_init_xavier_normal");
}
ATTN_API attn_status attn_init_kaiming_uniform(attn_context *ctx, attn_tensor *t, float a) {
    float fi, fo, bound;
    attn_status s = attn__fans(ctx, t, &fi, &fo, "attn_init_kaiming_uniform");
    if (s) return s;
    bound = sqrtf(2.0f / (1.0f + a * a)) * sqrtf(3.0f / fi);
    return attn__init_fill(ctx, t, ATTN__INIT_UNIFORM, -bound, bound, "attn_init_kaiming_uniform");
}
ATTN_API attn_status attn_init_kaiming_normal(attn_context *ctx, attn_tensor *t, float a) {
    float fi, fo;
    attn_status s = attn__fans(ctx, t, &fi, &fo, "attn_init_kaiming_normal");
    if (s) return s;
    return attn__init_fill(ctx, t, ATTN__INIT_NORMAL, 0.0f, sqrtf(2.0f / (1.0f + a * a)) / sqrtf(fi), "attn_init_kaiming_normal");
}

/* ---- moving data between host memory and the context's data memory ---- */
ATTN_API const attn_backend *attn_context_backend(const attn_context *ctx) { return ctx ? ctx->be : NULL; }

static attn_status attn__transfer_check(attn_context *ctx, const attn_tensor *t, const void *host, size_t n,
                                        const char *who) {
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!t || (!host && n)) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: NULL tensor or host pointer", who);
    if (n != attn_tensor_numel(t))
        return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %zu floats for a tensor of %zu", who, n, attn_tensor_numel(t));
    return ATTN_OK;
}

ATTN_API attn_status attn_tensor_upload(attn_context *ctx, attn_tensor *t, const float *host, size_t n) {
    attn_status s = attn__transfer_check(ctx, t, host, n, "attn_tensor_upload");
    return s ? s : n ? attn__tensor_from_host(ctx, t, host, "attn_tensor_upload") : ATTN_OK;
}

ATTN_API attn_status attn_tensor_download(attn_context *ctx, const attn_tensor *t, float *host, size_t n) {
    attn_arena_pos mark;
    const float *h;
    attn_status s = attn__transfer_check(ctx, t, host, n, "attn_tensor_download");
    if (s || !n) return s;
    if (attn_tensor_is_contiguous(t)) return attn__k_download(ctx, host, t->data, n * sizeof(float), "attn_tensor_download");
    mark = attn_arena_mark(&ctx->arena);
    if ((h = attn__tensor_to_host(ctx, t, "attn_tensor_download")) != NULL) memcpy(host, h, n * sizeof(float));
    attn_arena_reset(&ctx->arena, mark);
    return h ? ATTN_OK : ctx->status;
}

ATTN_API attn_status attn_tensor_download_grad(attn_context *ctx, const attn_tensor *t, float *host, size_t n) {
    attn_status s = attn__transfer_check(ctx, t, host, n, "attn_tensor_download_grad");
    if (s || !n) return s;
    if (!t->grad) {
        memset(host, 0, n * sizeof(float));
        return ATTN_OK;
    }
    return attn__k_download(ctx, host, t->grad, n * sizeof(float), "attn_tensor_download_grad");
}


/* ============================================================================
   7. Autodiff
   ========================================================================= */
typedef enum attn__op {
    ATTN__OP_ADD, ATTN__OP_SUB, ATTN__OP_MUL, ATTN__OP_SCALE, ATTN__OP_SUM, ATTN__OP_MEAN,
    ATTN__OP_MATMUL, ATTN__OP_LINEAR, ATTN__OP_VIEW, ATTN__OP_CONCAT, ATTN__OP_EMBEDDING,
    ATTN__OP_SOFTMAX, ATTN__OP_LOG_SOFTMAX, ATTN__OP_LAYERNORM, ATTN__OP_RMSNORM,
    ATTN__OP_GELU, ATTN__OP_RELU, ATTN__OP_TANH, ATTN__OP_DROPOUT,
    ATTN__OP_CROSS_ENTROPY, ATTN__OP_MSE, ATTN__OP_ATTENTION, ATTN__OP_ROPE
} attn__op;

struct attn_node {
    attn_node *prev;            /* the node recorded before this one */
    attn__op op;
    int released;               /* a backward without retain freed this graph */
    attn_tensor *out;
    attn_tensor *in[3];         /* inputs, NULL where absent */
    attn_tensor **list;         /* concat: all its inputs */
    int n_list;
    float f;                    /* scale, eps, dropout p, label smoothing, rope base */
    int i, i2;                  /* concat dim, ignore_index, rope heads and start */
    float *saved;               /* norm statistics, log-probabilities */
    int32_t *index;             /* embedding / cross-entropy indices (a copy) */
    int vstride[ATTN_MAX_DIMS]; /* views: out index -> offset into the input's grad */
    ptrdiff_t voffset;
    uint64_t seed;              /* dropout mask */
    attn_attention_desc *att;   /* attention: the kernel's descriptor (masks copied) */
};

ATTN_API int attn_grad_enable(attn_context *ctx, int on) {
    int was;
    if (!ctx) return 0;
    was = !ctx->grad_off;
    ctx->grad_off = !on;
    return was;
}

ATTN_API attn_context_pos attn_context_mark(const attn_context *ctx) {
    attn_context_pos m;
    m.arena = attn_arena_mark(&ctx->arena);
    m.tape = ctx->tape;
    m.params_last = ctx->params_last;
    return m;
}

ATTN_API void attn_context_reset(attn_context *ctx, attn_context_pos pos) {
    attn_arena_reset(&ctx->arena, pos.arena);
    ctx->tape = pos.tape;
    ctx->params_last = pos.params_last;
    if (pos.params_last) pos.params_last->next = NULL;
    else ctx->params = NULL;
}

/* "(2, 3, 4)" for messages */
static const char *attn__shape_text(const attn_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    int d;
    if (!t) return "(null)";
    buf[n++] = '(';
    for (d = 0; d < t->ndim && n + 16 < cap; d++) {
        char digits[12];
        int k = 11, v = t->shape[d];
        digits[k] = 0;
        do { digits[--k] = (char)('0' + v % 10); v /= 10; } while (v);
        if (d) { buf[n++] = ','; buf[n++] = ' '; }
        while (digits[k]) buf[n++] = digits[k++];
    }
    buf[n++] = ')';
    buf[n] = 0;
    return buf;
}

/* A contiguous result; its data is not cleared (the op writes every element). */
static attn_tensor *attn__result(attn_context *ctx, int ndim, const int *shape, const char *who) {
    attn_arena_pos mark = attn_arena_mark(&ctx->arena);
    attn_tensor *t = attn__tensor_header(ctx);
    if (!t) return NULL;
    if (attn__set_shape(ctx, t, ndim, shape, who)) goto fail;
    t->data = attn__alloc_floats(ctx, attn_tensor_numel(t));
    if (t->data) return t;
fail:
    attn_arena_reset(&ctx->arena, mark);
    return NULL;
}

static int attn__needs_grad(const attn_context *ctx, const attn_tensor *a, const attn_tensor *b,
                            const attn_tensor *c) {
    return !ctx->grad_off && ((a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad));
}

/* Put a node for out on the tape; NULL (and an error) when out of memory. */
static attn_node *attn__record(attn_context *ctx, attn__op op, attn_tensor *out, attn_tensor *a, attn_tensor *b,
                               attn_tensor *c) {
    attn_node *n = (attn_node *)attn_alloc(ctx, sizeof(attn_node));
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out = out;
    n->in[0] = a;
    n->in[1] = b;
    n->in[2] = c;
    n->prev = ctx->tape;
    ctx->tape = n;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

/* t's grad, made (zeroed) when missing. NULL with an error when out of memory
   or when t comes from a graph an earlier backward freed. */
static float *attn__grad(attn_context *ctx, attn_tensor *t) {
    if (t->node && t->node->released) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_backward: the graph was freed by an earlier backward "
                   "(pass retain to attn_backward_ex to go through it twice)");
        return NULL;
    }
    if (!t->grad) {
        size_t n = attn_tensor_numel(t);
        float *g = attn__alloc_floats(ctx, n);
        if (g && !attn__k_fill(ctx, n, 0.0f, g, "attn_backward")) t->grad = g;
    }
    return t->grad;
}

static int attn__null_input(attn_context *ctx, const attn_tensor *t, const char *who) {
    if (t) return 0;
    /* A NULL input usually comes from an op that just failed: its message says
       more than this one would, so it stays. */
    if (ctx->status == ATTN_OK) attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: input tensor is NULL", who);
    return 1;
}

/* Right-align t's shape into 4 dims, with its data strides and the strides of
   its (contiguous) grad; dims of size 1 get stride 0, so that they broadcast. */
static void attn__dims4(const attn_tensor *t, int *shape, int *data_stride, int *grad_stride) {
    int d, k = ATTN_MAX_DIMS - t->ndim, g = 1;
    for (d = 0; d < ATTN_MAX_DIMS; d++) shape[d] = 1, data_stride[d] = 0, grad_stride[d] = 0;
    for (d = t->ndim - 1; d >= 0; d--) {
        shape[k + d] = t->shape[d];
        data_stride[k + d] = t->shape[d] == 1 ? 0 : t->stride[d];
        grad_stride[k + d] = t->shape[d] == 1 ? 0 : g;
        g *= t->shape[d];
    }
}

/* x itself when contiguous, else a recorded contiguous copy. */
static attn_tensor *attn__dense(attn_context *ctx, attn_tensor *x) {
    return attn_tensor_is_contiguous(x) ? x : attn_contiguous(ctx, x);
}

/* ---- elementwise binary ops with broadcasting ---- */

static attn_tensor *attn__binary(attn_context *ctx, attn__op op, attn_tensor *a, attn_tensor *b, const char *who) {
    int sa[4], sb[4], da[4], db[4], ga[4], gb[4], so[4], d, ndim;
    attn_tensor *out;
    if (!ctx || attn__null_input(ctx, a, who) || attn__null_input(ctx, b, who)) return NULL;
    attn__dims4(a, sa, da, ga);
    attn__dims4(b, sb, db, gb);
    for (d = 0; d < 4; d++) {
        if (sa[d] != sb[d] && sa[d] != 1 && sb[d] != 1) {
            char t1[64], t2[64];
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", who,
                       attn__shape_text(a, t1, sizeof t1), attn__shape_text(b, t2, sizeof t2));
            return NULL;
        }
        so[d] = sa[d] == 1 ? sb[d] : sa[d];
    }
    ndim = ATTN__MAX(a->ndim, b->ndim);
    out = attn__result(ctx, ndim, so + 4 - ndim, who);
    if (!out) return NULL;
    if (attn__k_binary4(ctx, op == ATTN__OP_ADD ? ATTN_BE_ADD : op == ATTN__OP_SUB ? ATTN_BE_SUB : ATTN_BE_MUL, so,
                        a->data, da, b->data, db, out->data, who))
        return NULL;
    if (attn__needs_grad(ctx, a, b, NULL) && !attn__record(ctx, op, out, a, b, NULL)) return NULL;
    return out;
}

static attn_status attn__binary_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *a = n->in[0], *b = n->in[1];
    int sa[4], sb[4], da[4], db[4], ga[4], gb[4], so[4], dd[4], gd[4];
    attn__dims4(a, sa, da, ga);
    attn__dims4(b, sb, db, gb);
    attn__dims4(n->out, so, dd, gd);
    if (a->requires_grad) {
        float *g = attn__grad(ctx, a);
        if (!g) return ctx->status;
        if (attn__k_reduce4(ctx, so, g, ga, n->out->grad, n->op == ATTN__OP_MUL ? b->data : NULL, db, 1.0f,
                            "attn_backward"))
            return ctx->status;
    }
    if (b->requires_grad) {
        float *g = attn__grad(ctx, b);
        if (!g) return ctx->status;
        if (attn__k_reduce4(ctx, so, g, gb, n->out->grad, n->op == ATTN__OP_MUL ? a->data : NULL, da,
                            n->op == ATTN__OP_SUB ? -1.0f : 1.0f, "attn_backward"))
            return ctx->status;
    }
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_add(attn_context *ctx, attn_tensor *a, attn_tensor *b) { return attn__binary(ctx, ATTN__OP_ADD, a, b, "attn_add"); }
ATTN_API attn_tensor *attn_sub(attn_context *ctx, attn_tensor *a, attn_tensor *b) { return attn__binary(ctx, ATTN__OP_SUB, a, b, "attn_sub"); }
ATTN_API attn_tensor *attn_mul(attn_context *ctx, attn_tensor *a, attn_tensor *b) { return attn__binary(ctx, ATTN__OP_MUL, a, b, "attn_mul"); }

/* ---- how an op begins and ends ----
   An op allocates its result first and marks the arena: what comes after the
   mark (dense copies of strided inputs, statistics for the backward pass) is
   scratch. With grad on the node keeps it; with grad off attn__finish drops it,
   so an unrecorded op leaves only its result behind. */
static attn_tensor *attn__finish(attn_context *ctx, attn__op op, attn_tensor *out, attn_tensor *a, attn_tensor *b,
                                 attn_tensor *c, attn_arena_pos scratch, attn_node **node) {
    attn_node *n;
    if (!attn__needs_grad(ctx, a, b, c)) {
        attn_arena_reset(&ctx->arena, scratch);
        return out;
    }
    if (!(n = attn__record(ctx, op, out, a, b, c))) return NULL;
    if (node) *node = n;
    return out;
}

/* ---- unary elementwise ops: scale, relu, tanh, gelu, dropout ---- */
/* A result of x's shape, then x made dense (after *scratch). */
static attn_tensor *attn__unary_begin(attn_context *ctx, attn_tensor **x, attn_arena_pos *scratch, const char *who) {
    attn_tensor *out;
    if (!ctx || attn__null_input(ctx, *x, who)) return NULL;
    if (!(out = attn__result(ctx, (*x)->ndim, (*x)->shape, who))) return NULL;
    *scratch = attn_arena_mark(&ctx->arena);
    return (*x = attn__dense(ctx, *x)) ? out : NULL;
}

/* scale, relu, tanh, gelu: the node keeps the kernel's code (i) and s (f). */
static attn_tensor *attn__unary_op(attn_context *ctx, attn_tensor *x, attn__op op, int kernel, float s, const char *who) {
    attn_arena_pos scratch;
    attn_node *n = NULL;
    attn_tensor *out = attn__unary_begin(ctx, &x, &scratch, who);
    if (!out || attn__k_unary(ctx, kernel, attn_tensor_numel(x), s, x->data, NULL, NULL, out->data, who)) return NULL;
    out = attn__finish(ctx, op, out, x, NULL, NULL, scratch, &n);
    if (n) {
        n->f = s;
        n->i = kernel;
    }
    return out;
}
ATTN_API attn_tensor *attn_scale(attn_context *ctx, attn_tensor *x, float s) {
    return attn__unary_op(ctx, x, ATTN__OP_SCALE, ATTN_BE_SCALE, s, "attn_scale");
}
ATTN_API attn_tensor *attn_relu(attn_context *ctx, attn_tensor *x) {
    return attn__unary_op(ctx, x, ATTN__OP_RELU, ATTN_BE_RELU, 0.0f, "attn_relu");
}
ATTN_API attn_tensor *attn_tanh(attn_context *ctx, attn_tensor *x) {
    return attn__unary_op(ctx, x, ATTN__OP_TANH, ATTN_BE_TANH, 0.0f, "attn_tanh");
}
ATTN_API attn_tensor *attn_gelu(attn_context *ctx, attn_tensor *x) {
    return attn__unary_op(ctx, x, ATTN__OP_GELU, ATTN_BE_GELU, 0.0f, "attn_gelu");
}

ATTN_API attn_tensor *attn_dropout(attn_context *ctx, attn_tensor *x, float p, int training) {
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    uint64_t seed;
    if (!ctx || attn__null_input(ctx, x, "attn_dropout")) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_dropout: p must be in [0, 1]");
        return NULL;
    }
    if (!training || p == 0.0f) return x;
    out = attn__unary_begin(ctx, &x, &scratch, "attn_dropout");
    if (!out) return NULL;
    seed = (uint64_t)attn_rng_u32(&ctx->rng) << 32 | attn_rng_u32(&ctx->rng);
    if (attn__k_dropout(ctx, seed, p, attn_tensor_numel(x), x->data, out->data, 0, "attn_dropout")) return NULL;
    out = attn__finish(ctx, ATTN__OP_DROPOUT, out, x, NULL, NULL, scratch, &n);
    if (n) {
        n->f = p;
        n->seed = seed;
    }
    return out;
}

/* ---- reductions ---- */
static attn_tensor *attn__reduce(attn_context *ctx, attn__op op, attn_tensor *x, const char *who) {
    attn_arena_pos scratch;
    attn_tensor *out;
    size_t n;
    if (!ctx || attn__null_input(ctx, x, who) || !(out = attn__result(ctx, 0, NULL, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(x = attn__dense(ctx, x))) return NULL;
    n = attn_tensor_numel(x);
    /* divided in double and rounded once, as PyTorch's mean; the mean of nothing is NaN */
    if (attn__k_sum(ctx, n, x->data, 0, op == ATTN__OP_MEAN ? (double)n : 1.0, out->data, who)) return NULL;
    return attn__finish(ctx, op, out, x, NULL, NULL, scratch, NULL);
}
ATTN_API attn_tensor *attn_sum(attn_context *ctx, attn_tensor *x) { return attn__reduce(ctx, ATTN__OP_SUM, x, "attn_sum"); }
ATTN_API attn_tensor *attn_mean(attn_context *ctx, attn_tensor *x) { return attn__reduce(ctx, ATTN__OP_MEAN, x, "attn_mean"); }

/* ---- matmul and linear ---- */
ATTN_API attn_tensor *attn_matmul(attn_context *ctx, attn_tensor *a, attn_tensor *b) {
    const char *who = "attn_matmul";
    int shape[ATTN_MAX_DIMS], d, M, K, N, batch = 1;
    attn_arena_pos scratch;
    attn_tensor *out;
    char t1[64], t2[64];
    if (!ctx || attn__null_input(ctx, a, who) || attn__null_input(ctx, b, who)) return NULL;
    if (a->ndim < 2 || b->ndim < 2 || (b->ndim > 2 && b->ndim != a->ndim)) goto bad;
    M = a->shape[a->ndim - 2]; K = a->shape[a->ndim - 1]; N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != K) goto bad;
    for (d = 0; d < a->ndim - 2; d++) {
        if (b->ndim > 2 && b->shape[d] != a->shape[d]) goto bad;
        batch *= a->shape[d];
        shape[d] = a->shape[d];
    }
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    if (!(out = attn__result(ctx, a->ndim, shape, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(a = attn__dense(ctx, a)) || !(b = attn__dense(ctx, b))) return NULL;
    if (b->ndim == 2 ? /* one B for every batch: a single (batch*M) x K GEMM */
        attn__k_gemm(ctx, 0, 0, batch * M, N, K, 1.0f, a->data, K, 0, b->data, N, 0, 0.0f, out->data, N, 0, 1, who) :
        attn__k_gemm(ctx, 0, 0, M, N, K, 1.0f, a->data, K, (ptrdiff_t)M * K, b->data, N, (ptrdiff_t)K * N, 0.0f,
                     out->data, N, (ptrdiff_t)M * N, batch, who))
        return NULL;
    return attn__finish(ctx, ATTN__OP_MATMUL, out, a, b, NULL, scratch, NULL);
bad:
    attn__fail(ctx, ATTN_ERR_SHAPE, "%s: cannot multiply %s by %s", who, attn__shape_text(a, t1, sizeof t1),
               attn__shape_text(b, t2, sizeof t2));
    return NULL;
}

static attn_status attn__matmul_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *a = n->in[0], *b = n->in[1];
    int M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    int batch = (int)(attn_tensor_numel(a) / ((size_t)M * K));
    const float *g = n->out->grad;
    const char *who = "attn_backward";
    ptrdiff_t sa = (ptrdiff_t)M * K, sb = (ptrdiff_t)K * N, sc = (ptrdiff_t)M * N;
    if (a->requires_grad) { /* dA = dC B^T */
        float *ga = attn__grad(ctx, a);
        if (!ga || (b->ndim == 2 ? attn__k_gemm(ctx, 0, 1, batch * M, K, N, 1.0f, g, N, 0, b->data, N, 0, 1.0f, ga, K, 0, 1, who)
                                 : attn__k_gemm(ctx, 0, 1, M, K, N, 1.0f, g, N, sc, b->data, N, sb, 1.0f, ga, K, sa, batch, who)))
            return ctx->status;
    }
    if (b->requires_grad) { /* dB = A^T dC (summed over batches when B is shared) */
        float *gb = attn__grad(ctx, b);
        if (!gb || (b->ndim == 2 ? attn__k_gemm(ctx, 1, 0, K, N, batch * M, 1.0f, a->data, K, 0, g, N, 0, 1.0f, gb, N, 0, 1, who)
                                 : attn__k_gemm(ctx, 1, 0, K, N, M, 1.0f, a->data, K, sa, g, N, sc, 1.0f, gb, N, sb, batch, who)))
            return ctx->status;
    }
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_linear(attn_context *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *bias) {
    const char *who = "attn_linear";
    int shape[ATTN_MAX_DIMS], rows, in, outf;
    attn_arena_pos scratch;
    attn_tensor *out;
    char t1[64], t2[64];
    if (!ctx || attn__null_input(ctx, x, who) || attn__null_input(ctx, w, who)) return NULL;
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1] ||
        (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0]))) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: input %s, weight %s (want (out, in) with in = the last input dim), bias %s",
                   who, attn__shape_text(x, t1, sizeof t1), attn__shape_text(w, t2, sizeof t2),
                   bias ? "of the wrong length" : "none");
        return NULL;
    }
    in = w->shape[1];
    outf = w->shape[0];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = outf;
    if (!(out = attn__result(ctx, x->ndim, shape, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(x = attn__dense(ctx, x)) || !(w = attn__dense(ctx, w)) || (bias && !(bias = attn__dense(ctx, bias))))
        return NULL;
    rows = (int)(attn_tensor_numel(x) / (size_t)ATTN__MAX(in, 1));
    if (in == 0) rows = (int)(attn_tensor_numel(out) / (size_t)ATTN__MAX(outf, 1));
    if (bias) { /* start every row from the bias, then add x w^T */
        int shape[4] = {1, 1, 0, 0}, bs[4] = {0, 0, 0, 1}, os[4] = {0, 0, 0, 1};
        shape[2] = rows, shape[3] = outf, os[2] = outf;
        if (attn__k_copy4(ctx, shape, bias->data, bs, out->data, os, 0, who)) return NULL;
    }
    if (attn__k_gemm(ctx, 0, 1, rows, outf, in, 1.0f, x->data, ATTN__MAX(in, 1), 0, w->data, ATTN__MAX(in, 1), 0,
                     bias ? 1.0f : 0.0f, out->data, ATTN__MAX(outf, 1), 0, 1, who))
        return NULL;
    return attn__finish(ctx, ATTN__OP_LINEAR, out, x, w, bias, scratch, NULL);
}

static attn_status attn__linear_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2];
    int in = w->shape[1], outf = w->shape[0], ld_in = ATTN__MAX(in, 1), ld_out = ATTN__MAX(outf, 1);
    int rows = (int)(attn_tensor_numel(n->out) / (size_t)ld_out);
    const float *g = n->out->grad;
    const char *who = "attn_backward";
    if (x->requires_grad) { /* dx = dy w */
        float *gx = attn__grad(ctx, x);
        if (!gx || attn__k_gemm(ctx, 0, 0, rows, in, outf, 1.0f, g, ld_out, 0, w->data, ld_in, 0, 1.0f, gx, ld_in, 0, 1, who))
            return ctx->status;
    }
    if (w->requires_grad) { /* dw = dy^T x */
        float *gw = attn__grad(ctx, w);
        if (!gw || attn__k_gemm(ctx, 1, 0, outf, in, rows, 1.0f, g, ld_out, 0, x->data, ld_in, 0, 1.0f, gw, ld_in, 0, 1, who))
            return ctx->status;
    }
    if (bias && bias->requires_grad) { /* db = column sums of dy */
        float *gb = attn__grad(ctx, bias);
        int shape[4] = {1, 1, 0, 0}, bs[4] = {0, 0, 0, 1}, gs[4] = {0, 0, 0, 1};
        if (!gb) return ctx->status;
        shape[2] = rows, shape[3] = outf, gs[2] = outf;
        return attn__k_reduce4(ctx, shape, gb, bs, g, NULL, gs, 1.0f, who);
    }
    return ATTN_OK;
}

/* ---- views and copies ---- */
/* Record v (a view of x) with the map from v's indices into x's grad. */
static attn_tensor *attn__record_view(attn_context *ctx, attn_tensor *v, attn_tensor *x, const int *vstride,
                                      ptrdiff_t voffset) {
    attn_node *n;
    if (!v || !attn__needs_grad(ctx, x, NULL, NULL)) return v;
    if (!(n = attn__record(ctx, ATTN__OP_VIEW, v, x, NULL, NULL))) return NULL;
    memcpy(n->vstride, vstride, sizeof n->vstride);
    n->voffset = voffset;
    return v;
}

/* Row-major strides of t's shape (what its grad uses). */
static void attn__grad_strides(const attn_tensor *t, int *s) {
    int d, g = 1;
    for (d = ATTN_MAX_DIMS - 1; d >= 0; d--) s[d] = 0;
    for (d = t->ndim - 1; d >= 0; d--) {
        s[d] = g;
        g *= t->shape[d];
    }
}

ATTN_API attn_tensor *attn_reshape(attn_context *ctx, attn_tensor *x, int ndim, const int *shape) {
    attn_tensor *v;
    int s[ATTN_MAX_DIMS];
    if (!ctx || attn__null_input(ctx, x, "attn_reshape")) return NULL;
    if (!(x = attn__dense(ctx, x)) || !(v = attn__view_reshape(ctx, x, ndim, shape, "attn_reshape"))) return NULL;
    attn__grad_strides(v, s); /* same row-major order: v's index i is x's grad element i */
    return attn__record_view(ctx, v, x, s, 0);
}

ATTN_API attn_tensor *attn_transpose(attn_context *ctx, attn_tensor *x, int d0, int d1) {
    attn_tensor *v;
    int s[ATTN_MAX_DIMS], tmp;
    if (!ctx || attn__null_input(ctx, x, "attn_transpose")) return NULL;
    if (!(v = attn__view_transpose(ctx, x, d0, d1, "attn_transpose"))) return NULL;
    attn__grad_strides(x, s);
    tmp = s[d0]; s[d0] = s[d1]; s[d1] = tmp;
    return attn__record_view(ctx, v, x, s, 0);
}

ATTN_API attn_tensor *attn_slice(attn_context *ctx, attn_tensor *x, int dim, int start, int end) {
    attn_tensor *v;
    int s[ATTN_MAX_DIMS];
    if (!ctx || attn__null_input(ctx, x, "attn_slice")) return NULL;
    if (!(v = attn__view_slice(ctx, x, dim, start, end, "attn_slice"))) return NULL;
    attn__grad_strides(x, s);
    return attn__record_view(ctx, v, x, s, (ptrdiff_t)start * s[dim]);
}

ATTN_API attn_tensor *attn_contiguous(attn_context *ctx, attn_tensor *x) {
    attn_tensor *out;
    int s[ATTN_MAX_DIMS];
    if (!ctx || attn__null_input(ctx, x, "attn_contiguous")) return NULL;
    if (!(out = attn__result(ctx, x->ndim, x->shape, "attn_contiguous"))) return NULL;
    attn_tensor_copy(ctx, out, x);
    attn__grad_strides(x, s);
    return attn__record_view(ctx, out, x, s, 0);
}

ATTN_API attn_tensor *attn_detach(attn_context *ctx, const attn_tensor *t) {
    return attn__view(ctx, t, "attn_detach");
}

/* v (ndim entries) right-aligned into 4, the rest `fill`. */
static void attn__align4(const int *v, int ndim, int *out, int fill) {
    int d;
    for (d = 0; d < ATTN_MAX_DIMS; d++) out[d] = d < ATTN_MAX_DIMS - ndim ? fill : v[d - (ATTN_MAX_DIMS - ndim)];
}

/* grad_in[voffset + sum idx*vstride] += grad_out[idx], over out's shape */
static attn_status attn__view_backward(attn_context *ctx, attn_node *n) {
    int shape[4], gs[4], vs[4], dense[ATTN_MAX_DIMS];
    float *gx = attn__grad(ctx, n->in[0]);
    if (!gx) return ctx->status;
    attn__grad_strides(n->out, dense);
    attn__align4(n->out->shape, n->out->ndim, shape, 1);
    attn__align4(dense, n->out->ndim, gs, 0);
    attn__align4(n->vstride, n->out->ndim, vs, 0);
    return attn__k_copy4(ctx, shape, n->out->grad, gs, gx + n->voffset, vs, 1, "attn_backward");
}

ATTN_API attn_tensor *attn_concat(attn_context *ctx, attn_tensor *const *xs, int n, int dim) {
    const char *who = "attn_concat";
    int shape[ATTN_MAX_DIMS], i, d, any_grad = 0, offset = 0;
    attn_tensor *out;
    attn_node *node;
    if (!ctx) return NULL;
    if (!xs || n < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: no tensors", who);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (attn__null_input(ctx, xs[i], who)) return NULL;
        if (i == 0) {
            if (dim < 0 || dim >= xs[0]->ndim) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: dim %d of a %d-dim tensor", who, dim, xs[0]->ndim);
                return NULL;
            }
            memcpy(shape, xs[0]->shape, sizeof shape);
            shape[dim] = 0;
        }
        if (xs[i]->ndim != xs[0]->ndim) goto bad;
        for (d = 0; d < xs[0]->ndim; d++)
            if (d != dim && xs[i]->shape[d] != xs[0]->shape[d]) goto bad;
        if (shape[dim] > 0x7fffffff - xs[i]->shape[dim]) goto bad;
        shape[dim] += xs[i]->shape[dim];
        any_grad |= xs[i]->requires_grad;
    }
    if (!(out = attn__result(ctx, xs[0]->ndim, shape, who))) return NULL;
    for (i = 0; i < n; i++) { /* copy each input into its slice of out */
        attn_tensor slot = *out;
        slot.data = out->data + (ptrdiff_t)offset * out->stride[dim];
        slot.shape[dim] = xs[i]->shape[dim];
        attn_tensor_copy(ctx, &slot, xs[i]);
        offset += xs[i]->shape[dim];
    }
    if (!ctx->grad_off && any_grad) {
        if (!(node = attn__record(ctx, ATTN__OP_CONCAT, out, NULL, NULL, NULL))) return NULL;
        if (!(node->list = (attn_tensor **)attn_alloc(ctx, (size_t)n * sizeof(attn_tensor *)))) return NULL;
        memcpy(node->list, xs, (size_t)n * sizeof(attn_tensor *));
        node->n_list = n;
        node->i = dim;
    }
    return out;
bad:
    attn__fail(ctx, ATTN_ERR_SHAPE, "%s: tensor %d does not match the others outside dim %d", who, i, dim);
    return NULL;
}

static attn_status attn__concat_backward(attn_context *ctx, attn_node *n) {
    int i, offset = 0, dim = n->i, s[ATTN_MAX_DIMS];
    attn__grad_strides(n->out, s);
    for (i = 0; i < n->n_list; i++) {
        attn_tensor *x = n->list[i];
        if (x->requires_grad) { /* the slice of out's grad that came from x, walked with x's shape */
            int shape[4], os[4], xs[4], dense[ATTN_MAX_DIMS];
            float *gx = attn__grad(ctx, x);
            if (!gx) return ctx->status;
            attn__grad_strides(x, dense);
            attn__align4(x->shape, x->ndim, shape, 1);
            attn__align4(s, x->ndim, os, 0);
            attn__align4(dense, x->ndim, xs, 0);
            if (attn__k_copy4(ctx, shape, n->out->grad + (ptrdiff_t)offset * s[dim], os, gx, xs, 1, "attn_backward"))
                return ctx->status;
        }
        offset += x->shape[dim];
    }
    return ATTN_OK;
}

/* ---- embedding ---- */
ATTN_API attn_tensor *attn_embedding(attn_context *ctx, attn_tensor *weight, const int32_t *indices, int ndim,
                                     const int *shape) {
    const char *who = "attn_embedding";
    int out_shape[ATTN_MAX_DIMS], d, V, D;
    size_t i, count = 1;
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    if (!ctx || attn__null_input(ctx, weight, who)) return NULL;
    if (weight->ndim != 2 || ndim < 0 || ndim > ATTN_MAX_DIMS - 1 || (ndim > 0 && !shape)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: weight must be (V, D) and indices at most %d-dim", who, ATTN_MAX_DIMS - 1);
        return NULL;
    }
    V = weight->shape[0];
    D = weight->shape[1];
    for (d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: index dim %d is negative", who, d);
            return NULL;
        }
        out_shape[d] = shape[d];
        count *= (size_t)shape[d];
    }
    out_shape[ndim] = D;
    if (count > 0 && !indices) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: indices is NULL", who);
        return NULL;
    }
    for (i = 0; i < count; i++)
        if (indices[i] < 0 || indices[i] >= V) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: index %d at position %zu is outside [0, %d)", who,
                       (int)indices[i], i, V);
            return NULL;
        }
    if (!(out = attn__result(ctx, ndim + 1, out_shape, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(weight = attn__dense(ctx, weight))) return NULL;
    if (count) { /* the indices go to the context's data memory (kept for the backward pass) */
        int32_t *idx = attn__indices_copy(ctx, indices, count, who);
        if (!idx || attn__k_embedding(ctx, count, D, idx, weight->data, out->data, who)) return NULL;
        indices = idx;
    }
    if (!(out = attn__finish(ctx, ATTN__OP_EMBEDDING, out, weight, NULL, NULL, scratch, &n))) return NULL;
    if (n && count) n->index = (int32_t *)indices;
    return out;
}

static attn_status attn__embedding_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *w = n->in[0];
    int D = w->shape[1];
    size_t count = attn_tensor_numel(n->out) / (size_t)ATTN__MAX(D, 1);
    float *gw = attn__grad(ctx, w);
    if (!gw) return ctx->status;
    return attn__k_embedding_backward(ctx, count, D, n->index, n->out->grad, gw, "attn_backward");
}

/* ---- softmax, log-softmax, layernorm, rmsnorm: along the last dim ---- */
static int attn__last_dim(const attn_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static attn_tensor *attn__softmax_op(attn_context *ctx, attn_tensor *x, attn__op op, const char *who) {
    attn_arena_pos scratch;
    attn_tensor *out = attn__unary_begin(ctx, &x, &scratch, who);
    int cols, rows;
    if (!out) return NULL;
    cols = attn__last_dim(x);
    rows = cols ? (int)(attn_tensor_numel(x) / (size_t)cols) : 0;
    if (attn__k_softmax(ctx, op == ATTN__OP_LOG_SOFTMAX, rows, cols, x->data, out->data, who)) return NULL;
    return attn__finish(ctx, op, out, x, NULL, NULL, scratch, NULL);
}
ATTN_API attn_tensor *attn_softmax(attn_context *ctx, attn_tensor *x) { return attn__softmax_op(ctx, x, ATTN__OP_SOFTMAX, "attn_softmax"); }
ATTN_API attn_tensor *attn_log_softmax(attn_context *ctx, attn_tensor *x) { return attn__softmax_op(ctx, x, ATTN__OP_LOG_SOFTMAX, "attn_log_softmax"); }

static attn_status attn__softmax_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *x = n->in[0];
    int cols = attn__last_dim(x), log = n->op == ATTN__OP_LOG_SOFTMAX;
    size_t rows = cols ? attn_tensor_numel(x) / (size_t)cols : 0;
    float *gx = attn__grad(ctx, x);
    if (!gx) return ctx->status;
    return attn__k_softmax_backward(ctx, log, (int)rows, cols, n->out->data, n->out->grad, gx, "attn_backward");
}

/* weight/bias of a norm: NULL, or 1-D of the last dim's length (made dense) */
static int attn__norm_param(attn_context *ctx, attn_tensor **p, int cols, const char *who, const char *what) {
    if (!*p) return 1;
    if ((*p)->ndim != 1 || (*p)->shape[0] != cols) {
        char t1[64];
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s is %s, want (%d)", who, what, attn__shape_text(*p, t1, sizeof t1), cols);
        return 0;
    }
    *p = attn__dense(ctx, *p);
    return *p != NULL;
}

ATTN_API attn_tensor *attn_layernorm(attn_context *ctx, attn_tensor *x, attn_tensor *weight, attn_tensor *bias,
                                     float eps) {
    const char *who = "attn_layernorm";
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    float *stats;
    int cols, rows;
    if (!ctx || attn__null_input(ctx, x, who)) return NULL;
    cols = attn__last_dim(x);
    if (!attn__norm_param(ctx, &weight, cols, who, "weight") || !attn__norm_param(ctx, &bias, cols, who, "bias"))
        return NULL;
    if (!(out = attn__unary_begin(ctx, &x, &scratch, who))) return NULL;
    rows = cols ? (int)(attn_tensor_numel(x) / (size_t)cols) : 0;
    if (!(stats = attn__alloc_floats(ctx, 2 * (size_t)rows))) return NULL; /* mean, rstd */
    if (attn__k_norm_forward(ctx, 0, rows, cols, x->data, weight ? weight->data : NULL, bias ? bias->data : NULL, eps,
                             out->data, stats, stats + rows, who))
        return NULL;
    out = attn__finish(ctx, ATTN__OP_LAYERNORM, out, x, weight, bias, scratch, &n);
    if (n) n->saved = stats;
    return out;
}

ATTN_API attn_tensor *attn_rmsnorm(attn_context *ctx, attn_tensor *x, attn_tensor *weight, float eps) {
    const char *who = "attn_rmsnorm";
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    float *rstd;
    int cols, rows;
    if (!ctx || attn__null_input(ctx, x, who)) return NULL;
    cols = attn__last_dim(x);
    if (!attn__norm_param(ctx, &weight, cols, who, "weight") || !(out = attn__unary_begin(ctx, &x, &scratch, who)))
        return NULL;
    rows = cols ? (int)(attn_tensor_numel(x) / (size_t)cols) : 0;
    if (!(rstd = attn__alloc_floats(ctx, (size_t)rows))) return NULL;
    if (attn__k_norm_forward(ctx, 1, rows, cols, x->data, weight ? weight->data : NULL, NULL, eps, out->data, NULL, rstd,
                             who))
        return NULL;
    out = attn__finish(ctx, ATTN__OP_RMSNORM, out, x, weight, NULL, scratch, &n);
    if (n) n->saved = rstd;
    return out;
}

static attn_status attn__norm_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int layernorm = n->op == ATTN__OP_LAYERNORM, cols = attn__last_dim(x), rows;
    float *gx = NULL, *gw = NULL, *gb = NULL;
    const float *mean, *rstd;
    rows = cols ? (int)(attn_tensor_numel(x) / (size_t)cols) : 0;
    mean = layernorm ? n->saved : NULL; /* LayerNorm saved (mean, rstd), RMSNorm rstd */
    rstd = layernorm ? n->saved + rows : n->saved;
    if (x->requires_grad && !(gx = attn__grad(ctx, x))) return ctx->status;
    if (w && w->requires_grad && !(gw = attn__grad(ctx, w))) return ctx->status;
    if (b && b->requires_grad && !(gb = attn__grad(ctx, b))) return ctx->status;
    return attn__k_norm_backward(ctx, !layernorm, rows, cols, x->data, w ? w->data : NULL, mean, rstd, n->out->grad, gx,
                                 gw, gb, "attn_backward");
}

/* ---- losses: ops like the others, with a scalar result ---- */

ATTN_API attn_tensor *attn_cross_entropy(attn_context *ctx, attn_tensor *logits, const int32_t *targets,
                                         int ignore_index, float label_smoothing) {
    const char *who = "attn_cross_entropy";
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    float *logp;
    int N, C, r;
    if (!ctx || attn__null_input(ctx, logits, who)) return NULL;
    if (logits->ndim != 2) {
        char t1[64];
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: logits are %s, want (N, C)", who, attn__shape_text(logits, t1, sizeof t1));
        return NULL;
    }
    N = logits->shape[0];
    C = logits->shape[1];
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: label_smoothing must be in [0, 1]", who);
        return NULL;
    }
    if (N > 0 && !targets) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: targets is NULL", who);
        return NULL;
    }
    for (r = 0; r < N; r++)
        if (targets[r] != ignore_index && (targets[r] < 0 || targets[r] >= C)) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: target %d of row %d is outside [0, %d)", who,
                       (int)targets[r], r, C);
            return NULL;
        }
    if (!(out = attn__result(ctx, 0, NULL, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(logits = attn__dense(ctx, logits))) return NULL;
    if (!(logp = attn__alloc_floats(ctx, (size_t)N * C))) return NULL;
    { /* the targets go to the context's data memory (kept for the backward pass) */
        int32_t *t = attn__indices_copy(ctx, targets, (size_t)N, who);
        if (!t || attn__k_cross_entropy(ctx, N, C, logits->data, t, ignore_index, label_smoothing, logp, out->data, who))
            return NULL;
        targets = t;
    }
    if (!(out = attn__finish(ctx, ATTN__OP_CROSS_ENTROPY, out, logits, NULL, NULL, scratch, &n))) return NULL;
    if (n) {
        n->index = (int32_t *)targets;
        n->saved = logp;
        n->i = ignore_index;
        n->f = label_smoothing;
    }
    return out;
}

static attn_status attn__cross_entropy_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *logits = n->in[0];
    int N = logits->shape[0], C = logits->shape[1];
    float *gl = attn__grad(ctx, logits);
    if (!gl) return ctx->status;
    return attn__k_cross_entropy_backward(ctx, N, C, n->saved, n->index, n->i, n->f, n->out->grad, gl, "attn_backward");
}

ATTN_API attn_tensor *attn_mse(attn_context *ctx, attn_tensor *a, attn_tensor *b) {
    const char *who = "attn_mse";
    attn_arena_pos scratch;
    attn_tensor *out;
    int d;
    if (!ctx || attn__null_input(ctx, a, who) || attn__null_input(ctx, b, who) || attn__host_only(ctx, who)) return NULL;
    for (d = 0; d < ATTN_MAX_DIMS; d++)
        if (a->ndim != b->ndim || a->shape[d] != b->shape[d]) {
            char t1[64], t2[64];
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: shapes %s and %s differ", who, attn__shape_text(a, t1, sizeof t1),
                       attn__shape_text(b, t2, sizeof t2));
            return NULL;
        }
    if (!(out = attn__result(ctx, 0, NULL, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(a = attn__dense(ctx, a)) || !(b = attn__dense(ctx, b))) return NULL;
    out->data[0] = attn__mse(attn_tensor_numel(a), a->data, b->data);
    return attn__finish(ctx, ATTN__OP_MSE, out, a, b, NULL, scratch, NULL);
}

/* ---- attention ---- */
/* The kernel descriptor for q, k, v (dense, 3-D) and opts; masks are copied
   into the arena when copy != 0 (a recorded node outlives the caller's arrays). */
static attn_attention_desc *attn__attention_setup(attn_context *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                                  int heads, const attn_attention_opts *opts, int copy,
                                                  const char *who) {
    attn_attention_desc *d;
    attn_attention_opts none;
    int B, Tq, Tk;
    char t1[64], t2[64], t3[64];
    if (!opts) { memset(&none, 0, sizeof none); opts = &none; }
    if (q->ndim != 3 || k->ndim != 3 || (v && v->ndim != 3) || heads < 1 || q->shape[0] != k->shape[0] ||
        (v && (v->shape[0] != q->shape[0] || v->shape[1] != k->shape[1])) || q->shape[2] != k->shape[2] ||
        q->shape[2] % heads || (v && v->shape[2] % heads) || q->shape[2] / heads > ATTN_ATTENTION_MAX_DIM ||
        (v && v->shape[2] / heads > ATTN_ATTENTION_MAX_DIM) || q->shape[2] == 0) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: q %s, k %s, v %s with %d heads do not fit (want (B, Tq, H*dh), "
                   "(B, Tk, H*dh), (B, Tk, H*dv), head dims at most %d)", who, attn__shape_text(q, t1, sizeof t1),
                   attn__shape_text(k, t2, sizeof t2), v ? attn__shape_text(v, t3, sizeof t3) : "-", heads,
                   ATTN_ATTENTION_MAX_DIM);
        return NULL;
    }
    B = q->shape[0]; Tq = q->shape[1]; Tk = k->shape[1];
    if (!(opts->dropout >= 0.0f && opts->dropout < 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: dropout must be in [0, 1)", who);
        return NULL;
    }
    if (!(d = (attn_attention_desc *)attn_alloc(ctx, sizeof *d))) return NULL;
    memset(d, 0, sizeof *d);
    d->batch = B; d->heads = heads; d->q_len = Tq; d->kv_len = Tk;
    d->head_dim = q->shape[2] / heads;
    d->v_dim = v ? v->shape[2] / heads : d->head_dim;
    d->scale = opts->scale;
    d->causal = opts->causal;
    if (opts->training && opts->dropout > 0.0f) {
        d->dropout = opts->dropout;
        d->dropout_seed = (uint64_t)attn_rng_u32(&ctx->rng) << 32 | attn_rng_u32(&ctx->rng);
    }
    if (!attn__data_on_host(ctx)) copy = 1; /* the masks move into backend memory */
    if (opts->key_lengths) { /* int and float have one size */
        int *kl = !copy ? (int *)opts->key_lengths : (int *)(void *)attn__alloc_floats(ctx, (size_t)B);
        if (!kl || (copy && attn__k_upload(ctx, kl, opts->key_lengths, (size_t)B * sizeof(int), who))) return NULL;
        d->key_lengths = kl;
    }
    if (opts->key_padding_mask) {
        size_t n = (size_t)B * Tk;
        unsigned char *m = !copy ? (unsigned char *)opts->key_padding_mask
                                 : (unsigned char *)(void *)attn__alloc_floats(ctx, (n + 3) / 4);
        if (!m || (copy && attn__k_upload(ctx, m, opts->key_padding_mask, n, who))) return NULL;
        d->key_padding_mask = m;
    }
    if (opts->mask) {
        attn_tensor *mk = opts->mask;
        int ok = mk->ndim >= 2 && attn_tensor_is_contiguous(mk) && mk->shape[mk->ndim - 1] == Tk &&
                 mk->shape[mk->ndim - 2] == Tq;
        if (ok && mk->ndim == 4) {
            ok = (mk->shape[0] == B || mk->shape[0] == 1) && (mk->shape[1] == heads || mk->shape[1] == 1);
            d->bias_batch_stride = mk->shape[0] == 1 ? 0 : (size_t)mk->shape[1] * Tq * Tk;
            d->bias_head_stride = mk->shape[1] == 1 ? 0 : (size_t)Tq * Tk;
        } else if (mk->ndim != 2) {
            ok = 0;
        }
        if (!ok) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: mask %s must be contiguous (Tq, Tk) = (%d, %d) or (B|1, H|1, Tq, Tk)",
                       who, attn__shape_text(mk, t1, sizeof t1), Tq, Tk);
            return NULL;
        }
        d->bias = mk->data;
    }
    return d;
}

ATTN_API attn_tensor *attn_attention(attn_context *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v, int heads,
                                     const attn_attention_opts *opts) {
    const char *who = "attn_attention";
    attn_arena_pos scratch;
    attn_attention_desc *d;
    attn_tensor *out;
    attn_node *n = NULL;
    float *lse;
    int shape[3];
    if (!ctx || attn__null_input(ctx, q, who) || attn__null_input(ctx, k, who) || attn__null_input(ctx, v, who))
        return NULL;
    if (v->ndim != 3 || q->ndim != 3 || heads < 1) {
        attn__attention_setup(ctx, q, k, v, heads, opts, 0, who); /* reports the shape error */
        return NULL;
    }
    shape[0] = q->shape[0]; shape[1] = q->shape[1]; shape[2] = v->shape[2];
    if (!(out = attn__result(ctx, 3, shape, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(q = attn__dense(ctx, q)) || !(k = attn__dense(ctx, k)) || !(v = attn__dense(ctx, v))) return NULL;
    if (!(d = attn__attention_setup(ctx, q, k, v, heads, opts, attn__needs_grad(ctx, q, k, v), who))) return NULL;
    if (!(lse = attn__alloc_floats(ctx, (size_t)d->batch * heads * d->q_len))) return NULL;
    if (attn__k_attention(ctx, d, q->data, k->data, v->data, out->data, lse, who)) return NULL;
    if (!(out = attn__finish(ctx, ATTN__OP_ATTENTION, out, q, k, v, scratch, &n))) return NULL;
    if (n) {
        n->att = d;
        n->saved = lse;
    }
    return out;
}

static attn_status attn__attention_op_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    float *gq = NULL, *gk = NULL, *gv = NULL;
    if ((q->requires_grad && !(gq = attn__grad(ctx, q))) || (k->requires_grad && !(gk = attn__grad(ctx, k))) ||
        (v->requires_grad && !(gv = attn__grad(ctx, v))))
        return ctx->status;
    return attn__k_attention_backward(ctx, n->att, q->data, k->data, v->data, n->out->data, n->saved, n->out->grad,
                                      gq, gk, gv, "attn_backward");
}

ATTN_API attn_tensor *attn_attention_weights(attn_context *ctx, attn_tensor *q, attn_tensor *k, int heads,
                                             const attn_attention_opts *opts) {
    const char *who = "attn_attention_weights";
    attn_arena_pos scratch;
    attn_attention_desc *d;
    attn_tensor *w;
    int shape[4];
    if (!ctx || attn__null_input(ctx, q, who) || attn__null_input(ctx, k, who) || attn__host_only(ctx, who)) return NULL;
    if (q->ndim != 3 || k->ndim != 3 || heads < 1) {
        attn__attention_setup(ctx, q, k, NULL, heads, opts, 0, who);
        return NULL;
    }
    shape[0] = q->shape[0]; shape[1] = heads; shape[2] = q->shape[1]; shape[3] = k->shape[1];
    if (!(w = attn__result(ctx, 4, shape, who))) return NULL;
    scratch = attn_arena_mark(&ctx->arena);
    if (!(q = attn_tensor_contiguous(ctx, q)) || !(k = attn_tensor_contiguous(ctx, k)) ||
        !(d = attn__attention_setup(ctx, q, k, NULL, heads, opts, 0, who)))
        return NULL;
    d->dropout = 0.0f;
    attn__attention_weights_rows(&ctx->threads, d, q->data, k->data, w->data);
    attn_arena_reset(&ctx->arena, scratch);
    return w;
}

/* ---- the backward pass ---- */
/* One node's backward. The switch names every op and has no default, so that
   -Wswitch (in -Wall) flags an op added without its backward. */
static attn_status attn__node_backward(attn_context *ctx, attn_node *n) {
    attn_tensor *x = n->in[0];
    const float *g = n->out->grad;
    const char *who = "attn_backward";
    float *gx = NULL, *gy = NULL;
    size_t count = x ? attn_tensor_numel(x) : 0; /* concat keeps its inputs in a list */
    switch (n->op) {
    case ATTN__OP_ADD: case ATTN__OP_SUB: case ATTN__OP_MUL: return attn__binary_backward(ctx, n);
    case ATTN__OP_MATMUL: return attn__matmul_backward(ctx, n);
    case ATTN__OP_LINEAR: return attn__linear_backward(ctx, n);
    case ATTN__OP_VIEW: return attn__view_backward(ctx, n);
    case ATTN__OP_CONCAT: return attn__concat_backward(ctx, n);
    case ATTN__OP_EMBEDDING: return attn__embedding_backward(ctx, n);
    case ATTN__OP_SOFTMAX: case ATTN__OP_LOG_SOFTMAX: return attn__softmax_backward(ctx, n);
    case ATTN__OP_LAYERNORM: case ATTN__OP_RMSNORM: return attn__norm_backward(ctx, n);
    case ATTN__OP_CROSS_ENTROPY: return attn__cross_entropy_backward(ctx, n);
    case ATTN__OP_ATTENTION: return attn__attention_op_backward(ctx, n);
    case ATTN__OP_SCALE: case ATTN__OP_GELU: case ATTN__OP_RELU: case ATTN__OP_TANH:
        return (gx = attn__grad(ctx, x)) ? attn__k_unary(ctx, n->i, count, n->f, x->data, n->out->data, g, gx, who)
                                         : ctx->status;
    case ATTN__OP_DROPOUT:
        return (gx = attn__grad(ctx, x)) ? attn__k_dropout(ctx, n->seed, n->f, count, g, gx, 1, who) : ctx->status;
    case ATTN__OP_SUM: case ATTN__OP_MEAN: /* divided, as PyTorch's mean backward does */
        return (gx = attn__grad(ctx, x)) ? attn__k_add_scalar(ctx, count, g, n->op == ATTN__OP_SUM ? 1.0f : (float)count,
                                                              gx, who)
                                         : ctx->status;
    case ATTN__OP_MSE: /* host only (attn_mse refuses a backend) */
        if ((x->requires_grad && !(gx = attn__grad(ctx, x))) || (n->in[1]->requires_grad && !(gy = attn__grad(ctx, n->in[1]))))
            return ctx->status;
        attn__mse_backward(count, g[0], x->data, n->in[1]->data, gx, gy);
        return ATTN_OK;
    case ATTN__OP_ROPE: /* host only (attn_rope refuses a backend): rotate back */
        if (!(gx = attn__grad(ctx, x))) return ctx->status;
        attn__rope_rows(x->shape[0], x->shape[1], x->shape[2], g, gx, n->i, n->i2, n->f, -1.0f, 1);
        return ATTN_OK;
    }
    return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: a node with an unknown op (a corrupted tape)", who);
}

ATTN_API attn_status attn_backward_ex(attn_context *ctx, attn_tensor *out, const float *seed, int retain) {
    attn_node *n;
    float *g;
    size_t count;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!out) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_backward: tensor is NULL");
    if (!out->requires_grad)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_backward: the tensor does not require grad "
                          "(no parameter reaches it, or grad was off when it was made)");
    count = attn_tensor_numel(out);
    if (count != 1 && !seed)
        return attn__fail(ctx, ATTN_ERR_SHAPE, "attn_backward: the output has %zu elements, not 1: pass a seed "
                          "gradient to attn_backward_ex", count);
    if (!(g = attn__grad(ctx, out))) return ctx->status;
    { /* g += seed (or 1), staged in data memory: a leaf's grad may hold an earlier backward's */
        attn_arena_pos mark = attn_arena_mark(&ctx->arena);
        int shape[4] = {1, 1, 1, 0}, dense[4] = {0, 0, 0, 1};
        float *s = attn__alloc_floats(ctx, count);
        attn_status st = s ? ATTN_OK : ctx->status;
        shape[3] = (int)count;
        if (!st) st = seed ? attn__k_upload(ctx, s, seed, count * sizeof(float), "attn_backward")
                           : attn__k_fill(ctx, 1, 1.0f, s, "attn_backward");
        if (!st) st = attn__k_copy4(ctx, shape, s, dense, g, dense, 1, "attn_backward");
        attn_arena_reset(&ctx->arena, mark);
        if (st) return st;
    }
    /* The tape is in execution order, so walking it backwards visits each node
       after every node that used its output. A node is reached when its output
       has a grad by then: only those belong to this loss's graph. */
    for (n = ctx->tape; n; n = n->prev) {
        attn_status s;
        if (!n->out->grad || n->released) continue;
        if ((s = attn__node_backward(ctx, n)) != ATTN_OK) return s;
        /* Grads of intermediate results are not kept (as in PyTorch), so a
           retained graph's next backward starts from zero. */
        n->out->grad = NULL;
        n->released = !retain;
    }
    /* Unlink the freed graph; other graphs on the tape stay usable. Released
       nodes keep their own links, so a mark taken inside them still leads back. */
    if (!retain) {
        attn_node **link = &ctx->tape;
        while (*link) {
            if ((*link)->released) *link = (*link)->prev;
            else link = &(*link)->prev;
        }
    }
    return ATTN_OK;
}

ATTN_API attn_status attn_backward(attn_context *ctx, attn_tensor *loss) {
    return attn_backward_ex(ctx, loss, NULL, 0);
}

/* ---- parameters ---- */
ATTN_API attn_status attn_param_add(attn_context *ctx, const char *name, attn_tensor *t) {
    attn_param *p;
    attn_arena_pos mark;
    size_t len;
    char *copy;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!name || !*name) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_param_add: empty name");
    if (!t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_param_add: %s: tensor is NULL", name);
    if (!attn_tensor_is_contiguous(t))
        return attn__fail(ctx, ATTN_ERR_SHAPE, "attn_param_add: %s: a parameter must be contiguous", name);
    for (p = ctx->params; p; p = p->next) {
        if (!strcmp(p->name, name)) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_param_add: %s is already a parameter", name);
        if (p->tensor == t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_param_add: %s: the tensor is already the parameter %s", name, p->name);
    }
    mark = attn_arena_mark(&ctx->arena);
    len = strlen(name);
    p = (attn_param *)attn_alloc(ctx, sizeof(attn_param));
    copy = p ? (char *)attn_alloc(ctx, len + 1) : NULL;
    if (!copy || !attn__grad(ctx, t)) {
        attn_arena_reset(&ctx->arena, mark);
        return ctx->status;
    }
    memcpy(copy, name, len + 1);
    p->name = copy;
    p->tensor = t;
    p->next = NULL;
    t->requires_grad = 1;
    if (ctx->params_last) ctx->params_last->next = p; else ctx->params = p;
    ctx->params_last = p;
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_param_new(attn_context *ctx, const char *name, int ndim, const int *shape) {
    attn_arena_pos mark;
    attn_tensor *t;
    if (!ctx) return NULL;
    mark = attn_arena_mark(&ctx->arena);
    t = attn_tensor_new(ctx, ndim, shape);
    if (t && attn_param_add(ctx, name, t) != ATTN_OK) {
        attn_arena_reset(&ctx->arena, mark);
        return NULL;
    }
    return t;
}

ATTN_API attn_param *attn_params(attn_context *ctx) { return ctx ? ctx->params : NULL; }

ATTN_API attn_param *attn_param_find(attn_context *ctx, const char *name) {
    attn_param *p;
    for (p = ctx && name ? ctx->params : NULL; p; p = p->next)
        if (!strcmp(p->name, name)) return p;
    return NULL;
}

ATTN_API void attn_params_zero_grad(attn_context *ctx) {
    attn_param *p;
    for (p = ctx ? ctx->params : NULL; p; p = p->next)
        if (attn__k_fill(ctx, attn_tensor_numel(p->tensor), 0.0f, p->tensor->grad, "attn_params_zero_grad")) return;
}

/* ============================================================================
   8. Layers
   ========================================================================= */
/* prefix + name into buf; NULL (and an error) when it does not fit */
static const char *attn__pname(attn_context *ctx, char *buf, size_t cap, const char *prefix, const char *name) {
    size_t a = prefix ? strlen(prefix) : 0, b = strlen(name);
    if (a + b + 1 > cap) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "parameter name too long: %s%s", prefix ? prefix : "", name);
        return NULL;
    }
    if (a) memcpy(buf, prefix, a);
    memcpy(buf + a, name, b + 1);
    return buf;
}

/* "<prefix><what><n>." for the layers of a stack */
static const char *attn__layer_prefix(attn_context *ctx, char *buf, size_t cap, const char *prefix, const char *what,
                                      int n) {
    char digits[16];
    int k = 15;
    digits[k--] = 0;
    digits[k] = '.';
    do { digits[--k] = (char)('0' + n % 10); n /= 10; } while (n);
    if (!attn__pname(ctx, buf, cap, prefix, what)) return NULL;
    return attn__pname(ctx, buf, cap, buf, digits + k);
}

/* A new parameter prefix+name (1-D when d1 is 0). */
static attn_tensor *attn__param(attn_context *ctx, const char *prefix, const char *name, int d0, int d1) {
    char buf[256];
    int shape[2];
    shape[0] = d0;
    shape[1] = d1;
    if (!attn__pname(ctx, buf, sizeof buf, prefix, name)) return NULL;
    return attn_param_new(ctx, buf, d1 ? 2 : 1, shape);
}

/* nn.Linear's initialisation: weight kaiming_uniform(a = sqrt 5), bias U(+-1/sqrt(fan_in)). */
static attn_status attn__linear_params(attn_context *ctx, const char *prefix, const char *wname, const char *bname,
                                       int out, int in, attn_tensor **w, attn_tensor **b) {
    float bound = in > 0 ? 1.0f / sqrtf((float)in) : 0.0f;
    if (!(*w = attn__param(ctx, prefix, wname, out, in))) return ctx->status;
    attn_init_kaiming_uniform(ctx, *w, 2.2360679775f);
    if (!b) return ATTN_OK;
    if (!(*b = attn__param(ctx, prefix, bname, out, 0))) return ctx->status;
    return attn_init_uniform(ctx, *b, -bound, bound);
}

static attn_status attn__layernorm_params(attn_context *ctx, const char *prefix, const char *norm, int d, float eps,
                                          attn_layernorm_params *n) {
    char buf[256];
    n->eps = eps;
    if (!attn__pname(ctx, buf, sizeof buf, prefix, norm)) return ctx->status;
    if (!(n->weight = attn__param(ctx, buf, ".weight", d, 0)) || !(n->bias = attn__param(ctx, buf, ".bias", d, 0)))
        return ctx->status;
    attn_tensor_fill(n->weight, 1.0f);
    return ATTN_OK;
}

static attn_tensor *attn__layernorm_apply(attn_context *ctx, const attn_layernorm_params *n, attn_tensor *x) {
    return attn_layernorm(ctx, x, n->weight, n->bias, n->eps);
}

ATTN_API attn_status attn_mha_init(attn_context *ctx, attn_mha *m, const char *prefix, const attn_mha_desc *desc) {
    int E;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!m || !desc) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_mha_init: NULL module or desc");
    E = desc->embed_dim;
    memset(m, 0, sizeof *m);
    if (E < 1 || desc->heads < 1 || E % desc->heads || E / desc->heads > ATTN_ATTENTION_MAX_DIM ||
        desc->kdim < 0 || desc->vdim < 0 || !(desc->dropout >= 0.0f && desc->dropout < 1.0f))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_mha_init: embed_dim %d must be a positive multiple "
                          "of heads %d (head dim at most %d), dropout in [0, 1)", E, desc->heads, ATTN_ATTENTION_MAX_DIM);
    m->embed_dim = E;
    m->heads = desc->heads;
    m->kdim = desc->kdim ? desc->kdim : E;
    m->vdim = desc->vdim ? desc->vdim : E;
    m->dropout = desc->dropout;
    if (m->kdim == E && m->vdim == E) {
        if (!(m->in_proj_weight = attn__param(ctx, prefix, "in_proj_weight", 3 * E, E))) return ctx->status;
        attn_init_xavier_uniform(ctx, m->in_proj_weight, 1.0f);
    } else {
        if (!(m->q_proj_weight = attn__param(ctx, prefix, "q_proj_weight", E, E)) ||
            !(m->k_proj_weight = attn__param(ctx, prefix, "k_proj_weight", E, m->kdim)) ||
            !(m->v_proj_weight = attn__param(ctx, prefix, "v_proj_weight", E, m->vdim)))
            return ctx->status;
        attn_init_xavier_uniform(ctx, m->q_proj_weight, 1.0f);
        attn_init_xavier_uniform(ctx, m->k_proj_weight, 1.0f);
        attn_init_xavier_uniform(ctx, m->v_proj_weight, 1.0f);
    }
    if (!desc->no_bias && !(m->in_proj_bias = attn__param(ctx, prefix, "in_proj_bias", 3 * E, 0))) return ctx->status;
    /* out_proj is an nn.Linear whose bias MultiheadAttention then zeroes */
    if (attn__linear_params(ctx, prefix, "out_proj.weight", "out_proj.bias", E, E, &m->out_proj_weight,
                            desc->no_bias ? NULL : &m->out_proj_bias))
        return ctx->status;
    if (m->out_proj_bias) attn_tensor_fill(m->out_proj_bias, 0.0f);
    return ATTN_OK;
}

/* The projections of query, key and value (row blocks of in_proj_*). */
static int attn__mha_project(attn_context *ctx, const attn_mha *m, attn_tensor *query, attn_tensor *key,
                             attn_tensor *value, attn_tensor **q, attn_tensor **k, attn_tensor **v) {
    int E = m->embed_dim, i;
    attn_tensor *w[3], *b[3] = { NULL, NULL, NULL }, *x[3], **out[3];
    x[0] = query; x[1] = key; x[2] = value;
    out[0] = q; out[1] = k; out[2] = v;
    for (i = 0; i < 3; i++) {
        w[i] = m->in_proj_weight ? attn_slice(ctx, m->in_proj_weight, 0, i * E, (i + 1) * E)
                                 : (i == 0 ? m->q_proj_weight : i == 1 ? m->k_proj_weight : m->v_proj_weight);
        if (m->in_proj_bias) b[i] = attn_slice(ctx, m->in_proj_bias, 0, i * E, (i + 1) * E);
        if (!(*out[i] = x[i] ? attn_linear(ctx, x[i], w[i], b[i]) : NULL) && x[i]) return 0;
    }
    return 1;
}

ATTN_API attn_tensor *attn_mha_forward(attn_context *ctx, const attn_mha *m, attn_tensor *query, attn_tensor *key,
                                       attn_tensor *value, const attn_attention_opts *opts) {
    attn_attention_opts o;
    attn_tensor *q, *k, *v, *att;
    if (!ctx) return NULL;
    if (!m || !m->out_proj_weight) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_mha_forward: the module is not initialised");
        return NULL;
    }
    if (attn__null_input(ctx, query, "attn_mha_forward") || attn__null_input(ctx, key, "attn_mha_forward") ||
        attn__null_input(ctx, value, "attn_mha_forward"))
        return NULL;
    if (opts) o = *opts; else memset(&o, 0, sizeof o);
    o.dropout = o.training ? m->dropout : 0.0f;
    if (!attn__mha_project(ctx, m, query, key, value, &q, &k, &v)) return NULL;
    att = attn_attention(ctx, q, k, v, m->heads, &o);
    return att ? attn_linear(ctx, att, m->out_proj_weight, m->out_proj_bias) : NULL;
}

ATTN_API attn_status attn_kv_cache_init(attn_context *ctx, attn_kv_cache *cache, const attn_mha *m, int batch,
                                        int capacity) {
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!cache || !m || batch < 1 || capacity < 1)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_kv_cache_init: bad cache, module, batch or capacity");
    cache->length = 0;
    cache->k = attn_tensor_3d(ctx, batch, capacity, m->embed_dim);
    cache->v = cache->k ? attn_tensor_3d(ctx, batch, capacity, m->embed_dim) : NULL;
    return cache->v ? ATTN_OK : ctx->status;
}

ATTN_API attn_tensor *attn_mha_forward_cached(attn_context *ctx, const attn_mha *m, attn_tensor *x,
                                              attn_kv_cache *cache) {
    attn_attention_opts o;
    attn_tensor *q, *k, *v, *ck, *cv, *att, *out = NULL, slot;
    int was, T, L;
    if (!ctx || attn__null_input(ctx, x, "attn_mha_forward_cached")) return NULL;
    if (!m || !cache || !cache->k || x->ndim != 3 || x->shape[0] != cache->k->shape[0] ||
        x->shape[2] != m->embed_dim) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "attn_mha_forward_cached: x must be (B, T, E) matching the cache and module");
        return NULL;
    }
    T = x->shape[1];
    L = cache->length + T;
    if (L > cache->k->shape[1]) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_mha_forward_cached: %d positions exceed the cache's %d", L,
                   cache->k->shape[1]);
        return NULL;
    }
    was = attn_grad_enable(ctx, 0);
    if (!attn__mha_project(ctx, m, x, x, x, &q, &k, &v)) goto done;
    slot = *cache->k; /* append the new keys and values */
    slot.data += (size_t)cache->length * slot.stride[1];
    slot.shape[1] = T;
    attn_tensor_copy(ctx, &slot, k);
    slot = *cache->v;
    slot.data += (size_t)cache->length * slot.stride[1];
    slot.shape[1] = T;
    attn_tensor_copy(ctx, &slot, v);
    if (!(ck = attn__view_slice(ctx, cache->k, 1, 0, L, "attn_mha_forward_cached")) ||
        !(cv = attn__view_slice(ctx, cache->v, 1, 0, L, "attn_mha_forward_cached")))
        goto done;
    memset(&o, 0, sizeof o);
    o.causal = 1; /* bottom-right: new position i sees everything up to itself */
    if ((att = attn_attention(ctx, q, ck, cv, m->heads, &o)) != NULL &&
        (out = attn_linear(ctx, att, m->out_proj_weight, m->out_proj_bias)) != NULL)
        cache->length = L;
done:
    attn_grad_enable(ctx, was);
    return out;
}

static attn_status attn__layer_desc(attn_context *ctx, const attn_layer_desc *in, attn_layer_desc *d, const char *who) {
    if (!in) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: desc is NULL", who);
    *d = *in;
    if (!d->dim_feedforward) d->dim_feedforward = 2048;
    if (d->layer_norm_eps == 0.0f) d->layer_norm_eps = 1e-5f;
    if (!d->num_layers) d->num_layers = 6;
    if (!d->num_decoder_layers) d->num_decoder_layers = d->num_layers;
    if (d->d_model < 1 || d->heads < 1 || d->d_model % d->heads || d->dim_feedforward < 1 || d->num_layers < 1 ||
        d->num_decoder_layers < 1 || !(d->dropout >= 0.0f && d->dropout < 1.0f) ||
        (d->activation != ATTN_ACT_RELU && d->activation != ATTN_ACT_GELU))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: d_model %d must be a positive multiple of heads %d; "
                          "feedforward, layers > 0; dropout in [0, 1); activation relu or gelu", who, d->d_model,
                          d->heads);
    return ATTN_OK;
}

/* linear1, linear2 and the norms shared by both layer kinds */
static attn_status attn__layer_common(attn_context *ctx, const char *prefix, const attn_layer_desc *d,
                                      attn_tensor **l1w, attn_tensor **l1b, attn_tensor **l2w, attn_tensor **l2b,
                                      attn_layernorm_params *norms, int n_norms) {
    static const char *const names[3] = { "norm1", "norm2", "norm3" };
    int i;
    if (attn__linear_params(ctx, prefix, "linear1.weight", "linear1.bias", d->dim_feedforward, d->d_model, l1w, l1b) ||
        attn__linear_params(ctx, prefix, "linear2.weight", "linear2.bias", d->d_model, d->dim_feedforward, l2w, l2b))
        return ctx->status;
    for (i = 0; i < n_norms; i++)
        if (attn__layernorm_params(ctx, prefix, names[i], d->d_model, d->layer_norm_eps, &norms[i])) return ctx->status;
    return ATTN_OK;
}

static attn_status attn__mha_of_layer(attn_context *ctx, attn_mha *m, const char *prefix, const char *name,
                                      const attn_layer_desc *d) {
    char buf[256];
    attn_mha_desc md;
    memset(&md, 0, sizeof md);
    md.embed_dim = d->d_model;
    md.heads = d->heads;
    md.dropout = d->dropout;
    if (!attn__pname(ctx, buf, sizeof buf, prefix, name)) return ctx->status;
    return attn_mha_init(ctx, m, buf, &md);
}

ATTN_API attn_status attn_encoder_layer_init(attn_context *ctx, attn_encoder_layer *l, const char *prefix,
                                             const attn_layer_desc *desc) {
    attn_layernorm_params norms[2];
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!l) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_encoder_layer_init: layer is NULL");
    memset(l, 0, sizeof *l);
    if (attn__layer_desc(ctx, desc, &l->desc, "attn_encoder_layer_init") ||
        attn__mha_of_layer(ctx, &l->self_attn, prefix, "self_attn.", &l->desc) ||
        attn__layer_common(ctx, prefix, &l->desc, &l->linear1_weight, &l->linear1_bias, &l->linear2_weight,
                           &l->linear2_bias, norms, 2))
        return ctx->status;
    l->norm1 = norms[0];
    l->norm2 = norms[1];
    return ATTN_OK;
}

ATTN_API attn_status attn_decoder_layer_init(attn_context *ctx, attn_decoder_layer *l, const char *prefix,
                                             const attn_layer_desc *desc) {
    attn_layernorm_params norms[3];
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!l) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_decoder_layer_init: layer is NULL");
    memset(l, 0, sizeof *l);
    if (attn__layer_desc(ctx, desc, &l->desc, "attn_decoder_layer_init") ||
        attn__mha_of_layer(ctx, &l->self_attn, prefix, "self_attn.", &l->desc) ||
        attn__mha_of_layer(ctx, &l->multihead_attn, prefix, "multihead_attn.", &l->desc) ||
        attn__layer_common(ctx, prefix, &l->desc, &l->linear1_weight, &l->linear1_bias, &l->linear2_weight,
                           &l->linear2_bias, norms, 3))
        return ctx->status;
    l->norm1 = norms[0];
    l->norm2 = norms[1];
    l->norm3 = norms[2];
    return ATTN_OK;
}

/* dropout2(linear2(dropout(activation(linear1(x))))), PyTorch's _ff_block */
static attn_tensor *attn__feedforward(attn_context *ctx, const attn_layer_desc *d, attn_tensor *l1w, attn_tensor *l1b,
                                      attn_tensor *l2w, attn_tensor *l2b, attn_tensor *x, int training) {
    attn_tensor *h = attn_linear(ctx, x, l1w, l1b);
    h = d->activation == ATTN_ACT_GELU ? attn_gelu(ctx, h) : attn_relu(ctx, h);
    h = attn_dropout(ctx, h, d->dropout, training);
    return attn_dropout(ctx, attn_linear(ctx, h, l2w, l2b), d->dropout, training);
}

/* dropout(mha(x, mem, mem)): PyTorch's _sa_block / _mha_block */
static attn_tensor *attn__attention_block(attn_context *ctx, const attn_layer_desc *d, const attn_mha *m,
                                          attn_tensor *x, attn_tensor *mem, const attn_attention_opts *masks,
                                          int training) {
    attn_attention_opts o;
    if (masks) o = *masks; else memset(&o, 0, sizeof o);
    o.training = training;
    return attn_dropout(ctx, attn_mha_forward(ctx, m, x, mem, mem, &o), d->dropout, training);
}

ATTN_API attn_tensor *attn_encoder_layer_forward(attn_context *ctx, const attn_encoder_layer *l, attn_tensor *x,
                                                 const attn_layer_masks *masks, int training) {
    const attn_attention_opts *sm = masks ? masks->self_attn : NULL;
    const attn_layer_desc *d;
    if (!ctx || attn__null_input(ctx, x, "attn_encoder_layer_forward")) return NULL;
    if (!l || !l->linear1_weight) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_encoder_layer_forward: the layer is not initialised");
        return NULL;
    }
    d = &l->desc;
    if (d->norm_first) {
        attn_tensor *h = attn__layernorm_apply(ctx, &l->norm1, x);
        x = attn_add(ctx, x, attn__attention_block(ctx, d, &l->self_attn, h, h, sm, training));
        return attn_add(ctx, x, attn__feedforward(ctx, d, l->linear1_weight, l->linear1_bias, l->linear2_weight,
                                                  l->linear2_bias, attn__layernorm_apply(ctx, &l->norm2, x), training));
    }
    x = attn__layernorm_apply(ctx, &l->norm1, attn_add(ctx, x, attn__attention_block(ctx, d, &l->self_attn, x, x, sm, training)));
    return attn__layernorm_apply(ctx, &l->norm2, attn_add(ctx, x, attn__feedforward(ctx, d, l->linear1_weight,
                                 l->linear1_bias, l->linear2_weight, l->linear2_bias, x, training)));
}

ATTN_API attn_tensor *attn_decoder_layer_forward(attn_context *ctx, const attn_decoder_layer *l, attn_tensor *x,
                                                 attn_tensor *memory, const attn_layer_masks *masks, int training) {
    const attn_attention_opts *sm = masks ? masks->self_attn : NULL, *cm = masks ? masks->cross_attn : NULL;
    const attn_layer_desc *d;
    if (!ctx || attn__null_input(ctx, x, "attn_decoder_layer_forward") ||
        attn__null_input(ctx, memory, "attn_decoder_layer_forward"))
        return NULL;
    if (!l || !l->linear1_weight) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_decoder_layer_forward: the layer is not initialised");
        return NULL;
    }
    d = &l->desc;
    if (d->norm_first) {
        attn_tensor *h = attn__layernorm_apply(ctx, &l->norm1, x);
        x = attn_add(ctx, x, attn__attention_block(ctx, d, &l->self_attn, h, h, sm, training));
        x = attn_add(ctx, x, attn__attention_block(ctx, d, &l->multihead_attn, attn__layernorm_apply(ctx, &l->norm2, x),
                                                   memory, cm, training));
        return attn_add(ctx, x, attn__feedforward(ctx, d, l->linear1_weight, l->linear1_bias, l->linear2_weight,
                                                  l->linear2_bias, attn__layernorm_apply(ctx, &l->norm3, x), training));
    }
    x = attn__layernorm_apply(ctx, &l->norm1, attn_add(ctx, x, attn__attention_block(ctx, d, &l->self_attn, x, x, sm, training)));
    x = attn__layernorm_apply(ctx, &l->norm2, attn_add(ctx, x, attn__attention_block(ctx, d, &l->multihead_attn, x,
                                                                                    memory, cm, training)));
    return attn__layernorm_apply(ctx, &l->norm3, attn_add(ctx, x, attn__feedforward(ctx, d, l->linear1_weight,
                                 l->linear1_bias, l->linear2_weight, l->linear2_bias, x, training)));
}

ATTN_API attn_status attn_encoder_init(attn_context *ctx, attn_encoder *e, attn_encoder_layer *layers,
                                       const char *prefix, const attn_layer_desc *desc) {
    char buf[256];
    int i;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!e || !layers) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_encoder_init: NULL encoder or layers");
    memset(e, 0, sizeof *e);
    if (attn__layer_desc(ctx, desc, &e->desc, "attn_encoder_init")) return ctx->status;
    e->layers = layers;
    for (i = 0; i < e->desc.num_layers; i++)
        if (!attn__layer_prefix(ctx, buf, sizeof buf, prefix, "layers.", i) ||
            attn_encoder_layer_init(ctx, &layers[i], buf, &e->desc))
            return ctx->status;
    if (e->desc.final_norm)
        return attn__layernorm_params(ctx, prefix, "norm", e->desc.d_model, e->desc.layer_norm_eps, &e->norm);
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_encoder_forward(attn_context *ctx, const attn_encoder *e, attn_tensor *x,
                                           const attn_layer_masks *masks, int training) {
    int i;
    if (!ctx) return NULL;
    if (!e || !e->layers) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_encoder_forward: the encoder is not initialised");
        return NULL;
    }
    for (i = 0; i < e->desc.num_layers && x; i++) x = attn_encoder_layer_forward(ctx, &e->layers[i], x, masks, training);
    return x && e->norm.weight ? attn__layernorm_apply(ctx, &e->norm, x) : x;
}

ATTN_API attn_status attn_decoder_init(attn_context *ctx, attn_decoder *d, attn_decoder_layer *layers,
                                       const char *prefix, const attn_layer_desc *desc) {
    char buf[256];
    int i;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!d || !layers) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_decoder_init: NULL decoder or layers");
    memset(d, 0, sizeof *d);
    if (attn__layer_desc(ctx, desc, &d->desc, "attn_decoder_init")) return ctx->status;
    d->layers = layers;
    for (i = 0; i < d->desc.num_layers; i++)
        if (!attn__layer_prefix(ctx, buf, sizeof buf, prefix, "layers.", i) ||
            attn_decoder_layer_init(ctx, &layers[i], buf, &d->desc))
            return ctx->status;
    if (d->desc.final_norm)
        return attn__layernorm_params(ctx, prefix, "norm", d->desc.d_model, d->desc.layer_norm_eps, &d->norm);
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_decoder_forward(attn_context *ctx, const attn_decoder *d, attn_tensor *x,
                                           attn_tensor *memory, const attn_layer_masks *masks, int training) {
    int i;
    if (!ctx) return NULL;
    if (!d || !d->layers) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_decoder_forward: the decoder is not initialised");
        return NULL;
    }
    for (i = 0; i < d->desc.num_layers && x; i++)
        x = attn_decoder_layer_forward(ctx, &d->layers[i], x, memory, masks, training);
    return x && d->norm.weight ? attn__layernorm_apply(ctx, &d->norm, x) : x;
}

ATTN_API attn_status attn_transformer_init(attn_context *ctx, attn_transformer *t, attn_encoder_layer *enc_layers,
                                           attn_decoder_layer *dec_layers, const char *prefix,
                                           const attn_layer_desc *desc) {
    attn_layer_desc d;
    attn_param *p, *first;
    char buf[256];
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_transformer_init: transformer is NULL");
    if (attn__layer_desc(ctx, desc, &d, "attn_transformer_init")) return ctx->status;
    d.final_norm = 1; /* nn.Transformer always has both final norms */
    first = ctx->params_last;
    if (!attn__pname(ctx, buf, sizeof buf, prefix, "encoder.") || attn_encoder_init(ctx, &t->encoder, enc_layers, buf, &d))
        return ctx->status;
    d.num_layers = d.num_decoder_layers;
    if (!attn__pname(ctx, buf, sizeof buf, prefix, "decoder.") || attn_decoder_init(ctx, &t->decoder, dec_layers, buf, &d))
        return ctx->status;
    /* nn.Transformer._reset_parameters: xavier_uniform_ on every matrix */
    for (p = first ? first->next : ctx->params; p; p = p->next)
        if (p->tensor->ndim > 1) attn_init_xavier_uniform(ctx, p->tensor, 1.0f);
    return ATTN_OK;
}

ATTN_API attn_tensor *attn_transformer_forward(attn_context *ctx, const attn_transformer *t, attn_tensor *src,
                                               attn_tensor *tgt, const attn_layer_masks *enc_masks,
                                               const attn_layer_masks *dec_masks, int training) {
    attn_tensor *memory;
    if (!ctx) return NULL;
    if (!t) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_transformer_forward: transformer is NULL");
        return NULL;
    }
    memory = attn_encoder_forward(ctx, &t->encoder, src, enc_masks, training);
    return memory ? attn_decoder_forward(ctx, &t->decoder, tgt, memory, dec_masks, training) : NULL;
}

ATTN_API attn_status attn_lm_init(attn_context *ctx, attn_lm *lm, attn_encoder_layer *layers, const char *prefix,
                                  const attn_lm_desc *desc) {
    attn_layer_desc ld;
    char buf[256];
    int i;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!lm || !layers || !desc) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_lm_init: NULL argument");
    memset(lm, 0, sizeof *lm);
    if (attn__layer_desc(ctx, &desc->layer, &ld, "attn_lm_init")) return ctx->status;
    if (desc->vocab < 1 || desc->max_len < 1)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_lm_init: vocab and max_len must be positive");
    ld.norm_first = 1;
    lm->desc = *desc;
    lm->desc.layer = ld;
    lm->layers = layers;
    if (!(lm->tok_emb = attn__param(ctx, prefix, "tok_emb.weight", desc->vocab, ld.d_model)) ||
        !(lm->pos_emb = attn__param(ctx, prefix, "pos_emb.weight", desc->max_len, ld.d_model)))
        return ctx->status;
    attn_init_normal(ctx, lm->tok_emb, 0.0f, 0.02f); /* GPT-2's initialisation of both tables */
    attn_init_normal(ctx, lm->pos_emb, 0.0f, 0.02f);
    for (i = 0; i < ld.num_layers; i++)
        if (!attn__layer_prefix(ctx, buf, sizeof buf, prefix, "layers.", i) ||
            attn_encoder_layer_init(ctx, &layers[i], buf, &ld))
            return ctx->status;
    if (attn__layernorm_params(ctx, prefix, "norm", ld.d_model, ld.layer_norm_eps, &lm->norm)) return ctx->status;
    if (!desc->untied) {
        lm->head = lm->tok_emb;
        return ATTN_OK;
    }
    return attn__linear_params(ctx, prefix, "head.weight", NULL, desc->vocab, ld.d_model, &lm->head, NULL);
}

ATTN_API attn_tensor *attn_lm_forward(attn_context *ctx, const attn_lm *lm, const int32_t *tokens, int batch, int T,
                                      int training) {
    attn_attention_opts causal;
    attn_layer_masks masks;
    attn_tensor *x;
    int shape[2], i;
    if (!ctx) return NULL;
    if (!lm || !lm->tok_emb) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_lm_forward: the model is not initialised");
        return NULL;
    }
    if (batch < 1 || T < 1 || T > lm->desc.max_len) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "attn_lm_forward: %d positions with max_len %d", T, lm->desc.max_len);
        return NULL;
    }
    shape[0] = batch;
    shape[1] = T;
    memset(&causal, 0, sizeof causal);
    causal.causal = 1;
    masks.self_attn = &causal;
    masks.cross_attn = NULL;
    x = attn_add(ctx, attn_embedding(ctx, lm->tok_emb, tokens, 2, shape), attn_slice(ctx, lm->pos_emb, 0, 0, T));
    x = attn_dropout(ctx, x, lm->desc.layer.dropout, training);
    for (i = 0; i < lm->desc.layer.num_layers && x; i++)
        x = attn_encoder_layer_forward(ctx, &lm->layers[i], x, &masks, training);
    return attn_linear(ctx, attn__layernorm_apply(ctx, &lm->norm, x), lm->head, NULL);
}

/* ---- positional encodings ---- */
ATTN_API attn_tensor *attn_sinusoidal_table(attn_context *ctx, int T, int d) {
    attn_arena_pos mark;
    attn_tensor *pe;
    float *host;
    int p, i;
    if (!ctx) return NULL;
    if (!(pe = attn_tensor_2d(ctx, T, d))) return NULL;
    mark = attn_arena_mark(&ctx->arena);
    host = attn__data_on_host(ctx) ? pe->data : (float *)attn_alloc(ctx, (size_t)T * d * sizeof(float));
    if (!host) return NULL; /* made on the host, then uploaded */
    for (p = 0; p < T; p++)
        for (i = 0; i < d; i++) {
            double angle = p / pow(10000.0, (double)(i & ~1) / d);
            host[(size_t)p * d + i] = (float)(i & 1 ? cos(angle) : sin(angle));
        }
    if (host != pe->data) {
        if (attn__k_upload(ctx, pe->data, host, (size_t)T * d * sizeof(float), "attn_sinusoidal_table")) pe = NULL;
        attn_arena_reset(&ctx->arena, mark);
    }
    return pe;
}

ATTN_API attn_tensor *attn_add_positions(attn_context *ctx, attn_tensor *x, attn_tensor *pe, int start) {
    if (!ctx || attn__null_input(ctx, x, "attn_add_positions") || attn__null_input(ctx, pe, "attn_add_positions"))
        return NULL;
    if (x->ndim != 3 || pe->ndim != 2 || pe->shape[1] != x->shape[2] || start < 0 ||
        start + x->shape[1] > pe->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "attn_add_positions: x (B, T, d) needs rows [%d, %d) of a (T, d) table", start,
                   start + (x->ndim == 3 ? x->shape[1] : 0));
        return NULL;
    }
    return attn_add(ctx, x, attn_slice(ctx, pe, 0, start, start + x->shape[1]));
}

ATTN_API attn_tensor *attn_rope(attn_context *ctx, attn_tensor *x, int heads, int start, float base) {
    attn_arena_pos scratch;
    attn_tensor *out;
    attn_node *n = NULL;
    if (!ctx || attn__null_input(ctx, x, "attn_rope") || attn__host_only(ctx, "attn_rope")) return NULL;
    if (x->ndim != 3 || heads < 1 || x->shape[2] % heads || (x->shape[2] / heads) % 2 || start < 0) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "attn_rope: x must be (B, T, H*dh) with an even head dim and start >= 0");
        return NULL;
    }
    if (base == 0.0f) base = 10000.0f;
    if (!(out = attn__unary_begin(ctx, &x, &scratch, "attn_rope"))) return NULL;
    attn__rope_rows(x->shape[0], x->shape[1], x->shape[2], x->data, out->data, heads, start, base, 1.0f, 0);
    out = attn__finish(ctx, ATTN__OP_ROPE, out, x, NULL, NULL, scratch, &n);
    if (n) {
        n->i = heads;
        n->i2 = start;
        n->f = base;
    }
    return out;
}

/* ============================================================================
   9. Training: optimizers, clipping, schedules
   ========================================================================= */
struct attn_optim {
    attn_context *ctx;
    attn_optim_desc d;
    int steps;
    int n;                 /* parameters */
    attn_tensor **params;
    float **m;             /* SGD momentum buffer, Adam exp_avg, Adagrad sum */
    float **v;             /* Adam exp_avg_sq */
};

ATTN_API attn_optim *attn_optim_create(attn_context *ctx, const attn_optim_desc *desc) {
    const char *who = "attn_optim_create";
    attn_arena_pos mark;
    attn_optim *o;
    attn_param *p;
    int i, n = 0, adam;
    if (!ctx) return NULL;
    if (!desc) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: desc is NULL", who);
        return NULL;
    }
    for (p = ctx->params; p; p = p->next) n++;
    if (!n) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: no parameters are registered", who);
        return NULL;
    }
    if ((unsigned)desc->kind > (unsigned)ATTN_OPTIM_ADAGRAD || !(desc->lr >= 0.0) || desc->lr > 3.0e38 ||
        !(desc->weight_decay >= 0.0) || !(desc->momentum >= 0.0) || !(desc->beta1 >= 0.0 && desc->beta1 < 1.0) ||
        !(desc->beta2 >= 0.0 && desc->beta2 < 1.0) || !(desc->eps >= 0.0) || !(desc->lr_decay >= 0.0) ||
        !(desc->initial_accumulator_value >= 0.0) || !(desc->dampening >= 0.0) ||
        (desc->nesterov && (desc->momentum <= 0.0 || desc->dampening != 0.0))) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "%s: a hyperparameter is out of range (negative or NaN lr, "
                   "betas outside [0, 1), nesterov without momentum or with dampening...)", who);
        return NULL;
    }
    mark = attn_arena_mark(&ctx->arena);
    if (!(o = (attn_optim *)attn_alloc(ctx, sizeof(attn_optim)))) return NULL;
    memset(o, 0, sizeof *o);
    o->ctx = ctx;
    o->d = *desc;
    adam = desc->kind == ATTN_OPTIM_ADAM || desc->kind == ATTN_OPTIM_ADAMW;
    if (o->d.beta1 == 0.0) o->d.beta1 = 0.9;
    if (o->d.beta2 == 0.0) o->d.beta2 = 0.999;
    if (o->d.eps == 0.0) o->d.eps = desc->kind == ATTN_OPTIM_ADAGRAD ? 1e-10 : 1e-8;
    o->n = n;
    o->params = (attn_tensor **)attn_alloc(ctx, (size_t)n * sizeof(attn_tensor *));
    o->m = (float **)attn_alloc(ctx, (size_t)n * sizeof(float *));
    o->v = (float **)attn_alloc(ctx, (size_t)n * sizeof(float *));
    if (!o->params || !o->m || !o->v) goto fail;
    for (i = 0, p = ctx->params; p; p = p->next, i++) {
        size_t count = attn_tensor_numel(p->tensor);
        o->params[i] = p->tensor;
        o->m[i] = o->v[i] = NULL;
        if (desc->kind != ATTN_OPTIM_SGD || desc->momentum != 0.0) {
            float init = desc->kind == ATTN_OPTIM_ADAGRAD ? (float)desc->initial_accumulator_value : 0.0f;
            if (!(o->m[i] = attn__alloc_floats(ctx, count)) || attn__k_fill(ctx, count, init, o->m[i], who)) goto fail;
        }
        if (adam && (!(o->v[i] = attn__alloc_floats(ctx, count)) || attn__k_fill(ctx, count, 0.0f, o->v[i], who)))
            goto fail;
    }
    return o;
fail:
    attn_arena_reset(&ctx->arena, mark);
    return NULL;
}

ATTN_API void attn_optim_set_lr(attn_optim *opt, double lr) { if (opt) opt->d.lr = lr; }
ATTN_API double attn_optim_get_lr(const attn_optim *opt) { return opt ? opt->d.lr : 0.0; }
ATTN_API int attn_optim_steps(const attn_optim *opt) { return opt ? opt->steps : 0; }

/* Scalars that PyTorch computes in Python doubles are computed in double here
   too and rounded to float where PyTorch hands them to a kernel; the update
   itself is attn__update_ref / attn__update_simd. */
ATTN_API attn_status attn_optim_step(attn_optim *opt) {
    const attn_optim_desc *d;
    int i, step;
    if (!opt) return ATTN_ERR_INVALID_ARGUMENT;
    if (opt->steps == 0x7fffffff)
        return attn__fail(opt->ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_optim_step: the step count is at its limit");
    d = &opt->d;
    step = ++opt->steps;
    for (i = 0; i < opt->n; i++) {
        attn_tensor *t = opt->params[i];
        attn__update u;
        memset(&u, 0, sizeof u);
        u.kind = (int)d->kind;
        u.wd = (float)d->weight_decay;
        u.eps = (float)d->eps;
        if (d->kind == ATTN_OPTIM_SGD) {
            u.mom = (float)d->momentum;
            u.damp = (float)(1.0 - d->dampening);
            u.nesterov = d->nesterov;
            u.first = step == 1;
            u.lr_neg = (float)-d->lr;
        } else if (d->kind == ATTN_OPTIM_ADAGRAD) {
            u.lr_neg = (float)-(d->lr / (1.0 + (step - 1) * d->lr_decay));
        } else {
            u.b1 = (float)d->beta1;
            u.b2 = (float)d->beta2;
            u.one_b1 = (float)(1.0 - d->beta1);
            u.one_b2 = (float)(1.0 - d->beta2);
            u.lr_neg = (float)-(d->lr / (1.0 - pow(d->beta1, step)));
            u.bc2_sqrt = (float)sqrt(1.0 - pow(d->beta2, step));
            u.decay = (float)(1.0 - d->lr * d->weight_decay); /* AdamW: w *= 1 - lr wd first */
        }
        if (attn__k_optim_update(opt->ctx, attn_tensor_numel(t), &u, t->data, t->grad, opt->m[i], opt->v[i],
                                 "attn_optim_step"))
            return opt->ctx->status;
    }
    return ATTN_OK;
}

/* PyTorch's norm of the per-tensor norms: each tensor's sum of squares where
   its grad lives, the norms on the host. */
ATTN_API float attn_clip_grad_norm(attn_context *ctx, float max_norm) {
    const char *who = "attn_clip_grad_norm";
    attn_arena_pos mark;
    attn_param *p;
    size_t n = 0, i;
    double total = 0.0;
    float *sums, *host, norm = NAN, coef;
    if (!ctx) return NAN;
    mark = attn_arena_mark(&ctx->arena);
    for (p = ctx->params; p; p = p->next) n++;
    if (!(sums = attn__alloc_floats(ctx, n)) || !(host = (float *)attn_alloc(ctx, (n ? n : 1) * sizeof(float))))
        goto done;
    for (p = ctx->params, i = 0; p; p = p->next, i++)
        if (attn__k_sum(ctx, attn_tensor_numel(p->tensor), p->tensor->grad, 1, 1.0, sums + i, who)) goto done;
    if (attn__k_download(ctx, host, sums, n * sizeof(float), who)) goto done;
    for (i = 0; i < n; i++) {
        float tn = sqrtf(host[i]);
        total += (double)tn * tn;
    }
    norm = (float)sqrt(total);
    coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
        for (p = ctx->params; p; p = p->next)
            if (attn__k_unary(ctx, ATTN_BE_SCALE, attn_tensor_numel(p->tensor), coef, p->tensor->grad, NULL, NULL,
                              p->tensor->grad, who))
                break;
done:
    attn_arena_reset(&ctx->arena, mark);
    return norm;
}

ATTN_API double attn_lr_at(const attn_lr_desc *desc, int step) {
    if (!desc || step < 0) return 0.0;
    if (desc->kind == ATTN_LR_STEP) {
        int k = desc->step_size > 0 ? step / desc->step_size : 0;
        return desc->lr * pow(desc->gamma, k);
    }
    if (desc->kind == ATTN_LR_WARMUP_COSINE) {
        double t;
        if (step < desc->warmup_steps) return desc->lr * (step + 1) / desc->warmup_steps;
        if (desc->total_steps <= desc->warmup_steps || step >= desc->total_steps) return desc->min_lr;
        t = (double)(step - desc->warmup_steps) / (double)(desc->total_steps - desc->warmup_steps);
        return desc->min_lr + (desc->lr - desc->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    }
    return desc->lr;
}

/* ============================================================================
   10. Files
   ========================================================================= */
#ifndef ATTN_NO_STDIO
#  include <stdio.h>
#endif

/* Little-endian reads and writes that do not care about the host's order. */
static uint32_t attn__get_u32le(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void attn__put_u32le(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static float attn__get_f32le(const unsigned char *p) {
    uint32_t u = attn__get_u32le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static void attn__put_f32le(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    attn__put_u32le(p, u);
}
/* IEEE half to float, by bits (NaN payloads and signs kept). */
static float attn__f16_to_f32(unsigned h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 31, man = h & 1023, bits;
    float f;
    if (exp == 0) { /* zero or denormal: man * 2^-24, exact in float */
        f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    bits = exp == 31 ? sign | 0x7F800000u | man << 13 : sign | (exp + 112) << 23 | man << 13;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static float attn__bf16_to_f32(unsigned h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- a small JSON reader: just what safetensors headers need, with every
   bound checked (depth, lengths, numbers) so that any input is safe ---- */
typedef struct attn__json {
    const char *p, *end, *begin;
    attn_context *ctx;
    int failed;
} attn__json;

#define ATTN__JSON_MAX_DEPTH 16

static int attn__json_fail(attn__json *j, const char *what) {
    if (!j->failed)
        attn__fail(j->ctx, ATTN_ERR_FORMAT, "safetensors header: %s at byte %zu", what, (size_t)(j->p - j->begin));
    j->failed = 1;
    return 0;
}
static void attn__json_ws(attn__json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int attn__json_peek(attn__json *j, char c) {
    attn__json_ws(j);
    return j->p < j->end && *j->p == c;
}
static int attn__json_expect(attn__json *j, char c) {
    if (!attn__json_peek(j, c)) {
        char what[24] = "expected ' '";
        what[10] = c;
        return attn__json_fail(j, what);
    }
    j->p++;
    return 1;
}

/* A string, decoded into out (cap bytes, NUL-terminated) when out is not NULL;
   *len gets the decoded length. Control characters and NUL are refused. */
static int attn__json_string(attn__json *j, char *out, size_t cap, size_t *len) {
    size_t n = 0;
    if (!attn__json_expect(j, '"')) return 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned c = (unsigned char)*j->p++;
        unsigned char bytes[4];
        int k, nb = 1;
        if (c < 0x20) return attn__json_fail(j, "control character in a string");
        if (c == '\\') {
            if (j->p >= j->end) break;
            c = (unsigned char)*j->p++;
            switch (c) {
            case '"': case '\\': case '/': break;
            case 'b': c = 8; break;
            case 'f': c = 12; break;
            case 'n': c = 10; break;
            case 'r': c = 13; break;
            case 't': c = 9; break;
            case 'u': {
                unsigned cp = 0;
                if (j->end - j->p < 4) return attn__json_fail(j, "short \\u escape");
                for (k = 0; k < 4; k++) {
                    char h = *j->p++;
                    int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 :
                            h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (v < 0) return attn__json_fail(j, "bad \\u escape");
                    cp = cp * 16 + (unsigned)v;
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                    return attn__json_fail(j, "\\u0000 or a lone surrogate in a string");
                if (cp < 0x80) bytes[0] = (unsigned char)cp;
                else if (cp < 0x800) { bytes[0] = (unsigned char)(0xC0 | cp >> 6); bytes[1] = (unsigned char)(0x80 | (cp & 63)); nb = 2; }
                else { bytes[0] = (unsigned char)(0xE0 | cp >> 12); bytes[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                       bytes[2] = (unsigned char)(0x80 | (cp & 63)); nb = 3; }
                goto put;
            }
            default: return attn__json_fail(j, "bad escape in a string");
            }
        }
        bytes[0] = (unsigned char)c;
    put:
        for (k = 0; k < nb; k++) {
            if (out && n + 1 < cap) out[n] = (char)bytes[k];
            n++;
        }
    }
    if (j->p >= j->end) return attn__json_fail(j, "unterminated string");
    j->p++;
    if (out) {
        if (n + 1 > cap) return attn__json_fail(j, "string too long");
        out[n] = 0;
    }
    if (len) *len = n;
    return 1;
}

/* A non-negative integer below 2^53 (shapes and offsets). */
static int attn__json_uint(attn__json *j, uint64_t *v) {
    uint64_t x = 0;
    int digits = 0;
    attn__json_ws(j);
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        x = x * 10 + (uint64_t)(*j->p++ - '0');
        if (++digits > 16) return attn__json_fail(j, "number too large");
    }
    if (!digits) return attn__json_fail(j, "expected a non-negative integer");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return attn__json_fail(j, "expected an integer");
    *v = x;
    return 1;
}

/* true, false, null or a number, exactly as JSON spells them. */
static int attn__json_digits(attn__json *j) {
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > start;
}
static int attn__json_scalar(attn__json *j) {
    static const char *const literals[3] = { "true", "false", "null" };
    int i;
    for (i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, literals[i], n)) {
            j->p += n;
            return 1;
        }
    }
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0') j->p++;
    else if (!attn__json_digits(j)) return attn__json_fail(j, "unexpected character");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!attn__json_digits(j)) return attn__json_fail(j, "bad number");
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!attn__json_digits(j)) return attn__json_fail(j, "bad number");
    }
    return 1;
}

/* Any value, skipped (with a depth limit, so deep nesting cannot overflow the stack). */
static int attn__json_skip(attn__json *j, int depth) {
    attn__json_ws(j);
    if (depth > ATTN__JSON_MAX_DEPTH) return attn__json_fail(j, "nested too deeply");
    if (j->p >= j->end) return attn__json_fail(j, "unexpected end");
    if (*j->p == '"') return attn__json_string(j, NULL, 0, NULL);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int object = *j->p == '{';
        j->p++;
        if (attn__json_peek(j, close)) { j->p++; return 1; }
        for (;;) {
            if (object && (!attn__json_string(j, NULL, 0, NULL) || !attn__json_expect(j, ':'))) return 0;
            if (!attn__json_skip(j, depth + 1)) return 0;
            if (attn__json_peek(j, ',')) { j->p++; continue; }
            return attn__json_expect(j, close);
        }
    }
    return attn__json_scalar(j);
}

/* Merge sort of indices by a comparison (no recursion, no quadratic case). */
typedef int (*attn__cmp_fn)(const void *data, int a, int b);
static void attn__sort_indices(int *idx, int *tmp, int n, attn__cmp_fn cmp, const void *data) {
    int width, i;
    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            int lo = i, mid = ATTN__MIN(i + width, n), hi = ATTN__MIN(i + 2 * width, n), a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = cmp(data, idx[b], idx[a]) < 0 ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof(int));
    }
}
static int attn__cmp_names(const void *data, int a, int b) {
    const attn_st_entry *e = (const attn_st_entry *)data;
    return strcmp(e[a].name, e[b].name);
}
/* by start, then by size: empty tensors sit before a full one at the same offset */
static int attn__cmp_offsets(const void *data, int a, int b) {
    const attn_st_entry *e = (const attn_st_entry *)data;
    if (e[a].data != e[b].data) return e[a].data < e[b].data ? -1 : 1;
    return e[a].nbytes < e[b].nbytes ? -1 : e[a].nbytes > e[b].nbytes;
}

/* One "name": {...} tensor entry. */
static int attn__st_entry(attn__json *j, attn_st_entry *e, const unsigned char *data, size_t data_size) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    uint64_t begin = 0, end = 0, elems = 1, span = 1;
    size_t elem_size = 4;
    if (!attn__json_expect(j, '{')) return 0;
    if (attn__json_peek(j, '}')) return attn__json_fail(j, "empty tensor entry");
    for (;;) {
        char key[32];
        if (!attn__json_string(j, key, sizeof key, NULL) || !attn__json_expect(j, ':')) return 0;
        if (!strcmp(key, "dtype")) {
            char dt[16];
            if (!attn__json_string(j, dt, sizeof dt, NULL)) return 0;
            if (!strcmp(dt, "F32")) e->dtype = ATTN_ST_F32, elem_size = 4;
            else if (!strcmp(dt, "F16")) e->dtype = ATTN_ST_F16, elem_size = 2;
            else if (!strcmp(dt, "BF16")) e->dtype = ATTN_ST_BF16, elem_size = 2;
            else {
                attn__fail(j->ctx, ATTN_ERR_UNSUPPORTED, "safetensors: tensor %s has dtype %s (F32, F16 and BF16 are read)",
                           e->name, dt);
                j->failed = 1;
                return 0;
            }
            have_dtype = 1;
        } else if (!strcmp(key, "shape")) {
            if (!attn__json_expect(j, '[')) return 0;
            e->ndim = 0;
            if (!attn__json_peek(j, ']'))
                for (;;) {
                    uint64_t dim;
                    if (e->ndim == ATTN_MAX_DIMS) return attn__json_fail(j, "a shape with more than 4 dims");
                    if (!attn__json_uint(j, &dim)) return 0;
                    if (dim > 0x7fffffff) return attn__json_fail(j, "a dimension too large");
                    e->shape[e->ndim++] = (int)dim;
                    /* the same limit as a tensor's: 2^31-1, counting zero dims as 1 */
                    span *= dim ? dim : 1;
                    if (span > 0x7fffffff) return attn__json_fail(j, "a shape too large");
                    elems *= dim;
                    if (attn__json_peek(j, ',')) { j->p++; continue; }
                    break;
                }
            if (!attn__json_expect(j, ']')) return 0;
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            if (!attn__json_expect(j, '[') || !attn__json_uint(j, &begin) || !attn__json_expect(j, ',') ||
                !attn__json_uint(j, &end) || !attn__json_expect(j, ']'))
                return 0;
            have_offsets = 1;
        } else if (!attn__json_skip(j, 2)) {
            return 0;
        }
        if (attn__json_peek(j, ',')) { j->p++; continue; }
        if (!attn__json_expect(j, '}')) return 0;
        break;
    }
    if (!have_dtype || !have_shape || !have_offsets) {
        attn__fail(j->ctx, ATTN_ERR_FORMAT, "safetensors: tensor %s lacks dtype, shape or data_offsets", e->name);
        j->failed = 1;
        return 0;
    }
    if (begin > end || end > data_size || end - begin != elems * elem_size) {
        attn__fail(j->ctx, ATTN_ERR_FORMAT, "safetensors: tensor %s: data_offsets [%zu, %zu) do not fit its shape and "
                   "dtype in %zu bytes of data", e->name, (size_t)begin, (size_t)end, data_size);
        j->failed = 1;
        return 0;
    }
    e->data = data + begin;
    e->nbytes = (size_t)(end - begin);
    return 1;
}

ATTN_API attn_status attn_safetensors_parse(attn_context *ctx, const void *buf, size_t size, attn_safetensors *out) {
    const unsigned char *b = (const unsigned char *)buf, *data;
    attn_arena_pos mark;
    attn__json j;
    uint64_t hlen;
    size_t data_size;
    int pass, count = 0, meta = 0, meta_pairs = 0, i, *tmp = NULL;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!out || (!buf && size)) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_safetensors_parse: NULL argument");
    memset(out, 0, sizeof *out);
    if (size < 8) return attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: %zu bytes is too short for the header length", size);
    hlen = (uint64_t)attn__get_u32le(b) | (uint64_t)attn__get_u32le(b + 4) << 32;
    if (hlen > size - 8 || hlen > 100000000u)
        return attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: the header claims %zu bytes but the buffer has %zu after "
                          "the length (or more than the 100 MB limit)", (size_t)(hlen > (uint64_t)(size_t)-1 ? (size_t)-1 : hlen), size - 8);
    data = b + 8 + hlen;
    data_size = size - 8 - (size_t)hlen;
    mark = attn_arena_mark(&ctx->arena);
    /* pass 0 counts (and checks the syntax), pass 1 fills the entries */
    for (pass = 0; pass < 2; pass++) {
        int n = 0, m = 0;
        j.p = j.begin = (const char *)b + 8;
        j.end = j.p + hlen;
        j.ctx = ctx;
        j.failed = 0;
        if (!attn__json_expect(&j, '{')) goto fail;
        if (!attn__json_peek(&j, '}'))
            for (;;) {
                size_t len;
                const char *key_start = j.p;
                attn__json_ws(&j);
                key_start = j.p;
                if (!attn__json_string(&j, NULL, 0, &len) || !attn__json_expect(&j, ':')) goto fail;
                if (len == 12 && !memcmp(key_start + 1, "__metadata__", 12)) {
                    if (pass == 0) { /* count its pairs */
                        if (!attn__json_expect(&j, '{')) goto fail;
                        if (!attn__json_peek(&j, '}'))
                            for (;;) {
                                if (!attn__json_string(&j, NULL, 0, NULL) || !attn__json_expect(&j, ':') ||
                                    !attn__json_skip(&j, 2))
                                    goto fail;
                                meta_pairs++;
                                if (attn__json_peek(&j, ',')) { j.p++; continue; }
                                break;
                            }
                        if (!attn__json_expect(&j, '}')) goto fail;
                    } else { /* string pairs */
                        if (!attn__json_expect(&j, '{')) goto fail;
                        if (!attn__json_peek(&j, '}'))
                            for (;;) {
                                const char *s0;
                                size_t kl, vl;
                                char *k, *v;
                                attn__json_ws(&j);
                                s0 = j.p;
                                if (!attn__json_string(&j, NULL, 0, &kl)) goto fail;
                                j.p = s0;
                                if (!(k = (char *)attn_alloc(ctx, kl + 1)) || !attn__json_string(&j, k, kl + 1, NULL) ||
                                    !attn__json_expect(&j, ':'))
                                    goto fail;
                                attn__json_ws(&j);
                                s0 = j.p;
                                if (!attn__json_string(&j, NULL, 0, &vl)) goto fail;
                                j.p = s0;
                                if (!(v = (char *)attn_alloc(ctx, vl + 1)) || !attn__json_string(&j, v, vl + 1, NULL)) goto fail;
                                if (m < meta) { out->meta_keys[m] = k; out->meta_values[m] = v; m++; }
                                if (attn__json_peek(&j, ',')) { j.p++; continue; }
                                break;
                            }
                        if (!attn__json_expect(&j, '}')) goto fail;
                    }
                    if (pass == 0) meta++;
                } else if (pass == 0) {
                    if (!attn__json_skip(&j, 1)) goto fail;
                    if (++n > 10000000) { attn__json_fail(&j, "too many tensors"); goto fail; }
                } else {
                    attn_st_entry *e = &out->entries[n++];
                    char *name = (char *)attn_alloc(ctx, len + 1);
                    const char *after = j.p;
                    if (!name) goto fail;
                    j.p = key_start; /* decode the name again, now into its place */
                    if (!attn__json_string(&j, name, len + 1, NULL)) goto fail;
                    j.p = after;
                    if (!name[0]) { attn__json_fail(&j, "an empty tensor name"); goto fail; }
                    e->name = name;
                    if (!attn__st_entry(&j, e, data, data_size)) goto fail;
                }
                if (attn__json_peek(&j, ',')) { j.p++; continue; }
                break;
            }
        if (!attn__json_expect(&j, '}')) goto fail;
        attn__json_ws(&j);
        if (j.p != j.end) { attn__json_fail(&j, "bytes after the header object"); goto fail; }
        if (pass == 0) {
            count = n;
            /* "__metadata__" twice would be a duplicate key */
            if (meta > 1) { attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: __metadata__ appears twice"); goto fail; }
            out->count = count;
            out->entries = (attn_st_entry *)attn_alloc(ctx, (size_t)ATTN__MAX(count, 1) * sizeof(attn_st_entry));
            out->by_name = (int *)attn_alloc(ctx, (size_t)ATTN__MAX(count, 1) * sizeof(int));
            tmp = (int *)attn_alloc(ctx, (size_t)ATTN__MAX(count, 1) * sizeof(int));
            if (!out->entries || !out->by_name || !tmp) goto fail;
            memset(out->entries, 0, (size_t)ATTN__MAX(count, 1) * sizeof(attn_st_entry));
            if (meta) {
                meta = meta_pairs;
                out->meta_keys = (const char **)attn_alloc(ctx, (size_t)ATTN__MAX(meta, 1) * sizeof(char *));
                out->meta_values = (const char **)attn_alloc(ctx, (size_t)ATTN__MAX(meta, 1) * sizeof(char *));
                if (!out->meta_keys || !out->meta_values) goto fail;
            }
        } else {
            out->meta_count = m;
        }
    }
    /* duplicate names, and offsets that overlap or leave holes */
    for (i = 0; i < count; i++) out->by_name[i] = i;
    attn__sort_indices(out->by_name, tmp, count, attn__cmp_names, out->entries);
    for (i = 1; i < count; i++)
        if (!strcmp(out->entries[out->by_name[i]].name, out->entries[out->by_name[i - 1]].name)) {
            attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: tensor %s appears twice", out->entries[out->by_name[i]].name);
            goto fail;
        }
    {
        int *order = tmp + 0, *scratch;
        if (!(scratch = (int *)attn_alloc(ctx, (size_t)ATTN__MAX(count, 1) * sizeof(int)))) goto fail;
        for (i = 0; i < count; i++) order[i] = i;
        attn__sort_indices(order, scratch, count, attn__cmp_offsets, out->entries);
        for (i = 0; i < count; i++) {
            const attn_st_entry *e = &out->entries[order[i]];
            const unsigned char *expect = i ? out->entries[order[i - 1]].data + out->entries[order[i - 1]].nbytes : data;
            if (e->data != expect) {
                attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: tensor %s's data overlaps another's or leaves a hole", e->name);
                goto fail;
            }
        }
        if (count && out->entries[order[count - 1]].data + out->entries[order[count - 1]].nbytes != data + data_size) {
            attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: %zu bytes of data after the last tensor",
                       (size_t)(data + data_size - (out->entries[order[count - 1]].data + out->entries[order[count - 1]].nbytes)));
            goto fail;
        }
    }
    return ATTN_OK;
fail:
    attn_arena_reset(&ctx->arena, mark);
    memset(out, 0, sizeof *out);
    return ctx->status ? ctx->status : attn__fail(ctx, ATTN_ERR_FORMAT, "safetensors: bad header");
}

ATTN_API const attn_st_entry *attn_safetensors_find(const attn_safetensors *st, const char *name) {
    int lo = 0, hi;
    if (!st || !name || !st->by_name) return NULL;
    hi = st->count;
    while (lo < hi) { /* binary search over the names */
        int mid = lo + (hi - lo) / 2, c = strcmp(st->entries[st->by_name[mid]].name, name);
        if (!c) return &st->entries[st->by_name[mid]];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static int attn__st_shape_is(const attn_st_entry *e, const attn_tensor *t) {
    int d;
    if (e->ndim != t->ndim) return 0;
    for (d = 0; d < t->ndim; d++)
        if (e->shape[d] != t->shape[d]) return 0;
    return 1;
}

static const char *attn__st_shape_text(const attn_st_entry *e, char *buf, size_t cap) {
    attn_tensor t;
    int d;
    memset(&t, 0, sizeof t);
    t.ndim = e->ndim;
    for (d = 0; d < e->ndim; d++) t.shape[d] = e->shape[d];
    return attn__shape_text(&t, buf, cap);
}

/* Element i of e as f32. */
static float attn__st_value(const attn_st_entry *e, size_t i) {
    const unsigned char *p = e->data + i * (e->dtype == ATTN_ST_F32 ? 4 : 2);
    return e->dtype == ATTN_ST_F32 ? attn__get_f32le(p)
           : e->dtype == ATTN_ST_F16 ? attn__f16_to_f32((unsigned)p[0] | (unsigned)p[1] << 8)
                                     : attn__bf16_to_f32((unsigned)p[0] | (unsigned)p[1] << 8);
}

ATTN_API attn_status attn_safetensors_read(attn_context *ctx, const attn_st_entry *e, attn_tensor *t) {
    size_t i, n;
    int index[ATTN_MAX_DIMS] = {0, 0, 0, 0};
    char t1[64], t2[64];
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!e || !t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_safetensors_read: NULL argument");
    if (!attn__st_shape_is(e, t))
        return attn__fail(ctx, ATTN_ERR_SHAPE, "tensor %s is %s in the file but %s here", e->name,
                          attn__st_shape_text(e, t1, sizeof t1), attn__shape_text(t, t2, sizeof t2));
    n = attn_tensor_numel(t);
    if (!attn__data_on_host(ctx)) { /* converted here, then uploaded */
        attn_arena_pos mark = attn_arena_mark(&ctx->arena);
        float *host = (float *)attn_alloc(ctx, (n ? n : 1) * sizeof(float));
        attn_status st = host ? ATTN_OK : ctx->status;
        for (i = 0; host && i < n; i++) host[i] = attn__st_value(e, i);
        if (host) st = attn__tensor_from_host(ctx, t, host, "attn_safetensors_read");
        attn_arena_reset(&ctx->arena, mark);
        return st;
    }
    for (i = 0; i < n; i++) {
        t->data[attn__offset(t, index)] = attn__st_value(e, i);
        attn__next_index(t, index);
    }
    return ATTN_OK;
}

/* Checks every parameter against the image (and, when strict, every tensor of
   the image against the parameters, ignoring names that start with skip). */
static attn_status attn__params_check(attn_context *ctx, const attn_safetensors *st, int strict, const char *skip) {
    attn_param *p;
    int i, n = 0;
    char t1[64], t2[64];
    for (p = ctx->params; p; p = p->next, n++) {
        const attn_st_entry *e = attn_safetensors_find(st, p->name);
        if (!e) return attn__fail(ctx, ATTN_ERR_SHAPE, "the file has no tensor %s", p->name);
        if (!attn__st_shape_is(e, p->tensor))
            return attn__fail(ctx, ATTN_ERR_SHAPE, "tensor %s is %s in the file but %s in the model", p->name,
                              attn__st_shape_text(e, t1, sizeof t1), attn__shape_text(p->tensor, t2, sizeof t2));
    }
    if (strict)
        for (i = 0; i < st->count; i++) {
            const char *name = st->entries[i].name;
            if (skip && !strncmp(name, skip, strlen(skip))) continue;
            if (!attn_param_find(ctx, name))
                return attn__fail(ctx, ATTN_ERR_SHAPE, "the file's tensor %s is not a parameter of the model", name);
        }
    return ATTN_OK;
}

ATTN_API attn_status attn_params_load(attn_context *ctx, const void *buf, size_t size, int strict) {
    attn_arena_pos mark;
    attn_safetensors st;
    attn_param *p;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    if ((s = attn_safetensors_parse(ctx, buf, size, &st)) == ATTN_OK && (s = attn__params_check(ctx, &st, strict, NULL)) == ATTN_OK)
        for (p = ctx->params; p; p = p->next) attn_safetensors_read(ctx, attn_safetensors_find(&st, p->name), p->tensor);
    attn_arena_reset(&ctx->arena, mark); /* the index was only needed here */
    return s;
}

/* ---- writing safetensors: a header of JSON text, then the data ---- */
typedef struct attn__writer {
    unsigned char *p;   /* NULL: only count */
    size_t n, cap;
} attn__writer;

static void attn__w_bytes(attn__writer *w, const void *s, size_t n) {
    if (w->p && w->n + n <= w->cap) memcpy(w->p + w->n, s, n);
    w->n += n;
}
static void attn__w_str(attn__writer *w, const char *s) { attn__w_bytes(w, s, strlen(s)); }
static void attn__w_uint(attn__writer *w, uint64_t v) {
    char digits[24];
    int k = 24;
    do { digits[--k] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
    attn__w_bytes(w, digits + k, (size_t)(24 - k));
}
/* s escaped for a JSON string (without the quotes) */
static void attn__w_json_chars(attn__writer *w, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { char e[2] = { '\\', (char)c }; attn__w_bytes(w, e, 2); }
        else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            attn__w_bytes(w, e, 6);
        } else {
            attn__w_bytes(w, s, 1);
        }
    }
}
static void attn__w_entry(attn__writer *w, const char *prefix, const char *name, const attn_tensor *t, uint64_t *offset,
                          int *first) {
    int d;
    size_t bytes = attn_tensor_numel(t) * 4;
    if (!*first) attn__w_str(w, ",");
    *first = 0;
    attn__w_str(w, "\"");
    if (prefix) attn__w_json_chars(w, prefix);
    attn__w_json_chars(w, name);
    attn__w_str(w, "\":{\"dtype\":\"F32\",\"shape\":[");
    for (d = 0; d < t->ndim; d++) {
        if (d) attn__w_str(w, ",");
        attn__w_uint(w, (uint64_t)t->shape[d]);
    }
    attn__w_str(w, "],\"data_offsets\":[");
    attn__w_uint(w, *offset);
    attn__w_str(w, ",");
    attn__w_uint(w, *offset + bytes);
    attn__w_str(w, "]}");
    *offset += bytes;
}

/* t's elements, little-endian f32 (only counted when there is no buffer);
   0 when a backend download fails. */
static int attn__w_floats(attn_context *ctx, attn__writer *w, const attn_tensor *t) {
    attn_arena_pos mark = attn_arena_mark(&ctx->arena);
    size_t i, n = attn_tensor_numel(t);
    const float *h;
    if (!w->p) {
        w->n += n * 4;
        return 1;
    }
    if (!(h = attn__tensor_to_host(ctx, t, "attn_params_save"))) return 0;
    for (i = 0; i < n; i++) {
        unsigned char le[4];
        attn__put_f32le(le, h[i]);
        attn__w_bytes(w, le, 4);
    }
    attn_arena_reset(&ctx->arena, mark);
    return 1;
}

/* The whole image: params, optionally the optimizer's buffers and metadata. */
static size_t attn__st_write(attn_context *ctx, const attn_optim *opt, unsigned char *buf, size_t cap) {
    attn__writer w;
    attn_param *p;
    uint64_t offset = 0;
    size_t header_start, header_len;
    int first = 1, k;
    unsigned char zero8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    w.p = buf; w.n = 0; w.cap = cap;
    attn__w_bytes(&w, zero8, 8); /* the header length, filled in below */
    header_start = w.n;
    attn__w_str(&w, "{");
    if (opt) {
        char num[96];
        attn__writer nw;
        attn__w_str(&w, "\"__metadata__\":{\"attn.step\":\"");
        attn__w_uint(&w, (uint64_t)opt->steps);
        attn__w_str(&w, "\",\"attn.rng\":\"");
        nw.p = (unsigned char *)num; nw.n = 0; nw.cap = sizeof num - 1;
        attn__w_uint(&nw, ctx->rng.state);
        attn__w_str(&nw, ",");
        attn__w_uint(&nw, ctx->rng.inc);
        num[nw.n] = 0;
        attn__w_str(&w, num);
        attn__w_str(&w, "\"}");
        first = 0;
    }
    for (p = ctx->params; p; p = p->next) attn__w_entry(&w, NULL, p->name, p->tensor, &offset, &first);
    if (opt)
        for (k = 0; k < opt->n; k++) {
            attn_param *q;
            int idx = 0;
            for (q = ctx->params; q && q->tensor != opt->params[k]; q = q->next) idx++;
            if (!q) continue;
            if (opt->m[k]) attn__w_entry(&w, "optim.m.", q->name, q->tensor, &offset, &first);
            if (opt->v[k]) attn__w_entry(&w, "optim.v.", q->name, q->tensor, &offset, &first);
        }
    attn__w_str(&w, "}");
    while ((w.n - header_start) % 8) attn__w_str(&w, " "); /* the data starts 8-aligned */
    header_len = w.n - header_start;
    if (w.p && cap >= 8) {
        attn__put_u32le(w.p, (uint32_t)header_len);
        attn__put_u32le(w.p + 4, (uint32_t)((uint64_t)header_len >> 32));
    }
    for (p = ctx->params; p; p = p->next) /* the data, in the same order */
        if (!attn__w_floats(ctx, &w, p->tensor)) return 0;
    if (opt)
        for (k = 0; k < opt->n; k++) {
            attn_tensor view = *opt->params[k];
            int b2;
            for (b2 = 0; b2 < 2; b2++) {
                view.data = b2 ? opt->v[k] : opt->m[k];
                if (view.data && !attn__w_floats(ctx, &w, &view)) return 0;
            }
        }
    return w.n;
}

ATTN_API size_t attn_params_save_bytes(attn_context *ctx) { return ctx ? attn__st_write(ctx, NULL, NULL, 0) : 0; }

ATTN_API attn_status attn_params_save(attn_context *ctx, void *buf, size_t size) {
    size_t need;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    need = attn_params_save_bytes(ctx);
    if (!buf || size < need)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_params_save: the buffer has %zu bytes, %zu are needed", size, need);
    attn__st_write(ctx, NULL, (unsigned char *)buf, size);
    return ATTN_OK;
}

ATTN_API size_t attn_checkpoint_bytes(attn_context *ctx, const attn_optim *opt) {
    return ctx && opt ? attn__st_write(ctx, opt, NULL, 0) : 0;
}

ATTN_API attn_status attn_checkpoint_save(attn_context *ctx, const attn_optim *opt, void *buf, size_t size) {
    size_t need;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!opt) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_checkpoint_save: optimizer is NULL");
    need = attn_checkpoint_bytes(ctx, opt);
    if (!buf || size < need)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_checkpoint_save: the buffer has %zu bytes, %zu are needed", size, need);
    attn__st_write(ctx, opt, (unsigned char *)buf, size);
    return ATTN_OK;
}

/* A decimal uint64 from metadata text, ending at `stop` (0 or a separator);
   returns where it ended, or NULL on a malformed or overflowing number. */
static const char *attn__parse_u64(const char *s, uint64_t *v, char stop) {
    uint64_t x = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s++ - '0');
        if (x > (~(uint64_t)0 - d) / 10) return NULL;
        x = x * 10 + d;
        digits++;
    }
    *v = x;
    return digits > 0 && *s == stop ? s : NULL;
}

ATTN_API attn_status attn_checkpoint_load(attn_context *ctx, attn_optim *opt, const void *buf, size_t size) {
    attn_arena_pos mark;
    attn_safetensors st;
    attn_status s;
    const char *step_text = NULL, *rng_text = NULL;
    uint64_t step = 0, state = 0, inc = 0;
    int i, k;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!opt) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_checkpoint_load: optimizer is NULL");
    mark = attn_arena_mark(&ctx->arena);
    if ((s = attn_safetensors_parse(ctx, buf, size, &st)) != ATTN_OK) goto done;
    if ((s = attn__params_check(ctx, &st, 1, "optim.")) != ATTN_OK) goto done;
    for (i = 0; i < st.meta_count; i++) {
        if (!strcmp(st.meta_keys[i], "attn.step")) step_text = st.meta_values[i];
        if (!strcmp(st.meta_keys[i], "attn.rng")) rng_text = st.meta_values[i];
    }
    if (!step_text || !rng_text || !attn__parse_u64(step_text, &step, 0) || step >= 0x7fffffff ||
        !(rng_text = attn__parse_u64(rng_text, &state, ',')) || !attn__parse_u64(rng_text + 1, &inc, 0)) {
        s = attn__fail(ctx, ATTN_ERR_FORMAT, "checkpoint: missing or bad attn.step / attn.rng metadata");
        goto done;
    }
    /* every optimizer buffer must be there before anything changes */
    for (k = 0; k < opt->n; k++) {
        attn_param *q;
        char name[512];
        for (q = ctx->params; q && q->tensor != opt->params[k]; q = q->next) {}
        if (!q) continue;
        for (i = 0; i < 2; i++) {
            const attn_st_entry *e;
            if (!(i ? opt->v[k] : opt->m[k])) continue;
            if (!attn__pname(ctx, name, sizeof name, i ? "optim.v." : "optim.m.", q->name)) { s = ctx->status; goto done; }
            if (!(e = attn_safetensors_find(&st, name)) || !attn__st_shape_is(e, q->tensor)) {
                s = attn__fail(ctx, ATTN_ERR_SHAPE, "checkpoint: optimizer state %s is missing or of the wrong shape", name);
                goto done;
            }
        }
    }
    { /* all there: load */
        attn_param *p;
        for (p = ctx->params; p; p = p->next) attn_safetensors_read(ctx, attn_safetensors_find(&st, p->name), p->tensor);
        for (k = 0; k < opt->n; k++) {
            attn_param *q;
            char name[512];
            for (q = ctx->params; q && q->tensor != opt->params[k]; q = q->next) {}
            if (!q) continue;
            for (i = 0; i < 2; i++) {
                float *dst = i ? opt->v[k] : opt->m[k];
                attn_tensor view;
                if (!dst) continue;
                attn__pname(ctx, name, sizeof name, i ? "optim.v." : "optim.m.", q->name);
                view = *q->tensor;
                view.data = dst;
                attn_safetensors_read(ctx, attn_safetensors_find(&st, name), &view);
            }
        }
        opt->steps = (int)step;
        ctx->rng.state = state;
        ctx->rng.inc = inc;
    }
done:
    attn_arena_reset(&ctx->arena, mark);
    return s;
}

/* ---- .npy ---- */
/* The header dict literal, parsed: {'descr': '<f4', 'fortran_order': False,
   'shape': (2, 3), } - exactly these three keys, each once, in any order,
   then blanks and a newline. Values are returned as text spans. */
static int attn__npy_dict(const char *h, size_t n, const char **val, size_t *len) {
    static const char *const keys[3] = { "descr", "fortran_order", "shape" };
    size_t i = 0;
    int k, seen = 0;
    while (i < n && h[i] == ' ') i++;
    if (i >= n || h[i++] != '{') return 0;
    for (;;) {
        size_t ks, ke, vs;
        char q;
        while (i < n && h[i] == ' ') i++;
        if (i < n && h[i] == '}') break;
        if (i >= n || (h[i] != '\'' && h[i] != '"')) return 0;
        q = h[i++];
        ks = i;
        while (i < n && h[i] != q) i++;
        if (i >= n) return 0;
        ke = i++;
        for (k = 0; k < 3; k++)
            if (ke - ks == strlen(keys[k]) && !memcmp(h + ks, keys[k], ke - ks)) break;
        if (k == 3 || (seen >> k & 1)) return 0; /* an unknown or repeated key */
        seen |= 1 << k;
        while (i < n && h[i] == ' ') i++;
        if (i >= n || h[i++] != ':') return 0;
        while (i < n && h[i] == ' ') i++;
        vs = i;
        if (i < n && (h[i] == '\'' || h[i] == '"')) { /* a string */
            q = h[i++];
            while (i < n && h[i] != q) i++;
            if (i++ >= n) return 0;
        } else if (i < n && h[i] == '(') { /* a tuple */
            while (i < n && h[i] != ')') i++;
            if (i++ >= n) return 0;
        } else { /* True / False */
            while (i < n && ((h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= 'a' && h[i] <= 'z'))) i++;
        }
        val[k] = h + vs;
        len[k] = i - vs;
        while (i < n && h[i] == ' ') i++;
        if (i < n && h[i] == ',') { i++; continue; }
        if (i < n && h[i] == '}') break;
        return 0;
    }
    for (i++; i < n; i++) /* after the dict: blanks and the newline only */
        if (h[i] != ' ' && h[i] != '\n' && h[i] != '\r') return 0;
    return seen == 7;
}

ATTN_API attn_tensor *attn_npy_parse(attn_context *ctx, const void *buf, size_t size) {
    const unsigned char *b = (const unsigned char *)buf;
    const char *h, *descr, *fortran, *shape;
    size_t hlen, start, dl, fl, sl, i, numel = 1;
    int major, ndim = 0, dims[ATTN_MAX_DIMS];
    attn_tensor *t;
    if (!ctx) return NULL;
    if (!buf && size) { attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_npy_parse: buffer is NULL"); return NULL; }
    if (size < 10 || memcmp(b, "\x93NUMPY", 6)) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: no \\x93NUMPY magic"); return NULL; }
    major = b[6];
    if (major == 1) { hlen = (size_t)b[8] | (size_t)b[9] << 8; start = 10; }
    else if (major == 2 || major == 3) {
        if (size < 12) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: truncated header"); return NULL; }
        hlen = (size_t)attn__get_u32le(b + 8);
        start = 12;
    } else { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: format version %d is not 1, 2 or 3", major); return NULL; }
    if (hlen > size - start) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: the header runs past the end of the data"); return NULL; }
    h = (const char *)b + start;
    {
        const char *val[3];
        size_t len[3];
        if (!attn__npy_dict(h, hlen, val, len)) {
            attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: the header is not a dict of exactly descr, fortran_order and shape");
            return NULL;
        }
        descr = val[0]; dl = len[0];
        fortran = val[1]; fl = len[1];
        shape = val[2]; sl = len[2];
    }
    if (!(dl == 5 && (descr[0] == '\'' || descr[0] == '"') && !memcmp(descr + 1, "<f4", 3))) {
        char d[24];
        size_t n = ATTN__MIN(dl, sizeof d - 1);
        memcpy(d, descr, n);
        d[n] = 0;
        attn__fail(ctx, ATTN_ERR_UNSUPPORTED, ".npy: dtype %s is not supported (only '<f4', little-endian float32)", d);
        return NULL;
    }
    if (!(fl == 5 && !memcmp(fortran, "False", 5))) {
        attn__fail(ctx, ATTN_ERR_UNSUPPORTED, ".npy: fortran_order must be False (C order)");
        return NULL;
    }
    if (sl < 2 || shape[0] != '(' || shape[sl - 1] != ')') { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: shape is not a tuple"); return NULL; }
    for (i = 1; i + 1 < sl;) { /* integers separated by commas */
        uint64_t v = 0;
        int digits = 0;
        while (i + 1 < sl && shape[i] == ' ') i++;
        if (i + 1 >= sl) break;
        while (i + 1 < sl && shape[i] >= '0' && shape[i] <= '9') {
            v = v * 10 + (uint64_t)(shape[i++] - '0');
            if (++digits > 10 || v > 0x7fffffff) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: a dimension is too large"); return NULL; }
        }
        if (!digits) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: bad shape (negative or not a number)"); return NULL; }
        if (ndim == ATTN_MAX_DIMS) { attn__fail(ctx, ATTN_ERR_UNSUPPORTED, ".npy: more than %d dims", ATTN_MAX_DIMS); return NULL; }
        dims[ndim++] = (int)v;
        while (i + 1 < sl && shape[i] == ' ') i++;
        if (i + 1 < sl && shape[i] == ',') i++;
        else if (i + 1 < sl) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: bad shape"); return NULL; }
    }
    for (i = 0; i < (size_t)ndim; i++) {
        if (dims[i] && numel > ((size_t)0x7fffffff) / (size_t)dims[i]) { attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: too many elements"); return NULL; }
        numel *= (size_t)dims[i];
    }
    if (numel > (size - start - hlen) / 4) {
        attn__fail(ctx, ATTN_ERR_FORMAT, ".npy: the shape needs %zu bytes of data, the buffer has %zu", numel * 4, size - start - hlen);
        return NULL;
    }
    if (!(t = attn__result(ctx, ndim, dims, "attn_npy_parse"))) return NULL;
    if (!attn__data_on_host(ctx)) { /* converted here, then uploaded */
        attn_arena_pos mark = attn_arena_mark(&ctx->arena);
        float *host = (float *)attn_alloc(ctx, (numel ? numel : 1) * sizeof(float));
        int ok = host != NULL;
        for (i = 0; ok && i < numel; i++) host[i] = attn__get_f32le(b + start + hlen + 4 * i);
        ok = ok && !attn__tensor_from_host(ctx, t, host, "attn_npy_parse");
        attn_arena_reset(&ctx->arena, mark);
        return ok ? t : NULL;
    }
    for (i = 0; i < numel; i++) t->data[i] = attn__get_f32le(b + start + hlen + 4 * i);
    return t;
}

/* The .npy header text of t, padded so that the data starts 64-aligned. */
static size_t attn__npy_header(const attn_tensor *t, char *out, size_t cap) {
    attn__writer w;
    int d;
    w.p = (unsigned char *)out; w.n = 0; w.cap = cap;
    attn__w_str(&w, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (d = 0; d < t->ndim; d++) {
        if (d) attn__w_str(&w, ", ");
        attn__w_uint(&w, (uint64_t)t->shape[d]);
    }
    if (t->ndim == 1) attn__w_str(&w, ",");
    attn__w_str(&w, "), }");
    while ((10 + w.n + 1) % 64) attn__w_str(&w, " ");
    attn__w_str(&w, "\n");
    return w.n;
}

ATTN_API size_t attn_npy_bytes(const attn_tensor *t) {
    return t ? 10 + attn__npy_header(t, NULL, 0) + attn_tensor_numel(t) * 4 : 0;
}

ATTN_API attn_status attn_npy_write(attn_context *ctx, const attn_tensor *t, void *buf, size_t size) {
    unsigned char *b = (unsigned char *)buf;
    int index[ATTN_MAX_DIMS] = {0, 0, 0, 0};
    size_t hlen, i, n;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    if (!t) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_npy_write: tensor is NULL");
    if (!buf || size < attn_npy_bytes(t))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "attn_npy_write: the buffer has %zu bytes, %zu are needed", size, attn_npy_bytes(t));
    hlen = attn__npy_header(t, NULL, 0);
    if (hlen > 65535) return attn__fail(ctx, ATTN_ERR_UNSUPPORTED, "attn_npy_write: header too long");
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)hlen;
    b[9] = (unsigned char)(hlen >> 8);
    attn__npy_header(t, (char *)b + 10, hlen);
    n = attn_tensor_numel(t);
    if (!attn__data_on_host(ctx)) { /* downloaded first */
        attn_arena_pos mark = attn_arena_mark(&ctx->arena);
        const float *h = attn__tensor_to_host(ctx, t, "attn_npy_write");
        for (i = 0; h && i < n; i++) attn__put_f32le(b + 10 + hlen + 4 * i, h[i]);
        attn_arena_reset(&ctx->arena, mark);
        return h ? ATTN_OK : ctx->status;
    }
    for (i = 0; i < n; i++) { /* row-major, whatever t's strides */
        attn__put_f32le(b + 10 + hlen + 4 * i, t->data[attn__offset(t, index)]);
        attn__next_index(t, index);
    }
    return ATTN_OK;
}

#ifndef ATTN_NO_STDIO
/* The whole file into the arena; NULL (and an error) on failure. */
static unsigned char *attn__read_file(attn_context *ctx, const char *path, size_t *size) {
    FILE *f;
    long len;
    unsigned char *buf;
    if (!path) { attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "file path is NULL"); return NULL; }
    if (!(f = fopen(path, "rb"))) { attn__fail(ctx, ATTN_ERR_IO, "cannot open %s", path); return NULL; }
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        attn__fail(ctx, ATTN_ERR_IO, "cannot size %s", path);
        return NULL;
    }
    buf = (unsigned char *)attn_alloc(ctx, (size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        attn__fail(ctx, ATTN_ERR_IO, "cannot read %s", path);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}

static attn_status attn__write_file(attn_context *ctx, const char *path, const void *buf, size_t size) {
    FILE *f;
    int ok;
    if (!path) return attn__fail(ctx, ATTN_ERR_INVALID_ARGUMENT, "file path is NULL");
    if (!(f = fopen(path, "wb"))) return attn__fail(ctx, ATTN_ERR_IO, "cannot create %s", path);
    ok = fwrite(buf, 1, size, f) == size;
    ok &= fclose(f) == 0;
    return ok ? ATTN_OK : attn__fail(ctx, ATTN_ERR_IO, "cannot write %s", path);
}

ATTN_API attn_status attn_params_load_file(attn_context *ctx, const char *path, int strict) {
    attn_arena_pos mark;
    unsigned char *buf;
    size_t size;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    s = (buf = attn__read_file(ctx, path, &size)) ? attn_params_load(ctx, buf, size, strict) : ctx->status;
    attn_arena_reset(&ctx->arena, mark);
    return s;
}

ATTN_API attn_status attn_params_save_file(attn_context *ctx, const char *path) {
    attn_arena_pos mark;
    size_t size;
    unsigned char *buf;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    size = attn_params_save_bytes(ctx);
    s = (buf = (unsigned char *)attn_alloc(ctx, size)) ? attn_params_save(ctx, buf, size) : ctx->status;
    if (s == ATTN_OK) s = attn__write_file(ctx, path, buf, size);
    attn_arena_reset(&ctx->arena, mark);
    return s;
}

ATTN_API attn_tensor *attn_npy_load_file(attn_context *ctx, const char *path) {
    attn_arena_pos mark;
    unsigned char *buf;
    size_t size;
    attn_tensor *t, old, *nt;
    if (!ctx) return NULL;
    mark = attn_arena_mark(&ctx->arena);
    if (!(buf = attn__read_file(ctx, path, &size)) || !(t = attn_npy_parse(ctx, buf, size))) {
        attn_arena_reset(&ctx->arena, mark);
        return NULL;
    }
    /* Keep the tensor, not the file: reallocate it at the mark (below the old
       copy, so memmove moves it down safely) and drop the rest. */
    old = *t;
    attn_arena_reset(&ctx->arena, mark);
    nt = attn__result(ctx, old.ndim, old.shape, "attn_npy_load_file");
    /* in backend memory the data was the only thing after the mark: it stays put */
    if (nt && attn__data_on_host(ctx)) memmove(nt->data, old.data, attn_tensor_numel(&old) * sizeof(float));
    ATTN_ASSERT(!nt || attn__data_on_host(ctx) || nt->data == old.data);
    return nt;
}

ATTN_API attn_status attn_npy_save_file(attn_context *ctx, const attn_tensor *t, const char *path) {
    attn_arena_pos mark;
    size_t size;
    unsigned char *buf;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    size = attn_npy_bytes(t);
    s = (buf = (unsigned char *)attn_alloc(ctx, size)) ? attn_npy_write(ctx, t, buf, size) : ctx->status;
    if (s == ATTN_OK) s = attn__write_file(ctx, path, buf, size);
    attn_arena_reset(&ctx->arena, mark);
    return s;
}

ATTN_API attn_status attn_checkpoint_save_file(attn_context *ctx, const attn_optim *opt, const char *path) {
    attn_arena_pos mark;
    size_t size;
    unsigned char *buf;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    size = attn_checkpoint_bytes(ctx, opt);
    s = (buf = (unsigned char *)attn_alloc(ctx, size)) ? attn_checkpoint_save(ctx, opt, buf, size) : ctx->status;
    if (s == ATTN_OK) s = attn__write_file(ctx, path, buf, size);
    attn_arena_reset(&ctx->arena, mark);
    return s;
}

ATTN_API attn_status attn_checkpoint_load_file(attn_context *ctx, attn_optim *opt, const char *path) {
    attn_arena_pos mark;
    unsigned char *buf;
    size_t size;
    attn_status s;
    if (!ctx) return ATTN_ERR_INVALID_ARGUMENT;
    mark = attn_arena_mark(&ctx->arena);
    s = (buf = attn__read_file(ctx, path, &size)) ? attn_checkpoint_load(ctx, opt, buf, size) : ctx->status;
    attn_arena_reset(&ctx->arena, mark);
    return s;
}
#endif /* ATTN_NO_STDIO */

#endif /* ATTN_IMPLEMENTATION_DONE */
#endif /* ATTN_IMPLEMENTATION */

/*
   REVISIONS

   0.2.0 (2026-12-03)
     Renamed (one name per concept before 1.0; the old names are gone):
       attn_tensor_reshape    -> attn_reshape
       attn_tensor_transpose  -> attn_transpose
       attn_tensor_slice      -> attn_slice
       attn_arena_get_mark    -> attn_arena_mark
       attn_arena_mark (type) -> attn_arena_pos
       attn_mark (type)       -> attn_context_pos
       attn_params_save_size  -> attn_params_save_bytes
       attn_npy_size          -> attn_npy_bytes
       attn_checkpoint_size   -> attn_checkpoint_bytes
       Each view has one public name; it records a node only when a grad flows,
       and attn_detach gives a view that never records. attn_reshape of a
       non-contiguous tensor reshapes a (recorded) copy, where
       attn_tensor_reshape refused it. Marks share a verb (attn_arena_mark,
       attn_context_mark), return a *_pos that attn_arena_reset /
       attn_context_reset take; size queries end in _bytes, like
       attn_tensor_bytes.
     Changed:
       attn_backend_cpu() returns the table by value, and a context copies the
         table it is given:  attn_backend cpu = attn_backend_cpu();
                             desc.backend = &cpu;
       The backend table's sum takes a double divide_by, and add_scalar's float
         is a divide_by (it was a multiplier).
       ATTN_BE_SCALE, _RELU, _GELU, _TANH are 3..6 (they shared 0..3 with
         ATTN_BE_ADD, _SUB, _MUL).
       attn_backend_update.kind is an attn_optim_kind (ATTN_OPTIM_SGD, ...).
       Sections renumbered: Backends is section 5, Tensors 6, Autodiff 7,
         Layers 8, Training 9, Files 10.
     New:
       An AVX-512 kernel set (ATTN_SIMD_AVX512), chosen at run time where the
         CPU has AVX-512 F/DQ/BW/VL and the OS saves the zmm state; the
         environment variable ATTN_SIMD=avx2|none caps the choice and
         ATTN_NO_AVX512 compiles the set out.
       attn_backend_missing(be): the first entry a backend table lacks.
       attn_threads_create / attn_threads_destroy: the library's thread pool.

   0.1.0
     First release.
*/

/*
   LICENSE: choose either.
   MIT: Copyright (c) 2026 the attn.h authors. Permission is hereby granted, free
   of charge, to any person obtaining a copy of this software, to deal in it
   without restriction, including the rights to use, copy, modify, merge,
   publish, distribute, sublicense and/or sell copies, subject to keeping this
   notice. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
   Public domain (unlicense): anyone may use this file for any purpose,
   commercial or not, in any form, with no conditions.
*/
