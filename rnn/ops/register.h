/* Op registration and instruction-set dispatch, shared by the LSTM's, the
 * GRU's and the DNC's kernels.c: each compiles its compute part once per
 * instruction set (entry points rnn_<op>_<isa>) and once with
 * -DRNN_KERNEL_REGISTER, where it includes this after TensorFlow's C
 * headers and after defining
 *
 *   RNN_LIBRARY       the library's name: lstm, gru or dnc (the exported
 *                     rnn_<library>_isa and rnn_<library>_calls, which
 *                     rnn/ops/_library.py reads through ctypes)
 *   RNN_OPS(X, isa)   X(op, isa) for each of its ops (1 to 4), in the
 *                     order it registers them: X(lstm_forward, isa)
 *                     X(lstm_backward, isa) names rnn_lstm_forward_<isa>
 *                     and rnn_lstm_backward_<isa>
 *
 * and then, in a constructor, sets `chosen = choose_isa()` and calls
 * register_op(i, "TfOpName", ...) for each op i. Part of each library's
 * build key. */

typedef void (*compute_fn)(void *, TF_OpKernelContext *);

#define RNN_DECLARE_OP_(op, isa) void rnn_##op##_##isa(void *, TF_OpKernelContext *);
#define RNN_OP_ENTRY_(op, isa)   rnn_##op##_##isa,
#define RNN_COUNT_OP_(op, isa)   +1
#define RNN_N_OPS                (0 RNN_OPS(RNN_COUNT_OP_, none))

typedef struct {
    const char *name;
    compute_fn ops[RNN_N_OPS]; /* in the order of calls[] and of registration */
    bool (*supported)(void);
} isa_t;

#define RNN_ISA_(isa) {#isa, {RNN_OPS(RNN_OP_ENTRY_, isa)}, supports_##isa}

static bool
supports_generic(void)
{
    return true;
}
RNN_OPS(RNN_DECLARE_OP_, generic)
#if defined(__x86_64__)
/* x86-64-v4 and v3, as the -march levels these sets are compiled with.
 * __builtin_cpu_supports also checks that the OS saves the registers. */
static bool
supports_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2");
}
static bool
supports_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("f16c");
}
RNN_OPS(RNN_DECLARE_OP_, avx512)
RNN_OPS(RNN_DECLARE_OP_, avx2)
static const isa_t ISAS[] = {RNN_ISA_(avx512), RNN_ISA_(avx2), RNN_ISA_(generic)};
#else
static const isa_t ISAS[] = {RNN_ISA_(generic)};
#endif
#define N_ISAS ((int)(sizeof ISAS / sizeof ISAS[0]))

static const isa_t *chosen;

/* The instruction set in use (for rnn.ops.kernel_info through ctypes). */
const char *
CAT(CAT(rnn, RNN_LIBRARY), isa)(void)
{
    return chosen ? chosen->name : "";
}

/* How many times each op (in the order registered) has run in this process
   (for rnn.ops.kernel_info through ctypes: the graphs hold TensorFlow ops
   and the runtime picks these, so counting is how one sees that they ran). */
static atomic_llong calls[RNN_N_OPS];

long long
CAT(CAT(rnn, RNN_LIBRARY), calls)(int op)
{
    return op >= 0 && op < RNN_N_OPS ? atomic_load(&calls[op]) : -1;
}

/* The widest supported set, or the one RNN_KERNEL_ISA names if supported. */
static const isa_t *
choose_isa(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
#endif
    const char *want = getenv("RNN_KERNEL_ISA");
    if (want && *want) {
        for (int i = 0; i < N_ISAS; i++) {
            if (strcmp(ISAS[i].name, want) != 0)
                continue;
            if (ISAS[i].supported())
                return &ISAS[i];
            fprintf(stderr, "rnn: RNN_KERNEL_ISA=%s: this CPU does not support it; ignored\n",
                    want);
            want = NULL;
            break;
        }
        if (want)
            fprintf(stderr,
                    "rnn: RNN_KERNEL_ISA=%s: not an instruction set of this build; "
                    "ignored\n",
                    want);
    }
    for (int i = 0; i < N_ISAS; i++)
        if (ISAS[i].supported())
            return &ISAS[i];
    return &ISAS[N_ISAS - 1];
}

/* The kernels TensorFlow calls: op i counted, then run in the chosen set.
 * (One function per op: the kernel builder passes no op index.) */
#define RNN_COMPUTE_(i)                                                \
    static void compute_##i(void *kernel, TF_OpKernelContext *ctx)     \
    {                                                                  \
        atomic_fetch_add_explicit(&calls[i], 1, memory_order_relaxed); \
        chosen->ops[i](kernel, ctx);                                   \
    }
RNN_COMPUTE_(0)
#if RNN_N_OPS > 1
RNN_COMPUTE_(1)
#endif
#if RNN_N_OPS > 2
RNN_COMPUTE_(2)
#endif
#if RNN_N_OPS > 3
RNN_COMPUTE_(3)
#endif
#if RNN_N_OPS > 4
#error "register.h dispatches at most 4 ops per library"
#endif
static const compute_fn COMPUTE[RNN_N_OPS] = {
    compute_0,
#if RNN_N_OPS > 1
    compute_1,
#endif
#if RNN_N_OPS > 2
    compute_2,
#endif
#if RNN_N_OPS > 3
    compute_3,
#endif
};

static void
unknown_shapes(TF_ShapeInferenceContext *ctx, TF_Status *st)
{
    TF_ShapeInferenceContextSetUnknownShape(ctx, st);
}

/* Registers op `index` of RNN_OPS as the TensorFlow op `name` with these
 * inputs and outputs ("name: type"), its CPU kernel the chosen set's. */
static void
register_op(int index, const char *name, const char *const *inputs, int n_in,
            const char *const *outputs, int n_out)
{
    TF_Status *st = TF_NewStatus();
    TF_OpDefinitionBuilder *b = TF_NewOpDefinitionBuilder(name);
    for (int i = 0; i < n_in; i++)
        TF_OpDefinitionBuilderAddInput(b, inputs[i]);
    for (int i = 0; i < n_out; i++)
        TF_OpDefinitionBuilderAddOutput(b, outputs[i]);
    TF_OpDefinitionBuilderSetShapeInferenceFunction(b, unknown_shapes);
    TF_RegisterOpDefinition(b, st);
    if (TF_GetCode(st) == TF_OK) {
        TF_KernelBuilder *k = TF_NewKernelBuilder(name, "CPU", NULL, COMPUTE[index], NULL);
        TF_RegisterKernelBuilder(name, k, st);
    }
    if (TF_GetCode(st) != TF_OK)
        fprintf(stderr, "rnn: registering %s failed: %s\n", name, TF_Message(st));
    TF_DeleteStatus(st);
}
