/* tools/cuda_emu/cuda_runtime.h - a fake CUDA runtime: just enough of CUDA
   for attn_cuda.cuh's kernels to compile as host C++ (g++) and run on the CPU
   under the emulator in emu.cpp. See tools/cuda_emu/README.md.

   Device code compiles as __CUDA_ARCH__ 750 (sm_75): the inline PTX of the
   TF32 path is behind __CUDA_ARCH__ >= 800, so none is compiled, and the
   device reports 7.5, so none is launched. Kernel launches (kernel<<<...>>>)
   and `extern __shared__` arrays are rewritten by cuda_pp.cpp first. */
#ifndef CUDA_EMU_RUNTIME_H
#define CUDA_EMU_RUNTIME_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>

/* The kernels' fmaf as one instruction, not a libm call (the SIMT GEMM makes
   billions): the build defines CUDA_EMU_FMA where the CPU has FMA. Same
   results either way (fmaf is exact); code before this header (attn.h's CPU
   reference) is unaffected. */
#if defined(CUDA_EMU_FMA) && defined(__x86_64__)
#  pragma GCC target("fma")
#endif

#define __CUDA_ARCH__ 750
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* One block runs at a time, so a static per kernel is exactly one block's
   shared memory. */
#define __shared__ static

/* ---- types ---- */
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 { unsigned x, y, z; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; }; /* aligned as on the GPU: misuse faults */
struct __attribute__((aligned(8))) float2 { float x, y; };
static inline float4 make_float4(float x, float y, float z, float w) { float4 r = {x, y, z, w}; return r; }
static inline float2 make_float2(float x, float y) { float2 r = {x, y}; return r; }

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchOutOfResources = 701
} cudaError_t;
typedef struct CUstream_st *cudaStream_t;
enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxThreadsPerMultiProcessor = 39,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8, cudaFuncAttributePreferredSharedMemoryCarveout = 9 };
enum { cudaSharedmemCarveoutDefault = -1, cudaSharedmemCarveoutMaxShared = 100, cudaSharedmemCarveoutMaxL1 = 0 };
struct cudaFuncAttributes {
    size_t sharedSizeBytes, constSizeBytes, localSizeBytes;
    int maxThreadsPerBlock, numRegs, ptxVersion, binaryVersion, maxDynamicSharedSizeBytes;
};
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin, sharedMemPerMultiprocessor;
    int regsPerBlock, warpSize, maxThreadsPerBlock, maxThreadsPerMultiProcessor, major, minor, multiProcessorCount;
};

/* ---- the runtime API (emu.cpp) ---- */
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d);
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *fn);
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute a, int v);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
/* The C++ API takes the kernel itself (as nvcc's cuda_runtime.h does). */
template <class T> static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, T *fn) {
    return cudaFuncGetAttributes(a, (const void *)fn);
}
template <class T> static inline cudaError_t cudaFuncSetAttribute(T *fn, cudaFuncAttribute a, int v) {
    return cudaFuncSetAttribute((const void *)fn, a, v);
}

/* ---- the emulator's side (emu.cpp) ---- */
/* What cuda_pp.cpp turns kernel<<<grid, block, smem, stream>>>(args) into;
   body calls the kernel with the args, once per emulated thread. */
void emu_launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s, const std::function<void()> &body);
extern uint3 *emu_tid, emu_bid;
extern dim3 emu_bdim, emu_gdim;
extern char *emu_dyn_smem; /* the launch's dynamic shared memory (extern __shared__ arrays) */
#define threadIdx (*emu_tid) /* a pointer, switched with the running fiber */
#define blockIdx emu_bid
#define blockDim emu_bdim
#define gridDim emu_gdim

void emu_syncthreads(void);
uint64_t emu_shfl(uint64_t bits, int mode, int arg, int width, unsigned mask);
/* The "memory" clobber: shared memory is static storage that another fiber
   changed while this one waited, so nothing may stay cached in registers. */
static inline void __syncthreads(void) { emu_syncthreads(); __asm__ __volatile__("" ::: "memory"); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { emu_shfl(0, 4, 0, 32, mask); __asm__ __volatile__("" ::: "memory"); }
template <class T> static inline T emu_shfl_t(unsigned mask, T v, int arg, int width, int mode) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl(b, mode, arg, width, mask);
    memcpy(&v, &b, sizeof v);
    return v;
}
template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) { return emu_shfl_t(m, v, src, w, 0); }
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_shfl_t(m, v, (int)d, w, 1); }
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_shfl_t(m, v, (int)d, w, 2); }
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int x, int w = 32) { return emu_shfl_t(m, v, x, w, 3); }

/* ---- device functions: IEEE float on the host is what the _rn intrinsics
   promise (build with -ffp-contract=off so that no FMA is made of them) ---- */
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
/* CUDA's min/max overloads (the device code calls them unqualified). */
#define EMU_MINMAX(T)                                            \
    static inline T min(T a, T b) { return a < b ? a : b; }      \
    static inline T max(T a, T b) { return a > b ? a : b; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
EMU_MINMAX(long)
EMU_MINMAX(unsigned long)
#undef EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
#endif
