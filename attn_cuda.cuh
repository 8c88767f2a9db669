/* attn_cuda.cuh - the CUDA backend of attn.h (section 5's table on a GPU).

   Include it after attn.h. In exactly one .cu file:

       #define ATTN_IMPLEMENTATION
       #include "attn.h"
       #define ATTN_CUDA_IMPLEMENTATION
       #include "attn_cuda.cuh"

   then:

       attn_backend *gpu;
       char why[256];
       if (attn_cuda_create(NULL, &gpu, why, sizeof why) != ATTN_OK) puts(why);  // no GPU: say so
       attn_context_desc d = {0};
       d.backend = gpu;  d.backend_memory = (size_t)4 << 30;  // the context's GPU memory
       attn_context *ctx = attn_context_create(&d);
       ... the same model code as on the CPU; attn_tensor_upload/download move data ...
       attn_context_destroy(ctx);
       attn_cuda_destroy(gpu);

   The host API is extern "C" with no CUDA types, so a C program can call it
   from an object file that nvcc compiled. Kernels: a tiled SGEMM (FP32 CUDA
   cores, or TF32 tensor cores with FP32 accumulation on sm_80 and newer),
   flash attention forward and backward, softmax, LayerNorm/RMSNorm, GELU,
   cross-entropy, the optimizers, embedding, and the elementwise ops. All run
   in order on one stream that the backend owns. */
#ifndef ATTN_CUDA_H_INCLUDED
#define ATTN_CUDA_H_INCLUDED

#ifndef ATTN_H_INCLUDED
#  error "attn_cuda.cuh: include attn.h first"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_cuda_precision {
    ATTN_CUDA_TF32 = 0, /* GEMMs on TF32 tensor cores, FP32 accumulation (sm_80+; FP32 below) */
    ATTN_CUDA_FP32 = 1  /* GEMMs in FP32 on the CUDA cores */
} attn_cuda_precision;

typedef struct attn_cuda_desc {
    int device;                    /* CUDA device ordinal */
    attn_cuda_precision precision;
} attn_cuda_desc;

/* A CUDA backend on desc->device (desc NULL: device 0, TF32). On failure *out
   is NULL and msg (cap bytes, may be NULL) says why: ATTN_ERR_UNSUPPORTED when
   there is no usable GPU or driver (a skip, for tests), another status for
   anything else. */
ATTN_API attn_status attn_cuda_create(const attn_cuda_desc *desc, attn_backend **out, char *msg, size_t cap);
/* Free the backend (after every context that uses it). NULL is fine. */
ATTN_API void attn_cuda_destroy(attn_backend *backend);
/* The device's name and compute capability ("NVIDIA H100 80GB HBM3, sm_90"). */
ATTN_API const char *attn_cuda_device_name(const attn_backend *backend);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_CUDA_H_INCLUDED */

#ifdef ATTN_CUDA_IMPLEMENTATION
#ifndef ATTN_CUDA_IMPLEMENTATION_DONE
#define ATTN_CUDA_IMPLEMENTATION_DONE
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

/* The backend's state; user of every table entry. */
typedef struct attn__cuda {
    attn_backend table;
    int device, sm;              /* sm: compute capability major * 10 + minor */
    int precision;               /* attn_cuda_precision */
    int sm_count;
    cudaStream_t stream;
    char name[300];              /* "<device name>, sm_XX" */
    char message[256];           /* last error */
    void *scratch;               /* grown on demand by attn__cuda_scratch */
    size_t scratch_bytes;
    /* launch choices made once per backend (its device), not in globals */
    signed char gemm_tc_known, gemm_tc_stages128, gemm_tc_stages256; /* TF32 GEMM set-up */
    signed char att_choice[3][3];   /* attention [kind][head-dim bucket]: 0 not yet, 1 reload, 2 resident */
    int att_no_resident;            /* tests: force the reloading attention kernels */
} attn__cuda;

/* ATTN_OK, or the CUDA error as a status with its message kept. */
static attn_status attn__cuda_fail(attn__cuda *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return ATTN_OK;
    snprintf(c->message, sizeof c->message, "cuda: %s: %s", what, cudaGetErrorString(e));
    (void)cudaGetLastError(); /* clear a non-sticky error */
    return e == cudaErrorMemoryAllocation ? ATTN_ERR_OUT_OF_MEMORY : ATTN_ERR_UNSUPPORTED;
}

/* After a launch: a bad configuration shows up here, a fault later at a sync. */
static attn_status attn__cuda_launched(attn__cuda *c, const char *what) {
    return attn__cuda_fail(c, cudaGetLastError(), what);
}

static attn_status attn__cuda_bad(attn__cuda *c, const char *what) {
    snprintf(c->message, sizeof c->message, "cuda: %s", what);
    return ATTN_ERR_INVALID_ARGUMENT;
}

/* At least bytes of device scratch (kept for the next call; stream-ordered). */
static void *attn__cuda_scratch(attn__cuda *c, size_t bytes) {
    if (bytes > c->scratch_bytes) {
        if (c->scratch) {
            cudaStreamSynchronize(c->stream);
            cudaFree(c->scratch);
        }
        c->scratch = NULL;
        c->scratch_bytes = 0;
        if (cudaMalloc(&c->scratch, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(c->message, sizeof c->message, "cuda: out of memory for %zu bytes of scratch", bytes);
            return NULL;
        }
        c->scratch_bytes = bytes;
    }
    return c->scratch;
}
/* ---- GEMM: the table's gemm entry ----
   C = alpha op(A) op(B) + beta C, row-major as attn_sgemm, for `batch`
   matrices at element strides sA, sB, sC. Two kernels:
   - attn__cuda_gemm_simt: FP32 on the CUDA cores. 128x128 block tile, 8x8
     outputs per thread, K-tile 8, register-staged double buffer.
   - attn__cuda_gemm_tf32<AK, BK, BM>: TF32 tensor cores (mma.sync m16n8k8,
     inputs rounded with cvt.rna, FP32 accumulation), sm_80+. Block tile
     BM x 128 x 32 (BM 256: 8 warps, or 128: 4 warps, for small problems),
     warp tile 64 x 64 (4 KB of fragment reads per 32 mma, which shared
     memory's 128 B/clock sustains at the H100's full mma rate; 64 x 32 would
     need 1.5x that), 2-4 stage cp.async pipeline (as many as fit). AK/BK
     say whether A/B have k contiguous in memory; each operand keeps its
     memory layout in shared memory (cp.async cannot transpose), and the
     fragment loads differ:
       k contiguous  -> smem [mn][32], 16-byte chunks XOR-swizzled by row&7,
                        fragments by ldmatrix.x4 (b16 pairs = one tf32).
       mn contiguous -> smem [k][mn], chunks XOR-swizzled by (k&3)<<1,
                        fragments by LDS.64 (A) / LDS.128 (B). To make those
                        vector loads possible the fragment rows/cols are a
                        permutation of the tile's rows/cols (any permutation
                        of m or n is fine as long as C is written with the
                        same one); see attn__cuda_tc_row/col.
     All smem reads and cp.async writes are bank-conflict free.
   Both kernels zero-fill outside the matrices, so any size, leading
   dimension and alignment works; vector loads only where aligned. */

/* Everything the kernels need, passed by value. */
typedef struct attn__cuda_gemm_args {
    const float *A, *B;
    float *C;
    long long sA, sB, sC;
    int M, N, K, lda, ldb, ldc, batch, transA, transB;
    int vecA, vecB, vecC; /* 16-byte loads/stores are aligned for every row of every matrix */
    int tiles_m, tiles_n;
    int stages; /* TF32 pipeline depth, 2..4; 0: FP32 */
    float alpha, beta;
} attn__cuda_gemm_args;

/* Shared memory of one TF32 pipeline stage: A (BM x 32) and B (128 x 32) floats. */
#define ATTN__CUDA_TC_STAGE_BYTES(BM) (((BM) + 128) * 32 * (int)sizeof(float))

/* Tile (tm, tn) of the block's id: groups of 8 tile rows walked column by
   column, so the blocks resident at once share rows of A and columns of B in L2. */
static __device__ __forceinline__ void attn__cuda_gemm_tile(long long id, int tiles_m, int tiles_n, int *tm,
                                                            int *tn) {
    long long per_group = 8LL * tiles_n, grp = id / per_group;
    int first = (int)(grp * 8), rows = min(tiles_m - first, 8), in = (int)(id - grp * per_group);
    *tm = first + in % rows;
    *tn = in / rows;
}

/* ---- FP32 SIMT kernel ---- */

/* 4 floats of an 8 (k) x 128 (mn) tile into r, zeros outside the matrix. kc: k
   is contiguous in memory (thread: mn = tid/2, k = (tid&1)*4 + e); else mn is
   (k = tid/32, mn = (tid&31)*4 + e). Loads run along memory either way. */
static __device__ __forceinline__ void attn__cuda_sg_fetch(float *r, const float *X, int ld, int kc, int mn0, int k0,
                                                           int MN, int K, int vec, int tid) {
    int row, col, rowlim, collim, e;
    if (kc) { row = mn0 + (tid >> 1); col = k0 + (tid & 1) * 4; rowlim = MN; collim = K; }
    else    { row = k0 + (tid >> 5); col = mn0 + (tid & 31) * 4; rowlim = K; collim = MN; }
    if (row >= rowlim) { r[0] = r[1] = r[2] = r[3] = 0.0f; return; }
    const float *s = X + (long long)row * ld + col;
    if (vec && col + 3 < collim) {
        float4 v = __ldg((const float4 *)s);
        r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        return;
    }
#pragma unroll
    for (e = 0; e < 4; e++) r[e] = col + e < collim ? __ldg(s + e) : 0.0f;
}

/* r into shared S[k][mn] (rows of 132: the k-contiguous case writes columns,
   and the pad of 4 puts its two half-warps on different banks). */
static __device__ __forceinline__ void attn__cuda_sg_put(float (*S)[132], const float *r, int kc, int tid) {
    if (kc) {
        int mn = tid >> 1, k = (tid & 1) * 4;
        S[k][mn] = r[0]; S[k + 1][mn] = r[1]; S[k + 2][mn] = r[2]; S[k + 3][mn] = r[3];
    } else {
        *(float4 *)&S[tid >> 5][(tid & 31) * 4] = make_float4(r[0], r[1], r[2], r[3]);
    }
}

/* 4 outputs of row r at columns col.. into C, guarded. */
static __device__ __forceinline__ void attn__cuda_gemm_put4(float *Crow, int col, int N, int vec, const float *v,
                                                            float alpha, float beta) {
    int e;
    if (vec && col + 3 < N) {
        float4 o = make_float4(alpha * v[0], alpha * v[1], alpha * v[2], alpha * v[3]);
        if (beta != 0.0f) { /* beta 0 never reads C */
            float4 c = *(const float4 *)(Crow + col);
            o.x += beta * c.x; o.y += beta * c.y; o.z += beta * c.z; o.w += beta * c.w;
        }
        *(float4 *)(Crow + col) = o;
        return;
    }
#pragma unroll
    for (e = 0; e < 4; e++)
        if (col + e < N) Crow[col + e] = beta != 0.0f ? alpha * v[e] + beta * Crow[col + e] : alpha * v[e];
}

static __global__ void __launch_bounds__(256, 2) attn__cuda_gemm_simt(attn__cuda_gemm_args p) {
    __shared__ __align__(16) float As[2][8][132], Bs[2][8][132];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int akc = !p.transA, bkc = p.transB; /* is k the contiguous dim of A / B */
    const int ktiles = p.K > 0 ? ((p.K - 1) >> 3) + 1 : 0;
    const long long tiles = (long long)p.tiles_m * p.tiles_n;
    for (int b = blockIdx.z; b < p.batch; b += gridDim.z) {
        const float *A = p.A + b * p.sA, *B = p.B + b * p.sB;
        float *C = p.C + b * p.sC;
        for (long long id = blockIdx.x; id < tiles; id += gridDim.x) {
            int tm, tn, kt, buf = 0, i, j, k;
            float acc[8][8], ra[4], rb[4];
            attn__cuda_gemm_tile(id, p.tiles_m, p.tiles_n, &tm, &tn);
            const int m0 = tm * 128, n0 = tn * 128;
#pragma unroll
            for (i = 0; i < 8; i++)
#pragma unroll
                for (j = 0; j < 8; j++) acc[i][j] = 0.0f;
            if (ktiles > 0) {
                attn__cuda_sg_fetch(ra, A, p.lda, akc, m0, 0, p.M, p.K, p.vecA, tid);
                attn__cuda_sg_fetch(rb, B, p.ldb, bkc, n0, 0, p.N, p.K, p.vecB, tid);
                attn__cuda_sg_put(As[0], ra, akc, tid);
                attn__cuda_sg_put(Bs[0], rb, bkc, tid);
            }
            __syncthreads();
            for (kt = 0; kt < ktiles; kt++) {
                /* the next tile's global loads are in flight while this one computes */
                if (kt + 1 < ktiles) {
                    attn__cuda_sg_fetch(ra, A, p.lda, akc, m0, (kt + 1) * 8, p.M, p.K, p.vecA, tid);
                    attn__cuda_sg_fetch(rb, B, p.ldb, bkc, n0, (kt + 1) * 8, p.N, p.K, p.vecB, tid);
                }
#pragma unroll
                for (k = 0; k < 8; k++) {
                    /* rows ty*4.. and 64+ty*4.., columns tx*4.. and 64+tx*4..: float4 reads, no conflicts */
                    float4 a0 = *(const float4 *)&As[buf][k][ty * 4], a1 = *(const float4 *)&As[buf][k][64 + ty * 4];
                    float4 b0 = *(const float4 *)&Bs[buf][k][tx * 4], b1 = *(const float4 *)&Bs[buf][k][64 + tx * 4];
                    float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                    float bb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                    for (i = 0; i < 8; i++)
#pragma unroll
                        for (j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], bb[j], acc[i][j]);
                }
                /* the other buffer was last read before the previous barrier */
                if (kt + 1 < ktiles) {
                    attn__cuda_sg_put(As[buf ^ 1], ra, akc, tid);
                    attn__cuda_sg_put(Bs[buf ^ 1], rb, bkc, tid);
                }
                __syncthreads();
                buf ^= 1;
            }
#pragma unroll
            for (i = 0; i < 8; i++) {
                int r = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
                if (r >= p.M) continue;
                float *Crow = C + (long long)r * p.ldc;
                attn__cuda_gemm_put4(Crow, n0 + tx * 4, p.N, p.vecC, acc[i], p.alpha, p.beta);
                attn__cuda_gemm_put4(Crow, n0 + 64 + tx * 4, p.N, p.vecC, acc[i] + 4, p.alpha, p.beta);
            }
        }
    }
}

/* ---- TF32 tensor-core kernel (sm_80+) ---- */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#  define ATTN__CUDA_TC_BUILD 1
#endif

#ifdef ATTN__CUDA_TC_BUILD
/* 16 bytes global -> shared, the last 16 - bytes zero-filled (bytes 0: nothing is read). */
static __device__ __forceinline__ void attn__cuda_cp16(unsigned dst, const float *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
/* 4 bytes, for rows that are not 16-byte aligned. */
static __device__ __forceinline__ void attn__cuda_cp4(unsigned dst, const float *src, int bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void attn__cuda_cp_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/* Wait until at most n (0..2, uniform) groups of this thread are pending. */
static __device__ __forceinline__ void attn__cuda_cp_wait(int n) {
    if (n >= 2) asm volatile("cp.async.wait_group 2;\n" ::: "memory");
    else if (n == 1) asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    else asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

static __device__ __forceinline__ void attn__cuda_ldsm4(unsigned *r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
/* FP32 bits -> TF32, rounded to nearest (ties away), as cuBLAS does. */
static __device__ __forceinline__ unsigned attn__cuda_tf32(unsigned x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(x)));
    return r;
}
static __device__ __forceinline__ void attn__cuda_mma(float *d, const unsigned *a, const unsigned *b) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* One operand's 32-deep k-tile (W = BM or 128 wide in mn) into a stage:
   8 W 16-byte chunks, NT threads, consecutive threads along memory.
   KC (k contiguous): smem [W][32], chunk c of row r at c ^ (r & 7); else
   smem [32][W], chunk c of row r at c ^ ((r & 3) << 1). Outside the
   matrix: zeros. */
template <int KC, int W, int NT>
static __device__ __forceinline__ void attn__cuda_tc_load(unsigned sdst, const float *X, int ld, int mn0, int k0,
                                                          int MN, int K, int vec, int tid) {
#pragma unroll
    for (int i = 0; i < 8 * W / NT; i++) {
        int c = tid + i * NT, row, cc, grow, gcol, rowlim, collim, n, soff;
        if (KC) {
            row = c >> 3; cc = c & 7;
            grow = mn0 + row; gcol = k0 + cc * 4; rowlim = MN; collim = K;
            soff = row * 32 + ((cc ^ (row & 7)) << 2);
        } else {
            row = c / (W / 4); cc = c % (W / 4);
            grow = k0 + row; gcol = mn0 + cc * 4; rowlim = K; collim = MN;
            soff = row * W + ((cc ^ ((row & 3) << 1)) << 2);
        }
        n = grow < rowlim ? min(max(collim - gcol, 0), 4) : 0; /* floats in the matrix */
        const float *src = n > 0 ? X + (long long)grow * ld + gcol : X;
        unsigned dst = sdst + (unsigned)soff * 4u;
        if (vec) {
            attn__cuda_cp16(dst, src, n * 4);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) attn__cuda_cp4(dst + 4u * e, e < n ? src + e : X, e < n ? 4 : 0);
        }
    }
}
#endif

/* Where fragment row (m-tile mt, half h: rows g / g+8) and column (n-tile nt,
   j: cols 2t / 2t+1) of a warp's 64x64 tile are in it: identity when the
   operand is read by ldmatrix, else the permutation that made its vector
   loads possible (A: rows g, g+8 -> 2g, 2g+1 of the m-tile; B: col x of
   n-tile nt -> 4x + nt%4 of the half nt/4). */
#define attn__cuda_tc_row(AK, mt, h, g) ((AK) ? 16 * (mt) + 8 * (h) + (g) : 16 * (mt) + 2 * (g) + (h))
#define attn__cuda_tc_col(BK, nt, j, t) \
    ((BK) ? 8 * (nt) + 2 * (t) + (j) : 32 * ((nt) >> 2) + 8 * (t) + 4 * (j) + ((nt) & 3))

template <int AK, int BK, int BM>
static __global__ void __launch_bounds__(BM, 1) attn__cuda_gemm_tf32(attn__cuda_gemm_args p) {
#ifdef ATTN__CUDA_TC_BUILD
    enum { NT = BM, A_FLOATS = BM * 32, STAGE_FLOATS = (BM + 128) * 32 };
    extern __shared__ float4 attn__cuda_gemm_smem[]; /* stages x (A tile, B tile) */
    float *smem = (float *)attn__cuda_gemm_smem;
    const unsigned sbase = (unsigned)__cvta_generic_to_shared(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 64, wn = (warp & 1) * 64; /* BM/64 x 2 warps of 64 x 64 */
    const int stages = p.stages;
    const int ktiles = p.K > 0 ? ((p.K - 1) >> 5) + 1 : 0;
    const long long tiles = (long long)p.tiles_m * p.tiles_n;
    /* Per-thread fragment addresses within a stage; the k step s adds constants.
       ldmatrix (bytes): lane l gives row l&7 of matrix l>>3; A's matrices are
       (rows 0-7 | 8-15) x (k 0-3 | 4-7) = a0..a3, B's (k 0-3 | 4-7) x (n-tile
       2q | 2q+1). Step s moves chunk c = 2s + hi to c ^ r = (hi ^ r) ^ 2s, an
       XOR of s << 5 on 128-byte rows. */
    const int r8 = lane & 7;
    const unsigned a_ldsm = (unsigned)(wm + r8 + ((lane >> 3) & 1) * 8) * 128u + (unsigned)(((lane >> 4) ^ r8) << 4);
    const unsigned b_ldsm = (unsigned)A_FLOATS * 4u + (unsigned)(wn + r8 + (lane >> 4) * 8) * 128u +
                            (unsigned)((((lane >> 3) & 1) ^ r8) << 4);
    /* LDS paths (floats): k = t (+ 8s, + 4), whose swizzle (k&3)<<1 = 2t */
    const int b_lds = A_FLOATS + t * 128 + ((((wn >> 2) + g) ^ (2 * t)) << 2);
    int a_lds[4];
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
        a_lds[mt] = t * BM + ((((wm >> 2) + 4 * mt + (g >> 1)) ^ (2 * t)) << 2) + 2 * (g & 1);

    for (int b = blockIdx.z; b < p.batch; b += gridDim.z) {
        const float *A = p.A + b * p.sA, *B = p.B + b * p.sB;
        float *C = p.C + b * p.sC;
        for (long long id = blockIdx.x; id < tiles; id += gridDim.x) {
            int tm, tn;
            float acc[4][8][4];
            attn__cuda_gemm_tile(id, p.tiles_m, p.tiles_n, &tm, &tn);
            const int m0 = tm * BM, n0 = tn * 128;
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

            /* prologue: tiles 0 .. stages-2 in flight; one group per tile, empty or not */
            for (int s = 0; s < stages - 1; s++) {
                if (s < ktiles) {
                    unsigned st = sbase + (unsigned)(s * STAGE_FLOATS) * 4u;
                    attn__cuda_tc_load<AK, BM, NT>(st, A, p.lda, m0, s * 32, p.M, p.K, p.vecA, tid);
                    attn__cuda_tc_load<BK, 128, NT>(st + A_FLOATS * 4u, B, p.ldb, n0, s * 32, p.N, p.K, p.vecB, tid);
                }
                attn__cuda_cp_commit();
            }
            int rs = 0, ws = stages - 1;
            for (int kt = 0; kt < ktiles; kt++) {
                attn__cuda_cp_wait(stages - 2); /* this thread's part of tile kt landed */
                __syncthreads(); /* everyone's part landed, and everyone is done with tile kt-1's stage (= ws) */
                {
                    int nk = kt + stages - 1;
                    if (nk < ktiles) {
                        unsigned st = sbase + (unsigned)(ws * STAGE_FLOATS) * 4u;
                        attn__cuda_tc_load<AK, BM, NT>(st, A, p.lda, m0, nk * 32, p.M, p.K, p.vecA, tid);
                        attn__cuda_tc_load<BK, 128, NT>(st + A_FLOATS * 4u, B, p.ldb, n0, nk * 32, p.N, p.K, p.vecB,
                                                        tid);
                    }
                    attn__cuda_cp_commit();
                }
                const unsigned sst = sbase + (unsigned)(rs * STAGE_FLOATS) * 4u;
                const float *fst = smem + rs * STAGE_FLOATS;
#pragma unroll
                for (int s = 0; s < 4; s++) { /* k8 steps of the 32-deep tile */
                    unsigned af[4][4], bf[8][2];
                    if (AK) {
#pragma unroll
                        for (int mt = 0; mt < 4; mt++)
                            attn__cuda_ldsm4(af[mt], sst + (a_ldsm ^ (unsigned)(s << 5)) + mt * 2048u);
                    } else {
#pragma unroll
                        for (int mt = 0; mt < 4; mt++) {
                            float2 lo = *(const float2 *)(fst + a_lds[mt] + s * 8 * BM);          /* k = 8s + t */
                            float2 hi = *(const float2 *)(fst + a_lds[mt] + s * 8 * BM + 4 * BM); /* k = 8s + t + 4 */
                            af[mt][0] = __float_as_uint(lo.x); af[mt][1] = __float_as_uint(lo.y);
                            af[mt][2] = __float_as_uint(hi.x); af[mt][3] = __float_as_uint(hi.y);
                        }
                    }
                    if (BK) {
#pragma unroll
                        for (int q = 0; q < 4; q++) {
                            unsigned r[4];
                            attn__cuda_ldsm4(r, sst + (b_ldsm ^ (unsigned)(s << 5)) + q * 2048u);
                            bf[2 * q][0] = r[0]; bf[2 * q][1] = r[1];
                            bf[2 * q + 1][0] = r[2]; bf[2 * q + 1][1] = r[3];
                        }
                    } else {
#pragma unroll
                        for (int half = 0; half < 2; half++) { /* n-tiles 4 half .. 4 half + 3 */
                            float4 lo = *(const float4 *)(fst + b_lds + half * 32 + s * 1024);
                            float4 hi = *(const float4 *)(fst + b_lds + half * 32 + s * 1024 + 512);
                            bf[4 * half + 0][0] = __float_as_uint(lo.x); bf[4 * half + 1][0] = __float_as_uint(lo.y);
                            bf[4 * half + 2][0] = __float_as_uint(lo.z); bf[4 * half + 3][0] = __float_as_uint(lo.w);
                            bf[4 * half + 0][1] = __float_as_uint(hi.x); bf[4 * half + 1][1] = __float_as_uint(hi.y);
                            bf[4 * half + 2][1] = __float_as_uint(hi.z); bf[4 * half + 3][1] = __float_as_uint(hi.w);
                        }
                    }
#pragma unroll
                    for (int mt = 0; mt < 4; mt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) af[mt][e] = attn__cuda_tf32(af[mt][e]);
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        bf[nt][0] = attn__cuda_tf32(bf[nt][0]);
                        bf[nt][1] = attn__cuda_tf32(bf[nt][1]);
                    }
#pragma unroll
                    for (int mt = 0; mt < 4; mt++)
#pragma unroll
                        for (int nt = 0; nt < 8; nt++) attn__cuda_mma(acc[mt][nt], af[mt], bf[nt]);
                }
                rs = rs + 1 == stages ? 0 : rs + 1;
                ws = ws + 1 == stages ? 0 : ws + 1;
            }
            attn__cuda_cp_wait(0); /* only empty groups remain; the next tile's prologue reuses the stages */
            __syncthreads();

            /* epilogue: c0,c1 = (row g, cols 2t, 2t+1), c2,c3 = (row g+8, ...), mapped as above */
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    int r = m0 + wm + attn__cuda_tc_row(AK, mt, h, g);
                    if (r >= p.M) continue;
                    float *Crow = C + (long long)r * p.ldc;
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int j = 0; j < 2; j++) {
                            int col = n0 + wn + attn__cuda_tc_col(BK, nt, j, t);
                            float v = p.alpha * acc[mt][nt][2 * h + j];
                            if (col < p.N) Crow[col] = p.beta != 0.0f ? v + p.beta * Crow[col] : v;
                        }
                }
        }
    }
#else
    (void)p; /* built for an architecture without TF32 mma: never launched (attn__cuda_gemm_tc_setup) */
#endif
}

/* The TF32 kernels' pipeline depth on c's device for BM 128 and 256 (0: not
   usable), set up once per device: they need code built for sm_80+ (not a
   JIT of older PTX, whose kernel bodies are empty) and their dynamic shared
   memory granted. BM 128 stops at 3 stages (96 KiB), which lets two blocks
   share an H100 SM; BM 256 takes 4 (192 KiB) or 3 where they fit, else none. */
typedef struct attn__cuda_gemm_tc_cfg {
    signed char known, stages128, stages256;
} attn__cuda_gemm_tc_cfg;

static attn__cuda_gemm_tc_cfg attn__cuda_gemm_tc_setup(attn__cuda *c) {
    attn__cuda_gemm_tc_cfg cfg = {1, 0, 0};
    cudaFuncAttributes fa;
    int optin = 0, ok;
    if (c->sm < 80) return cfg;
    if (c->gemm_tc_known) {
        cfg.stages128 = c->gemm_tc_stages128;
        cfg.stages256 = c->gemm_tc_stages256;
        return cfg;
    }
    ok = cudaFuncGetAttributes(&fa, attn__cuda_gemm_tf32<0, 0, 128>) == cudaSuccess && fa.ptxVersion >= 80 &&
         cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device) == cudaSuccess;
    if (ok) {
        int s128 = optin / ATTN__CUDA_TC_STAGE_BYTES(128), s256 = optin / ATTN__CUDA_TC_STAGE_BYTES(256);
        cfg.stages128 = (signed char)(s128 > 3 ? 3 : s128 < 2 ? 0 : s128);
        cfg.stages256 = (signed char)(s256 > 4 ? 4 : s256 < 3 ? 0 : s256); /* 2 stages: rather BM 128 with 3 */
#define ATTN__CUDA_TC_ATTR(ak, bk, bm, st)                                                                      \
    if ((st) && (cudaFuncSetAttribute(attn__cuda_gemm_tf32<ak, bk, bm>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                      (st) * ATTN__CUDA_TC_STAGE_BYTES(bm)) != cudaSuccess ||                  \
                 cudaFuncSetAttribute(attn__cuda_gemm_tf32<ak, bk, bm>,                                        \
                                      cudaFuncAttributePreferredSharedMemoryCarveout,                          \
                                      (int)cudaSharedmemCarveoutMaxShared) != cudaSuccess))                    \
        st = 0
        ATTN__CUDA_TC_ATTR(0, 0, 128, cfg.stages128);
        ATTN__CUDA_TC_ATTR(0, 1, 128, cfg.stages128);
        ATTN__CUDA_TC_ATTR(1, 0, 128, cfg.stages128);
        ATTN__CUDA_TC_ATTR(1, 1, 128, cfg.stages128);
        ATTN__CUDA_TC_ATTR(0, 0, 256, cfg.stages256);
        ATTN__CUDA_TC_ATTR(0, 1, 256, cfg.stages256);
        ATTN__CUDA_TC_ATTR(1, 0, 256, cfg.stages256);
        ATTN__CUDA_TC_ATTR(1, 1, 256, cfg.stages256);
#undef ATTN__CUDA_TC_ATTR
    }
    (void)cudaGetLastError(); /* a refusal above is an answer, not an error to report later */
    c->gemm_tc_known = 1;
    c->gemm_tc_stages128 = cfg.stages128;
    c->gemm_tc_stages256 = cfg.stages256;
    return cfg;
}

/* 16-byte vector access is aligned for every row of every matrix. */
static int attn__cuda_gemm_vec(const void *X, int ld, ptrdiff_t stride, int batch) {
    return ((uintptr_t)X & 15) == 0 && ld % 4 == 0 && (batch == 1 || stride % 4 == 0);
}

static attn_status attn__cuda_gemm(void *user, int transA, int transB, int M, int N, int K, float alpha,
                                   const float *A, int lda, ptrdiff_t sA, const float *B, int ldb, ptrdiff_t sB,
                                   float beta, float *C, int ldc, ptrdiff_t sC, int batch) {
    attn__cuda *c = (attn__cuda *)user;
    attn__cuda_gemm_args p;
    attn__cuda_gemm_tc_cfg cfg = {0, 0, 0};
    long long tiles;
    unsigned gz = (unsigned)(batch < 65535 ? batch : 65535);
    int a_width = transA ? M : K, b_width = transB ? K : N, i, bm = 128;
    if ((transA != 0 && transA != 1) || (transB != 0 && transB != 1))
        return attn__cuda_bad(c, "gemm: transA and transB must be 0 or 1");
    if (M < 0 || N < 0 || K < 0 || batch < 0) return attn__cuda_bad(c, "gemm: negative size or batch");
    if (lda < (a_width > 1 ? a_width : 1) || ldb < (b_width > 1 ? b_width : 1) || ldc < (N > 1 ? N : 1))
        return attn__cuda_bad(c, "gemm: a leading dimension is below its matrix's width");
    if (!M || !N || !batch) return ATTN_OK;
    if (!C || (K && (!A || !B))) return attn__cuda_bad(c, "gemm: NULL matrix");
    if (sC == 0 && batch > 1) { /* every product lands on one C: in order, as a loop of attn_sgemm would */
        for (i = 0; i < batch; i++) {
            attn_status s = attn__cuda_gemm(user, transA, transB, M, N, K, alpha, K ? A + i * sA : A, lda, 0,
                                            K ? B + i * sB : B, ldb, 0, beta, C, ldc, 0, 1);
            if (s) return s;
        }
        return ATTN_OK;
    }
    p.A = A; p.B = B; p.C = C;
    p.sA = sA; p.sB = sB; p.sC = sC;
    p.M = M; p.N = N; p.K = K; p.lda = lda; p.ldb = ldb; p.ldc = ldc; p.batch = batch;
    p.transA = transA; p.transB = transB;
    p.vecA = K && attn__cuda_gemm_vec(A, lda, sA, batch);
    p.vecB = K && attn__cuda_gemm_vec(B, ldb, sB, batch);
    p.vecC = attn__cuda_gemm_vec(C, ldc, sC, batch);
    p.tiles_n = (N - 1) / 128 + 1; /* N + 127 could overflow */
    p.alpha = K ? alpha : 0.0f;    /* K 0: C = beta C exactly, even for an infinite alpha */
    p.beta = beta;
    p.stages = 0;
    if (K && c->precision == ATTN_CUDA_TF32) cfg = attn__cuda_gemm_tc_setup(c);
    if (cfg.stages256 && ((long long)((M - 1) / 256 + 1) * p.tiles_n * batch >= c->sm_count || !cfg.stages128)) {
        bm = 256; /* enough 256-row tiles to fill the GPU: the bigger tile needs less L2 bandwidth */
        p.stages = cfg.stages256;
    } else if (cfg.stages128) {
        p.stages = cfg.stages128;
    }
    p.tiles_m = (M - 1) / bm + 1;
    tiles = (long long)p.tiles_m * p.tiles_n;
    {
        dim3 grid((unsigned)(tiles < 0x7fffffffLL ? tiles : 0x7fffffffLL), 1, gz);
        size_t smem = (size_t)p.stages * ATTN__CUDA_TC_STAGE_BYTES(bm);
        switch (p.stages ? (!transA) * 4 + transB * 2 + (bm == 256) : -1) { /* <A k-contiguous, B k-contiguous, BM> */
        case 0: attn__cuda_gemm_tf32<0, 0, 128><<<grid, 128, smem, c->stream>>>(p); break;
        case 1: attn__cuda_gemm_tf32<0, 0, 256><<<grid, 256, smem, c->stream>>>(p); break;
        case 2: attn__cuda_gemm_tf32<0, 1, 128><<<grid, 128, smem, c->stream>>>(p); break;
        case 3: attn__cuda_gemm_tf32<0, 1, 256><<<grid, 256, smem, c->stream>>>(p); break;
        case 4: attn__cuda_gemm_tf32<1, 0, 128><<<grid, 128, smem, c->stream>>>(p); break;
        case 5: attn__cuda_gemm_tf32<1, 0, 256><<<grid, 256, smem, c->stream>>>(p); break;
        case 6: attn__cuda_gemm_tf32<1, 1, 128><<<grid, 128, smem, c->stream>>>(p); break;
        case 7: attn__cuda_gemm_tf32<1, 1, 256><<<grid, 256, smem, c->stream>>>(p); break;
        default: attn__cuda_gemm_simt<<<grid, 256, 0, c->stream>>>(p); break; /* FP32, or no TF32 here */
        }
    }
    return attn__cuda_launched(c, "gemm");
}
/* cuda_attention.cuh - fused attention on the GPU: the attention and
   attention_backward entries of the CUDA backend (part of attn_cuda.cuh's
   implementation; include after cuda_core.cuh).

   Semantics are attn_attention_forward / attn_attention_backward's exactly
   (same defaults, masks, dropout hash and cell index, NaN for a query that
   sees no key, lse -inf there); only the summation order differs.

   Flash-attention-2 style in FP32 on the CUDA cores. A block of 256 threads
   owns a 64-row tile and walks the other side in 64-wide tiles; every 64 x 64
   product is a sum over 64-wide chunks of the head dim through shared memory
   (so any head dim 1..256 works with the same 17 KB operand tiles); each
   thread owns a 4 x 4 piece of the score tile and the matching 4 rows of the
   output accumulators (kept in registers: the kernels are instantiated for a
   max-dim bucket DB of 64, 128 or 256). RES variants keep the block's fixed
   operands (Q, or K and V, and dO) resident in shared memory instead of
   reloading them per tile, when the device's opt-in limit allows.
   Forward: online softmax with the running max and per-thread partial sums.
   Backward, deterministic (no atomics): D = rowsum(dO o O) into scratch, then
   a dQ kernel over query tiles and a dK/dV kernel over key tiles, both
   recomputing P = exp(S - lse). */

#define ATTN__CUDA_AT_LD 68                          /* tile row stride: float4-aligned, few bank conflicts */
#define ATTN__CUDA_AT_TILE (64 * ATTN__CUDA_AT_LD)   /* floats in one 64 x 64 operand tile */
#define ATTN__CUDA_AT_THREADS 256
/* Kernels of the 256 bucket need more than 128 registers anyway: min blocks 1
   lets ptxas use them without spilling; 0 (the others) leaves it free. */
#define ATTN__CUDA_AT_MINB(DB) ((DB) > 128 ? 1 : 0)

typedef struct attn__cuda_att_args {
    int heads, q_len, kv_len, hd, vd, causal, shift, bh, ntiles;
    int qrs, krs, vrs, ors;
    size_t qbs, kbs, vbs, obs, bias_bs, bias_hs;
    float scale, dropout, keep_scale;
    unsigned long long seed;
    const int *key_lengths;
    const unsigned char *pad;
    const float *bias, *q, *k, *v, *o, *lse, *dout, *D;
    float *out, *lse_out, *dq, *dk, *dv;
} attn__cuda_att_args;

/* Keys [0, end) can matter to batch b (attn__attention_key_end). */
static __device__ __forceinline__ int attn__cuda_att_key_end(const attn__cuda_att_args &a, int b) {
    int end = a.kv_len;
    if (a.key_lengths) end = max(0, min(end, a.key_lengths[b]));
    return end;
}

/* Dropout's keep bits of a thread's 4 x 4 piece (bit 4 r + c): the CPU's
   splitmix64 hash of the same cell, ((b heads + h) q_len + i) kv_len + j, bit
   for bit. Element (r, c) is query i + r and key j + c, or with keys_on_rows
   key j + r and query i + c. A loop that is not unrolled keeps the 64-bit
   hashing from holding registers across the whole piece. */
static __device__ __forceinline__ unsigned attn__cuda_att_keepbits(const attn__cuda_att_args &a, int bh, int i, int j,
                                                                bool keys_on_rows) {
    unsigned bits = 0;
#pragma unroll 1
    for (int e = 0; e < 16; e++) {
        const int qi = i + (keys_on_rows ? e & 3 : e >> 2), kj = j + (keys_on_rows ? e >> 2 : e & 3);
        unsigned long long z = ((unsigned long long)bh * (unsigned long long)a.q_len + (unsigned long long)qi) *
                                   (unsigned long long)a.kv_len + (unsigned long long)kj;
        z = a.seed + (z + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        bits |= (unsigned)((float)(z >> 40) * (1.0f / 16777216.0f) >= a.dropout) << e;
    }
    return bits;
}

/* Score x (already scale * q.k) of query i and key j with the bias added and
   the masks applied, in the CPU's order; keys at or past end are masked. */
static __device__ __forceinline__ float attn__cuda_att_mask(const attn__cuda_att_args &a, const float *bias,
                                                            const unsigned char *pad, int i, int j, int end, float x) {
    if (i >= a.q_len || j >= end) return -INFINITY;
    if (bias) x += bias[(size_t)i * a.kv_len + j];
    if ((a.causal && j > i + a.shift) || (pad && pad[j])) return -INFINITY;
    return x;
}

/* Rows [0, nrows) x dims [c0, c0 + 64) of a row-major matrix (row stride ld,
   ndim dims) into a tile, zero elsewhere. _t stores it transposed, t[dim][row]
   (a warp covers 8 dims x 4 rows: 32-byte global segments, conflict-free
   stores); _d stores t[row][dim] (a warp reads 32 consecutive dims). */
static __device__ __forceinline__ void attn__cuda_att_load_t(float *t, const float *base, int ld, int nrows, int ndim,
                                                             int c0) {
    const int lane = threadIdx.x & 31, col = (threadIdx.x >> 5) * 8 + (lane & 7), r0 = lane >> 3;
    const bool okc = c0 + col < ndim;
    const float *p = base + (size_t)r0 * ld + c0 + col;
    float *d = t + col * ATTN__CUDA_AT_LD + r0;
#pragma unroll 4
    for (int row = r0; row < 64; row += 4, p += (size_t)4 * ld, d += 4) *d = okc && row < nrows ? *p : 0.0f;
}

static __device__ __forceinline__ void attn__cuda_att_load_d(float *t, const float *base, int ld, int nrows, int ndim,
                                                             int c0) {
    const int col = threadIdx.x & 63, r0 = threadIdx.x >> 6;
    const bool okc = c0 + col < ndim;
    const float *p = base + (size_t)r0 * ld + c0 + col;
    float *d = t + r0 * ATTN__CUDA_AT_LD + col;
#pragma unroll 4
    for (int row = r0; row < 64; row += 4, p += (size_t)4 * ld, d += 4 * ATTN__CUDA_AT_LD)
        *d = okc && row < nrows ? *p : 0.0f;
}

/* acc[r][c4 + c] += sum over k < kn of A[k][4 ty + r] B[k][4 tx + c] (tiles
   laid out [k][64]; kn a multiple of 4, zero-padded). c4 is a constant after
   unrolling, so acc stays in registers. */
template <int N>
static __device__ __forceinline__ void attn__cuda_att_mm(float (&acc)[4][N], int c4, const float *A, const float *B,
                                                         int kn) {
    const float *pa = A + (threadIdx.x >> 4) * 4, *pb = B + (threadIdx.x & 15) * 4;
    for (int k = 0; k < kn; k += 4) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            float4 x = *(const float4 *)(pa + (k + kk) * ATTN__CUDA_AT_LD);
            float4 y = *(const float4 *)(pb + (k + kk) * ATTN__CUDA_AT_LD);
            float xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c4 + c] += xs[r] * ys[c];
        }
    }
}

/* The thread's 4 x 4 piece, transposed, into a [col][row] tile (the A
   operand of attn__cuda_att_mm for the next product). */
static __device__ __forceinline__ void attn__cuda_att_store_t(float *t, float (&s)[4][4]) {
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
    for (int c = 0; c < 4; c++)
        *(float4 *)(t + (tx * 4 + c) * ATTN__CUDA_AT_LD + ty * 4) = make_float4(s[0][c], s[1][c], s[2][c], s[3][c]);
}

static __device__ __forceinline__ int attn__cuda_att_kn(int n) { return (min(64, n) + 3) & ~3; }

/* Max over the 16 lanes that share a row (lanes 16 apart hold other rows). */
static __device__ __forceinline__ float attn__cuda_att_rowmax(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 4));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 8));
}
static __device__ __forceinline__ float attn__cuda_att_rowsum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    return x + __shfl_xor_sync(0xffffffffu, x, 8);
}

extern __shared__ float4 attn__cuda_att_smem[];

/* Forward: block = 64 queries of one (batch, head); the heaviest causal tiles first. */
template <int DB, bool RES>
static __global__ void __launch_bounds__(ATTN__CUDA_AT_THREADS, ATTN__CUDA_AT_MINB(DB))
attn__cuda_att_fwd(attn__cuda_att_args a) {
    float *sQ = (float *)attn__cuda_att_smem, *sB = sQ + (RES ? DB / 64 : 1) * ATTN__CUDA_AT_TILE;
    float *sP = sB + ATTN__CUDA_AT_TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int bh = (int)(blockIdx.x % (unsigned)a.bh), b = bh / a.heads, h = bh - b * a.heads;
    const int i0 = (a.ntiles - 1 - (int)(blockIdx.x / (unsigned)a.bh)) * 64, rows = min(64, a.q_len - i0);
    const int nqc = (a.hd + 63) >> 6, nvc = (a.vd + 63) >> 6;
    const float *qb = a.q + b * a.qbs + (size_t)i0 * a.qrs + (size_t)h * a.hd;
    const float *kb = a.k + b * a.kbs + (size_t)h * a.hd, *vb = a.v + b * a.vbs + (size_t)h * a.vd;
    const float *bias = a.bias ? a.bias + b * a.bias_bs + h * a.bias_hs : NULL;
    const unsigned char *pad = a.pad ? a.pad + (size_t)b * a.kv_len : NULL;
    float acc[4][DB / 16], m[4], l[4];
    int end = attn__cuda_att_key_end(a, b);
    if (a.causal) end = min(end, max(0, i0 + rows + a.shift)); /* later keys: masked for every row */
#pragma unroll
    for (int r = 0; r < 4; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < DB / 16; c++) acc[r][c] = 0.0f;
    }
    if (RES)
        for (int c = 0; c < nqc; c++) attn__cuda_att_load_t(sQ + c * ATTN__CUDA_AT_TILE, qb, a.qrs, rows, a.hd, c * 64);
    for (int j0 = 0; j0 < end; j0 += 64) {
        const int cols = min(64, end - j0);
        float s[4][4] = {{0.0f}}, mt[4];
        for (int c = 0; c < nqc; c++) { /* S = Q K^T over 64-dim chunks */
            __syncthreads();
            if (!RES) attn__cuda_att_load_t(sQ, qb, a.qrs, rows, a.hd, c * 64);
            attn__cuda_att_load_t(sB, kb + (size_t)j0 * a.krs, a.krs, cols, a.hd, c * 64);
            __syncthreads();
            attn__cuda_att_mm(s, 0, sQ + (RES ? c * ATTN__CUDA_AT_TILE : 0), sB, attn__cuda_att_kn(a.hd - c * 64));
        }
#pragma unroll
        for (int r = 0; r < 4; r++) { /* shuffles outside any branch */
            mt[r] = -INFINITY;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                s[r][c] = attn__cuda_att_mask(a, bias, pad, i0 + ty * 4 + r, j0 + tx * 4 + c, end, s[r][c] * a.scale);
                mt[r] = fmaxf(mt[r], s[r][c]);
            }
            mt[r] = attn__cuda_att_rowmax(mt[r]);
        }
#pragma unroll
        for (int r = 0; r < 4; r++) { /* online softmax: rescale what came before to the new max */
            float mx = fmaxf(m[r], mt[r]), alpha, sum = 0.0f;
            if (mx == -INFINITY) { /* nothing visible yet in this row */
#pragma unroll
                for (int c = 0; c < 4; c++) s[r][c] = 0.0f;
                continue;
            }
            alpha = expf(m[r] - mx); /* m = -inf: 0 */
#pragma unroll
            for (int c = 0; c < 4; c++) s[r][c] = expf(s[r][c] - mx), sum += s[r][c];
            l[r] = l[r] * alpha + sum; /* this thread's columns; summed over the row at the end */
#pragma unroll
            for (int c = 0; c < DB / 16; c++) acc[r][c] *= alpha;
            m[r] = mx;
        }
        if (a.dropout > 0.0f) { /* after the sums: dropped weights still count in the normaliser, as on the CPU */
            const unsigned kbits = attn__cuda_att_keepbits(a, bh, i0 + ty * 4, j0 + tx * 4, false);
#pragma unroll
            for (int e = 0; e < 16; e++) s[e >> 2][e & 3] *= kbits >> e & 1 ? a.keep_scale : 0.0f;
        }
        attn__cuda_att_store_t(sP, s); /* readers of sP (last tile's PV) passed the syncs above */
#pragma unroll
        for (int c = 0; c < DB / 64; c++) /* O += P V over 64-column chunks of V */
            if (c < nvc) {
                __syncthreads();
                attn__cuda_att_load_d(sB, vb + (size_t)j0 * a.vrs, a.vrs, cols, a.vd, c * 64);
                __syncthreads();
                attn__cuda_att_mm(acc, c * 4, sP, sB, attn__cuda_att_kn(cols));
            }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) l[r] = attn__cuda_att_rowsum(l[r]);
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int i = i0 + ty * 4 + r;
        float *o = a.out + b * a.obs + (size_t)i * a.ors + (size_t)h * a.vd, inv = 1.0f / l[r];
        if (i >= a.q_len) continue;
#pragma unroll
        for (int c = 0; c < DB / 16; c++) { /* a row that saw no key: NaN, as the CPU */
            const int col = (c >> 2) * 64 + tx * 4 + (c & 3);
            if (col < a.vd) o[col] = l[r] == 0.0f ? NAN : acc[r][c] * inv;
        }
        if (a.lse_out && tx == 0) a.lse_out[(size_t)bh * a.q_len + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
    }
}

/* D[row] = dO . O for each (batch, head, query); one warp per row. */
static __global__ void attn__cuda_att_rowdot(attn__cuda_att_args a, long long rows) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    float s = 0.0f;
    if (w >= rows) return; /* whole warps */
    {
        const int bh = (int)(w / a.q_len), i = (int)(w - (long long)bh * a.q_len);
        const int b = bh / a.heads, h = bh - b * a.heads;
        const size_t off = b * a.obs + (size_t)i * a.ors + (size_t)h * a.vd;
        for (int c = lane; c < a.vd; c += 32) s += a.dout[off + c] * a.o[off + c];
    }
    s = attn__cuda_att_rowsum(s + __shfl_xor_sync(0xffffffffu, s, 16));
    if (lane == 0) ((float *)a.D)[w] = s;
}

/* dQ: block = 64 queries of one (batch, head); dq += scale dS K with
   dS = P (dP - D), P = exp(S - lse), dP = dO V^T (through the dropout mask). */
template <int DB, bool RES>
static __global__ void __launch_bounds__(ATTN__CUDA_AT_THREADS, ATTN__CUDA_AT_MINB(DB))
attn__cuda_att_dq(attn__cuda_att_args a) {
    float *sQ = (float *)attn__cuda_att_smem, *sO = sQ + (RES ? DB / 64 : 0) * ATTN__CUDA_AT_TILE;
    float *sB = sO + (RES ? DB / 64 : 1) * ATTN__CUDA_AT_TILE, *sP = sB + ATTN__CUDA_AT_TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int bh = (int)(blockIdx.x % (unsigned)a.bh), b = bh / a.heads, h = bh - b * a.heads;
    const int i0 = (a.ntiles - 1 - (int)(blockIdx.x / (unsigned)a.bh)) * 64, rows = min(64, a.q_len - i0);
    const int nqc = (a.hd + 63) >> 6, nvc = (a.vd + 63) >> 6;
    const float *qb = a.q + b * a.qbs + (size_t)i0 * a.qrs + (size_t)h * a.hd;
    const float *ob = a.dout + b * a.obs + (size_t)i0 * a.ors + (size_t)h * a.vd;
    const float *kb = a.k + b * a.kbs + (size_t)h * a.hd, *vb = a.v + b * a.vbs + (size_t)h * a.vd;
    const float *bias = a.bias ? a.bias + b * a.bias_bs + h * a.bias_hs : NULL;
    const unsigned char *pad = a.pad ? a.pad + (size_t)b * a.kv_len : NULL;
    float acc[4][DB / 16], lse[4], D[4];
    int end = attn__cuda_att_key_end(a, b);
    if (a.causal) end = min(end, max(0, i0 + rows + a.shift));
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int i = i0 + ty * 4 + r;
        lse[r] = i < a.q_len ? a.lse[(size_t)bh * a.q_len + i] : -INFINITY;
        D[r] = i < a.q_len ? a.D[(size_t)bh * a.q_len + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < DB / 16; c++) acc[r][c] = 0.0f;
    }
    if (RES) {
        for (int c = 0; c < nqc; c++) attn__cuda_att_load_t(sQ + c * ATTN__CUDA_AT_TILE, qb, a.qrs, rows, a.hd, c * 64);
        for (int c = 0; c < nvc; c++) attn__cuda_att_load_t(sO + c * ATTN__CUDA_AT_TILE, ob, a.ors, rows, a.vd, c * 64);
    }
    for (int j0 = 0; j0 < end; j0 += 64) {
        const int cols = min(64, end - j0);
        float s[4][4] = {{0.0f}}, dp[4][4] = {{0.0f}};
        for (int c = 0; c < nqc; c++) { /* S = Q K^T */
            __syncthreads();
            if (!RES) attn__cuda_att_load_t(sQ, qb, a.qrs, rows, a.hd, c * 64);
            attn__cuda_att_load_t(sB, kb + (size_t)j0 * a.krs, a.krs, cols, a.hd, c * 64);
            __syncthreads();
            attn__cuda_att_mm(s, 0, sQ + (RES ? c * ATTN__CUDA_AT_TILE : 0), sB, attn__cuda_att_kn(a.hd - c * 64));
        }
        for (int c = 0; c < nvc; c++) { /* dP = dO V^T */
            __syncthreads();
            if (!RES) attn__cuda_att_load_t(sO, ob, a.ors, rows, a.vd, c * 64);
            attn__cuda_att_load_t(sB, vb + (size_t)j0 * a.vrs, a.vrs, cols, a.vd, c * 64);
            __syncthreads();
            attn__cuda_att_mm(dp, 0, sO + (RES ? c * ATTN__CUDA_AT_TILE : 0), sB, attn__cuda_att_kn(a.vd - c * 64));
        }
        const unsigned kbits = a.dropout > 0.0f ? attn__cuda_att_keepbits(a, bh, i0 + ty * 4, j0 + tx * 4, false) : ~0u;
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int i = i0 + ty * 4 + r, j = j0 + tx * 4 + c;
                float x = attn__cuda_att_mask(a, bias, pad, i, j, end, s[r][c] * a.scale), ds = 0.0f;
                if (lse[r] != -INFINITY && x != -INFINITY) { /* a row with no key gets no gradient */
                    float kf = a.dropout > 0.0f ? (kbits >> (r * 4 + c) & 1 ? a.keep_scale : 0.0f) : 1.0f;
                    ds = expf(x - lse[r]) * (dp[r][c] * kf - D[r]);
                }
                s[r][c] = ds;
            }
        attn__cuda_att_store_t(sP, s);
#pragma unroll
        for (int c = 0; c < DB / 64; c++) /* dQ += dS K */
            if (c < nqc) {
                __syncthreads();
                attn__cuda_att_load_d(sB, kb + (size_t)j0 * a.krs, a.krs, cols, a.hd, c * 64);
                __syncthreads();
                attn__cuda_att_mm(acc, c * 4, sP, sB, attn__cuda_att_kn(cols));
            }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int i = i0 + ty * 4 + r;
        float *dq = a.dq + b * a.qbs + (size_t)i * a.qrs + (size_t)h * a.hd;
        if (i >= a.q_len) continue;
#pragma unroll
        for (int c = 0; c < DB / 16; c++) {
            const int col = (c >> 2) * 64 + tx * 4 + (c & 3);
            if (col < a.hd) dq[col] += a.scale * acc[r][c];
        }
    }
}

/* dK, dV: block = 64 keys of one (batch, head) and one group of OW output
   columns (two groups for the 256 bucket, to keep the accumulators in
   registers); walks the query tiles that can see its keys. */
template <int DB, bool RES>
static __global__ void __launch_bounds__(ATTN__CUDA_AT_THREADS, ATTN__CUDA_AT_MINB(DB))
attn__cuda_att_dkdv(attn__cuda_att_args a) {
    enum { OW = DB > 128 ? 128 : DB, NG = DB / OW, OC = OW / 64 };
    float *sK = (float *)attn__cuda_att_smem, *sV = sK + (RES ? DB / 64 : 0) * ATTN__CUDA_AT_TILE;
    float *sB = sV + (RES ? DB / 64 : 1) * ATTN__CUDA_AT_TILE, *sP = sB + ATTN__CUDA_AT_TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int g = (int)(blockIdx.x % NG), rest = (int)(blockIdx.x / NG);
    const int bh = rest % a.bh, b = bh / a.heads, h = bh - b * a.heads, j0 = rest / a.bh * 64;
    const int nqc = (a.hd + 63) >> 6, nvc = (a.vd + 63) >> 6, end = attn__cuda_att_key_end(a, b);
    const bool want_dk = a.dk != NULL, want_dv = a.dv != NULL;
    const float *kb = a.k + b * a.kbs + (size_t)j0 * a.krs + (size_t)h * a.hd;
    const float *vb = a.v + b * a.vbs + (size_t)j0 * a.vrs + (size_t)h * a.vd;
    const float *qb = a.q + b * a.qbs + (size_t)h * a.hd, *ob = a.dout + b * a.obs + (size_t)h * a.vd;
    const float *bias = a.bias ? a.bias + b * a.bias_bs + h * a.bias_hs : NULL;
    const unsigned char *pad = a.pad ? a.pad + (size_t)b * a.kv_len : NULL;
    float accK[4][OW / 16], accV[4][OW / 16];
    if (j0 >= end) return; /* keys past the length get nothing (whole block) */
    const int keys = min(64, end - j0);
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < OW / 16; c++) accK[r][c] = accV[r][c] = 0.0f;
    if (RES) {
        for (int c = 0; c < nqc; c++) attn__cuda_att_load_t(sK + c * ATTN__CUDA_AT_TILE, kb, a.krs, keys, a.hd, c * 64);
        if (want_dk)
            for (int c = 0; c < nvc; c++)
                attn__cuda_att_load_t(sV + c * ATTN__CUDA_AT_TILE, vb, a.vrs, keys, a.vd, c * 64);
    }
    /* causal: query i sees key j when i >= j - shift; earlier queries see none of these keys */
    for (int i0 = a.causal ? max(0, j0 - a.shift) : 0; i0 < a.q_len; i0 += 64) {
        const int nq = min(64, a.q_len - i0);
        float s[4][4] = {{0.0f}}, dp[4][4] = {{0.0f}}, lse[4], D[4];
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int i = i0 + tx * 4 + c;
            lse[c] = i < a.q_len ? a.lse[(size_t)bh * a.q_len + i] : -INFINITY;
            D[c] = i < a.q_len && want_dk ? a.D[(size_t)bh * a.q_len + i] : 0.0f;
        }
        for (int c = 0; c < nqc; c++) { /* S^T = K Q^T */
            __syncthreads();
            if (!RES) attn__cuda_att_load_t(sK, kb, a.krs, keys, a.hd, c * 64);
            attn__cuda_att_load_t(sB, qb + (size_t)i0 * a.qrs, a.qrs, nq, a.hd, c * 64);
            __syncthreads();
            attn__cuda_att_mm(s, 0, sK + (RES ? c * ATTN__CUDA_AT_TILE : 0), sB, attn__cuda_att_kn(a.hd - c * 64));
        }
        if (want_dk)
            for (int c = 0; c < nvc; c++) { /* dP^T = V dO^T */
                __syncthreads();
                if (!RES) attn__cuda_att_load_t(sV, vb, a.vrs, keys, a.vd, c * 64);
                attn__cuda_att_load_t(sB, ob + (size_t)i0 * a.ors, a.ors, nq, a.vd, c * 64);
                __syncthreads();
                attn__cuda_att_mm(dp, 0, sV + (RES ? c * ATTN__CUDA_AT_TILE : 0), sB,
                                  attn__cuda_att_kn(a.vd - c * 64));
            }
        const unsigned kbits = a.dropout > 0.0f ? attn__cuda_att_keepbits(a, bh, i0 + tx * 4, j0 + ty * 4, true) : ~0u;
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int c = 0; c < 4; c++) { /* s: the dropped weights (for dV); dp: dS (for dK) */
                const int i = i0 + tx * 4 + c, j = j0 + ty * 4 + r;
                float x = attn__cuda_att_mask(a, bias, pad, i, j, end, s[r][c] * a.scale), p = 0.0f, ds = 0.0f;
                if (lse[c] != -INFINITY && x != -INFINITY) {
                    float kf = a.dropout > 0.0f ? (kbits >> (r * 4 + c) & 1 ? a.keep_scale : 0.0f) : 1.0f;
                    p = expf(x - lse[c]);
                    ds = p * (dp[r][c] * kf - D[c]);
                    p *= kf;
                }
                s[r][c] = p, dp[r][c] = ds;
            }
        if (want_dv) {
            attn__cuda_att_store_t(sP, s); /* sP's last readers passed the syncs of S^T */
#pragma unroll
            for (int oc = 0; oc < OC; oc++) /* dV += P^T dO */
                if (g * OC + oc < nvc) {
                    __syncthreads();
                    attn__cuda_att_load_d(sB, ob + (size_t)i0 * a.ors, a.ors, nq, a.vd, (g * OC + oc) * 64);
                    __syncthreads();
                    attn__cuda_att_mm(accV, oc * 4, sP, sB, attn__cuda_att_kn(nq));
                }
        }
        if (want_dk) {
            if (want_dv) __syncthreads(); /* dV's product is done with sP */
            attn__cuda_att_store_t(sP, dp);
#pragma unroll
            for (int oc = 0; oc < OC; oc++) /* dK += dS^T Q */
                if (g * OC + oc < nqc) {
                    __syncthreads();
                    attn__cuda_att_load_d(sB, qb + (size_t)i0 * a.qrs, a.qrs, nq, a.hd, (g * OC + oc) * 64);
                    __syncthreads();
                    attn__cuda_att_mm(accK, oc * 4, sP, sB, attn__cuda_att_kn(nq));
                }
        }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int j = j0 + ty * 4 + r;
        if (j >= end) continue;
#pragma unroll
        for (int c = 0; c < OW / 16; c++) {
            const int col = (g * OC + (c >> 2)) * 64 + tx * 4 + (c & 3);
            if (want_dv && col < a.vd) a.dv[b * a.vbs + (size_t)j * a.vrs + (size_t)h * a.vd + col] += accV[r][c];
            if (want_dk && col < a.hd)
                a.dk[b * a.kbs + (size_t)j * a.krs + (size_t)h * a.hd + col] += a.scale * accK[r][c];
        }
    }
}

/* The desc resolved as attn__attention_resolve does, checked, into kernel args. */
static attn_status attn__cuda_att_prepare(attn__cuda *c, const attn_attention_desc *in, attn__cuda_att_args *a) {
    attn_attention_desc d;
    char msg[200];
    long long bh;
    if (!in) return attn__cuda_bad(c, "attention: desc is NULL");
    d = *in;
    if (!d.v_dim) d.v_dim = d.head_dim;
    if (d.batch < 0 || d.heads < 1 || d.q_len < 0 || d.kv_len < 0 || d.head_dim < 1 ||
        d.head_dim > ATTN_ATTENTION_MAX_DIM || d.v_dim < 1 || d.v_dim > ATTN_ATTENTION_MAX_DIM ||
        !(d.dropout >= 0.0f && d.dropout < 1.0f)) {
        snprintf(msg, sizeof msg,
                 "attention: bad desc (batch %d, heads %d, q_len %d, kv_len %d, head_dim %d, v_dim %d: dims 1..%d; "
                 "dropout %g: [0, 1))", d.batch, d.heads, d.q_len, d.kv_len, d.head_dim, d.v_dim,
                 ATTN_ATTENTION_MAX_DIM, (double)d.dropout);
        return attn__cuda_bad(c, msg);
    }
    if (!d.q_row_stride) d.q_row_stride = d.heads * d.head_dim;
    if (!d.k_row_stride) d.k_row_stride = d.heads * d.head_dim;
    if (!d.v_row_stride) d.v_row_stride = d.heads * d.v_dim;
    if (!d.o_row_stride) d.o_row_stride = d.heads * d.v_dim;
    if (!d.q_batch_stride) d.q_batch_stride = (size_t)d.q_len * d.q_row_stride;
    if (!d.k_batch_stride) d.k_batch_stride = (size_t)d.kv_len * d.k_row_stride;
    if (!d.v_batch_stride) d.v_batch_stride = (size_t)d.kv_len * d.v_row_stride;
    if (!d.o_batch_stride) d.o_batch_stride = (size_t)d.q_len * d.o_row_stride;
    if (d.q_row_stride < d.heads * d.head_dim || d.k_row_stride < d.heads * d.head_dim ||
        d.v_row_stride < d.heads * d.v_dim || d.o_row_stride < d.heads * d.v_dim) {
        snprintf(msg, sizeof msg, "attention: row strides (q %d, k %d, v %d, o %d) below heads * dim (%d, %d)",
                 d.q_row_stride, d.k_row_stride, d.v_row_stride, d.o_row_stride, d.heads * d.head_dim,
                 d.heads * d.v_dim);
        return attn__cuda_bad(c, msg);
    }
    if (d.scale == 0.0f) d.scale = 1.0f / sqrtf((float)d.head_dim);
    bh = (long long)d.batch * d.heads;
    if (bh * ((d.q_len + 63) / 64 + (d.kv_len + 63) / 64) * 2 > 0x7fffffffLL || bh * d.q_len > 0x7fffffffLL)
        return attn__cuda_bad(c, "attention: batch * heads * length too large for one launch");
    memset(a, 0, sizeof *a);
    a->heads = d.heads, a->q_len = d.q_len, a->kv_len = d.kv_len, a->hd = d.head_dim, a->vd = d.v_dim;
    a->causal = d.causal != 0, a->shift = d.kv_len - d.q_len, a->bh = (int)bh;
    a->qrs = d.q_row_stride, a->krs = d.k_row_stride, a->vrs = d.v_row_stride, a->ors = d.o_row_stride;
    a->qbs = d.q_batch_stride, a->kbs = d.k_batch_stride, a->vbs = d.v_batch_stride, a->obs = d.o_batch_stride;
    a->bias_bs = d.bias_batch_stride, a->bias_hs = d.bias_head_stride;
    a->scale = d.scale, a->dropout = d.dropout, a->keep_scale = 1.0f / (1.0f - d.dropout); /* as the CPU rounds it */
    a->seed = (unsigned long long)d.dropout_seed;
    a->key_lengths = d.key_lengths, a->pad = d.key_padding_mask, a->bias = d.bias;
    return ATTN_OK;
}

typedef void (*attn__cuda_att_fn)(attn__cuda_att_args);

static const attn__cuda_att_fn attn__cuda_att_fns[3][3][2] = { /* [kind][bucket][resident] */
    {{attn__cuda_att_fwd<64, false>, attn__cuda_att_fwd<64, true>},
     {attn__cuda_att_fwd<128, false>, attn__cuda_att_fwd<128, true>},
     {attn__cuda_att_fwd<256, false>, attn__cuda_att_fwd<256, true>}},
    {{attn__cuda_att_dq<64, false>, attn__cuda_att_dq<64, true>},
     {attn__cuda_att_dq<128, false>, attn__cuda_att_dq<128, true>},
     {attn__cuda_att_dq<256, false>, attn__cuda_att_dq<256, true>}},
    {{attn__cuda_att_dkdv<64, false>, attn__cuda_att_dkdv<64, true>},
     {attn__cuda_att_dkdv<128, false>, attn__cuda_att_dkdv<128, true>},
     {attn__cuda_att_dkdv<256, false>, attn__cuda_att_dkdv<256, true>}}};

/* Blocks of fn with smem bytes that fit on one SM (registers, shared memory, threads); 0: none. */
static int attn__cuda_att_fit(attn__cuda *c, attn__cuda_att_fn fn, size_t smem, int optin) {
    struct cudaFuncAttributes fa;
    int sm_smem = 0, sm_threads = 0, regs, by_regs, by_smem;
    if (smem > (size_t)optin || cudaFuncGetAttributes(&fa, (const void *)fn) != cudaSuccess ||
        cudaDeviceGetAttribute(&sm_smem, cudaDevAttrMaxSharedMemoryPerMultiprocessor, c->device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sm_threads, cudaDevAttrMaxThreadsPerMultiProcessor, c->device) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    regs = (fa.numRegs * 32 + 255) / 256 * 256 * (ATTN__CUDA_AT_THREADS / 32); /* allocated per warp, 256 at a time */
    by_regs = regs > 0 ? 65536 / regs : 1;
    by_smem = (int)((size_t)sm_smem / (smem + 1024)); /* 1 KB reserved per block */
    by_regs = by_regs < by_smem ? by_regs : by_smem;
    return by_regs < sm_threads / ATTN__CUDA_AT_THREADS ? by_regs : sm_threads / ATTN__CUDA_AT_THREADS;
}

/* Launch kernel kind (0 forward, 1 dQ, 2 dK/dV) of the bucket that holds both
   dims: the resident variant (fewer loads) unless the reloading one fits more
   blocks on an SM. The choice is kept per device, kind and bucket. */
static attn_status attn__cuda_att_launch(attn__cuda *c, int kind, const attn__cuda_att_args *a, long long tiles_x,
                                         const char *what) {
    const int dmax = a->hd > a->vd ? a->hd : a->vd, bucket = dmax <= 64 ? 0 : dmax <= 128 ? 1 : 2, chunks = 1 << bucket;
    const size_t tile = sizeof(float) * ATTN__CUDA_AT_TILE;
    const size_t smem_res = tile * (size_t)(kind == 0 ? chunks + 2 : 2 * chunks + 2), smem_reload = 3 * tile;
    const long long blocks = tiles_x * a->bh * (kind == 2 && bucket == 2 ? 2 : 1); /* dK/dV: two column groups at 256 */
    int res;
    size_t smem;
    attn__cuda_att_fn fn;
    cudaError_t e;
    if (blocks <= 0) return ATTN_OK;
    if (!c->att_choice[kind][bucket]) {
        int optin = 0, fit_res, fit_reload;
        e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device);
        if (e != cudaSuccess) return attn__cuda_fail(c, e, what);
        fit_res = attn__cuda_att_fit(c, attn__cuda_att_fns[kind][bucket][1], smem_res, optin);
        fit_reload = attn__cuda_att_fit(c, attn__cuda_att_fns[kind][bucket][0], smem_reload, optin);
        if (!fit_res && !fit_reload) {
            snprintf(c->message, sizeof c->message, "cuda: %s needs %zu bytes of shared memory per block (device: %d)",
                     what, smem_reload, optin);
            return ATTN_ERR_UNSUPPORTED;
        }
        res = fit_res >= fit_reload ? 2 : 1;
        c->att_choice[kind][bucket] = (signed char)res;
    } else {
        res = c->att_choice[kind][bucket];
    }
    if (c->att_no_resident) res = 1; /* tests: what small-shared-memory GPUs get, on any GPU */
    fn = attn__cuda_att_fns[kind][bucket][res - 1];
    smem = res == 2 ? smem_res : smem_reload;
    e = cudaFuncSetAttribute((const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return attn__cuda_fail(c, e, what);
    fn<<<(unsigned)blocks, ATTN__CUDA_AT_THREADS, smem, c->stream>>>(*a);
    return attn__cuda_launched(c, what);
}

static attn_status attn__cuda_attention(void *user, const attn_attention_desc *desc, const float *q, const float *k,
                                        const float *v, float *o, float *lse) {
    attn__cuda *c = (attn__cuda *)user;
    attn__cuda_att_args a;
    attn_status s = attn__cuda_att_prepare(c, desc, &a);
    if (s) return s;
    if (!q || !k || !v || !o) return attn__cuda_bad(c, "attention: q, k, v or o is NULL");
    a.q = q, a.k = k, a.v = v, a.out = o, a.lse_out = lse;
    a.ntiles = (a.q_len + 63) / 64;
    return attn__cuda_att_launch(c, 0, &a, a.ntiles, "attention forward");
}

static attn_status attn__cuda_attention_backward(void *user, const attn_attention_desc *desc, const float *q,
                                                 const float *k, const float *v, const float *o, const float *lse,
                                                 const float *dout, float *dq, float *dk, float *dv) {
    attn__cuda *c = (attn__cuda *)user;
    attn__cuda_att_args a;
    long long rows;
    attn_status s = attn__cuda_att_prepare(c, desc, &a);
    if (s) return s;
    if (!q || !k || !v || !o || !lse || !dout)
        return attn__cuda_bad(c, "attention backward: q, k, v, o, lse or dout is NULL");
    a.q = q, a.k = k, a.v = v, a.o = o, a.lse = lse, a.dout = dout, a.dq = dq, a.dk = dk, a.dv = dv;
    rows = (long long)a.bh * a.q_len;
    if (rows == 0 || (!dq && !dk && !dv)) return ATTN_OK;
    if (dq || dk) { /* D = rowsum(dO o O), the softmax backward's row term */
        float *D = (float *)attn__cuda_scratch(c, (size_t)rows * sizeof(float));
        if (!D) return ATTN_ERR_OUT_OF_MEMORY;
        a.D = D;
        attn__cuda_att_rowdot<<<(unsigned)((rows + 7) / 8), 256, 0, c->stream>>>(a, rows);
        if ((s = attn__cuda_launched(c, "attention backward (D)"))) return s;
    }
    if (dq) {
        a.ntiles = (a.q_len + 63) / 64;
        if ((s = attn__cuda_att_launch(c, 1, &a, a.ntiles, "attention backward (dq)"))) return s;
    }
    if (dk || dv) {
        a.ntiles = (a.kv_len + 63) / 64;
        if ((s = attn__cuda_att_launch(c, 2, &a, a.ntiles, "attention backward (dk, dv)"))) return s;
    }
    return ATTN_OK;
}
/* cuda_ops.cuh - the elementwise, row-wise and reduction entries of the CUDA
   backend (include after cuda_core.cuh, inside ATTN_CUDA_IMPLEMENTATION).

   Conventions: every entry launches on c->stream and returns at once. Index
   math is 64-bit (n may exceed 2^31). Reductions are deterministic: a fixed
   split that depends only on the sizes (not on the GPU), then a fixed-order
   combine; no float atomics anywhere. Where the CPU kernel computes a product
   and then adds it, the GPU uses __fmul_rn/__fadd_rn so nvcc cannot fuse the
   two into an FMA that would round differently from the CPU. */

#define ATTN__CUDA_T 256 /* threads of the 1-D kernels */
#define ATTN__CUDA_FOR(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)

/* Blocks for a grid-stride loop over n elements (elementwise: any count gives
   the same bits). */
static unsigned attn__cuda_grid(const attn__cuda *c, size_t n) {
    size_t b = (n + ATTN__CUDA_T - 1) / ATTN__CUDA_T, cap = (size_t)(c->sm_count > 0 ? c->sm_count : 64) * 16;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

static size_t attn__cuda_cdiv(size_t a, size_t b) { return (a + b - 1) / b; }

/* ---- reductions inside a warp, a row group, a block ---- */
/* xor butterfly: every lane ends with the same bits (a + b == b + a). */
static __device__ __forceinline__ float attn__cuda_warp_sum(float v) {
    for (int k = 16; k > 0; k >>= 1) v += __shfl_xor_sync(0xffffffffu, v, k);
    return v;
}
static __device__ __forceinline__ double attn__cuda_warp_sumd(double v) {
    for (int k = 16; k > 0; k >>= 1) v += __shfl_xor_sync(0xffffffffu, v, k);
    return v;
}

/* Sum (max != 0: max) of v over the blockDim.x threads that share
   threadIdx.y (one row). All of them get the same bits. Every thread of the
   block must call it: with more than one warp per row it synchronizes. */
static __device__ __forceinline__ float attn__cuda_row_reduce(float v, int max, float (*sh)[32]) {
    int k, nw = (int)(blockDim.x >> 5);
    for (k = 16; k > 0; k >>= 1) {
        float t = __shfl_xor_sync(0xffffffffu, v, k);
        v = max ? fmaxf(v, t) : v + t;
    }
    if (nw > 1) {
        __syncthreads(); /* sh may still be read by the previous call */
        if ((threadIdx.x & 31) == 0) sh[threadIdx.y][threadIdx.x >> 5] = v;
        __syncthreads();
        v = sh[threadIdx.y][0];
        for (k = 1; k < nw; k++) v = max ? fmaxf(v, sh[threadIdx.y][k]) : v + sh[threadIdx.y][k];
    }
    return v;
}
static __device__ __forceinline__ double attn__cuda_row_sumd(double v, double (*sh)[32]) {
    int k, nw = (int)(blockDim.x >> 5);
    v = attn__cuda_warp_sumd(v);
    if (nw > 1) {
        __syncthreads();
        if ((threadIdx.x & 31) == 0) sh[threadIdx.y][threadIdx.x >> 5] = v;
        __syncthreads();
        v = sh[threadIdx.y][0];
        for (k = 1; k < nw; k++) v += sh[threadIdx.y][k];
    }
    return v;
}
/* Sum over a 1-D block (blockDim.x a multiple of 32, at most 1024), fixed order. */
static __device__ __forceinline__ double attn__cuda_block_sumd(double v) {
    __shared__ double sh[32];
    int k, nw = (int)(blockDim.x >> 5);
    v = attn__cuda_warp_sumd(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = sh[0];
    for (k = 1; k < nw; k++) v += sh[k];
    return v;
}

/* Launch shape of the row kernels: blockDim.x threads per row (a power of two,
   32..1024, about 8 elements each), 256 / blockDim.x rows per block. */
static void attn__cuda_rows_cfg(int rows, int cols, dim3 *block, dim3 *grid) {
    unsigned w = 32, ry;
    while (w < 1024 && (long long)w * 8 < cols) w <<= 1;
    ry = w >= 256 ? 1 : 256 / w;
    *block = dim3(w, ry, 1);
    *grid = dim3((unsigned)(((unsigned)rows + ry - 1) / ry), 1, 1);
}

/* ---- 4-D index maps (copy4, binary4, reduce4) ---- */
/* Extents innermost last (unused outer dims 1), and the strides of up to three
   operands. */
typedef struct attn__cuda_map {
    long long ext[4];
    long long st[3][4];
} attn__cuda_map;

static __host__ __device__ __forceinline__ unsigned long long attn__cuda_divu(unsigned long long a,
                                                                              unsigned long long b) {
    return (a | b) >> 32 ? a / b : (unsigned long long)((unsigned)a / (unsigned)b); /* 32-bit when it fits */
}

/* The operands' offsets of dense index i over m->ext. */
static __host__ __device__ __forceinline__ void attn__cuda_unravel(const attn__cuda_map *m, unsigned long long i,
                                                                   long long *o) {
    int d, k;
    for (k = 0; k < 3; k++) o[k] = 0;
#if defined(__CUDA_ARCH__)
#  pragma unroll
#endif
    for (d = 3; d > 0; d--) {
        unsigned long long e = (unsigned long long)m->ext[d], q;
        if (e == 1) continue;
        q = attn__cuda_divu(i, e);
        for (k = 0; k < 3; k++) o[k] += (long long)(i - q * e) * m->st[k][d];
        i = q;
    }
    for (k = 0; k < 3; k++) o[k] += (long long)i * m->st[k][0];
}

/* shape with nops stride arrays (NULL: dense over shape) in canonical form:
   dims of extent 1 dropped, neighbours that are one run in every operand
   merged (fewer divisions; a contiguous copy becomes one dim). Returns the
   element count, -1 for a negative extent. */
static long long attn__cuda_canon(const int *shape, int nops, const int *const *strides, attn__cuda_map *m) {
    long long ext[4], st[3][4], dense[4], total = 1;
    int n = 0, d, k;
    for (d = 3; d >= 0; d--) {
        if (shape[d] < 0) return -1;
        dense[d] = total;
        total *= shape[d];
    }
    for (d = 0; d < 4; d++) {
        long long s[3];
        int merge = n > 0;
        if (shape[d] == 1) continue;
        for (k = 0; k < nops; k++) {
            s[k] = strides[k] ? strides[k][d] : dense[d];
            if (merge && st[k][n - 1] != s[k] * shape[d]) merge = 0;
        }
        if (!merge) ext[n++] = 1;
        ext[n - 1] *= shape[d];
        for (k = 0; k < nops; k++) st[k][n - 1] = s[k];
    }
    for (d = 0; d < 4; d++) {
        int src = d - (4 - n);
        m->ext[d] = src >= 0 ? ext[src] : 1;
        for (k = 0; k < 3; k++) m->st[k][d] = src >= 0 && k < nops ? st[k][src] : 0;
    }
    return total;
}

/* ---- data movement ---- */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_fill_kernel(size_t n, float v, float *y) {
    ATTN__CUDA_FOR(i, n) y[i] = v;
}

static attn_status attn__cuda_fill(void *user, size_t n, float value, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    if (!n) return ATTN_OK;
    attn__cuda_fill_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(n, value, y);
    return attn__cuda_launched(c, "fill");
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_copy4_kernel(attn__cuda_map m, size_t n, const float *x,
                                                                        float *y, int accumulate) {
    ATTN__CUDA_FOR(i, n) {
        long long o[3];
        float v;
        attn__cuda_unravel(&m, i, o);
        v = x[o[0]];
        if (accumulate) y[o[1]] += v; /* the destination map is injective: no races */
        else y[o[1]] = v;
    }
}

static attn_status attn__cuda_copy4(void *user, const int *shape, const float *x, const int *xs, float *y,
                                    const int *ys, int accumulate) {
    attn__cuda *c = (attn__cuda *)user;
    const int *st[2] = {xs, ys};
    attn__cuda_map m;
    long long n = attn__cuda_canon(shape, 2, st, &m);
    if (n < 0) return attn__cuda_bad(c, "copy4: negative extent");
    if (!n) return ATTN_OK;
    attn__cuda_copy4_kernel<<<attn__cuda_grid(c, (size_t)n), ATTN__CUDA_T, 0, c->stream>>>(m, (size_t)n, x, y,
                                                                                         accumulate);
    return attn__cuda_launched(c, "copy4");
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_binary4_kernel(int op, attn__cuda_map m, size_t n,
                                                                          const float *a, const float *b, float *y) {
    ATTN__CUDA_FOR(i, n) {
        long long o[3];
        float u, v;
        attn__cuda_unravel(&m, i, o);
        u = a[o[0]];
        v = b[o[1]];
        y[i] = op == ATTN_BE_ADD ? u + v : op == ATTN_BE_SUB ? u - v : u * v;
    }
}

static attn_status attn__cuda_binary4(void *user, int op, const int *shape, const float *a, const int *as,
                                      const float *b, const int *bs, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    const int *st[2] = {as, bs};
    attn__cuda_map m;
    long long n;
    if (op != ATTN_BE_ADD && op != ATTN_BE_SUB && op != ATTN_BE_MUL) return attn__cuda_bad(c, "binary4: unknown op");
    if ((n = attn__cuda_canon(shape, 2, st, &m)) < 0) return attn__cuda_bad(c, "binary4: negative extent");
    if (!n) return ATTN_OK;
    attn__cuda_binary4_kernel<<<attn__cuda_grid(c, (size_t)n), ATTN__CUDA_T, 0, c->stream>>>(op, m, (size_t)n, a, b, y);
    return attn__cuda_launched(c, "binary4");
}

/* ---- reduce4: dst (0 strides summed over) += sign * g * other ----
   The canonical dims split into kept ones (dst stride != 0: the outputs) and
   reduced ones. Each output's reduction range is cut into S chunks (S from the
   sizes only); chunk sums go to scratch and a second kernel adds them in
   order. Column mode (the innermost dim is kept, or the range is short): a
   thread per output, coalesced across outputs. Row mode (the innermost dim is
   reduced): a warp per output, coalesced along the range. */
typedef struct attn__cuda_red {
    attn__cuda_map k; /* kept dims: strides of g, dst, other */
    attn__cuda_map r; /* reduced dims: strides of g, -, other */
    long long nout, nred, chunk;
} attn__cuda_red;

/* acc starts at -0.0f: -0 + x == x for every x, so a one-term sum keeps the
   CPU's bits (the sign of a zero included). */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_reduce_cols(attn__cuda_red p, const float *g,
                                                                       const float *other, float *dst, float *part,
                                                                       float sign) {
    long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x, r0 = (long long)blockIdx.y * p.chunk, r1, r;
    long long ko[3], ro[3];
    float acc = -0.0f;
    if (o >= p.nout) return;
    r1 = r0 + p.chunk < p.nred ? r0 + p.chunk : p.nred;
    attn__cuda_unravel(&p.k, (unsigned long long)o, ko);
    for (r = r0; r < r1; r++) {
        float t;
        attn__cuda_unravel(&p.r, (unsigned long long)r, ro);
        t = g[ko[0] + ro[0]];
        if (other) t *= other[ko[2] + ro[2]];
        acc += t;
    }
    if (part) part[(size_t)blockIdx.y * p.nout + o] = acc;
    else dst[ko[1]] = __fadd_rn(dst[ko[1]], __fmul_rn(sign, acc));
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_reduce_rows(attn__cuda_red p, const float *g,
                                                                       const float *other, float *dst, float *part,
                                                                       float sign) {
    long long o = (long long)blockIdx.x * (ATTN__CUDA_T / 32) + (threadIdx.x >> 5);
    long long r0 = (long long)blockIdx.y * p.chunk, r1, r;
    long long ko[3], ro[3];
    float acc = -0.0f;
    if (o >= p.nout) return; /* the whole warp */
    r1 = r0 + p.chunk < p.nred ? r0 + p.chunk : p.nred;
    attn__cuda_unravel(&p.k, (unsigned long long)o, ko);
    for (r = r0 + (threadIdx.x & 31); r < r1; r += 32) {
        float t;
        attn__cuda_unravel(&p.r, (unsigned long long)r, ro);
        t = g[ko[0] + ro[0]];
        if (other) t *= other[ko[2] + ro[2]];
        acc += t;
    }
    acc = attn__cuda_warp_sum(acc);
    if (threadIdx.x & 31) return;
    if (part) part[(size_t)blockIdx.y * p.nout + o] = acc;
    else dst[ko[1]] = __fadd_rn(dst[ko[1]], __fmul_rn(sign, acc));
}

/* dst (offsets from k's operand 1) += sign * sum over s of part[s][o], a warp
   per output, the order fixed. */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_reduce_parts(attn__cuda_map k, long long nout, int S,
                                                                        const float *part, float *dst, float sign) {
    long long o = (long long)blockIdx.x * (ATTN__CUDA_T / 32) + (threadIdx.x >> 5), ko[3];
    float acc = -0.0f;
    int s;
    if (o >= nout) return;
    for (s = (int)(threadIdx.x & 31); s < S; s += 32) acc += part[(size_t)s * nout + o];
    acc = attn__cuda_warp_sum(acc);
    if (threadIdx.x & 31) return;
    attn__cuda_unravel(&k, (unsigned long long)o, ko);
    dst[ko[1]] = __fadd_rn(dst[ko[1]], __fmul_rn(sign, acc));
}

/* S chunks of a range of nred for nout outputs: about `want` workers in all,
   each chunk at least min_chunk long, S <= 65535 (gridDim.y). */
static int attn__cuda_splits(long long nout, long long nred, long long want, long long min_chunk, long long *chunk) {
    long long S = nout >= want ? 1 : (want + nout - 1) / nout, most = (nred + min_chunk - 1) / min_chunk;
    if (S > most) S = most;
    if (S > 65535) S = 65535;
    if (S < 1) S = 1;
    *chunk = (nred + S - 1) / S;
    if (*chunk < 1) *chunk = 1;
    return (int)((nred + *chunk - 1) / *chunk);
}

static attn_status attn__cuda_reduce4(void *user, const int *shape, float *dst, const int *ds, const float *g,
                                      const float *other, const int *os, float sign) {
    static const int zero[4] = {0, 0, 0, 0};
    attn__cuda *c = (attn__cuda *)user;
    const int *st[3] = {NULL, ds, other && os ? os : zero}; /* g is dense */
    attn__cuda_map m;
    attn__cuda_red p;
    long long n = attn__cuda_canon(shape, 3, st, &m), ke[4], re[4], kst[3][4], rst[3][4];
    float *part = NULL;
    int d, k, nk = 0, nr = 0, S, row;
    if (n < 0) return attn__cuda_bad(c, "reduce4: negative extent");
    if (!n) return ATTN_OK;
    for (d = 0; d < 4; d++) {
        if (m.ext[d] == 1) continue;
        if (m.st[1][d] != 0) {
            ke[nk] = m.ext[d];
            for (k = 0; k < 3; k++) kst[k][nk] = m.st[k][d];
            nk++;
        } else {
            re[nr] = m.ext[d];
            for (k = 0; k < 3; k++) rst[k][nr] = m.st[k][d];
            nr++;
        }
    }
    p.nout = p.nred = 1;
    for (d = 0; d < 4; d++) { /* right-aligned, outer padding of extent 1 */
        int sk = d - (4 - nk), sr = d - (4 - nr);
        p.k.ext[d] = sk >= 0 ? ke[sk] : 1;
        p.r.ext[d] = sr >= 0 ? re[sr] : 1;
        for (k = 0; k < 3; k++) {
            p.k.st[k][d] = sk >= 0 ? kst[k][sk] : 0;
            p.r.st[k][d] = sr >= 0 ? rst[k][sr] : 0;
        }
        p.nout *= p.k.ext[d];
        p.nred *= p.r.ext[d];
    }
    row = m.ext[3] > 1 && m.st[1][3] == 0 && p.nred >= 32;
    S = row ? attn__cuda_splits(p.nout, p.nred, 1 << 14, 1024, &p.chunk)
            : attn__cuda_splits(p.nout, p.nred, 1 << 18, 32, &p.chunk);
    if ((unsigned long long)p.nout / (row ? ATTN__CUDA_T / 32 : ATTN__CUDA_T) >= 0x7fffffffull)
        return attn__cuda_bad(c, "reduce4: too many outputs");
    if (S > 1 && !(part = (float *)attn__cuda_scratch(c, (size_t)S * (size_t)p.nout * sizeof(float))))
        return ATTN_ERR_OUT_OF_MEMORY;
    if (row)
        attn__cuda_reduce_rows<<<dim3((unsigned)attn__cuda_cdiv((size_t)p.nout, ATTN__CUDA_T / 32), (unsigned)S),
                                 ATTN__CUDA_T, 0, c->stream>>>(p, g, other, dst, part, sign);
    else
        attn__cuda_reduce_cols<<<dim3((unsigned)attn__cuda_cdiv((size_t)p.nout, ATTN__CUDA_T), (unsigned)S),
                                 ATTN__CUDA_T, 0, c->stream>>>(p, g, other, dst, part, sign);
    if (S > 1) {
        attn_status s = attn__cuda_launched(c, "reduce4");
        if (s != ATTN_OK) return s;
        attn__cuda_reduce_parts<<<(unsigned)attn__cuda_cdiv((size_t)p.nout, ATTN__CUDA_T / 32), ATTN__CUDA_T, 0,
                                  c->stream>>>(p.k, p.nout, S, part, dst, sign);
    }
    return attn__cuda_launched(c, "reduce4");
}

/* ---- unary ops ---- */
/* Phi(x) and phi(x) by attn.h's formula (attn__normal_cdf, with its SIMD
   version's fused steps), not 0.5 (1 + erff(x / sqrt 2)): that sum cancels
   for negative x, and the argument's rounding costs 2u^2 ulps in the tail.
   Only expf differs from the CPU (2 ulp), so GPU and CPU agree to ~3e-7. */
static __device__ __forceinline__ float attn__cuda_normal_cdf(float x, float *pdf) {
    float u, t, p, xh, xl, b, eb, e, half;
    if (x > 14.0f || x < -14.0f) { /* exactly 1 or 0 in float; NaN goes on */
        *pdf = 0.0f;
        return x > 0.0f ? 1.0f : 0.0f;
    }
    u = fabsf(x) * 0.70710678118654752f;
    t = 1.0f / fmaf(u, 0.5f, 1.0f);
    p = 3.940237717e-02f;
    p = fmaf(p, t, -2.109200988e-01f);
    p = fmaf(p, t, 4.287909263e-01f);
    p = fmaf(p, t, -3.541067521e-01f);
    p = fmaf(p, t, 3.349540755e-02f);
    p = fmaf(p, t, 4.070932375e-03f);
    p = fmaf(p, t, 6.662618995e-02f);
    p = fmaf(p, t, 1.827181487e-01f);
    p = fmaf(p, t, 2.456182185e-01f);
    p = fmaf(p, t, 2.822147740e-01f);
    p = fmaf(p, t, 2.820898930e-01f);
    xh = __uint_as_float(__float_as_uint(x) & 0xFFFFF000u); /* xh * xh is exact */
    xl = x - xh;
    b = __fmul_rn(__fmul_rn(fmaf(xh, 2.0f, xl), xl), -0.5f); /* x^2/2 = xh^2/2 - b */
    eb = fmaf(b, 1.0f / 24.0f, 1.0f / 6.0f);
    eb = fmaf(eb, b, 0.5f);
    eb = fmaf(eb, b, 1.0f);
    eb = fmaf(eb, b, 1.0f);
    e = __fmul_rn(expf(__fmul_rn(__fmul_rn(xh, xh), -0.5f)), eb);
    *pdf = e * 0.39894228040143268f;
    half = __fmul_rn(e * 0.5f, __fmul_rn(t, p));
    return x >= 0.0f ? 1.0f - half : half;
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_unary_kernel(int op, size_t n, float s, const float *x,
                                                                        float *y) {
    ATTN__CUDA_FOR(i, n) {
        float v = x[i], r, pdf;
        if (op == ATTN_BE_SCALE) r = s * v;
        else if (op == ATTN_BE_RELU) r = v > 0.0f ? v : 0.0f; /* NaN -> 0, as the CPU */
        else if (op == ATTN_BE_GELU) r = v * attn__cuda_normal_cdf(v, &pdf); /* -inf -> NaN, as PyTorch */
        else r = tanhf(v);
        y[i] = r;
    }
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_unary_backward_kernel(int op, size_t n, float s,
                                                                                 const float *x, const float *y,
                                                                                 const float *dy, float *dx) {
    ATTN__CUDA_FOR(i, n) {
        float g = dy[i], d = dx[i], pdf, cdf;
        if (op == ATTN_BE_SCALE) d = fmaf(s, g, d); /* the CPU's axpy is fused too */
        else if (op == ATTN_BE_RELU) d += x[i] > 0.0f ? g : 0.0f;
        else if (op == ATTN_BE_GELU) {
            cdf = attn__cuda_normal_cdf(x[i], &pdf);
            d += g * (cdf + x[i] * pdf);
        } else {
            float v = y[i];
            d = __fadd_rn(d, __fmul_rn(g, __fsub_rn(1.0f, __fmul_rn(v, v))));
        }
        dx[i] = d;
    }
}

static attn_status attn__cuda_unary(void *user, int op, size_t n, float s, const float *x, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    if (op < ATTN_BE_SCALE || op > ATTN_BE_TANH) return attn__cuda_bad(c, "unary: unknown op");
    if (!n) return ATTN_OK;
    attn__cuda_unary_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(op, n, s, x, y);
    return attn__cuda_launched(c, "unary");
}

static attn_status attn__cuda_unary_backward(void *user, int op, size_t n, float s, const float *x, const float *y,
                                             const float *dy, float *dx) {
    attn__cuda *c = (attn__cuda *)user;
    if (op < ATTN_BE_SCALE || op > ATTN_BE_TANH) return attn__cuda_bad(c, "unary_backward: unknown op");
    if (op == ATTN_BE_TANH && !y) return attn__cuda_bad(c, "unary_backward: tanh needs y");
    if (!n) return ATTN_OK;
    attn__cuda_unary_backward_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(op, n, s, x, y, dy, dx);
    return attn__cuda_launched(c, "unary_backward");
}

/* ---- dropout: attn.h's attn__dropout_keep hash, bit for bit ---- */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_dropout_kernel(unsigned long long seed, float p,
                                                                          float scale, size_t n, const float *x,
                                                                          float *y, int accumulate) {
    ATTN__CUDA_FOR(i, n) {
        unsigned long long z = seed + ((unsigned long long)i + 1) * 0x9E3779B97F4A7C15ull;
        float v;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        v = (float)(z >> 40) * (1.0f / 16777216.0f) >= p ? __fmul_rn(x[i], scale) : 0.0f;
        if (accumulate) y[i] += v;
        else y[i] = v;
    }
}

static attn_status attn__cuda_dropout(void *user, uint64_t seed, float p, size_t n, const float *x, float *y,
                                      int accumulate) {
    attn__cuda *c = (attn__cuda *)user;
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; /* on the host, as the CPU rounds it */
    if (!n) return ATTN_OK;
    attn__cuda_dropout_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(
        (unsigned long long)seed, p, scale, n, x, y, accumulate);
    return attn__cuda_launched(c, "dropout");
}

/* ---- softmax / log-softmax over rows ----
   Row kernels: blockDim.x threads per row (attn__cuda_rows_cfg); a thread of a
   row past the end works on 0 columns but still takes part in the syncs. */
static __global__ void __launch_bounds__(1024) attn__cuda_softmax_kernel(int log, int rows, int cols, const float *x,
                                                                  float *y) {
    __shared__ float sh[8][32];
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    int n = row < rows ? cols : 0, j;
    const float *xr = x + (size_t)(row < rows ? row : 0) * cols;
    float *yr = y + (size_t)(row < rows ? row : 0) * cols;
    float m = -INFINITY, s = 0.0f;
    for (j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, xr[j]); /* NaN ignored here, as the CPU */
    m = attn__cuda_row_reduce(m, 1, sh);
    for (j = threadIdx.x; j < n; j += blockDim.x) s += expf(xr[j] - m);
    s = attn__cuda_row_reduce(s, 0, sh);
    if (log) {
        float lse = logf(s);
        for (j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - m) - lse;
    } else {
        float inv = 1.0f / s;
        for (j = threadIdx.x; j < n; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv; /* x may be y */
    }
}

static attn_status attn__cuda_softmax(void *user, int log, int rows, int cols, const float *x, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    dim3 block, grid;
    if (rows < 0 || cols < 0) return attn__cuda_bad(c, "softmax: negative size");
    if (!rows || !cols) return ATTN_OK;
    attn__cuda_rows_cfg(rows, cols, &block, &grid);
    attn__cuda_softmax_kernel<<<grid, block, 0, c->stream>>>(log, rows, cols, x, y);
    return attn__cuda_launched(c, "softmax");
}

static __global__ void __launch_bounds__(1024) attn__cuda_softmax_backward_kernel(int log, int rows, int cols,
                                                                           const float *y, const float *dy,
                                                                           float *dx) {
    __shared__ float sh[8][32];
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    int n = row < rows ? cols : 0, j;
    size_t base = (size_t)(row < rows ? row : 0) * cols;
    const float *yr = y + base, *gr = dy + base;
    float *dr = dx + base, s = 0.0f;
    for (j = threadIdx.x; j < n; j += blockDim.x) s += log ? gr[j] : gr[j] * yr[j];
    s = attn__cuda_row_reduce(s, 0, sh);
    if (log) /* dx = g - softmax * sum(g) */
        for (j = threadIdx.x; j < n; j += blockDim.x) dr[j] += gr[j] - expf(yr[j]) * s;
    else /* dx = y (g - sum(g y)) */
        for (j = threadIdx.x; j < n; j += blockDim.x) dr[j] += yr[j] * (gr[j] - s);
}

static attn_status attn__cuda_softmax_backward(void *user, int log, int rows, int cols, const float *y,
                                               const float *dy, float *dx) {
    attn__cuda *c = (attn__cuda *)user;
    dim3 block, grid;
    if (rows < 0 || cols < 0) return attn__cuda_bad(c, "softmax_backward: negative size");
    if (!rows || !cols) return ATTN_OK;
    attn__cuda_rows_cfg(rows, cols, &block, &grid);
    attn__cuda_softmax_backward_kernel<<<grid, block, 0, c->stream>>>(log, rows, cols, y, dy, dx);
    return attn__cuda_launched(c, "softmax_backward");
}

/* ---- LayerNorm / RMSNorm ---- */
static __global__ void __launch_bounds__(1024) attn__cuda_norm_forward_kernel(int rms, int rows, int cols, const float *x,
                                                                       const float *gamma, const float *beta,
                                                                       float eps, float *y, float *mean,
                                                                       float *rstd) {
    __shared__ float sh[8][32];
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    int n = row < rows ? cols : 0, j;
    size_t base = (size_t)(row < rows ? row : 0) * cols;
    const float *xr = x + base;
    float *yr = y + base, mu = 0.0f, rs, s = 0.0f;
    if (rms) { /* y = x / sqrt(mean(x^2) + eps) * w */
        for (j = threadIdx.x; j < n; j += blockDim.x) s += xr[j] * xr[j];
        s = attn__cuda_row_reduce(s, 0, sh);
        rs = 1.0f / sqrtf(s / (float)cols + eps);
        for (j = threadIdx.x; j < n; j += blockDim.x) {
            float v = xr[j] * rs;
            yr[j] = gamma ? v * gamma[j] : v;
        }
    } else { /* two passes, as the CPU: the mean, then the squared deviations */
        for (j = threadIdx.x; j < n; j += blockDim.x) s += xr[j];
        mu = attn__cuda_row_reduce(s, 0, sh) / (float)cols;
        s = 0.0f;
        for (j = threadIdx.x; j < n; j += blockDim.x) {
            float d = xr[j] - mu;
            s += d * d;
        }
        s = attn__cuda_row_reduce(s, 0, sh);
        rs = 1.0f / sqrtf(s / (float)cols + eps);
        for (j = threadIdx.x; j < n; j += blockDim.x)
            yr[j] = fmaf((xr[j] - mu) * rs, gamma ? gamma[j] : 1.0f, beta ? beta[j] : 0.0f);
    }
    if (n && threadIdx.x == 0) {
        if (mean && !rms) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
}

static attn_status attn__cuda_norm_forward(void *user, int rms, int rows, int cols, const float *x,
                                           const float *gamma, const float *beta, float eps, float *y, float *mean,
                                           float *rstd) {
    attn__cuda *c = (attn__cuda *)user;
    dim3 block, grid;
    if (rows < 0 || cols < 0) return attn__cuda_bad(c, "norm_forward: negative size");
    if (!rows || !cols) return ATTN_OK;
    attn__cuda_rows_cfg(rows, cols, &block, &grid);
    attn__cuda_norm_forward_kernel<<<grid, block, 0, c->stream>>>(rms, rows, cols, x, gamma, rms ? NULL : beta, eps,
                                                                  y, mean, rstd);
    return attn__cuda_launched(c, "norm_forward");
}

/* dx += rstd (gh - mean(gh) - xhat mean(gh xhat)), gh = dy w; RMSNorm drops mean(gh). */
static __global__ void __launch_bounds__(1024) attn__cuda_norm_dx_kernel(int rms, int rows, int cols, const float *x,
                                                                  const float *gamma, const float *mean,
                                                                  const float *rstd, const float *dy, float *dx) {
    __shared__ float sh[8][32];
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y, rr = row < rows ? row : 0;
    int n = row < rows ? cols : 0, j;
    size_t base = (size_t)rr * cols;
    const float *xr = x + base, *gr = dy + base;
    float *dr = dx + base, mu = rms || !n ? 0.0f : mean[rr], rs = n ? rstd[rr] : 0.0f, sg = 0.0f, sgx = 0.0f;
    float m_gh, m_ghx;
    for (j = threadIdx.x; j < n; j += blockDim.x) {
        float xhat = (xr[j] - mu) * rs, gh = gamma ? gr[j] * gamma[j] : gr[j];
        sg += gh;
        sgx += gh * xhat;
    }
    sg = attn__cuda_row_reduce(sg, 0, sh);
    sgx = attn__cuda_row_reduce(sgx, 0, sh);
    m_gh = rms ? 0.0f : sg / (float)cols;
    m_ghx = sgx / (float)cols;
    for (j = threadIdx.x; j < n; j += blockDim.x) {
        float xhat = (xr[j] - mu) * rs, gh = gamma ? gr[j] * gamma[j] : gr[j];
        dr[j] += rs * (gh - m_gh - xhat * m_ghx);
    }
}

/* Chunk sums of dgamma (dy xhat) and dbeta (dy) over rows: 32 columns x 8 row
   lanes per block, blockIdx.y the chunk; the 8 lanes are added in order. */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_norm_cols_kernel(int rms, int rows, int cols,
                                                                            const float *x, const float *mean,
                                                                            const float *rstd, const float *dy,
                                                                            long long chunk, float *pg, float *pb) {
    __shared__ float sg[8][33], sb[8][33];
    int tx = threadIdx.x, ty = threadIdx.y, col = blockIdx.x * 32 + tx, k;
    long long r0 = (long long)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows, r;
    float ag = -0.0f, ab = -0.0f;
    if (col < cols)
        for (r = r0 + ty; r < r1; r += 8) {
            size_t e = (size_t)r * cols + col;
            float g = dy[e], xhat = (x[e] - (rms ? 0.0f : mean[r])) * rstd[r];
            ag += g * xhat;
            ab += g;
        }
    sg[ty][tx] = ag;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && col < cols) {
        for (k = 1; k < 8; k++) ag += sg[k][tx], ab += sb[k][tx];
        if (pg) pg[(size_t)blockIdx.y * cols + col] = ag;
        if (pb) pb[(size_t)blockIdx.y * cols + col] = ab;
    }
}

static attn_status attn__cuda_norm_backward(void *user, int rms, int rows, int cols, const float *x,
                                            const float *gamma, const float *mean, const float *rstd,
                                            const float *dy, float *dx, float *dgamma, float *dbeta) {
    attn__cuda *c = (attn__cuda *)user;
    dim3 block, grid;
    attn_status s;
    if (rows < 0 || cols < 0) return attn__cuda_bad(c, "norm_backward: negative size");
    if (!rows || !cols) return ATTN_OK; /* RMSNorm with dbeta: += sum(dy), as the CPU table does */
    if (dx) {
        attn__cuda_rows_cfg(rows, cols, &block, &grid);
        attn__cuda_norm_dx_kernel<<<grid, block, 0, c->stream>>>(rms, rows, cols, x, gamma, mean, rstd, dy, dx);
        if ((s = attn__cuda_launched(c, "norm_backward")) != ATTN_OK) return s;
    }
    if (dgamma || dbeta) {
        long long chunk, cb = (long long)attn__cuda_cdiv((size_t)cols, 32);
        int S = attn__cuda_splits(cb * 32, rows, (long long)1 << 15, 64, &chunk); /* ~2^18 threads */
        attn__cuda_map k;
        float *pg, *pb;
        if (!(pg = (float *)attn__cuda_scratch(c, 2 * (size_t)S * cols * sizeof(float)))) return ATTN_ERR_OUT_OF_MEMORY;
        pb = pg + (size_t)S * cols;
        attn__cuda_norm_cols_kernel<<<dim3((unsigned)cb, (unsigned)S), dim3(32, 8), 0, c->stream>>>(
            rms, rows, cols, x, mean, rstd, dy, chunk, dgamma ? pg : NULL, dbeta ? pb : NULL);
        if ((s = attn__cuda_launched(c, "norm_backward")) != ATTN_OK) return s;
        memset(&k, 0, sizeof k); /* the outputs: one dense dim */
        k.ext[0] = k.ext[1] = k.ext[2] = 1;
        k.ext[3] = cols;
        k.st[1][3] = 1;
        grid = dim3((unsigned)attn__cuda_cdiv((size_t)cols, ATTN__CUDA_T / 32));
        if (dgamma) {
            attn__cuda_reduce_parts<<<grid, ATTN__CUDA_T, 0, c->stream>>>(k, cols, S, pg, dgamma, 1.0f);
            if ((s = attn__cuda_launched(c, "norm_backward")) != ATTN_OK) return s;
        }
        if (dbeta) {
            attn__cuda_reduce_parts<<<grid, ATTN__CUDA_T, 0, c->stream>>>(k, cols, S, pb, dbeta, 1.0f);
            if ((s = attn__cuda_launched(c, "norm_backward")) != ATTN_OK) return s;
        }
    }
    return ATTN_OK;
}

/* ---- embedding ---- */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_embedding_kernel(size_t total, int dim,
                                                                            const int32_t *idx, const float *w,
                                                                            float *y) {
    ATTN__CUDA_FOR(e, total) {
        size_t r = (size_t)attn__cuda_divu(e, (unsigned long long)dim);
        y[e] = w[(size_t)(uint32_t)idx[r] * dim + (e - r * dim)];
    }
}

static attn_status attn__cuda_embedding(void *user, size_t n, int dim, const int32_t *idx, const float *w, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    size_t total = n * (size_t)(dim > 0 ? dim : 0);
    if (dim < 0) return attn__cuda_bad(c, "embedding: negative dim");
    if (!total) return ATTN_OK;
    attn__cuda_embedding_kernel<<<attn__cuda_grid(c, total), ATTN__CUDA_T, 0, c->stream>>>(total, dim, idx, w, y);
    return attn__cuda_launched(c, "embedding");
}

/* Backward, deterministic without atomics: sort the keys (index << 32 | i)
   (bitonic, padded to a power of two with ~0), then one block per run of equal
   indices sums its dy rows in a fixed order (8 row lanes, added in order) and
   is the only writer of that dw row. */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_keys_kernel(size_t n, size_t n2, const int32_t *idx,
                                                                       unsigned long long *keys) {
    ATTN__CUDA_FOR(i, n2) keys[i] = i < n ? (unsigned long long)(uint32_t)idx[i] << 32 | i : ~0ull;
}

/* Pairs (i, i + j) with bit j of i clear; the order of the pair is ascending
   when bit k of i is clear. */
static __device__ __forceinline__ void attn__cuda_bitonic_pair(unsigned long long *a, unsigned long long t,
                                                               unsigned long long j, unsigned long long k,
                                                               unsigned long long base) {
    unsigned long long i = 2 * t - (t & (j - 1)), u = a[i], v = a[i + j];
    if ((u > v) == (((base + i) & k) == 0)) {
        a[i] = v;
        a[i + j] = u;
    }
}

/* One compare-exchange step across blocks (j >= the block's chunk). */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_bitonic_global(unsigned long long *keys, size_t half,
                                                                          unsigned long long j, unsigned long long k) {
    ATTN__CUDA_FOR(t, half) attn__cuda_bitonic_pair(keys, t, j, k, 0);
}

/* The steps inside a chunk of 2 blockDim.x keys in shared memory: k == 0 sorts
   each chunk (every k up to the chunk), else the steps j < chunk of stage k. */
static __global__ void __launch_bounds__(1024) attn__cuda_bitonic_local(unsigned long long *keys, unsigned long long k) {
    __shared__ unsigned long long sk[2048];
    unsigned t = threadIdx.x, half = blockDim.x;
    unsigned long long base = (unsigned long long)blockIdx.x * 2 * half, k0 = k ? k : 2, k1 = k ? k : 2ull * half, j;
    sk[t] = keys[base + t];
    sk[t + half] = keys[base + t + half];
    __syncthreads();
    for (k = k0; k <= k1; k <<= 1)
        for (j = k < 2ull * half ? k >> 1 : half; j > 0; j >>= 1) {
            attn__cuda_bitonic_pair(sk, t, j, k, base);
            __syncthreads();
        }
    keys[base + t] = sk[t];
    keys[base + t + half] = sk[t + half];
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_embedding_runs(size_t n, int dim,
                                                                          const unsigned long long *keys,
                                                                          const float *dy, float *dw) {
    __shared__ float sh[8][33];
    int tx = threadIdx.x, ty = threadIdx.y, c0, k;
    size_t p, q;
    for (p = blockIdx.x; p < n; p += gridDim.x) {
        unsigned long long v = keys[p] >> 32;
        if (p > 0 && keys[p - 1] >> 32 == v) continue; /* not the run's head (same for the whole block) */
        for (c0 = 0; c0 < dim; c0 += 32) {
            int col = c0 + tx;
            float acc = -0.0f;
            for (q = p + ty; q < n; q += 8) {
                unsigned long long kq = keys[q];
                if (kq >> 32 != v) break;
                if (col < dim) acc += dy[(size_t)(kq & 0xffffffffu) * dim + col];
            }
            sh[ty][tx] = acc;
            __syncthreads();
            if (ty == 0 && col < dim) {
                for (k = 1; k < 8; k++) acc += sh[k][tx];
                dw[(size_t)v * dim + col] += acc;
            }
            __syncthreads();
        }
    }
}

static attn_status attn__cuda_embedding_backward(void *user, size_t n, int dim, const int32_t *idx, const float *dy,
                                                 float *dw) {
    attn__cuda *c = (attn__cuda *)user;
    unsigned long long *keys;
    size_t n2 = 1, chunk;
    attn_status s;
    if (dim < 0) return attn__cuda_bad(c, "embedding_backward: negative dim");
    if (!n || !dim) return ATTN_OK;
    if (n > 0xffffffffull) return attn__cuda_bad(c, "embedding_backward: more than 2^32 indices");
    while (n2 < n) n2 <<= 1;
    if (!(keys = (unsigned long long *)attn__cuda_scratch(c, n2 * sizeof *keys))) return ATTN_ERR_OUT_OF_MEMORY;
    attn__cuda_keys_kernel<<<attn__cuda_grid(c, n2), ATTN__CUDA_T, 0, c->stream>>>(n, n2, idx, keys);
    if ((s = attn__cuda_launched(c, "embedding_backward")) != ATTN_OK) return s;
    if (n2 >= 2) {
        size_t k, j;
        chunk = n2 < 2048 ? n2 : 2048;
        attn__cuda_bitonic_local<<<(unsigned)(n2 / chunk), (unsigned)(chunk / 2), 0, c->stream>>>(keys, 0);
        for (k = 2 * chunk; k <= n2; k <<= 1) {
            for (j = k >> 1; j >= chunk; j >>= 1)
                attn__cuda_bitonic_global<<<attn__cuda_grid(c, n2 / 2), ATTN__CUDA_T, 0, c->stream>>>(keys, n2 / 2, j, k);
            attn__cuda_bitonic_local<<<(unsigned)(n2 / chunk), (unsigned)(chunk / 2), 0, c->stream>>>(keys, k);
        }
        if ((s = attn__cuda_launched(c, "embedding_backward: sort")) != ATTN_OK) return s;
    }
    attn__cuda_embedding_runs<<<(unsigned)(n < (1u << 20) ? n : (1u << 20)), dim3(32, 8), 0, c->stream>>>(
        n, dim, keys, dy, dw);
    return attn__cuda_launched(c, "embedding_backward");
}

/* ---- cross-entropy ---- */
/* Per row: logp = log_softmax, and the row's loss term (0 when ignored) in
   double as the CPU computes it: (1 - ls) logp[t] + ls sum(logp) / C. */
static __global__ void __launch_bounds__(1024) attn__cuda_ce_rows_kernel(int rows, int C, const float *logits,
                                                                  const int32_t *targets, int ignore, float ls,
                                                                  float *logp, double *terms) {
    __shared__ float sh[8][32];
    __shared__ double shd[8][32];
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    int n = row < rows ? C : 0, j;
    size_t base = (size_t)(row < rows ? row : 0) * C;
    const float *xr = logits + base;
    float *lr = logp + base, m = -INFINITY, s = 0.0f, lse;
    double sm = 0.0;
    for (j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = attn__cuda_row_reduce(m, 1, sh);
    for (j = threadIdx.x; j < n; j += blockDim.x) s += expf(xr[j] - m);
    lse = logf(attn__cuda_row_reduce(s, 0, sh));
    for (j = threadIdx.x; j < n; j += blockDim.x) {
        float lp = (xr[j] - m) - lse;
        lr[j] = lp;
        sm += lp;
    }
    sm = attn__cuda_row_sumd(sm, shd);
    if (row < rows && threadIdx.x == 0) {
        int t = targets[row];
        double term = 0.0;
        if (t != ignore) { /* lp[t] recomputed: the same bits as stored */
            float lpt = (unsigned)t < (unsigned)C ? (xr[t] - m) - lse : NAN;
            term = __dadd_rn(__dmul_rn(1.0 - (double)ls, (double)lpt), (double)ls * sm / (double)C);
        }
        terms[row] = term;
    }
}

/* loss[0] = -sum(terms) / (rows not ignored): one block, a fixed order; 0/0 = NaN. */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_ce_loss_kernel(int rows, const int32_t *targets,
                                                                          int ignore, const double *terms,
                                                                          float *loss) {
    double s = 0.0, cnt = 0.0;
    int r;
    for (r = threadIdx.x; r < rows; r += blockDim.x) {
        s += terms[r];
        cnt += targets[r] != ignore;
    }
    s = attn__cuda_block_sumd(s);
    cnt = attn__cuda_block_sumd(cnt);
    if (threadIdx.x == 0) loss[0] = (float)(-s / cnt);
}

static attn_status attn__cuda_cross_entropy(void *user, int rows, int C, const float *logits, const int32_t *targets,
                                            int ignore, float ls, float *logp, float *loss) {
    attn__cuda *c = (attn__cuda *)user;
    double *terms;
    dim3 block, grid;
    attn_status s;
    if (rows < 0 || C < 0) return attn__cuda_bad(c, "cross_entropy: negative size");
    if (!(terms = (double *)attn__cuda_scratch(c, (size_t)(rows ? rows : 1) * sizeof(double))))
        return ATTN_ERR_OUT_OF_MEMORY;
    if (rows) {
        attn__cuda_rows_cfg(rows, C, &block, &grid);
        attn__cuda_ce_rows_kernel<<<grid, block, 0, c->stream>>>(rows, C, logits, targets, ignore, ls, logp, terms);
        if ((s = attn__cuda_launched(c, "cross_entropy")) != ATTN_OK) return s;
    }
    attn__cuda_ce_loss_kernel<<<1, ATTN__CUDA_T, 0, c->stream>>>(rows, targets, ignore, terms, loss);
    return attn__cuda_launched(c, "cross_entropy");
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_count_kernel(int rows, const int32_t *targets,
                                                                        int ignore, int *count) {
    double cnt = 0.0;
    int r;
    for (r = threadIdx.x; r < rows; r += blockDim.x) cnt += targets[r] != ignore;
    cnt = attn__cuda_block_sumd(cnt);
    if (threadIdx.x == 0) count[0] = (int)cnt;
}

/* The CPU's scalars in the CPU's order, each rounded on its own (no FMA):
   d loss / d logp_c = -scale ((1 - ls) [c = t] + ls / C), then log-softmax's
   backward g_c - softmax_c sum(g). */
static __global__ void __launch_bounds__(1024) attn__cuda_ce_backward_kernel(int rows, int C, const float *logp,
                                                                      const int32_t *targets, int ignore, float ls,
                                                                      const float *dloss, const int *count,
                                                                      float *dlogits) {
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    float scale, g_other, g_target, total;
    const float *lr;
    float *dr;
    int t, j, cnt;
    if (row >= rows) return; /* no syncs in this kernel */
    t = targets[row];
    cnt = count[0];
    if (t == ignore || !cnt) return;
    scale = dloss[0] / (float)cnt;
    g_other = __fmul_rn(-scale, ls / (float)C);
    g_target = __fsub_rn(g_other, __fmul_rn(scale, 1.0f - ls));
    total = __fadd_rn(g_target, __fmul_rn(g_other, (float)(C - 1)));
    lr = logp + (size_t)row * C;
    dr = dlogits + (size_t)row * C;
    for (j = threadIdx.x; j < C; j += blockDim.x)
        dr[j] += __fsub_rn(j == t ? g_target : g_other, __fmul_rn(expf(lr[j]), total));
}

static attn_status attn__cuda_cross_entropy_backward(void *user, int rows, int C, const float *logp,
                                                     const int32_t *targets, int ignore, float ls, const float *dloss,
                                                     float *dlogits) {
    attn__cuda *c = (attn__cuda *)user;
    dim3 block, grid;
    int *count;
    attn_status s;
    if (rows < 0 || C < 0) return attn__cuda_bad(c, "cross_entropy_backward: negative size");
    if (!rows || !C) return ATTN_OK;
    if (!(count = (int *)attn__cuda_scratch(c, sizeof(int)))) return ATTN_ERR_OUT_OF_MEMORY;
    attn__cuda_count_kernel<<<1, ATTN__CUDA_T, 0, c->stream>>>(rows, targets, ignore, count);
    if ((s = attn__cuda_launched(c, "cross_entropy_backward")) != ATTN_OK) return s;
    attn__cuda_rows_cfg(rows, C, &block, &grid);
    attn__cuda_ce_backward_kernel<<<grid, block, 0, c->stream>>>(rows, C, logp, targets, ignore, ls, dloss, count,
                                                                 dlogits);
    return attn__cuda_launched(c, "cross_entropy_backward");
}

/* ---- sum, add_scalar ---- */
/* Stage 1: a grid-stride sum in double per block (the block count depends on n
   only, so the result is the same on every GPU); stage 2: one block, in order. */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_sum_kernel(size_t n, const float *x, int squares,
                                                                      double *part) {
    double s = 0.0;
    ATTN__CUDA_FOR(i, n) {
        double v = x[i];
        s += squares ? v * v : v; /* a float's square is exact in double */
    }
    s = attn__cuda_block_sumd(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_sum_final_kernel(int parts, const double *part,
                                                                            double divide_by, float *out) {
    double s = 0.0;
    int i;
    for (i = threadIdx.x; i < parts; i += blockDim.x) s += part[i];
    s = attn__cuda_block_sumd(s);
    if (threadIdx.x == 0) out[0] = (float)(s / divide_by); /* rounded once, as the CPU */
}

static attn_status attn__cuda_sum(void *user, size_t n, const float *x, int squares, double divide_by, float *out) {
    attn__cuda *c = (attn__cuda *)user;
    size_t blocks = attn__cuda_cdiv(n, 4 * ATTN__CUDA_T);
    double *part;
    attn_status s;
    if (blocks > 1024) blocks = 1024;
    if (!(part = (double *)attn__cuda_scratch(c, (blocks ? blocks : 1) * sizeof(double)))) return ATTN_ERR_OUT_OF_MEMORY;
    if (blocks) {
        attn__cuda_sum_kernel<<<(unsigned)blocks, ATTN__CUDA_T, 0, c->stream>>>(n, x, squares, part);
        if ((s = attn__cuda_launched(c, "sum")) != ATTN_OK) return s;
    }
    attn__cuda_sum_final_kernel<<<1, ATTN__CUDA_T, 0, c->stream>>>((int)blocks, part, divide_by, out);
    return attn__cuda_launched(c, "sum");
}

static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_add_scalar_kernel(size_t n, const float *s,
                                                                             float divide_by, float *y) {
    float v = __fdiv_rn(s[0], divide_by); /* rounded before the add, as the CPU */
    ATTN__CUDA_FOR(i, n) y[i] += v;
}

static attn_status attn__cuda_add_scalar(void *user, size_t n, const float *s, float cc, float *y) {
    attn__cuda *c = (attn__cuda *)user;
    if (!n) return ATTN_OK;
    attn__cuda_add_scalar_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(n, s, cc, y);
    return attn__cuda_launched(c, "add_scalar");
}

/* ---- optimizer update: attn__update_ref's operations one for one (fmaf where
   it fuses, __f*_rn where it must not), so the GPU gives the CPU's bits:
   sqrt and division are correctly rounded on both. ---- */
static __global__ void __launch_bounds__(ATTN__CUDA_T) attn__cuda_optim_kernel(size_t n, attn_backend_update u, float *w,
                                                                        const float *g, float *m, float *v) {
    int l2 = u.wd != 0.0f && u.kind != 2;
    ATTN__CUDA_FOR(k, n) {
        float gk = l2 ? fmaf(w[k], u.wd, g[k]) : g[k];
        if (u.kind == ATTN_OPTIM_SGD) {
            if (m) {
                float mk = u.first ? gk : fmaf(gk, u.damp, __fmul_rn(m[k], u.mom));
                m[k] = mk;
                gk = u.nesterov ? fmaf(mk, u.mom, gk) : mk;
            }
            w[k] = fmaf(gk, u.lr_neg, w[k]);
        } else if (u.kind == ATTN_OPTIM_ADAGRAD) {
            float mk = __fadd_rn(m[k], __fmul_rn(gk, gk));
            m[k] = mk;
            w[k] = __fadd_rn(w[k], __fdiv_rn(__fmul_rn(u.lr_neg, gk), __fadd_rn(__fsqrt_rn(mk), u.eps)));
        } else {
            float wk = u.kind == ATTN_OPTIM_ADAMW ? __fmul_rn(w[k], u.decay) : w[k];
            float mk = fmaf(gk, u.one_b1, __fmul_rn(m[k], u.b1));
            float vk = __fadd_rn(__fmul_rn(v[k], u.b2), __fmul_rn(__fmul_rn(u.one_b2, gk), gk));
            float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vk), u.bc2_sqrt), u.eps);
            m[k] = mk;
            v[k] = vk;
            w[k] = __fadd_rn(wk, __fdiv_rn(__fmul_rn(u.lr_neg, mk), den));
        }
    }
}

static attn_status attn__cuda_optim_update(void *user, size_t n, const attn_backend_update *u, float *w,
                                           const float *g, float *m, float *v) {
    attn__cuda *c = (attn__cuda *)user;
    if (!u || u->kind < ATTN_OPTIM_SGD || u->kind > ATTN_OPTIM_ADAGRAD) return attn__cuda_bad(c, "optim_update: unknown kind");
    if ((u->kind != ATTN_OPTIM_SGD && !m) || ((u->kind == ATTN_OPTIM_ADAM || u->kind == ATTN_OPTIM_ADAMW) && !v))
        return attn__cuda_bad(c, "optim_update: missing optimizer state");
    if (!n) return ATTN_OK;
    attn__cuda_optim_kernel<<<attn__cuda_grid(c, n), ATTN__CUDA_T, 0, c->stream>>>(n, *u, w, g, m, v);
    return attn__cuda_launched(c, "optim_update");
}

/* ---- memory and the table ---- */
static const char *attn__cuda_last_error(void *user) { return ((attn__cuda *)user)->message; }

static void *attn__cuda_alloc(void *user, size_t bytes) {
    attn__cuda *c = (attn__cuda *)user;
    void *p = NULL;
    if (attn__cuda_fail(c, cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc")) return NULL;
    return p;
}

static void attn__cuda_free(void *user, void *ptr) {
    attn__cuda *c = (attn__cuda *)user;
    if (!ptr) return;
    cudaStreamSynchronize(c->stream); /* kernels still queued may use it */
    cudaFree(ptr);
}

/* Pageable host memory: cudaMemcpyAsync stages it, so the call returns only
   once src may be reused (upload) or dst holds the data (download, which also
   waits for every kernel before it on the stream). */
static attn_status attn__cuda_upload(void *user, void *dst, const void *src, size_t bytes) {
    attn__cuda *c = (attn__cuda *)user;
    return attn__cuda_fail(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload");
}

static attn_status attn__cuda_download(void *user, void *dst, const void *src, size_t bytes) {
    attn__cuda *c = (attn__cuda *)user;
    attn_status s = attn__cuda_fail(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download");
    return s ? s : attn__cuda_fail(c, cudaStreamSynchronize(c->stream), "a kernel before this download");
}

static attn_status attn__cuda_sync(void *user) {
    attn__cuda *c = (attn__cuda *)user;
    return attn__cuda_fail(c, cudaStreamSynchronize(c->stream), "sync");
}

static void attn__cuda_message(char *msg, size_t cap, const char *text, const char *detail) {
    if (msg && cap) snprintf(msg, cap, "%s%s%s", text, detail ? ": " : "", detail ? detail : "");
}

ATTN_API attn_status attn_cuda_create(const attn_cuda_desc *desc, attn_backend **out, char *msg, size_t cap) {
    attn_cuda_desc d;
    attn__cuda *c;
    cudaDeviceProp prop;
    int count = 0;
    cudaError_t e;
    if (!out) return ATTN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (desc) d = *desc;
    else memset(&d, 0, sizeof d);
    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) { /* no driver, an old driver, or no GPU: not an error of ours */
        attn__cuda_message(msg, cap, "no usable CUDA device", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        (void)cudaGetLastError();
        return ATTN_ERR_UNSUPPORTED;
    }
    if (d.device < 0 || d.device >= count || (unsigned)d.precision > (unsigned)ATTN_CUDA_FP32) {
        attn__cuda_message(msg, cap, "attn_cuda_create: bad device ordinal or precision", NULL);
        return ATTN_ERR_INVALID_ARGUMENT;
    }
    if ((e = cudaSetDevice(d.device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, d.device)) != cudaSuccess) {
        attn__cuda_message(msg, cap, "cannot use the CUDA device", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return ATTN_ERR_UNSUPPORTED;
    }
    if (!(c = (attn__cuda *)calloc(1, sizeof *c))) return ATTN_ERR_OUT_OF_MEMORY;
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        attn__cuda_message(msg, cap, "cudaStreamCreate", cudaGetErrorString(e));
        free(c);
        return ATTN_ERR_UNSUPPORTED;
    }
    c->device = d.device;
    c->sm = prop.major * 10 + prop.minor;
    c->sm_count = prop.multiProcessorCount;
    c->precision = d.precision;
    snprintf(c->name, sizeof c->name, "%s, sm_%d", prop.name, c->sm);
    { /* by field name, so that two entries of one type cannot trade places */
        attn_backend *t = &c->table;
        memset(t, 0, sizeof *t);
        t->name = "cuda";
        t->user = c;
        t->last_error = attn__cuda_last_error;
        t->alloc = attn__cuda_alloc;
        t->free = attn__cuda_free;
        t->upload = attn__cuda_upload;
        t->download = attn__cuda_download;
        t->sync = attn__cuda_sync;
        t->fill = attn__cuda_fill;
        t->copy4 = attn__cuda_copy4;
        t->binary4 = attn__cuda_binary4;
        t->reduce4 = attn__cuda_reduce4;
        t->gemm = attn__cuda_gemm;
        t->unary = attn__cuda_unary;
        t->unary_backward = attn__cuda_unary_backward;
        t->dropout = attn__cuda_dropout;
        t->softmax = attn__cuda_softmax;
        t->softmax_backward = attn__cuda_softmax_backward;
        t->norm_forward = attn__cuda_norm_forward;
        t->norm_backward = attn__cuda_norm_backward;
        t->embedding = attn__cuda_embedding;
        t->embedding_backward = attn__cuda_embedding_backward;
        t->cross_entropy = attn__cuda_cross_entropy;
        t->cross_entropy_backward = attn__cuda_cross_entropy_backward;
        t->attention = attn__cuda_attention;
        t->attention_backward = attn__cuda_attention_backward;
        t->sum = attn__cuda_sum;
        t->add_scalar = attn__cuda_add_scalar;
        t->optim_update = attn__cuda_optim_update;
    }
    *out = &c->table;
    return ATTN_OK;
}

ATTN_API void attn_cuda_destroy(attn_backend *backend) {
    attn__cuda *c = (attn__cuda *)(backend ? backend->user : NULL);
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    if (c->scratch) cudaFree(c->scratch);
    cudaStreamDestroy(c->stream);
    free(c);
}

ATTN_API const char *attn_cuda_device_name(const attn_backend *backend) {
    return backend && backend->user ? ((const attn__cuda *)backend->user)->name : "";
}

#endif /* ATTN_CUDA_IMPLEMENTATION_DONE */
#endif /* ATTN_CUDA_IMPLEMENTATION */
