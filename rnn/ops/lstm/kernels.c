/* Whole-sequence LSTM kernels for rnn.ops.lstm (float32, CPU).
 *
 * Two TensorFlow ops, registered through TensorFlow's stable C API (no C++
 * ABI to match) when tf.load_op_library loads the library:
 *
 *   RnnLstmForward(zx, recurrent_kernel, h0, c0, mask) -> (s, cs, hs)
 *   RnnLstmBackward(s, cs, d_out, dh, dc, recurrent_kernel, mask)
 *       -> (dz, dh0, dc0)
 *
 * They run the recurrences that the pure-TensorFlow programs in
 * programs.py run as tf.while_loops, with the same inputs and outputs
 * (all tiles are [features, batch], batch contiguous; see programs.py):
 *
 *   zx    [4H, T, B]   input projection x_t @ kernel + bias, gate-major
 *   rk    [H, 4H]      recurrent kernel (Keras layout, gates i, f, g, o)
 *   h0,c0 [H, B]       initial state
 *   mask  [T, B] bool  valid steps in processing order, or [0]: all valid
 *   s     [T, 4H, B]   gate sigmoids; the g rows hold (1 + tanh(z_g)) / 2
 *   cs,hs [T+1, H, B]  states before every step and after the last
 *   d_out [T, H, B]    gradient of the outputs (zero where masked)
 *   dz    [4H, T, B]   gradient of the gate pre-activations (the columns
 *                      layout the weight-gradient matmuls take)
 *
 * Per step the forward does one [4H, H] x [H, B] product and the backward
 * one [H, 4H] x [4H, B] product, then the element-wise cell, without the
 * executor's per-op and per-iteration work between them. The products are
 * split by hidden unit over a few threads that meet at one barrier per step
 * (../threads.h: how they wait, where they run, and how they give up the
 * threads when other work competes for the cores): each thread owns all four
 * gate rows of its units, so it can run the cell for them right after its
 * share of the product. The weights are packed once per call into panels of
 * MR rows so the inner kernel streams them; batch columns are padded to a
 * multiple of the tile width inside the kernel. Every element is computed the same way
 * whatever the thread count, so results do not depend on it.
 *
 * One library for every x86-64 CPU (rnn/ops/_build.py): this file is
 * compiled once per instruction set with -DRNN_KERNEL_ISA=<name> and that
 * set's -march level (the compute part below, whose entry points are
 * named after the set), and once with -DRNN_KERNEL_REGISTER (the op
 * registration at the end), which picks at load time the widest set this
 * CPU and OS support. RNN_KERNEL_ISA=<name> in the environment picks a
 * narrower one (tests compare them).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tfc.h" /* TensorFlow's C API, and fail, check_dims, output, ... */

#ifdef RNN_KERNEL_ISA
/* ============================================== the compute part, per ISA */

/* Vector width VW (floats), accumulator vectors per row NV, rows per panel
 * MR (two hidden units x four gates in the forward product). */
#if defined(__AVX512F__)
#define VW 16
#define NV 2
#elif defined(__AVX__)
#define VW 8
#define NV 1
#else
#define VW 4
#define NV 2
#endif
#define MR         8
#define NR         (VW * NV)
#define UNIT_ALIGN 8 /* units per thread share: a multiple of MR / 4 and MR */

typedef float vf __attribute__((vector_size(VW * sizeof(float)), aligned(4)));

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* ------------------------------------------------------------------ math */

#include "../fastmath.h" /* tanh_f, sigmoid_f */

/* c[MR x nv*VW] = sum_k a[k][0:MR] (x) b[k][0:nv*VW]: a is one packed
 * panel, b has row stride ldb, c row stride ldc. Always inlined with a
 * constant nv, so each width is its own fully unrolled kernel. */
static inline __attribute__((always_inline)) void
micro_kernel(int nv, int64_t K, const float *restrict a, const float *restrict b, int64_t ldb,
             float *restrict c, int64_t ldc)
{
    vf acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = (vf){0};
    for (int64_t k = 0; k < K; k++) {
        vf bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = *(const vf *)(b + k * ldb + v * VW);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const float ai = a[k * MR + i];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i][v] += ai * bv[v];
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            *(vf *)(c + i * ldc + v * VW) = acc[i][v];
}

/* c[MR x nr] = panel (K x MR) times b[K x nr], nr = NR or (narrow) VW. */
static void
tile_product(int64_t K, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc,
             int64_t nr)
{
    if (nr == NR)
        micro_kernel(NV, K, a, b, ldb, c, ldc);
    else
        micro_kernel(1, K, a, b, ldb, c, ldc);
}

/* c[rows p0*MR .. p1*MR) = packed panels p0..p1 of a (each K x MR) times
 * b [K x ldb]; all ldb columns (a multiple of nr). */
static void
panel_product(const float *a, int64_t K, int64_t p0, int64_t p1, const float *b, int64_t ldb,
              float *c, int64_t nr)
{
    for (int64_t p = p0; p < p1; p++)
        for (int64_t j = 0; j < ldb; j += nr)
            tile_product(K, a + p * K * MR, b + j, ldb, c + p * MR * ldb + j, ldb, nr);
}

/* One hidden unit's step over the batch. z: its four product rows (stride
 * zs), x: its four input-projection rows (stride xs), keep: 1 where the
 * step is valid; s: its four gate rows (stride ss). */
__attribute__((noinline)) static void
forward_cell(int64_t B, const float *restrict z, int64_t zs, const float *restrict x, int64_t xs,
             const unsigned char *restrict keep, const float *restrict c_prev,
             const float *restrict h_prev, float *restrict s, int64_t ss, float *restrict c_new,
             float *restrict h_new, float *restrict h_operand)
{
    for (int64_t b = 0; b < B; b++) {
        const float i = sigmoid_f(z[b] + x[b]);
        const float f = sigmoid_f(z[zs + b] + x[xs + b]);
        const float g = tanh_f(z[2 * zs + b] + x[2 * xs + b]);
        const float o = sigmoid_f(z[3 * zs + b] + x[3 * xs + b]);
        const float c = f * c_prev[b] + i * g;
        const float h = o * tanh_f(c);
        const bool valid = keep[b] != 0;
        s[b] = i;
        s[ss + b] = f;
        s[2 * ss + b] = 0.5f * g + 0.5f;
        s[3 * ss + b] = o;
        c_new[b] = valid ? c : c_prev[b];
        h_new[b] = h_operand[b] = valid ? h : h_prev[b];
    }
}

/* forward_cell where steps may start from the reset state: r marks them
 * (their c_prev is cr), next_r (NULL after the last step) the next step's,
 * whose h operand is then hr. A separate function keeps forward_cell's loop
 * as it is for the runs without resets. */
__attribute__((noinline)) static void
forward_cell_reset(int64_t B, const float *restrict z, int64_t zs, const float *restrict x,
                   int64_t xs, const unsigned char *restrict keep, const float *restrict c_prev,
                   const float *restrict h_prev, float *restrict s, int64_t ss,
                   float *restrict c_new, float *restrict h_new, float *restrict h_operand,
                   const unsigned char *restrict r, const unsigned char *restrict next_r,
                   const float *restrict hr, const float *restrict cr)
{
    for (int64_t b = 0; b < B; b++) {
        const float i = sigmoid_f(z[b] + x[b]);
        const float f = sigmoid_f(z[zs + b] + x[xs + b]);
        const float g = tanh_f(z[2 * zs + b] + x[2 * xs + b]);
        const float o = sigmoid_f(z[3 * zs + b] + x[3 * xs + b]);
        const float cp = r[b] ? cr[b] : c_prev[b];
        const float c = f * cp + i * g;
        const float h = o * tanh_f(c);
        const bool valid = keep[b] != 0; /* (a reset step is always valid) */
        s[b] = i;
        s[ss + b] = f;
        s[2 * ss + b] = 0.5f * g + 0.5f;
        s[3 * ss + b] = o;
        c_new[b] = valid ? c : c_prev[b];
        h_new[b] = valid ? h : h_prev[b];
        h_operand[b] = next_r && next_r[b] ? hr[b] : h_new[b];
    }
}

/* One hidden unit's backward step over the batch: reads its gate rows s
 * (stride ss), carries dh (replaced by what passes through a step past the
 * length; the product adds rk dz later) and dc, and writes dz both to the
 * output rows (stride zs) and to its four interleaved operand rows (stride
 * vs). */
__attribute__((noinline)) static void
backward_cell(int64_t B, const float *restrict s, int64_t ss, const float *restrict c_prev,
              const float *restrict c_cur, const float *restrict d_out,
              const unsigned char *restrict keep, float *restrict dh, float *restrict dc,
              float *restrict dz, int64_t zs, float *restrict v, int64_t vs)
{
    for (int64_t b = 0; b < B; b++) {
        const float i = s[b], f = s[ss + b], g = 2.0f * s[2 * ss + b] - 1.0f;
        const float o = s[3 * ss + b];
        const float tc = tanh_f(c_cur[b]);
        /* A step past the length leaves the state unchanged: its factors are
         * selected away (not multiplied by 0, which would let a NaN or inf in
         * the padding through), dc and dh pass through. */
        const bool valid = keep[b] != 0;
        const float a = valid ? o * (1.0f - tc * tc) : 0.0f;
        const float pi = valid ? g * i * (1.0f - i) : 0.0f;
        const float pf = valid ? c_prev[b] * f * (1.0f - f) : 0.0f;
        const float pg = valid ? i * (1.0f - g * g) : 0.0f;
        const float po = valid ? tc * o * (1.0f - o) : 0.0f;
        const float dht = dh[b] + d_out[b];
        const float dct = dc[b] + dht * a;
        dz[b] = dct * pi;
        dz[zs + b] = dct * pf;
        dz[2 * zs + b] = dct * pg;
        dz[3 * zs + b] = dht * po;
        dc[b] = dct * (valid ? f : 1.0f);
        dh[b] = valid ? 0.0f : dht; /* the product adds rk dz to it */
    }
    /* (A separate copy: storing to both in the loop above stops GCC from
     * vectorising it.) */
    for (int q = 0; q < 4; q++)
        memcpy(v + q * vs, dz + q * zs, B * sizeof(float));
}

/* Around backward_cell, for what only some runs have (each loop vectorises;
 * backward_cell itself stays as it is): the cell-state gradients of a step
 * (d_cs, added to the carried dc first) and resets (r: the steps' c_prev
 * was cr, and the cell-state gradient they pass back goes to d_cr). */
static void
add_row(int64_t B, float *restrict dst, const float *restrict src)
{
    for (int64_t b = 0; b < B; b++)
        dst[b] += src[b];
}

static void
entering_row(int64_t B, const unsigned char *restrict r, const float *restrict cr,
             const float *restrict c_prev, float *restrict out)
{
    for (int64_t b = 0; b < B; b++)
        out[b] = r[b] ? cr[b] : c_prev[b];
}

/* Moves the marked columns of a carried gradient row into the reset state's. */
static void
divert_row(int64_t B, const unsigned char *restrict r, float *restrict carried,
           float *restrict d_reset)
{
    for (int64_t b = 0; b < B; b++) {
        const float g = carried[b];
        d_reset[b] += r[b] ? g : 0.0f;
        carried[b] = r[b] ? 0.0f : g;
    }
}

static bool
any_set(int64_t B, const unsigned char *r)
{
    for (int64_t b = 0; b < B; b++)
        if (r[b])
            return true;
    return false;
}

/* --------------------------------------------------------------- threads */

/* The threads and their barrier, shared with the other kernel library. */
#define RNN_THREADS_ENV "RNN_LSTM_THREADS"
#include "../threads.h"

/* ------------------------------------------------------------------ jobs */

struct job {
    int64_t T, B, H, Hp; /* Hp: H padded to UNIT_ALIGN */
    int64_t Bp, nr;      /* B padded to a multiple of the tile width nr */
    int nthreads;
    barrier_t barrier;
    const float *rk;           /* [H, 4H] */
    const unsigned char *mask; /* [T, B] bools, or one row of ones */
    int64_t mask_stride;       /* B, or 0 for the row of ones */
    unsigned char *ones;       /* owned row of ones, or NULL */
    float *packed;             /* packed weight panels */
    float *zbuf;               /* per-thread-rows scratch [4 Hp, Bp] (fwd) */
    float *vbuf[2];            /* double-buffered [., Bp] product operand */
    float *dh;                 /* [Hp, Bp] (bwd) */
    float *dc;                 /* [H, B] (bwd) */
    float *cbuf;               /* [H, B] entering cell states of a reset step (bwd) */
    /* forward */
    const float *zx; /* [4H, T, B] */
    float *s, *cs, *hs;
    /* backward */
    const float *ss, *d_out;
    float *dz, *dc0, *dh0;
    /* resets (reset NULL: none): the state entering step t is the reset
     * state where reset[t, b] */
    const unsigned char *reset; /* [T, B] processing order */
    const float *hr, *cr;       /* [H, B] reset state (fwd: both, bwd: cr) */
    float *d_hr, *d_cr;         /* [H, B] its gradients (bwd) */
    const float *d_cs;          /* [T, H, B] cell-state gradients, or NULL (bwd) */
};

static void
set_threads(job_t *j, int n)
{
    j->nthreads = n;
    j->barrier.n = n;
}

/* Thread `index`'s hidden units [u0, u1): UNIT_ALIGN-unit blocks shared as
 * evenly as they go (every thread gets at least one: nthreads <= blocks). */
static void
unit_range(const job_t *j, int index, int64_t *u0, int64_t *u1)
{
    const int64_t blocks = j->Hp / UNIT_ALIGN, n = j->nthreads;
    *u0 = index * blocks / n * UNIT_ALIGN;
    *u1 = (index + 1) * blocks / n * UNIT_ALIGN;
}

/* After a barrier: whether this thread stops because the job went on to
 * thread 0 alone; thread 0 then takes every unit. */
static bool
leave_if_single(job_t *j, int index, int64_t *u0, int64_t *u1)
{
    if (j->barrier.n == 1 || !atomic_load(&j->barrier.single))
        return false;
    if (index != 0)
        return true;
    j->barrier.n = 1;
    *u0 = 0;
    *u1 = j->Hp;
    return false;
}

/* Forward panels: row 4u + q of the product is unit u, gate q, so that a
 * thread's rows hold every gate of its units; column k is rk[k, q H + u]. */
static void
pack_forward(job_t *j, int64_t u0, int64_t u1)
{
    const int64_t H = j->H, G = 4 * H;
    for (int64_t p = u0 * 4 / MR; p < u1 * 4 / MR; p++) {
        float *panel = j->packed + p * H * MR;
        for (int64_t k = 0; k < H; k++)
            for (int i = 0; i < MR; i++) {
                int64_t row = p * MR + i, u = row / 4, q = row % 4;
                panel[k * MR + i] = u < H ? j->rk[k * G + q * H + u] : 0.0f;
            }
    }
}

/* Backward panels: row u, column 4v + q is rk[u, q H + v] (the layout of
 * the interleaved dz rows the cell writes). */
static void
pack_backward(job_t *j, int64_t u0, int64_t u1)
{
    const int64_t H = j->H, G = 4 * H, K = 4 * j->Hp;
    for (int64_t p = u0 / MR; p < u1 / MR; p++) {
        float *panel = j->packed + p * K * MR;
        for (int64_t k = 0; k < K; k++) {
            int64_t v = k / 4, q = k % 4;
            for (int i = 0; i < MR; i++) {
                int64_t u = p * MR + i;
                panel[k * MR + i] = (u < H && v < H) ? j->rk[u * G + q * H + v] : 0.0f;
            }
        }
    }
}

static void
forward_work(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_forward(j, u0, u1);
    /* The hidden state entering step 0 into the first operand buffer (own rows). */
    for (int64_t u = u0; u < u1 && u < H; u++) {
        float *row = j->vbuf[0] + u * Bp;
        memcpy(row, j->hs + u * B, B * sizeof(float));
        if (j->reset)
            for (int64_t b = 0; b < B; b++)
                if (j->reset[b])
                    row[b] = j->hr[u * B + b];
    }
    barrier_wait(&j->barrier);
    for (int64_t t = 0; t < T; t++) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        const float *hcur = j->vbuf[t & 1];
        float *hnext = j->vbuf[(t + 1) & 1];
        panel_product(j->packed, H, u0 * 4 / MR, u1 * 4 / MR, hcur, Bp, j->zbuf, j->nr);
        const unsigned char *m = j->mask + t * j->mask_stride;
        const float *c_prev = j->cs + t * HB, *h_prev = j->hs + t * HB;
        float *c_new = j->cs + (t + 1) * HB, *h_new = j->hs + (t + 1) * HB;
        float *s = j->s + t * 4 * HB;
        if (j->reset) {
            const unsigned char *r = j->reset + t * B;
            const unsigned char *next_r = t + 1 < T ? r + B : NULL;
            for (int64_t u = u0; u < u1 && u < H; u++) {
                const float *x = j->zx + u * T * B + t * B;
                forward_cell_reset(B, j->zbuf + 4 * u * Bp, Bp, x, H * T * B, m, c_prev + u * B,
                                   h_prev + u * B, s + u * B, HB, c_new + u * B, h_new + u * B,
                                   hnext + u * Bp, r, next_r, j->hr + u * B, j->cr + u * B);
            }
        }
        else {
            for (int64_t u = u0; u < u1 && u < H; u++) {
                const float *x = j->zx + u * T * B + t * B;
                forward_cell(B, j->zbuf + 4 * u * Bp, Bp, x, H * T * B, m, c_prev + u * B,
                             h_prev + u * B, s + u * B, HB, c_new + u * B, h_new + u * B,
                             hnext + u * Bp);
            }
        }
        barrier_wait(&j->barrier);
    }
}

static void
backward_work(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, nr = j->nr;
    const int64_t K = 4 * j->Hp;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_backward(j, u0, u1);
    barrier_wait(&j->barrier);
    for (int64_t t = T - 1; t >= 0; t--) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        float *dzv = j->vbuf[t & 1];
        const unsigned char *m = j->mask + t * j->mask_stride;
        const float *s = j->ss + t * 4 * HB;
        const float *c_prev = j->cs + t * HB, *c_cur = j->cs + (t + 1) * HB;
        const float *dout = j->d_out + t * HB;
        float *dz = j->dz + t * B; /* [4H, T, B]: unit u at + u T B */
        const unsigned char *r = j->reset ? j->reset + t * B : NULL;
        if (r && !any_set(B, r))
            r = NULL; /* most steps reset nobody */
        for (int64_t u = u0; u < u1 && u < H; u++) {
            const float *cp = c_prev + u * B;
            float *dcu = j->dc + u * B;
            if (j->d_cs)
                add_row(B, dcu, j->d_cs + t * HB + u * B);
            if (r) {
                float *row = j->cbuf + u * B;
                entering_row(B, r, j->cr + u * B, cp, row);
                cp = row;
            }
            backward_cell(B, s + u * B, HB, cp, c_cur + u * B, dout + u * B, m, j->dh + u * Bp, dcu,
                          dz + u * T * B, H * T * B, dzv + 4 * u * Bp, Bp);
            if (r)
                divert_row(B, r, dcu, j->d_cr + u * B);
        }
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        /* dh_prev = rk dz for the own units, added to what passed through. */
        for (int64_t p = u0 / MR; p < u1 / MR; p++) {
            float tile[MR * NR] __attribute__((aligned(64)));
            for (int64_t c0 = 0; c0 < Bp; c0 += nr) {
                tile_product(K, j->packed + p * K * MR, dzv + c0, Bp, tile, nr, nr);
                for (int i = 0; i < MR; i++) {
                    float *dst = j->dh + (p * MR + i) * Bp + c0;
                    for (int64_t c = 0; c < nr; c++)
                        dst[c] += tile[i * nr + c];
                }
            }
        }
        /* What entered a reset step came from the reset state. */
        if (r)
            for (int64_t u = u0; u < u1 && u < H; u++)
                divert_row(B, r, j->dh + u * Bp, j->d_hr + u * B);
    }
}

/* ----------------------------------------------------------- op plumbing */

static void *
alloc_floats(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static void
init_job(job_t *j, int64_t T, int64_t B, int64_t H, double flops)
{
    memset(j, 0, sizeof *j);
    j->T = T;
    j->B = B;
    j->H = H;
    j->nr = B <= VW ? VW : NR; /* narrow tiles for small batches */
    j->Bp = (B + j->nr - 1) / j->nr * j->nr;
    j->Hp = (H + UNIT_ALIGN - 1) / UNIT_ALIGN * UNIT_ALIGN;
    set_threads(j, thread_count(flops, j->Hp));
}

/* The [T, B] mask tensor, or (for the [0] "no mask") one row of ones that
 * every step reads; freed by finish_job. */
static bool
set_mask(job_t *j, TF_Tensor *mask)
{
    if (TF_NumDims(mask) == 2) {
        j->mask = TF_TensorData(mask);
        j->mask_stride = j->B;
        return true;
    }
    unsigned char *ones = malloc(j->B > 0 ? j->B : 1);
    if (!ones)
        return false;
    memset(ones, 1, j->B > 0 ? j->B : 1);
    j->mask = j->ones = ones;
    j->mask_stride = 0;
    return true;
}

static void
finish_job(job_t *j)
{
    free(j->ones);
    free(j->packed);
    free(j->zbuf);
    free(j->vbuf[0]);
    free(j->vbuf[1]);
    free(j->dh);
    free(j->cbuf);
}

/* The end of every call, on every path: frees the job's buffers, the
 * tensor handles (NULL where never obtained) and the status. */
static void
end_call(job_t *j, TF_Tensor **in, int n_in, TF_Tensor **out, int n_out, TF_Status *st)
{
    finish_job(j);
    release_call(in, n_in, out, n_out, st);
}

void
CAT(rnn_lstm_forward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnLstmForward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[8] = {0}, *out[3] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 8))
        goto done;
    if (TF_NumDims(in[0]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnLstmForward: zx must be [4H, T, B]");
        goto done;
    }
    const int64_t G = TF_Dim(in[0], 0), T = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    const int64_t H = G / 4;
    const int64_t rk_dims[2] = {H, 4 * H}, state[2] = {H, B}, zx_dims[3] = {4 * H, T, B};
    if (!check_dims(ctx, st, op, "zx", in[0], 3, zx_dims) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[1], 2, rk_dims) ||
        !check_dims(ctx, st, op, "h0", in[2], 2, state) ||
        !check_dims(ctx, st, op, "c0", in[3], 2, state) || !check_mask(ctx, st, op, in[4], T, B))
        goto done;
    const int64_t reset_dims[2] = {T, B};
    const bool resets = given(in[5]);
    if (!check_optional(ctx, st, op, "reset", in[5], 2, reset_dims) ||
        (resets && (!check_dims(ctx, st, op, "h_reset", in[6], 2, state) ||
                    !check_dims(ctx, st, op, "c_reset", in[7], 2, state))))
        goto done;
    const int64_t s_dims[3] = {T, 4 * H, B}, c_dims[3] = {T + 1, H, B};
    if (!(out[0] = output(ctx, st, 0, s_dims, 3)) || !(out[1] = output(ctx, st, 1, c_dims, 3)) ||
        !(out[2] = output(ctx, st, 2, c_dims, 3)))
        goto done;
    init_job(&j, T, B, H, 8.0 * H * H * B);
    j.zx = TF_TensorData(in[0]);
    j.rk = TF_TensorData(in[1]);
    if (resets) {
        j.reset = TF_TensorData(in[5]);
        j.hr = TF_TensorData(in[6]);
        j.cr = TF_TensorData(in[7]);
    }
    if (!set_mask(&j, in[4])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnLstmForward: out of memory");
        goto done;
    }
    j.s = TF_TensorData(out[0]);
    j.cs = TF_TensorData(out[1]);
    j.hs = TF_TensorData(out[2]);
    if (H * B > 0) {
        memcpy(j.hs, TF_TensorData(in[2]), H * B * sizeof(float));
        memcpy(j.cs, TF_TensorData(in[3]), H * B * sizeof(float));
    }
    if (T == 0 || H == 0 || B == 0)
        goto done; /* nothing to step */
    j.packed = alloc_floats(4 * j.Hp * H);
    j.zbuf = alloc_floats(4 * j.Hp * j.Bp);
    j.vbuf[0] = alloc_floats(j.Hp * j.Bp);
    j.vbuf[1] = alloc_floats(j.Hp * j.Bp);
    if (!j.packed || !j.zbuf || !j.vbuf[0] || !j.vbuf[1]) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnLstmForward: out of memory");
    }
    else {
        run_threads(&j, j.nthreads, forward_work);
    }
done:
    end_call(&j, in, 8, out, 3, st);
}

void
CAT(rnn_lstm_backward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnLstmBackward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[10] = {0}, *out[5] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 10))
        goto done;
    if (TF_NumDims(in[0]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnLstmBackward: s must be [T, 4H, B]");
        goto done;
    }
    const int64_t T = TF_Dim(in[0], 0), G = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    const int64_t H = G / 4;
    const int64_t s_dims[3] = {T, 4 * H, B}, c_dims[3] = {T + 1, H, B};
    const int64_t o_dims[3] = {T, H, B}, state[2] = {H, B}, rk_dims[2] = {H, 4 * H};
    if (!check_dims(ctx, st, op, "s", in[0], 3, s_dims) ||
        !check_dims(ctx, st, op, "cs", in[1], 3, c_dims) ||
        !check_dims(ctx, st, op, "d_out", in[2], 3, o_dims) ||
        !check_dims(ctx, st, op, "dh", in[3], 2, state) ||
        !check_dims(ctx, st, op, "dc", in[4], 2, state) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[5], 2, rk_dims) ||
        !check_mask(ctx, st, op, in[6], T, B))
        goto done;
    const int64_t reset_dims[2] = {T, B};
    const bool resets = given(in[7]);
    if (!check_optional(ctx, st, op, "reset", in[7], 2, reset_dims) ||
        (resets && !check_dims(ctx, st, op, "c_reset", in[8], 2, state)) ||
        !check_optional(ctx, st, op, "d_cs", in[9], 3, o_dims))
        goto done;
    const int64_t dz_dims[3] = {4 * H, T, B}, none[1] = {0};
    if (!(out[0] = output(ctx, st, 0, dz_dims, 3)) || !(out[1] = output(ctx, st, 1, state, 2)) ||
        !(out[2] = output(ctx, st, 2, state, 2)) ||
        !(out[3] = output(ctx, st, 3, resets ? state : none, resets ? 2 : 1)) ||
        !(out[4] = output(ctx, st, 4, resets ? state : none, resets ? 2 : 1)))
        goto done;
    init_job(&j, T, B, H, 8.0 * H * H * B);
    j.ss = TF_TensorData(in[0]);
    j.cs = TF_TensorData(in[1]);
    j.d_out = TF_TensorData(in[2]);
    j.rk = TF_TensorData(in[5]);
    if (!set_mask(&j, in[6])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnLstmBackward: out of memory");
        goto done;
    }
    j.dz = TF_TensorData(out[0]);
    j.dh0 = TF_TensorData(out[1]);
    j.dc0 = TF_TensorData(out[2]);
    if (resets) {
        j.reset = TF_TensorData(in[7]);
        j.cr = TF_TensorData(in[8]);
        j.d_hr = TF_TensorData(out[3]);
        j.d_cr = TF_TensorData(out[4]);
        memset(j.d_hr, 0, H * B * sizeof(float));
        memset(j.d_cr, 0, H * B * sizeof(float));
    }
    if (given(in[9]))
        j.d_cs = TF_TensorData(in[9]);
    if (T == 0 || H == 0 || B == 0) {
        if (H * B > 0) {
            memcpy(j.dh0, TF_TensorData(in[3]), H * B * sizeof(float));
            memcpy(j.dc0, TF_TensorData(in[4]), H * B * sizeof(float));
        }
        goto done;
    }
    j.packed = alloc_floats(j.Hp * 4 * j.Hp);
    j.vbuf[0] = alloc_floats(4 * j.Hp * j.Bp);
    j.vbuf[1] = alloc_floats(4 * j.Hp * j.Bp);
    j.dh = alloc_floats(j.Hp * j.Bp);
    if (j.reset)
        j.cbuf = alloc_floats(H * B);
    j.dc = j.dc0; /* the cell gradient is carried in the output itself */
    if (!j.packed || !j.vbuf[0] || !j.vbuf[1] || !j.dh || (j.reset && !j.cbuf)) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnLstmBackward: out of memory");
    }
    else {
        const float *dh = TF_TensorData(in[3]);
        for (int64_t u = 0; u < H; u++)
            memcpy(j.dh + u * j.Bp, dh + u * B, B * sizeof(float));
        memcpy(j.dc, TF_TensorData(in[4]), H * B * sizeof(float));
        run_threads(&j, j.nthreads, backward_work);
        for (int64_t u = 0; u < H; u++)
            memcpy(j.dh0 + u * B, j.dh + u * j.Bp, B * sizeof(float));
    }
done:
    end_call(&j, in, 10, out, 5, st);
}

#endif /* RNN_KERNEL_ISA */

#ifdef RNN_KERNEL_REGISTER
/* ===================================== op registration and ISA dispatch */

#define RNN_LIBRARY     lstm
#define RNN_OPS(X, isa) X(lstm_forward, isa) X(lstm_backward, isa)
#include "../register.h"

__attribute__((constructor)) static void
register_lstm_ops(void)
{
    static const char *const fwd_in[] = {
        "zx: float",   "recurrent_kernel: float", "h0: float",     "c0: float", "mask: bool",
        "reset: bool", "h_reset: float",          "c_reset: float"};
    static const char *const fwd_out[] = {"s: float", "cs: float", "hs: float"};
    static const char *const bwd_in[] = {"s: float",   "cs: float",   "d_out: float",
                                         "dh: float",  "dc: float",   "recurrent_kernel: float",
                                         "mask: bool", "reset: bool", "c_reset: float",
                                         "d_cs: float"};
    static const char *const bwd_out[] = {"dz: float", "dh0: float", "dc0: float",
                                          "d_h_reset: float", "d_c_reset: float"};
    chosen = choose_isa();
    register_op(0, "RnnLstmForward", fwd_in, 8, fwd_out, 3);
    register_op(1, "RnnLstmBackward", bwd_in, 10, bwd_out, 5);
}
#endif /* RNN_KERNEL_REGISTER */
