/* float32 -> the string numpy prints for it (shortest round-trip digits,
 * numpy's choice between positional and scientific notation). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/pipeline.h"

/* Decimal digits d[0..nd) and exponent e: v = d0.d1d2... x 10^e. */
typedef struct decimal {
    char d[16];
    int nd;
    int e;
} decimal;

/* Parses "%.*e" output ("d.ddde[+-]xx", v > 0) into digits/exponent. */
static void parse_sci(const char *s, decimal *out)
{
    memset(out, 0, sizeof *out);
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            out->d[out->nd++] = *s;
    out->e = (*s == 'e') ? atoi(s + 1) : 0;
}

static void decimal_to_sci(const decimal *x, char *buf, size_t cap)
{
    char digits[24];
    size_t k = 0;
    digits[k++] = x->d[0];
    if (x->nd > 1) {
        digits[k++] = '.';
        for (int i = 1; i < x->nd; i++)
            digits[k++] = x->d[i];
    }
    digits[k] = 0;
    snprintf(buf, cap, "%se%c%02d", digits, x->e < 0 ? '-' : '+', abs(x->e));
}

static int reads_back(const decimal *x, float v)
{
    char s[40];
    decimal_to_sci(x, s, sizeof s);
    return strtof(s, NULL) == v;
}

/* Moves x to the next p-digit decimal above (delta > 0) or below (delta < 0),
 * keeping p digits: 9.99e4 + 1 ulp = 1.00e5, 1.00e5 - 1 ulp = 9.99e4. */
static void bump_last(decimal *x, int delta)
{
    int i = x->nd - 1;
    if (delta > 0) {
        while (i >= 0 && x->d[i] == '9')
            x->d[i--] = '0';
        if (i < 0) {
            x->d[0] = '1';
            x->e++;
        } else {
            x->d[i]++;
        }
    } else {
        while (i > 0 && x->d[i] == '0')
            x->d[i--] = '9';
        x->d[i]--; /* stops at the leading digit at the latest, which is never 0 */
        if (x->d[0] == '0') {
            for (int k = 0; k < x->nd; k++)
                x->d[k] = '9';
            x->e--;
        }
    }
}

/* Shortest digits that read back to v (v finite, > 0). For each length p the
 * correctly rounded p-digit decimal is tried first, then its two neighbours:
 * at a power of two the round-trip interval is lopsided, so a neighbour may
 * read back when the nearest does not. */
static void shortest(float v, decimal *out)
{
    for (int p = 1; p <= 9; p++) {
        char s[40];
        snprintf(s, sizeof s, "%.*e", p - 1, (double)v);
        decimal c = {{0}, 0, 0};
        parse_sci(s, &c);
        if (reads_back(&c, v)) {
            *out = c;
            return;
        }
        decimal up = c, down = c;
        bump_last(&up, +1);
        bump_last(&down, -1);
        if (reads_back(&up, v)) {
            *out = up;
            return;
        }
        if (reads_back(&down, v)) {
            *out = down;
            return;
        }
    }
    char s[40];
    snprintf(s, sizeof s, "%.8e", (double)v); /* 9 digits always read back */
    parse_sci(s, out);
}

int vnp_format_f32(float v, char *buf)
{
    if (isnan(v))
        return snprintf(buf, VNP_F32_STR_MAX, "nan");
    if (isinf(v))
        return snprintf(buf, VNP_F32_STR_MAX, v < 0 ? "-inf" : "inf");
    char *p = buf;
    if (signbit(v)) {
        *p++ = '-';
        v = -v;
    }
    if (v == 0.0f) {
        strcpy(p, "0.0");
        return (int)(p - buf) + 3;
    }
    decimal x = {{0}, 0, 0};
    shortest(v, &x);
    double a = (double)v;
    if (a >= 1e-4 && a < 1e16) {
        /* positional: integer digits, '.', fraction digits (at least one) */
        char *q = p;
        if (x.e >= 0) {
            for (int i = 0; i <= x.e; i++)
                *q++ = i < x.nd ? x.d[i] : '0';
            *q++ = '.';
            if (x.nd > x.e + 1)
                for (int i = x.e + 1; i < x.nd; i++)
                    *q++ = x.d[i];
            else
                *q++ = '0';
        } else {
            *q++ = '0';
            *q++ = '.';
            for (int i = 0; i < -x.e - 1; i++)
                *q++ = '0';
            for (int i = 0; i < x.nd; i++)
                *q++ = x.d[i];
        }
        *q = 0;
        return (int)(q - buf);
    }
    decimal_to_sci(&x, p, (size_t)(VNP_F32_STR_MAX - (p - buf)));
    return (int)strlen(buf);
}
