/* Whole-sequence GRU kernels for rnn.ops.gru (float32, CPU), both forms.
 *
 * Two TensorFlow ops, registered through TensorFlow's stable C API when
 * tf.load_op_library loads the library:
 *
 *   RnnGruForward(zx, recurrent_kernel, bn, h0, mask, reset, hr) -> (s, hs)
 *   RnnGruBackward(s, hs, d_out, dh, recurrent_kernel, mask, reset, hr)
 *       -> (da, dh0, d_hr)
 *   RnnVanillaForward(zx, recurrent_kernel, h0, mask, reset, hr) -> hs
 *   RnnVanillaBackward(hs, d_out, dh, recurrent_kernel, mask, reset)
 *       -> (da, dh0, d_hr)
 *
 * They run the recurrences that the pure-TensorFlow programs in
 * programs.py run as tf.while_loops, with the same inputs and outputs
 * (all tiles are [features, batch], batch contiguous; see programs.py):
 *
 *   zx    [3H, T, B]   input projection x_t @ kernel + bias, gate-major
 *                      (z, r, n; with reset_after the z and r rows hold the
 *                      recurrent bias too)
 *   rk    [H, 3H]      recurrent kernel (Keras layout, gates z, r, n)
 *   bn    [H] or [0]   the candidate's recurrent bias: [H] selects the
 *                      reset_after form, [0] Cho's form
 *   h0    [H, B]       initial state
 *   mask  [T, B] bool  valid steps in processing order, or [0]: all valid
 *   reset [T, B] bool  where the state is replaced by hr right before the
 *                      step (processing order), or [0]: no resets
 *   hr    [H, B]       the state reset examples take (read only with reset)
 *   s     [T, G, B]    gates: G = 3H rows z, r, n (Cho) or G = 4H rows
 *                      z, r, n, h U_n + bn (reset_after)
 *   hs    [T+1, H, B]  the initial state and the states after every step
 *                      (without resets also the states entering the steps)
 *   d_out [T, H, B]    gradient of the outputs (zero where masked)
 *   da    [G, T, B]    pre-activation gradients, rows as programs.backward
 *                      writes them (the columns layout the weight-gradient
 *                      matmuls take)
 *   d_hr  [H, B]       gradient of hr (with reset; [0] without)
 *
 * Resets: the state operand of a step (the one the products read, where
 * the previous step's cell wrote it) takes hr in the reset columns, and
 * the cells read the state entering the step from that operand (hs holds
 * the states after the steps). Backward, the cells read the entering state
 * rebuilt from hs and hr, and after each step's product the gradient of a
 * reset column goes to d_hr instead of on to the step before. All of it
 * runs only where reset is given: without it the work is what it was.
 *
 * The vanilla RNN (rnn.ops.vanilla, h = tanh(x W + h U + b)) is the GRU's
 * degenerate third form, update gate closed and reset gate open: zx is
 * [H, T, B], recurrent_kernel [H, H], da [H, T, B], and a step is one
 * [H, H] x [H, B] product each way; it shares everything below but the
 * cells.
 *
 * reset_after: per step the forward does one [3H, H] x [H, B] product and
 * the backward one [H, 3H] x [3H, B] product, then the element-wise cell.
 * Cho's form reads (r * h) U_n: two dependent products each way, with the
 * element-wise work between them, so two barriers per step.
 *
 * The products are split by hidden unit over a few threads that meet at the
 * barriers (the threading is ../threads.h, shared with the LSTM; the packed
 * panels and the micro-kernel are the LSTM's, rnn/ops/lstm/kernels.c): each
 * thread owns all gate rows of its units, so it can run the cell for them
 * right after its share of a product. Every element is computed the same
 * way whatever the thread count, so results do not depend on it.
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
/* ----------------------------------------------------------------- cells */

/* reset_after, one hidden unit's step over the batch. p: its three product
 * rows (z, r, n of h U; stride ps), x: its three input-projection rows
 * (stride xs), bn: its candidate's recurrent bias, keep: 1 where the step
 * is valid; s: its four gate rows z, r, n, hn (stride ss). */
__attribute__((noinline)) static void
forward_cell_ra(int64_t B, const float *restrict p, int64_t ps, const float *restrict x, int64_t xs,
                float bn, const unsigned char *restrict keep, const float *restrict h_prev,
                float *restrict s, int64_t ss, float *restrict h_new, float *restrict h_operand)
{
    for (int64_t b = 0; b < B; b++) {
        const float z = sigmoid_f(p[b] + x[b]);
        const float r = sigmoid_f(p[ps + b] + x[xs + b]);
        const float hn = p[2 * ps + b] + bn;
        const float n = tanh_f(x[2 * xs + b] + r * hn);
        const float h = n + z * (h_prev[b] - n);
        s[b] = z;
        s[ss + b] = r;
        s[2 * ss + b] = n;
        s[3 * ss + b] = hn;
        h_new[b] = h_operand[b] = keep[b] != 0 ? h : h_prev[b];
    }
}

/* The vanilla RNN, one unit's step: the state from its product row p and
 * input row x. */
__attribute__((noinline)) static void
forward_cell_vanilla(int64_t B, const float *restrict p, const float *restrict x,
                     const unsigned char *restrict keep, const float *restrict h_prev,
                     float *restrict h_new, float *restrict h_operand)
{
    for (int64_t b = 0; b < B; b++) {
        const float h = tanh_f(x[b] + p[b]);
        h_new[b] = h_operand[b] = keep[b] != 0 ? h : h_prev[b];
    }
}

/* The vanilla RNN, one unit's backward step: h is its state after the step;
 * dh becomes what passes through a step past the length (0 for a valid
 * step: the product adds U da later); da to the operand row v. */
__attribute__((noinline)) static void
backward_cell_vanilla(int64_t B, const float *restrict h, const float *restrict d_out,
                      const unsigned char *restrict keep, float *restrict dh, float *restrict da,
                      float *restrict v)
{
    for (int64_t b = 0; b < B; b++) {
        const bool valid = keep[b] != 0;
        const float dht = dh[b] + d_out[b];
        da[b] = valid ? dht * (1.0f - h[b] * h[b]) : 0.0f;
        dh[b] = valid ? 0.0f : dht;
    }
    memcpy(v, da, B * sizeof(float));
}

/* Cho's form, first half of a unit's step: the gates z, r from the product
 * rows p (stride ps) and input rows x (stride xs) into s (stride ss), and
 * the candidate's operand q = r * h_prev. */
__attribute__((noinline)) static void
forward_gates_cho(int64_t B, const float *restrict p, int64_t ps, const float *restrict x,
                  int64_t xs, const float *restrict h_prev, float *restrict s, int64_t ss,
                  float *restrict q)
{
    for (int64_t b = 0; b < B; b++) {
        const float z = sigmoid_f(p[b] + x[b]);
        const float r = sigmoid_f(p[ps + b] + x[xs + b]);
        s[b] = z;
        s[ss + b] = r;
        q[b] = r * h_prev[b];
    }
}

/* Cho's form, second half: the candidate from its product row p ((r h) U_n)
 * and input row x, the new state; sz is the unit's z row, sn its n row. */
__attribute__((noinline)) static void
forward_candidate_cho(int64_t B, const float *restrict p, const float *restrict x,
                      const unsigned char *restrict keep, const float *restrict h_prev,
                      const float *restrict sz, float *restrict sn, float *restrict h_new,
                      float *restrict h_operand)
{
    for (int64_t b = 0; b < B; b++) {
        const float n = tanh_f(x[b] + p[b]);
        const float h = n + sz[b] * (h_prev[b] - n);
        sn[b] = n;
        h_new[b] = h_operand[b] = keep[b] != 0 ? h : h_prev[b];
    }
}

/* reset_after, one unit's backward step: reads its gate rows s (stride ss),
 * carries dh (replaced by dh * z, or what passes through a step past the
 * length; the product adds rk da later), writes da (rows z, r, n, hn,
 * stride das) and its three operand rows z, r, hn (stride vs). A step past
 * the length leaves the state unchanged: its factors are selected away (not
 * multiplied by 0, which would let a NaN or inf through). */
__attribute__((noinline)) static void
backward_cell_ra(int64_t B, const float *restrict s, int64_t ss, const float *restrict h_prev,
                 const float *restrict d_out, const unsigned char *restrict keep,
                 float *restrict dh, float *restrict da, int64_t das, float *restrict v, int64_t vs)
{
    for (int64_t b = 0; b < B; b++) {
        const float z = s[b], r = s[ss + b], n = s[2 * ss + b], hn = s[3 * ss + b];
        const bool valid = keep[b] != 0;
        const float pn = valid ? (1.0f - z) * (1.0f - n * n) : 0.0f;
        const float pz = valid ? (h_prev[b] - n) * z * (1.0f - z) : 0.0f;
        const float dht = dh[b] + d_out[b];
        const float dan = dht * pn;
        da[b] = dht * pz;
        da[das + b] = dan * hn * r * (1.0f - r);
        da[2 * das + b] = dan;
        da[3 * das + b] = dan * r;
        dh[b] = dht * (valid ? z : 1.0f);
    }
    /* (A separate copy: storing to both in the loop above stops GCC from
     * vectorising it.) */
    memcpy(v, da, B * sizeof(float));
    memcpy(v + vs, da + das, B * sizeof(float));
    memcpy(v + 2 * vs, da + 3 * das, B * sizeof(float));
}

/* Cho's form, first half of a unit's backward step: dh becomes the total
 * gradient of the step's output; the candidate's and z's pre-activation
 * gradients go to dan and daz, and dan to the operand row v. */
__attribute__((noinline)) static void
backward_candidate_cho(int64_t B, const float *restrict s, int64_t ss, const float *restrict h_prev,
                       const float *restrict d_out, const unsigned char *restrict keep,
                       float *restrict dh, float *restrict daz, float *restrict dan,
                       float *restrict v)
{
    for (int64_t b = 0; b < B; b++) {
        const float z = s[b], n = s[2 * ss + b];
        const bool valid = keep[b] != 0;
        const float pn = valid ? (1.0f - z) * (1.0f - n * n) : 0.0f;
        const float pz = valid ? (h_prev[b] - n) * z * (1.0f - z) : 0.0f;
        const float dht = dh[b] + d_out[b];
        dh[b] = dht;
        daz[b] = dht * pz;
        dan[b] = dht * pn;
    }
    memcpy(v, dan, B * sizeof(float));
}

/* Cho's form, second half: dq is the unit's row of U_n dan (the gradient of
 * q = r * h); r's pre-activation gradient goes to dar, dh becomes
 * dh * z + dq * r (the product adds U_zr [daz; dar] later), and daz, dar
 * to the operand rows v (stride vs). */
__attribute__((noinline)) static void
backward_reset_cho(int64_t B, const float *restrict s, int64_t ss, const float *restrict h_prev,
                   const unsigned char *restrict keep, const float *restrict dq, float *restrict dh,
                   const float *restrict daz, float *restrict dar, float *restrict v, int64_t vs)
{
    for (int64_t b = 0; b < B; b++) {
        const float z = s[b], r = s[ss + b];
        const bool valid = keep[b] != 0;
        dar[b] = valid ? dq[b] * h_prev[b] * r * (1.0f - r) : 0.0f;
        dh[b] = valid ? dh[b] * z + dq[b] * r : dh[b];
    }
    memcpy(v, daz, B * sizeof(float));
    memcpy(v + vs, dar, B * sizeof(float));
}

/* --------------------------------------------------------------- threads */

/* The threads and their barrier, shared with the other kernel library. */
#define RNN_THREADS_ENV "RNN_GRU_THREADS"
#include "../threads.h"

/* ------------------------------------------------------------------ jobs */

struct job {
    int64_t T, B, H, Hp; /* Hp: H padded to UNIT_ALIGN */
    int64_t Bp, nr;      /* B padded to a multiple of the tile width nr */
    int nthreads;
    barrier_t barrier;
    bool reset_after;
    int64_t G;                 /* columns of rk: 3H (GRU) or H (vanilla) */
    const float *rk;           /* [H, G] */
    const float *bn;           /* [H] (reset_after) */
    const unsigned char *mask; /* [T, B] bools, or one row of ones */
    int64_t mask_stride;       /* B, or 0 for the row of ones */
    unsigned char *ones;       /* owned row of ones, or NULL */
    float *packed, *packed2;   /* packed weight panels (packed2: Cho's second product) */
    float *pbuf, *pbuf2;       /* product rows scratch [3 Hp, Bp], [Hp, Bp] */
    float *vbuf[2];            /* product operands [3 Hp, Bp] (double-buffered where needed) */
    float *dh;                 /* [Hp, Bp] (bwd) */
    /* forward */
    const float *zx; /* [3H, T, B] */
    float *s, *hs;
    /* backward */
    const float *ss, *hs_in, *d_out;
    float *da, *dh0;
    /* resets (NULL: none) */
    const unsigned char *reset; /* [T, B] bools */
    const float *hr;            /* [H, B] */
    float *d_hr;                /* [H, B] (bwd) */
    float *hpbuf;               /* [Hp, Bp]: entering states (bwd), Cho's second state buffer */
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

/* Forward panels of `gates` gates from gate q0 on: row g u + q of the
 * product is unit u, gate q0 + q, so that a thread's rows hold every gate
 * of its units; column k is rk[k, (q0 + q) H + u]. */
static void
pack_forward(const job_t *j, float *packed, int gates, int q0, int64_t u0, int64_t u1)
{
    const int64_t H = j->H, G = j->G;
    for (int64_t p = u0 * gates / MR; p < u1 * gates / MR; p++) {
        float *panel = packed + p * H * MR;
        for (int64_t k = 0; k < H; k++)
            for (int i = 0; i < MR; i++) {
                int64_t row = p * MR + i, u = row / gates, q = row % gates;
                panel[k * MR + i] = u < H ? j->rk[k * G + (q0 + q) * H + u] : 0.0f;
            }
    }
}

/* Backward panels: row u, column g v + q is rk[u, (q0 + q) H + v] (the
 * layout of the interleaved operand rows the cells write); K = g Hp. */
static void
pack_backward(const job_t *j, float *packed, int gates, int q0, int64_t u0, int64_t u1)
{
    const int64_t H = j->H, G = j->G, K = gates * j->Hp;
    for (int64_t p = u0 / MR; p < u1 / MR; p++) {
        float *panel = packed + p * K * MR;
        for (int64_t k = 0; k < K; k++) {
            int64_t v = k / gates, q = k % gates;
            for (int i = 0; i < MR; i++) {
                int64_t u = p * MR + i;
                panel[k * MR + i] = (u < H && v < H) ? j->rk[u * G + (q0 + q) * H + v] : 0.0f;
            }
        }
    }
}

/* dst rows [u0, u1) (stride ldb) += packed backward panels (K columns) times
 * the operand b [K x ldb]. */
static void
add_product(const float *packed, int64_t K, int64_t u0, int64_t u1, const float *b, int64_t ldb,
            int64_t nr, float *dst)
{
    for (int64_t p = u0 / MR; p < u1 / MR; p++) {
        float tile[MR * NR] __attribute__((aligned(64)));
        for (int64_t c0 = 0; c0 < ldb; c0 += nr) {
            tile_product(K, packed + p * K * MR, b + c0, ldb, tile, nr, nr);
            for (int i = 0; i < MR; i++) {
                float *row = dst + (p * MR + i) * ldb + c0;
                for (int64_t c = 0; c < nr; c++)
                    row[c] += tile[i * nr + c];
            }
        }
    }
}

/* Resets at step t: rows [u0, u1) of dst (stride Bp) take hr where the step
 * resets and the same rows of src (stride src_stride) elsewhere. Forward:
 * src is dst, the state operand, changed in place. Backward: the state
 * entering the step into j->hpbuf, from the state after the step before. */
static void
reset_rows(const job_t *j, int64_t t, int64_t u0, int64_t u1, float *dst, const float *src,
           int64_t src_stride)
{
    const int64_t B = j->B;
    const unsigned char *restrict r = j->reset + t * B;
    for (int64_t u = u0; u < u1 && u < j->H; u++) {
        float *row = dst + u * j->Bp;
        const float *from = src + u * src_stride, *restrict hr = j->hr + u * B;
        for (int64_t b = 0; b < B; b++)
            row[b] = r[b] != 0 ? hr[b] : from[b];
    }
}

/* Backward with resets, after step t's product: rows [u0, u1) of the
 * carried gradient (of the state entering the step) go to d_hr where the
 * step resets, and stop there. */
static void
divert_rows(const job_t *j, int64_t t, int64_t u0, int64_t u1)
{
    const int64_t B = j->B;
    const unsigned char *restrict r = j->reset + t * B;
    for (int64_t u = u0; u < u1 && u < j->H; u++) {
        float *restrict dh = j->dh + u * j->Bp, *restrict d = j->d_hr + u * B;
        for (int64_t b = 0; b < B; b++) {
            const float g = dh[b];
            const bool reset = r[b] != 0;
            d[b] += reset ? g : 0.0f;
            dh[b] = reset ? 0.0f : g;
        }
    }
}

static void
forward_work_ra(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, XS = H * T * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_forward(j, j->packed, 3, 0, u0, u1);
    /* The initial state into the first operand buffer (own rows). */
    for (int64_t u = u0; u < u1 && u < H; u++)
        memcpy(j->vbuf[0] + u * Bp, j->hs + u * B, B * sizeof(float));
    if (j->reset)
        reset_rows(j, 0, u0, u1, j->vbuf[0], j->vbuf[0], j->Bp);
    barrier_wait(&j->barrier);
    for (int64_t t = 0; t < T; t++) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        const float *hcur = j->vbuf[t & 1];
        float *hnext = j->vbuf[(t + 1) & 1];
        panel_product(j->packed, H, u0 * 3 / MR, u1 * 3 / MR, hcur, Bp, j->pbuf, j->nr);
        const unsigned char *m = j->mask + t * j->mask_stride;
        /* The state entering the step (with resets: the operand, stride hps). */
        const float *h_prev = j->reset ? hcur : j->hs + t * HB;
        const int64_t hps = j->reset ? Bp : B;
        float *h_new = j->hs + (t + 1) * HB, *s = j->s + t * 4 * HB;
        for (int64_t u = u0; u < u1 && u < H; u++)
            forward_cell_ra(B, j->pbuf + 3 * u * Bp, Bp, j->zx + u * T * B + t * B, XS, j->bn[u], m,
                            h_prev + u * hps, s + u * B, HB, h_new + u * B, hnext + u * Bp);
        if (j->reset && t + 1 < T)
            reset_rows(j, t + 1, u0, u1, hnext, hnext, j->Bp);
        barrier_wait(&j->barrier);
    }
}

/* Cho's form: two barriers per step, so single operand buffers suffice (a
 * buffer is written only after every thread has passed the barrier that
 * follows its last read). With resets the cells read the state entering
 * the step from the state operand, so the candidate cannot write it in
 * place: the state operand alternates between two buffers. */
static void
forward_work_cho(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, XS = H * T * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_forward(j, j->packed, 2, 0, u0, u1);
    pack_forward(j, j->packed2, 1, 2, u0, u1);
    float *hbufs[2] = {j->vbuf[0], j->reset ? j->hpbuf : j->vbuf[0]}, *qbuf = j->vbuf[1];
    const int64_t hps = j->reset ? Bp : B; /* row stride of h_prev */
    for (int64_t u = u0; u < u1 && u < H; u++)
        memcpy(hbufs[0] + u * Bp, j->hs + u * B, B * sizeof(float));
    if (j->reset)
        reset_rows(j, 0, u0, u1, hbufs[0], hbufs[0], j->Bp);
    barrier_wait(&j->barrier);
    for (int64_t t = 0; t < T; t++) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        float *hbuf = hbufs[t & 1], *hnext = hbufs[(t + 1) & 1];
        const float *h_prev = j->reset ? hbuf : j->hs + t * HB;
        float *h_new = j->hs + (t + 1) * HB, *s = j->s + t * 3 * HB;
        panel_product(j->packed, H, u0 * 2 / MR, u1 * 2 / MR, hbuf, Bp, j->pbuf, j->nr);
        for (int64_t u = u0; u < u1 && u < H; u++)
            forward_gates_cho(B, j->pbuf + 2 * u * Bp, Bp, j->zx + u * T * B + t * B, XS,
                              h_prev + u * hps, s + u * B, HB, qbuf + u * Bp);
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        panel_product(j->packed2, H, u0 / MR, u1 / MR, qbuf, Bp, j->pbuf2, j->nr);
        const unsigned char *m = j->mask + t * j->mask_stride;
        for (int64_t u = u0; u < u1 && u < H; u++)
            forward_candidate_cho(B, j->pbuf2 + u * Bp, j->zx + (2 * H + u) * T * B + t * B, m,
                                  h_prev + u * hps, s + u * B, s + 2 * HB + u * B, h_new + u * B,
                                  hnext + u * Bp);
        if (j->reset && t + 1 < T)
            reset_rows(j, t + 1, u0, u1, hnext, hnext, j->Bp);
        barrier_wait(&j->barrier);
    }
}

static void
backward_work_ra(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, nr = j->nr;
    const int64_t K = 3 * j->Hp, DS = H * T * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_backward(j, j->packed, 3, 0, u0, u1);
    barrier_wait(&j->barrier);
    for (int64_t t = T - 1; t >= 0; t--) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        float *v = j->vbuf[t & 1];
        const unsigned char *m = j->mask + t * j->mask_stride;
        const float *s = j->ss + t * 4 * HB, *h_prev = j->hs_in + t * HB;
        int64_t hps = B; /* row stride of h_prev */
        if (j->reset) {
            reset_rows(j, t, u0, u1, j->hpbuf, j->hs_in + t * j->H * j->B, j->B);
            h_prev = j->hpbuf;
            hps = Bp;
        }
        const float *dout = j->d_out + t * HB;
        float *da = j->da + t * B; /* [4H, T, B]: unit u at + u T B */
        for (int64_t u = u0; u < u1 && u < H; u++)
            backward_cell_ra(B, s + u * B, HB, h_prev + u * hps, dout + u * B, m, j->dh + u * Bp,
                             da + u * T * B, DS, v + 3 * u * Bp, Bp);
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        add_product(j->packed, K, u0, u1, v, Bp, nr, j->dh);
        if (j->reset)
            divert_rows(j, t, u0, u1);
    }
}

static void
backward_work_cho(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, nr = j->nr;
    const int64_t Hp = j->Hp, TB = T * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_backward(j, j->packed, 1, 2, u0, u1);
    pack_backward(j, j->packed2, 2, 0, u0, u1);
    float *nbuf = j->vbuf[0], *zrbuf = j->vbuf[1];
    barrier_wait(&j->barrier);
    for (int64_t t = T - 1; t >= 0; t--) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        const unsigned char *m = j->mask + t * j->mask_stride;
        const float *s = j->ss + t * 3 * HB, *h_prev = j->hs_in + t * HB;
        int64_t hps = B; /* row stride of h_prev */
        if (j->reset) {
            reset_rows(j, t, u0, u1, j->hpbuf, j->hs_in + t * j->H * j->B, j->B);
            h_prev = j->hpbuf;
            hps = Bp;
        }
        const float *dout = j->d_out + t * HB;
        float *da = j->da + t * B; /* [3H, T, B] */
        for (int64_t u = u0; u < u1 && u < H; u++)
            backward_candidate_cho(B, s + u * B, HB, h_prev + u * hps, dout + u * B, m,
                                   j->dh + u * Bp, da + u * TB, da + (2 * H + u) * TB,
                                   nbuf + u * Bp);
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        panel_product(j->packed, Hp, u0 / MR, u1 / MR, nbuf, Bp, j->pbuf, nr); /* U_n dan */
        for (int64_t u = u0; u < u1 && u < H; u++)
            backward_reset_cho(B, s + u * B, HB, h_prev + u * hps, m, j->pbuf + u * Bp,
                               j->dh + u * Bp, da + u * TB, da + (H + u) * TB, zrbuf + 2 * u * Bp,
                               Bp);
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        add_product(j->packed2, 2 * Hp, u0, u1, zrbuf, Bp, nr, j->dh);
        if (j->reset)
            divert_rows(j, t, u0, u1);
    }
}

static void
forward_work_vanilla(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_forward(j, j->packed, 1, 0, u0, u1);
    for (int64_t u = u0; u < u1 && u < H; u++)
        memcpy(j->vbuf[0] + u * Bp, j->hs + u * B, B * sizeof(float));
    if (j->reset)
        reset_rows(j, 0, u0, u1, j->vbuf[0], j->vbuf[0], j->Bp);
    barrier_wait(&j->barrier);
    for (int64_t t = 0; t < T; t++) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        const float *hcur = j->vbuf[t & 1];
        float *hnext = j->vbuf[(t + 1) & 1];
        panel_product(j->packed, H, u0 / MR, u1 / MR, hcur, Bp, j->pbuf, j->nr);
        const unsigned char *m = j->mask + t * j->mask_stride;
        /* The state entering the step (with resets: the operand, stride hps). */
        const float *h_prev = j->reset ? hcur : j->hs + t * HB;
        const int64_t hps = j->reset ? Bp : B;
        float *h_new = j->hs + (t + 1) * HB;
        for (int64_t u = u0; u < u1 && u < H; u++)
            forward_cell_vanilla(B, j->pbuf + u * Bp, j->zx + u * T * B + t * B, m,
                                 h_prev + u * hps, h_new + u * B, hnext + u * Bp);
        if (j->reset && t + 1 < T)
            reset_rows(j, t + 1, u0, u1, hnext, hnext, j->Bp);
        barrier_wait(&j->barrier);
    }
}

static void
backward_work_vanilla(job_t *j, int index)
{
    const int64_t T = j->T, B = j->B, H = j->H, Bp = j->Bp, HB = H * B, nr = j->nr;
    int64_t u0, u1;
    unit_range(j, index, &u0, &u1);
    pack_backward(j, j->packed, 1, 0, u0, u1);
    barrier_wait(&j->barrier);
    for (int64_t t = T - 1; t >= 0; t--) {
        if (leave_if_single(j, index, &u0, &u1))
            return;
        float *v = j->vbuf[t & 1];
        const unsigned char *m = j->mask + t * j->mask_stride;
        const float *h = j->hs_in + (t + 1) * HB, *dout = j->d_out + t * HB;
        float *da = j->da + t * B; /* [H, T, B]: unit u at + u T B */
        for (int64_t u = u0; u < u1 && u < H; u++)
            backward_cell_vanilla(B, h + u * B, dout + u * B, m, j->dh + u * Bp, da + u * T * B,
                                  v + u * Bp);
        barrier_wait(&j->barrier);
        if (leave_if_single(j, index, &u0, &u1))
            return;
        add_product(j->packed, j->Hp, u0, u1, v, Bp, nr, j->dh);
        if (j->reset)
            divert_rows(j, t, u0, u1);
    }
}

static void
finish_job(job_t *j)
{
    free(j->ones);
    free(j->packed);
    free(j->packed2);
    free(j->pbuf);
    free(j->pbuf2);
    free(j->vbuf[0]);
    free(j->vbuf[1]);
    free(j->dh);
    free(j->hpbuf);
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

/* The reset inputs: reset [T, B] with hr [H, B] (hr NULL: not an input),
 * or reset [0] (no resets; hr is not read). */
static bool
check_reset(TF_OpKernelContext *ctx, TF_Status *st, const char *op, TF_Tensor *reset, TF_Tensor *hr,
            int64_t T, int64_t B, int64_t H)
{
    if (TF_NumDims(reset) == 1 && TF_Dim(reset, 0) == 0)
        return true;
    const int64_t want[2] = {T, B}, state[2] = {H, B};
    return check_dims(ctx, st, op, "reset", reset, 2, want) &&
           (hr == NULL || check_dims(ctx, st, op, "hr", hr, 2, state));
}

/* Points the job at the (checked) reset inputs; leaves j->reset NULL
 * without resets or with nothing to step. */
static void
set_reset(job_t *j, TF_Tensor *reset, TF_Tensor *hr)
{
    if (TF_NumDims(reset) != 2 || j->T * j->B == 0)
        return;
    j->reset = TF_TensorData(reset);
    j->hr = hr ? TF_TensorData(hr) : NULL;
}

/* The backward ops' d_hr output (index 2): [H, B] zeros with resets, else [0]. */
static bool
reset_gradient(TF_OpKernelContext *ctx, TF_Status *st, job_t *j, TF_Tensor *reset, TF_Tensor **out)
{
    const bool resets = TF_NumDims(reset) == 2;
    const int64_t dims[2] = {resets ? j->H : 0, j->B};
    if (!(*out = output(ctx, st, 2, dims, resets ? 2 : 1)))
        return false;
    if (resets && j->H * j->B > 0) {
        j->d_hr = TF_TensorData(*out);
        memset(j->d_hr, 0, j->H * j->B * sizeof(float));
    }
    return true;
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

/* The end of every call, on every path: frees the job's buffers, the
 * tensor handles (NULL where never obtained) and the status. */
static void
end_call(job_t *j, TF_Tensor **in, int n_in, TF_Tensor **out, int n_out, TF_Status *st)
{
    finish_job(j);
    release_call(in, n_in, out, n_out, st);
}

/* Runs a backward job: the incoming state gradient dh [H, B] into the padded
 * carry j->dh, the reverse recurrence, and the carry out to j->dh0. */
static void
run_backward(job_t *j, const float *dh, work_fn fn)
{
    const int64_t H = j->H, B = j->B;
    for (int64_t u = 0; u < H; u++)
        memcpy(j->dh + u * j->Bp, dh + u * B, B * sizeof(float));
    run_threads(j, j->nthreads, fn);
    for (int64_t u = 0; u < H; u++)
        memcpy(j->dh0 + u * B, j->dh + u * j->Bp, B * sizeof(float));
}

void
CAT(rnn_gru_forward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnGruForward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[7] = {0}, *out[2] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 7))
        goto done;
    if (TF_NumDims(in[0]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnGruForward: zx must be [3H, T, B]");
        goto done;
    }
    const int64_t H = TF_Dim(in[0], 0) / 3, T = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    const int64_t rk_dims[2] = {H, 3 * H}, state[2] = {H, B}, zx_dims[3] = {3 * H, T, B};
    if (!check_dims(ctx, st, op, "zx", in[0], 3, zx_dims) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[1], 2, rk_dims))
        goto done;
    if (TF_NumDims(in[2]) != 1 || (TF_Dim(in[2], 0) != 0 && TF_Dim(in[2], 0) != H)) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnGruForward: bn must be [H] or [0]");
        goto done;
    }
    const bool reset_after = TF_Dim(in[2], 0) == H && H > 0;
    if (!check_dims(ctx, st, op, "h0", in[3], 2, state) || !check_mask(ctx, st, op, in[4], T, B) ||
        !check_reset(ctx, st, op, in[5], in[6], T, B, H))
        goto done;
    const int64_t s_dims[3] = {T, (reset_after ? 4 : 3) * H, B}, h_dims[3] = {T + 1, H, B};
    if (!(out[0] = output(ctx, st, 0, s_dims, 3)) || !(out[1] = output(ctx, st, 1, h_dims, 3)))
        goto done;
    init_job(&j, T, B, H, 6.0 * H * H * B);
    j.reset_after = reset_after;
    j.G = 3 * H;
    j.zx = TF_TensorData(in[0]);
    j.rk = TF_TensorData(in[1]);
    j.bn = TF_TensorData(in[2]);
    if (!set_mask(&j, in[4])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnGruForward: out of memory");
        goto done;
    }
    set_reset(&j, in[5], in[6]);
    j.s = TF_TensorData(out[0]);
    j.hs = TF_TensorData(out[1]);
    if (H * B > 0)
        memcpy(j.hs, TF_TensorData(in[3]), H * B * sizeof(float));
    if (T == 0 || H == 0 || B == 0)
        goto done; /* nothing to step */
    j.packed = alloc_floats(3 * j.Hp * H);
    j.packed2 = reset_after ? NULL : alloc_floats(j.Hp * H);
    j.pbuf = alloc_floats(3 * j.Hp * j.Bp);
    j.pbuf2 = reset_after ? NULL : alloc_floats(j.Hp * j.Bp);
    j.vbuf[0] = alloc_floats(j.Hp * j.Bp);
    j.vbuf[1] = alloc_floats(j.Hp * j.Bp);
    const bool cho_reset = !reset_after && j.reset; /* Cho's second state buffer */
    j.hpbuf = cho_reset ? alloc_floats(j.Hp * j.Bp) : NULL;
    if (!j.packed || !j.pbuf || !j.vbuf[0] || !j.vbuf[1] ||
        (!reset_after && (!j.packed2 || !j.pbuf2)) || (cho_reset && !j.hpbuf)) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnGruForward: out of memory");
    }
    else {
        run_threads(&j, j.nthreads, reset_after ? forward_work_ra : forward_work_cho);
    }
done:
    end_call(&j, in, 7, out, 2, st);
}

void
CAT(rnn_gru_backward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnGruBackward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[8] = {0}, *out[3] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 8))
        goto done;
    if (TF_NumDims(in[0]) != 3 || TF_NumDims(in[1]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnGruBackward: s and hs must have rank 3");
        goto done;
    }
    const int64_t T = TF_Dim(in[0], 0), G = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    const int64_t H = TF_Dim(in[1], 1);
    if (G != 3 * H && G != 4 * H) {
        fail(ctx, st, TF_INVALID_ARGUMENT,
             "RnnGruBackward: s must be [T, 3H, B] (Cho's form) or [T, 4H, B] (reset_after)");
        goto done;
    }
    const bool reset_after = G == 4 * H && H > 0;
    const int64_t s_dims[3] = {T, G, B}, h_dims[3] = {T + 1, H, B};
    const int64_t o_dims[3] = {T, H, B}, state[2] = {H, B}, rk_dims[2] = {H, 3 * H};
    if (!check_dims(ctx, st, op, "s", in[0], 3, s_dims) ||
        !check_dims(ctx, st, op, "hs", in[1], 3, h_dims) ||
        !check_dims(ctx, st, op, "d_out", in[2], 3, o_dims) ||
        !check_dims(ctx, st, op, "dh", in[3], 2, state) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[4], 2, rk_dims) ||
        !check_mask(ctx, st, op, in[5], T, B) || !check_reset(ctx, st, op, in[6], in[7], T, B, H))
        goto done;
    const int64_t da_dims[3] = {G, T, B};
    if (!(out[0] = output(ctx, st, 0, da_dims, 3)) || !(out[1] = output(ctx, st, 1, state, 2)))
        goto done;
    init_job(&j, T, B, H, 6.0 * H * H * B);
    if (!reset_gradient(ctx, st, &j, in[6], &out[2]))
        goto done;
    j.reset_after = reset_after;
    j.G = 3 * H;
    j.ss = TF_TensorData(in[0]);
    j.hs_in = TF_TensorData(in[1]);
    j.d_out = TF_TensorData(in[2]);
    j.rk = TF_TensorData(in[4]);
    if (!set_mask(&j, in[5])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnGruBackward: out of memory");
        goto done;
    }
    set_reset(&j, in[6], in[7]);
    j.da = TF_TensorData(out[0]);
    j.dh0 = TF_TensorData(out[1]);
    if (T == 0 || H == 0 || B == 0) {
        if (H * B > 0)
            memcpy(j.dh0, TF_TensorData(in[3]), H * B * sizeof(float));
        goto done;
    }
    if (reset_after) {
        j.packed = alloc_floats(j.Hp * 3 * j.Hp);
        j.vbuf[0] = alloc_floats(3 * j.Hp * j.Bp);
        j.vbuf[1] = alloc_floats(3 * j.Hp * j.Bp);
    }
    else {
        j.packed = alloc_floats(j.Hp * j.Hp);
        j.packed2 = alloc_floats(j.Hp * 2 * j.Hp);
        j.pbuf = alloc_floats(j.Hp * j.Bp);
        j.vbuf[0] = alloc_floats(j.Hp * j.Bp);
        j.vbuf[1] = alloc_floats(2 * j.Hp * j.Bp);
    }
    j.dh = alloc_floats(j.Hp * j.Bp);
    j.hpbuf = j.reset ? alloc_floats(j.Hp * j.Bp) : NULL; /* entering states */
    if (!j.packed || !j.vbuf[0] || !j.vbuf[1] || !j.dh ||
        (!reset_after && (!j.packed2 || !j.pbuf)) || (j.reset && !j.hpbuf)) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnGruBackward: out of memory");
    }
    else {
        run_backward(&j, TF_TensorData(in[3]), reset_after ? backward_work_ra : backward_work_cho);
    }
done:
    end_call(&j, in, 8, out, 3, st);
}

void
CAT(rnn_vanilla_forward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnVanillaForward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[6] = {0}, *out[1] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 6))
        goto done;
    if (TF_NumDims(in[0]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnVanillaForward: zx must be [H, T, B]");
        goto done;
    }
    const int64_t H = TF_Dim(in[0], 0), T = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    const int64_t rk_dims[2] = {H, H}, state[2] = {H, B}, h_dims[3] = {T + 1, H, B};
    if (!check_dims(ctx, st, op, "recurrent_kernel", in[1], 2, rk_dims) ||
        !check_dims(ctx, st, op, "h0", in[2], 2, state) || !check_mask(ctx, st, op, in[3], T, B) ||
        !check_reset(ctx, st, op, in[4], in[5], T, B, H))
        goto done;
    if (!(out[0] = output(ctx, st, 0, h_dims, 3)))
        goto done;
    init_job(&j, T, B, H, 2.0 * H * H * B);
    j.G = H;
    j.zx = TF_TensorData(in[0]);
    j.rk = TF_TensorData(in[1]);
    if (!set_mask(&j, in[3])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnVanillaForward: out of memory");
        goto done;
    }
    set_reset(&j, in[4], in[5]);
    j.hs = TF_TensorData(out[0]);
    if (H * B > 0)
        memcpy(j.hs, TF_TensorData(in[2]), H * B * sizeof(float));
    if (T == 0 || H == 0 || B == 0)
        goto done;
    j.packed = alloc_floats(j.Hp * H);
    j.pbuf = alloc_floats(j.Hp * j.Bp);
    j.vbuf[0] = alloc_floats(j.Hp * j.Bp);
    j.vbuf[1] = alloc_floats(j.Hp * j.Bp);
    if (!j.packed || !j.pbuf || !j.vbuf[0] || !j.vbuf[1])
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnVanillaForward: out of memory");
    else
        run_threads(&j, j.nthreads, forward_work_vanilla);
done:
    end_call(&j, in, 6, out, 1, st);
}

void
CAT(rnn_vanilla_backward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnVanillaBackward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[6] = {0}, *out[3] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    if (!get_inputs(ctx, st, in, 6))
        goto done;
    if (TF_NumDims(in[0]) != 3) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnVanillaBackward: hs must be [T + 1, H, B]");
        goto done;
    }
    const int64_t T = TF_Dim(in[0], 0) - 1, H = TF_Dim(in[0], 1), B = TF_Dim(in[0], 2);
    if (T < 0) {
        fail(ctx, st, TF_INVALID_ARGUMENT, "RnnVanillaBackward: hs must be [T + 1, H, B]");
        goto done;
    }
    const int64_t o_dims[3] = {T, H, B}, state[2] = {H, B}, rk_dims[2] = {H, H};
    if (!check_dims(ctx, st, op, "d_out", in[1], 3, o_dims) ||
        !check_dims(ctx, st, op, "dh", in[2], 2, state) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[3], 2, rk_dims) ||
        !check_mask(ctx, st, op, in[4], T, B) || !check_reset(ctx, st, op, in[5], NULL, T, B, H))
        goto done;
    const int64_t da_dims[3] = {H, T, B};
    if (!(out[0] = output(ctx, st, 0, da_dims, 3)) || !(out[1] = output(ctx, st, 1, state, 2)))
        goto done;
    init_job(&j, T, B, H, 2.0 * H * H * B);
    if (!reset_gradient(ctx, st, &j, in[5], &out[2]))
        goto done;
    j.G = H;
    j.hs_in = TF_TensorData(in[0]);
    j.d_out = TF_TensorData(in[1]);
    j.rk = TF_TensorData(in[3]);
    if (!set_mask(&j, in[4])) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnVanillaBackward: out of memory");
        goto done;
    }
    set_reset(&j, in[5], NULL);
    j.da = TF_TensorData(out[0]);
    j.dh0 = TF_TensorData(out[1]);
    if (T == 0 || H == 0 || B == 0) {
        if (H * B > 0)
            memcpy(j.dh0, TF_TensorData(in[2]), H * B * sizeof(float));
        goto done;
    }
    j.packed = alloc_floats(j.Hp * j.Hp);
    j.vbuf[0] = alloc_floats(j.Hp * j.Bp);
    j.vbuf[1] = alloc_floats(j.Hp * j.Bp);
    j.dh = alloc_floats(j.Hp * j.Bp);
    if (!j.packed || !j.vbuf[0] || !j.vbuf[1] || !j.dh) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnVanillaBackward: out of memory");
    }
    else {
        run_backward(&j, TF_TensorData(in[2]), backward_work_vanilla);
    }
done:
    end_call(&j, in, 6, out, 3, st);
}

#endif /* RNN_KERNEL_ISA */

#ifdef RNN_KERNEL_REGISTER
/* ===================================== op registration and ISA dispatch */

#define RNN_LIBRARY gru
#define RNN_OPS(X, isa) \
    X(gru_forward, isa) X(gru_backward, isa) X(vanilla_forward, isa) X(vanilla_backward, isa)
#include "../register.h"

__attribute__((constructor)) static void
register_gru_ops(void)
{
    static const char *const fwd_in[] = {"zx: float",  "recurrent_kernel: float",
                                         "bn: float",  "h0: float",
                                         "mask: bool", "reset: bool",
                                         "hr: float"};
    static const char *const fwd_out[] = {"s: float", "hs: float"};
    static const char *const bwd_in[] = {
        "s: float",   "hs: float",   "d_out: float", "dh: float", "recurrent_kernel: float",
        "mask: bool", "reset: bool", "hr: float"};
    static const char *const bwd_out[] = {"da: float", "dh0: float", "d_hr: float"};
    static const char *const vfwd_in[] = {"zx: float",   "recurrent_kernel: float",
                                          "h0: float",   "mask: bool",
                                          "reset: bool", "hr: float"};
    static const char *const vfwd_out[] = {"hs: float"};
    static const char *const vbwd_in[] = {"hs: float",  "d_out: float",
                                          "dh: float",  "recurrent_kernel: float",
                                          "mask: bool", "reset: bool"};
    chosen = choose_isa();
    register_op(0, "RnnGruForward", fwd_in, 7, fwd_out, 2);
    register_op(1, "RnnGruBackward", bwd_in, 8, bwd_out, 3);
    register_op(2, "RnnVanillaForward", vfwd_in, 6, vfwd_out, 1);
    register_op(3, "RnnVanillaBackward", vbwd_in, 6, bwd_out, 3);
}
#endif /* RNN_KERNEL_REGISTER */
