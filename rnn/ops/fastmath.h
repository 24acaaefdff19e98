/* The element-wise functions of rnn's kernels, shared by the LSTM's, the
 * GRU's and the DNC's kernels.c (included in their compute part, once per
 * instruction set). Part of those libraries' build key. */

/* tanh as a rational function on [-7.9, 7.9] (float accuracy; beyond that
 * tanh rounds to +-1); branch-free so the loops vectorise. NaN passes. */
static inline float
tanh_f(float x)
{
    const float lim = 7.90531110763549805f;
    x = x > lim ? lim : x;
    x = x < -lim ? -lim : x;
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

static inline float
sigmoid_f(float x)
{
    return 0.5f * tanh_f(0.5f * x) + 0.5f;
}
