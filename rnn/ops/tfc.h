/* TensorFlow's C API as rnn's kernels use it: its headers, with the two
 * workarounds C needs, and the kernels' side of it: taking an op's inputs,
 * checking their shapes with errors that name the op, the argument and the
 * dimension, allocating float outputs and releasing it all at the end.
 * Shared by the LSTM's, the GRU's and the DNC's kernels.c, which include it
 * first (after the system headers), in both their compute part (once per
 * instruction set) and their registration part. Part of each library's
 * build key. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* kernels.h defines a constant with external linkage (fine in C++, a
 * duplicate symbol in C once per compiled instruction set): renamed in all
 * but the registration unit. */
#define CAT_(a, b) a##_##b
#define CAT(a, b)  CAT_(a, b)
#ifdef RNN_KERNEL_ISA
#define TF_InputRange_Args_STRUCT_SIZE CAT(TF_InputRange_Args_STRUCT_SIZE, RNN_KERNEL_ISA)
#endif
/* ops.h declares these as C++ structs without typedefs. */
typedef struct TF_DimensionHandle TF_DimensionHandle;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeHandle TF_ShapeHandle;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

/* Fails the op with `code` and `msg`; always false (for `return fail(...)`). */
static inline bool
fail(TF_OpKernelContext *ctx, TF_Status *st, TF_Code code, const char *msg)
{
    TF_SetStatus(st, code, msg);
    TF_OpKernelContext_Failure(ctx, st);
    return false;
}

/* Whether t has rank `rank` and, where want[d] >= 0, size want[d] in
 * dimension d; otherwise the op fails, naming op, argument and dimension. */
static inline bool
check_dims(TF_OpKernelContext *ctx, TF_Status *st, const char *op, const char *name, TF_Tensor *t,
           int rank, const int64_t *want)
{
    char msg[256];
    if (TF_NumDims(t) != rank) {
        snprintf(msg, sizeof msg, "%s: %s must have rank %d, got %d", op, name, rank,
                 TF_NumDims(t));
        return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
    }
    for (int d = 0; d < rank; d++)
        if (want[d] >= 0 && TF_Dim(t, d) != want[d]) {
            snprintf(msg, sizeof msg, "%s: %s has dimension %d of size %lld, expected %lld", op,
                     name, d, (long long)TF_Dim(t, d), (long long)want[d]);
            return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
        }
    return true;
}

/* An optional argument: shape [0] (not given, false) or its full shape. */
static inline bool
given(TF_Tensor *t)
{
    return !(TF_NumDims(t) == 1 && TF_Dim(t, 0) == 0);
}

/* An optional argument is [0] or has the shape `want`. */
static inline bool
check_optional(TF_OpKernelContext *ctx, TF_Status *st, const char *op, const char *name,
               TF_Tensor *t, int rank, const int64_t *want)
{
    return !given(t) || check_dims(ctx, st, op, name, t, rank, want);
}

/* The valid-steps mask: [T, B], or [0] for "every step valid". */
static inline bool
check_mask(TF_OpKernelContext *ctx, TF_Status *st, const char *op, TF_Tensor *mask, int64_t T,
           int64_t B)
{
    const int64_t want[2] = {T, B};
    return check_optional(ctx, st, op, "mask", mask, 2, want);
}

/* Float output `index` of shape dims; NULL (the op failed) if TensorFlow
 * cannot allocate it. */
static inline TF_Tensor *
output(TF_OpKernelContext *ctx, TF_Status *st, int index, const int64_t *dims, int rank)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= dims[d];
    TF_Tensor *t =
        TF_AllocateOutput(ctx, index, TF_FLOAT, dims, rank, (size_t)n * sizeof(float), st);
    if (TF_GetCode(st) != TF_OK) {
        TF_OpKernelContext_Failure(ctx, st);
        return NULL;
    }
    return t;
}

/* The op's n inputs into in[]; false (the op failed) if one is missing. */
static inline bool
get_inputs(TF_OpKernelContext *ctx, TF_Status *st, TF_Tensor **in, int n)
{
    for (int i = 0; i < n; i++) {
        TF_GetInput(ctx, i, &in[i], st);
        if (TF_GetCode(st) != TF_OK) {
            TF_OpKernelContext_Failure(ctx, st);
            return false;
        }
    }
    return true;
}

/* The end of every op call, on every path: the tensor handles (NULL where
 * never obtained) and the status are released. */
static inline void
release_call(TF_Tensor **in, int n_in, TF_Tensor **out, int n_out, TF_Status *st)
{
    for (int i = 0; i < n_in; i++)
        if (in[i])
            TF_DeleteTensor(in[i]);
    for (int i = 0; i < n_out; i++)
        if (out[i])
            TF_DeleteTensor(out[i]);
    TF_DeleteStatus(st);
}
