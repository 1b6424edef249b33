/* ALiBi slopes for any number of heads, built as DNABERT-S's bert_layers.py
 * builds them: a geometric sequence starting at 2^(-8/n) for a power of two
 * n; otherwise the sequence of the nearest lower power of two followed by
 * every other slope of the next power of two. Computed in double (Python
 * floats) and rounded once to float32, as torch.Tensor(list) does. */
#include <math.h>

#include "model/encoder_internal.h"

static void power_of_two_slopes(int n, double *out)
{
    double start = pow(2.0, -pow(2.0, -(log2((double)n) - 3.0)));
    for (int i = 0; i < n; i++)
        out[i] = start * pow(start, (double)i);
}

static void slopes_d(int n, double *out)
{
    int p = 1;
    while (p * 2 <= n)
        p *= 2;
    power_of_two_slopes(p, out);
    if (p == n)
        return;
    double more[2 * 4096];
    slopes_d(2 * p, more); /* 2p is a power of two */
    for (int i = 0; i < n - p; i++)
        out[p + i] = more[2 * i];
}

void vnp_alibi_slopes(int heads, float *out)
{
    double d[4096];
    if (heads < 1 || heads > 4096)
        return;
    slopes_d(heads, d);
    for (int i = 0; i < heads; i++)
        out[i] = (float)d[i];
}
