/* Scalar kernels: hand-built blocks with known values, bit-exact activation quantizers,
 * quantize -> dequantize error bounds, vec_dot against double-precision references, and the
 * generic gemm. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernel_util.h"
#include "kernels/kernels.h"
#include "kernels/kernels_int.h"
#include "test.h"

static const struct kura_type_traits *scalar(enum kura_type t)
{
    return kura_type_traits_isa(t, KURA_ISA_SCALAR);
}

static void dequant(enum kura_type t, const void *src, float *dst, int64_t n)
{
    scalar(t)->to_float(src, dst, n);
}

/* --- known values ------------------------------------------------------------------------ */

static void test_known_f16_bf16(void)
{
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    float f[4];
    dequant(KURA_TYPE_F16, h, f, 4);
    CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == 65504.0f && f[3] == ldexpf(1.0f, -24));
    uint16_t b[3] = {0x3f80, 0xc040, 0x4049};
    dequant(KURA_TYPE_BF16, b, f, 3);
    CHECK(f[0] == 1.0f && f[1] == -3.0f && fabsf(f[2] - 3.140625f) == 0.0f);
    float in[3] = {1.0f, -3.0f, 3.140625f};
    uint16_t out[3];
    scalar(KURA_TYPE_BF16)->from_float(in, out, 3);
    CHECK(out[0] == 0x3f80 && out[1] == 0xc040 && out[2] == 0x4049);
    scalar(KURA_TYPE_F16)->from_float(in, out, 2);
    CHECK(out[0] == 0x3c00 && out[1] == 0xc200);
}

static void test_known_q4_0(void)
{
    uint8_t blk[18];
    blk[0] = 0x00; /* d = 0.5 = 0x3800, little-endian */
    blk[1] = 0x38;
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float f[32];
    dequant(KURA_TYPE_Q4_0, blk, f, 32);
    int ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= f[j] == (float)(j - 8) * 0.5f;
        ok &= f[j + 16] == (float)(7 - j) * 0.5f;
    }
    CHECKF(ok, "q4_0 block decodes to wrong values (f[0]=%g f[16]=%g)", f[0], f[16]);
}

static void test_known_q4_1(void)
{
    uint8_t blk[20] = {0x00, 0x34, 0x00, 0xbc}; /* d = 0.25, m = -1.0 */
    for (int j = 0; j < 16; j++)
        blk[4 + j] = (uint8_t)((15 - j) | j << 4);
    float f[32];
    dequant(KURA_TYPE_Q4_1, blk, f, 32);
    int ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= f[j] == (float)(15 - j) * 0.25f - 1.0f;
        ok &= f[j + 16] == (float)j * 0.25f - 1.0f;
    }
    CHECK(ok);
}

static void test_known_q5(void)
{
    /* q5_0: d = 1.0; qh = 0xa5a5f00f (bits j and j+16); low nibbles q = j % 16 */
    uint8_t b0[22] = {0x00, 0x3c, 0x0f, 0xf0, 0xa5, 0xa5};
    for (int j = 0; j < 16; j++)
        b0[6 + j] = (uint8_t)(j | (15 - j) << 4);
    uint32_t qh = 0xa5a5f00fu;
    float f[32];
    dequant(KURA_TYPE_Q5_0, b0, f, 32);
    int ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= f[j] == (float)((j | (int)((qh >> j) & 1) << 4) - 16);
        ok &= f[j + 16] == (float)(((15 - j) | (int)((qh >> (j + 16)) & 1) << 4) - 16);
    }
    CHECKF(ok, "q5_0");
    /* q5_1: d = 2.0, m = 0.5, same bits */
    uint8_t b1[24] = {0x00, 0x40, 0x00, 0x38, 0x0f, 0xf0, 0xa5, 0xa5};
    memcpy(b1 + 8, b0 + 6, 16);
    dequant(KURA_TYPE_Q5_1, b1, f, 32);
    ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= f[j] == (float)(j | (int)((qh >> j) & 1) << 4) * 2.0f + 0.5f;
        ok &= f[j + 16] == (float)((15 - j) | (int)((qh >> (j + 16)) & 1) << 4) * 2.0f + 0.5f;
    }
    CHECKF(ok, "q5_1");
}

static void test_known_q8(void)
{
    uint8_t b[34] = {0x00, 0x40}; /* d = 2 */
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)(j - 16);
    float f[32];
    dequant(KURA_TYPE_Q8_0, b, f, 32);
    int ok = 1;
    for (int j = 0; j < 32; j++)
        ok &= f[j] == (float)(j - 16) * 2.0f;
    CHECK(ok);
}

/* Q4_K with hand-packed 6-bit scales: sub-block j has scale 10 + 6 j (> 15 from j = 1 on,
 * so the high bits are exercised) and min 63 - 5 j. */
static void test_known_q4_k_q5_k(void)
{
    struct blk_q5_k b5;
    memset(&b5, 0, sizeof b5);
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = 10 + 6 * j;
        mn[j] = 63 - 5 * j;
    }
    uint8_t s[12] = {0};
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    struct blk_q4_k b4;
    b4.d = 0x3400;    /* 0.25 */
    b4.dmin = 0x3000; /* 0.125 */
    memcpy(b4.scales, s, 12);
    for (int i = 0; i < 128; i++)
        b4.qs[i] = (uint8_t)((i * 7) & 15) | (uint8_t)(((i * 3 + 1) & 15) << 4);
    float f[256];
    dequant(KURA_TYPE_Q4_K, &b4, f, 256);
    int ok = 1;
    for (int e = 0; e < 256; e++) {
        int c = e / 64, hi = (e % 64) >= 32, l = e % 32, j = e / 32;
        int q = hi ? ((32 * c + l) * 3 + 1) & 15 : ((32 * c + l) * 7) & 15;
        ok &= f[e] == 0.25f * (float)sc[j] * (float)q - 0.125f * (float)mn[j];
    }
    CHECKF(ok, "q4_k known block");

    b5.d = b4.d;
    b5.dmin = b4.dmin;
    memcpy(b5.scales, s, 12);
    memcpy(b5.qs, b4.qs, 128);
    for (int l = 0; l < 32; l++)
        b5.qh[l] = (uint8_t)(l * 37 + 11);
    dequant(KURA_TYPE_Q5_K, &b5, f, 256);
    ok = 1;
    for (int e = 0; e < 256; e++) {
        int c = e / 64, hi = (e % 64) >= 32, l = e % 32, j = e / 32;
        int q = hi ? ((32 * c + l) * 3 + 1) & 15 : ((32 * c + l) * 7) & 15;
        q |= ((b5.qh[l] >> (2 * c + hi)) & 1) << 4;
        ok &= f[e] == 0.25f * (float)sc[j] * (float)q - 0.125f * (float)mn[j];
    }
    CHECKF(ok, "q5_k known block");
}

static void test_known_q6_k(void)
{
    struct blk_q6_k b;
    for (int i = 0; i < 128; i++)
        b.ql[i] = (uint8_t)(i * 29 + 3);
    for (int i = 0; i < 64; i++)
        b.qh[i] = (uint8_t)(i * 53 + 7);
    for (int j = 0; j < 16; j++)
        b.scales[j] = (int8_t)(j * 17 - 128);
    b.d = 0x2c00; /* 1/16 */
    float f[256];
    dequant(KURA_TYPE_Q6_K, &b, f, 256);
    int ok = 1;
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
        uint8_t lb = b.ql[64 * h + 32 * (g % 2) + l];
        int q = (g < 2 ? lb & 15 : lb >> 4) | ((b.qh[32 * h + l] >> (2 * g)) & 3) << 4;
        ok &= f[e] == 0.0625f * (float)b.scales[e / 16] * (float)(q - 32);
    }
    CHECKF(ok, "q6_k known block");
}

static void test_known_q2_k_q3_k(void)
{
    struct blk_q2_k b2;
    for (int j = 0; j < 16; j++)
        b2.scales[j] = (uint8_t)(j | (15 - j) << 4);
    for (int i = 0; i < 64; i++)
        b2.qs[i] = (uint8_t)(i * 41 + 5);
    b2.d = 0x3800;    /* 0.5 */
    b2.dmin = 0x3400; /* 0.25 */
    float f[256];
    dequant(KURA_TYPE_Q2_K, &b2, f, 256);
    int ok = 1;
    for (int e = 0; e < 256; e++) {
        int q = (b2.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        ok &= f[e] == 0.5f * (float)(e / 16) * (float)q - 0.25f * (float)(15 - e / 16);
    }
    CHECKF(ok, "q2_k known block");

    struct blk_q3_k b3;
    memset(&b3, 0, sizeof b3);
    int sc[16];
    for (int j = 0; j < 16; j++) {
        sc[j] = (j * 23 + 5) % 64; /* stored value; real scale sc - 32 */
        b3.scales[j % 8] |= (uint8_t)((sc[j] & 15) << (j < 8 ? 0 : 4));
        b3.scales[8 + j % 4] |= (uint8_t)((sc[j] >> 4) << (2 * (j / 4)));
    }
    for (int i = 0; i < 64; i++)
        b3.qs[i] = (uint8_t)(i * 71 + 9);
    for (int i = 0; i < 32; i++)
        b3.hmask[i] = (uint8_t)(i * 13 + 1);
    b3.d = 0x3c00;
    dequant(KURA_TYPE_Q3_K, &b3, f, 256);
    ok = 1;
    for (int e = 0; e < 256; e++) {
        int lo = (b3.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int hbit = (b3.hmask[e % 32] >> (e / 32)) & 1;
        ok &= f[e] == (float)(sc[e / 16] - 32) * (float)(lo - (hbit ? 0 : 4));
    }
    CHECKF(ok, "q3_k known block");
}

/* --- activation quantizers: exact rounding rules ------------------------------------------ */

static void test_q8_0_rounding(void)
{
    float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.4999999f, -126.5f, 3.5f};
    struct blk_q8_0 b;
    scalar(KURA_TYPE_Q8_0)->from_float(x, &b, 32);
    CHECK(b.d == 0x3c00); /* d = 127 / 127 = 1 */
    /* x * (127 / amax), nearest with ties to even (the reference engine's x86 rounding) */
    CHECK(b.qs[0] == 127 && b.qs[1] == 2 && b.qs[2] == -2 && b.qs[3] == 0 && b.qs[4] == 0);
    CHECK(b.qs[5] == 1 && b.qs[6] == -126 && b.qs[7] == 4 && b.qs[8] == 0);

    struct blk_q8_1 b1;
    scalar(KURA_TYPE_Q8_1)->from_float(x, &b1, 32);
    CHECK(b1.d == 0x3c00);
    CHECK(memcmp(b1.qs, b.qs, 32) == 0);
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += b.qs[j];
    CHECK(b1.s == kura_fp32_to_fp16((float)sum));

    float z[32] = {0};
    scalar(KURA_TYPE_Q8_0)->from_float(z, &b, 32);
    CHECK(b.d == 0 && b.qs[0] == 0 && b.qs[31] == 0);
}

static void test_q8_k_rounding(void)
{
    float x[256] = {0};
    x[0] = 127.0f; /* signed extreme -> iscale = -1, d = -1 */
    x[1] = 2.5f;
    x[2] = 3.5f;
    x[3] = -0.5f;
    x[4] = -1.5f;
    x[17] = 100.0f;
    struct blk_q8_k b;
    scalar(KURA_TYPE_Q8_K)->from_float(x, &b, 256);
    CHECK(b.d == -1.0f);
    /* nearest, ties to even */
    CHECK(b.qs[0] == -127 && b.qs[1] == -2 && b.qs[2] == -4 && b.qs[3] == 0 && b.qs[4] == 2);
    CHECK(b.bsums[0] == -127 - 2 - 4 + 0 + 2);
    CHECK(b.bsums[1] == -100 && b.bsums[2] == 0);

    /* negative extreme: iscale = +127/|max|, q of the extreme is +127 */
    for (int j = 0; j < 256; j++)
        x[j] = (float)(j % 19) - 9.0f;
    x[100] = -20.0f;
    scalar(KURA_TYPE_Q8_K)->from_float(x, &b, 256);
    CHECK(b.qs[100] == -127); /* iscale = -127 / -20: the extreme always maps to -127 */
    CHECK(fabsf(b.d - 20.0f / 127.0f) < 1e-7f);
    int sums_ok = 1;
    for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int k = 0; k < 16; k++)
            s += b.qs[16 * j + k];
        sums_ok &= s == b.bsums[j];
    }
    CHECK(sums_ok);
}

/* --- round trips ------------------------------------------------------------------------- */

struct tol {
    enum kura_type t;
    double rt;   /* max relative RMS error of quantize -> dequantize on fill_random data */
};

/* Tolerances stated per type: about 1.35x the measured error (measured: f16 2.0e-4,
 * bf16 1.6e-3, q8_0/q8_1 6.3e-3, q8_k 1.26e-2, q6_k 2.0e-2, q5_0 5.1e-2, q5_1 4.2e-2,
 * q5_k 4.0e-2, q4_0 1.04e-1, q4_1 8.4e-2, q4_k 7.8e-2, q3_k 1.69e-1, q2_k 3.16e-1). */
static const struct tol TOLS[] = {
    {KURA_TYPE_F32, 0.0},      {KURA_TYPE_F16, 3.0e-4},   {KURA_TYPE_BF16, 2.5e-3},
    {KURA_TYPE_Q8_0, 8.5e-3},  {KURA_TYPE_Q8_1, 8.5e-3},  {KURA_TYPE_Q8_K, 1.7e-2},
    {KURA_TYPE_Q6_K, 2.7e-2},  {KURA_TYPE_Q5_0, 6.8e-2},  {KURA_TYPE_Q5_1, 5.6e-2},
    {KURA_TYPE_Q5_K, 5.4e-2},  {KURA_TYPE_Q4_0, 1.4e-1},  {KURA_TYPE_Q4_1, 1.15e-1},
    {KURA_TYPE_Q4_K, 1.05e-1}, {KURA_TYPE_Q3_K, 2.3e-1},  {KURA_TYPE_Q2_K, 4.3e-1},
};
#define N_TOLS (int)(sizeof TOLS / sizeof TOLS[0])

static void test_round_trip(void)
{
    struct rng r = {42};
    const int64_t n = 256 * 64;
    float *x = xmalloc(sizeof(float) * n), *y = xmalloc(sizeof(float) * n);
    fill_random(&r, x, n, 0.02f);
    for (int k = 0; k < N_TOLS; k++) {
        const struct kura_type_traits *tr = scalar(TOLS[k].t);
        CHECKF(tr && tr->from_float && tr->to_float && tr->vec_dot && tr->gemm, "%s traits",
               kura_type_name(TOLS[k].t));
        if (!tr)
            continue;
        CHECK(tr->block_len == kura_type_block_len(TOLS[k].t));
        CHECK(tr->block_bytes == kura_type_block_bytes(TOLS[k].t));
        void *q = quantize_row(tr, x, n);
        tr->to_float(q, y, n);
        double e = rel_rmse(y, x, n);
        printf("round trip %-5s rel rmse %.3e (tol %.1e)\n", kura_type_name(TOLS[k].t), e,
               TOLS[k].rt);
        CHECKF(e <= TOLS[k].rt, "%s round trip rel rmse %.4e > %.1e", kura_type_name(TOLS[k].t),
               e, TOLS[k].rt);
        /* A second quantization of the dequantized data is (nearly) lossless for the grids
         * that keep their scale (weights already on the grid). */
        if (TOLS[k].t == KURA_TYPE_Q8_0 || TOLS[k].t == KURA_TYPE_Q4_0 ||
            TOLS[k].t == KURA_TYPE_F16 || TOLS[k].t == KURA_TYPE_BF16) {
            void *q2 = quantize_row(tr, y, n);
            float *y2 = xmalloc(sizeof(float) * n);
            tr->to_float(q2, y2, n);
            double e2 = rel_rmse(y2, y, n);
            CHECKF(e2 <= 1e-3, "%s re-quantization drifts: %.3e", kura_type_name(TOLS[k].t), e2);
            free(y2);
            free(q2);
        }
        free(q);
    }
    /* Constant-zero and constant-value rows must survive (no NaN from 0/0). */
    for (int k = 0; k < N_TOLS; k++) {
        const struct kura_type_traits *tr = scalar(TOLS[k].t);
        for (int v = 0; v < 2; v++) {
            for (int64_t i = 0; i < 512; i++)
                x[i] = v ? 0.75f : 0.0f;
            void *q = quantize_row(tr, x, 512);
            tr->to_float(q, y, 512);
            double maxerr = 0;
            for (int64_t i = 0; i < 512; i++)
                maxerr = fmax(maxerr, fabs((double)y[i] - x[i]));
            CHECKF(maxerr <= (v ? 0.75 * TOLS[k].rt * 2 + 1e-6 : 0.0),
                   "%s constant %s row: max err %g", kura_type_name(TOLS[k].t), v ? "0.75" : "0",
                   maxerr);
            free(q);
        }
    }
    free(x);
    free(y);
}

/* --- vec_dot ----------------------------------------------------------------------------- */

static void test_vec_dot(void)
{
    struct rng r = {7};
    static const int64_t mult[] = {1, 2, 3, 7, 16};
    for (int k = 0; k < N_TOLS; k++) {
        const struct kura_type_traits *tx = scalar(TOLS[k].t);
        const struct kura_type_traits *ty = scalar(tx->vec_dot_type);
        CHECK(ty && ty->from_float);
        for (int m = 0; m < 5; m++) {
            int64_t n = 256 * mult[m];
            float *x = xmalloc(sizeof(float) * n), *y = xmalloc(sizeof(float) * n);
            float *dx = xmalloc(sizeof(float) * n), *dy = xmalloc(sizeof(float) * n);
            fill_random(&r, x, n, 1.0f);
            fill_random(&r, y, n, 3.0f);
            void *qx = quantize_row(tx, x, n), *qy = quantize_row(ty, y, n);
            tx->to_float(qx, dx, n);
            ty->to_float(qy, dy, n);
            double ref_q = 0, ref_f = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                ref_q += (double)dx[i] * dy[i];
                ref_f += (double)dx[i] * y[i];
                mag += fabs((double)dx[i] * y[i]);
            }
            double got = tx->vec_dot(n, qx, qy);
            /* Against the dequantized operands only float rounding differs, except for the
             * f16-stored s = d * sum(q) of Q8_1 (relative 2^-11). */
            double tol_q = (tx->vec_dot_type == KURA_TYPE_Q8_1 ? 1e-3 : 2e-5) * mag + 1e-6;
            CHECKF(fabs(got - ref_q) <= tol_q, "%s n=%lld: vec_dot %.6g vs dequantized %.6g",
                   kura_type_name(tx->type), (long long)n, got, ref_q);
            /* Against the float activations the 8-bit activation quantization adds error. */
            double tol_f = (tx->vec_dot_type == KURA_TYPE_F32    ? 1e-6
                            : tx->vec_dot_type == KURA_TYPE_F16  ? 1e-3
                            : tx->vec_dot_type == KURA_TYPE_BF16 ? 6e-3
                                                                 : 1.5e-2) *
                               mag +
                           1e-6;
            CHECKF(fabs(got - ref_f) <= tol_f, "%s n=%lld: vec_dot %.6g vs float %.6g",
                   kura_type_name(tx->type), (long long)n, got, ref_f);

            /* gemm = vec_dot over rows/columns (generic fallback: exactly). Float rows with
             * n % 16 == 0 and several columns sum in the reference engine's batch order
             * instead: equal up to float rounding. */
            bool batch_order = (tx->type == KURA_TYPE_F32 || tx->type == KURA_TYPE_F16) &&
                               (n / 4) % 16 == 0;
            int64_t nr = 3, nc = 2;
            size_t xb = kura_row_bytes(tx->type, n / 4), yb = kura_row_bytes(ty->type, n / 4);
            if (n / 4 % tx->block_len == 0 && (int64_t)(xb * nr) <= (int64_t)kura_row_bytes(tx->type, n) &&
                (int64_t)(yb * nc) <= (int64_t)kura_row_bytes(ty->type, n)) {
                float out[2 * 5];
                for (int i = 0; i < 10; i++)
                    out[i] = -1234.0f;
                tx->gemm(n / 4, nr, nc, qx, xb, qy, yb, out, 5);
                int ok = 1;
                for (int c = 0; c < nc; c++)
                    for (int rr = 0; rr < nr; rr++) {
                        float want = tx->vec_dot(n / 4, (char *)qx + rr * xb, (char *)qy + c * yb);
                        float got_g = out[c * 5 + rr];
                        ok &= batch_order ? fabsf(got_g - want) <= 1e-5f * (float)mag + 1e-6f
                                          : got_g == want;
                    }
                ok &= out[3] == -1234.0f && out[4] == -1234.0f; /* stride gap untouched */
                CHECKF(ok, "%s gemm != vec_dot", kura_type_name(tx->type));
            }
            free(qx);
            free(qy);
            free(x);
            free(y);
            free(dx);
            free(dy);
        }
    }
}

/* A K-quant fit must beat the plain min/max grid it starts from (the search is real). */
static void test_k_search_quality(void)
{
    struct rng r = {99};
    const int64_t n = 256 * 32;
    float *x = xmalloc(sizeof(float) * n), *y = xmalloc(sizeof(float) * n);
    fill_random(&r, x, n, 1.0f);
    /* naive Q4_K-like reference: per 32 sub-block min/max grid with exact float scales */
    double naive_err = 0, ref = 0;
    for (int64_t b = 0; b < n; b += 32) {
        float lo = 0, hi = x[b];
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[b + l]);
            hi = fmaxf(hi, x[b + l]);
        }
        float d = (hi - lo) / 15.0f;
        for (int l = 0; l < 32; l++) {
            float q = d > 0 ? roundf((x[b + l] - lo) / d) : 0;
            double e = (double)(q * d + lo) - x[b + l];
            naive_err += e * e;
            ref += (double)x[b + l] * x[b + l];
        }
    }
    naive_err = sqrt(naive_err / ref);
    const struct kura_type_traits *tr = scalar(KURA_TYPE_Q4_K);
    void *q = quantize_row(tr, x, n);
    tr->to_float(q, y, n);
    double e = rel_rmse(y, x, n);
    printf("q4_k search %.4e vs naive unquantized-scale grid %.4e\n", e, naive_err);
    CHECKF(e < naive_err, "q4_k search (%.4e) not better than naive grid (%.4e)", e, naive_err);
    free(q);
    free(x);
    free(y);
}

static void test_dispatch(void)
{
    kura_kernels_init();
    enum kura_isa isa = kura_kernels_isa();
    CHECK(kura_isa_supported(isa));
    CHECK(kura_isa_supported(KURA_ISA_SCALAR));
    CHECK(strcmp(kura_isa_name(KURA_ISA_AVX512), "avx512") == 0);
    CHECK(kura_type_traits(KURA_TYPE_Q4_K) != NULL);
    CHECK(kura_type_traits(KURA_TYPE_I32) == NULL);
    CHECK(kura_type_traits((enum kura_type)1000) == NULL);
    CHECK(kura_type_traits_isa(KURA_TYPE_F32, (enum kura_isa)7) == NULL);
    CHECK(kura_type_traits(KURA_TYPE_Q4_0)->vec_dot_type == KURA_TYPE_Q8_0);
    CHECK(kura_type_traits(KURA_TYPE_Q5_1)->vec_dot_type == KURA_TYPE_Q8_1);
    CHECK(kura_type_traits(KURA_TYPE_Q6_K)->vec_dot_type == KURA_TYPE_Q8_K);
    CHECK(kura_type_traits(KURA_TYPE_BF16)->vec_dot_type == KURA_TYPE_BF16);
    printf("selected isa: %s\n", kura_isa_name(isa));
}

int main(void)
{
    test_dispatch();
    test_known_f16_bf16();
    test_known_q4_0();
    test_known_q4_1();
    test_known_q5();
    test_known_q8();
    test_known_q4_k_q5_k();
    test_known_q6_k();
    test_known_q2_k_q3_k();
    test_q8_0_rounding();
    test_q8_k_rounding();
    test_round_trip();
    test_vec_dot();
    test_k_search_quality();
    return test_finish();
}
