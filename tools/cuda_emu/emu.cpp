/* tools/cuda_emu/emu.cpp - runs CUDA kernels on the CPU, for tests.

   Blocks run one after another. A block's threads are fibers: each runs
   until it reaches __syncthreads, a warp collective (__shfl_*_sync,
   __syncwarp) or its end, then the next one runs. When every live thread
   waits at __syncthreads, all go on; when every lane of a warp waits at a
   collective, the values are exchanged and the warp goes on. Anything else
   (a barrier some threads never reach, lanes that disagree, a thread that
   exits while others wait) is a bug of the kernel: the emulator says which
   launch and stops (exit 3) rather than guess what a GPU would do.

   Checks a GPU would also make: launch shapes, dynamic shared memory above
   48 KB without cudaFuncSetAttribute, or above the opt-in limit. Device
   allocations and the dynamic shared memory end at a guard page (reads or
   writes past them fault) and start filled with NaN bytes (0xff), so a
   kernel that reads what nobody wrote gets NaNs, not zeros.

   Environment: EMU_ORDER=rev|rand runs the threads of a block in reverse or
   random order between barriers (a missing __syncthreads then shows up as a
   wrong result); EMU_STATS=1 prints counts at exit. */
#undef _FORTIFY_SOURCE /* its longjmp check rejects jumps between fiber stacks */
#include "cuda_runtime.h"
#include <setjmp.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <map>
#include <string>

/* ---- the fake device ---- */
static const size_t EMU_MEM = (size_t)2 << 30;  /* device memory */
static const int EMU_OPTIN = 232448;            /* opt-in shared memory per block (sm_90's 227 KB) */
static const int EMU_SM_SMEM = EMU_OPTIN + 1024; /* per SM */
static const int EMU_SMS = 8;                   /* multiprocessors: only sizes grid-stride grids */
/* Registers per thread for cudaFuncGetAttributes: 255 makes the register
   file, not shared memory, limit attention to one block per SM, so it picks
   its shared-memory-resident kernels wherever they fit the opt-in limit (and
   the tests force the reloading ones in a second pass): all 18 run. */
static const int EMU_REGS = 255;

uint3 *emu_tid, emu_bid;
dim3 emu_bdim, emu_gdim;
char *emu_dyn_smem;
static cudaError_t emu_err = cudaSuccess;
static const char *emu_kernel = "";
static long long emu_launches, emu_blocks, emu_switches;

[[noreturn]] static void emu_die(const char *what) {
    fprintf(stderr, "cuda-emu: %s (kernel %s, block %u,%u,%u)\n", what, emu_kernel, emu_bid.x, emu_bid.y, emu_bid.z);
    fflush(stdout);
    exit(3);
}

/* Pages with a PROT_NONE page right after the last byte (rounded to 16). */
struct emu_map { char *base; size_t len, bytes; };
static std::map<void *, emu_map> emu_allocs;
static size_t emu_used;
static char *emu_guarded(size_t bytes, emu_map *m) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), body = (bytes + pg - 1) / pg * pg;
    char *base = (char *)mmap(NULL, body + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == (char *)MAP_FAILED) return NULL;
    mprotect(base + body, pg, PROT_NONE);
    m->base = base, m->len = body + pg, m->bytes = bytes;
    return base + body - ((bytes + 15) & ~(size_t)15);
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    emu_map m;
    char *d;
    *p = NULL;
    if (bytes > EMU_MEM - emu_used || !(d = emu_guarded(bytes, &m))) return emu_err = cudaErrorMemoryAllocation;
    memset(d, 0xff, bytes);
    emu_allocs[d] = m;
    emu_used += bytes;
    *p = d;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    std::map<void *, emu_map>::iterator it = emu_allocs.find(p);
    if (it == emu_allocs.end()) return emu_err = cudaErrorInvalidValue;
    emu_used -= it->second.bytes;
    munmap(it->second.base, it->second.len);
    emu_allocs.erase(it);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, k);
}
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (bytes) memset(p, v, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }

/* Launches run synchronously: a stream is only a handle. */
static struct CUstream_st { int unused; } emu_stream;
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = &emu_stream; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = &emu_stream; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (emu_err = cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return emu_err = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuda-emu (CPU)");
    p->totalGlobalMem = EMU_MEM;
    p->sharedMemPerBlock = 48 * 1024, p->sharedMemPerBlockOptin = EMU_OPTIN, p->sharedMemPerMultiprocessor = EMU_SM_SMEM;
    p->regsPerBlock = 65536, p->warpSize = 32, p->maxThreadsPerBlock = 1024, p->maxThreadsPerMultiProcessor = 2048;
    p->major = 7, p->minor = 5, p->multiProcessorCount = EMU_SMS;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    if (d != 0) return emu_err = cudaErrorInvalidDevice;
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = 48 * 1024; break;
    case cudaDevAttrMultiProcessorCount: *v = EMU_SMS; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *v = 2048; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 7; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 5; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = EMU_SM_SMEM; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = EMU_OPTIN; break;
    default: return emu_err = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
static std::map<const void *, int> emu_dyn_limit; /* per kernel: cudaFuncAttributeMaxDynamicSharedMemorySize */
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *fn) {
    std::map<const void *, int>::iterator it = emu_dyn_limit.find(fn);
    if (!fn) return emu_err = cudaErrorInvalidValue;
    memset(a, 0, sizeof *a);
    a->maxThreadsPerBlock = 1024, a->numRegs = EMU_REGS, a->ptxVersion = a->binaryVersion = 75;
    a->maxDynamicSharedSizeBytes = it == emu_dyn_limit.end() ? 48 * 1024 : it->second;
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute a, int v) {
    if (!fn) return emu_err = cudaErrorInvalidValue;
    if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (v < 0 || v > EMU_OPTIN) return emu_err = cudaErrorInvalidValue;
        emu_dyn_limit[fn] = v;
    } else if (a != cudaFuncAttributePreferredSharedMemoryCarveout || v < -1 || v > 100) {
        return emu_err = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { cudaError_t e = emu_err; emu_err = cudaSuccess; return e; }
cudaError_t cudaPeekAtLastError(void) { return emu_err; }
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    }
    return "unknown error";
}

/* ---- fibers ----
   ucontext only starts a fiber (once per slot for the whole run: a fiber
   loops, one block per turn); switching is _setjmp/_longjmp, which, unlike
   swapcontext, makes no system call to save the signal mask. */
enum { RUN, BAR, WARP, DONE };
struct emu_fiber {
    jmp_buf jb;
    ucontext_t uc;
    int state, started, mode, arg, width;
    unsigned mask;
    uint64_t val;
    uint3 tid;
};
static const size_t EMU_STACK = 256 * 1024;
static emu_fiber emu_f[1024];
static jmp_buf emu_sched;
static int emu_cur;
static const std::function<void()> *emu_body;

static void emu_yield(int state) {
    emu_f[emu_cur].state = state;
    if (!_setjmp(emu_f[emu_cur].jb)) _longjmp(emu_sched, 1);
}
static void emu_entry(void) {
    for (;;) {
        (*emu_body)();
        emu_yield(DONE);
    }
}
static void emu_resume(int i) {
    emu_fiber *f = &emu_f[i];
    emu_cur = i, emu_tid = &f->tid, emu_switches++;
    if (!_setjmp(emu_sched)) {
        if (!f->started) {
            /* the stack's lowest page is a guard: an overflow faults */
            char *st = (char *)mmap(NULL, EMU_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (st == (char *)MAP_FAILED) emu_die("no memory for a fiber stack");
            mprotect(st, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE);
            getcontext(&f->uc);
            f->uc.uc_stack.ss_sp = st, f->uc.uc_stack.ss_size = EMU_STACK, f->uc.uc_link = NULL;
            makecontext(&f->uc, emu_entry, 0);
            f->started = 1;
            setcontext(&f->uc);
        }
        _longjmp(f->jb, 1);
    }
}

void emu_syncthreads(void) { emu_yield(BAR); }

/* mode 0 index, 1 up, 2 down, 3 xor, 4 none (__syncwarp). */
uint64_t emu_shfl(uint64_t bits, int mode, int arg, int width, unsigned mask) {
    emu_fiber *f = &emu_f[emu_cur];
    f->val = bits, f->mode = mode, f->arg = arg, f->width = width, f->mask = mask;
    emu_yield(WARP);
    return f->val; /* the scheduler put the source lane's value here */
}

/* Every lane of warp w (lanes n) waits at a collective: exchange. */
static void emu_warp_exchange(int w, int n) {
    emu_fiber *L = &emu_f[w * 32];
    uint64_t v[32];
    int l;
    for (l = 0; l < n; l++) {
        if (L[l].mode != L[0].mode || L[l].width != L[0].width) emu_die("lanes of a warp at different collectives");
        if (L[l].mask != (n == 32 ? 0xffffffffu : (1u << n) - 1))
            emu_die("warp collective whose mask is not the whole warp (not emulated)");
        v[l] = L[l].val;
    }
    for (l = 0; l < n; l++) {
        int wd = L[l].width, base = l / wd * wd, a = L[l].arg, s = l;
        if (wd < 1 || wd > 32 || (wd & (wd - 1))) emu_die("shuffle width not a power of two up to 32");
        switch (L[l].mode) {
        case 0: s = base + (a % wd + wd) % wd; break;
        case 1: s = l - a >= base ? l - a : l; break;
        case 2: s = l + a < base + wd ? l + a : l; break;
        case 3: s = (l ^ a) < base + wd ? l ^ a : l; break;
        }
        if (s >= n) emu_die("shuffle from a lane past the block's last thread");
        L[l].val = v[s];
        L[l].state = RUN;
    }
}

static int emu_order = getenv("EMU_ORDER") ? (!strcmp(getenv("EMU_ORDER"), "rev") ? 1 : 2) : 0;
static unsigned long long emu_rng = 0x9E3779B97F4A7C15ull;

static void emu_shuffle(int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        emu_rng ^= emu_rng << 13, emu_rng ^= emu_rng >> 7, emu_rng ^= emu_rng << 17;
        int j = (int)(emu_rng % (unsigned long long)(i + 1)), t = v[i];
        v[i] = v[j], v[j] = t;
    }
}
/* Warp by warp: each warp runs as far as it can (through its collectives,
   up to __syncthreads) before the next starts, as a GPU may let one warp run
   ahead of the others; so a missing barrier between warps shows up. */
static void emu_run_block(int nt) {
    int wo[32], lo[32], i, w, nw = (nt + 31) / 32; /* warp order, lane order */
    for (i = 0; i < nt; i++) emu_f[i].state = RUN;
    for (i = 0; i < 32; i++) wo[i] = emu_order == 1 ? nw - 1 - i : i, lo[i] = emu_order == 1 ? 31 - i : i;
    for (;;) {
        int done = 0, bar = 0;
        if (emu_order == 2) emu_shuffle(wo, nw), emu_shuffle(lo, 32);
        for (w = 0; w < nw; w++) {
            emu_fiber *L = &emu_f[wo[w] * 32];
            int n = nt - wo[w] * 32 < 32 ? nt - wo[w] * 32 : 32;
            for (;;) {
                int at = 0, exited = 0;
                for (i = 0; i < 32; i++)
                    if (lo[i] < n && L[lo[i]].state == RUN) emu_resume(wo[w] * 32 + lo[i]);
                for (i = 0; i < n; i++) at += L[i].state == WARP, exited += L[i].state == DONE;
                if (at && exited) emu_die("warp collective after some lanes of the warp exited");
                if (at != n) break;
                emu_warp_exchange(wo[w], n);
            }
        }
        for (i = 0; i < nt; i++) done += emu_f[i].state == DONE, bar += emu_f[i].state == BAR;
        if (done == nt) return;
        if (bar + done < nt) emu_die("deadlock: threads wait at __syncthreads and at a warp collective");
        if (done) emu_die("__syncthreads that some threads of the block never reach (they exited)");
        for (i = 0; i < nt; i++) emu_f[i].state = RUN;
    }
}

struct emu_kstat { std::string name; long long launches, switches; double s; };
static std::map<const void *, emu_kstat> emu_per_kernel; /* for EMU_STATS */

void emu_launch(const char *name, const void *fn, dim3 g, dim3 b, size_t smem, cudaStream_t,
                const std::function<void()> &body) {
    static char *smem_buf;
    static emu_map smem_map;
    unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
    std::map<const void *, int>::iterator lim = emu_dyn_limit.find(fn);
    if (!nt || nt > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || !g.x || !g.y || !g.z || g.x > 0x7fffffffu ||
        g.y > 65535 || g.z > 65535) {
        emu_err = cudaErrorInvalidConfiguration;
        return;
    }
    if (smem > (size_t)EMU_OPTIN || (smem > 48 * 1024 && (lim == emu_dyn_limit.end() || smem > (size_t)lim->second))) {
        emu_err = cudaErrorInvalidValue;
        return;
    }
    if (!smem_buf && !(smem_buf = emu_guarded(EMU_OPTIN, &smem_map))) emu_die("no memory for shared memory");
    emu_dyn_smem = smem_buf + ((EMU_OPTIN + 15) & ~15) - ((smem + 15) & ~(size_t)15);
    memset(emu_dyn_smem, 0xff, smem);
    clock_t t0 = clock();
    long long sw0 = emu_switches;
    emu_kernel = name, emu_body = &body, emu_gdim = g, emu_bdim = b;
    emu_launches++;
    for (unsigned i = 0; i < nt; i++)
        emu_f[i].tid.x = i % b.x, emu_f[i].tid.y = i / b.x % b.y, emu_f[i].tid.z = i / (b.x * b.y);
    for (emu_bid.z = 0; emu_bid.z < g.z; emu_bid.z++)
        for (emu_bid.y = 0; emu_bid.y < g.y; emu_bid.y++)
            for (emu_bid.x = 0; emu_bid.x < g.x; emu_bid.x++) emu_run_block((int)nt), emu_blocks++;
    emu_bid.x = emu_bid.y = emu_bid.z = 0;
    emu_kstat &k = emu_per_kernel[fn];
    k.name = name, k.launches++, k.switches += emu_switches - sw0, k.s += (double)(clock() - t0) / CLOCKS_PER_SEC;
}

static void emu_stats(void) {
    fprintf(stderr, "cuda-emu: %lld launches, %lld blocks, %lld fiber switches, %.1f s CPU\n", emu_launches,
            emu_blocks, emu_switches, (double)clock() / CLOCKS_PER_SEC);
    for (std::map<const void *, emu_kstat>::iterator it = emu_per_kernel.begin(); it != emu_per_kernel.end(); ++it)
        fprintf(stderr, "  %-36s %p %6lld launches %7.2f s %11lld switches\n", it->second.name.c_str(), it->first,
                it->second.launches, it->second.s, it->second.switches);
}
static int emu_stats_on __attribute__((unused)) = getenv("EMU_STATS") && atexit(emu_stats) == 0;
