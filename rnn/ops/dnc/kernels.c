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
 *   tape  [ceil(B / LANES) ((T+1) SS + T XS) LANES]  every step's state
 *                      and intermediates, per block of LANES rows
 *                      (layout(): SS and XS vectors), for the backward
 *                      op; given [0] instead (the TensorFlow forward
 *                      program's), the backward op runs the forward pass
 *                      again into a tape of its own. (LANES depends on the
 *                      instruction set: the tape is for the backward op of
 *                      the same process, nothing else.)
 *
 * Batch rows are independent, and a block of LANES of them (8 with AVX2)
 * goes through the whole sequence side by side: every float of a row's
 * state and of its step is a vector of the block's rows, so the memory
 * access (about a thousand small loops over the slots) and the cells are
 * vector operations without shuffles or sums across a vector, and the
 * controller's and the interface's products broadcast the weights over
 * the rows (gemm_lanes). The threads take blocks as they finish them
 * (block_next). A masked step carries a row's state (and its gradient)
 * through unchanged. Every row is computed the same way whatever the
 * thread count.
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

#include "../tfc.h" /* TensorFlow's C API, and fail, check_dims, output, ... */

/* The state's nine tensors, in the ops' order. */
#define N_STATE 9
enum { ST_H, ST_C, ST_R, ST_M, ST_RW, ST_WW, ST_L, ST_P, ST_U };

#ifdef RNN_KERNEL_ISA
/* ============================================== the compute part, per ISA */

/* The loops here run over the slots of one row's memory (16 at the demo's
 * sizes) with every operation on a vector of LANES batch rows, so most of
 * them are sums: without reassociation the compiler keeps them in order,
 * one dependent add after another. (The sums then round differently from
 * TensorFlow's, within float32's tolerance either way.) */
#if defined(__clang__)
#pragma clang fp reassociate(on)
#elif defined(__GNUC__)
#pragma GCC optimize("associative-math", "no-signed-zeros")
#endif

/* Batch rows side by side in one vector: a block of LANES rows goes through
 * the sequence together, each of its floats (a row's h[3], its memory's
 * slot 5 word 2, ...) one vector of the rows' values ("lanes"), so every
 * operation of the step is a vector operation with no sums across a vector
 * and no shuffles: the memory access's loops are tiny (16 slots of 16) and
 * per row they ran at a fraction of the vector units' speed. */
#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX2__) || defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#define UNIT_ALIGN      LANES /* batch rows per thread, at least */
#define RNN_THREADS_ENV "RNN_DNC_THREADS"
#include "../threads.h"
/* (The blocks never meet at threads.h's barrier: this keeps -Wall quiet.) */
static void (*const unused_barrier)(barrier_t *) __attribute__((unused)) = barrier_wait;

/* Added under square roots and to usages: rnn.dnc.addressing.EPSILON. */
#define EPS 1e-6f

struct job {
    int nthreads;
    barrier_t barrier; /* (threads.h's; these blocks never wait for each other) */
    int64_t T, B, H, G, K, R, W, N, RW;
    /* Offsets in a block's state (SS vectors) ... */
    int64_t s_off[N_STATE], s_len[N_STATE], SS;
    /* ... in a step's intermediates (XS vectors) ... */
    int64_t x_gate, x_tc, x_raw, x_par, x_psi, x_uaw, x_simw, x_cw, x_us, x_prod, x_a, x_simr, x_rc,
        x_fwd, x_bwd, x_mnp, x_mn, x_knr, x_knw, XS;
    /* ... and in the interface vector (K). */
    int64_t i_kr, i_br, i_kw, i_bw, i_e, i_v, i_fg, i_ga, i_gw, i_pi;
    int64_t BLOCK; /* vectors of one block's tape: (T + 1) SS + T XS */
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
    atomic_int next_block; /* the next block of LANES rows to take (block_next) */
};

static void
set_threads(job_t *j, int n)
{
    j->nthreads = n;
    j->barrier.n = n;
}

/* ------------------------------------------------------------------ math */

#include "../fastmath.h" /* tanh_f, sigmoid_f */

static inline vf
vsel(vi m, vf a, vf b) /* a where m, else b */
{
    return (vf)((m & (vi)a) | (~m & (vi)b));
}

static inline vf
vmax(vf a, vf b)
{
    return vsel(a > b, a, b);
}

/* name(x): fn on each lane (the compiler vectorises the branch-free ones). */
#define LANEWISE(name, fn)              \
    static inline vf name(vf x)         \
    {                                   \
        vf r;                           \
        for (int l = 0; l < LANES; l++) \
            r[l] = fn(x[l]);            \
        return r;                       \
    }
LANEWISE(vsqrt, sqrtf)
LANEWISE(vtanh, tanh_f)

static inline vf
vsigmoid(vf x)
{
    return 0.5f * vtanh(0.5f * x) + 0.5f;
}

/* exp(x), 2^n e^r with |r| <= log(2)/2 and Cephes' polynomial for e^r: a
 * relative error within 3e-7 (0 below -87.3; above 88 it gives exp(88);
 * the softmaxes' x - max is <= 0). */
static inline vf
vexp(vf x)
{
    const vi low = x < -87.3365447f;
    x = vmax(x, (vf){0} - 87.3365447f);
    x = vsel(x > 88.0f, (vf){0} + 88.0f, x);
    const vf y = x * 1.44269504088896341f + 0.5f;
    vi n = __builtin_convertvector(y, vi);
    n += __builtin_convertvector(n, vf) > y; /* floor (true is -1) */
    const vf fn = __builtin_convertvector(n, vf);
    const vf r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
    vf p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const vf e = p * r * r + r + 1.0f;
    const vf scale = (vf)((n + 127) << 23);
    return vsel(low, (vf){0}, e * scale);
}

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

LANEWISE(vsoftplus, softplus_f)

/* out[n] = softmax over n of beta * sim[n]. */
static inline __attribute__((always_inline)) void
softmax_scaled(const vf *sim, vf beta, int64_t n, vf *out)
{
    vf top = beta * sim[0];
    for (int64_t i = 1; i < n; i++)
        top = vmax(top, beta * sim[i]);
    vf sum = {0};
    for (int64_t i = 0; i < n; i++) {
        out[i] = vexp(beta * sim[i] - top);
        sum += out[i];
    }
    const vf inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++)
        out[i] *= inv;
}

/* Content weights of one key on memory [N, W] with the rows' norms `mn`:
 * sim[n] = key . M[n] / (|key|_eps |M[n]|_eps), w = softmax(beta sim). */
static inline __attribute__((always_inline)) vf
content(const vf *memory, const vf *mn, const vf *key, vf beta, int64_t N, int64_t W, vf *sim,
        vf *w)
{
    vf kk = {0};
    for (int64_t i = 0; i < W; i++)
        kk += key[i] * key[i];
    const vf kn = vsqrt(kk + EPS);
    for (int64_t n = 0; n < N; n++) {
        vf dot = {0};
        for (int64_t i = 0; i < W; i++)
            dot += key[i] * memory[n * W + i];
        sim[n] = dot / (kn * mn[n]);
    }
    softmax_scaled(sim, beta, N, w);
    return kn;
}

static inline __attribute__((always_inline)) void
row_norms(const vf *memory, int64_t N, int64_t W, vf *mn)
{
    for (int64_t n = 0; n < N; n++) {
        vf s = {0};
        for (int64_t i = 0; i < W; i++)
            s += memory[n * W + i] * memory[n * W + i];
        mn[n] = vsqrt(s + EPS);
    }
}

/* The gradient of content(): given dw (of the weights), adds to d_key,
 * d_memory (except through the norms: d_mn, added to by the caller's
 * rows) and returns d_beta. */
static inline __attribute__((always_inline)) vf
content_backward(const vf *memory, const vf *mn, const vf *key, vf kn, vf beta, const vf *sim,
                 const vf *w, const vf *dw, int64_t N, int64_t W, vf *d_key, vf *d_memory, vf *d_mn)
{
    vf s = {0};
    for (int64_t n = 0; n < N; n++)
        s += w[n] * dw[n];
    vf d_beta = {0}, d_kn = {0};
    const vf inv_kn = 1.0f / kn;
    for (int64_t n = 0; n < N; n++) {
        const vf ds = w[n] * (dw[n] - s); /* of beta * sim[n] */
        d_beta += ds * sim[n];
        const vf d_sim = beta * ds;
        const vf d_dot = d_sim * inv_kn / mn[n];
        d_kn -= d_sim * sim[n] * inv_kn;
        d_mn[n] -= d_sim * sim[n] / mn[n];
        for (int64_t i = 0; i < W; i++)
            d_key[i] += d_dot * memory[n * W + i];
        for (int64_t i = 0; i < W; i++)
            d_memory[n * W + i] += d_dot * key[i];
    }
    for (int64_t i = 0; i < W; i++)
        d_key[i] += d_kn * key[i] * inv_kn;
    return d_beta;
}

/* ------------------------------------------------------------- one step */

/* A step's controller cell, its pre-activations already in x's gates
 * (gemm_lanes): state sp -> sn's h and c. */
static void
cell_forward(const job_t *j, const vf *sp, vf *sn, vf *x)
{
    const int64_t H = j->H;
    const vf *cp = sp + j->s_off[ST_C];
    vf *h = sn + j->s_off[ST_H], *c = sn + j->s_off[ST_C];
    vf *gate = x + j->x_gate, *tc = x + j->x_tc;
    for (int64_t i = 0; i < 2 * H; i++)
        gate[i] = vsigmoid(gate[i]);
    for (int64_t i = 2 * H; i < 3 * H; i++)
        gate[i] = vtanh(gate[i]);
    for (int64_t i = 3 * H; i < 4 * H; i++)
        gate[i] = vsigmoid(gate[i]);
    for (int64_t i = 0; i < H; i++) {
        c[i] = gate[H + i] * cp[i] + gate[i] * gate[2 * H + i];
        tc[i] = vtanh(c[i]);
        h[i] = gate[3 * H + i] * tc[i];
    }
}

/* The rest of a step, its interface vector already in x (gemm_lanes):
 * the squashings, then the memory access; state sp -> sn. */
static inline __attribute__((always_inline)) void
access_forward(const job_t *j, const vf *sp, vf *sn, vf *x, const int64_t R, const int64_t W,
               const int64_t N)
{
    const int64_t K = j->K;
    const vf *Mp = sp + j->s_off[ST_M], *rwp = sp + j->s_off[ST_RW];
    const vf *wwp = sp + j->s_off[ST_WW], *Lp = sp + j->s_off[ST_L];
    const vf *pp = sp + j->s_off[ST_P], *up = sp + j->s_off[ST_U];
    vf *r = sn + j->s_off[ST_R];
    vf *M = sn + j->s_off[ST_M], *rw = sn + j->s_off[ST_RW], *ww = sn + j->s_off[ST_WW];
    vf *L = sn + j->s_off[ST_L], *p = sn + j->s_off[ST_P], *u = sn + j->s_off[ST_U];
    const vf *raw = x + j->x_raw;
    vf *par = x + j->x_par;

    /* The squashings (rnn.dnc.access.parse_interface). */
    for (int64_t k = 0; k < K; k++)
        par[k] = raw[k];
    for (int64_t k = 0; k < R; k++)
        par[j->i_br + k] = 1.0f + vsoftplus(raw[j->i_br + k]);
    par[j->i_bw] = 1.0f + vsoftplus(raw[j->i_bw]);
    for (int64_t k = 0; k < W; k++)
        par[j->i_e + k] = vsigmoid(raw[j->i_e + k]);
    for (int64_t k = 0; k < R; k++)
        par[j->i_fg + k] = vsigmoid(raw[j->i_fg + k]);
    par[j->i_ga] = vsigmoid(raw[j->i_ga]);
    par[j->i_gw] = vsigmoid(raw[j->i_gw]);
    for (int64_t k = 0; k < R; k++) {
        const vf *m = raw + j->i_pi + 3 * k;
        const vf top = vmax(vmax(m[0], m[1]), m[2]);
        const vf e0 = vexp(m[0] - top), e1 = vexp(m[1] - top), e2 = vexp(m[2] - top);
        const vf inv = 1.0f / (e0 + e1 + e2);
        par[j->i_pi + 3 * k] = e0 * inv;
        par[j->i_pi + 3 * k + 1] = e1 * inv;
        par[j->i_pi + 3 * k + 2] = e2 * inv;
    }
    const vf *kr = par + j->i_kr, *br = par + j->i_br, *kw = par + j->i_kw;
    const vf bw = par[j->i_bw], *e = par + j->i_e, *v = par + j->i_v, *fr = par + j->i_fg;
    const vf ga = par[j->i_ga], gw = par[j->i_gw], *pi = par + j->i_pi;

    /* Usage: (u + w - u w) psi, psi = prod_r (1 - f_r rw_r). */
    vf *psi = x + j->x_psi, *uaw = x + j->x_uaw;
    for (int64_t n = 0; n < N; n++) {
        vf q = 1.0f - fr[0] * rwp[n];
        for (int64_t k = 1; k < R; k++)
            q *= 1.0f - fr[k] * rwp[k * N + n];
        psi[n] = q;
        uaw[n] = up[n] + wwp[n] - up[n] * wwp[n];
        u[n] = uaw[n] * psi[n];
    }
    /* Write weights: content on the old memory, mixed with allocation. */
    vf *mnp = x + j->x_mnp, *simw = x + j->x_simw, *cw = x + j->x_cw;
    row_norms(Mp, N, W, mnp);
    x[j->x_knw] = content(Mp, mnp, kw, bw, N, W, simw, cw);
    vf *us = x + j->x_us, *prod = x + j->x_prod, *a = x + j->x_a;
    for (int64_t n = 0; n < N; n++)
        us[n] = EPS + (1.0f - EPS) * u[n];
    const vf one = (vf){0} + 1.0f;
    for (int64_t i = 0; i < N; i++) {
        /* The product of the usages of the slots before slot i in the
         * ascending sort (us[k] < us[i], ties to the lower index). */
        vf q = one;
        for (int64_t k = 0; k < i; k++)
            q *= vsel(us[k] <= us[i], us[k], one);
        for (int64_t k = i + 1; k < N; k++)
            q *= vsel(us[k] < us[i], us[k], one);
        prod[i] = q;
        a[i] = (1.0f - us[i]) * q;
    }
    for (int64_t n = 0; n < N; n++)
        ww[n] = gw * (ga * a[n] + (1.0f - ga) * cw[n]);
    /* Erase, then write. */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < W; i++)
            M[n * W + i] = Mp[n * W + i] * (1.0f - ww[n] * e[i]) + ww[n] * v[i];
    /* Linkage: the link from the previous precedence, then the precedence. */
    vf total = {0};
    for (int64_t n = 0; n < N; n++)
        total += ww[n];
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < N; k++)
            L[i * N + k] =
                i == k ? (vf){0} : (1.0f - ww[i] - ww[k]) * Lp[i * N + k] + ww[i] * pp[k];
    for (int64_t n = 0; n < N; n++)
        p[n] = (1.0f - total) * pp[n] + ww[n];
    /* Read weights: content on the new memory, and the link traversals. */
    vf *mn = x + j->x_mn, *simr = x + j->x_simr, *rc = x + j->x_rc;
    vf *fw = x + j->x_fwd, *bk = x + j->x_bwd, *knr = x + j->x_knr;
    row_norms(M, N, W, mn);
    for (int64_t k = 0; k < R; k++)
        knr[k] = content(M, mn, kr + k * W, br[k], N, W, simr + k * N, rc + k * N);
    for (int64_t k = 0; k < R; k++) {
        const vf *wp = rwp + k * N;
        for (int64_t i = 0; i < N; i++) {
            vf s = {0};
            for (int64_t m = 0; m < N; m++)
                s += L[i * N + m] * wp[m];
            fw[k * N + i] = s;
        }
        for (int64_t m = 0; m < N; m++) {
            vf s = {0};
            for (int64_t i = 0; i < N; i++)
                s += L[i * N + m] * wp[i];
            bk[k * N + m] = s;
        }
        for (int64_t n = 0; n < N; n++)
            rw[k * N + n] = pi[3 * k] * bk[k * N + n] + pi[3 * k + 1] * fw[k * N + n] +
                            pi[3 * k + 2] * rc[k * N + n];
    }
    /* Read. */
    for (int64_t k = 0; k < R; k++)
        for (int64_t i = 0; i < W; i++) {
            vf s = {0};
            for (int64_t n = 0; n < N; n++)
                s += rw[k * N + n] * M[n * W + i];
            r[k * W + i] = s;
        }
}

/* Scratch for one step's backward pass. */
typedef struct {
    vf *dww, *dus, *dmn, *dpar, *dcw, *drc, *dfw, *dbk, *dpsi;
} scratch_t;

/* The gradient of a step's memory access: dn (of the state after it, the
 * outputs' gradients included) -> dp (of the state before it; all but h,
 * c and r, which cell_backward and gemm_lanes give) and d_xi, the gradient
 * of the raw interface vector. dn is used as scratch. */
static inline __attribute__((always_inline)) void
access_backward(const job_t *j, const vf *sp, const vf *sn, const vf *x, vf *dn, vf *dp, vf *d_xi,
                scratch_t *s, const int64_t R, const int64_t W, const int64_t N)
{
    const int64_t K = j->K;
    const vf *Mp = sp + j->s_off[ST_M], *rwp = sp + j->s_off[ST_RW];
    const vf *wwp = sp + j->s_off[ST_WW], *Lp = sp + j->s_off[ST_L];
    const vf *pp = sp + j->s_off[ST_P];
    const vf *M = sn + j->s_off[ST_M], *rw = sn + j->s_off[ST_RW], *ww = sn + j->s_off[ST_WW];
    const vf *L = sn + j->s_off[ST_L];
    const vf *raw = x + j->x_raw;
    const vf *par = x + j->x_par;
    const vf *kr = par + j->i_kr, *br = par + j->i_br, *kw = par + j->i_kw;
    const vf bw = par[j->i_bw], *e = par + j->i_e, *v = par + j->i_v, *fr = par + j->i_fg;
    const vf ga = par[j->i_ga], gw = par[j->i_gw], *pi = par + j->i_pi;
    const vf *psi = x + j->x_psi, *uaw = x + j->x_uaw, *simw = x + j->x_simw;
    const vf *cw = x + j->x_cw, *us = x + j->x_us, *prod = x + j->x_prod, *a = x + j->x_a;
    const vf *simr = x + j->x_simr, *rc = x + j->x_rc, *fw = x + j->x_fwd;
    const vf *bk = x + j->x_bwd, *mnp = x + j->x_mnp, *mn = x + j->x_mn;
    const vf *knr = x + j->x_knr, knw = x[j->x_knw];
    const vf *dr_n = dn + j->s_off[ST_R];
    vf *dM = dn + j->s_off[ST_M]; /* of the new memory, accumulated in place */
    vf *drw = dn + j->s_off[ST_RW], *dL = dn + j->s_off[ST_L];
    const vf *dww_n = dn + j->s_off[ST_WW], *dp_n = dn + j->s_off[ST_P];
    const vf *du_n = dn + j->s_off[ST_U];
    vf *dMp = dp + j->s_off[ST_M], *drwp = dp + j->s_off[ST_RW];
    vf *dwwp = dp + j->s_off[ST_WW], *dLp = dp + j->s_off[ST_L];
    vf *dpp = dp + j->s_off[ST_P], *dup = dp + j->s_off[ST_U];
    vf *dpar = s->dpar, *dww = s->dww, *dmn = s->dmn;
    memset(dpar, 0, K * sizeof(vf));
    memset(drwp, 0, R * N * sizeof(vf));
    memset(dwwp, 0, N * sizeof(vf)); /* the usage stops the write weights' gradient */

    /* Read: r = rw M. */
    for (int64_t k = 0; k < R; k++)
        for (int64_t n = 0; n < N; n++) {
            vf t = {0};
            for (int64_t i = 0; i < W; i++)
                t += dr_n[k * W + i] * M[n * W + i];
            drw[k * N + n] += t;
        }
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < W; i++) {
            vf t = dM[n * W + i];
            for (int64_t k = 0; k < R; k++)
                t += rw[k * N + n] * dr_n[k * W + i];
            dM[n * W + i] = t;
        }
    /* Read weights: the modes, the link traversals, the content lookups. */
    vf *dfw = s->dfw, *dbk = s->dbk, *drc = s->drc;
    for (int64_t k = 0; k < R; k++) {
        vf d0 = {0}, d1 = {0}, d2 = {0};
        for (int64_t n = 0; n < N; n++) {
            const vf g = drw[k * N + n];
            d0 += g * bk[k * N + n];
            d1 += g * fw[k * N + n];
            d2 += g * rc[k * N + n];
            dbk[k * N + n] = pi[3 * k] * g;
            dfw[k * N + n] = pi[3 * k + 1] * g;
            drc[k * N + n] = pi[3 * k + 2] * g;
        }
        vf *dm = dpar + j->i_pi + 3 * k;
        dm[0] = d0;
        dm[1] = d1;
        dm[2] = d2;
    }
    /* f[i] = sum_m L[i, m] wp[m];  b[m] = sum_i L[i, m] wp[i]. */
    for (int64_t i = 0; i < N; i++)
        for (int64_t m = 0; m < N; m++) {
            vf t = dL[i * N + m];
            for (int64_t k = 0; k < R; k++)
                t += dfw[k * N + i] * rwp[k * N + m] + dbk[k * N + m] * rwp[k * N + i];
            dL[i * N + m] = t;
        }
    for (int64_t k = 0; k < R; k++) {
        const vf *df = dfw + k * N, *db = dbk + k * N;
        vf *dwp = drwp + k * N;
        for (int64_t m = 0; m < N; m++) {
            vf t = {0};
            for (int64_t i = 0; i < N; i++)
                t += L[i * N + m] * df[i];
            dwp[m] += t;
        }
        for (int64_t i = 0; i < N; i++) {
            vf t = {0};
            for (int64_t m = 0; m < N; m++)
                t += L[i * N + m] * db[m];
            dwp[i] += t;
        }
    }
    memset(dmn, 0, N * sizeof(vf));
    for (int64_t k = 0; k < R; k++)
        dpar[j->i_br + k] =
            content_backward(M, mn, kr + k * W, knr[k], br[k], simr + k * N, rc + k * N,
                             drc + k * N, N, W, dpar + j->i_kr + k * W, dM, dmn);
    for (int64_t n = 0; n < N; n++) {
        const vf f = dmn[n] / mn[n];
        for (int64_t i = 0; i < W; i++)
            dM[n * W + i] += f * M[n * W + i];
    }
    /* Linkage. */
    vf total = {0}, q = {0};
    for (int64_t n = 0; n < N; n++) {
        total += ww[n];
        q += dp_n[n] * pp[n];
    }
    for (int64_t n = 0; n < N; n++) {
        dww[n] = dww_n[n] + dp_n[n] - q;
        dpp[n] = (1.0f - total) * dp_n[n];
    }
    for (int64_t i = 0; i < N; i++)
        dL[i * N + i] = (vf){0}; /* (the diagonal is zero whatever the inputs) */
    for (int64_t i = 0; i < N; i++)
        for (int64_t m = 0; m < N; m++)
            dLp[i * N + m] = dL[i * N + m] * (1.0f - ww[i] - ww[m]);
    for (int64_t i = 0; i < N; i++) {
        vf t = {0};
        for (int64_t m = 0; m < N; m++)
            t += dL[i * N + m] * (pp[m] - Lp[i * N + m]);
        dww[i] += t;
    }
    for (int64_t m = 0; m < N; m++) {
        vf t = dww[m], t2 = dpp[m];
        for (int64_t i = 0; i < N; i++) {
            t -= dL[i * N + m] * Lp[i * N + m];
            t2 += dL[i * N + m] * ww[i];
        }
        dww[m] = t;
        dpp[m] = t2;
    }
    /* Erase and write. */
    vf *de = dpar + j->i_e, *dv = dpar + j->i_v;
    for (int64_t n = 0; n < N; n++) {
        vf t = {0};
        for (int64_t i = 0; i < W; i++)
            t += dM[n * W + i] * (v[i] - Mp[n * W + i] * e[i]);
        dww[n] += t;
    }
    for (int64_t i = 0; i < W; i++) {
        vf te = {0}, tv = {0};
        for (int64_t n = 0; n < N; n++) {
            const vf g = dM[n * W + i];
            dMp[n * W + i] = g * (1.0f - ww[n] * e[i]);
            te -= g * Mp[n * W + i] * ww[n];
            tv += g * ww[n];
        }
        de[i] += te;
        dv[i] += tv;
    }
    /* Write weights = gw (ga a + (1 - ga) cw). */
    vf dgw = {0}, dga = {0};
    vf *dcw = s->dcw, *dus = s->dus;
    for (int64_t n = 0; n < N; n++) {
        dgw += dww[n] * (ga * a[n] + (1.0f - ga) * cw[n]);
        dga += gw * dww[n] * (a[n] - cw[n]);
        dcw[n] = gw * (1.0f - ga) * dww[n];
    }
    dpar[j->i_gw] = dgw;
    dpar[j->i_ga] = dga;
    /* Allocation: a[i] = (1 - us[i]) prod[i], prod[i] = prod_{k before i} us[k]. */
    vf *inv = s->dpsi; /* (free until the usage's gradient below) */
    for (int64_t k = 0; k < N; k++)
        inv[k] = 1.0f / us[k];
    for (int64_t k = 0; k < N; k++)
        dus[k] = -gw * ga * dww[k] * prod[k];
    for (int64_t i = 0; i < N; i++) {
        const vf ci = gw * ga * dww[i] * a[i];
        for (int64_t k = 0; k < i; k++)
            dus[k] += vsel(us[k] <= us[i], ci * inv[k], (vf){0});
        for (int64_t k = i + 1; k < N; k++)
            dus[k] += vsel(us[k] < us[i], ci * inv[k], (vf){0});
    }
    /* Write content (on the old memory). */
    memset(dmn, 0, N * sizeof(vf));
    dpar[j->i_bw] =
        content_backward(Mp, mnp, kw, knw, bw, simw, cw, dcw, N, W, dpar + j->i_kw, dMp, dmn);
    for (int64_t n = 0; n < N; n++) {
        const vf f = dmn[n] / mnp[n];
        for (int64_t i = 0; i < W; i++)
            dMp[n * W + i] += f * Mp[n * W + i];
    }
    /* Usage: u = uaw psi, uaw = up + wwp - up wwp (wwp: no gradient). */
    vf *dpsi = s->dpsi;
    for (int64_t n = 0; n < N; n++) {
        const vf du = du_n[n] + (1.0f - EPS) * dus[n];
        dup[n] = du * psi[n] * (1.0f - wwp[n]);
        dpsi[n] = du * uaw[n];
    }
    for (int64_t k = 0; k < R; k++) {
        vf df = {0};
        for (int64_t n = 0; n < N; n++) {
            vf others = (vf){0} + 1.0f;
            for (int64_t o = 0; o < R; o++)
                if (o != k)
                    others *= 1.0f - fr[o] * rwp[o * N + n];
            const vf dq = dpsi[n] * others; /* of 1 - f_k rw_k[n] */
            df -= dq * rwp[k * N + n];
            drwp[k * N + n] -= dq * fr[k];
        }
        dpar[j->i_fg + k] = df;
    }
    /* The squashings, back to the raw interface vector. */
    for (int64_t k = 0; k < K; k++)
        d_xi[k] = dpar[k];
    for (int64_t k = 0; k < R; k++)
        d_xi[j->i_br + k] = dpar[j->i_br + k] * vsigmoid(raw[j->i_br + k]);
    d_xi[j->i_bw] = dpar[j->i_bw] * vsigmoid(raw[j->i_bw]);
    for (int64_t k = 0; k < W; k++)
        d_xi[j->i_e + k] = dpar[j->i_e + k] * e[k] * (1.0f - e[k]);
    for (int64_t k = 0; k < R; k++)
        d_xi[j->i_fg + k] = dpar[j->i_fg + k] * fr[k] * (1.0f - fr[k]);
    d_xi[j->i_ga] = dpar[j->i_ga] * ga * (1.0f - ga);
    d_xi[j->i_gw] = dpar[j->i_gw] * gw * (1.0f - gw);
    for (int64_t k = 0; k < R; k++) {
        const vf *m = pi + 3 * k, *dm = dpar + j->i_pi + 3 * k;
        const vf t = m[0] * dm[0] + m[1] * dm[1] + m[2] * dm[2];
        for (int o = 0; o < 3; o++)
            d_xi[j->i_pi + 3 * k + o] = m[o] * (dm[o] - t);
    }
}

/* The gradient of a step's controller cell: dz (of the pre-activations)
 * and dp's c, from dn's h and c and dht, the hidden state's gradient
 * through the interface (gemm_lanes). */
static void
cell_backward(const job_t *j, const vf *sp, const vf *x, const vf *dn, vf *dp, const vf *dht,
              vf *dz)
{
    const int64_t H = j->H;
    const vf *cp = sp + j->s_off[ST_C], *gate = x + j->x_gate, *tc = x + j->x_tc;
    const vf *dh_n = dn + j->s_off[ST_H], *dc_n = dn + j->s_off[ST_C];
    vf *dcp = dp + j->s_off[ST_C];
    for (int64_t i = 0; i < H; i++) {
        const vf t = dh_n[i] + dht[i];
        const vf ig = gate[i], fg = gate[H + i], gg = gate[2 * H + i], og = gate[3 * H + i];
        const vf dct = dc_n[i] + t * og * (1.0f - tc[i] * tc[i]);
        dz[i] = dct * gg * ig * (1.0f - ig);
        dz[H + i] = dct * cp[i] * fg * (1.0f - fg);
        dz[2 * H + i] = dct * ig * (1.0f - gg * gg);
        dz[3 * H + i] = t * tc[i] * og * (1.0f - og);
        dcp[i] = dct * fg;
    }
}

/* The memory access of a step, compiled for the demo's sizes (4 read
 * heads, 16 slots of 16: every loop's bounds known, so unrolled without
 * run-time checks) and for any others. */
static void
access_forward_step(const job_t *j, const vf *sp, vf *sn, vf *x)
{
    if (j->R == 4 && j->W == 16 && j->N == 16)
        access_forward(j, sp, sn, x, 4, 16, 16);
    else
        access_forward(j, sp, sn, x, j->R, j->W, j->N);
}

static void
access_backward_step(const job_t *j, const vf *sp, const vf *sn, const vf *x, vf *dn, vf *dp,
                     vf *d_xi, scratch_t *s)
{
    if (j->R == 4 && j->W == 16 && j->N == 16)
        access_backward(j, sp, sn, x, dn, dp, d_xi, s, 4, 16, 16);
    else
        access_backward(j, sp, sn, x, dn, dp, d_xi, s, j->R, j->W, j->N);
}

/* ------------------------------------------------------------ products */

/* c[0:n] = init[0:n] (zeros where init is NULL) + sum_k a[k] b[k][0:n] for
 * the block's lanes, b [kd, n] row-major: JB outputs at a time kept in
 * registers while a's vectors stream past, each term one of b's floats
 * broadcast over the lanes. */
#define JB 8
static void
gemm_lanes(const vf *a, int64_t kd, const float *b, int64_t n, vf *c, const vf *init)
{
    int64_t j0 = 0;
    for (; j0 + JB <= n; j0 += JB) {
        vf acc[JB];
        for (int q = 0; q < JB; q++)
            acc[q] = init ? init[j0 + q] : (vf){0};
        for (int64_t k = 0; k < kd; k++) {
            const vf av = a[k];
            const float *bk = b + k * n + j0;
            for (int q = 0; q < JB; q++)
                acc[q] += bk[q] * av;
        }
        for (int q = 0; q < JB; q++)
            c[j0 + q] = acc[q];
    }
    for (; j0 < n; j0++) {
        vf acc = init ? init[j0] : (vf){0};
        for (int64_t k = 0; k < kd; k++)
            acc += b[k * n + j0] * a[k];
        c[j0] = acc;
    }
}

/* ------------------------------------------------------ a thread's blocks */

static vi
valid_lanes(const job_t *j, int64_t t, int64_t b0, int64_t m)
{
    vi v;
    for (int l = 0; l < LANES; l++)
        v[l] = l < m && j->mask[t * j->mask_stride + b0 + l] ? -1 : 0;
    return v;
}

static bool
all_valid(vi v, int64_t m)
{
    for (int l = 0; l < m; l++)
        if (!v[l])
            return false;
    return true;
}

/* dst[f] (lane l) = src[(b0 + l) * stride + f] for f < n: rows b0 .. b0 + m
 * of a row-major tensor into lanes (the lanes past m repeat row b0). */
static void
gather(vf *dst, const float *src, int64_t b0, int64_t m, int64_t stride, int64_t n)
{
    for (int l = 0; l < LANES; l++) {
        const float *row = src + (b0 + (l < m ? l : 0)) * stride;
        for (int64_t f = 0; f < n; f++)
            dst[f][l] = row[f];
    }
}

/* The inverse for the m real lanes: dst[(b0 + l) * stride + f] = src[f][l]. */
static void
scatter(float *dst, const vf *src, int64_t b0, int64_t m, int64_t stride, int64_t n)
{
    for (int l = 0; l < m; l++) {
        float *row = dst + (b0 + l) * stride;
        for (int64_t f = 0; f < n; f++)
            row[f] = src[f][l];
    }
}

/* A block of m <= LANES rows [b0, b0 + m) and its tape: the states
 * [T + 1, SS] and the intermediates [T, XS], vectors of the rows' lanes
 * (the tape tensor's, or the thread's own where there is none), and the
 * backward pass's buffers. */
typedef struct {
    int64_t b0, m;
    bool own;
    vf *tape, *dn, *dp, *dht, *dz, *buf;
} block_t;

static vf *
state_at(const job_t *j, const block_t *w, int64_t t)
{
    return w->tape + t * j->SS;
}

static vf *
inter_at(const job_t *j, const block_t *w, int64_t t)
{
    return w->tape + (j->T + 1) * j->SS + t * j->XS;
}

static void
block_forward(const job_t *j, block_t *w)
{
    const int64_t T = j->T, B = j->B, m = w->m, b0 = w->b0, SS = j->SS;
    vf *s0 = state_at(j, w, 0);
    for (int k = 0; k < N_STATE; k++)
        gather(s0 + j->s_off[k], j->init[k], b0, m, j->s_len[k], j->s_len[k]);
    for (int64_t t = 0; t < T; t++) {
        const vf *sp = state_at(j, w, t);
        vf *sn = state_at(j, w, t + 1), *x = inter_at(j, w, t);
        /* z = zx + [r_prev, h_prev] @ [read_kernel; recurrent_kernel] */
        gather(x + j->x_gate, j->zx + t * B * j->G, b0, m, j->G, j->G);
        gemm_lanes(sp + j->s_off[ST_R], j->RW + j->H, j->wcat, j->G, x + j->x_gate, x + j->x_gate);
        cell_forward(j, sp, sn, x);
        for (int64_t k = 0; k < j->K; k++)
            x[j->x_raw + k] = (vf){0} + j->bi[k];
        gemm_lanes(sn + j->s_off[ST_H], j->H, j->wi, j->K, x + j->x_raw, x + j->x_raw);
        access_forward_step(j, sp, sn, x);
        const vi valid = valid_lanes(j, t, b0, m);
        if (!all_valid(valid, m)) /* a masked row's state passes */
            for (int64_t f = 0; f < SS; f++)
                sn[f] = vsel(valid, sn[f], sp[f]);
        if (j->hs) { /* (the state's: the caller zeroes the masked steps') */
            scatter(j->hs + t * B * j->H, sn + j->s_off[ST_H], b0, m, j->H, j->H);
            scatter(j->rs + t * B * j->RW, sn + j->s_off[ST_R], b0, m, j->RW, j->RW);
        }
    }
    if (j->fin[0])
        for (int k = 0; k < N_STATE; k++)
            scatter(j->fin[k], state_at(j, w, T) + j->s_off[k], b0, m, j->s_len[k], j->s_len[k]);
}

static void
block_backward(const job_t *j, block_t *w, scratch_t *s)
{
    const int64_t T = j->T, B = j->B, m = w->m, b0 = w->b0, SS = j->SS, H = j->H;
    const int64_t G = j->G, K = j->K, RW = j->RW;
    vf *dn = w->dn, *dp = w->dp, *dz = w->dz, *dht = w->dht;
    vf *d_xi = s->dpar + K; /* (scratch after dpar) */
    for (int k = 0; k < N_STATE; k++)
        gather(dn + j->s_off[k], j->d_fin[k], b0, m, j->s_len[k], j->s_len[k]);
    vf *dtmp = w->buf;
    for (int64_t t = T - 1; t >= 0; t--) {
        const vf *sp = state_at(j, w, t), *sn = state_at(j, w, t + 1), *x = inter_at(j, w, t);
        /* hs[t] and rs[t] are the state's h and r after step t (carried
         * through a masked step): their gradients join the state's. */
        gather(dtmp, j->d_hs + t * B * H, b0, m, H, H);
        for (int64_t i = 0; i < H; i++)
            dn[j->s_off[ST_H] + i] += dtmp[i];
        gather(dtmp, j->d_rs + t * B * RW, b0, m, RW, RW);
        for (int64_t i = 0; i < RW; i++)
            dn[j->s_off[ST_R] + i] += dtmp[i];
        const vi valid = valid_lanes(j, t, b0, m);
        const bool all = all_valid(valid, m);
        vf *keep = NULL;
        if (!all) { /* dn is scratch below: keep it for the masked lanes */
            keep = dtmp;
            memcpy(keep, dn, SS * sizeof(vf));
        }
        access_backward_step(j, sp, sn, x, dn, dp, d_xi, s);
        if (!all)
            for (int64_t k = 0; k < K; k++)
                d_xi[k] = vsel(valid, d_xi[k], (vf){0});
        scatter(j->d_xi + t * B * K, d_xi, b0, m, K, K);
        /* The hidden state's gradient through the interface layer. */
        gemm_lanes(d_xi, K, j->wiT, H, dht, NULL);
        cell_backward(j, sp, x, dn, dp, dht, dz); /* (access_backward left h and c) */
        if (!all)
            for (int64_t g = 0; g < G; g++)
                dz[g] = vsel(valid, dz[g], (vf){0});
        scatter(j->d_zx + t * B * G, dz, b0, m, G, G);
        /* [d r_prev, d h_prev] = dz @ [read_kernel; recurrent_kernel]^T */
        gemm_lanes(dz, G, j->wcatT, RW + H, dp + j->s_off[ST_R], NULL);
        if (!all) /* the state, and its gradient, pass the masked lanes */
            for (int64_t f = 0; f < SS; f++)
                dp[f] = vsel(valid, dp[f], keep[f]);
        vf *swap = dn;
        dn = dp;
        dp = swap;
    }
    for (int k = 0; k < N_STATE; k++)
        scatter(j->d_init[k], dn + j->s_off[k], b0, m, j->s_len[k], j->s_len[k]);
}

static vf *
alloc_vectors(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(vf) + 63) / 64 * 64;
    return aligned_alloc(64, bytes);
}

static float *
alloc_floats(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes);
}

/* A thread's buffers: its own block tape where there is no tape tensor
 * (the backward op given none), and with `backward` the gradients'. */
static bool
block_init(const job_t *j, bool backward, block_t *w)
{
    memset(w, 0, sizeof *w);
    w->own = !j->tape_out && !j->tape_in;
    if (w->own)
        w->tape = alloc_vectors(j->BLOCK);
    if (backward) {
        const int64_t N = j->N, R = j->R;
        w->dn = alloc_vectors(j->SS);
        w->dp = alloc_vectors(j->SS);
        w->dht = alloc_vectors(j->H);
        w->dz = alloc_vectors(j->G);
        w->buf = alloc_vectors(j->SS + 5 * N + 2 * j->K + 3 * R * N);
    }
    return (!w->own || w->tape) && (!backward || (w->dn && w->dp && w->dht && w->dz && w->buf));
}

/* The next block for this thread (false: none left): the threads take
 * blocks as they finish them, so one that loses its core to other work
 * takes fewer. */
static bool
block_next(job_t *j, block_t *w)
{
    const int64_t index = atomic_fetch_add(&j->next_block, 1);
    const int64_t b0 = index * LANES;
    if (b0 >= j->B)
        return false;
    w->b0 = b0;
    w->m = j->B - b0 < LANES ? j->B - b0 : LANES;
    if (!w->own) {
        float *tape = j->tape_out ? j->tape_out : (float *)j->tape_in;
        w->tape = (vf *)tape + index * j->BLOCK;
    }
    return true;
}

static void
block_free(block_t *w)
{
    if (w->own)
        free(w->tape);
    free(w->dn);
    free(w->dp);
    free(w->dht);
    free(w->dz);
    free(w->buf);
}

static void
forward_work(job_t *j, int index)
{
    (void)index;
    block_t w;
    if (block_init(j, false, &w))
        while (block_next(j, &w))
            block_forward(j, &w);
    else
        atomic_store(&j->out_of_memory, 1);
    block_free(&w);
}

static void
backward_work(job_t *j, int index)
{
    (void)index;
    block_t w;
    if (block_init(j, true, &w)) {
        const int64_t N = j->N, R = j->R;
        scratch_t s;
        vf *q = w.buf + j->SS; /* (w.buf's first SS: block_backward's) */
        s.dww = q, q += N;
        s.dus = q, q += N;
        s.dmn = q, q += N;
        s.dcw = q, q += N;
        s.dpsi = q, q += N;
        s.dpar = q, q += 2 * j->K; /* dpar, then block_backward's d_xi */
        s.drc = q, q += R * N;
        s.dfw = q, q += R * N;
        s.dbk = q, q += R * N;
        while (block_next(j, &w)) {
            if (!j->tape_in)
                block_forward(j, &w);
            block_backward(j, &w, &s);
        }
    }
    else {
        atomic_store(&j->out_of_memory, 1);
    }
    block_free(&w);
}

/* ------------------------------------------------------------ the ops */

static const char *const STATE_NAMES[N_STATE] = {
    "h", "c", "r", "memory", "read_weights", "write_weights", "link", "precedence", "usage"};

/* The sizes' consequences: where everything is in a block's state, in a
 * step's intermediates and in the interface vector (s_len already set),
 * in vectors of the block's lanes. */
static void
layout(job_t *j)
{
    const int64_t R = j->R, W = j->W, N = j->N, G = j->G, H = j->H, K = j->K;
    /* A block's state: r then h (the controller's product reads them as
     * one vector), then the rest. */
    static const int order[N_STATE] = {ST_R, ST_H, ST_C, ST_M, ST_RW, ST_WW, ST_L, ST_P, ST_U};
    int64_t off = 0;
    for (int i = 0; i < N_STATE; i++) {
        j->s_off[order[i]] = off;
        off += j->s_len[order[i]];
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
#define TAKE(field, n) (j->field = o, o += (n))
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
    j->BLOCK = (j->T + 1) * j->SS + j->T * j->XS;
}

/* The tape's length in floats: each block's states and intermediates. */
static int64_t
tape_floats(const job_t *j)
{
    return (j->B + LANES - 1) / LANES * j->BLOCK * LANES;
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
    release_call(in, n_in, out, n_out, st);
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
    const int64_t tape[1] = {tape_floats(&j)};
    if (!(out[11] = output(ctx, st, 11, tape, 1)))
        goto done;
    j.hs = TF_TensorData(out[0]);
    j.rs = TF_TensorData(out[1]);
    j.tape_out = TF_TensorData(out[11]);
    if ((uintptr_t)j.tape_out % sizeof(vf) != 0) { /* (TensorFlow aligns to 64 bytes) */
        fail(ctx, st, TF_INTERNAL, "RnnDncForward: the tape output is not aligned");
        goto done;
    }
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
    const int64_t tape[1] = {tape_floats(&j)};
    if (!check_optional(ctx, st, op, "tape", in[N_FWD_IN], 1, tape))
        goto done;
    if (given(in[N_FWD_IN]) && (uintptr_t)TF_TensorData(in[N_FWD_IN]) % sizeof(vf) == 0)
        j.tape_in = TF_TensorData(in[N_FWD_IN]); /* (else the forward pass runs again) */
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
