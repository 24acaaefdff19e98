/* Whole-sequence DNC kernels for rnn.ops.dnc (float32, CPU).
 *
 * Two TensorFlow ops, registered through TensorFlow's stable C API (no C++
 * ABI to match) when tf.load_op_library loads the library:
 *
 *   RnnDncForward(zx, read_kernel, recurrent_kernel, interface_kernel,
 *                 interface_bias, h0, c0, r0, memory0, read_weights0,
 *                 write_weights0, link0, precedence0, usage0, mask)
 *       -> (hs, rs, h, c, r, memory, read_weights, write_weights, link,
 *           precedence, usage, tape)
 *   RnnDncBackward(the forward's 15 inputs, tape, d_hs, d_rs, and the
 *                  gradients of the 9 final-state tensors)
 *       -> (d_zx, d_interface, and the gradients of the 9 initial-state
 *           tensors)
 *
 * They run the recurrence of rnn.DNC with an rnn.LSTM controller and one
 * write head, the options of Csordás & Schmidhuber off (the equations of
 * rnn/dnc/addressing.py and rnn/dnc/access.py, in the same order), that
 * rnn/ops/dnc/programs.py runs as a tf.while_loop. Everything is
 * time-major and batch-row-major:
 *
 *   zx    [T, B, 4H]   x_t @ kernel[:I] + bias (the controller's input
 *                      projection, one matmul before the op)
 *   read_kernel [R W, 4H] the controller kernel's rows for the read words
 *   recurrent_kernel [H, 4H], interface_kernel [H, K], interface_bias [K]
 *   state: h, c [B, H]; r [B, R, W] (the last read words); memory
 *          [B, N, W]; read_weights [B, R, N]; write_weights [B, 1, N];
 *          link [B, 1, N, N]; precedence [B, 1, N]; usage [B, N]
 *   mask  [T, B] bool  valid steps in processing order, or [0]: all valid
 *   hs    [T, B, H], rs [T, B, R, W]  the controller outputs and read
 *                      words of every step (the state's, carried through
 *                      masked steps: the caller zeroes those; the output
 *                      layer is applied to them after the op)
 *   d_zx  [T, B, 4H]   gradient of the controller's pre-activations
 *   d_interface [T, B, K] gradient of the interface vector before its
 *                      squashings (the weight gradients are matmuls over
 *                      all steps after the op, programs.py)
 *
 *   tape  [B ((T+1) SS + T XS)]  every step's state and intermediates,
 *                      per row (layout(): SS and XS floats), for the
 *                      backward op; given [0] instead (the TensorFlow
 *                      forward program's), the backward op runs the
 *                      forward pass again into a tape of its own
 *
 * Batch rows are independent: the threads take blocks of ROWS rows as
 * they finish them (rows_next), and a block goes through the whole
 * sequence, its rows in step with each other so that the controller's
 * and the interface's products are small matrix products over them
 * (gemm_rows); the rest of a step (the memory access, about a thousand
 * small loops over the slots) is per row. A masked step carries the state
 * (and its gradient) through unchanged. Every row is computed the same way
 * whatever the thread count.
 *
 * One library for every x86-64 CPU (rnn/ops/_build.py): the compute part is
 * compiled once per instruction set with -DRNN_KERNEL_ISA=<name> (entry
 * points named after the set; the loops are left to the compiler's
 * vectoriser) and once with -DRNN_KERNEL_REGISTER (the op registration at
 * the end), which picks the widest set this CPU supports at load time.
 */
#define _GNU_SOURCE
#include <math.h>
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

#define CAT_(a, b) a##_##b
#define CAT(a, b)  CAT_(a, b)
#ifdef RNN_KERNEL_ISA
#define TF_InputRange_Args_STRUCT_SIZE CAT(TF_InputRange_Args_STRUCT_SIZE, RNN_KERNEL_ISA)
#endif
typedef struct TF_DimensionHandle TF_DimensionHandle;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeHandle TF_ShapeHandle;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

/* The state's nine tensors, in the ops' order. */
#define N_STATE 9
enum { ST_H, ST_C, ST_R, ST_M, ST_RW, ST_WW, ST_L, ST_P, ST_U };

#ifdef RNN_KERNEL_ISA
/* ============================================== the compute part, per ISA */

/* Most loops here are sums (dot products of 16 to 256 terms): without
 * reassociation the compiler keeps them in order, one dependent add after
 * another, and the backward op ran 4-6x slower. (The sums then round
 * differently from TensorFlow's, within float32's tolerance either way.) */
#if defined(__clang__)
#pragma clang fp reassociate(on)
#elif defined(__GNUC__)
#pragma GCC optimize("associative-math", "no-signed-zeros")
#endif

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#define UNIT_ALIGN      4 /* batch rows per thread, at least */
#define RNN_THREADS_ENV "RNN_DNC_THREADS"
#include "../threads.h"
/* (The rows never meet at threads.h's barrier: this keeps -Wall quiet.) */
static void (*const unused_barrier)(barrier_t *) __attribute__((unused)) = barrier_wait;

/* Added under square roots and to usages: rnn.dnc.addressing.EPSILON. */
#define EPS 1e-6f

struct job {
    int nthreads;
    barrier_t barrier; /* (threads.h's; these rows never wait for each other) */
    int64_t T, B, H, G, K, R, W, N, RW;
    /* Offsets in a row's state vector (SS floats) ... */
    int64_t s_off[N_STATE], s_len[N_STATE], SS;
    /* ... in a step's intermediates (XS floats) ... */
    int64_t x_gate, x_tc, x_raw, x_par, x_psi, x_uaw, x_simw, x_cw, x_us, x_prod, x_logs, x_a,
        x_simr, x_rc, x_fwd, x_bwd, x_mnp, x_mn, x_knr, x_knw, XS;
    /* ... and in the interface vector (K floats). */
    int64_t i_kr, i_br, i_kw, i_bw, i_e, i_v, i_fg, i_ga, i_gw, i_pi;
    const float *zx, *wkr, *wr, *wi, *bi;
    float *wcat;  /* [R W + H, 4H]: read_kernel over recurrent_kernel */
    float *wcatT; /* [4H, R W + H]: its transpose (backward) */
    float *wiT;   /* [K, H]: interface_kernel transposed (backward) */
    const float *init[N_STATE];
    const unsigned char *mask; /* [T, B] bools, or one row of ones */
    int64_t mask_stride;
    unsigned char *ones;
    /* forward */
    float *hs, *rs, *fin[N_STATE];
    float *tape_out;      /* the forward's tape, for the backward op (or NULL) */
    const float *tape_in; /* the backward op's tape from the forward op (or NULL) */
    /* backward */
    const float *d_hs, *d_rs, *d_fin[N_STATE];
    float *d_zx, *d_xi, *d_init[N_STATE];
    atomic_int out_of_memory;
    atomic_int next_block; /* the next block of ROWS rows to take (rows_next) */
};

static void
set_threads(job_t *j, int n)
{
    j->nthreads = n;
    j->barrier.n = n;
}

/* ------------------------------------------------------------------ math */

#include "../fastmath.h" /* tanh_f, sigmoid_f */
#include "../tfc.h"      /* fail, check_dims, output, get_inputs, ... */

/* TensorFlow's softplus: log(1 + exp(x)), with its large and small branches. */
static inline float
softplus_f(float x)
{
    const float too_large = 17.9423847f; /* -log(float epsilon) + 2 */
    if (x > too_large)
        return x;
    if (x < -too_large)
        return expf(x);
    return log1pf(expf(x));
}

/* out[n] = softmax over n of beta * sim[n]. */
static inline __attribute__((always_inline)) void
softmax_scaled(const float *sim, float beta, int64_t n, float *out)
{
    float top = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        top = (beta * sim[i] > top ? beta * sim[i] : top);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        out[i] = expf(beta * sim[i] - top);
        sum += out[i];
    }
    for (int64_t i = 0; i < n; i++)
        out[i] /= sum;
}

/* Content weights of one key on memory [N, W] with the rows' norms `mn`:
 * sim[n] = key . M[n] / (|key|_eps |M[n]|_eps), w = softmax(beta sim). */
static inline __attribute__((always_inline)) float
content(const float *memory, const float *mn, const float *key, float beta, int64_t N, int64_t W,
        float *sim, float *w)
{
    float kk = 0.0f;
    for (int64_t i = 0; i < W; i++)
        kk += key[i] * key[i];
    const float kn = sqrtf(kk + EPS);
    for (int64_t n = 0; n < N; n++) {
        float dot = 0.0f;
        for (int64_t i = 0; i < W; i++)
            dot += key[i] * memory[n * W + i];
        sim[n] = dot / (kn * mn[n]);
    }
    softmax_scaled(sim, beta, N, w);
    return kn;
}

static inline __attribute__((always_inline)) void
row_norms(const float *memory, int64_t N, int64_t W, float *mn)
{
    for (int64_t n = 0; n < N; n++) {
        float s = 0.0f;
        for (int64_t i = 0; i < W; i++)
            s += memory[n * W + i] * memory[n * W + i];
        mn[n] = sqrtf(s + EPS);
    }
}

/* The gradient of content(): given dw (of the weights), adds to d_key,
 * d_memory (except through the norms: d_mn, added to by the caller's
 * rows) and returns d_beta. */
static inline __attribute__((always_inline)) float
content_backward(const float *memory, const float *mn, const float *key, float kn, float beta,
                 const float *sim, const float *w, const float *dw, int64_t N, int64_t W,
                 float *d_key, float *d_memory, float *d_mn)
{
    float s = 0.0f;
    for (int64_t n = 0; n < N; n++)
        s += w[n] * dw[n];
    float d_beta = 0.0f, d_kn = 0.0f;
    for (int64_t n = 0; n < N; n++) {
        const float ds = w[n] * (dw[n] - s); /* of beta * sim[n] */
        d_beta += ds * sim[n];
        const float d_sim = beta * ds;
        const float d_dot = d_sim / (kn * mn[n]);
        d_kn -= d_sim * sim[n] / kn;
        d_mn[n] -= d_sim * sim[n] / mn[n];
        for (int64_t i = 0; i < W; i++)
            d_key[i] += d_dot * memory[n * W + i];
        for (int64_t i = 0; i < W; i++)
            d_memory[n * W + i] += d_dot * key[i];
    }
    for (int64_t i = 0; i < W; i++)
        d_key[i] += d_kn * key[i] / kn;
    return d_beta;
}

/* ------------------------------------------------------------- one step */

/* A step's controller cell, its pre-activations already in x's gates
 * (gemm_rows): state sp -> sn's h and c. */
static void
cell_forward(const job_t *j, const float *sp, float *sn, float *x)
{
    const int64_t H = j->H, G = j->G;
    const float *cp = sp + j->s_off[ST_C];
    float *h = sn + j->s_off[ST_H], *c = sn + j->s_off[ST_C];
    float *gate = x + j->x_gate, *tc = x + j->x_tc;
    for (int64_t i = 0; i < G; i++)
        gate[i] = i >= 2 * H && i < 3 * H ? tanh_f(gate[i]) : sigmoid_f(gate[i]);
    for (int64_t i = 0; i < H; i++) {
        c[i] = gate[H + i] * cp[i] + gate[i] * gate[2 * H + i];
        tc[i] = tanh_f(c[i]);
        h[i] = gate[3 * H + i] * tc[i];
    }
}

/* The rest of a step, its interface vector already in x (gemm_rows):
 * the squashings, then the memory access; state sp -> sn. */
static inline __attribute__((always_inline)) void
access_forward(const job_t *j, const float *sp, float *sn, float *x, const int64_t R,
               const int64_t W, const int64_t N)
{
    const int64_t K = j->K;
    const float *Mp = sp + j->s_off[ST_M], *rwp = sp + j->s_off[ST_RW];
    const float *wwp = sp + j->s_off[ST_WW], *Lp = sp + j->s_off[ST_L];
    const float *pp = sp + j->s_off[ST_P], *up = sp + j->s_off[ST_U];
    float *r = sn + j->s_off[ST_R];
    float *M = sn + j->s_off[ST_M], *rw = sn + j->s_off[ST_RW], *ww = sn + j->s_off[ST_WW];
    float *L = sn + j->s_off[ST_L], *p = sn + j->s_off[ST_P], *u = sn + j->s_off[ST_U];
    const float *raw = x + j->x_raw;
    float *par = x + j->x_par;

    /* The squashings (rnn.dnc.access.parse_interface). */
    for (int64_t k = 0; k < K; k++)
        par[k] = raw[k];
    for (int64_t k = 0; k < R; k++)
        par[j->i_br + k] = 1.0f + softplus_f(raw[j->i_br + k]);
    par[j->i_bw] = 1.0f + softplus_f(raw[j->i_bw]);
    for (int64_t k = 0; k < W; k++)
        par[j->i_e + k] = sigmoid_f(raw[j->i_e + k]);
    for (int64_t k = 0; k < R; k++)
        par[j->i_fg + k] = sigmoid_f(raw[j->i_fg + k]);
    par[j->i_ga] = sigmoid_f(raw[j->i_ga]);
    par[j->i_gw] = sigmoid_f(raw[j->i_gw]);
    for (int64_t k = 0; k < R; k++) {
        const float *m = raw + j->i_pi + 3 * k;
        const float top01 = m[0] > m[1] ? m[0] : m[1];
        const float top = top01 > m[2] ? top01 : m[2];
        const float e0 = expf(m[0] - top), e1 = expf(m[1] - top), e2 = expf(m[2] - top);
        const float s = e0 + e1 + e2;
        par[j->i_pi + 3 * k] = e0 / s;
        par[j->i_pi + 3 * k + 1] = e1 / s;
        par[j->i_pi + 3 * k + 2] = e2 / s;
    }
    const float *kr = par + j->i_kr, *br = par + j->i_br, *kw = par + j->i_kw;
    const float bw = par[j->i_bw], *e = par + j->i_e, *v = par + j->i_v, *fr = par + j->i_fg;
    const float ga = par[j->i_ga], gw = par[j->i_gw], *pi = par + j->i_pi;

    /* Usage: (u + w - u w) psi, psi = prod_r (1 - f_r rw_r). */
    float *psi = x + j->x_psi, *uaw = x + j->x_uaw;
    for (int64_t n = 0; n < N; n++) {
        float q = 1.0f;
        for (int64_t k = 0; k < R; k++)
            q *= 1.0f - fr[k] * rwp[k * N + n];
        psi[n] = q;
        uaw[n] = up[n] + wwp[n] - up[n] * wwp[n];
        u[n] = uaw[n] * psi[n];
    }
    /* Write weights: content on the old memory, mixed with allocation. */
    float *mnp = x + j->x_mnp, *simw = x + j->x_simw, *cw = x + j->x_cw;
    row_norms(Mp, N, W, mnp);
    x[j->x_knw] = content(Mp, mnp, kw, bw, N, W, simw, cw);
    float *us = x + j->x_us, *prod = x + j->x_prod, *a = x + j->x_a;
    for (int64_t n = 0; n < N; n++)
        us[n] = EPS + (1.0f - EPS) * u[n];
    float *logs = x + j->x_logs;
    for (int64_t n = 0; n < N; n++)
        logs[n] = logf(us[n]);
    for (int64_t i = 0; i < N; i++) {
        /* Slot k comes before slot i when us[k] < us[i], ties to the lower index. */
        float s = 0.0f;
        for (int64_t k = 0; k < N; k++)
            s += us[k] < us[i] || (us[k] == us[i] && k < i) ? logs[k] : 0.0f;
        prod[i] = expf(s);
        a[i] = (1.0f - us[i]) * prod[i];
    }
    for (int64_t n = 0; n < N; n++)
        ww[n] = gw * (ga * a[n] + (1.0f - ga) * cw[n]);
    /* Erase, then write. */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < W; i++)
            M[n * W + i] = Mp[n * W + i] * (1.0f - ww[n] * e[i]) + ww[n] * v[i];
    /* Linkage: the link from the previous precedence, then the precedence. */
    float total = 0.0f;
    for (int64_t n = 0; n < N; n++)
        total += ww[n];
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < N; k++)
            L[i * N + k] = i == k ? 0.0f : (1.0f - ww[i] - ww[k]) * Lp[i * N + k] + ww[i] * pp[k];
    for (int64_t n = 0; n < N; n++)
        p[n] = (1.0f - total) * pp[n] + ww[n];
    /* Read weights: content on the new memory, and the link traversals. */
    float *mn = x + j->x_mn, *simr = x + j->x_simr, *rc = x + j->x_rc;
    float *fw = x + j->x_fwd, *bk = x + j->x_bwd, *knr = x + j->x_knr;
    row_norms(M, N, W, mn);
    for (int64_t k = 0; k < R; k++)
        knr[k] = content(M, mn, kr + k * W, br[k], N, W, simr + k * N, rc + k * N);
    for (int64_t k = 0; k < R; k++) {
        const float *wp = rwp + k * N;
        for (int64_t i = 0; i < N; i++) {
            float s = 0.0f;
            for (int64_t m = 0; m < N; m++)
                s += L[i * N + m] * wp[m];
            fw[k * N + i] = s;
        }
        for (int64_t m = 0; m < N; m++)
            bk[k * N + m] = 0.0f;
        for (int64_t i = 0; i < N; i++)
            for (int64_t m = 0; m < N; m++)
                bk[k * N + m] += L[i * N + m] * wp[i];
        for (int64_t n = 0; n < N; n++)
            rw[k * N + n] = pi[3 * k] * bk[k * N + n] + pi[3 * k + 1] * fw[k * N + n] +
                            pi[3 * k + 2] * rc[k * N + n];
    }
    /* Read. */
    for (int64_t k = 0; k < R * W; k++)
        r[k] = 0.0f;
    for (int64_t k = 0; k < R; k++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < W; i++)
                r[k * W + i] += rw[k * N + n] * M[n * W + i];
}

/* Scratch for one step's backward pass. */
typedef struct {
    float *drw, *dM, *dL, *dww, *dus, *dmn, *dpar, *dz, *dcw, *drc, *dfw, *dbk, *dpsi;
} scratch_t;

/* The gradient of a step's memory access: dn (of the state after it, the
 * outputs' gradients included) -> dp (of the state before it; all but h,
 * c and r, which cell_backward and gemm_rows give) and d_xi, the gradient
 * of the raw interface vector. dn is used as scratch. */
static inline __attribute__((always_inline)) void
access_backward(const job_t *j, const float *sp, const float *sn, const float *x, float *dn,
                float *dp, float *d_xi, scratch_t *s, const int64_t R, const int64_t W,
                const int64_t N)
{
    const int64_t K = j->K;
    const float *Mp = sp + j->s_off[ST_M], *rwp = sp + j->s_off[ST_RW];
    const float *wwp = sp + j->s_off[ST_WW], *Lp = sp + j->s_off[ST_L];
    const float *pp = sp + j->s_off[ST_P];
    const float *M = sn + j->s_off[ST_M], *rw = sn + j->s_off[ST_RW], *ww = sn + j->s_off[ST_WW];
    const float *L = sn + j->s_off[ST_L];
    const float *raw = x + j->x_raw;
    const float *par = x + j->x_par;
    const float *kr = par + j->i_kr, *br = par + j->i_br, *kw = par + j->i_kw;
    const float bw = par[j->i_bw], *e = par + j->i_e, *v = par + j->i_v, *fr = par + j->i_fg;
    const float ga = par[j->i_ga], gw = par[j->i_gw], *pi = par + j->i_pi;
    const float *psi = x + j->x_psi, *uaw = x + j->x_uaw, *simw = x + j->x_simw;
    const float *cw = x + j->x_cw, *us = x + j->x_us, *prod = x + j->x_prod, *a = x + j->x_a;
    const float *simr = x + j->x_simr, *rc = x + j->x_rc, *fw = x + j->x_fwd;
    const float *bk = x + j->x_bwd, *mnp = x + j->x_mnp, *mn = x + j->x_mn;
    const float *knr = x + j->x_knr, knw = x[j->x_knw];
    const float *dr_n = dn + j->s_off[ST_R];
    float *dM = dn + j->s_off[ST_M]; /* of the new memory, accumulated in place */
    float *drw = dn + j->s_off[ST_RW], *dL = dn + j->s_off[ST_L];
    const float *dww_n = dn + j->s_off[ST_WW], *dp_n = dn + j->s_off[ST_P];
    const float *du_n = dn + j->s_off[ST_U];
    float *dMp = dp + j->s_off[ST_M], *drwp = dp + j->s_off[ST_RW];
    float *dwwp = dp + j->s_off[ST_WW], *dLp = dp + j->s_off[ST_L];
    float *dpp = dp + j->s_off[ST_P], *dup = dp + j->s_off[ST_U];
    float *dpar = s->dpar, *dww = s->dww, *dmn = s->dmn;
    memset(dpar, 0, K * sizeof(float));
    memset(drwp, 0, R * N * sizeof(float));
    memset(dwwp, 0, N * sizeof(float)); /* the usage stops the write weights' gradient */

    /* Read: r = rw M. */
    /* (Sums and updates in separate loops, here and below: a loop that does
     * both, on arrays that may overlap, is not vectorised.) */
    for (int64_t k = 0; k < R; k++)
        for (int64_t n = 0; n < N; n++) {
            float t = 0.0f;
            for (int64_t i = 0; i < W; i++)
                t += dr_n[k * W + i] * M[n * W + i];
            drw[k * N + n] += t;
        }
    for (int64_t k = 0; k < R; k++)
        for (int64_t n = 0; n < N; n++) {
            const float g = rw[k * N + n];
            for (int64_t i = 0; i < W; i++)
                dM[n * W + i] += g * dr_n[k * W + i];
        }
    /* Read weights: the modes, the link traversals, the content lookups. */
    float *dfw = s->dfw, *dbk = s->dbk, *drc = s->drc;
    for (int64_t k = 0; k < R; k++) {
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float g = drw[k * N + n];
            d0 += g * bk[k * N + n];
            d1 += g * fw[k * N + n];
            d2 += g * rc[k * N + n];
            dbk[k * N + n] = pi[3 * k] * g;
            dfw[k * N + n] = pi[3 * k + 1] * g;
            drc[k * N + n] = pi[3 * k + 2] * g;
        }
        float *dm = dpar + j->i_pi + 3 * k;
        dm[0] = d0;
        dm[1] = d1;
        dm[2] = d2;
    }
    for (int64_t k = 0; k < R; k++) {
        const float *wp = rwp + k * N, *df = dfw + k * N, *db = dbk + k * N;
        float *dwp = drwp + k * N;
        /* f[i] = sum_m L[i, m] wp[m];  b[m] = sum_i L[i, m] wp[i]. */
        for (int64_t i = 0; i < N; i++)
            for (int64_t m = 0; m < N; m++)
                dL[i * N + m] += df[i] * wp[m] + db[m] * wp[i];
        for (int64_t i = 0; i < N; i++)
            for (int64_t m = 0; m < N; m++)
                dwp[m] += L[i * N + m] * df[i];
        for (int64_t i = 0; i < N; i++) {
            float t = 0.0f;
            for (int64_t m = 0; m < N; m++)
                t += L[i * N + m] * db[m];
            dwp[i] += t;
        }
    }
    memset(dmn, 0, N * sizeof(float));
    for (int64_t k = 0; k < R; k++)
        dpar[j->i_br + k] =
            content_backward(M, mn, kr + k * W, knr[k], br[k], simr + k * N, rc + k * N,
                             drc + k * N, N, W, dpar + j->i_kr + k * W, dM, dmn);
    for (int64_t n = 0; n < N; n++) {
        const float f = dmn[n] / mn[n];
        for (int64_t i = 0; i < W; i++)
            dM[n * W + i] += f * M[n * W + i];
    }
    /* Linkage. */
    for (int64_t n = 0; n < N; n++)
        dww[n] = dww_n[n];
    float total = 0.0f, q = 0.0f;
    for (int64_t n = 0; n < N; n++) {
        total += ww[n];
        q += dp_n[n] * pp[n];
    }
    for (int64_t n = 0; n < N; n++) {
        dww[n] += dp_n[n] - q;
        dpp[n] = (1.0f - total) * dp_n[n];
    }
    for (int64_t i = 0; i < N; i++)
        dL[i * N + i] = 0.0f; /* (the diagonal is zero whatever the inputs) */
    for (int64_t i = 0; i < N; i++)
        for (int64_t m = 0; m < N; m++)
            dLp[i * N + m] = dL[i * N + m] * (1.0f - ww[i] - ww[m]);
    for (int64_t i = 0; i < N; i++) {
        float t = 0.0f;
        for (int64_t m = 0; m < N; m++)
            t += dL[i * N + m] * (pp[m] - Lp[i * N + m]);
        dww[i] += t;
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t m = 0; m < N; m++) {
            dww[m] -= dL[i * N + m] * Lp[i * N + m];
            dpp[m] += dL[i * N + m] * ww[i];
        }
    /* Erase and write. */
    float *de = dpar + j->i_e, *dv = dpar + j->i_v;
    for (int64_t n = 0; n < N; n++) {
        float t = 0.0f;
        for (int64_t i = 0; i < W; i++)
            t += dM[n * W + i] * (v[i] - Mp[n * W + i] * e[i]);
        dww[n] += t;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < W; i++) {
            const float g = dM[n * W + i];
            dMp[n * W + i] = g * (1.0f - ww[n] * e[i]);
            de[i] -= g * Mp[n * W + i] * ww[n];
            dv[i] += g * ww[n];
        }
    /* Write weights = gw (ga a + (1 - ga) cw). */
    float dgw = 0.0f, dga = 0.0f;
    float *dcw = s->dcw, *dus = s->dus;
    for (int64_t n = 0; n < N; n++) {
        dgw += dww[n] * (ga * a[n] + (1.0f - ga) * cw[n]);
        dga += gw * dww[n] * (a[n] - cw[n]);
        dcw[n] = gw * (1.0f - ga) * dww[n];
    }
    dpar[j->i_gw] = dgw;
    dpar[j->i_ga] = dga;
    /* Allocation: a[i] = (1 - us[i]) prod[i], prod[i] = prod_{k before i} us[k]. */
    for (int64_t i = 0; i < N; i++)
        dus[i] = -gw * ga * dww[i] * prod[i];
    float *inv = s->dpsi; /* (free until the usage's gradient below) */
    for (int64_t k = 0; k < N; k++)
        inv[k] = 1.0f / us[k];
    for (int64_t i = 0; i < N; i++) {
        const float ci = gw * ga * dww[i] * a[i];
        for (int64_t k = 0; k < N; k++)
            dus[k] += us[k] < us[i] || (us[k] == us[i] && k < i) ? ci * inv[k] : 0.0f;
    }
    /* Write content (on the old memory). */
    memset(dmn, 0, N * sizeof(float));
    dpar[j->i_bw] =
        content_backward(Mp, mnp, kw, knw, bw, simw, cw, dcw, N, W, dpar + j->i_kw, dMp, dmn);
    for (int64_t n = 0; n < N; n++) {
        const float f = dmn[n] / mnp[n];
        for (int64_t i = 0; i < W; i++)
            dMp[n * W + i] += f * Mp[n * W + i];
    }
    /* Usage: u = uaw psi, uaw = up + wwp - up wwp (wwp: no gradient). */
    float *dpsi = s->dpsi;
    for (int64_t n = 0; n < N; n++) {
        const float du = du_n[n] + (1.0f - EPS) * dus[n];
        dup[n] = du * psi[n] * (1.0f - wwp[n]);
        dpsi[n] = du * uaw[n];
    }
    for (int64_t k = 0; k < R; k++) {
        float df = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            float others = 1.0f;
            for (int64_t o = 0; o < R; o++)
                if (o != k)
                    others *= 1.0f - fr[o] * rwp[o * N + n];
            const float dq = dpsi[n] * others; /* of 1 - f_k rw_k[n] */
            df -= dq * rwp[k * N + n];
            drwp[k * N + n] -= dq * fr[k];
        }
        dpar[j->i_fg + k] = df;
    }
    /* The squashings, back to the raw interface vector. */
    for (int64_t k = 0; k < K; k++)
        d_xi[k] = dpar[k];
    for (int64_t k = 0; k < R; k++)
        d_xi[j->i_br + k] = dpar[j->i_br + k] * sigmoid_f(raw[j->i_br + k]);
    d_xi[j->i_bw] = dpar[j->i_bw] * sigmoid_f(raw[j->i_bw]);
    for (int64_t k = 0; k < W; k++)
        d_xi[j->i_e + k] = dpar[j->i_e + k] * e[k] * (1.0f - e[k]);
    for (int64_t k = 0; k < R; k++)
        d_xi[j->i_fg + k] = dpar[j->i_fg + k] * fr[k] * (1.0f - fr[k]);
    d_xi[j->i_ga] = dpar[j->i_ga] * ga * (1.0f - ga);
    d_xi[j->i_gw] = dpar[j->i_gw] * gw * (1.0f - gw);
    for (int64_t k = 0; k < R; k++) {
        const float *m = pi + 3 * k, *dm = dpar + j->i_pi + 3 * k;
        const float t = m[0] * dm[0] + m[1] * dm[1] + m[2] * dm[2];
        for (int o = 0; o < 3; o++)
            d_xi[j->i_pi + 3 * k + o] = m[o] * (dm[o] - t);
    }
}

/* The gradient of a step's controller cell: dz (of the pre-activations)
 * and dp's c, from dn's h and c and dht, the hidden state's gradient
 * through the interface (gemm_rows). */
static void
cell_backward(const job_t *j, const float *sp, const float *x, const float *dn, float *dp,
              const float *dht, float *dz)
{
    const int64_t H = j->H;
    const float *cp = sp + j->s_off[ST_C], *gate = x + j->x_gate, *tc = x + j->x_tc;
    const float *dh_n = dn + j->s_off[ST_H], *dc_n = dn + j->s_off[ST_C];
    float *dcp = dp + j->s_off[ST_C];
    for (int64_t i = 0; i < H; i++) {
        const float t = dh_n[i] + dht[i];
        const float ig = gate[i], fg = gate[H + i], gg = gate[2 * H + i], og = gate[3 * H + i];
        const float dct = dc_n[i] + t * og * (1.0f - tc[i] * tc[i]);
        dz[i] = dct * gg * ig * (1.0f - ig);
        dz[H + i] = dct * cp[i] * fg * (1.0f - fg);
        dz[2 * H + i] = dct * ig * (1.0f - gg * gg);
        dz[3 * H + i] = t * tc[i] * og * (1.0f - og);
        dcp[i] = dct * fg;
    }
}

/* The memory access of a step, compiled for the demo's sizes (4 read
 * heads, 16 slots of 16: every loop's bounds known, so unrolled and
 * vectorised without run-time checks) and for any others. */
static void
access_forward_step(const job_t *j, const float *sp, float *sn, float *x)
{
    if (j->R == 4 && j->W == 16 && j->N == 16)
        access_forward(j, sp, sn, x, 4, 16, 16);
    else
        access_forward(j, sp, sn, x, j->R, j->W, j->N);
}

static void
access_backward_step(const job_t *j, const float *sp, const float *sn, const float *x, float *dn,
                     float *dp, float *d_xi, scratch_t *s)
{
    if (j->R == 4 && j->W == 16 && j->N == 16)
        access_backward(j, sp, sn, x, dn, dp, d_xi, s, 4, 16, 16);
    else
        access_backward(j, sp, sn, x, dn, dp, d_xi, s, j->R, j->W, j->N);
}

/* ------------------------------------------------------------ products */

/* c[r][0:n] = init[r][0:n] (zeros where init is NULL) + a[r][0:kd] @ b,
 * b [kd, n] row-major, for the m rows r. Blocks of GR rows x GC columns
 * keep their sums in registers while b's rows stream past. */
#define GR 4
#define GC 32
static void
gemm_rows(int64_t m, const float *const *a, int64_t kd, const float *b, int64_t n, float *const *c,
          const float *const *init)
{
    for (int64_t r0 = 0; r0 < m; r0 += GR) {
        const int64_t rows = m - r0 < GR ? m - r0 : GR;
        for (int64_t j0 = 0; j0 < n; j0 += GC) {
            const int64_t w = n - j0 < GC ? n - j0 : GC;
            float acc[GR][GC];
            memset(acc, 0, sizeof acc);
            if (init)
                for (int64_t rr = 0; rr < rows; rr++)
                    memcpy(acc[rr], init[r0 + rr] + j0, w * sizeof(float));
            if (rows == GR && w == GC) {
                const float *a0 = a[r0], *a1 = a[r0 + 1], *a2 = a[r0 + 2], *a3 = a[r0 + 3];
                for (int64_t k = 0; k < kd; k++) {
                    const float *bk = b + k * n + j0;
                    const float v0 = a0[k], v1 = a1[k], v2 = a2[k], v3 = a3[k];
                    for (int q = 0; q < GC; q++) {
                        acc[0][q] += v0 * bk[q];
                        acc[1][q] += v1 * bk[q];
                        acc[2][q] += v2 * bk[q];
                        acc[3][q] += v3 * bk[q];
                    }
                }
            }
            else {
                for (int64_t k = 0; k < kd; k++)
                    for (int64_t rr = 0; rr < rows; rr++) {
                        const float v = a[r0 + rr][k];
                        for (int64_t q = 0; q < w; q++)
                            acc[rr][q] += v * b[k * n + j0 + q];
                    }
            }
            for (int64_t rr = 0; rr < rows; rr++)
                memcpy(c[r0 + rr] + j0, acc[rr], w * sizeof(float));
        }
    }
}

/* ------------------------------------------------------- a thread's rows */

static bool
valid(const job_t *j, int64_t t, int64_t b)
{
    return j->mask[t * j->mask_stride + b] != 0;
}

static void
load_state(const job_t *j, int64_t b, const float *const *from, float *s)
{
    for (int k = 0; k < N_STATE; k++)
        memcpy(s + j->s_off[k], from[k] + b * j->s_len[k], j->s_len[k] * sizeof(float));
}

static void
store_state(const job_t *j, int64_t b, const float *s, float *const *to)
{
    for (int k = 0; k < N_STATE; k++)
        memcpy(to[k] + b * j->s_len[k], s + j->s_off[k], j->s_len[k] * sizeof(float));
}

/* A block of m rows [b0, b0 + m) and a thread's buffers: with a tape (the
 * backward op, and the forward op that makes it) each row's states
 * [T+1, SS] and intermediates [T, XS]; without (the forward op without a
 * tape, the harness) two states that alternate and one step's
 * intermediates. The rows go through the steps together, so that the
 * controller's and the interface's products are gemm_rows over them. */
typedef struct {
    int64_t b0, m;
    bool tape, own; /* own: states and inter are this thread's, not the tape tensor */
    float *states, *inter, *dn, *dp, *dht, *buf;
    const float **pa, **pi;
    float **pc;
} rows_t;

static float *
state_at(const job_t *j, const rows_t *w, int64_t r, int64_t t)
{
    return w->tape ? w->states + (r * (j->T + 1) + t) * j->SS
                   : w->states + (r * 2 + (t & 1)) * j->SS;
}

static float *
inter_at(const job_t *j, const rows_t *w, int64_t r, int64_t t)
{
    return w->inter + (w->tape ? r * j->T + t : r) * j->XS;
}

static void
rows_forward(const job_t *j, rows_t *w)
{
    const int64_t T = j->T, B = j->B, m = w->m, b0 = w->b0;
    for (int64_t r = 0; r < m; r++)
        load_state(j, b0 + r, j->init, state_at(j, w, r, 0));
    for (int64_t t = 0; t < T; t++) {
        /* z = zx + [r_prev, h_prev] @ [read_kernel; recurrent_kernel] */
        for (int64_t r = 0; r < m; r++) {
            w->pa[r] = state_at(j, w, r, t) + j->s_off[ST_R];
            w->pc[r] = inter_at(j, w, r, t) + j->x_gate;
            w->pi[r] = j->zx + (t * B + b0 + r) * j->G;
        }
        gemm_rows(m, w->pa, j->RW + j->H, j->wcat, j->G, w->pc, w->pi);
        for (int64_t r = 0; r < m; r++) {
            cell_forward(j, state_at(j, w, r, t), state_at(j, w, r, t + 1), inter_at(j, w, r, t));
            w->pa[r] = state_at(j, w, r, t + 1) + j->s_off[ST_H];
            w->pc[r] = inter_at(j, w, r, t) + j->x_raw;
            w->pi[r] = j->bi;
        }
        gemm_rows(m, w->pa, j->H, j->wi, j->K, w->pc, w->pi);
        for (int64_t r = 0; r < m; r++) {
            const float *sp = state_at(j, w, r, t);
            float *sn = state_at(j, w, r, t + 1);
            access_forward_step(j, sp, sn, inter_at(j, w, r, t));
            if (!valid(j, t, b0 + r))
                memcpy(sn, sp, j->SS * sizeof(float));
            if (j->hs) { /* (the state's: the caller zeroes the masked steps') */
                memcpy(j->hs + (t * B + b0 + r) * j->H, sn + j->s_off[ST_H], j->H * sizeof(float));
                memcpy(j->rs + (t * B + b0 + r) * j->RW, sn + j->s_off[ST_R],
                       j->RW * sizeof(float));
            }
        }
    }
    if (j->fin[0])
        for (int64_t r = 0; r < m; r++)
            store_state(j, b0 + r, state_at(j, w, r, T), j->fin);
}

static void
rows_backward(const job_t *j, rows_t *w, scratch_t *s)
{
    const int64_t T = j->T, B = j->B, m = w->m, b0 = w->b0, SS = j->SS;
    float *dn = w->dn, *dp = w->dp;
    for (int64_t r = 0; r < m; r++)
        load_state(j, b0 + r, j->d_fin, dn + r * SS);
    for (int64_t t = T - 1; t >= 0; t--) {
        for (int64_t r = 0; r < m; r++) {
            const int64_t b = b0 + r;
            float *d_xi = j->d_xi + (t * B + b) * j->K;
            w->pa[r] = d_xi;
            w->pc[r] = w->dht + r * j->H;
            /* hs[t] and rs[t] are the state's h and r after step t (carried
             * through a masked step): their gradients join the state's. */
            float *d = dn + r * SS;
            const float *dh = j->d_hs + (t * B + b) * j->H, *dr = j->d_rs + (t * B + b) * j->RW;
            for (int64_t i = 0; i < j->H; i++)
                d[j->s_off[ST_H] + i] += dh[i];
            for (int64_t i = 0; i < j->RW; i++)
                d[j->s_off[ST_R] + i] += dr[i];
            if (!valid(j, t, b)) {
                memset(d_xi, 0, j->K * sizeof(float));
                continue;
            }
            access_backward_step(j, state_at(j, w, r, t), state_at(j, w, r, t + 1),
                                 inter_at(j, w, r, t), d, dp + r * SS, d_xi, s);
        }
        /* The hidden state's gradient through the interface layer. */
        gemm_rows(m, w->pa, j->K, j->wiT, j->H, w->pc, NULL);
        for (int64_t r = 0; r < m; r++) {
            const int64_t b = b0 + r;
            float *dz = j->d_zx + (t * B + b) * j->G;
            w->pa[r] = dz;
            w->pc[r] = dp + r * SS + j->s_off[ST_R];
            if (valid(j, t, b))
                cell_backward(j, state_at(j, w, r, t), inter_at(j, w, r, t), dn + r * SS,
                              dp + r * SS, w->dht + r * j->H, dz);
            else
                memset(dz, 0, j->G * sizeof(float));
        }
        /* [d r_prev, d h_prev] = dz @ [read_kernel; recurrent_kernel]^T */
        gemm_rows(m, w->pa, j->G, j->wcatT, j->RW + j->H, w->pc, NULL);
        for (int64_t r = 0; r < m; r++)
            if (!valid(j, t, b0 + r)) /* the state, and its gradient, pass */
                memcpy(dp + r * SS, dn + r * SS, SS * sizeof(float));
        float *swap = dn;
        dn = dp;
        dp = swap;
    }
    for (int64_t r = 0; r < m; r++)
        store_state(j, b0 + r, dn + r * SS, j->d_init);
}

static float *
alloc_floats(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes);
}

/* A thread's buffers for up to ROWS rows (its own states and
 * intermediates where there is no tape tensor). */
#define ROWS UNIT_ALIGN
static bool
rows_init(const job_t *j, bool tape, rows_t *w)
{
    memset(w, 0, sizeof *w);
    w->tape = tape;
    const int64_t N = j->N, R = j->R, T = j->T;
    w->own = !tape || (!j->tape_out && !j->tape_in);
    if (w->own) {
        w->states = alloc_floats(ROWS * (tape ? T + 1 : 2) * j->SS);
        w->inter = alloc_floats(ROWS * (tape ? T : 1) * j->XS);
    }
    w->pa = malloc(ROWS * sizeof(float *));
    w->pi = malloc(ROWS * sizeof(float *));
    w->pc = malloc(ROWS * sizeof(float *));
    if (tape) {
        w->dn = alloc_floats(ROWS * j->SS);
        w->dp = alloc_floats(ROWS * j->SS);
        w->dht = alloc_floats(ROWS * j->H);
        w->buf = alloc_floats(6 * N + j->K + 4 * R * N);
    }
    return (!w->own || (w->states && w->inter)) && w->pa && w->pi && w->pc &&
           (!tape || (w->dn && w->dp && w->dht && w->buf));
}

/* The next block of rows for this thread (false: none left): the threads
 * take blocks as they finish them, so one that loses its core to other
 * work takes fewer. */
static bool
rows_next(job_t *j, rows_t *w)
{
    const int64_t b0 = (int64_t)atomic_fetch_add(&j->next_block, 1) * ROWS;
    if (b0 >= j->B)
        return false;
    w->b0 = b0;
    w->m = j->B - b0 < ROWS ? j->B - b0 : ROWS;
    if (!w->own) { /* [B, T+1, SS] states, then [B, T, XS] intermediates */
        float *tape = j->tape_out ? j->tape_out : (float *)j->tape_in;
        w->states = tape + b0 * (j->T + 1) * j->SS;
        w->inter = tape + j->B * (j->T + 1) * j->SS + b0 * j->T * j->XS;
    }
    return true;
}

static void
rows_free(rows_t *w)
{
    if (w->own) {
        free(w->states);
        free(w->inter);
    }
    free(w->pa);
    free(w->pi);
    free(w->pc);
    free(w->dn);
    free(w->dp);
    free(w->dht);
    free(w->buf);
}

static void
forward_work(job_t *j, int index)
{
    (void)index;
    rows_t w;
    if (rows_init(j, j->tape_out != NULL, &w))
        while (rows_next(j, &w))
            rows_forward(j, &w);
    else
        atomic_store(&j->out_of_memory, 1);
    rows_free(&w);
}

static void
backward_work(job_t *j, int index)
{
    (void)index;
    rows_t w;
    if (rows_init(j, true, &w)) {
        const int64_t N = j->N, R = j->R;
        scratch_t s;
        float *q = w.buf;
        s.dww = q, q += N;
        s.dus = q, q += N;
        s.dmn = q, q += N;
        s.dcw = q, q += N;
        s.dpsi = q, q += N;
        q += N;
        s.dpar = q, q += j->K;
        s.drc = q, q += R * N;
        s.dfw = q, q += R * N;
        s.dbk = q, q += R * N;
        while (rows_next(j, &w)) {
            if (!j->tape_in)
                rows_forward(j, &w);
            rows_backward(j, &w, &s);
        }
    }
    else {
        atomic_store(&j->out_of_memory, 1);
    }
    rows_free(&w);
}

/* ------------------------------------------------------------ the ops */

static const char *const STATE_NAMES[N_STATE] = {
    "h", "c", "r", "memory", "read_weights", "write_weights", "link", "precedence", "usage"};

/* The sizes' consequences: where everything is in a row's state, in a
 * step's intermediates and in the interface vector (s_len already set). */
static void
layout(job_t *j)
{
    const int64_t R = j->R, W = j->W, N = j->N, G = j->G, H = j->H, K = j->K;
    /* A row's state: r then h with nothing between (the controller's
     * product reads them as one vector), the rest 16-float aligned. */
    static const int order[N_STATE] = {ST_R, ST_H, ST_C, ST_M, ST_RW, ST_WW, ST_L, ST_P, ST_U};
    int64_t off = 0;
    for (int i = 0; i < N_STATE; i++) {
        const int k = order[i];
        j->s_off[k] = off;
        off += k == ST_R ? j->s_len[k] : (j->s_len[k] + 15) / 16 * 16;
    }
    j->SS = off;
    /* The interface layout (rnn.dnc.access.parse_interface, one write head). */
    int64_t o = 0;
    j->i_kr = o, o += R * W;
    j->i_br = o, o += R;
    j->i_kw = o, o += W;
    j->i_bw = o, o += 1;
    j->i_e = o, o += W;
    j->i_v = o, o += W;
    j->i_fg = o, o += R;
    j->i_ga = o, o += 1;
    j->i_gw = o, o += 1;
    j->i_pi = o;
    /* A step's intermediates. */
    o = 0;
#define TAKE(field, n) (j->field = o, o += ((n) + 15) / 16 * 16)
    TAKE(x_gate, G);
    TAKE(x_tc, H);
    TAKE(x_raw, K);
    TAKE(x_par, K);
    TAKE(x_psi, N);
    TAKE(x_uaw, N);
    TAKE(x_simw, N);
    TAKE(x_cw, N);
    TAKE(x_us, N);
    TAKE(x_prod, N);
    TAKE(x_logs, N);
    TAKE(x_a, N);
    TAKE(x_simr, R * N);
    TAKE(x_rc, R * N);
    TAKE(x_fwd, R * N);
    TAKE(x_bwd, R * N);
    TAKE(x_mnp, N);
    TAKE(x_mn, N);
    TAKE(x_knr, R);
    TAKE(x_knw, 1);
#undef TAKE
    j->XS = o;
}

/* The sizes from the forward's 15 inputs (both ops start with them), the
 * shapes checked; the state's dims into sdims. False: the op failed. */
static bool
setup(job_t *j, TF_OpKernelContext *ctx, TF_Status *st, const char *op, TF_Tensor **in,
      int64_t sdims[N_STATE][4], int srank[N_STATE])
{
    memset(j, 0, sizeof *j);
    for (int k = 0; k < 3; k++)
        if (TF_NumDims(in[k == 0 ? 0 : k == 1 ? 7 : 8]) != 3) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s: zx, r0 and memory0 must have rank 3", op);
            return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
        }
    const int64_t T = TF_Dim(in[0], 0), B = TF_Dim(in[0], 1), G = TF_Dim(in[0], 2);
    const int64_t H = G / 4, R = TF_Dim(in[7], 1), W = TF_Dim(in[7], 2), N = TF_Dim(in[8], 1);
    const int64_t K = R * W + R + W + 1 + 2 * W + R + 2 + 3 * R;
    j->T = T, j->B = B, j->G = G, j->H = H, j->R = R, j->W = W, j->N = N, j->RW = R * W;
    j->K = K;
    const int64_t zx[3] = {T, B, 4 * H}, wkr[2] = {R * W, G}, wr[2] = {H, G}, wi[2] = {H, K};
    const int64_t bi[1] = {K};
    const int64_t dims[N_STATE][4] = {{B, H},       {B, H},       {B, R, W}, {B, N, W}, {B, R, N},
                                      {B, 1, N, 0}, {B, 1, N, N}, {B, 1, N}, {B, N}};
    const int ranks[N_STATE] = {2, 2, 3, 3, 3, 3, 4, 3, 2};
    if (!check_dims(ctx, st, op, "zx", in[0], 3, zx) ||
        !check_dims(ctx, st, op, "read_kernel", in[1], 2, wkr) ||
        !check_dims(ctx, st, op, "recurrent_kernel", in[2], 2, wr) ||
        !check_dims(ctx, st, op, "interface_kernel", in[3], 2, wi) ||
        !check_dims(ctx, st, op, "interface_bias", in[4], 1, bi))
        return false;
    for (int k = 0; k < N_STATE; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s0", STATE_NAMES[k]);
        if (!check_dims(ctx, st, op, name, in[5 + k], ranks[k], dims[k]))
            return false;
        int64_t len = 1;
        for (int d = 1; d < ranks[k]; d++)
            len *= dims[k][d];
        j->s_len[k] = len;
        srank[k] = ranks[k];
        memcpy(sdims[k], dims[k], sizeof dims[k]);
    }
    TF_Tensor *mask = in[14];
    if (!check_mask(ctx, st, op, mask, T, B))
        return false;
    if (given(mask)) {
        j->mask = TF_TensorData(mask);
        j->mask_stride = B;
    }
    else {
        j->ones = malloc(B > 0 ? B : 1);
        if (!j->ones)
            return fail(ctx, st, TF_RESOURCE_EXHAUSTED, "out of memory");
        memset(j->ones, 1, B > 0 ? B : 1);
        j->mask = j->ones;
        j->mask_stride = 0;
    }
    layout(j);
    j->zx = TF_TensorData(in[0]);
    j->wkr = TF_TensorData(in[1]);
    j->wr = TF_TensorData(in[2]);
    j->wi = TF_TensorData(in[3]);
    j->bi = TF_TensorData(in[4]);
    for (int k = 0; k < N_STATE; k++)
        j->init[k] = TF_TensorData(in[5 + k]);
    return true;
}

/* The packed weights (wcat; with `transposed`, wcatT and wiT too). */
static bool
pack_weights(job_t *j, bool transposed)
{
    const int64_t RW = j->RW, H = j->H, G = j->G, K = j->K, I = RW + H;
    j->wcat = alloc_floats(I * G);
    if (!j->wcat)
        return false;
    memcpy(j->wcat, j->wkr, RW * G * sizeof(float));
    memcpy(j->wcat + RW * G, j->wr, H * G * sizeof(float));
    if (!transposed)
        return true;
    j->wcatT = alloc_floats(G * I);
    j->wiT = alloc_floats(K * H);
    if (!j->wcatT || !j->wiT)
        return false;
    for (int64_t i = 0; i < I; i++)
        for (int64_t g = 0; g < G; g++)
            j->wcatT[g * I + i] = j->wcat[i * G + g];
    for (int64_t i = 0; i < H; i++)
        for (int64_t k = 0; k < K; k++)
            j->wiT[k * H + i] = j->wi[i * K + k];
    return true;
}

static void
end_call(job_t *j, TF_Tensor **in, int n_in, TF_Tensor **out, int n_out, TF_Status *st)
{
    free(j->ones);
    free(j->wcat);
    free(j->wcatT);
    free(j->wiT);
    for (int i = 0; i < n_in; i++)
        if (in[i])
            TF_DeleteTensor(in[i]);
    for (int i = 0; i < n_out; i++)
        if (out[i])
            TF_DeleteTensor(out[i]);
    TF_DeleteStatus(st);
}

/* Threads for the rows: enough work per thread to pay for starting it. */
static void
run_rows(job_t *j, work_fn fn, double flops_per_row)
{
    run_threads(j, thread_count(flops_per_row * (double)j->B, j->B), fn);
}

#define N_FWD_IN  15
#define N_FWD_OUT 12
#define N_BWD_IN  (N_FWD_IN + 3 + N_STATE)
#define N_BWD_OUT (2 + N_STATE)

void
CAT(rnn_dnc_forward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnDncForward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[N_FWD_IN] = {0}, *out[N_FWD_OUT] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    int64_t sdims[N_STATE][4];
    int srank[N_STATE];
    if (!get_inputs(ctx, st, in, N_FWD_IN) || !setup(&j, ctx, st, op, in, sdims, srank))
        goto done;
    const int64_t hs[3] = {j.T, j.B, j.H}, rs[4] = {j.T, j.B, j.R, j.W};
    if (!(out[0] = output(ctx, st, 0, hs, 3)) || !(out[1] = output(ctx, st, 1, rs, 4)))
        goto done;
    for (int k = 0; k < N_STATE; k++) {
        if (!(out[2 + k] = output(ctx, st, 2 + k, sdims[k], srank[k])))
            goto done;
        j.fin[k] = TF_TensorData(out[2 + k]);
    }
    const int64_t tape[1] = {j.B * ((j.T + 1) * j.SS + j.T * j.XS)};
    if (!(out[11] = output(ctx, st, 11, tape, 1)))
        goto done;
    j.hs = TF_TensorData(out[0]);
    j.rs = TF_TensorData(out[1]);
    j.tape_out = TF_TensorData(out[11]);
    if (j.B == 0)
        goto done;
    if (!pack_weights(&j, false)) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnDncForward: out of memory");
        goto done;
    }
    run_rows(&j, forward_work, (double)j.T * 2.0 * (double)j.G * (double)(j.RW + j.H));
    if (atomic_load(&j.out_of_memory))
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnDncForward: out of memory");
done:
    end_call(&j, in, N_FWD_IN, out, N_FWD_OUT, st);
}

void
CAT(rnn_dnc_backward, RNN_KERNEL_ISA)(void *kernel, TF_OpKernelContext *ctx)
{
    (void)kernel;
    static const char *op = "RnnDncBackward";
    TF_Status *st = TF_NewStatus();
    TF_Tensor *in[N_BWD_IN] = {0}, *out[N_BWD_OUT] = {0};
    job_t j;
    memset(&j, 0, sizeof j);
    int64_t sdims[N_STATE][4];
    int srank[N_STATE];
    if (!get_inputs(ctx, st, in, N_BWD_IN) || !setup(&j, ctx, st, op, in, sdims, srank))
        goto done;
    const int64_t hs[3] = {j.T, j.B, j.H}, rs[4] = {j.T, j.B, j.R, j.W};
    /* The forward op's tape, or [0]: the forward pass is run again. */
    const int64_t tape[1] = {j.B * ((j.T + 1) * j.SS + j.T * j.XS)};
    if (!check_optional(ctx, st, op, "tape", in[N_FWD_IN], 1, tape))
        goto done;
    if (given(in[N_FWD_IN]))
        j.tape_in = TF_TensorData(in[N_FWD_IN]);
    if (!check_dims(ctx, st, op, "d_hs", in[N_FWD_IN + 1], 3, hs) ||
        !check_dims(ctx, st, op, "d_rs", in[N_FWD_IN + 2], 4, rs))
        goto done;
    for (int k = 0; k < N_STATE; k++) {
        char name[32];
        snprintf(name, sizeof name, "d_%s", STATE_NAMES[k]);
        if (!check_dims(ctx, st, op, name, in[N_FWD_IN + 3 + k], srank[k], sdims[k]))
            goto done;
        j.d_fin[k] = TF_TensorData(in[N_FWD_IN + 3 + k]);
    }
    const int64_t dz[3] = {j.T, j.B, j.G}, dxi[3] = {j.T, j.B, j.K};
    if (!(out[0] = output(ctx, st, 0, dz, 3)) || !(out[1] = output(ctx, st, 1, dxi, 3)))
        goto done;
    for (int k = 0; k < N_STATE; k++) {
        if (!(out[2 + k] = output(ctx, st, 2 + k, sdims[k], srank[k])))
            goto done;
        j.d_init[k] = TF_TensorData(out[2 + k]);
    }
    j.d_hs = TF_TensorData(in[N_FWD_IN + 1]);
    j.d_rs = TF_TensorData(in[N_FWD_IN + 2]);
    j.d_zx = TF_TensorData(out[0]);
    j.d_xi = TF_TensorData(out[1]);
    if (j.B == 0)
        goto done;
    if (!pack_weights(&j, true)) {
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnDncBackward: out of memory");
        goto done;
    }
    run_rows(&j, backward_work, (double)j.T * 6.0 * (double)j.G * (double)(j.RW + j.H));
    if (atomic_load(&j.out_of_memory))
        fail(ctx, st, TF_RESOURCE_EXHAUSTED, "RnnDncBackward: out of memory");
done:
    end_call(&j, in, N_BWD_IN, out, N_BWD_OUT, st);
}
#endif /* RNN_KERNEL_ISA */

#ifdef RNN_KERNEL_REGISTER
/* ===================================== op registration and ISA dispatch */

#define RNN_LIBRARY     dnc
#define RNN_OPS(X, isa) X(dnc_forward, isa) X(dnc_backward, isa)
#include "../register.h"

__attribute__((constructor)) static void
register_dnc_ops(void)
{
    static const char *const fwd_in[] = {"zx: float",
                                         "read_kernel: float",
                                         "recurrent_kernel: float",
                                         "interface_kernel: float",
                                         "interface_bias: float",
                                         "h0: float",
                                         "c0: float",
                                         "r0: float",
                                         "memory0: float",
                                         "read_weights0: float",
                                         "write_weights0: float",
                                         "link0: float",
                                         "precedence0: float",
                                         "usage0: float",
                                         "mask: bool"};
    static const char *const fwd_out[] = {"hs: float",
                                          "rs: float",
                                          "h: float",
                                          "c: float",
                                          "r: float",
                                          "memory: float",
                                          "read_weights: float",
                                          "write_weights: float",
                                          "link: float",
                                          "precedence: float",
                                          "usage: float",
                                          "tape: float"};
    static const char *const bwd_in[] = {"zx: float",
                                         "read_kernel: float",
                                         "recurrent_kernel: float",
                                         "interface_kernel: float",
                                         "interface_bias: float",
                                         "h0: float",
                                         "c0: float",
                                         "r0: float",
                                         "memory0: float",
                                         "read_weights0: float",
                                         "write_weights0: float",
                                         "link0: float",
                                         "precedence0: float",
                                         "usage0: float",
                                         "mask: bool",
                                         "tape: float",
                                         "d_hs: float",
                                         "d_rs: float",
                                         "d_h: float",
                                         "d_c: float",
                                         "d_r: float",
                                         "d_memory: float",
                                         "d_read_weights: float",
                                         "d_write_weights: float",
                                         "d_link: float",
                                         "d_precedence: float",
                                         "d_usage: float"};
    static const char *const bwd_out[] = {"d_zx: float",
                                          "d_interface: float",
                                          "d_h0: float",
                                          "d_c0: float",
                                          "d_r0: float",
                                          "d_memory0: float",
                                          "d_read_weights0: float",
                                          "d_write_weights0: float",
                                          "d_link0: float",
                                          "d_precedence0: float",
                                          "d_usage0: float"};
    chosen = choose_isa();
    register_op(0, "RnnDncForward", fwd_in, 15, fwd_out, 12);
    register_op(1, "RnnDncBackward", bwd_in, 27, bwd_out, 11);
}
#endif /* RNN_KERNEL_REGISTER */
