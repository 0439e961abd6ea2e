/*
dino.c: DINO (self-DIstillation with NO labels, Caron et al. 2021, arXiv 2104.14294)
in one readable C file: a Vision Transformer student and an EMA teacher that learn
image features without labels.

What is in here, in the order a reader of the paper meets it:
  1. small utilities (checked I/O and allocation, a seeded RNG, a timer)
  2. the layers, each forward followed by its backward: patch embedding, the position
     table with its bicubic resize, layernorm, matmul, attention, GELU, residual with
     drop path, L2-normalisation (also the weight-normalised last layer), the DINO loss
  3. the model: config, parameters in one contiguous block, activations, the backbone
     (ViT) and the DINO head, forward and backward
  4. the DINO training mechanics that are not layers: schedules, per-tensor gradient
     clipping, the frozen last layer, AdamW, the EMA teacher, the center
  5. checkpoints
  6. the command line (everything a test does not need is behind #ifndef TESTING)

What is not in here: no BLAS, no intrinsics, no autograd. Every backward pass is written
by hand next to its forward, checked against finite differences and against PyTorch
(test_dino.c, data/reference.py). A few OpenMP pragmas sit on the hot loops; every one of
them writes disjoint memory, so results do not depend on the number of threads.

Size letters used in shapes throughout:
  B   batch (images)             R   rows = images in one pass (e.g. 2 global crops x B)
  S   crop side in pixels        P   patch side,  G = S/P patches per side,  NP = G*G
  T   tokens = 1 (CLS) + NP      D   width (embedding channels)
  NH  heads,  hs = D/NH          H   MLP hidden = mlp_ratio * D
  L   depth (blocks)             HH  head hidden,  BN bottleneck,  K prototypes (out_dim)
*/
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ----------------------------------------------------------------------------
// 1. utilities

// One clear line and a non-zero exit: how every user-facing error ends.
static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *malloc_check(size_t size, const char *file, int line) {
    void *p = malloc(size > 0 ? size : 1);
    if (p == NULL) die("out of memory allocating %zu bytes [%s:%d]; try a smaller --batch or model", size, file, line);
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void *calloc_check(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n > 0 ? n : 1, size > 0 ? size : 1);
    if (p == NULL) die("out of memory allocating %zu x %zu bytes [%s:%d]; try a smaller --batch or model", n, size, file, line);
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

// A small seeded RNG: splitmix64. One 64-bit state, cheap to save in a checkpoint and
// cheap to fork into independent streams (one per image, one per crop) later on.
typedef struct { uint64_t state; } Rng;

static uint64_t rng_next(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// uniform in [0, 1) with 24 random bits, so it is exact in float
static float rng_uniform(Rng *r) { return (rng_next(r) >> 40) * (1.0f / 16777216.0f); }
static float rng_normal(Rng *r) { // Box-Muller
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}
// The official init is trunc_normal_(std=0.02) with the default bounds a=-2, b=2. Those
// bounds are absolute, not in units of std, so at std 0.02 they never bite; we redraw
// outside them all the same, to be exact.
static float rng_trunc_normal(Rng *r, float std) {
    for (;;) {
        float x = std * rng_normal(r);
        if (x >= -2.0f && x <= 2.0f) return x;
    }
}

// ----------------------------------------------------------------------------
// 2. the layers. Forward, then backward. Backward functions ACCUMULATE (+=) into the
// gradients of parameters and inputs; the caller zeroes them first.

// Patch embedding is a convolution with kernel = stride = P. We unfold each P x P patch
// of the image into a row of C*P*P numbers, in the (channel, y, x) order of the
// convolution weight [D, C, P, P]; the convolution is then the matmul further down.
void unfold_patches(float *out, const float *img, int R, int C, int S, int P) {
    // out is (R, NP, C*P*P), img is (R, C, S, S)
    int G = S / P, CPP = C * P * P;
    #pragma omp parallel for
    for (int r = 0; r < R; r++) {
        for (int gy = 0; gy < G; gy++) {
            for (int gx = 0; gx < G; gx++) {
                float *o = out + ((size_t)r * G * G + gy * G + gx) * CPP;
                for (int c = 0; c < C; c++)
                    for (int py = 0; py < P; py++)
                        for (int px = 0; px < P; px++)
                            *o++ = img[(((size_t)r * C + c) * S + gy * P + py) * S + gx * P + px];
            }
        }
    }
}

// Tokens = [CLS, patch_1, ..., patch_NP] plus the position table (paper section 3.1,
// vision_transformer.py prepare_tokens).
void embed_forward(float *x, const float *patch_out, const float *cls, const float *pos, int R, int T, int D) {
    // x is (R, T, D), patch_out is (R, T-1, D), cls is (D), pos is (T, D)
    #pragma omp parallel for
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            float *xo = x + ((size_t)r * T + t) * D;
            const float *src = t == 0 ? cls : patch_out + ((size_t)r * (T - 1) + t - 1) * D;
            for (int i = 0; i < D; i++) xo[i] = src[i] + pos[(size_t)t * D + i];
        }
    }
}

void embed_backward(float *dpatch_out, float *dcls, float *dpos, const float *dx, int R, int T, int D) {
    // forward: x[r,0] = cls + pos[0];  x[r,t] = patch_out[r,t-1] + pos[t]
    // dpatch_out is written (not accumulated): it is a scratch buffer
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            const float *d = dx + ((size_t)r * T + t) * D;
            for (int i = 0; i < D; i++) dpos[(size_t)t * D + i] += d[i];
            if (t == 0) { for (int i = 0; i < D; i++) dcls[i] += d[i]; }
            else { memcpy(dpatch_out + ((size_t)r * (T - 1) + t - 1) * D, d, D * sizeof(float)); }
        }
    }
}

// The position table is learned for the training resolution (a Gin x Gin grid). A crop of
// another size (the small local crops) has a Gout x Gout grid, and the patch part of the
// table is resized bicubically (vision_transformer.py interpolate_pos_encoding); the CLS
// entry is untouched. The resize is linear in the table, so we build it once as a matrix
// W (Gout*Gout, Gin*Gin): forward is out = W pos, backward is dpos += W^T dout, and the
// gradient of the local crops flows back into the one learned table.
//
// Which coordinates: the official code passes scale_factor = (Gout + 0.1) / Gin to
// nn.functional.interpolate (the 0.1 guards against floor() rounding), and PyTorch then
// maps output pixel o to input coordinate (o + 0.5) / scale_factor - 0.5, NOT
// (o + 0.5) * Gin / Gout - 0.5. We do exactly what the official code does, in float like
// PyTorch's kernel: cubic convolution with A = -0.75 and edge indices clamped.
static float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }      // |x| <= 1
static float cubic2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; } // 1 < |x| < 2

static void bicubic_weights_1d(float *w /* (Gout, Gin) */, int Gin, int Gout) {
    const float A = -0.75f;
    float inv_scale = (float)(1.0 / ((Gout + 0.1) / Gin)); // PyTorch: 1 / scale_factor, cast to float
    memset(w, 0, (size_t)Gout * Gin * sizeof(float));
    for (int o = 0; o < Gout; o++) {
        float real = inv_scale * (o + 0.5f) - 0.5f;
        int i0 = (int)floorf(real);
        float t = real - i0;
        float coef[4] = { cubic2(t + 1, A), cubic1(t, A), cubic1(1 - t, A), cubic2(2 - t, A) };
        for (int k = 0; k < 4; k++) {
            int i = i0 - 1 + k;
            i = i < 0 ? 0 : (i > Gin - 1 ? Gin - 1 : i); // clamp at the borders
            w[o * Gin + i] += coef[k];
        }
    }
}

// The 2-D resize is separable: W[(oy,ox), (iy,ix)] = wy[oy,iy] * wx[ox,ix].
void pos_resize_matrix(float *W /* (Gout*Gout, Gin*Gin) */, int Gin, int Gout) {
    float *w1 = (float *)mallocCheck((size_t)Gout * Gin * sizeof(float));
    bicubic_weights_1d(w1, Gin, Gout);
    for (int oy = 0; oy < Gout; oy++)
        for (int ox = 0; ox < Gout; ox++)
            for (int iy = 0; iy < Gin; iy++)
                for (int ix = 0; ix < Gin; ix++)
                    W[((size_t)oy * Gout + ox) * Gin * Gin + iy * Gin + ix] = w1[oy * Gin + iy] * w1[ox * Gin + ix];
    free(w1);
}

void pos_resize_forward(float *out, const float *pos, const float *W, int Nin, int Nout, int D) {
    // out is (1 + Nout, D), pos is (1 + Nin, D), W is (Nout, Nin)
    memcpy(out, pos, D * sizeof(float)); // the CLS entry is not resized
    for (int o = 0; o < Nout; o++) {
        float *y = out + (size_t)(1 + o) * D;
        for (int i = 0; i < D; i++) y[i] = 0.0f;
        for (int n = 0; n < Nin; n++) {
            float w = W[(size_t)o * Nin + n];
            const float *p = pos + (size_t)(1 + n) * D;
            for (int i = 0; i < D; i++) y[i] += w * p[i];
        }
    }
}

void pos_resize_backward(float *dpos, const float *dout, const float *W, int Nin, int Nout, int D) {
    // forward: out[0] = pos[0];  out[1+o] = sum_n W[o,n] pos[1+n]
    for (int i = 0; i < D; i++) dpos[i] += dout[i];
    for (int o = 0; o < Nout; o++)
        for (int n = 0; n < Nin; n++) {
            float w = W[(size_t)o * Nin + n];
            for (int i = 0; i < D; i++) dpos[(size_t)(1 + n) * D + i] += w * dout[(size_t)(1 + o) * D + i];
        }
}

// LayerNorm over the last dimension, eps 1e-6 as in the official ViT (not PyTorch's 1e-5).
#define LN_EPS 1e-6f
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
    // out, inp are (N, C); mean, rstd are (N) and kept for the backward pass
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + LN_EPS);
        float *y = out + (size_t)n * C;
        for (int i = 0; i < C; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    // forward: y = (x - mean) * rstd * weight + bias
    // dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dy * weight
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s, dnorm = dy[i] * weight[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        float *dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            dx[i] += s * (dy[i] * weight[i] - dnorm_mean - norm * dnorm_norm_mean);
        }
    }
    // weight and bias gradients sum over rows: a separate loop over columns so that the
    // threads write disjoint memory (and the sum order does not depend on the threads)
    #pragma omp parallel for
    for (int i = 0; i < C; i++) {
        float dw = 0.0f, db = 0.0f;
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + i];
            dw += dy * (inp[(size_t)n * C + i] - mean[n]) * rstd[n];
            db += dy;
        }
        dweight[i] += dw;
        dbias[i] += db;
    }
}

// y = x W^T + b, the nn.Linear of PyTorch, with W stored (out, in) like PyTorch does.
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    // out is (N, OC), inp is (N, C), weight is (OC, C), bias is (OC) or NULL
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float val = bias != NULL ? bias[o] : 0.0f;
            for (int i = 0; i < C; i++) val += x[i] * w[i];
            out[(size_t)n * OC + o] = val;
        }
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    // forward: out[n,o] = bias[o] + sum_i inp[n,i] weight[o,i]
    if (dinp != NULL) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) {
            float *dx = dinp + (size_t)n * C;
            for (int o = 0; o < OC; o++) {
                float d = dout[(size_t)n * OC + o];
                const float *w = weight + (size_t)o * C;
                for (int i = 0; i < C; i++) dx[i] += d * w[i];
            }
        }
    }
    #pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        float *dw = dweight + (size_t)o * C;
        float db = 0.0f;
        for (int n = 0; n < N; n++) {
            float d = dout[(size_t)n * OC + o];
            const float *x = inp + (size_t)n * C;
            for (int i = 0; i < C; i++) dw[i] += d * x[i];
            db += d;
        }
        if (dbias != NULL) dbias[o] += db;
    }
}

// Multi-head self-attention, no mask (every token sees every token). qkv holds for each
// token [q (NH heads x hs), k (...), v (...)], the layout of the official reshape
// (B, T, 3, NH, hs). att keeps the softmax probabilities: the backward pass needs them,
// and the attention maps of the paper's figures are the CLS row of the last block's.
void attention_forward(float *out, float *att, const float *qkv, int R, int T, int D, int NH) {
    // out is (R, T, D), att is (R, NH, T, T), qkv is (R, T, 3D)
    int hs = D / NH;
    float scale = 1.0f / sqrtf((float)hs); // qk_scale = head_dim ** -0.5
    #pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)r * T + t) * 3 * D + h * hs;
                float *a = att + (((size_t)r * NH + h) * T + t) * T;
                float maxval = -INFINITY;
                for (int t2 = 0; t2 < T; t2++) {
                    const float *k = qkv + ((size_t)r * T + t2) * 3 * D + D + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    s *= scale;
                    a[t2] = s;
                    if (s > maxval) maxval = s;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 < T; t2++) { a[t2] = expf(a[t2] - maxval); sum += a[t2]; }
                for (int t2 = 0; t2 < T; t2++) a[t2] /= sum;
                float *o = out + ((size_t)r * T + t) * D + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 < T; t2++) {
                    const float *v = qkv + ((size_t)r * T + t2) * 3 * D + 2 * D + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += a[t2] * v[i];
                }
            }
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int R, int T, int D, int NH) {
    // forward: s = q.k * scale;  a = softmax(s);  out = sum_t2 a[t2] v[t2]
    int hs = D / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++) {
        for (int h = 0; h < NH; h++) {
            float da[T]; // d loss / d a for one query row
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)r * NH + h) * T + t) * T;
                const float *dy = dout + ((size_t)r * T + t) * D + h * hs;
                // out = sum_t2 a[t2] v[t2]  ->  da[t2] = dy . v[t2],  dv[t2] += a[t2] dy
                float dot = 0.0f; // sum_t2 a[t2] da[t2], for the softmax backward
                for (int t2 = 0; t2 < T; t2++) {
                    const float *v = qkv + ((size_t)r * T + t2) * 3 * D + 2 * D + h * hs;
                    float *dv = dqkv + ((size_t)r * T + t2) * 3 * D + 2 * D + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) { s += dy[i] * v[i]; dv[i] += a[t2] * dy[i]; }
                    da[t2] = s;
                    dot += a[t2] * s;
                }
                // a = softmax(s)  ->  ds = a * (da - sum a da);  s = q.k * scale
                const float *q = qkv + ((size_t)r * T + t) * 3 * D + h * hs;
                float *dq = dqkv + ((size_t)r * T + t) * 3 * D + h * hs;
                for (int t2 = 0; t2 < T; t2++) {
                    float ds = a[t2] * (da[t2] - dot) * scale;
                    const float *k = qkv + ((size_t)r * T + t2) * 3 * D + D + h * hs;
                    float *dk = dqkv + ((size_t)r * T + t2) * 3 * D + D + h * hs;
                    for (int i = 0; i < hs; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
                }
            }
        }
    }
}

// GELU, the exact erf form of nn.GELU (not the tanh approximation).
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
void gelu_forward(float *out, const float *inp, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * INV_SQRT2));
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    // forward: y = x Phi(x)  ->  dy/dx = Phi(x) + x phi(x). Writes dinp (may alias dout).
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float grad = 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] = grad * dout[i];
    }
}

// The residual connection with stochastic depth (drop path): out = x + scale[r] * branch,
// one scale per image r: 0 for an image whose branch is dropped, 1/keep_prob for a kept
// one (the official drop_path computes x.div(keep_prob) * mask). scale NULL = no drop path,
// which is the teacher, and the student in blocks whose drop rate is 0.
void residual_forward(float *out, const float *x, const float *branch, const float *scale, int R, size_t TD) {
    #pragma omp parallel for
    for (int r = 0; r < R; r++) {
        float s = scale != NULL ? scale[r] : 1.0f;
        for (size_t i = (size_t)r * TD; i < (size_t)(r + 1) * TD; i++) out[i] = x[i] + s * branch[i];
    }
}

void residual_backward_branch(float *dbranch, const float *dout, const float *scale, int R, size_t TD) {
    // forward: out = x + scale[r] * branch  ->  dbranch = scale[r] * dout (written),
    // and dx = dout, which the caller gets for free by keeping dout as dx.
    #pragma omp parallel for
    for (int r = 0; r < R; r++) {
        float s = scale != NULL ? scale[r] : 1.0f;
        for (size_t i = (size_t)r * TD; i < (size_t)(r + 1) * TD; i++) dbranch[i] = s * dout[i];
    }
}

// y = x / ||x|| per row. Used twice in the DINO head: on the bottleneck vector
// (nn.functional.normalize, which divides by max(||x||, 1e-12)) and on each row of the
// last layer's weight, w_k = v_k / ||v_k|| (weight_norm with g fixed at 1), so the logits
// are cosines between the normalised feature and the normalised prototypes.
#define L2_EPS 1e-12f
void l2norm_forward(float *out, float *norm, const float *inp, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float nrm = fmaxf(sqrtf(ss), L2_EPS);
        for (int i = 0; i < C; i++) out[(size_t)n * C + i] = x[i] / nrm;
        norm[n] = nrm;
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int N, int C) {
    // forward: y = x / ||x||  ->  dx = (dy - y (y . dy)) / ||x||
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * C, *dy = dout + (size_t)n * C;
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += y[i] * dy[i];
        for (int i = 0; i < C; i++) dinp[(size_t)n * C + i] += (dy[i] - y[i] * dot) / norm[n];
    }
}

// Softmax of (x - sub) / temp over one row, in place into out. Returns log(sum exp) of the
// shifted row so callers can form log-probabilities. sub may be NULL.
static float softmax_row(float *out, const float *x, const float *sub, float temp, int K) {
    float maxval = -INFINITY;
    for (int k = 0; k < K; k++) {
        out[k] = (x[k] - (sub != NULL ? sub[k] : 0.0f)) / temp;
        if (out[k] > maxval) maxval = out[k];
    }
    float sum = 0.0f;
    for (int k = 0; k < K; k++) { out[k] = expf(out[k] - maxval); sum += out[k]; }
    for (int k = 0; k < K; k++) out[k] /= sum;
    return maxval + logf(sum);
}

// The DINO loss (paper eq. 1 and 3, main_dino.py DINOLoss). Student rows are crop-major:
// [global 1 (B rows), global 2, local 1, ..., local NL]; the teacher has the 2 globals.
//   P_s = softmax(s / student_temp),  P_t = softmax((t - center) / teacher_temp)
//   loss = mean over pairs (teacher global iq, student crop v != iq) of
//          mean over the batch of  - sum_k P_t[iq] log P_s[v]
// Pairs of the same view are skipped; the two globals are paired with each other.
// ps and pt receive the student and teacher probabilities (the backward needs them), lse
// the log-sum-exp of each student row (scratch, RS floats).
// Also returns, for the training log, the mean teacher entropy and the mean
// KL(P_t || P_s) over the same pairs (the collapse study of the paper watches both).
float dino_loss_forward(float *ps, float *pt, float *lse, float *teacher_entropy, float *kl,
                        const float *s_logits, const float *t_logits, const float *center,
                        float student_temp, float teacher_temp, int B, int ncrops, int K) {
    int RS = ncrops * B, RT = 2 * B;
    #pragma omp parallel for
    for (int r = 0; r < RS; r++) lse[r] = softmax_row(ps + (size_t)r * K, s_logits + (size_t)r * K, NULL, student_temp, K);
    #pragma omp parallel for
    for (int r = 0; r < RT; r++) softmax_row(pt + (size_t)r * K, t_logits + (size_t)r * K, center, teacher_temp, K);

    double total = 0.0, ent = 0.0;
    int nterms = 0;
    for (int iq = 0; iq < 2; iq++) {
        for (int v = 0; v < ncrops; v++) {
            if (v == iq) continue; // the teacher and the student never see the same view
            double term = 0.0;
            for (int b = 0; b < B; b++) {
                const float *q = pt + ((size_t)iq * B + b) * K;
                const float *s = s_logits + ((size_t)v * B + b) * K;
                int rs = v * B + b;
                // -sum_k q_k log p_k, with log p_k = s_k / temp - logsumexp
                double ce = 0.0;
                for (int k = 0; k < K; k++) ce -= (double)q[k] * ((double)(s[k] / student_temp) - lse[rs]);
                term += ce;
            }
            total += term / B;
            nterms++;
        }
    }
    for (int r = 0; r < RT; r++)
        for (int k = 0; k < K; k++) {
            double q = pt[(size_t)r * K + k];
            if (q > 0) { ent -= q * log(q); }
        }
    ent /= RT;
    float loss = (float)(total / nterms);
    if (teacher_entropy != NULL) *teacher_entropy = (float)ent;
    // KL = cross-entropy - entropy; every teacher row is in the same number of pairs, so
    // the mean entropy over pairs is the mean over teacher rows
    if (kl != NULL) *kl = (float)(total / nterms - ent);
    return loss;
}

void dino_loss_backward(float *ds_logits, const float *ps, const float *pt, float student_temp, int B, int ncrops, int K) {
    // forward (one pair, one row): l = -sum_k q_k log softmax(s / temp)_k, averaged by B * nterms
    //   -> dl/ds_k = (p_k - q_k) / (temp * B * nterms)   (since sum_k q_k = 1)
    // A student row of a global crop v in {0,1} pairs with the other teacher global only;
    // a local crop row pairs with both teacher globals.
    int nterms = 2 * ncrops - 2;
    float norm = 1.0f / (student_temp * B * nterms);
    #pragma omp parallel for collapse(2)
    for (int v = 0; v < ncrops; v++) {
        for (int b = 0; b < B; b++) {
            const float *p = ps + ((size_t)v * B + b) * K;
            float *ds = ds_logits + ((size_t)v * B + b) * K;
            for (int k = 0; k < K; k++) {
                float g = 0.0f;
                for (int iq = 0; iq < 2; iq++)
                    if (iq != v) g += p[k] - pt[((size_t)iq * B + b) * K + k];
                ds[k] += g * norm;
            }
        }
    }
}

// The center (paper eq. 4): an EMA of the teacher's raw outputs over the batch, updated
// AFTER the loss was computed with the old center, from both global crops.
void update_center(float *center, const float *t_logits, float momentum, int RT, int K) {
    for (int k = 0; k < K; k++) {
        float sum = 0.0f;
        for (int r = 0; r < RT; r++) sum += t_logits[(size_t)r * K + k];
        center[k] = center[k] * momentum + (sum / RT) * (1.0f - momentum);
    }
}

// ----------------------------------------------------------------------------
// 3. the model

// Every size of the network and every value of the recipe. One table (config_fields below)
// names them all: the checkpoint header, the command-line flags and `./dino info` use it.
typedef struct {
    // the Vision Transformer
    int img_size;    // training resolution = global crop side, pixels
    int channels;    // 1 (grey) or 3 (RGB)
    int patch;       // patch side P
    int dim;         // width D
    int depth;       // number of blocks L
    int heads;       // attention heads NH
    int mlp_ratio;   // MLP hidden H = mlp_ratio * D
    // the DINO head
    int head_hidden; // HH
    int bottleneck;  // BN
    int out_dim;     // K, number of prototypes
    // multi-crop and batch
    int n_local;     // local crops per image (2 global crops always)
    int local_size;  // local crop side, pixels
    int batch;       // images per step, B
    // the recipe (main_dino.py arguments of the same names)
    float drop_path;             // stochastic depth rate of the last student block
    float student_temp;
    float center_momentum;
    float warmup_teacher_temp;
    float teacher_temp;
    int warmup_teacher_temp_epochs;
    int epochs;                  // the schedules span epochs * steps_per_epoch iterations
    int steps_per_epoch;
    float lr;                    // base lr, for a batch of 256 (scaled by batch / 256)
    float min_lr;
    int warmup_epochs;
    float weight_decay;
    float weight_decay_end;
    float momentum_teacher;
    float clip_grad;             // per-tensor gradient norm clip; 0 = off
    int freeze_last_layer;       // epochs during which the head's last layer is frozen
    int seed;
} Config;

typedef struct { const char *name; int is_float; size_t offset; const char *help; } ConfigField;
#define INT_FIELD(f, h) { #f, 0, offsetof(Config, f), h }
#define FLOAT_FIELD(f, h) { #f, 1, offsetof(Config, f), h }
static const ConfigField config_fields[] = {
    INT_FIELD(img_size, "training resolution = global crop side (pixels)"),
    INT_FIELD(channels, "image channels: 1 or 3"),
    INT_FIELD(patch, "patch side (pixels)"),
    INT_FIELD(dim, "ViT width"),
    INT_FIELD(depth, "ViT blocks"),
    INT_FIELD(heads, "attention heads"),
    INT_FIELD(mlp_ratio, "MLP hidden = mlp_ratio * dim"),
    INT_FIELD(head_hidden, "DINO head hidden size"),
    INT_FIELD(bottleneck, "DINO head bottleneck size"),
    INT_FIELD(out_dim, "K, the number of prototypes"),
    INT_FIELD(n_local, "local crops per image"),
    INT_FIELD(local_size, "local crop side (pixels)"),
    INT_FIELD(batch, "images per step"),
    FLOAT_FIELD(drop_path, "stochastic depth rate (student only)"),
    FLOAT_FIELD(student_temp, "student temperature"),
    FLOAT_FIELD(center_momentum, "center EMA momentum"),
    FLOAT_FIELD(warmup_teacher_temp, "teacher temperature at the start"),
    FLOAT_FIELD(teacher_temp, "teacher temperature after warm-up"),
    INT_FIELD(warmup_teacher_temp_epochs, "teacher temperature warm-up epochs"),
    INT_FIELD(epochs, "epochs the schedules span"),
    INT_FIELD(steps_per_epoch, "iterations per epoch"),
    FLOAT_FIELD(lr, "base learning rate for batch 256 (scaled by batch/256)"),
    FLOAT_FIELD(min_lr, "final learning rate of the cosine"),
    INT_FIELD(warmup_epochs, "linear learning-rate warm-up epochs"),
    FLOAT_FIELD(weight_decay, "weight decay at the start"),
    FLOAT_FIELD(weight_decay_end, "weight decay at the end"),
    FLOAT_FIELD(momentum_teacher, "teacher EMA momentum at the start (cosine to 1)"),
    FLOAT_FIELD(clip_grad, "per-tensor gradient norm clip (0 = off)"),
    INT_FIELD(freeze_last_layer, "epochs with the head's last layer frozen"),
    INT_FIELD(seed, "random seed"),
};
#define NUM_CONFIG_FIELDS ((int)(sizeof(config_fields) / sizeof(config_fields[0])))

static int *config_int(Config *c, int i) { return (int *)((char *)c + config_fields[i].offset); }
static float *config_float(Config *c, int i) { return (float *)((char *)c + config_fields[i].offset); }

// A small CIFAR-sized model with the official recipe values.
Config default_config(void) {
    Config c = {
        .img_size = 32, .channels = 3, .patch = 4, .dim = 128, .depth = 4, .heads = 4, .mlp_ratio = 4,
        .head_hidden = 512, .bottleneck = 128, .out_dim = 1024,
        .n_local = 6, .local_size = 16, .batch = 64,
        .drop_path = 0.1f, .student_temp = 0.1f, .center_momentum = 0.9f,
        .warmup_teacher_temp = 0.04f, .teacher_temp = 0.07f, .warmup_teacher_temp_epochs = 30,
        .epochs = 100, .steps_per_epoch = 781,
        .lr = 5e-4f, .min_lr = 1e-6f, .warmup_epochs = 10,
        .weight_decay = 0.04f, .weight_decay_end = 0.4f,
        .momentum_teacher = 0.996f, .clip_grad = 3.0f, .freeze_last_layer = 1, .seed = 0,
    };
    return c;
}

// Returns NULL when the config can work, else a message saying what is wrong.
const char *config_error(const Config *c) {
    static char msg[256];
    #define CHECK(cond, ...) do { if (!(cond)) { snprintf(msg, sizeof(msg), __VA_ARGS__); return msg; } } while (0)
    CHECK(c->channels == 1 || c->channels == 3, "channels must be 1 or 3, got %d", c->channels);
    CHECK(c->patch >= 1, "patch must be >= 1, got %d", c->patch);
    CHECK(c->img_size >= c->patch && c->img_size % c->patch == 0, "img_size %d is not a multiple of patch %d", c->img_size, c->patch);
    CHECK(c->n_local >= 0, "n_local must be >= 0, got %d", c->n_local);
    CHECK(c->n_local == 0 || (c->local_size >= c->patch && c->local_size % c->patch == 0),
          "local_size %d is not a multiple of patch %d", c->local_size, c->patch);
    CHECK(c->dim >= 1 && c->heads >= 1 && c->dim % c->heads == 0, "dim %d is not divisible by heads %d", c->dim, c->heads);
    CHECK(c->depth >= 1, "depth must be >= 1, got %d", c->depth);
    CHECK(c->mlp_ratio >= 1, "mlp_ratio must be >= 1, got %d", c->mlp_ratio);
    CHECK(c->head_hidden >= 1 && c->bottleneck >= 1, "head_hidden and bottleneck must be >= 1");
    CHECK(c->out_dim >= 2, "out_dim (K) must be >= 2, got %d", c->out_dim);
    CHECK(c->batch >= 1, "batch must be >= 1, got %d", c->batch);
    CHECK(c->drop_path >= 0.0f && c->drop_path < 1.0f, "drop_path must be in [0, 1), got %g", c->drop_path);
    CHECK(c->student_temp > 0.0f && c->teacher_temp > 0.0f && c->warmup_teacher_temp > 0.0f, "temperatures must be > 0");
    CHECK(c->center_momentum >= 0.0f && c->center_momentum <= 1.0f, "center_momentum must be in [0, 1], got %g", c->center_momentum);
    CHECK(c->momentum_teacher >= 0.0f && c->momentum_teacher <= 1.0f, "momentum_teacher must be in [0, 1], got %g", c->momentum_teacher);
    CHECK(c->epochs >= 1 && c->steps_per_epoch >= 1, "epochs and steps_per_epoch must be >= 1");
    CHECK(c->warmup_epochs >= 0 && c->warmup_epochs <= c->epochs, "warmup_epochs %d must be in [0, epochs=%d]", c->warmup_epochs, c->epochs);
    CHECK(c->warmup_teacher_temp_epochs >= 0, "warmup_teacher_temp_epochs must be >= 0");
    CHECK(c->lr >= 0.0f && c->min_lr >= 0.0f, "learning rates must be >= 0");
    CHECK(c->weight_decay >= 0.0f && c->weight_decay_end >= 0.0f, "weight decay must be >= 0");
    CHECK(c->clip_grad >= 0.0f, "clip_grad must be >= 0 (0 = off), got %g", c->clip_grad);
    CHECK(c->freeze_last_layer >= 0, "freeze_last_layer must be >= 0");
    #undef CHECK
    return NULL;
}

// The parameters of the student (and, in the same layout, of the teacher, the gradients
// and both AdamW moments) live in ONE contiguous block. Per-block tensors are stacked over
// the L blocks. The order below is the order in memory and in checkpoints.
enum {
    P_CLS, P_POS, P_PATCHW, P_PATCHB,
    P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_PROJW, P_PROJB, P_LN2W, P_LN2B, P_FC1W, P_FC1B, P_FC2W, P_FC2B,
    P_LNFW, P_LNFB,
    P_HEAD1W, P_HEAD1B, P_HEAD2W, P_HEAD2B, P_HEAD3W, P_HEAD3B, P_LASTV,
    NUM_PARAM_TENSORS
};

typedef struct {
    float *cls;     // (D)            the CLS token
    float *pos;     // (1 + NP, D)    position table for the training resolution
    float *patchw;  // (D, C*P*P)     patch embedding = Conv2d(C, D, P, stride P)
    float *patchb;  // (D)
    float *ln1w, *ln1b;   // (L, D)
    float *qkvw, *qkvb;   // (L, 3D, D), (L, 3D)
    float *projw, *projb; // (L, D, D), (L, D)
    float *ln2w, *ln2b;   // (L, D)
    float *fc1w, *fc1b;   // (L, H, D), (L, H)
    float *fc2w, *fc2b;   // (L, D, H), (L, D)
    float *lnfw, *lnfb;   // (D)  the final norm
    float *head1w, *head1b; // (HH, D), (HH)    DINO head: Linear -> GELU
    float *head2w, *head2b; // (HH, HH), (HH)   -> Linear -> GELU
    float *head3w, *head3b; // (BN, HH), (BN)   -> Linear (bottleneck)
    float *lastv;           // (K, BN)  last layer, weight-normalised; its g is fixed at 1 and not stored
} ParameterTensors;

// For each tensor: our name, the official PyTorch name (MultiCropWrapper(VisionTransformer,
// DINOHead), %d = block), whether it is stacked over blocks, and whether weight decay
// applies. The official get_params_groups exempts biases and 1-D tensors (LayerNorm);
// cls_token (1,1,D) and pos_embed (1,T,D) are 3-D there and so ARE decayed.
static const struct { const char *name, *torch_name; int per_block, decay; } param_info[NUM_PARAM_TENSORS] = {
    {"cls_token", "backbone.cls_token", 0, 1},
    {"pos_embed", "backbone.pos_embed", 0, 1},
    {"patch_w", "backbone.patch_embed.proj.weight", 0, 1},
    {"patch_b", "backbone.patch_embed.proj.bias", 0, 0},
    {"ln1_w", "backbone.blocks.%d.norm1.weight", 1, 0},
    {"ln1_b", "backbone.blocks.%d.norm1.bias", 1, 0},
    {"qkv_w", "backbone.blocks.%d.attn.qkv.weight", 1, 1},
    {"qkv_b", "backbone.blocks.%d.attn.qkv.bias", 1, 0},
    {"proj_w", "backbone.blocks.%d.attn.proj.weight", 1, 1},
    {"proj_b", "backbone.blocks.%d.attn.proj.bias", 1, 0},
    {"ln2_w", "backbone.blocks.%d.norm2.weight", 1, 0},
    {"ln2_b", "backbone.blocks.%d.norm2.bias", 1, 0},
    {"fc1_w", "backbone.blocks.%d.mlp.fc1.weight", 1, 1},
    {"fc1_b", "backbone.blocks.%d.mlp.fc1.bias", 1, 0},
    {"fc2_w", "backbone.blocks.%d.mlp.fc2.weight", 1, 1},
    {"fc2_b", "backbone.blocks.%d.mlp.fc2.bias", 1, 0},
    {"norm_w", "backbone.norm.weight", 0, 0},
    {"norm_b", "backbone.norm.bias", 0, 0},
    {"head1_w", "head.mlp.0.weight", 0, 1},
    {"head1_b", "head.mlp.0.bias", 0, 0},
    {"head2_w", "head.mlp.2.weight", 0, 1},
    {"head2_b", "head.mlp.2.bias", 0, 0},
    {"head3_w", "head.mlp.4.weight", 0, 1},
    {"head3_b", "head.mlp.4.bias", 0, 0},
    {"last_v", "head.last_layer.weight_v", 0, 1},
};

void fill_param_sizes(size_t *sizes, const Config *c) {
    size_t D = c->dim, L = c->depth, H = (size_t)c->mlp_ratio * c->dim, G = c->img_size / c->patch;
    size_t CPP = (size_t)c->channels * c->patch * c->patch, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    size_t s[NUM_PARAM_TENSORS] = {
        D, (1 + G * G) * D, D * CPP, D,
        L * D, L * D, L * 3 * D * D, L * 3 * D, L * D * D, L * D, L * D, L * D, L * H * D, L * H, L * D * H, L * D,
        D, D,
        HH * D, HH, HH * HH, HH, BN * HH, BN, K * BN,
    };
    memcpy(sizes, s, sizeof(s));
}

// Point the named tensors into one block of memory laid out as above.
void point_parameters(ParameterTensors *p, float *block, const size_t *sizes) {
    float **ptrs[NUM_PARAM_TENSORS] = {
        &p->cls, &p->pos, &p->patchw, &p->patchb,
        &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->projw, &p->projb, &p->ln2w, &p->ln2b,
        &p->fc1w, &p->fc1b, &p->fc2w, &p->fc2b, &p->lnfw, &p->lnfb,
        &p->head1w, &p->head1b, &p->head2w, &p->head2b, &p->head3w, &p->head3b, &p->lastv,
    };
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { *ptrs[i] = block; block += sizes[i]; }
}

// The activations of one backbone pass over R crops of one resolution. The student has
// two (global and local crops), the teacher one (global crops only). With keep_all = 0
// (the teacher, inference) only one block's worth of activations is kept and reused,
// because nothing runs backward; att then holds the LAST block's attention, which is
// what the attention maps need.
typedef struct {
    int R, S, G, NP, T, keep_all;
    float *patches;   // (R, NP, C*P*P) unfolded crops
    float *pe;        // (R, NP, D)     patch embeddings
    float *resize;    // (NP, NP_train) bicubic resize of the position table, NULL at the training resolution
    float *pos;       // (T, D)         position table for this resolution
    float *x0;        // (R, T, D)      tokens entering block 0
    float *ln1, *ln1_mean, *ln1_rstd; // (L, R, T, D), (L, R, T), (L, R, T)
    float *qkv;       // (L, R, T, 3D)
    float *att;       // (L, R, NH, T, T)
    float *atty;      // (L, R, T, D)   attention output before the projection
    float *res2;      // (L, R, T, D)   residual stream after the attention branch
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu; // (L, R, T, H)
    float *res3;      // (L, R, T, D)   residual stream after the MLP branch = block output
    float *branch;    // (R, T, D)      scratch: a branch's output before the residual add
    float *cls_in, *lnf_mean, *lnf_rstd; // (R, D), (R), (R): the CLS token into the final norm
} BackboneActs;

void backbone_acts_alloc(BackboneActs *a, const Config *c, int R, int S, int keep_all) {
    memset(a, 0, sizeof(*a));
    size_t D = c->dim, H = (size_t)c->mlp_ratio * c->dim, NH = c->heads, CPP = (size_t)c->channels * c->patch * c->patch;
    a->R = R; a->S = S; a->G = S / c->patch; a->NP = a->G * a->G; a->T = 1 + a->NP; a->keep_all = keep_all;
    size_t Ls = keep_all ? c->depth : 1, RT = (size_t)R * a->T;
    int Gt = c->img_size / c->patch;
    a->patches = (float *)mallocCheck(R * a->NP * CPP * sizeof(float));
    a->pe = (float *)mallocCheck((size_t)R * a->NP * D * sizeof(float));
    if (a->G != Gt) {
        a->resize = (float *)mallocCheck((size_t)a->NP * Gt * Gt * sizeof(float));
        pos_resize_matrix(a->resize, Gt, a->G);
    }
    a->pos = (float *)mallocCheck(a->T * D * sizeof(float));
    a->x0 = (float *)mallocCheck(RT * D * sizeof(float));
    a->ln1 = (float *)mallocCheck(Ls * RT * D * sizeof(float));
    a->ln1_mean = (float *)mallocCheck(Ls * RT * sizeof(float));
    a->ln1_rstd = (float *)mallocCheck(Ls * RT * sizeof(float));
    a->qkv = (float *)mallocCheck(Ls * RT * 3 * D * sizeof(float));
    a->att = (float *)mallocCheck(Ls * R * NH * a->T * a->T * sizeof(float));
    a->atty = (float *)mallocCheck(Ls * RT * D * sizeof(float));
    a->res2 = (float *)mallocCheck(Ls * RT * D * sizeof(float));
    a->ln2 = (float *)mallocCheck(Ls * RT * D * sizeof(float));
    a->ln2_mean = (float *)mallocCheck(Ls * RT * sizeof(float));
    a->ln2_rstd = (float *)mallocCheck(Ls * RT * sizeof(float));
    a->fch = (float *)mallocCheck(Ls * RT * H * sizeof(float));
    a->fch_gelu = (float *)mallocCheck(Ls * RT * H * sizeof(float));
    a->res3 = (float *)mallocCheck(Ls * RT * D * sizeof(float));
    a->branch = (float *)mallocCheck(RT * D * sizeof(float));
    a->cls_in = (float *)mallocCheck((size_t)R * D * sizeof(float));
    a->lnf_mean = (float *)mallocCheck(R * sizeof(float));
    a->lnf_rstd = (float *)mallocCheck(R * sizeof(float));
}

void backbone_acts_free(BackboneActs *a) {
    float *bufs[] = { a->patches, a->pe, a->resize, a->pos, a->x0, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att,
                      a->atty, a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, a->fch, a->fch_gelu, a->res3, a->branch,
                      a->cls_in, a->lnf_mean, a->lnf_rstd };
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
    memset(a, 0, sizeof(*a));
}

// The Vision Transformer (vision_transformer.py VisionTransformer.forward): patch
// embedding, CLS token, position table, L pre-norm blocks, final norm; the output is the
// CLS token after the final norm, written to feat (R, D). dp_scale: the drop path scales
// of the student, (L, 2, dp_stride) with this pass's rows first; NULL = no drop path.
void backbone_forward(BackboneActs *a, const ParameterTensors *p, const Config *c, const float *imgs,
                      float *feat, const float *dp_scale, int dp_stride) {
    int R = a->R, T = a->T, D = c->dim, H = c->mlp_ratio * c->dim, NH = c->heads;
    size_t RT = (size_t)R * T, TD = (size_t)T * D;
    int CPP = c->channels * c->patch * c->patch;
    // patch embedding: a convolution with kernel = stride = P, as a matmul over unfolded patches
    unfold_patches(a->patches, imgs, R, c->channels, a->S, c->patch);
    matmul_forward(a->pe, a->patches, p->patchw, p->patchb, R * a->NP, CPP, D);
    // the position table, resized bicubically for crops of another resolution
    const float *pos = p->pos;
    if (a->resize != NULL) {
        int Gt = c->img_size / c->patch;
        pos_resize_forward(a->pos, p->pos, a->resize, Gt * Gt, a->NP, D);
        pos = a->pos;
    }
    embed_forward(a->x0, a->pe, p->cls, pos, R, T, D);
    for (int l = 0; l < c->depth; l++) {
        int s = a->keep_all ? l : 0; // activation slot
        const float *x = l == 0 ? a->x0 : a->res3 + (a->keep_all ? (size_t)(l - 1) : 0) * RT * D;
        float *ln1 = a->ln1 + s * RT * D, *ln1_mean = a->ln1_mean + s * RT, *ln1_rstd = a->ln1_rstd + s * RT;
        float *qkv = a->qkv + s * RT * 3 * D, *att = a->att + (size_t)s * R * NH * T * T, *atty = a->atty + s * RT * D;
        float *res2 = a->res2 + s * RT * D, *ln2 = a->ln2 + s * RT * D;
        float *ln2_mean = a->ln2_mean + s * RT, *ln2_rstd = a->ln2_rstd + s * RT;
        float *fch = a->fch + s * RT * H, *fch_gelu = a->fch_gelu + s * RT * H, *res3 = a->res3 + s * RT * D;
        const float *dp_attn = dp_scale != NULL ? dp_scale + (size_t)(2 * l) * dp_stride : NULL;
        const float *dp_mlp = dp_scale != NULL ? dp_scale + (size_t)(2 * l + 1) * dp_stride : NULL;
        // x = x + drop_path(attn(norm1(x)))
        layernorm_forward(ln1, ln1_mean, ln1_rstd, x, p->ln1w + l * D, p->ln1b + l * D, RT, D);
        matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * D * D, p->qkvb + l * 3 * D, RT, D, 3 * D);
        attention_forward(atty, att, qkv, R, T, D, NH);
        matmul_forward(a->branch, atty, p->projw + (size_t)l * D * D, p->projb + l * D, RT, D, D);
        residual_forward(res2, x, a->branch, dp_attn, R, TD);
        // x = x + drop_path(mlp(norm2(x)))
        layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, p->ln2w + l * D, p->ln2b + l * D, RT, D);
        matmul_forward(fch, ln2, p->fc1w + (size_t)l * H * D, p->fc1b + l * H, RT, D, H);
        gelu_forward(fch_gelu, fch, RT * H);
        matmul_forward(a->branch, fch_gelu, p->fc2w + (size_t)l * D * H, p->fc2b + l * D, RT, H, D);
        residual_forward(res3, res2, a->branch, dp_mlp, R, TD);
    }
    // final norm, on the CLS token only: it is the only output (the official code norms
    // every token and then takes token 0; the result and its gradient are the same)
    const float *xl = a->res3 + (a->keep_all ? (size_t)(c->depth - 1) : 0) * RT * D;
    for (int r = 0; r < R; r++) memcpy(a->cls_in + (size_t)r * D, xl + (size_t)r * TD, D * sizeof(float));
    layernorm_forward(feat, a->lnf_mean, a->lnf_rstd, a->cls_in, p->lnfw, p->lnfb, R, D);
}

// Gradient buffers the backward pass reuses for every pass, sized for the largest.
typedef struct {
    float *dres;    // (RT, D)  gradient of the residual stream
    float *dbranch; // (RT, D)
    float *dln;     // (RT, D)
    float *dqkv;    // (RT, 3D)
    float *dfch;    // (RT, H)
    float *dpos;    // (T, D)   gradient of a resized position table
    float *dcls;    // (R, D)   gradient of the CLS token into the final norm
} BackwardScratch;

void backbone_backward(ParameterTensors *g, BackwardScratch *w, const BackboneActs *a, const ParameterTensors *p,
                       const Config *c, const float *dfeat, const float *dp_scale, int dp_stride) {
    int R = a->R, T = a->T, D = c->dim, H = c->mlp_ratio * c->dim, NH = c->heads;
    size_t RT = (size_t)R * T, TD = (size_t)T * D;
    int CPP = c->channels * c->patch * c->patch;
    // feat = norm(x_L[:, 0])
    memset(w->dres, 0, RT * D * sizeof(float));
    memset(w->dcls, 0, (size_t)R * D * sizeof(float));
    layernorm_backward(w->dcls, g->lnfw, g->lnfb, dfeat, a->cls_in, p->lnfw, a->lnf_mean, a->lnf_rstd, R, D);
    for (int r = 0; r < R; r++) memcpy(w->dres + (size_t)r * TD, w->dcls + (size_t)r * D, D * sizeof(float));
    for (int l = c->depth - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->res3 + (size_t)(l - 1) * RT * D;
        const float *ln1 = a->ln1 + l * RT * D, *ln1_mean = a->ln1_mean + l * RT, *ln1_rstd = a->ln1_rstd + l * RT;
        const float *qkv = a->qkv + l * RT * 3 * D, *att = a->att + (size_t)l * R * NH * T * T, *atty = a->atty + l * RT * D;
        const float *res2 = a->res2 + l * RT * D, *ln2 = a->ln2 + l * RT * D;
        const float *ln2_mean = a->ln2_mean + l * RT, *ln2_rstd = a->ln2_rstd + l * RT;
        const float *fch = a->fch + l * RT * H, *fch_gelu = a->fch_gelu + l * RT * H;
        const float *dp_attn = dp_scale != NULL ? dp_scale + (size_t)(2 * l) * dp_stride : NULL;
        const float *dp_mlp = dp_scale != NULL ? dp_scale + (size_t)(2 * l + 1) * dp_stride : NULL;
        // res3 = res2 + drop_path(fc2(gelu(fc1(norm2(res2))))); dres carries on as dres2
        residual_backward_branch(w->dbranch, w->dres, dp_mlp, R, TD);
        memset(w->dfch, 0, RT * H * sizeof(float));
        matmul_backward(w->dfch, g->fc2w + (size_t)l * D * H, g->fc2b + l * D, w->dbranch, fch_gelu, p->fc2w + (size_t)l * D * H, RT, H, D);
        gelu_backward(w->dfch, fch, w->dfch, RT * H);
        memset(w->dln, 0, RT * D * sizeof(float));
        matmul_backward(w->dln, g->fc1w + (size_t)l * H * D, g->fc1b + l * H, w->dfch, ln2, p->fc1w + (size_t)l * H * D, RT, D, H);
        layernorm_backward(w->dres, g->ln2w + l * D, g->ln2b + l * D, w->dln, res2, p->ln2w + l * D, ln2_mean, ln2_rstd, RT, D);
        // res2 = x + drop_path(proj(attention(qkv(norm1(x))))); dres carries on as dx
        residual_backward_branch(w->dbranch, w->dres, dp_attn, R, TD);
        memset(w->dln, 0, RT * D * sizeof(float)); // here: d atty
        matmul_backward(w->dln, g->projw + (size_t)l * D * D, g->projb + l * D, w->dbranch, atty, p->projw + (size_t)l * D * D, RT, D, D);
        memset(w->dqkv, 0, RT * 3 * D * sizeof(float));
        attention_backward(w->dqkv, w->dln, qkv, att, R, T, D, NH);
        memset(w->dbranch, 0, RT * D * sizeof(float)); // here: d ln1
        matmul_backward(w->dbranch, g->qkvw + (size_t)l * 3 * D * D, g->qkvb + l * 3 * D, w->dqkv, ln1, p->qkvw + (size_t)l * 3 * D * D, RT, D, 3 * D);
        layernorm_backward(w->dres, g->ln1w + l * D, g->ln1b + l * D, w->dbranch, x, p->ln1w + l * D, ln1_mean, ln1_rstd, RT, D);
    }
    // x0 = [cls, patches] + pos;  pos = resize(pos_train) for another resolution
    float *dpos = g->pos;
    if (a->resize != NULL) { dpos = w->dpos; memset(dpos, 0, TD * sizeof(float)); }
    embed_backward(w->dbranch, g->cls, dpos, w->dres, R, T, D);
    if (a->resize != NULL) {
        int Gt = c->img_size / c->patch;
        pos_resize_backward(g->pos, w->dpos, a->resize, Gt * Gt, a->NP, D);
    }
    // the patch embedding; the images need no gradient
    matmul_backward(NULL, g->patchw, g->patchb, w->dbranch, a->patches, p->patchw, R * a->NP, CPP, D);
}

// The DINO head (DINOHead): a 3-layer MLP to the bottleneck, L2-normalise, then the
// weight-normalised last layer without bias: logits[k] = <z/|z|, v_k/|v_k|>.
typedef struct {
    int R;
    float *h1, *h1g, *h2, *h2g; // (R, HH) before and after GELU
    float *z, *zn, *znorm;      // (R, BN), (R, BN), (R): bottleneck, normalised, its norm
    float *wn, *vnorm;          // (K, BN), (K): the normalised last-layer weight
    float *logits;              // (R, K)
} HeadActs;

void head_acts_alloc(HeadActs *a, const Config *c, int R) {
    size_t HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    a->R = R;
    a->h1 = (float *)mallocCheck(R * HH * sizeof(float));
    a->h1g = (float *)mallocCheck(R * HH * sizeof(float));
    a->h2 = (float *)mallocCheck(R * HH * sizeof(float));
    a->h2g = (float *)mallocCheck(R * HH * sizeof(float));
    a->z = (float *)mallocCheck(R * BN * sizeof(float));
    a->zn = (float *)mallocCheck(R * BN * sizeof(float));
    a->znorm = (float *)mallocCheck(R * sizeof(float));
    a->wn = (float *)mallocCheck(K * BN * sizeof(float));
    a->vnorm = (float *)mallocCheck(K * sizeof(float));
    a->logits = (float *)mallocCheck(R * K * sizeof(float));
}

void head_acts_free(HeadActs *a) {
    float *bufs[] = { a->h1, a->h1g, a->h2, a->h2g, a->z, a->zn, a->znorm, a->wn, a->vnorm, a->logits };
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
}

void head_forward(HeadActs *a, const ParameterTensors *p, const Config *c, const float *feat) {
    int R = a->R, D = c->dim, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    matmul_forward(a->h1, feat, p->head1w, p->head1b, R, D, HH);
    gelu_forward(a->h1g, a->h1, (size_t)R * HH);
    matmul_forward(a->h2, a->h1g, p->head2w, p->head2b, R, HH, HH);
    gelu_forward(a->h2g, a->h2, (size_t)R * HH);
    matmul_forward(a->z, a->h2g, p->head3w, p->head3b, R, HH, BN);
    l2norm_forward(a->zn, a->znorm, a->z, R, BN);     // x = nn.functional.normalize(x, dim=-1)
    l2norm_forward(a->wn, a->vnorm, p->lastv, K, BN); // weight_norm: w_k = g_k v_k / |v_k|, g = 1
    matmul_forward(a->logits, a->zn, a->wn, NULL, R, BN, K);
}

// Scratch for the head's backward pass.
typedef struct { float *dzn, *dz, *dh1, *dh2, *dwn; } HeadScratch;

void head_backward(ParameterTensors *g, float *dfeat, HeadScratch *w, const HeadActs *a, const ParameterTensors *p,
                   const Config *c, const float *feat, const float *dlogits) {
    int R = a->R, D = c->dim, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    memset(w->dzn, 0, (size_t)R * BN * sizeof(float));
    memset(w->dwn, 0, (size_t)K * BN * sizeof(float));
    matmul_backward(w->dzn, w->dwn, NULL, dlogits, a->zn, a->wn, R, BN, K);
    l2norm_backward(g->lastv, w->dwn, a->wn, a->vnorm, K, BN);
    memset(w->dz, 0, (size_t)R * BN * sizeof(float));
    l2norm_backward(w->dz, w->dzn, a->zn, a->znorm, R, BN);
    memset(w->dh2, 0, (size_t)R * HH * sizeof(float));
    matmul_backward(w->dh2, g->head3w, g->head3b, w->dz, a->h2g, p->head3w, R, HH, BN);
    gelu_backward(w->dh2, a->h2, w->dh2, (size_t)R * HH);
    memset(w->dh1, 0, (size_t)R * HH * sizeof(float));
    matmul_backward(w->dh1, g->head2w, g->head2b, w->dh2, a->h1g, p->head2w, R, HH, HH);
    gelu_backward(w->dh1, a->h1, w->dh1, (size_t)R * HH);
    memset(dfeat, 0, (size_t)R * D * sizeof(float));
    matmul_backward(dfeat, g->head1w, g->head1b, w->dh1, feat, p->head1w, R, D, HH);
}

// The student and the teacher (paper figure 2). Both are the same network; the teacher's
// parameters are an exponential moving average of the student's and get no gradient.
typedef struct {
    Config cfg;
    size_t param_sizes[NUM_PARAM_TENSORS];
    size_t num_params;
    float *params;  ParameterTensors p; // the student
    float *grads;   ParameterTensors g; // its gradients
    float *teacher; ParameterTensors t; // the teacher, same layout
    float *adam_m, *adam_v;             // AdamW moments, same layout
    float *center;                      // (K) the center of the teacher outputs
    int step;                           // training iterations done
    int adam_steps, adam_steps_last;    // AdamW step counts; the last layer's starts after its freeze
    Rng rng;                            // drop path masks
    // activations
    int RS, RT;                         // student rows (all crops x B), teacher rows (2 x B)
    BackboneActs s_global, s_local, t_global;
    HeadActs s_head, t_head;
    float *s_feat, *t_feat;             // (RS, D), (RT, D) backbone outputs, crop-major
    float *ps, *pt, *lse;               // (RS, K), (RT, K), (RS): loss probabilities
    float *dlogits, *dfeat;             // (RS, K), (RS, D)
    float *dp_scale;                    // (L, 2, RS) this step's drop path scales of the student
    BackwardScratch bw;
    HeadScratch hw;
    // what the last step saw, for the log
    float loss, teacher_entropy, kl, lr, wd, momentum, teacher_temp;
} Dino;

// Official init (vision_transformer.py _init_weights, DINOHead._init_weights): Linear
// weights trunc_normal(std .02) and zero bias, LayerNorm 1 and 0, cls token and position
// table trunc_normal(.02). The patch embedding is a Conv2d and the last layer is created
// after the init ran, so both keep PyTorch's default, uniform(+-1/sqrt(fan_in)).
static void init_uniform(float *w, size_t n, int fan_in, Rng *rng) {
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < n; i++) w[i] = bound * (2.0f * rng_uniform(rng) - 1.0f);
}

void init_parameters(ParameterTensors *p, const size_t *sizes, const Config *c, Rng *rng) {
    size_t L = c->depth, D = c->dim;
    int CPP = c->channels * c->patch * c->patch;
    float *trunc[] = { p->cls, p->pos, p->qkvw, p->projw, p->fc1w, p->fc2w, p->head1w, p->head2w, p->head3w };
    int trunc_id[] = { P_CLS, P_POS, P_QKVW, P_PROJW, P_FC1W, P_FC2W, P_HEAD1W, P_HEAD2W, P_HEAD3W };
    for (int i = 0; i < 9; i++)
        for (size_t j = 0; j < sizes[trunc_id[i]]; j++) trunc[i][j] = rng_trunc_normal(rng, 0.02f);
    float *zeros[] = { p->qkvb, p->projb, p->fc1b, p->fc2b, p->ln1b, p->ln2b, p->lnfb, p->head1b, p->head2b, p->head3b };
    int zero_id[] = { P_QKVB, P_PROJB, P_FC1B, P_FC2B, P_LN1B, P_LN2B, P_LNFB, P_HEAD1B, P_HEAD2B, P_HEAD3B };
    for (int i = 0; i < 10; i++) memset(zeros[i], 0, sizes[zero_id[i]] * sizeof(float));
    for (size_t j = 0; j < L * D; j++) { p->ln1w[j] = 1.0f; p->ln2w[j] = 1.0f; }
    for (size_t j = 0; j < D; j++) p->lnfw[j] = 1.0f;
    init_uniform(p->patchw, sizes[P_PATCHW], CPP, rng);
    init_uniform(p->patchb, sizes[P_PATCHB], CPP, rng);
    init_uniform(p->lastv, sizes[P_LASTV], c->bottleneck, rng);
}

// Allocates everything and initialises the student; the teacher starts as an exact copy.
void dino_build(Dino *d, const Config *cfg) {
    const char *err = config_error(cfg);
    if (err != NULL) die("bad config: %s", err);
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    const Config *c = &d->cfg;
    fill_param_sizes(d->param_sizes, c);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) d->num_params += d->param_sizes[i];
    size_t n = d->num_params;
    d->params = (float *)mallocCheck(n * sizeof(float));
    d->grads = (float *)callocCheck(n, sizeof(float));
    d->teacher = (float *)mallocCheck(n * sizeof(float));
    d->adam_m = (float *)callocCheck(n, sizeof(float));
    d->adam_v = (float *)callocCheck(n, sizeof(float));
    point_parameters(&d->p, d->params, d->param_sizes);
    point_parameters(&d->g, d->grads, d->param_sizes);
    point_parameters(&d->t, d->teacher, d->param_sizes);
    d->center = (float *)callocCheck(c->out_dim, sizeof(float)); // the center starts at zero
    d->rng.state = (uint64_t)(uint32_t)c->seed * 0x9E3779B97F4A7C15ull + 1;
    init_parameters(&d->p, d->param_sizes, c, &d->rng);
    memcpy(d->teacher, d->params, n * sizeof(float)); // teacher = exact copy of the student

    int B = c->batch, D = c->dim, K = c->out_dim;
    d->RS = (2 + c->n_local) * B;
    d->RT = 2 * B;
    backbone_acts_alloc(&d->s_global, c, 2 * B, c->img_size, 1);
    if (c->n_local > 0) backbone_acts_alloc(&d->s_local, c, c->n_local * B, c->local_size, 1);
    backbone_acts_alloc(&d->t_global, c, 2 * B, c->img_size, 0);
    head_acts_alloc(&d->s_head, c, d->RS);
    head_acts_alloc(&d->t_head, c, d->RT);
    d->s_feat = (float *)mallocCheck((size_t)d->RS * D * sizeof(float));
    d->t_feat = (float *)mallocCheck((size_t)d->RT * D * sizeof(float));
    d->ps = (float *)mallocCheck((size_t)d->RS * K * sizeof(float));
    d->pt = (float *)mallocCheck((size_t)d->RT * K * sizeof(float));
    d->lse = (float *)mallocCheck((size_t)d->RS * sizeof(float));
    d->dlogits = (float *)mallocCheck((size_t)d->RS * K * sizeof(float));
    d->dfeat = (float *)mallocCheck((size_t)d->RS * D * sizeof(float));
    d->dp_scale = (float *)mallocCheck((size_t)c->depth * 2 * d->RS * sizeof(float));
    // backward scratch, sized for the larger of the two student passes
    size_t RTmax = (size_t)d->s_global.R * d->s_global.T;
    if (c->n_local > 0 && (size_t)d->s_local.R * d->s_local.T > RTmax) RTmax = (size_t)d->s_local.R * d->s_local.T;
    size_t H = (size_t)c->mlp_ratio * D, Tmax = d->s_global.T > d->s_local.T ? d->s_global.T : d->s_local.T;
    d->bw.dres = (float *)mallocCheck(RTmax * D * sizeof(float));
    d->bw.dbranch = (float *)mallocCheck(RTmax * D * sizeof(float));
    d->bw.dln = (float *)mallocCheck(RTmax * D * sizeof(float));
    d->bw.dqkv = (float *)mallocCheck(RTmax * 3 * D * sizeof(float));
    d->bw.dfch = (float *)mallocCheck(RTmax * H * sizeof(float));
    d->bw.dpos = (float *)mallocCheck(Tmax * D * sizeof(float));
    d->bw.dcls = (float *)mallocCheck((size_t)d->RS * D * sizeof(float));
    d->hw.dzn = (float *)mallocCheck((size_t)d->RS * c->bottleneck * sizeof(float));
    d->hw.dz = (float *)mallocCheck((size_t)d->RS * c->bottleneck * sizeof(float));
    d->hw.dh1 = (float *)mallocCheck((size_t)d->RS * c->head_hidden * sizeof(float));
    d->hw.dh2 = (float *)mallocCheck((size_t)d->RS * c->head_hidden * sizeof(float));
    d->hw.dwn = (float *)mallocCheck((size_t)K * c->bottleneck * sizeof(float));
}

void dino_free(Dino *d) {
    free(d->params); free(d->grads); free(d->teacher); free(d->adam_m); free(d->adam_v); free(d->center);
    backbone_acts_free(&d->s_global);
    if (d->cfg.n_local > 0) backbone_acts_free(&d->s_local);
    backbone_acts_free(&d->t_global);
    head_acts_free(&d->s_head); head_acts_free(&d->t_head);
    free(d->s_feat); free(d->t_feat); free(d->ps); free(d->pt); free(d->lse); free(d->dlogits); free(d->dfeat);
    free(d->dp_scale);
    free(d->bw.dres); free(d->bw.dbranch); free(d->bw.dln); free(d->bw.dqkv); free(d->bw.dfch); free(d->bw.dpos); free(d->bw.dcls);
    free(d->hw.dzn); free(d->hw.dz); free(d->hw.dh1); free(d->hw.dh2); free(d->hw.dwn);
    memset(d, 0, sizeof(*d));
}

// The teacher sees only the 2 global crops (MultiCropWrapper on images[:2]).
// globals is (2B, C, S, S), crop-major: all first global crops, then all second ones.
void teacher_forward(Dino *d, const float *globals) {
    backbone_forward(&d->t_global, &d->t, &d->cfg, globals, d->t_feat, NULL, 0);
    head_forward(&d->t_head, &d->t, &d->cfg, d->t_feat);
}

// The student sees every crop. The backbone runs once per resolution (globals, then
// locals), the head once on all rows: MultiCropWrapper. locals is (NL*B, C, s, s).
// With drop_path, d->dp_scale holds this step's scales.
void student_forward(Dino *d, const float *globals, const float *locals, int drop_path) {
    const Config *c = &d->cfg;
    const float *dp = drop_path ? d->dp_scale : NULL;
    backbone_forward(&d->s_global, &d->p, c, globals, d->s_feat, dp, d->RS);
    if (c->n_local > 0)
        backbone_forward(&d->s_local, &d->p, c, locals, d->s_feat + (size_t)d->RT * c->dim, dp ? dp + d->RT : NULL, d->RS);
    head_forward(&d->s_head, &d->p, c, d->s_feat);
}

// From d->dlogits to the student's gradients (accumulated into d->grads).
void student_backward(Dino *d, int drop_path) {
    const Config *c = &d->cfg;
    const float *dp = drop_path ? d->dp_scale : NULL;
    head_backward(&d->g, d->dfeat, &d->hw, &d->s_head, &d->p, c, d->s_feat, d->dlogits);
    backbone_backward(&d->g, &d->bw, &d->s_global, &d->p, c, d->dfeat, dp, d->RS);
    if (c->n_local > 0)
        backbone_backward(&d->g, &d->bw, &d->s_local, &d->p, c, d->dfeat + (size_t)d->RT * c->dim, dp ? dp + d->RT : NULL, d->RS);
}

// Stochastic depth: block l drops each image's branch with probability
// rate_l = drop_path * l / (L - 1) (linspace over depth, so block 0 never drops).
// A kept branch is scaled by 1 / (1 - rate_l).
float drop_path_rate(const Config *c, int l) { return c->depth > 1 ? c->drop_path * l / (c->depth - 1) : 0.0f; }

void sample_drop_path(Dino *d) {
    const Config *c = &d->cfg;
    for (int l = 0; l < c->depth; l++) {
        float rate = drop_path_rate(c, l), keep = 1.0f - rate;
        for (int b = 0; b < 2; b++)
            for (int r = 0; r < d->RS; r++)
                d->dp_scale[((size_t)l * 2 + b) * d->RS + r] = rate == 0.0f ? 1.0f : (rng_uniform(&d->rng) < keep ? 1.0f / keep : 0.0f);
    }
}

// ----------------------------------------------------------------------------
// 4. the DINO training mechanics that are not layers

// numpy.linspace(start, stop, num)[i], endpoint included (utils.cosine_scheduler uses it).
static double linspace_at(double start, double stop, int num, int i) {
    if (num <= 1) return start;
    if (i == num - 1) return stop;
    return start + i * ((stop - start) / (num - 1));
}

// utils.cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs, start_warmup):
// a linear warm-up from start_warmup to base over the warm-up iterations (numpy linspace,
// both ends included), then a half cosine from base to final over the rest; per iteration.
double cosine_schedule(double base, double final, int total_iters, int warmup_iters, double start_warmup, int it) {
    if (it >= total_iters) it = total_iters - 1; // training past the schedule keeps its last value
    if (it < warmup_iters) return linspace_at(start_warmup, base, warmup_iters, it);
    int n = total_iters - warmup_iters, i = it - warmup_iters;
    return final + 0.5 * (base - final) * (1.0 + cos(M_PI * i / n));
}

// The values of every schedule at iteration it, set into d for the step and the log.
void set_schedules(Dino *d, int it) {
    const Config *c = &d->cfg;
    int total = c->epochs * c->steps_per_epoch, epoch = it / c->steps_per_epoch;
    d->lr = (float)cosine_schedule(c->lr * c->batch / 256.0, c->min_lr, total, c->warmup_epochs * c->steps_per_epoch, 0.0, it);
    d->wd = (float)cosine_schedule(c->weight_decay, c->weight_decay_end, total, 0, 0.0, it);
    d->momentum = (float)cosine_schedule(c->momentum_teacher, 1.0, total, 0, 0.0, it);
    // teacher temperature: linear warm-up per EPOCH, then constant (DINOLoss.teacher_temp_schedule)
    d->teacher_temp = epoch < c->warmup_teacher_temp_epochs
        ? (float)linspace_at(c->warmup_teacher_temp, c->teacher_temp, c->warmup_teacher_temp_epochs, epoch)
        : c->teacher_temp;
}

// utils.clip_gradients: each parameter tensor on its own (not one global norm); a tensor
// whose gradient norm exceeds clip is scaled by clip / (norm + 1e-6). Our per-block tensors
// are stacked, so each block's slice is one official tensor.
void clip_gradients(Dino *d, float clip) {
    float *g = d->grads;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        int slices = param_info[i].per_block ? d->cfg.depth : 1;
        size_t n = d->param_sizes[i] / slices;
        for (int s = 0; s < slices; s++, g += n) {
            double ss = 0.0;
            for (size_t j = 0; j < n; j++) ss += (double)g[j] * g[j];
            float coef = clip / ((float)sqrt(ss) + 1e-6f);
            if (coef < 1.0f)
                for (size_t j = 0; j < n; j++) g[j] *= coef;
        }
    }
}

// AdamW as torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8), the same float operations in
// the same order. Weight decay only on the tensors param_info marks. While the last layer
// is frozen (the first freeze_last_layer epochs) its gradient is dropped: AdamW does not
// touch it at all (no moments, no decay, no step count), as PyTorch does with p.grad = None.
void adamw_update(Dino *d, int freeze_last) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    d->adam_steps++;
    if (!freeze_last) d->adam_steps_last++;
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t n = d->param_sizes[i];
        float *p = d->params + offset, *g = d->grads + offset, *m = d->adam_m + offset, *v = d->adam_v + offset;
        offset += n;
        if (i == P_LASTV && freeze_last) continue;
        int t = i == P_LASTV ? d->adam_steps_last : d->adam_steps;
        double bias_correction1 = 1.0 - pow(beta1, t), bias_correction2 = 1.0 - pow(beta2, t);
        float decay = param_info[i].decay ? (float)(1.0 - (double)d->lr * d->wd) : 1.0f;
        float step_size = (float)(d->lr / bias_correction1), bc2_sqrt = (float)sqrt(bias_correction2);
        #pragma omp parallel for
        for (size_t j = 0; j < n; j++) {
            p[j] *= decay;                                   // param.mul_(1 - lr * wd)
            m[j] += (1.0f - beta1) * (g[j] - m[j]);          // exp_avg.lerp_(grad, 1 - beta1)
            v[j] = beta2 * v[j] + (1.0f - beta2) * g[j] * g[j];
            float denom = sqrtf(v[j]) / bc2_sqrt + eps;
            p[j] -= step_size * m[j] / denom;
        }
    }
}

// The teacher is an exponential moving average of the student, over EVERY parameter,
// head included (paper section 3.1, eq. 2): teacher = m teacher + (1 - m) student.
void ema_update(Dino *d, float momentum) {
    float a = momentum, b = (float)(1.0 - (double)momentum);
    #pragma omp parallel for
    for (size_t j = 0; j < d->num_params; j++) d->teacher[j] = a * d->teacher[j] + b * d->params[j];
}

// One training iteration, in the order of main_dino.py train_one_epoch:
// teacher forward (globals) -> student forward (all crops) -> loss (then the center moves)
// -> backward -> clip -> cancel last-layer gradients -> AdamW -> EMA teacher.
// Returns the loss; a non-finite loss returns before anything is updated.
float dino_step(Dino *d, const float *globals, const float *locals) {
    const Config *c = &d->cfg;
    int epoch = d->step / c->steps_per_epoch;
    int use_dp = c->drop_path > 0.0f;
    set_schedules(d, d->step);
    teacher_forward(d, globals);
    if (use_dp) sample_drop_path(d);
    student_forward(d, globals, locals, use_dp);
    d->loss = dino_loss_forward(d->ps, d->pt, d->lse, &d->teacher_entropy, &d->kl, d->s_head.logits, d->t_head.logits,
                                d->center, c->student_temp, d->teacher_temp, c->batch, 2 + c->n_local, c->out_dim);
    if (!isfinite(d->loss)) return d->loss;
    update_center(d->center, d->t_head.logits, c->center_momentum, d->RT, c->out_dim); // after the loss
    memset(d->grads, 0, d->num_params * sizeof(float));
    memset(d->dlogits, 0, (size_t)d->RS * c->out_dim * sizeof(float));
    dino_loss_backward(d->dlogits, d->ps, d->pt, c->student_temp, c->batch, 2 + c->n_local, c->out_dim);
    student_backward(d, use_dp);
    if (c->clip_grad > 0.0f) clip_gradients(d, c->clip_grad);
    adamw_update(d, epoch < c->freeze_last_layer);
    ema_update(d, d->momentum);
    d->step++;
    return d->loss;
}

// ----------------------------------------------------------------------------
// 5. checkpoints
//
// A header of 256 int32, then float32 tensors:
//   header[0] magic 20210429 ("DINO" paper date), header[1] version 1,
//   header[2] number of config fields, header[3 ...] the config fields in config_fields
//   order (floats stored by their bits), header[64] step, [65] AdamW steps,
//   [66] AdamW steps of the last layer, [67..68] RNG state (low, high 32 bits),
//   [69..70] number of parameters N (low, high); the rest 0.
//   Then: student (N), teacher (N), AdamW m (N), AdamW v (N), center (K), all float32 in
//   the parameter order of param_info. Everything to continue training exactly.
#define CKPT_MAGIC 20210429
#define CKPT_VERSION 1
#define CKPT_HEADER 256
#define CKPT_STATE 64

void checkpoint_header(int32_t *h, const Dino *d) {
    memset(h, 0, CKPT_HEADER * sizeof(int32_t));
    h[0] = CKPT_MAGIC;
    h[1] = CKPT_VERSION;
    h[2] = NUM_CONFIG_FIELDS;
    Config c = d->cfg;
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) memcpy(&h[3 + i], (char *)&c + config_fields[i].offset, 4);
    h[CKPT_STATE + 0] = d->step;
    h[CKPT_STATE + 1] = d->adam_steps;
    h[CKPT_STATE + 2] = d->adam_steps_last;
    h[CKPT_STATE + 3] = (int32_t)(uint32_t)(d->rng.state & 0xffffffffu);
    h[CKPT_STATE + 4] = (int32_t)(uint32_t)(d->rng.state >> 32);
    h[CKPT_STATE + 5] = (int32_t)(uint32_t)(d->num_params & 0xffffffffu);
    h[CKPT_STATE + 6] = (int32_t)(uint32_t)((uint64_t)d->num_params >> 32);
}

// Written to path.tmp, flushed to disk, then renamed over path: a kill at any moment
// leaves either the old checkpoint or the new one, never half of one.
void save_checkpoint(const Dino *d, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) die("checkpoint path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) die("cannot write checkpoint '%s': %s; is the output directory writable?", tmp, strerror(errno));
    int32_t h[CKPT_HEADER];
    checkpoint_header(h, d);
    size_t n = d->num_params;
    int ok = fwrite(h, sizeof(int32_t), CKPT_HEADER, f) == CKPT_HEADER
          && fwrite(d->params, sizeof(float), n, f) == n
          && fwrite(d->teacher, sizeof(float), n, f) == n
          && fwrite(d->adam_m, sizeof(float), n, f) == n
          && fwrite(d->adam_v, sizeof(float), n, f) == n
          && fwrite(d->center, sizeof(float), d->cfg.out_dim, f) == (size_t)d->cfg.out_dim
          && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) { remove(tmp); die("writing checkpoint '%s' failed: %s (disk full?); the previous checkpoint is untouched", tmp, strerror(err)); }
    if (rename(tmp, path) != 0) { err = errno; remove(tmp); die("cannot rename '%s' to '%s': %s", tmp, path, strerror(err)); }
}

// Reads a checkpoint into a freshly built Dino (its config comes from the file).
void load_checkpoint(Dino *d, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die("cannot open checkpoint '%s': %s", path, strerror(errno));
    int32_t h[CKPT_HEADER];
    if (fread(h, sizeof(int32_t), CKPT_HEADER, f) != CKPT_HEADER) die("checkpoint '%s' is truncated (no complete header)", path);
    if (h[0] != CKPT_MAGIC) die("'%s' is not a dino.c checkpoint (wrong magic %d)", path, h[0]);
    if (h[1] != CKPT_VERSION) die("checkpoint '%s' has version %d; this dino.c reads version %d", path, h[1], CKPT_VERSION);
    if (h[2] != NUM_CONFIG_FIELDS) die("checkpoint '%s' has %d config fields, expected %d: corrupt header", path, h[2], NUM_CONFIG_FIELDS);
    Config c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) memcpy((char *)&c + config_fields[i].offset, &h[3 + i], 4);
    const char *err = config_error(&c);
    if (err != NULL) die("checkpoint '%s' holds a config that cannot work (%s): corrupt header", path, err);
    dino_build(d, &c);
    uint64_t n = (uint64_t)(uint32_t)h[CKPT_STATE + 5] | ((uint64_t)(uint32_t)h[CKPT_STATE + 6] << 32);
    if (n != d->num_params) die("checkpoint '%s' says %llu parameters, its config makes %zu: corrupt header", path, (unsigned long long)n, d->num_params);
    d->step = h[CKPT_STATE + 0];
    d->adam_steps = h[CKPT_STATE + 1];
    d->adam_steps_last = h[CKPT_STATE + 2];
    d->rng.state = (uint64_t)(uint32_t)h[CKPT_STATE + 3] | ((uint64_t)(uint32_t)h[CKPT_STATE + 4] << 32);
    size_t K = d->cfg.out_dim;
    int ok = fread(d->params, sizeof(float), n, f) == n && fread(d->teacher, sizeof(float), n, f) == n
          && fread(d->adam_m, sizeof(float), n, f) == n && fread(d->adam_v, sizeof(float), n, f) == n
          && fread(d->center, sizeof(float), K, f) == K;
    if (!ok) die("checkpoint '%s' is truncated (expected %zu bytes)", path, CKPT_HEADER * 4 + (4 * n + K) * 4);
    if (fgetc(f) != EOF) die("checkpoint '%s' is longer than its header says: corrupt or not a dino.c checkpoint", path);
    fclose(f);
}

// ----------------------------------------------------------------------------
// 6. the command line
#ifndef TESTING

// Sets config field `name` from text, strictly: the whole text must be a number.
static int set_config_field(Config *c, const char *name, const char *text) {
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) {
        if (strcmp(name, config_fields[i].name) != 0) continue;
        char *end;
        errno = 0;
        if (config_fields[i].is_float) {
            float v = strtof(text, &end);
            if (end == text || *end != '\0' || errno != 0 || !isfinite(v)) die("--%s expects a number, got '%s'", name, text);
            *config_float(c, i) = v;
        } else {
            long v = strtol(text, &end, 10);
            if (end == text || *end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX) die("--%s expects an integer, got '%s'", name, text);
            *config_int(c, i) = (int)v;
        }
        return 1;
    }
    return 0;
}

static void print_config(const Config *cfg) {
    Config c = *cfg;
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) {
        if (config_fields[i].is_float) printf("  --%-27s %-10g %s\n", config_fields[i].name, *config_float(&c, i), config_fields[i].help);
        else printf("  --%-27s %-10d %s\n", config_fields[i].name, *config_int(&c, i), config_fields[i].help);
    }
}

int main(int argc, char **argv) {
    Config c = default_config();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: ./dino info [--<config field> VALUE ...]\n"
               "  prints the configuration and the parameter layout (the order of a checkpoint)\n"
               "  (training on real images, `./dino train`, arrives with the next issue)\n"
               "config fields and defaults:\n");
        print_config(&c);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "info") != 0) die("unknown command '%s'; try ./dino --help", argv[1]);
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) die("unexpected argument '%s'; flags look like --dim 128", argv[i]);
        if (i + 1 >= argc) die("flag %s needs a value", argv[i]);
        if (!set_config_field(&c, argv[i] + 2, argv[i + 1])) die("unknown flag %s; ./dino --help lists them", argv[i]);
        i++;
    }
    Dino d;
    dino_build(&d, &c);
    print_config(&d.cfg);
    printf("parameters (student; the teacher, the gradients and both AdamW moments have the same layout):\n");
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        printf("  %2d %-10s %10zu  %s%s\n", i, param_info[i].name, d.param_sizes[i], param_info[i].torch_name,
               param_info[i].per_block ? " (stacked over blocks)" : "");
    printf("total %zu parameters (%.2f MB per copy)\n", d.num_params, d.num_params * 4.0 / 1e6);
    dino_free(&d);
    return 0;
}
#endif
