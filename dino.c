/*
dino.c: DINO (self-DIstillation with NO labels, Caron et al. 2021, arXiv 2104.14294)
in one readable C file: a Vision Transformer student and an EMA teacher that learn
image features without labels.

What is in here, in the order a reader of the paper meets it:
  1. small utilities (checked I/O and allocation, a seeded RNG, a timer)
  2. the layers, each forward followed by its backward: patch embedding, the position
     table with its bicubic resize, layernorm, GELU, the matrix product (where all the
     speed is: a blocked, register-tiled product next to the plain triple loop it must
     equal) and the linear layer, attention, the MLP, residual with drop path,
     L2-normalisation (also the weight-normalised last layer), the DINO loss
  3. the model: config, parameters in one contiguous block, activations, a transformer
     block (as the official Block), the backbone (ViT) and the DINO head, forward and backward
  4. the DINO training mechanics that are not layers: schedules, per-tensor gradient
     clipping, the frozen last layer, AdamW, the EMA teacher, the center
  5. checkpoints
  6. data sets: CIFAR-10/100 binary, MNIST IDX, folders of images, a synthetic set
  7. multi-crop augmentation
  8. features and k-NN evaluation
  9. the training loop
 10. looking inside a trained model: attention maps (the paper's figure 1), .npy feature
     files, the linear probe
 11. the command line (behind #ifndef TESTING, so test_dino.c can include this file)

What is not in here: no BLAS, no intrinsics, no autograd. Every backward pass is written
by hand next to its forward, checked against finite differences and against PyTorch
(test_dino.c, data/reference.py). OpenMP: 54 pragmas. 37 share loops among threads, over
rows, (image, head) pairs or tensors whose iterations write disjoint memory (where they
meet in a float sum, in a fixed order; k-NN's hit counts are integers, exact in any order),
so results do not depend on the number of threads; the other 17 (`omp simd`) ask the
compiler to vectorise a loop (a sum in vector lanes, also a fixed order), in builds with
OpenMP and without.

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
#include <sys/mman.h>
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

// Readers of files (data sets, checkpoints) do not exit: they return -1 and leave one line
// in data_error saying what is wrong with the file, so that the tests and the fuzzers
// (fuzz/) can feed them anything. The command line prints it with die().
static char data_error[1024];
static int data_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int data_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(data_error, sizeof(data_error), fmt, ap);
    va_end(ap);
    return -1;
}

// The size of an open file in bytes (-1 if it cannot be measured, e.g. a pipe); rewinds it.
static long file_size(FILE *f) {
    if (fseek(f, 0, SEEK_END) != 0) return -1;
    long n = ftell(f);
    if (fseek(f, 0, SEEK_SET) != 0) return -1;
    return n;
}

// Bytes asked of mallocCheck and callocCheck so far (never decreased): dino_build compares
// what a model asked for with the machine's memory, because Linux grants almost any request
// and the out-of-memory killer would end the run later without a word. (Nothing allocates
// inside a parallel loop, so a plain counter will do.)
static size_t bytes_requested = 0;

// Buffers of 2 MB and more are aligned to 2 MB and marked for transparent huge pages (Linux
// madvise; elsewhere plain malloc): the products read activations and weights with strides
// of kilobytes, and with 4 KB pages nearly every row they touch needs its own TLB entry
// (benchmark step 1344 -> 1224 ms, README "Performance").
static void *alloc_aligned(size_t size) {
#ifdef MADV_HUGEPAGE
    const size_t huge = (size_t)1 << 21;
    if (size >= huge) {
        size_t rounded = (size + huge - 1) / huge * huge;
        void *p = aligned_alloc(huge, rounded);
        if (p != NULL) madvise(p, rounded, MADV_HUGEPAGE); // a hint: if it fails, nothing else changes
        return p;
    }
#endif
    return malloc(size > 0 ? size : 1);
}

static void *malloc_check(size_t size, const char *file, int line) {
    bytes_requested += size;
    void *p = alloc_aligned(size);
    if (p == NULL) die("out of memory allocating %zu bytes [%s:%d]; try a smaller --batch or model", size, file, line);
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void *calloc_check(size_t n, size_t size, const char *file, int line) {
    bytes_requested += n * size;
    void *p = size != 0 && n > SIZE_MAX / size ? NULL : alloc_aligned(n * size);
    if (p == NULL) die("out of memory allocating %zu x %zu bytes [%s:%d]; try a smaller --batch or model", n, size, file, line);
    return memset(p, 0, n * size);
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

// Many buffers in one allocation, each given as where its pointer goes and how many floats
// it holds; each starts on a 64-byte boundary (a cache line), one of 0 floats is NULL. One
// free() of the returned block releases them all, so a list of buffers is written once.
typedef struct { float **ptr; size_t n; } Buffer;
static float *alloc_buffers(const Buffer *list, int count) {
    size_t total = 0;
    for (int i = 0; i < count; i++) total += (list[i].n + 15) / 16 * 16;
    float *block = (float *)mallocCheck(total * sizeof(float)), *next = block;
    for (int i = 0; i < count; i++) {
        *list[i].ptr = list[i].n > 0 ? next : NULL;
        next += (list[i].n + 15) / 16 * 16;
    }
    return block;
}

static int imin(int a, int b) { return a < b ? a : b; }

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Is every one of n floats finite (no NaN, no infinity)?
static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
    return 1;
}

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
// gradients of parameters and of the residual stream, which the caller zeroes first; the
// gradient of a layer's own input, which nothing else adds to, is written (=) instead, so
// that no buffer needs zeroing before it (a memset per layer less: 6% of a step, README).
// The speed is in one place, the matrix product (matmul_rows, further down); the layers
// around it are plain loops.

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
    // out, inp are (N, C); mean, rstd are (N), kept for the backward pass
    // y = (x - mean) / sqrt(var + eps) * weight + bias
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        #pragma omp simd reduction(+ : m)
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        float v = 0.0f;
        #pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + LN_EPS), *y = out + (size_t)n * C;
        for (int i = 0; i < C; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

#define LN_CHUNK 32 // rows per task of layernorm_backward
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    // forward: y = (x - mean) * rstd * weight + bias
    // dx += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dy * weight
    // dweight += sum over rows of dy * norm, dbias += sum of dy: each chunk of LN_CHUNK rows
    // sums its own rows while it has them in cache, and the chunks add their sums in chunk
    // order (ordered), so the result does not depend on the number of threads
    int chunks = (N + LN_CHUNK - 1) / LN_CHUNK;
    #pragma omp parallel for ordered schedule(static, 1)
    for (int ch = 0; ch < chunks; ch++) {
        float dw[C], db[C];
        for (int i = 0; i < C; i++) dw[i] = db[i] = 0.0f;
        for (int n = ch * LN_CHUNK; n < imin(N, (ch + 1) * LN_CHUNK); n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
            #pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
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
                dw[i] += dy[i] * norm;
                db[i] += dy[i];
            }
        }
        #pragma omp ordered
        for (int i = 0; i < C; i++) { dweight[i] += dw[i]; dbias[i] += db[i]; }
    }
}

// e^x for the softmaxes and the GELU, written so loops over it vectorise (libm's expf is a
// call the compiler cannot vectorise). x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts, Cody and Waite, so n ln2 is exact), e^r from its Taylor series to r^7 (error below
// 1e-8), 2^n built in the float's exponent bits. Relative error below 1e-7 for x in
// [-87, 88]; inputs outside are clamped (e^-87 is 1.6e-38, float's smallest normal).
static inline float exp_simd(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round(x / ln2): adding 1.5 * 2^23 drops the fraction
    float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    union { int32_t i; float f; } two_n = { ((int32_t)n + 127) << 23 };
    return p * two_n.f;
}

// GELU, the exact erf form of nn.GELU (not the tanh approximation): y = x Phi(x), Phi the
// standard normal CDF. Phi is computed from erfc's Chebyshev fit (Numerical Recipes' erfcc,
// relative error below 1.2e-7 everywhere, so also in the far negative tail where libm's
// 1 + erff(x) rounds to 0) and exp_simd: unlike calls to libm these are plain arithmetic the
// compiler vectorises, and the GELU passes were a sixth of a training step with erff.
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
static inline float normal_cdf(float x) {
    float a = fabsf(x) * INV_SQRT2;
    float t = 1.0f / (1.0f + 0.5f * a);
    float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f +
              t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    float half_erfc = 0.5f * t * exp_simd(p - a * a); // = Phi(-|x|)
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

static inline float gelu(float x) { return x * normal_cdf(x); }
// y = x Phi(x)  ->  dy/dx = Phi(x) + x phi(x), phi the standard normal density
static inline float gelu_grad(float x) { return normal_cdf(x) + x * INV_SQRT_2PI * exp_simd(-0.5f * x * x); }

// The GELU layer (nn.GELU). grad, if not NULL, gets gelu'(x) for the backward pass: the
// forward has Phi(x) at hand, where a backward from x would compute it again (keeping gelu'
// instead of x: 1373 -> 1293 ms per benchmark step, README).
void gelu_forward(float *restrict out, float *restrict grad, const float *restrict inp, size_t N) {
    if (grad == NULL) {
        #pragma omp parallel for simd simdlen(16)
        for (size_t i = 0; i < N; i++) out[i] = gelu(inp[i]);
    } else {
        #pragma omp parallel for simd simdlen(16)
        for (size_t i = 0; i < N; i++) { out[i] = gelu(inp[i]); grad[i] = gelu_grad(inp[i]); }
    }
}

void gelu_backward(float *dinp, const float *grad, const float *dout, size_t N) {
    // forward: y = gelu(x)  ->  dx = gelu'(x) dy, with grad = gelu'(x) from the forward.
    // Writes dinp, which may be dout (in place).
    #pragma omp parallel for simd simdlen(16)
    for (size_t i = 0; i < N; i++) dinp[i] = grad[i] * dout[i];
}

// ----------------------------------------------------------------------------
// The matrix product: all of dino.c's speed is in this section.
//
// Every product in dino.c, the linear layers' three and the attention's, is
//   C (M, N) = bias + A (M, K) B (K, N)    or, with accumulate,    C += A B
// with A, B and C read through strides, so that the attention reads q, k and v in place
// and the transposes of the backward passes (dout^T, a^T) are never copied:
//   A(i,k) = A[i*sai + k*sak],   B(k,j) = B[k*sbk + j*sbj],   C(i,j) = C[i*ldc + j].
// matmul_reference is the definition, a plain triple loop. matmul_rows computes the same in
// blocks: a thread takes MM_MC rows of C at a time; for each slice of MM_KC values of k and
// each strip of MM_NR columns it copies that piece of B into Bp (contiguous, zero padded past
// N), then sums every MM_MR x MM_NR tile of C in registers: acc is 6 x 64 floats = 24 AVX-512
// registers, and each k loads 64 floats of Bp once and uses them for 6 rows of A. The
// compiler vectorises the j loops (no intrinsics). Each element of C is summed by one thread
// in one order (k slices in order, k in order inside a slice) whatever the blocks and the
// number of threads, so results are bit-identical for any. test_dino.c compares the two.
#define MM_MR 6     // rows of the register tile
#define MM_NR 64    // columns of the register tile (4 vectors of 16 floats)
#define MM_KC 256   // k slice: Bp is KC x NR floats = 64 KB on the stack
#define MM_MC (84 * MM_MR)  // rows per work unit at most, 504 (its slice of A stays in L2); a multiple of MR

// Each C(i,j) one dot product over k. matmul_rows also uses it for the last one or two
// columns of a product (the attention's scores at 65 or 17 tokens), for which a strip of
// its own would be 16 columns wide.
static void matmul_reference(float *C, size_t ldc, const float *A, size_t sai, size_t sak, const float *B, size_t sbk,
                             size_t sbj, const float *bias, int accumulate, int M, int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const float *a = A + i * sai, *b = B + j * sbj;
            float dot = 0.0f;
            if (sak == 1 && sbk == 1) { // both contiguous in k (the attention's): plain vector loads
                #pragma omp simd simdlen(16) reduction(+ : dot)
                for (int k = 0; k < K; k++) dot += a[k] * b[k];
            } else {
                #pragma omp simd simdlen(16) reduction(+ : dot)
                for (int k = 0; k < K; k++) dot += a[k * sak] * b[k * sbk];
            }
            float *c = C + i * ldc + j;
            *c = (accumulate ? *c : bias != NULL ? bias[j] : 0.0f) + dot;
        }
}

// One register tile: rows c[0..mr-1] of C (at the tile's first column), nr columns, get
// init + rows a[0..MR-1] of A (k = 0 .. kc-1, step sak) times Bp (kc, W), Bp's rows MM_NR
// floats apart; init is C itself, or the bias (at the tile's first column; NULL: 0) when
// first is set. W is 64, 48, 32 or 16, a constant in each call, so the compiler unrolls j
// and keeps acc in registers: the last strip of a product narrower than 64 (in the
// attention: 16 score columns at T = 17, heads of 32 dimensions) costs one to three
// vectors per row, not four. acc starts as k = 0's products, not as zeros: an initialiser
// of the whole array is a call to memset in the narrow tiles (0.9% of a step).
static inline __attribute__((always_inline)) void tile_product(float *const c[MM_MR], int mr, int nr, const float *const a[MM_MR],
                                                               size_t sak, const float *Bp, int kc, int first, const float *bias, int W) {
    float acc[MM_MR][MM_NR];
    for (int r = 0; r < MM_MR; r++) {
        float ar = a[r][0];
        #pragma omp simd simdlen(16)
        for (int j = 0; j < W; j++) acc[r][j] = ar * Bp[j];
    }
    for (int k = 1; k < kc; k++) {
        const float *b = Bp + k * MM_NR;
        for (int r = 0; r < MM_MR; r++) {
            float ar = a[r][k * sak];
            #pragma omp simd simdlen(16)
            for (int j = 0; j < W; j++) acc[r][j] += ar * b[j];
        }
    }
    // one loop for the three cases: on its own, the plain copy c[j] = acc[r][j] is compiled
    // as an inline memcpy of 8-byte moves (GCC's idiom), a third of the attention's products
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[r][j] = (!first ? c[r][j] : bias != NULL ? bias[j] : 0.0f) + acc[r][j];
}

// Rows m0 .. m0+mc-1 of C (mc <= MM_MC), on the calling thread.
static void matmul_rows(float *C, size_t ldc, const float *A, size_t sai, size_t sak, const float *B, size_t sbk, size_t sbj,
                        const float *bias, int accumulate, int M, int N, int K, int m0, int mc) {
    int tail = N % 16 <= 2 ? N % 16 : 0, Nt = N - tail; // the last tail columns as dot products
    for (int k0 = 0; k0 < K; k0 += MM_KC) {
        int kc = imin(MM_KC, K - k0), first = !accumulate && k0 == 0;
        for (int n0 = 0; n0 < Nt; n0 += MM_NR) {
            float Bp[MM_KC * MM_NR]; // Bp[k][j] = B(k0 + k, n0 + j)
            int nr = imin(MM_NR, Nt - n0), W = (nr + 15) / 16 * 16; // W: nr rounded up to whole vectors
            for (int k = 0; k < kc; k++) {
                const float *brow = B + (k0 + k) * sbk + n0 * sbj;
                if (sbj == 1 && nr == MM_NR) { // a whole row of the strip, contiguous: copied a vector at a time
                    #pragma omp simd
                    for (int j = 0; j < MM_NR; j++) Bp[k * MM_NR + j] = brow[j];
                } else
                    for (int j = 0; j < nr; j++) Bp[k * MM_NR + j] = brow[j * sbj];
                for (int j = nr; j < W; j++) Bp[k * MM_NR + j] = 0.0f;
            }
            const float *b = bias != NULL ? bias + n0 : NULL; // the strip's columns of the bias
            for (int i0 = m0; i0 < m0 + mc; i0 += MM_MR) {
                const float *a[MM_MR];
                float *c[MM_MR];
                for (int r = 0; r < MM_MR; r++) { // rows past M read row M-1 (valid memory); their results are not stored
                    size_t row = imin(i0 + r, M - 1);
                    a[r] = A + row * sai + k0 * sak;
                    c[r] = C + row * ldc + n0;
                }
                int mr = imin(MM_MR, m0 + mc - i0);
                switch (W) {
                    case 64: tile_product(c, mr, nr, a, sak, Bp, kc, first, b, 64); break;
                    case 48: tile_product(c, mr, nr, a, sak, Bp, kc, first, b, 48); break;
                    case 32: tile_product(c, mr, nr, a, sak, Bp, kc, first, b, 32); break;
                    default: tile_product(c, mr, nr, a, sak, Bp, kc, first, b, 16); break;
                }
            }
        }
    }
    if (tail > 0)
        matmul_reference(C + m0 * ldc + Nt, ldc, A + m0 * sai, sai, sak, B + Nt * sbj, sbk, sbj, bias != NULL ? bias + Nt : NULL,
                         accumulate, mc, tail, K);
}

// The whole product on the calling thread: the attention's, one (image, head) per thread of
// its own parallel loop (a parallel region per small product would cost more than it).
static void matmul_serial(float *C, size_t ldc, const float *A, size_t sai, size_t sak, const float *B, size_t sbk, size_t sbj,
                          const float *bias, int accumulate, int M, int N, int K) {
    for (int m0 = 0; m0 < M; m0 += MM_MC) matmul_rows(C, ldc, A, sai, sak, B, sbk, sbj, bias, accumulate, M, N, K, m0, imin(MM_MC, M - m0));
}

// The whole product, its rows shared out among the threads in equal units of at most MM_MC
// rows, as many units as threads (or a multiple).
static void matmul_parallel(float *C, size_t ldc, const float *A, size_t sai, size_t sak, const float *B, size_t sbk, size_t sbj,
                            const float *bias, int accumulate, int M, int N, int K) {
    if (M <= 0) return;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int units = (M + MM_MC - 1) / MM_MC;
    units = (units + threads - 1) / threads * threads;
    int MC = ((M + units - 1) / units + MM_MR - 1) / MM_MR * MM_MR;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int m0 = 0; m0 < M; m0 += MC) matmul_rows(C, ldc, A, sai, sak, B, sbk, sbj, bias, accumulate, M, N, K, m0, imin(MC, M - m0));
}

// out (cols, rows) = in (rows, cols) transposed, in 32 x 32 tiles that stay in cache; inside
// a tile the writes run along rows of out (strided writes cost more than strided reads).
static void transpose(float *out, const float *in, int rows, int cols) {
    #pragma omp parallel for collapse(2)
    for (int j0 = 0; j0 < cols; j0 += 32)
        for (int i0 = 0; i0 < rows; i0 += 32)
            for (int j = j0; j < imin(j0 + 32, cols); j++)
                for (int i = i0; i < imin(i0 + 32, rows); i++) out[(size_t)j * rows + i] = in[(size_t)i * cols + j];
}

// ----------------------------------------------------------------------------
// (the end of the matrix product; the layers again)

// The linear layer, y = x W^T + b, the nn.Linear of PyTorch, W stored (out, in) as PyTorch
// stores it. The product reads B = W^T a row of OC floats at a time; rows of W^T are columns
// of W, so W is transposed once per call into a scratch buffer (1879 -> 1818 ms per
// benchmark step), which grows to the largest weight on the first step and is reused after.
static float *wt_scratch = NULL;
static size_t wt_capacity = 0;
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    // out is (N, OC), inp is (N, C), weight is (OC, C), bias is (OC) or NULL
    if ((size_t)C * OC > wt_capacity) {
        free(wt_scratch);
        wt_capacity = (size_t)C * OC;
        wt_scratch = (float *)mallocCheck(wt_capacity * sizeof(float));
    }
    transpose(wt_scratch, weight, OC, C); // (C, OC)
    matmul_parallel(out, OC, inp, C, 1, wt_scratch, OC, 1, bias, 0, N, OC, C);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    // forward: out[n,o] = bias[o] + sum_i inp[n,i] weight[o,i]
    //   dinp = dout weight (written; NULL: not needed, as for the images under the patch embedding)
    //   dweight += dout^T inp, dbias += the column sums of dout (NULL: a frozen weight; dbias NULL: no bias)
    if (dinp != NULL) matmul_parallel(dinp, C, dout, OC, 1, weight, C, 1, NULL, 0, N, C, OC);
    if (dweight != NULL) matmul_parallel(dweight, C, dout, 1, OC, inp, C, 1, NULL, 1, OC, C, N);
    if (dbias != NULL) {
        #pragma omp parallel for
        for (int o0 = 0; o0 < OC; o0 += 64) { // 64 columns per task, each summed over the rows in order
            int nc = imin(64, OC - o0);
            float sum[64];
            for (int o = 0; o < nc; o++) sum[o] = 0.0f;
            for (int n = 0; n < N; n++)
                for (int o = 0; o < nc; o++) sum[o] += dout[(size_t)n * OC + o0 + o];
            for (int o = 0; o < nc; o++) dbias[o0 + o] += sum[o];
        }
    }
}

// Multi-head self-attention (vision_transformer.py Attention), no mask: every token sees
// every token. qkv = x W_qkv^T + b holds for each token [q (NH heads x hs), k (...), v (...)],
// the layout of the official reshape (B, T, 3, NH, hs); per image and head a = softmax(q k^T
// / sqrt(hs)) and y = a v; then out = y W_proj^T + b. att keeps the probabilities a: the
// backward needs them, and the attention maps of the paper's figures are the CLS row of the
// last block's. Only the first Tq tokens are queries: Tq = T but in the last block, which
// asks for the CLS token's output only (block_forward). Shapes: inp (R, T, D), qkv (R, T, 3D),
// att (R, NH, Tq, T), atty and out (R, Tq, D).
void attention_forward(float *out, float *qkv, float *att, float *atty, const float *inp, const float *qkvw,
                       const float *qkvb, const float *projw, const float *projb, int R, int T, int Tq, int D, int NH) {
    int hs = D / NH;
    float scale = 1.0f / sqrtf((float)hs); // qk_scale = head_dim ** -0.5
    matmul_forward(qkv, inp, qkvw, qkvb, R * T, D, 3 * D);
    // Each (image, head) is a few small products on the thread that took it; they read q, k
    // and v in place through their strides (a row of q is 3D floats after the one before).
    #pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)r * T * 3 * D + h * hs, *k = q + D, *v = q + 2 * D;
            float *a = att + ((size_t)r * NH + h) * Tq * T, *y = atty + (size_t)r * Tq * D + h * hs;
            // s = q k^T (Tq, T), into a: B(k, j) = k[j][k], a row of k per column
            matmul_serial(a, T, q, 3 * D, 1, k, 1, 3 * D, NULL, 0, Tq, T, hs);
            // a = softmax(s * scale) row by row (each step for every row before the next step:
            // the rows' reductions then overlap in the processor instead of waiting on each
            // other, 3.9 -> 2.6 us per 65 x 65; and one division per row, then products, as
            // PyTorch's kernel does)
            float m[Tq], inv[Tq];
            for (int t = 0; t < Tq; t++) {
                float *row = a + (size_t)t * T, maxval = -INFINITY;
                #pragma omp simd simdlen(16) reduction(max : maxval)
                for (int t2 = 0; t2 < T; t2++) { row[t2] *= scale; maxval = row[t2] > maxval ? row[t2] : maxval; }
                m[t] = maxval;
            }
            for (int t = 0; t < Tq; t++) {
                float *row = a + (size_t)t * T, sum = 0.0f;
                #pragma omp simd simdlen(16) reduction(+ : sum)
                for (int t2 = 0; t2 < T; t2++) { row[t2] = exp_simd(row[t2] - m[t]); sum += row[t2]; }
                inv[t] = 1.0f / sum;
            }
            for (int t = 0; t < Tq; t++) {
                float *row = a + (size_t)t * T;
                #pragma omp simd simdlen(16)
                for (int t2 = 0; t2 < T; t2++) row[t2] *= inv[t];
            }
            // y = a v (Tq, hs), this head's columns of y
            matmul_serial(y, D, a, T, 1, v, 3 * D, 1, NULL, 0, Tq, hs, T);
        }
    }
    matmul_forward(out, atty, projw, projb, R * Tq, D, D);
}

void attention_backward(float *dinp, float *dqkvw, float *dqkvb, float *dprojw, float *dprojb, float *dqkv, float *datty,
                        const float *dout, const float *inp, const float *qkv, const float *att, const float *atty,
                        const float *qkvw, const float *projw, int R, int T, int Tq, int D, int NH) {
    // forward: qkv = inp W_qkv^T + b;  s = q k^T;  a = softmax(s * scale) by rows;  y = a v;
    // out = y W_proj^T + b. Writes dinp, and dqkv and datty (scratch, shaped as qkv and atty):
    // each (image, head) its own columns of dq, dk and dv; the rows of dq of tokens that were
    // no query are 0.
    int hs = D / NH;
    float scale = 1.0f / sqrtf((float)hs);
    matmul_backward(datty, dprojw, dprojb, dout, atty, projw, R * Tq, D, D);
    #pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)r * T * 3 * D + h * hs, *k = q + D, *v = q + 2 * D;
            float *dq = dqkv + (size_t)r * T * 3 * D + h * hs, *dk = dq + D, *dv = dq + 2 * D;
            const float *a = att + ((size_t)r * NH + h) * Tq * T, *dy = datty + (size_t)r * Tq * D + h * hs;
            float ds[Tq * T];
            // y = a v  ->  da = dy v^T (kept in ds),  dv = a^T dy
            matmul_serial(ds, T, dy, D, 1, v, 1, 3 * D, NULL, 0, Tq, T, hs);
            matmul_serial(dv, 3 * D, a, 1, T, dy, D, 1, NULL, 0, T, hs, Tq);
            // a = softmax(s * scale)  ->  ds = a (da - sum_t2 a da) * scale, row by row
            for (int t = 0; t < Tq; t++) {
                const float *arow = a + (size_t)t * T;
                float *row = ds + (size_t)t * T, dot = 0.0f;
                #pragma omp simd simdlen(16) reduction(+ : dot)
                for (int t2 = 0; t2 < T; t2++) dot += arow[t2] * row[t2];
                #pragma omp simd simdlen(16)
                for (int t2 = 0; t2 < T; t2++) row[t2] = arow[t2] * (row[t2] - dot) * scale;
            }
            // s = q k^T  ->  dq = ds k,  dk = ds^T q
            matmul_serial(dq, 3 * D, ds, T, 1, k, 3 * D, 1, NULL, 0, Tq, hs, T);
            for (int t = Tq; t < T; t++) memset(dq + (size_t)t * 3 * D, 0, hs * sizeof(float));
            matmul_serial(dk, 3 * D, ds, 1, T, q, 3 * D, 1, NULL, 0, T, hs, Tq);
        }
    }
    matmul_backward(dinp, dqkvw, dqkvb, dqkv, inp, qkvw, R * T, D, 3 * D);
}

// The MLP (vision_transformer.py Mlp): fc1, GELU, fc2. h is fc1's output and act = gelu(h);
// grad, if not NULL, gets gelu'(h) for the backward (gelu_forward). inp and out are (N, C),
// h, act and grad (N, H).
void mlp_forward(float *out, float *h, float *act, float *grad, const float *inp, const float *fc1w, const float *fc1b,
                 const float *fc2w, const float *fc2b, int N, int C, int H) {
    matmul_forward(h, inp, fc1w, fc1b, N, C, H);
    gelu_forward(act, grad, h, (size_t)N * H);
    matmul_forward(out, act, fc2w, fc2b, N, H, C);
}

void mlp_backward(float *dinp, float *dfc1w, float *dfc1b, float *dfc2w, float *dfc2b, float *dh, const float *dout,
                  const float *inp, const float *act, const float *grad, const float *fc1w, const float *fc2w, int N, int C, int H) {
    // forward: h = inp fc1w^T + fc1b;  act = gelu(h);  out = act fc2w^T + fc2b.
    // Writes dinp, and dh (scratch, N x H): first the gradient of act, then of h.
    matmul_backward(dh, dfc2w, dfc2b, dout, act, fc2w, N, H, C);
    gelu_backward(dh, grad, dh, (size_t)N * H);
    matmul_backward(dinp, dfc1w, dfc1b, dh, inp, fc1w, N, C, H);
}

// The residual connection with stochastic depth (drop path, the official DropPath):
// out = x + scale[r] * branch, one scale per image r: 0 for an image whose branch is
// dropped, 1/keep_prob for a kept one (the official drop_path computes x.div(keep_prob) *
// mask). scale NULL: no drop path (the teacher, and the student without it). x, branch and
// out are (R, TD).
void residual_forward(float *out, const float *x, const float *branch, const float *scale, int R, size_t TD) {
    #pragma omp parallel for
    for (int r = 0; r < R; r++) {
        float s = scale != NULL ? scale[r] : 1.0f;
        for (size_t i = (size_t)r * TD; i < (size_t)(r + 1) * TD; i++) out[i] = x[i] + s * branch[i];
    }
}

void residual_backward(float *dbranch, const float *dout, const float *scale, int R, size_t TD) {
    // forward: out = x + scale[r] * branch  ->  dbranch = scale[r] * dout (written), and
    // dx = dout, which the caller gets for free by keeping dout as the gradient of x
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
    #pragma omp simd reduction(max : maxval)
    for (int k = 0; k < K; k++) {
        out[k] = (x[k] - (sub != NULL ? sub[k] : 0.0f)) / temp;
        maxval = out[k] > maxval ? out[k] : maxval;
    }
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)
    for (int k = 0; k < K; k++) { out[k] = exp_simd(out[k] - maxval); sum += out[k]; }
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

    // the cross-entropy of each pair (teacher view iq, student view v) summed over the
    // images, the pairs in parallel; then the pairs' means added in one fixed order
    double term[2][ncrops];
    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int iq = 0; iq < 2; iq++)
        for (int v = 0; v < ncrops; v++) {
            term[iq][v] = 0.0;
            if (v == iq) continue; // the teacher and the student never see the same view
            for (int b = 0; b < B; b++) {
                const float *q = pt + ((size_t)iq * B + b) * K;
                const float *s = s_logits + ((size_t)v * B + b) * K;
                int rs = v * B + b;
                // -sum_k q_k log p_k, with log p_k = s_k / temp - logsumexp
                double ce = 0.0;
                #pragma omp simd reduction(+ : ce)
                for (int k = 0; k < K; k++) ce -= (double)q[k] * ((double)(s[k] / student_temp) - lse[rs]);
                term[iq][v] += ce;
            }
        }
    double total = 0.0, ent = 0.0;
    int nterms = 2 * ncrops - 2; // every (iq, v) but the two of a view with itself, whose term is 0
    for (int iq = 0; iq < 2; iq++)
        for (int v = 0; v < ncrops; v++) total += term[iq][v] / B;
    // the teacher's entropy, each row on one thread, the rows added in order
    #pragma omp parallel for ordered schedule(static, 1)
    for (int r = 0; r < RT; r++) {
        double sum = 0.0;
        for (int k = 0; k < K; k++) {
            double q = pt[(size_t)r * K + k];
            if (q > 0) sum -= q * log(q);
        }
        #pragma omp ordered
        ent += sum;
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
    // a local crop row pairs with both teacher globals. Writes every entry of ds_logits.
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
                ds[k] = g * norm;
            }
        }
    }
}

// The center (paper eq. 4): an EMA of the teacher's raw outputs over the batch, updated
// AFTER the loss was computed with the old center, from both global crops.
void update_center(float *center, const float *t_logits, float momentum, int RT, int K) {
    // each column summed over the rows in row order, a row at a time for all columns
    float sum[K];
    for (int k = 0; k < K; k++) sum[k] = 0.0f;
    for (int r = 0; r < RT; r++)
        for (int k = 0; k < K; k++) sum[k] += t_logits[(size_t)r * K + k];
    for (int k = 0; k < K; k++) center[k] = center[k] * momentum + (sum[k] / RT) * (1.0f - momentum);
}

// ----------------------------------------------------------------------------
// 3. the model

// Every size of the network and every value of the recipe, each given once in this list:
// its type, its name (the command-line flag, and the line of `./dino info`), its default,
// the interval of values it accepts and its help. The Config struct, the table config_fields
// and default_config are all made from it. The checkpoint header stores the fields in the
// list's order, so a field added later goes at the end (`center`): older checkpoints keep
// their header layout. PIXEL is an array of 3 floats, one per channel, with the flags
// NAME_r, NAME_g and NAME_b.
//
// The defaults: a small CIFAR-sized model and a recipe for CPU budgets of minutes, not the
// official 100+ epochs (README, "What 30 CPU minutes learn", has the measurements). Where it departs
// from main_dino.py: patch 8 (4x4 patches of a 32 px image: about 2.5x more images per
// second than patch 4), batch 16 (more, smaller steps learn more per image seen), lr 0.008
// per 256 images (16x), teacher momentum 0.99 (not 0.996), teacher temperature 0.04
// without warm-up, constant weight decay 0.04, no drop path; and the crops of Gani et al.
// 2022 for 32 px images: global crops of 70-100% of the area, 8 local crops of 20-50%.
//
// The intervals: "[)", 0, 1 reads [0, 1); INFINITY is no bound, and every float must also be
// finite. config_error checks each field against its interval, then the fields against each
// other (img_size and patch, dim and heads, ...). The sizes' bounds are far beyond what a CPU
// trains in a day; they keep every size product inside an int and the attention's per-thread
// scratch (a T x T matrix on the stack of attention_backward) inside a default 8 MB stack.
#define CONFIG_FIELDS(FIELD, PIXEL) \
    /* the Vision Transformer: P = patch, D = dim, L = depth, NH = heads, H = mlp_ratio * D */ \
    FIELD(int, img_size, 32, "[]", 1, 4096, "training resolution = global crop side (pixels)") \
    FIELD(int, channels, 3, "[]", 1, 3, "image channels: 1 or 3") /* 2: config_error */ \
    FIELD(int, patch, 8, "[]", 1, 4096, "patch side (pixels)") \
    FIELD(int, dim, 128, "[]", 1, 8192, "ViT width") \
    FIELD(int, depth, 4, "[]", 1, 256, "ViT blocks") \
    FIELD(int, heads, 4, "[)", 1, INFINITY, "attention heads") \
    FIELD(int, mlp_ratio, 4, "[]", 1, 64, "MLP hidden = mlp_ratio * dim") \
    /* the DINO head: HH = head_hidden, BN = bottleneck, K = out_dim */ \
    FIELD(int, head_hidden, 512, "[]", 1, 65536, "DINO head hidden size") \
    FIELD(int, bottleneck, 128, "[]", 1, 65536, "DINO head bottleneck size") \
    FIELD(int, out_dim, 1024, "[]", 2, 1048576, "K, the number of prototypes") \
    /* multi-crop and batch (2 global crops always; B = batch) */ \
    FIELD(int, n_local, 8, "[]", 0, 64, "local crops per image") \
    FIELD(int, local_size, 16, "()", -INFINITY, INFINITY, "local crop side (pixels)") /* used if n_local > 0 */ \
    FIELD(int, batch, 16, "[]", 1, 65536, "images per step") \
    /* the recipe: main_dino.py's arguments of the same names (drop_path: its drop_path_rate) */ \
    FIELD(float, drop_path, 0.0f, "[)", 0, 1, "stochastic depth rate (student only)") /* of the last block */ \
    FIELD(float, student_temp, 0.1f, "()", 0, INFINITY, "student temperature") \
    FIELD(float, center_momentum, 0.9f, "[]", 0, 1, "center EMA momentum") \
    FIELD(float, warmup_teacher_temp, 0.04f, "()", 0, INFINITY, "teacher temperature at the start") \
    FIELD(float, teacher_temp, 0.04f, "()", 0, INFINITY, "teacher temperature after warm-up") \
    FIELD(int, warmup_teacher_temp_epochs, 30, "[)", 0, INFINITY, "teacher temperature warm-up epochs") \
    FIELD(int, epochs, 100, "[)", 1, INFINITY, "epochs the schedules span") \
    FIELD(int, steps_per_epoch, 3125, "[)", 1, INFINITY, "iterations per epoch") \
    FIELD(float, lr, 0.008f, "[)", 0, INFINITY, "base learning rate for batch 256 (scaled by batch/256)") \
    FIELD(float, min_lr, 1e-6f, "[)", 0, INFINITY, "final learning rate of the cosine") \
    FIELD(int, warmup_epochs, 10, "[)", 0, INFINITY, "linear learning-rate warm-up epochs") \
    FIELD(float, weight_decay, 0.04f, "[)", 0, INFINITY, "weight decay at the start") \
    FIELD(float, weight_decay_end, 0.04f, "[)", 0, INFINITY, "weight decay at the end") \
    FIELD(float, momentum_teacher, 0.99f, "[]", 0, 1, "teacher EMA momentum at the start (cosine to 1)") \
    FIELD(float, clip_grad, 3.0f, "[)", 0, INFINITY, "per-tensor gradient norm clip (0 = off)") \
    FIELD(int, freeze_last_layer, 1, "[)", 0, INFINITY, "epochs with the head's last layer frozen") \
    FIELD(int, total_steps, 0, "[)", 0, INFINITY, "length of the schedules in steps (0 = epochs * steps_per_epoch)") \
    /* multi-crop augmentation (DataAugmentationDINO) */ \
    FIELD(float, global_scale_min, 0.7f, "(]", 0, 1, "global crops cover [this, 1] of the image area") \
    FIELD(float, local_scale_min, 0.2f, "(]", 0, 1, "local crops cover [this, local_scale_max] of the area") \
    FIELD(float, local_scale_max, 0.5f, "(]", 0, 1, "upper end of the local crop area") \
    /* the pixels' normalisation (in [0, 1] units): CIFAR-10's until the data's are measured */ \
    PIXEL(mean, 0.4914f, 0.4822f, 0.4465f, "pixel mean") \
    PIXEL(std, 0.2470f, 0.2435f, 0.2616f, "pixel std") /* > 0 in the channels used: config_error */ \
    FIELD(int, seed, 0, "()", -INFINITY, INFINITY, "random seed") \
    FIELD(int, center, 1, "[]", 0, 1, "centering of the teacher output: 1 = on, 0 = off (collapses)") /* eq. 4 */

#define CONFIG_DECLARE(type, name, def, ends, lo, hi, help) type name;
#define CONFIG_DECLARE_PIXEL(name, d0, d1, d2, help) float name[3];
typedef struct {
    CONFIG_FIELDS(CONFIG_DECLARE, CONFIG_DECLARE_PIXEL)
} Config;

// The table: a row per field, a PIXEL field giving three (of any value: config_error checks std).
typedef struct {
    const char *name; int is_float; size_t offset; const char *ends; double lo, hi; const char *help;
} ConfigField;
#define IS_FLOAT_int 0
#define IS_FLOAT_float 1
#define CONFIG_ROW(type, name, def, ends, lo, hi, help) \
    { #name, IS_FLOAT_##type, offsetof(Config, name), ends, lo, hi, help },
#define CONFIG_ROWS_PIXEL(name, d0, d1, d2, help) \
    { #name "_r", 1, offsetof(Config, name[0]), "()", -INFINITY, INFINITY, help ", channel 0 (set from the data)" }, \
    { #name "_g", 1, offsetof(Config, name[1]), "()", -INFINITY, INFINITY, help ", channel 1" }, \
    { #name "_b", 1, offsetof(Config, name[2]), "()", -INFINITY, INFINITY, help ", channel 2" },
static const ConfigField config_fields[] = { CONFIG_FIELDS(CONFIG_ROW, CONFIG_ROWS_PIXEL) };
#define NUM_CONFIG_FIELDS ARRAY_LEN(config_fields)
_Static_assert(NUM_CONFIG_FIELDS <= 61, "the checkpoint header holds at most 61 config fields");

static int config_index(const char *name) {
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) if (strcmp(config_fields[i].name, name) == 0) return i;
    die("no config field '%s'", name);
}

static int *config_int(Config *c, int i) { return (int *)((char *)c + config_fields[i].offset); }
static float *config_float(Config *c, int i) { return (float *)((char *)c + config_fields[i].offset); }

#define CONFIG_DEFAULT(type, name, def, ends, lo, hi, help) .name = def,
#define CONFIG_DEFAULT_PIXEL(name, d0, d1, d2, help) .name = { d0, d1, d2 },
Config default_config(void) {
    return (Config){ CONFIG_FIELDS(CONFIG_DEFAULT, CONFIG_DEFAULT_PIXEL) };
}

// Returns NULL when the config can work, else a message saying what is wrong, in terms of
// the flags that set it: first each field against its range, then the fields together.
const char *config_error(const Config *c) {
    static char msg[256];
    #define CHECK(cond, ...) do { if (!(cond)) { snprintf(msg, sizeof(msg), __VA_ARGS__); return msg; } } while (0)
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) {
        const ConfigField *f = &config_fields[i];
        const char *at = (const char *)c + f->offset, *ends = f->ends;
        double v = f->is_float ? *(const float *)at : *(const int *)at;
        int digits = f->is_float ? 6 : 10; // a float as %g, an int whole
        CHECK(!f->is_float || isfinite(v), "--%s must be a finite number, got %g", f->name, v);
        int above_lo = ends[0] == '(' ? v > f->lo : v >= f->lo;
        int below_hi = ends[1] == ')' ? v < f->hi : v <= f->hi;
        CHECK(above_lo || f->hi < INFINITY, "--%s must be %s %.10g, got %.*g", // no upper bound
              f->name, ends[0] == '(' ? ">" : ">=", f->lo, digits, v);
        CHECK(above_lo && below_hi, "--%s must be in %c%.10g, %.10g%c, got %.*g",
              f->name, ends[0], f->lo, f->hi, ends[1], digits, v);
    }
    CHECK(c->channels != 2, "--channels must be 1 or 3, got 2");
    CHECK(c->patch <= c->img_size, "--patch must be in [1, img_size=%d], got %d", c->img_size, c->patch);
    CHECK(c->img_size % c->patch == 0, "--img_size %d is not a multiple of --patch %d", c->img_size, c->patch);
    CHECK(c->img_size / c->patch <= 32,
          "--img_size %d / --patch %d gives %d x %d patches, more than the 32 x 32 dino.c allows; use a larger --patch",
          c->img_size, c->patch, c->img_size / c->patch, c->img_size / c->patch);
    CHECK(c->n_local == 0 || (c->local_size >= c->patch && c->local_size <= c->img_size && c->local_size % c->patch == 0),
          "--local_size %d must be a multiple of --patch %d and at most --img_size %d", c->local_size, c->patch, c->img_size);
    CHECK(c->dim % c->heads == 0, "--dim %d is not divisible by --heads %d", c->dim, c->heads);
    double tokens = (double)(c->img_size / c->patch) * (c->img_size / c->patch) + 1;
    CHECK((2.0 + c->n_local) * c->batch * tokens * c->dim < INT32_MAX, "--batch %d x %d crops x %.0f tokens x --dim %d is too large; "
          "use a smaller --batch or model", c->batch, 2 + c->n_local, tokens, c->dim);
    CHECK((double)c->epochs * c->steps_per_epoch <= INT32_MAX, "--epochs %d x --steps_per_epoch %d is more than 2^31 steps",
          c->epochs, c->steps_per_epoch);
    CHECK(c->warmup_epochs <= c->epochs, "--warmup_epochs %d must be in [0, epochs=%d]", c->warmup_epochs, c->epochs);
    CHECK(c->local_scale_min <= c->local_scale_max, "--local_scale_min %g must be at most --local_scale_max %g",
          c->local_scale_min, c->local_scale_max);
    for (int i = 0; i < c->channels; i++)
        CHECK(c->std[i] > 0.0f, "pixel std must be > 0 (channel %d has %g)", i, c->std[i]);
    #undef CHECK
    return NULL;
}

// The parameters of the student (and, in the same layout, of the teacher, the gradients and
// both AdamW moments) live in ONE contiguous block, the tensors in the order of this list,
// which is also their order in checkpoints. A row per tensor: its member of ParameterTensors,
// our name, the official PyTorch name (MultiCropWrapper(VisionTransformer, DINOHead), %d = the
// block), whether it is stacked over the L blocks, whether weight decay applies, and its size
// as the product of its shape. The official get_params_groups exempts biases and 1-D tensors
// (LayerNorm) from weight decay; cls_token (1,1,D) and pos_embed (1,T,D) are 3-D there and so
// ARE decayed. NP = G x G patches of CPP = C*P*P numbers.
#define PARAMETER_TENSORS(X) \
    X(cls, "cls_token", "backbone.cls_token", 0, 1, D) \
    X(pos, "pos_embed", "backbone.pos_embed", 0, 1, (1 + NP) * D) /* for the training resolution */ \
    X(patchw, "patch_w", "backbone.patch_embed.proj.weight", 0, 1, D * CPP) /* Conv2d(C, D, P, stride P) */ \
    X(patchb, "patch_b", "backbone.patch_embed.proj.bias", 0, 0, D) \
    X(ln1w, "ln1_w", "backbone.blocks.%d.norm1.weight", 1, 0, L * D) \
    X(ln1b, "ln1_b", "backbone.blocks.%d.norm1.bias", 1, 0, L * D) \
    X(qkvw, "qkv_w", "backbone.blocks.%d.attn.qkv.weight", 1, 1, L * 3 * D * D) \
    X(qkvb, "qkv_b", "backbone.blocks.%d.attn.qkv.bias", 1, 0, L * 3 * D) \
    X(projw, "proj_w", "backbone.blocks.%d.attn.proj.weight", 1, 1, L * D * D) \
    X(projb, "proj_b", "backbone.blocks.%d.attn.proj.bias", 1, 0, L * D) \
    X(ln2w, "ln2_w", "backbone.blocks.%d.norm2.weight", 1, 0, L * D) \
    X(ln2b, "ln2_b", "backbone.blocks.%d.norm2.bias", 1, 0, L * D) \
    X(fc1w, "fc1_w", "backbone.blocks.%d.mlp.fc1.weight", 1, 1, L * H * D) \
    X(fc1b, "fc1_b", "backbone.blocks.%d.mlp.fc1.bias", 1, 0, L * H) \
    X(fc2w, "fc2_w", "backbone.blocks.%d.mlp.fc2.weight", 1, 1, L * D * H) \
    X(fc2b, "fc2_b", "backbone.blocks.%d.mlp.fc2.bias", 1, 0, L * D) \
    X(lnfw, "norm_w", "backbone.norm.weight", 0, 0, D) /* the final norm */ \
    X(lnfb, "norm_b", "backbone.norm.bias", 0, 0, D) \
    X(head1w, "head1_w", "head.mlp.0.weight", 0, 1, HH * D) /* DINO head: Linear -> GELU */ \
    X(head1b, "head1_b", "head.mlp.0.bias", 0, 0, HH) \
    X(head2w, "head2_w", "head.mlp.2.weight", 0, 1, HH * HH) /* -> Linear -> GELU */ \
    X(head2b, "head2_b", "head.mlp.2.bias", 0, 0, HH) \
    X(head3w, "head3_w", "head.mlp.4.weight", 0, 1, BN * HH) /* -> Linear (bottleneck) */ \
    X(head3b, "head3_b", "head.mlp.4.bias", 0, 0, BN) \
    X(lastv, "last_v", "head.last_layer.weight_v", 0, 1, K * BN) /* weight-normalised; g is fixed at 1, not stored */

#define PARAM_ID(member, ...) P_##member,
enum { PARAMETER_TENSORS(PARAM_ID) NUM_PARAM_TENSORS };

// The tensors by name (p->qkvw) or by number (p->tensor[P_qkvw]): the same pointers.
#define PARAM_MEMBER(member, ...) float *member;
typedef union {
    struct { PARAMETER_TENSORS(PARAM_MEMBER) };
    float *tensor[NUM_PARAM_TENSORS];
} ParameterTensors;

#define PARAM_INFO(member, name, torch_name, per_block, decay, size) { name, torch_name, per_block, decay },
static const struct { const char *name, *torch_name; int per_block, decay; } param_info[] = {
    PARAMETER_TENSORS(PARAM_INFO)
};

void fill_param_sizes(size_t *sizes, const Config *c) {
    size_t D = c->dim, L = c->depth, H = (size_t)c->mlp_ratio * c->dim, G = c->img_size / c->patch, NP = G * G;
    size_t CPP = (size_t)c->channels * c->patch * c->patch, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
#define PARAM_SIZE(member, name, torch_name, per_block, decay, size) sizes[P_##member] = size;
    PARAMETER_TENSORS(PARAM_SIZE)
}

// Point the tensors into one block of memory, one after the other.
void point_parameters(ParameterTensors *p, float *block, const size_t *sizes) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { p->tensor[i] = block; block += sizes[i]; }
}

// The activations of one backbone pass over R crops of one resolution. The student has
// one per chunk of its images (global crops, then local), the teacher one (a chunk of the
// global crops at a time). Per block there is a slot of each tensor; with keep_all = 0
// (the teacher, inference) only one slot is kept and reused, as nothing runs backward: att
// then holds the LAST block's attention, which is what the attention maps need. In the last
// block only the CLS rows are computed after qkv and the attention scores (block_forward):
// its slot of atty, res2, ln2, fch_gelu, fch_grad and res3 holds R rows, and of att (R, NH, 1, T).
typedef struct {
    int R, S, G, NP, T, keep_all;
    float *patches;   // (R, NP, C*P*P) unfolded crops
    float *pe;        // (R, NP, D)     patch embeddings
    float *resize;    // (NP, NP_train) bicubic resize of the position table, NULL at the training resolution
    float *pos;       // (T, D)         position table for this resolution
    float *x0;        // (R, T, D)      tokens entering block 0
    float *ln1, *ln1_mean, *ln1_rstd; // (L, R, T, D), (L, R, T), (L, R, T): norm1's output and statistics
    float *qkv;       // (L, R, T, 3D)
    float *att;       // (L, R, NH, T, T) attention probabilities
    float *atty;      // (L, R, T, D)   attention output before the projection
    float *res2;      // (L, R, T, D)   residual stream after the attention branch
    float *ln2, *ln2_mean, *ln2_rstd; // as ln1, for norm2
    float *fch_gelu;  // (L, R, T, H)   gelu(h), h = fc1's output
    float *fch_grad;  // (L, R, T, H)   gelu'(h) for the backward (keep_all only)
    float *res3;      // (L, R, T, D)   residual stream after the MLP branch = block output
    float *branch;    // (R, T, D)      scratch: a residual branch's output before the add (the backward needs none)
    float *fch;       // (R, T, H)      scratch: h (the backward needs gelu'(h) only)
    float *x_cls;     // (R, D)         the CLS tokens entering the last block
    float *lnf_mean, *lnf_rstd; // (R), (R): the final norm's statistics
    float *memory;    // all of the above, one allocation (alloc_buffers)
} BackboneActs;

void backbone_acts_alloc(BackboneActs *a, const Config *c, int R, int S, int keep_all) {
    memset(a, 0, sizeof(*a));
    a->R = R; a->S = S; a->G = S / c->patch; a->NP = a->G * a->G; a->T = 1 + a->NP; a->keep_all = keep_all;
    size_t D = c->dim, H = (size_t)c->mlp_ratio * c->dim, NH = c->heads, CPP = (size_t)c->channels * c->patch * c->patch;
    size_t Ls = keep_all ? c->depth : 1, T = a->T, NP = a->NP, RT = R * T;
    int Gt = c->img_size / c->patch;
    Buffer list[] = {
        { &a->patches, R * NP * CPP }, { &a->pe, R * NP * D }, { &a->resize, a->G != Gt ? NP * Gt * Gt : 0 },
        { &a->pos, T * D }, { &a->x0, RT * D },
        { &a->ln1, Ls * RT * D }, { &a->ln1_mean, Ls * RT }, { &a->ln1_rstd, Ls * RT }, { &a->qkv, Ls * RT * 3 * D },
        { &a->att, Ls * R * NH * T * T }, { &a->atty, Ls * RT * D }, { &a->res2, Ls * RT * D },
        { &a->ln2, Ls * RT * D }, { &a->ln2_mean, Ls * RT }, { &a->ln2_rstd, Ls * RT }, { &a->fch_gelu, Ls * RT * H },
        { &a->fch_grad, keep_all ? Ls * RT * H : 0 }, { &a->res3, Ls * RT * D },
        { &a->branch, RT * D }, { &a->fch, RT * H }, { &a->x_cls, R * D }, { &a->lnf_mean, R }, { &a->lnf_rstd, R },
    };
    a->memory = alloc_buffers(list, ARRAY_LEN(list));
    if (a->resize != NULL) pos_resize_matrix(a->resize, Gt, a->G);
}

void backbone_acts_free(BackboneActs *a) {
    free(a->memory);
    memset(a, 0, sizeof(*a));
}

// One block's slot of the activations: each tensor of BackboneActs at block l.
typedef struct { float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch_gelu, *fch_grad, *res3; } BlockActs;
static BlockActs block_acts(const BackboneActs *a, const Config *c, int l) {
    size_t s = a->keep_all ? l : 0, RT = (size_t)a->R * a->T, D = c->dim, H = (size_t)c->mlp_ratio * c->dim;
    return (BlockActs){ a->ln1 + s * RT * D, a->ln1_mean + s * RT, a->ln1_rstd + s * RT, a->qkv + s * RT * 3 * D,
                        a->att + s * a->R * c->heads * a->T * a->T, a->atty + s * RT * D, a->res2 + s * RT * D,
                        a->ln2 + s * RT * D, a->ln2_mean + s * RT, a->ln2_rstd + s * RT, a->fch_gelu + s * RT * H,
                        a->keep_all ? a->fch_grad + s * RT * H : NULL, a->res3 + s * RT * D };
}

// One pre-norm transformer block (vision_transformer.py Block.forward):
//   x = x + drop_path(attn(norm1(x)))
//   x = x + drop_path(mlp(norm2(x)))
// x is the block's input (R, T, D), its output goes to the block's res3. dp_attn, dp_mlp:
// the drop path scale of each image for the two branches (NULL: no drop path).
static void block_forward(BackboneActs *a, const ParameterTensors *p, const Config *c, int l, const float *x,
                          const float *dp_attn, const float *dp_mlp) {
    int R = a->R, T = a->T, D = c->dim, H = c->mlp_ratio * c->dim, NH = c->heads;
    BlockActs b = block_acts(a, c, l);
    // The backbone's output is the CLS token of the last block (the final norm takes token
    // 0), so there the other tokens' rows would be computed and thrown away: the CLS token is
    // the only query (Tq = 1), and the projection, norm2 and the MLP run on its R rows
    // instead of R T. Keys and values still come from every token (qkv is one product for
    // all of them: the CLS token's q on its own measured within noise). The official code
    // computes every row; its CLS rows are these numbers. (Benchmark step 1520 -> 1354 ms.)
    int Tq = l == c->depth - 1 ? 1 : T;
    size_t RQ = (size_t)R * Tq;
    // x = x + drop_path(attn(norm1(x)))
    layernorm_forward(b.ln1, b.ln1_mean, b.ln1_rstd, x, p->ln1w + l * D, p->ln1b + l * D, R * T, D);
    attention_forward(a->branch, b.qkv, b.att, b.atty, b.ln1, p->qkvw + (size_t)l * 3 * D * D, p->qkvb + l * 3 * D,
                      p->projw + (size_t)l * D * D, p->projb + l * D, R, T, Tq, D, NH);
    if (Tq == 1) { // x of the CLS tokens
        for (int r = 0; r < R; r++) memcpy(a->x_cls + (size_t)r * D, x + (size_t)r * T * D, D * sizeof(float));
        x = a->x_cls;
    }
    residual_forward(b.res2, x, a->branch, dp_attn, R, (size_t)Tq * D);
    // x = x + drop_path(mlp(norm2(x)))
    layernorm_forward(b.ln2, b.ln2_mean, b.ln2_rstd, b.res2, p->ln2w + l * D, p->ln2b + l * D, RQ, D);
    mlp_forward(a->branch, a->fch, b.fch_gelu, b.fch_grad, b.ln2, p->fc1w + (size_t)l * H * D, p->fc1b + l * H,
                p->fc2w + (size_t)l * D * H, p->fc2b + l * D, RQ, D, H);
    residual_forward(b.res3, b.res2, a->branch, dp_mlp, R, (size_t)Tq * D);
}

// The Vision Transformer (vision_transformer.py VisionTransformer.forward): patch
// embedding, CLS token, position table, L pre-norm blocks, final norm; the output is the
// CLS token after the final norm, written to feat (R, D). dp_scale: the drop path scales
// of the student, (L, 2, dp_stride) with this pass's rows first; NULL = no drop path.
void backbone_forward(BackboneActs *a, const ParameterTensors *p, const Config *c, const float *imgs,
                      float *feat, const float *dp_scale, int dp_stride) {
    int R = a->R, T = a->T, D = c->dim, L = c->depth, CPP = c->channels * c->patch * c->patch;
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
    for (int l = 0; l < L; l++) {
        const float *dp = dp_scale != NULL ? dp_scale + (size_t)(2 * l) * dp_stride : NULL;
        block_forward(a, p, c, l, l == 0 ? a->x0 : block_acts(a, c, l - 1).res3, dp, dp != NULL ? dp + dp_stride : NULL);
    }
    // the final norm, of the CLS tokens (the last block's R rows; the official code norms
    // every token and then takes token 0: the same numbers)
    layernorm_forward(feat, a->lnf_mean, a->lnf_rstd, block_acts(a, c, L - 1).res3, p->lnfw, p->lnfb, R, D);
}

// Gradient buffers the backward pass reuses for every pass, sized for the largest.
typedef struct {
    float *dres;    // (RT, D)  gradient of the residual stream
    float *dbranch; // (RT, D)  gradient of a residual branch's output
    float *dln;     // (RT, D)  gradient of a norm's output
    float *datty;   // (RT, D)  gradient of the attention's output before the projection
    float *dqkv;    // (RT, 3D)
    float *dfch;    // (RT, H)
    float *dpos;    // (T, D)   gradient of a resized position table
    float *dcls;    // (R, D)   gradient of the last block's output (its CLS rows)
} BackwardScratch;

// block_forward backwards, line by line: the gradient of the block's output is in w->dres
// (the last block's: its R CLS rows, in w->dcls), and w->dres gets that of its input x.
static void block_backward(ParameterTensors *g, BackwardScratch *w, const BackboneActs *a, const ParameterTensors *p,
                           const Config *c, int l, const float *x, const float *dp_attn, const float *dp_mlp) {
    int R = a->R, T = a->T, D = c->dim, H = c->mlp_ratio * c->dim, NH = c->heads;
    BlockActs b = block_acts(a, c, l);
    int Tq = l == c->depth - 1 ? 1 : T; // the last block computed the CLS rows only (block_forward)
    size_t RQ = (size_t)R * Tq;
    float *dres = Tq == 1 ? w->dcls : w->dres;
    // x = x + drop_path(mlp(norm2(x))): dres carries on as the gradient of the x on the right
    residual_backward(w->dbranch, dres, dp_mlp, R, (size_t)Tq * D);
    mlp_backward(w->dln, g->fc1w + (size_t)l * H * D, g->fc1b + l * H, g->fc2w + (size_t)l * D * H, g->fc2b + l * D, w->dfch,
                 w->dbranch, b.ln2, b.fch_gelu, b.fch_grad, p->fc1w + (size_t)l * H * D, p->fc2w + (size_t)l * D * H, RQ, D, H);
    layernorm_backward(dres, g->ln2w + l * D, g->ln2b + l * D, w->dln, b.res2, p->ln2w + l * D, b.ln2_mean, b.ln2_rstd, RQ, D);
    // x = x + drop_path(attn(norm1(x))): the same
    residual_backward(w->dbranch, dres, dp_attn, R, (size_t)Tq * D);
    attention_backward(w->dln, g->qkvw + (size_t)l * 3 * D * D, g->qkvb + l * 3 * D, g->projw + (size_t)l * D * D,
                       g->projb + l * D, w->dqkv, w->datty, w->dbranch, b.ln1, b.qkv, b.att, b.atty,
                       p->qkvw + (size_t)l * 3 * D * D, p->projw + (size_t)l * D * D, R, T, Tq, D, NH);
    if (Tq == 1) { // from norm1 down every token has a gradient: the CLS rows', 0 for the others so far
        memset(w->dres, 0, (size_t)R * T * D * sizeof(float));
        for (int r = 0; r < R; r++) memcpy(w->dres + (size_t)r * T * D, w->dcls + (size_t)r * D, D * sizeof(float));
    }
    layernorm_backward(w->dres, g->ln1w + l * D, g->ln1b + l * D, w->dln, x, p->ln1w + l * D, b.ln1_mean, b.ln1_rstd, R * T, D);
}

void backbone_backward(ParameterTensors *g, BackwardScratch *w, const BackboneActs *a, const ParameterTensors *p,
                       const Config *c, const float *dfeat, const float *dp_scale, int dp_stride) {
    int R = a->R, T = a->T, D = c->dim, L = c->depth, CPP = c->channels * c->patch * c->patch;
    // feat = norm(x_L[:, 0])
    memset(w->dcls, 0, (size_t)R * D * sizeof(float));
    layernorm_backward(w->dcls, g->lnfw, g->lnfb, dfeat, block_acts(a, c, L - 1).res3, p->lnfw, a->lnf_mean, a->lnf_rstd, R, D);
    for (int l = L - 1; l >= 0; l--) {
        const float *dp = dp_scale != NULL ? dp_scale + (size_t)(2 * l) * dp_stride : NULL;
        block_backward(g, w, a, p, c, l, l == 0 ? a->x0 : block_acts(a, c, l - 1).res3, dp, dp != NULL ? dp + dp_stride : NULL);
    }
    // x0 = [cls, patches] + pos;  pos = resize(pos_train) for another resolution
    float *dpos = g->pos;
    if (a->resize != NULL) { dpos = w->dpos; memset(dpos, 0, (size_t)T * D * sizeof(float)); }
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
    float *h1, *h1g, *h1d;      // (R, HH) before GELU, after, and gelu' of it (backward only)
    float *h2, *h2g, *h2d;      // the same for the second layer
    float *z, *zn, *znorm;      // (R, BN), (R, BN), (R): bottleneck, normalised, its norm
    float *wn, *vnorm;          // (K, BN), (K): the normalised last-layer weight
    float *logits;              // (R, K)
    float *dzn, *dz, *dh1, *dh2, *dwn; // the backward's scratch (backward only): gradients of zn, z, h1, h2, wn
    float *memory;              // all of the above, one allocation (alloc_buffers)
} HeadActs;

// backward: the student's head, which keeps gelu' and scratch for its backward pass.
void head_acts_alloc(HeadActs *a, const Config *c, int R, int backward) {
    size_t HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    a->R = R;
    Buffer list[] = {
        { &a->h1, R * HH }, { &a->h1g, R * HH }, { &a->h1d, backward ? R * HH : 0 },
        { &a->h2, R * HH }, { &a->h2g, R * HH }, { &a->h2d, backward ? R * HH : 0 },
        { &a->z, R * BN }, { &a->zn, R * BN }, { &a->znorm, R },
        { &a->wn, K * BN }, { &a->vnorm, K }, { &a->logits, R * K },
        { &a->dzn, backward ? R * BN : 0 }, { &a->dz, backward ? R * BN : 0 }, { &a->dh1, backward ? R * HH : 0 },
        { &a->dh2, backward ? R * HH : 0 }, { &a->dwn, backward ? K * BN : 0 },
    };
    a->memory = alloc_buffers(list, ARRAY_LEN(list));
}

void head_forward(HeadActs *a, const ParameterTensors *p, const Config *c, const float *feat) {
    int R = a->R, D = c->dim, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    matmul_forward(a->h1, feat, p->head1w, p->head1b, R, D, HH);
    gelu_forward(a->h1g, a->h1d, a->h1, (size_t)R * HH);
    matmul_forward(a->h2, a->h1g, p->head2w, p->head2b, R, HH, HH);
    gelu_forward(a->h2g, a->h2d, a->h2, (size_t)R * HH);
    matmul_forward(a->z, a->h2g, p->head3w, p->head3b, R, HH, BN);
    l2norm_forward(a->zn, a->znorm, a->z, R, BN);     // x = nn.functional.normalize(x, dim=-1)
    l2norm_forward(a->wn, a->vnorm, p->lastv, K, BN); // weight_norm: w_k = g_k v_k / |v_k|, g = 1
    matmul_forward(a->logits, a->zn, a->wn, NULL, R, BN, K);
}

// last_frozen: the last layer is frozen this step, its gradient would be dropped unused
// (official: computed, then cancel_gradients_last_layer sets it to None), so it is not
// computed and g->lastv stays 0.
void head_backward(ParameterTensors *g, float *dfeat, const HeadActs *a, const ParameterTensors *p,
                   const Config *c, const float *feat, const float *dlogits, int last_frozen) {
    // forward: h1g = gelu(head1(feat));  h2g = gelu(head2(h1g));  z = head3(h2g);
    //          logits = (z / |z|) (v / |v|)^T.  dfeat is written.
    int R = a->R, D = c->dim, HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim;
    if (last_frozen)
        matmul_backward(a->dzn, NULL, NULL, dlogits, a->zn, a->wn, R, BN, K);
    else {
        memset(a->dwn, 0, (size_t)K * BN * sizeof(float));
        matmul_backward(a->dzn, a->dwn, NULL, dlogits, a->zn, a->wn, R, BN, K);
        l2norm_backward(g->lastv, a->dwn, a->wn, a->vnorm, K, BN);
    }
    memset(a->dz, 0, (size_t)R * BN * sizeof(float));
    l2norm_backward(a->dz, a->dzn, a->zn, a->znorm, R, BN);
    matmul_backward(a->dh2, g->head3w, g->head3b, a->dz, a->h2g, p->head3w, R, HH, BN);
    gelu_backward(a->dh2, a->h2d, a->dh2, (size_t)R * HH);
    matmul_backward(a->dh1, g->head2w, g->head2b, a->dh2, a->h1g, p->head2w, R, HH, HH);
    gelu_backward(a->dh1, a->h1d, a->dh1, (size_t)R * HH);
    matmul_backward(dfeat, g->head1w, g->head1b, a->dh1, feat, p->head1w, R, D, HH);
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
    BackboneActs t_global;              // the teacher's pass, a chunk of its images at a time (chunk_images)
    BackboneActs *s_chunks;             // the student's passes in chunks of images, the global crops' then the local crops'
    int n_chunks;
    HeadActs s_head, t_head;
    float *s_feat, *t_feat;             // (RS, D), (RT, D) backbone outputs, crop-major
    float *ps, *pt, *lse;               // (RS, K), (RT, K), (RS): loss probabilities
    float *dlogits, *dfeat;             // (RS, K), (RS, D)
    float *dp_scale;                    // (L, 2, RS) this step's drop path scales of the student
    BackwardScratch bw;
    float *memory;                      // the parameters, their copies and the buffers above (dino_build)
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
    int trunc[] = { P_cls, P_pos, P_qkvw, P_projw, P_fc1w, P_fc2w, P_head1w, P_head2w, P_head3w };
    for (int i = 0; i < ARRAY_LEN(trunc); i++)
        for (size_t j = 0; j < sizes[trunc[i]]; j++) p->tensor[trunc[i]][j] = rng_trunc_normal(rng, 0.02f);
    int zeros[] = { P_qkvb, P_projb, P_fc1b, P_fc2b, P_ln1b, P_ln2b, P_lnfb, P_head1b, P_head2b, P_head3b };
    for (int i = 0; i < ARRAY_LEN(zeros); i++) memset(p->tensor[zeros[i]], 0, sizes[zeros[i]] * sizeof(float));
    int ones[] = { P_ln1w, P_ln2w, P_lnfw };
    for (int i = 0; i < ARRAY_LEN(ones); i++)
        for (size_t j = 0; j < sizes[ones[i]]; j++) p->tensor[ones[i]][j] = 1.0f;
    int CPP = c->channels * c->patch * c->patch;
    init_uniform(p->patchw, sizes[P_patchw], CPP, rng);
    init_uniform(p->patchb, sizes[P_patchb], CPP, rng);
    init_uniform(p->lastv, sizes[P_lastv], c->bottleneck, rng);
}

// Both networks run their passes in equal chunks of images, at most chunk_rows tokens each:
// a chunk's activations and the backward pass's gradient buffers (about 40 MB at width 192)
// stay in the processor's cache from one layer to the next instead of going out to memory
// and back. The images are independent of each other (LayerNorm is per token), so the
// features are the same numbers; the weight gradients add up the chunks' sums one after the
// other (a fixed order, whatever the number of threads). In the benchmark's configuration,
// the teacher's 128 images and the student's 128 global crops in 2 chunks of 64, the
// student's 384 local crops in 2 of 192.
static int chunk_rows = 4608; // (the tests lower it)
// The images per chunk of a pass of R images of S x S pixels: the most that divides R and fits.
static int chunk_images(const Config *c, int R, int S) {
    int G = S / c->patch, T = 1 + G * G, n = R;
    while (n > 1 && (R % n != 0 || (size_t)n * T > (size_t)chunk_rows)) n--;
    return n;
}

// Allocates everything and initialises the student; the teacher starts as an exact copy.
void dino_build(Dino *d, const Config *cfg) {
    const char *err = config_error(cfg);
    if (err != NULL) die("bad config: %s", err);
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    const Config *c = &d->cfg;
    size_t bytes_before = bytes_requested;
    fill_param_sizes(d->param_sizes, c);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) d->num_params += d->param_sizes[i];
    int B = c->batch;
    d->RS = (2 + c->n_local) * B;
    d->RT = 2 * B;
    int ng = chunk_images(c, 2 * B, c->img_size), nl = c->n_local > 0 ? chunk_images(c, c->n_local * B, c->local_size) : 1;
    d->n_chunks = 2 * B / ng + c->n_local * B / nl;
    d->s_chunks = (BackboneActs *)mallocCheck(d->n_chunks * sizeof(BackboneActs));
    for (int i = 0; i < d->n_chunks; i++)
        if (i < 2 * B / ng) backbone_acts_alloc(&d->s_chunks[i], c, ng, c->img_size, 1);
        else backbone_acts_alloc(&d->s_chunks[i], c, nl, c->local_size, 1);
    backbone_acts_alloc(&d->t_global, c, ng, c->img_size, 0);
    head_acts_alloc(&d->s_head, c, d->RS, 1);
    head_acts_alloc(&d->t_head, c, d->RT, 0);
    // the parameters and their copies (one layout), the center, the features, the loss's
    // buffers, the drop path scales, and the backbone's backward scratch, sized for the
    // largest chunk of the student's passes
    size_t RTmax = 0, Tmax = 0, n = d->num_params, RS = d->RS, RT = d->RT, L = c->depth, D = c->dim, K = c->out_dim;
    size_t H = (size_t)c->mlp_ratio * D;
    for (int i = 0; i < d->n_chunks; i++) {
        const BackboneActs *a = &d->s_chunks[i];
        if ((size_t)a->R * a->T > RTmax) RTmax = (size_t)a->R * a->T;
        if ((size_t)a->T > Tmax) Tmax = a->T;
    }
    Buffer list[] = {
        { &d->params, n }, { &d->grads, n }, { &d->teacher, n }, { &d->adam_m, n }, { &d->adam_v, n },
        { &d->center, K }, { &d->s_feat, RS * D }, { &d->t_feat, RT * D },
        { &d->ps, RS * K }, { &d->pt, RT * K }, { &d->lse, RS }, { &d->dlogits, RS * K }, { &d->dfeat, RS * D },
        { &d->dp_scale, L * 2 * RS },
        { &d->bw.dres, RTmax * D }, { &d->bw.dbranch, RTmax * D }, { &d->bw.dln, RTmax * D },
        { &d->bw.datty, RTmax * D }, { &d->bw.dqkv, RTmax * 3 * D }, { &d->bw.dfch, RTmax * H },
        { &d->bw.dpos, Tmax * D }, { &d->bw.dcls, RS * D },
    };
    d->memory = alloc_buffers(list, ARRAY_LEN(list));
    // nothing has been written to yet (Linux hands out memory on first touch), so this is the
    // moment to say that it will not fit
    double need = (double)(bytes_requested - bytes_before), have = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE);
    if (have > 0 && need > have)
        die("this model needs %.1f GB for its parameters and activations, more than the %.1f GB of memory of this machine; "
            "use a smaller --batch or model", need / 1e9, have / 1e9);
    point_parameters(&d->p, d->params, d->param_sizes);
    point_parameters(&d->g, d->grads, d->param_sizes);
    point_parameters(&d->t, d->teacher, d->param_sizes);
    d->rng.state = (uint64_t)(uint32_t)c->seed * 0x9E3779B97F4A7C15ull + 1;
    init_parameters(&d->p, d->param_sizes, c, &d->rng);
    memcpy(d->teacher, d->params, n * sizeof(float)); // teacher = exact copy of the student
    // the gradients, the AdamW moments and the center start at zero
    memset(d->grads, 0, n * sizeof(float));
    memset(d->adam_m, 0, n * sizeof(float));
    memset(d->adam_v, 0, n * sizeof(float));
    memset(d->center, 0, K * sizeof(float));
}

void dino_free(Dino *d) {
    for (int i = 0; i < d->n_chunks; i++) backbone_acts_free(&d->s_chunks[i]);
    free(d->s_chunks);
    backbone_acts_free(&d->t_global);
    free(d->s_head.memory);
    free(d->t_head.memory);
    free(d->memory);
    memset(d, 0, sizeof(*d));
}

// The teacher sees only the 2 global crops (MultiCropWrapper on images[:2]).
// globals is (2B, C, S, S), crop-major: all first global crops, then all second ones.
void teacher_forward(Dino *d, const float *globals) {
    const Config *c = &d->cfg;
    int n = d->t_global.R; // images per chunk (chunk_images)
    size_t image = (size_t)c->channels * c->img_size * c->img_size;
    for (int i = 0; i < d->RT; i += n)
        backbone_forward(&d->t_global, &d->t, c, globals + i * image, d->t_feat + (size_t)i * c->dim, NULL, 0);
    head_forward(&d->t_head, &d->t, &d->cfg, d->t_feat);
}

// The student sees every crop. The backbone runs once per resolution (globals, then
// locals; each in chunks of images), the head once on all rows: MultiCropWrapper. locals
// is (NL*B, C, s, s). With drop_path, d->dp_scale holds this step's scales.
void student_forward(Dino *d, const float *globals, const float *locals, int drop_path) {
    const Config *c = &d->cfg;
    const float *dp = drop_path ? d->dp_scale : NULL;
    size_t global = (size_t)c->channels * c->img_size * c->img_size, local = (size_t)c->channels * c->local_size * c->local_size;
    for (int i = 0, first = 0; i < d->n_chunks; first += d->s_chunks[i].R, i++) { // first: the chunk's first row of s_feat
        const float *imgs = first < d->RT ? globals + first * global : locals + (first - d->RT) * local;
        backbone_forward(&d->s_chunks[i], &d->p, c, imgs, d->s_feat + (size_t)first * c->dim, dp ? dp + first : NULL, d->RS);
    }
    head_forward(&d->s_head, &d->p, c, d->s_feat);
}

// From d->dlogits to the student's gradients (accumulated into d->grads); with last_frozen
// the last layer's stays 0 (head_backward).
void student_backward(Dino *d, int drop_path, int last_frozen) {
    const Config *c = &d->cfg;
    const float *dp = drop_path ? d->dp_scale : NULL;
    head_backward(&d->g, d->dfeat, &d->s_head, &d->p, c, d->s_feat, d->dlogits, last_frozen);
    for (int i = 0, first = 0; i < d->n_chunks; first += d->s_chunks[i].R, i++)
        backbone_backward(&d->g, &d->bw, &d->s_chunks[i], &d->p, c, d->dfeat + (size_t)first * c->dim, dp ? dp + first : NULL,
                          d->RS);
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

// The schedules span total_steps iterations, or epochs * steps_per_epoch when it is 0.
int schedule_length(const Config *c) { return c->total_steps > 0 ? c->total_steps : c->epochs * c->steps_per_epoch; }

// The recipe's epochs as fractions of the schedule: the epoch that iteration it falls in,
// and the iterations of the first e epochs. With the schedule epochs * steps_per_epoch long
// these are it / steps_per_epoch and e * steps_per_epoch, as in main_dino.py; a run fitted
// to --steps or --minutes (total_steps) keeps each epoch-counted part at its share of the
// run exactly (a 10-epoch warm-up out of 100 is 10% of 150 steps: 15, and of 5 steps: 1).
int epoch_at(const Config *c, int it) { return (int)((int64_t)it * c->epochs / schedule_length(c)); }
int epoch_iters(const Config *c, int e) { return (int)llround((double)e * schedule_length(c) / c->epochs); }

// The values of every schedule at iteration it, set into d for the step and the log.
void set_schedules(Dino *d, int it) {
    const Config *c = &d->cfg;
    int total = schedule_length(c), epoch = epoch_at(c, it);
    d->lr = (float)cosine_schedule(c->lr * c->batch / 256.0, c->min_lr, total, epoch_iters(c, c->warmup_epochs), 0.0, it);
    d->wd = (float)cosine_schedule(c->weight_decay, c->weight_decay_end, total, 0, 0.0, it);
    d->momentum = (float)cosine_schedule(c->momentum_teacher, 1.0, total, 0, 0.0, it);
    // teacher temperature: linear warm-up per EPOCH, then constant (DINOLoss.teacher_temp_schedule)
    d->teacher_temp = epoch < c->warmup_teacher_temp_epochs
        ? (float)linspace_at(c->warmup_teacher_temp, c->teacher_temp, c->warmup_teacher_temp_epochs, epoch)
        : c->teacher_temp;
}

// utils.clip_gradients: each parameter tensor on its own (not one global norm); a tensor
// whose gradient norm exceeds clip is scaled by clip / (norm + 1e-6). Our per-block tensors
// are stacked, so each block's slice is one official tensor. clip 0: no clipping.
// The norms also check the gradients: returns 0 if one is NaN or infinite (its tensor's sum
// of squares is then not finite), and the caller stops the run.
int clip_gradients(Dino *d, float clip) {
    // the official tensors as (offset, size) in the gradient vector
    int depth = d->cfg.depth, nt = 0;
    size_t off[NUM_PARAM_TENSORS * depth], len[NUM_PARAM_TENSORS * depth], o = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        int slices = param_info[i].per_block ? depth : 1;
        for (int s = 0; s < slices; s++, nt++) {
            len[nt] = d->param_sizes[i] / slices;
            off[nt] = o;
            o += len[nt];
        }
    }
    // one thread sums each tensor, always in the same order (the simd lanes' partial sums,
    // then the lanes): the result does not depend on the threads
    float coef[nt];
    int finite = 1;
    #pragma omp parallel for schedule(dynamic, 1) reduction(&& : finite)
    for (int t = 0; t < nt; t++) {
        const float *g = d->grads + off[t];
        double ss = 0.0;
        #pragma omp simd reduction(+ : ss)
        for (size_t j = 0; j < len[t]; j++) ss += (double)g[j] * g[j];
        finite = finite && isfinite(ss);
        coef[t] = clip / ((float)sqrt(ss) + 1e-6f);
    }
    if (!finite) return 0;
    if (clip > 0.0f) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int t = 0; t < nt; t++)
            if (coef[t] < 1.0f)
                for (size_t j = 0; j < len[t]; j++) d->grads[off[t] + j] *= coef[t];
    }
    return 1;
}

// AdamW as torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8), the same float operations in
// the same order. Weight decay only on the tensors param_info marks. While the last layer
// is frozen (the first freeze_last_layer epochs) its gradient is dropped: AdamW does not
// touch it at all (no moments, no decay, no step count), as PyTorch does with p.grad = None.
void adamw_update(Dino *d, int freeze_last) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    d->adam_steps++;
    if (!freeze_last) d->adam_steps_last++;
    // one parallel region: every thread walks the tensors and takes its share of each
    #pragma omp parallel
    {
        size_t offset = 0;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            size_t n = d->param_sizes[i];
            float *p = d->params + offset, *g = d->grads + offset, *m = d->adam_m + offset, *v = d->adam_v + offset;
            offset += n;
            if (i == P_lastv && freeze_last) continue;
            int t = i == P_lastv ? d->adam_steps_last : d->adam_steps;
            double bias_correction1 = 1.0 - pow(beta1, t), bias_correction2 = 1.0 - pow(beta2, t);
            float decay = param_info[i].decay ? (float)(1.0 - (double)d->lr * d->wd) : 1.0f;
            float step_size = (float)(d->lr / bias_correction1), bc2_sqrt = (float)sqrt(bias_correction2);
            #pragma omp for nowait
            for (size_t j = 0; j < n; j++) {
                p[j] *= decay;                                   // param.mul_(1 - lr * wd)
                m[j] += (1.0f - beta1) * (g[j] - m[j]);          // exp_avg.lerp_(grad, 1 - beta1)
                v[j] = beta2 * v[j] + (1.0f - beta2) * g[j] * g[j];
                float denom = sqrtf(v[j]) / bc2_sqrt + eps;
                p[j] -= step_size * m[j] / denom;
            }
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
// Returns the loss; a non-finite loss or gradient returns NaN before the parameters are
// updated (the center has moved by then; the caller stops the run without saving).
float dino_step(Dino *d, const float *globals, const float *locals) {
    const Config *c = &d->cfg;
    int use_dp = c->drop_path > 0.0f;
    set_schedules(d, d->step);
    teacher_forward(d, globals);
    if (use_dp) sample_drop_path(d);
    student_forward(d, globals, locals, use_dp);
    // with centering off (--center 0, the collapse study) nothing is subtracted and the center never moves
    d->loss = dino_loss_forward(d->ps, d->pt, d->lse, &d->teacher_entropy, &d->kl, d->s_head.logits, d->t_head.logits,
                                c->center ? d->center : NULL, c->student_temp, d->teacher_temp, c->batch, 2 + c->n_local, c->out_dim);
    if (!isfinite(d->loss)) return d->loss;
    if (c->center) update_center(d->center, d->t_head.logits, c->center_momentum, d->RT, c->out_dim); // after the loss
    // the gradients sum over the passes (+=): zeroed first, by all threads (21 MB here)
    #pragma omp parallel for
    for (size_t i = 0; i < d->num_params; i++) d->grads[i] = 0.0f;
    dino_loss_backward(d->dlogits, d->ps, d->pt, c->student_temp, c->batch, 2 + c->n_local, c->out_dim);
    int last_frozen = epoch_at(c, d->step) < c->freeze_last_layer;
    student_backward(d, use_dp, last_frozen);
    if (!clip_gradients(d, c->clip_grad)) return NAN; // a gradient is not finite: nothing updated, the caller stops the run
    adamw_update(d, last_frozen);
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
//   order (floats stored by their bits; at most 61), header[64] step, [65] AdamW steps,
//   [66] AdamW steps of the last layer, [67..68] RNG state (low, high 32 bits),
//   [69..70] number of parameters N (low, high); the rest 0.
//   Then: student (N), teacher (N), AdamW m (N), AdamW v (N), center (K), all float32 in
//   the parameter order of param_info. Everything to continue training exactly.
#define CKPT_MAGIC 20210429
#define CKPT_VERSION 1
#define CKPT_HEADER 256
#define CKPT_STATE 64
#define CKPT_MIN_FIELDS 40 // the first version's config fields (before `center`)

// data_fail for a reader that has a file open: closes it, then fails with the message.
#define close_and_fail(f, ...) (fclose(f), data_fail(__VA_ARGS__))

// Is everything a checkpoint holds finite? Training checks before every save, so that a
// checkpoint on disk is always one training can continue from: one that is not is corrupt.
static int state_finite(const Dino *d) {
    size_t n = d->num_params;
    return all_finite(d->params, n) && all_finite(d->teacher, n) && all_finite(d->adam_m, n) && all_finite(d->adam_v, n)
        && all_finite(d->center, d->cfg.out_dim);
}

// The header, then the tensors, written to path.tmp, flushed to disk, then renamed over path:
// a kill at any moment leaves either the old checkpoint or the new one, never half of one.
void save_checkpoint(const Dino *d, const char *path) {
    int32_t h[CKPT_HEADER] = { CKPT_MAGIC, CKPT_VERSION, NUM_CONFIG_FIELDS }, *state = h + CKPT_STATE; // the rest 0
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) memcpy(&h[3 + i], (const char *)&d->cfg + config_fields[i].offset, 4);
    uint64_t n = d->num_params;
    state[0] = d->step;
    state[1] = d->adam_steps;
    state[2] = d->adam_steps_last;
    memcpy(&state[3], &d->rng.state, 8); // 64 bits in two int32, low then high (little-endian)
    memcpy(&state[5], &n, 8);
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) die("checkpoint path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) die("cannot write checkpoint '%s': %s; is the output directory writable?", tmp, strerror(errno));
    int ok = fwrite(h, sizeof(int32_t), CKPT_HEADER, f) == CKPT_HEADER
          && fwrite(d->params, sizeof(float), n, f) == n
          && fwrite(d->teacher, sizeof(float), n, f) == n
          && fwrite(d->adam_m, sizeof(float), n, f) == n
          && fwrite(d->adam_v, sizeof(float), n, f) == n
          && fwrite(d->center, sizeof(float), d->cfg.out_dim, f) == (size_t)d->cfg.out_dim
          && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) {
        remove(tmp);
        die("writing checkpoint '%s' failed: %s (disk full?); the previous checkpoint is untouched: free some space, then "
            "continue with --resume %s", tmp, strerror(err), path);
    }
    if (rename(tmp, path) != 0) { err = errno; remove(tmp); die("cannot rename '%s' to '%s': %s", tmp, path, strerror(err)); }
}

// Reads a checkpoint into d, building the model its header describes. Everything is checked
// before anything is allocated: the magic, the version, a config that can work, the state,
// and the file's size against the size that config implies. So a truncated or corrupt
// file is refused with what is wrong with it, and a corrupt header cannot make us allocate
// whatever it says. Returns 0, or -1 with the reason in data_error (d is then not built).
int checkpoint_read(Dino *d, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return data_fail("cannot open checkpoint '%s': %s; a run writes it as DIR/model.bin", path, strerror(errno));
    int32_t h[CKPT_HEADER];
    long size = file_size(f);
    if (size < CKPT_HEADER * 4 || fread(h, sizeof(int32_t), CKPT_HEADER, f) != CKPT_HEADER)
        return close_and_fail(f, "checkpoint '%s' is truncated: %ld bytes, less than its %d-byte header; "
                              "use an earlier copy", path, size, CKPT_HEADER * 4);
    if (h[0] != CKPT_MAGIC)
        return close_and_fail(f, "'%s' is not a dino.c checkpoint (magic %d, expected %d); "
                              "pass the model.bin a run wrote", path, h[0], CKPT_MAGIC);
    if (h[1] != CKPT_VERSION)
        return close_and_fail(f, "checkpoint '%s' has version %d, this dino.c reads version %d; "
                              "use the dino.c that wrote it", path, h[1], CKPT_VERSION);
    const char *bad = NULL; // what is wrong with the header, if anything
    // config fields are only ever appended: a checkpoint from before a field existed has
    // fewer, and the missing ones keep their defaults (e.g. center = 1)
    Config c = default_config();
    if (h[2] < CKPT_MIN_FIELDS || h[2] > NUM_CONFIG_FIELDS) bad = "the number of config fields";
    else {
        for (int i = 0; i < h[2]; i++) memcpy((char *)&c + config_fields[i].offset, &h[3 + i], 4);
        bad = config_error(&c);
    }
    const int32_t *state = h + CKPT_STATE;
    if (bad == NULL && (state[0] < 0 || state[1] < 0 || state[2] < 0 || state[2] > state[1])) bad = "the step counts";
    if (bad != NULL)
        return close_and_fail(f, "checkpoint '%s' has a corrupt header (%s); use an earlier copy", path, bad);
    // its size, from the config alone
    size_t sizes[NUM_PARAM_TENSORS], n = 0, K = c.out_dim;
    fill_param_sizes(sizes, &c);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += sizes[i];
    uint64_t n_header;
    memcpy(&n_header, &state[5], 8);
    if (n_header != n)
        return close_and_fail(f, "checkpoint '%s' has a corrupt header (%llu parameters, its config makes %zu); "
                              "use an earlier copy", path, (unsigned long long)n_header, n);
    double expected = CKPT_HEADER * 4.0 + (4.0 * n + K) * 4.0;
    if ((double)size != expected)
        return close_and_fail(f, "checkpoint '%s' holds %ld bytes, its header promises %.0f: %s; use an earlier copy",
                              path, size, expected, size < expected ? "truncated (copied while it was being written?)"
                                                                    : "corrupt, or not a dino.c checkpoint");
    dino_build(d, &c);
    d->step = state[0];
    d->adam_steps = state[1];
    d->adam_steps_last = state[2];
    memcpy(&d->rng.state, &state[3], 8);
    int ok = fread(d->params, sizeof(float), n, f) == n && fread(d->teacher, sizeof(float), n, f) == n
          && fread(d->adam_m, sizeof(float), n, f) == n && fread(d->adam_v, sizeof(float), n, f) == n
          && fread(d->center, sizeof(float), K, f) == K;
    fclose(f);
    if (!ok) { dino_free(d); return data_fail("checkpoint '%s': read failed (did it change while being read?)", path); }
    if (!state_finite(d)) {
        dino_free(d);
        return data_fail("checkpoint '%s' holds non-finite numbers: it is corrupt; use an earlier copy", path);
    }
    return 0;
}

// The same for the command line: a bad checkpoint ends the program with the reason.
void load_checkpoint(Dino *d, const char *path) {
    if (checkpoint_read(d, path) != 0) die("%s", data_error);
}

// ----------------------------------------------------------------------------
// 6. data sets
//
// Every data set is held in memory as 8-bit pixels (n, C, S, S) plus labels when it has
// them. Loaders return 0, or -1 with the reason in data_error (see data_fail).

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Two formats stay off: stb_image 2.27 (Debian 12's libstb-dev) misreads broken PNM headers
// and 16-bit PNM data (fuzz/ found both) and loops for ever on a truncated run-length HDR
// file (fixed, like the others, in stb_image 2.28). Neither is a format data sets come in.
#define STBI_NO_HDR
#define STBI_NO_PNM
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
#include <dirent.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/resource.h>

typedef struct {
    int n, C, S;      // images, channels, side (images are square)
    uint8_t *pixels;  // (n, C, S, S)
    int *labels;      // (n) class indices, or NULL when the data set has no labels
    uint8_t *masks;   // (n, S, S) 1 on the object's pixels: the synthetic set's shapes (all 0 for its
                      // textures, which fill the image); NULL for every other data set
    int nclasses;
    int bad_images;   // image-folder files stb_image could not read (skipped only on request)
} Dataset;

void dataset_free(Dataset *ds) { free(ds->pixels); free(ds->labels); free(ds->masks); memset(ds, 0, sizeof(*ds)); }

// Makes room for `more` images of C channels and side S; the first images set C and S.
static int dataset_grow(Dataset *ds, size_t more, int C, int S, int labelled) {
    if (ds->n == 0 && ds->pixels == NULL) { ds->C = C; ds->S = S; }
    if (ds->C != C || ds->S != S) return data_fail("mixing images of %dx%dx%d with %dx%dx%d", C, S, S, ds->C, ds->S, ds->S);
    if ((ds->labels != NULL) != labelled && ds->n > 0) return data_fail("mixing labelled and unlabelled files");
    size_t total = (size_t)ds->n + more, img = (size_t)C * S * S;
    if (total > INT32_MAX) return data_fail("too many images (%zu)", total);
    uint8_t *p = (uint8_t *)realloc(ds->pixels, total * img);
    if (p == NULL) return data_fail("out of memory for %zu images", total);
    ds->pixels = p;
    if (labelled) {
        int *l = (int *)realloc(ds->labels, total * sizeof(int));
        if (l == NULL) return data_fail("out of memory for %zu labels", total);
        ds->labels = l;
    }
    return 0;
}

// CIFAR-10 and CIFAR-100 binary: records of label byte(s) then 3072 pixel bytes (the
// 32x32 red plane, then green, then blue). CIFAR-100 has 2 label bytes: coarse, fine;
// we use the fine label.
int load_cifar_file(Dataset *ds, const char *path, int label_bytes) {
    int nclasses = label_bytes == 1 ? 10 : 100;
    size_t rec = label_bytes + 3072;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return data_fail("cannot open '%s': %s", path, strerror(errno));
    long size = file_size(f);
    if (size <= 0 || size % rec != 0)
        return close_and_fail(f, "'%s' is not a CIFAR-%d binary file: its size %ld is not a multiple of %zu bytes "
                              "(truncated?); download it again", path, nclasses, size, rec);
    size_t n = size / rec;
    if (dataset_grow(ds, n, 3, 32, 1) != 0) { fclose(f); return -1; }
    for (size_t i = 0; i < n; i++) {
        uint8_t labels[2], *pixels = ds->pixels + (size_t)ds->n * 3072;
        if (fread(labels, 1, label_bytes, f) != (size_t)label_bytes || fread(pixels, 1, 3072, f) != 3072)
            return close_and_fail(f, "'%s': read failed at record %zu", path, i);
        int label = labels[label_bytes - 1];
        if (label >= nclasses)
            return close_and_fail(f, "'%s': record %zu has label %d, so it is not a CIFAR-%d file (corrupt? CIFAR-100 "
                                  "files must be named train.bin / test.bin)", path, i, label, nclasses);
        ds->labels[ds->n++] = label;
    }
    fclose(f);
    ds->nclasses = nclasses;
    return 0;
}

static uint32_t read_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// MNIST / Fashion-MNIST IDX: images magic 0x00000803, then count, rows, cols (big-endian
// int32), then the bytes; labels magic 0x00000801, count, bytes. labels_path may be NULL.
int load_idx(Dataset *ds, const char *images_path, const char *labels_path) {
    FILE *f = fopen(images_path, "rb");
    if (f == NULL) return data_fail("cannot open '%s': %s", images_path, strerror(errno));
    uint8_t h[16];
    long size = file_size(f);
    if (fread(h, 1, 16, f) != 16 || read_be32(h) != 0x803)
        return close_and_fail(f, "'%s' is not an IDX image file (magic 0x00000803 expected; gzipped? unpack it first)",
                              images_path);
    uint32_t n = read_be32(h + 4), rows = read_be32(h + 8), cols = read_be32(h + 12);
    if (rows != cols || rows == 0 || rows > 4096 || n == 0 || n > INT32_MAX)
        return close_and_fail(f, "'%s': unsupported IDX shape %u x %u x %u (square images expected)",
                              images_path, n, rows, cols);
    size_t bytes = (size_t)n * rows * cols;
    if (size != 16 + (long)bytes)
        return close_and_fail(f, "'%s' holds %ld bytes, its header promises %ld: truncated or corrupt; "
                              "download it again", images_path, size, 16 + (long)bytes);
    int base = ds->n;
    if (dataset_grow(ds, n, 1, rows, labels_path != NULL) != 0) { fclose(f); return -1; }
    if (fread(ds->pixels + (size_t)base * rows * cols, 1, bytes, f) != bytes)
        return close_and_fail(f, "'%s': read failed", images_path);
    fclose(f);
    if (labels_path != NULL) {
        f = fopen(labels_path, "rb");
        if (f == NULL) return data_fail("cannot open labels '%s': %s", labels_path, strerror(errno));
        size = file_size(f);
        if (fread(h, 1, 8, f) != 8 || read_be32(h) != 0x801)
            return close_and_fail(f, "'%s' is not an IDX label file (magic 0x00000801)", labels_path);
        if (read_be32(h + 4) != n || size != 8 + (long)n)
            return close_and_fail(f, "'%s' has %u labels (%ld bytes) for %u images: truncated, or not the labels "
                                  "of those images", labels_path, read_be32(h + 4), size, n);
        for (uint32_t i = 0; i < n; i++) {
            int label = fgetc(f); // 0..255
            if (label == EOF) return close_and_fail(f, "'%s': read failed", labels_path);
            ds->labels[base + i] = label;
            if (label + 1 > ds->nclasses) ds->nclasses = label + 1;
        }
        fclose(f);
    }
    ds->n = base + n;
    return 0;
}

static int is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISREG(st.st_mode); }

// An IDX image file and its labels, if the file of the standard name is next to it
// (train-images-idx3-ubyte: train-labels-idx1-ubyte).
static int load_idx_pair(Dataset *ds, const char *images_path) {
    char labels[4096];
    snprintf(labels, sizeof(labels), "%s", images_path);
    char *base = strrchr(labels, '/') ? strrchr(labels, '/') + 1 : labels, *at = strstr(base, "images-idx3-ubyte");
    if (at != NULL) memcpy(at, "labels-idx1", 11);
    return load_idx(ds, images_path, at != NULL && is_file(labels) ? labels : NULL);
}

// The names in a directory (no dot files), sorted (alphasort is strcmp in the C locale, and
// nothing here sets another); dirs_only picks subdirectories or files. NULL if it cannot be read.
static char **list_dir(const char *dir, int dirs_only, int *count) {
    struct dirent **entries;
    int n = scandir(dir, &entries, NULL, alphasort);
    *count = 0;
    if (n < 0) return NULL;
    char **names = (char **)mallocCheck(n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, entries[i]->d_name);
        int keep = entries[i]->d_name[0] != '.' && (dirs_only ? is_dir(path) : is_file(path));
        if (keep) names[(*count)++] = strdup(entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    return names;
}

static void free_list(char **names, int n) { for (int i = 0; i < n; i++) free(names[i]); free(names); }

// Square-crop the centre of an image and resize it to S x S with stb_image_resize, C channels.
static void center_square_resize(uint8_t *out /* (C, S, S) */, const uint8_t *img /* (h, w, C) */, int w, int h, int C, int S) {
    int side = w < h ? w : h, x0 = (w - side) / 2, y0 = (h - side) / 2;
    uint8_t *tmp = (uint8_t *)mallocCheck((size_t)S * S * C);
    stbir_resize_uint8(img + ((size_t)y0 * w + x0) * C, side, side, w * C, tmp, S, S, S * C, C);
    for (int c = 0; c < C; c++) // interleaved (y, x, c) to planar (c, y, x)
        for (int i = 0; i < S * S; i++) out[(size_t)c * S * S + i] = tmp[(size_t)i * C + c];
    free(tmp);
}

// stb_image 2.27 (Debian 12's libstb-dev) writes past a Huffman table when a JPEG's DHT
// segment declares more than 256 codes (nothings/stb#1289, fixed in stb_image 2.28; fuzz/
// found it). So we walk a JPEG's segments first, the way stb_image does, and refuse such a
// file. Returns NULL, or what is wrong with the file.
static const char *jpeg_check(const uint8_t *p, size_t n) {
    if (n < 2 || p[0] != 0xFF) return NULL;    // not a JPEG
    size_t i = 1;
    while (i < n && p[i] == 0xFF) i++;          // stb_image allows fill bytes before SOI
    if (i >= n || p[i] != 0xD8) return NULL;    // not a JPEG
    i++;
    while (i + 1 < n) {
        if (p[i] != 0xFF || p[i + 1] == 0xFF) { i++; continue; } // entropy-coded data, junk, fill bytes
        int m = p[i + 1];
        i += 2;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; // a stuffed 0xFF, TEM, RSTn, SOI: no length
        if (m == 0xD9 || i + 2 > n) break;                                // EOI
        size_t len = (size_t)p[i] << 8 | p[i + 1];
        if (m == 0xC4) { // DHT: tables of 1 byte (class, id), 16 code counts, then the codes
            long left = (long)len - 2;
            for (size_t t = i + 2; left > 0;) {
                int codes = 0;
                for (size_t k = t + 1; k < t + 17; k++) codes += k < n ? p[k] : 0;
                if (codes > 256) return "a JPEG Huffman table of more than 256 codes";
                t += 17 + codes;
                left -= 17 + codes;
            }
        }
        i += len;
    }
    return NULL;
}

// stb_image 2.27 also allocates whatever a PNG's IDAT chunk says it holds before reading it
// (fuzz/ found a 219-byte file that asked for 1.4 GB; 2.28 caps it). As we hold the whole
// file, a chunk that runs past its end is refused first. Returns NULL, or what is wrong.
static const char *png_check(const uint8_t *p, size_t n) {
    static const uint8_t signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    if (n < 8 || memcmp(p, signature, 8) != 0) return NULL; // not a PNG
    for (size_t i = 8; i + 8 <= n;) {
        size_t len = (size_t)p[i] << 24 | (size_t)p[i + 1] << 16 | (size_t)p[i + 2] << 8 | p[i + 3];
        if (len > n - i - 8) return "a PNG chunk longer than the rest of the file (truncated?)";
        if (memcmp(p + i + 4, "IEND", 4) == 0) break;
        i += 12 + len; // length, type, data, CRC
    }
    return NULL;
}

// Decodes one image file to C channels with stb_image; or returns NULL and says why. Besides
// the checks above, and both found by fuzz/: the file goes to stb_image only if its header
// asks for at most max_image_pixels (a few bytes can ask for gigabytes), and an image of 0
// pixels, which stb_image returns for some broken headers, is refused.
static double max_image_pixels = 1e8; // 100 megapixels; fuzz/ lowers it so that every input decodes fast
static uint8_t *read_image(const char *path, int C, int *w, int *h, const char **why) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) { *why = strerror(errno); return NULL; }
    long size = file_size(f);
    if (size < 0 || size > (1L << 30)) { fclose(f); *why = "not a file of at most 1 GB"; return NULL; }
    uint8_t *bytes = (uint8_t *)mallocCheck(size);
    size_t n = fread(bytes, 1, size, f);
    fclose(f);
    int channels;
    uint8_t *img = NULL;
    *why = n != (size_t)size ? "read failed" : jpeg_check(bytes, n);
    if (*why == NULL) *why = png_check(bytes, n);
    static char too_large[96];
    if (*why == NULL && stbi_info_from_memory(bytes, (int)n, w, h, &channels) && (double)*w * *h > max_image_pixels) {
        snprintf(too_large, sizeof(too_large), "%d x %d pixels, more than %.0f megapixels", *w, *h, max_image_pixels / 1e6);
        *why = too_large;
    }
    if (*why == NULL) {
        img = stbi_load_from_memory(bytes, (int)n, w, h, &channels, C);
        if (img == NULL) *why = stbi_failure_reason();
        else if (*w < 1 || *h < 1) { stbi_image_free(img); img = NULL; *why = "no pixels"; }
    }
    free(bytes);
    return img;
}

// A folder of class subfolders of images (any format stb_image reads). The class is the
// subfolder, in sorted order. Images are centre-cropped to a square and resized to S.
// An image stb_image cannot read is reported by name; with skip_bad it is counted and
// left out, otherwise loading fails.
int load_image_folder(Dataset *ds, const char *dir, int C, int S, int skip_bad) {
    int nclasses;
    char **classes = list_dir(dir, 1, &nclasses);
    if (classes == NULL) return data_fail("cannot read directory '%s': %s", dir, strerror(errno));
    if (nclasses == 0) { free(classes); return data_fail("'%s' has no class subfolders (expected DIR/<class>/<image files>)", dir); }
    if (nclasses > 100000) { free_list(classes, nclasses); return data_fail("'%s' has too many subfolders", dir); }
    int status = 0;
    for (int k = 0; k < nclasses && status == 0; k++) {
        char cdir[4096], path[8192];
        snprintf(cdir, sizeof(cdir), "%s/%s", dir, classes[k]);
        int nfiles;
        char **files = list_dir(cdir, 0, &nfiles);
        if (files == NULL) status = data_fail("cannot read directory '%s'", cdir);
        for (int i = 0; i < nfiles && status == 0; i++) {
            snprintf(path, sizeof(path), "%s/%s", cdir, files[i]);
            int w, h;
            const char *why = NULL;
            uint8_t *img = read_image(path, C, &w, &h, &why);
            ds->bad_images += img == NULL;
            if (img == NULL && !skip_bad)
                status = data_fail("cannot read image '%s' (%s); remove it, or pass --skip-bad-images to train on "
                                   "the others", path, why);
            else if (img == NULL) fprintf(stderr, "warning: skipping '%s': stb_image cannot read it (%s)\n", path, why);
            else if (dataset_grow(ds, 1, C, S, 1) != 0) status = -1;
            else {
                center_square_resize(ds->pixels + (size_t)ds->n * C * S * S, img, w, h, C, S);
                ds->labels[ds->n++] = k;
            }
            stbi_image_free(img);
        }
        free_list(files, nfiles);
    }
    free_list(classes, nclasses);
    if (status != 0) return status;
    if (ds->n == 0) return data_fail("'%s' holds no readable images (%d unreadable); expected DIR/<class>/<image files>", dir, ds->bad_images);
    ds->nclasses = nclasses;
    if (ds->bad_images > 0) fprintf(stderr, "warning: skipped %d unreadable image(s) in '%s'\n", ds->bad_images, dir);
    return 0;
}

// A built-in labelled data set, generated from a seed: 32x32 RGB, 10 classes of shapes
// and textures. Colour, position, scale, rotation, background and noise vary at random,
// so nearest neighbours on raw pixels do badly and only a model that learned the shapes
// clusters them. Image i is generated from (seed, i) alone.
enum { SYN_DISC, SYN_SQUARE, SYN_TRIANGLE, SYN_RING, SYN_CROSS, SYN_STAR, SYN_FRAME, SYN_STRIPES, SYN_CHECKER, SYN_DOTS, SYN_CLASSES };

static Rng rng_stream(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    Rng r = { a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull };
    rng_next(&r);
    r.state ^= (c + 0x8CB92BA72F3D8DD7ull) * 0x94D049BB133111EBull;
    rng_next(&r);
    r.state ^= (d + 0x2545F4914F6CDD1Dull) * 0xD6E8FEB86659FD93ull;
    rng_next(&r);
    return r;
}

// Is point (u, v), in the shape's own frame (unit size, centred), inside shape k?
static int synthetic_inside(int k, float u, float v, float p) {
    float r = sqrtf(u * u + v * v), au = fabsf(u), av = fabsf(v);
    switch (k) {
        case SYN_DISC: return r < 1.0f;
        case SYN_SQUARE: return au < 0.8f && av < 0.8f;
        case SYN_TRIANGLE: return v < 0.7f && v > -0.9f + 2.2f * au; // apex up
        case SYN_RING: return r < 1.0f && r > 0.55f;
        case SYN_CROSS: return (au < 0.3f && av < 1.0f) || (av < 0.3f && au < 1.0f);
        case SYN_STAR: { float a = atan2f(v, u); return r < 0.45f + 0.55f * powf(fabsf(cosf(2.5f * a)), 3.0f); }
        case SYN_FRAME: return au < 0.9f && av < 0.9f && (au > 0.55f || av > 0.55f);
        case SYN_STRIPES: return sinf(u * p) > 0.0f;
        case SYN_CHECKER: return (sinf(u * p) > 0.0f) != (sinf(v * p) > 0.0f);
        case SYN_DOTS: return sinf(u * p) * sinf(v * p) > 0.35f;
    }
    return 0;
}

// mask, if not NULL, gets the object: 1 on the pixels the shape covers at least half of, 0
// elsewhere and everywhere in a texture (the paper's Table 4 measures attention against it).
void synthetic_image(uint8_t *out /* (3, 32, 32) */, int *label, uint8_t *mask /* (32, 32) */, uint64_t seed, uint64_t index) {
    const int S = 32;
    Rng r = rng_stream(seed, index, 77, 0);
    int k = (int)(rng_next(&r) % SYN_CLASSES);
    // Colours vary the way DINO's colour augmentation varies them (brightness, contrast, a
    // tint of any hue), so colour says nothing about the class and nothing stable about the
    // image either: foreground and background are two grey levels at least 0.35 apart,
    // tinted by one random hue of random strength.
    float lum_fg, lum_bg;
    do { lum_fg = rng_uniform(&r); lum_bg = rng_uniform(&r); } while (fabsf(lum_fg - lum_bg) < 0.35f);
    float hue = 6.2831853f * rng_uniform(&r), sat = 0.3f * rng_uniform(&r), tint[3];
    for (int c = 0; c < 3; c++) tint[c] = sat * cosf(hue - 2.0943951f * c);
    int texture = k >= SYN_STRIPES;
    float scale = texture ? 1.0f : 7.0f + 6.0f * rng_uniform(&r);        // shape radius in pixels
    // a shape lies wholly inside the image; a texture fills it, at a random phase
    float cx = texture ? S * rng_uniform(&r) : scale + (S - 2 * scale) * rng_uniform(&r);
    float cy = texture ? S * rng_uniform(&r) : scale + (S - 2 * scale) * rng_uniform(&r);
    float angle = (texture ? 1.57f : 0.7f) * (rng_uniform(&r) - 0.5f); // +-45 degrees for textures, +-20 for shapes
    float ca = cosf(angle), sa = sinf(angle);
    float period = 0.7f + 0.5f * rng_uniform(&r);                         // texture frequency
    float gdir = 6.2831853f * rng_uniform(&r), gamp = 0.2f * rng_uniform(&r), noise = 0.02f + 0.04f * rng_uniform(&r);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            // 2x2 supersampling for smooth edges
            float cover = 0.0f;
            for (int sy = 0; sy < 2; sy++)
                for (int sx = 0; sx < 2; sx++) {
                    float px = x + 0.25f + 0.5f * sx - cx, py = y + 0.25f + 0.5f * sy - cy;
                    float u = (ca * px + sa * py) / scale, v = (-sa * px + ca * py) / scale;
                    cover += 0.25f * synthetic_inside(k, u, v, period);
                }
            if (mask != NULL) mask[y * S + x] = !texture && cover >= 0.5f;
            float g = gamp * ((x - 16) * cosf(gdir) + (y - 16) * sinf(gdir)) / 22.0f; // background gradient
            float lum = cover * lum_fg + (1 - cover) * (lum_bg + g);
            for (int c = 0; c < 3; c++) {
                float val = lum * (1.0f + tint[c]) + noise * rng_normal(&r);
                out[(size_t)c * S * S + y * S + x] = (uint8_t)lrintf(fminf(1.0f, fmaxf(0.0f, val)) * 255.0f);
            }
        }
    *label = k;
}

// n images starting at index `first` (so a test split is a disjoint range of the same stream).
int make_synthetic(Dataset *ds, int n, uint64_t seed, uint64_t first) {
    if (n <= 0) return data_fail("the synthetic data set needs --synthetic-n > 0");
    if (dataset_grow(ds, n, 3, 32, 1) != 0) return -1;
    uint8_t *masks = (uint8_t *)realloc(ds->masks, ((size_t)ds->n + n) * 1024);
    if (masks == NULL) return data_fail("out of memory for %d object masks", ds->n + n);
    ds->masks = masks;
    #pragma omp parallel for
    for (int i = 0; i < n; i++)
        synthetic_image(ds->pixels + (size_t)(ds->n + i) * 3072, &ds->labels[ds->n + i], ds->masks + (size_t)(ds->n + i) * 1024,
                        seed, first + i);
    ds->n += n;
    ds->nclasses = SYN_CLASSES;
    return 0;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return a != NULL && b != NULL && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Opens any supported data set. path is:
//   "synthetic"                    the built-in set (train: images 0..n-1, test: a disjoint range)
//   a CIFAR .bin file              CIFAR-10 (1 label byte) or CIFAR-100 (2; names train.bin/test.bin)
//   a CIFAR-10 directory           train: data_batch_1..5.bin; test: test_batch.bin
//   a CIFAR-100 directory          train.bin / test.bin
//   an IDX image file              MNIST layout; labels found next to it by the standard name
//   an MNIST directory             train-images-idx3-ubyte (+labels) / t10k-images-idx3-ubyte
//   any other directory            class subfolders of images
// A training split skips the file `exclude` (a test file inside the same directory).
int dataset_open(Dataset *ds, const char *path, int test_split, const char *exclude, int C, int S, int synthetic_n, int skip_bad) {
    memset(ds, 0, sizeof(*ds));
    char p[4096];
    if (strcmp(path, "synthetic") == 0)
        return make_synthetic(ds, test_split ? (synthetic_n / 5 > 0 ? synthetic_n / 5 : 1) : synthetic_n, 1234, test_split ? 1u << 30 : 0);
    if (is_file(path)) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path, *ext = strrchr(base, '.');
        if (ext != NULL && ext > base && strcmp(ext, ".bin") == 0) // CIFAR-100 by its file names, CIFAR-10 otherwise
            return load_cifar_file(ds, path, strcmp(base, "train.bin") == 0 || strcmp(base, "test.bin") == 0 ? 2 : 1);
        if (strstr(base, "idx3-ubyte") != NULL) return load_idx_pair(ds, path);
        return data_fail("'%s': unknown data format (expected a CIFAR .bin, an IDX file, a directory, or 'synthetic')", path);
    }
    if (!is_dir(path)) return data_fail("data path '%s' does not exist; check it, or try --data synthetic", path);
    char batch1[4096], test_batch[4096];
    snprintf(batch1, sizeof(batch1), "%s/data_batch_1.bin", path);
    snprintf(test_batch, sizeof(test_batch), "%s/test_batch.bin", path);
    if (is_file(batch1) || is_file(test_batch)) { // CIFAR-10
        if (test_split) {
            if (!is_file(test_batch)) return data_fail("'%s' has no test_batch.bin; pass --test with a held-out file (e.g. %s/data_batch_5.bin)", path, path);
            return load_cifar_file(ds, test_batch, 1);
        }
        for (int i = 1; i <= 5; i++) {
            snprintf(p, sizeof(p), "%s/data_batch_%d.bin", path, i);
            if (!is_file(p) || same_file(p, exclude)) continue;
            if (load_cifar_file(ds, p, 1) != 0) return -1;
        }
        return ds->n > 0 ? 0 : data_fail("'%s': no CIFAR-10 training batches left", path);
    }
    snprintf(p, sizeof(p), "%s/%s.bin", path, test_split ? "test" : "train");
    if (is_file(p)) return load_cifar_file(ds, p, 2);
    snprintf(p, sizeof(p), "%s/%s-images-idx3-ubyte", path, test_split ? "t10k" : "train");
    if (is_file(p)) return load_idx_pair(ds, p);
    return load_image_folder(ds, path, C, S, skip_bad);
}

// Per-channel mean and std of the pixels in [0, 1] units, from up to 10000 images.
void dataset_stats(const Dataset *ds, float *mean, float *std) {
    size_t n = ds->n < 10000 ? ds->n : 10000, SS = (size_t)ds->S * ds->S;
    for (int c = 0; c < ds->C; c++) {
        double s = 0.0, s2 = 0.0;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = ds->pixels + ((size_t)i * ds->C + c) * SS;
            for (size_t j = 0; j < SS; j++) { double v = p[j] / 255.0; s += v; s2 += v * v; }
        }
        double m = s / (n * SS), var = s2 / (n * SS) - m * m;
        mean[c] = (float)m;
        std[c] = (float)sqrt(var > 1e-8 ? var : 1e-8);
    }
}

// ----------------------------------------------------------------------------
// 7. multi-crop augmentation (main_dino.py DataAugmentationDINO)
//
// Each image gives 2 global crops at the training resolution and n_local local crops at
// local_size, each with its own random draws. Every crop: RandomResizedCrop (bicubic),
// horizontal flip (p 0.5), colour jitter (p 0.8), grayscale (p 0.2), Gaussian blur (p 1.0
// for global crop 1, 0.1 for global crop 2, 0.5 for local crops), solarisation (global
// crop 2 only, p 0.2), then normalisation with the data set's mean and std. 1-channel data
// skips the colour operations (saturation, hue, grayscale). Each (step, image, crop) has
// its own random stream, so the crops do not depend on the number of threads.
//
// A crop's random draws (draw_crop) are kept apart from the operations (apply_crop), so
// that test_dino.c can check the draws' ranges and probabilities alone, and apply every
// operation with fixed draws against torchvision (data/augment_reference.py). Each
// operation is torchvision's (transforms.functional resized_crop, hflip, adjust_*,
// rgb_to_grayscale, gaussian_blur, solarize, normalize) on a float image in [0, 1]. The
// official pipeline runs on uint8 PIL images, which round every result to a multiple of
// 1/255; we keep floats.

// The random draws of one crop. An operation that is off draws nothing more: its fields stay 0.
typedef struct {
    float area, aspect;     // RandomResizedCrop: area fraction and aspect ratio drawn (0, 0: 10 tries failed)
    int top, left, h, w;    // the box it cuts, in pixels of the source image
    int flip;               // RandomHorizontalFlip
    int jitter;             // RandomApply(ColorJitter)
    int order[4];           // ColorJitter's torch.randperm(4): 0 brightness, 1 contrast, 2 saturation, 3 hue
    float brightness, contrast, saturation, hue; // its factors
    int gray;               // RandomGrayscale
    int blur;               // utils.GaussianBlur
    float sigma;            // its standard deviation, in pixels of the crop
    int solarize;           // utils.Solarization
} CropDraws;

// torchvision RandomResizedCrop.get_params: an area fraction from [scale_min, scale_max]
// and an aspect ratio log-uniform in [3/4, 4/3], rounded to a box (Python's round and
// lrintf both round halves to even); 10 tries, then the whole image (the fallback for a
// square image).
static void draw_crop_box(CropDraws *d, int S, float scale_min, float scale_max, Rng *r) {
    float area = (float)S * S;
    for (int attempt = 0; attempt < 10; attempt++) {
        float fraction = scale_min + (scale_max - scale_min) * rng_uniform(r);
        float logr = logf(3.0f / 4.0f) + (logf(4.0f / 3.0f) - logf(3.0f / 4.0f)) * rng_uniform(r);
        float target = area * fraction, aspect = expf(logr);
        int w = (int)lrintf(sqrtf(target * aspect)), h = (int)lrintf(sqrtf(target / aspect));
        if (w > 0 && h > 0 && w <= S && h <= S) {
            d->area = fraction; d->aspect = aspect; d->h = h; d->w = w;
            d->top = (int)(rng_next(r) % (uint64_t)(S - h + 1));
            d->left = (int)(rng_next(r) % (uint64_t)(S - w + 1));
            return;
        }
    }
    d->top = d->left = 0; d->h = d->w = S;
}

// Everything random about one crop of an S x S source to s x s, in the order the official
// transforms draw it. kind: 0 = global crop 1, 1 = global crop 2, 2 = local crop.
void draw_crop(CropDraws *d, int C, int S, int s, int kind, const Config *cfg, Rng *r) {
    memset(d, 0, sizeof(*d));
    float smin = kind < 2 ? cfg->global_scale_min : cfg->local_scale_min, smax = kind < 2 ? 1.0f : cfg->local_scale_max;
    draw_crop_box(d, S, smin, smax, r);
    d->flip = rng_uniform(r) < 0.5f;
    d->jitter = rng_uniform(r) < 0.8f;
    if (d->jitter) { // ColorJitter(brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1).get_params
        for (int i = 0; i < 4; i++) d->order[i] = i;
        for (int i = 3; i > 0; i--) { int j = (int)(rng_next(r) % (uint64_t)(i + 1)); int t = d->order[i]; d->order[i] = d->order[j]; d->order[j] = t; }
        d->brightness = 0.6f + 0.8f * rng_uniform(r); // U(1 - 0.4, 1 + 0.4)
        d->contrast = 0.6f + 0.8f * rng_uniform(r);
        d->saturation = 0.8f + 0.4f * rng_uniform(r);
        d->hue = -0.1f + 0.2f * rng_uniform(r);       // U(-0.1, 0.1)
    }
    d->gray = C == 3 && rng_uniform(r) < 0.2f;        // drawn for colour images only
    // Gaussian blur: the official sigma is U(0.1, 2.0) pixels on 224 px global and 96 px
    // local crops. We keep the same blur relative to the crop size (at 32 px the official
    // sigma would blur 7 times more than it does at 224).
    float blur_p = kind == 0 ? 1.0f : (kind == 1 ? 0.1f : 0.5f);
    d->blur = rng_uniform(r) < blur_p;
    if (d->blur) d->sigma = (0.1f + 1.9f * rng_uniform(r)) * s / (kind < 2 ? 224.0f : 96.0f);
    d->solarize = kind == 1 && rng_uniform(r) < 0.2f; // global crop 2 only
}

// Comparisons rather than fminf/fmaxf, which GCC calls in libm instead of inlining (they
// must treat NaN specially; here NaN gives 0): this runs on every value of every colour operation.
static float clamp01(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
// Grey level, ITU-R 601-2 as PIL's convert("L"), which the official pipeline's grayscale,
// contrast and saturation use (torchvision's tensor functions weigh red 0.2989).
static float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// PIL's bicubic filter (Image.BICUBIC; torch's antialiased bicubic is the same): cubic
// convolution with a = -0.5. (The position table's resize in section 2 is torch's plain
// bicubic, a = -0.75.)
static double cubic_filter(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// A 1-D resize of n pixels to m, as PIL's precompute_coeffs: output i is the sum over
// k < count[i] of weight[i * taps + k] * in[first[i] + k]. The centre of output i lies at
// (i + 0.5) n / m in the input; when shrinking (n > m) the filter is stretched by n / m,
// so it averages every input pixel it covers (antialiasing). The window is cut at the
// crop's edges and the weights normalised to sum to 1.
static int resize_taps(int n, int m) { double scale = (double)n / m; return 2 * (int)ceil(2.0 * (scale > 1.0 ? scale : 1.0)) + 1; }
static void resize_weights(float *weight, int *first, int *count, int n, int m) {
    double scale = (double)n / m, stretch = scale > 1.0 ? scale : 1.0, support = 2.0 * stretch;
    int taps = resize_taps(n, m);
    for (int i = 0; i < m; i++) {
        double center = (i + 0.5) * scale, w[taps], sum = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n) hi = n;
        for (int k = 0; k < hi - lo; k++) { w[k] = cubic_filter((lo + k - center + 0.5) / stretch); sum += w[k]; }
        first[i] = lo; count[i] = hi - lo;
        for (int k = 0; k < hi - lo; k++) weight[i * taps + k] = (float)(sum != 0.0 ? w[k] / sum : 0.0);
    }
}

// F.resized_crop(..., BICUBIC) on a PIL image: cuts the box (top, left, h, w) out of the
// C x S x S uint8 image and resizes it to s x s, a horizontal pass (h x w -> h x s), then a
// vertical one (-> s x s). Each pass is clipped to [0, 1] as PIL's uint8 passes are
// (bicubic overshoots at edges). A pass that keeps its size is the identity (the filter is
// 1 at 0 and 0 at -1, 1, 2), so the whole image at its own size comes back unchanged.
static void crop_resize(float *out, const uint8_t *img, int C, int S, int top, int left, int h, int w, int s) {
    int tx = resize_taps(w, s), ty = resize_taps(h, s), fx[s], nx[s], fy[s], ny[s];
    float wx[s * tx], wy[s * ty], *rows = (float *)mallocCheck((size_t)h * s * sizeof(float));
    resize_weights(wx, fx, nx, w, s);
    resize_weights(wy, fy, ny, h, s);
    for (int c = 0; c < C; c++) {
        const uint8_t *plane = img + (size_t)c * S * S;
        for (int y = 0; y < h; y++) // horizontal pass over the box's rows, on values 0..255
            for (int x = 0; x < s; x++) {
                const uint8_t *in = plane + (size_t)(top + y) * S + left + fx[x];
                float acc = 0.0f;
                for (int k = 0; k < nx[x]; k++) acc += wx[x * tx + k] * in[k];
                rows[(size_t)y * s + x] = clamp01(acc / 255.0f);
            }
        for (int y = 0; y < s; y++) // vertical pass
            for (int x = 0; x < s; x++) {
                float acc = 0.0f;
                for (int k = 0; k < ny[y]; k++) acc += wy[y * ty + k] * rows[(size_t)(fy[y] + k) * s + x];
                out[((size_t)c * s + y) * s + x] = clamp01(acc);
            }
    }
    free(rows);
}

static void hflip(float *x, int C, int s) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < s; y++)
            for (int i = 0; i < s / 2; i++) {
                float *row = x + ((size_t)c * s + y) * s, t = row[i];
                row[i] = row[s - 1 - i]; row[s - 1 - i] = t;
            }
}

// The four colour operations, each torchvision's: a blend (factor x + (1 - factor) other,
// clamped to [0, 1]) with black, with the image's mean grey level, with each pixel's grey
// level; and a hue rotation.
static void adjust_brightness(float *x, int C, int s, float factor) {
    for (size_t i = 0; i < (size_t)C * s * s; i++) x[i] = clamp01(factor * x[i]);
}

static void adjust_contrast(float *x, int C, int s, float factor) {
    size_t n = (size_t)s * s;
    double m = 0.0; // the mean of the grayscale image, not of the RGB values
    for (size_t i = 0; i < n; i++) m += C == 3 ? luma(x[i], x[n + i], x[2 * n + i]) : x[i];
    float mean = (float)(m / n);
    for (size_t i = 0; i < n * C; i++) x[i] = clamp01(factor * x[i] + (1 - factor) * mean);
}

static void adjust_saturation(float *x, int C, int s, float factor) {
    if (C != 3) return;
    size_t n = (size_t)s * s;
    for (size_t i = 0; i < n; i++) {
        float g = luma(x[i], x[n + i], x[2 * n + i]);
        for (int c = 0; c < 3; c++) x[c * n + i] = clamp01(factor * x[c * n + i] + (1 - factor) * g);
    }
}

// Hue rotation of every pixel by `shift` (a fraction of the colour circle) through HSV, as
// torchvision's _rgb2hsv and _hsv2rgb.
static void adjust_hue(float *x, int C, int s, float shift) {
    if (C != 3) return;
    size_t n = (size_t)s * s;
    for (size_t i = 0; i < n; i++) {
        float *r = &x[i], *g = &x[n + i], *b = &x[2 * n + i];
        float mx = fmaxf(*r, fmaxf(*g, *b)), mn = fminf(*r, fminf(*g, *b)), d = mx - mn;
        if (d <= 0.0f) continue; // grey: no hue
        float h;
        if (mx == *r) h = fmodf((*g - *b) / d, 6.0f);
        else if (mx == *g) h = (*b - *r) / d + 2.0f;
        else h = (*r - *g) / d + 4.0f;
        h = h / 6.0f + shift;
        h -= floorf(h);
        float sat = d / mx, v = mx, hh = h * 6.0f, f = hh - floorf(hh);
        float p = v * (1 - sat), q = v * (1 - sat * f), t = v * (1 - sat * (1 - f));
        switch ((int)hh % 6) {
            case 0: *r = v; *g = t; *b = p; break;
            case 1: *r = q; *g = v; *b = p; break;
            case 2: *r = p; *g = v; *b = t; break;
            case 3: *r = p; *g = q; *b = v; break;
            case 4: *r = t; *g = p; *b = v; break;
            default: *r = v; *g = p; *b = q; break;
        }
    }
}

// ColorJitter.forward: the four operations in the drawn order, each with its factor.
static void color_jitter(float *x, int C, int s, const CropDraws *d) {
    void (*adjust[4])(float *, int, int, float) = { adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue };
    const float factor[4] = { d->brightness, d->contrast, d->saturation, d->hue };
    for (int o = 0; o < 4; o++) adjust[d->order[o]](x, C, s, factor[d->order[o]]);
}

// F.rgb_to_grayscale(x, num_output_channels=3)
static void rgb_to_grayscale(float *x, int s) {
    size_t n = (size_t)s * s;
    for (size_t i = 0; i < n; i++) { float g = luma(x[i], x[n + i], x[2 * n + i]); x[i] = x[n + i] = x[2 * n + i] = g; }
}

// Gaussian blur with standard deviation sigma (pixels): torchvision's gaussian_blur with
// kernel size 2 rad + 1, rad = ceil(3 sigma) (at least 1). The kernel is exp(-i^2 / 2 sigma^2)
// for |i| <= rad, normalised, applied along rows, then columns (torchvision convolves with
// its outer product: the same sums in another order). Borders reflect as torch's 'reflect'
// padding: x[-1] = x[1], the edge pixel not repeated. A kernel wider than the crop, which
// torch refuses, reflects again at the far edge: the blur of the image mirrored without end.
// The official utils.GaussianBlur is PIL's, a box-blur approximation of the Gaussian.
static int blur_radius(float sigma) { int rad = (int)ceilf(3.0f * sigma); return rad < 1 ? 1 : rad; }
static int reflect_index(int j, int s) {
    while (j < 0 || j >= s) {
        if (s == 1) return 0;
        j = j < 0 ? -j : 2 * (s - 1) - j;
    }
    return j;
}
static void gaussian_blur(float *x, int C, int s, float sigma) {
    int rad = blur_radius(sigma);
    float k[2 * rad + 1], sum = 0.0f, line[s];
    for (int i = -rad; i <= rad; i++) { k[i + rad] = expf(-0.5f * i * i / (sigma * sigma)); sum += k[i + rad]; }
    for (int i = 0; i < 2 * rad + 1; i++) k[i] /= sum;
    for (int c = 0; c < C; c++) {
        float *p = x + (size_t)c * s * s;
        for (int pass = 0; pass < 2; pass++) // rows, then columns
            for (int a = 0; a < s; a++) {
                size_t base = pass == 0 ? (size_t)a * s : (size_t)a, step = pass == 0 ? 1 : (size_t)s;
                for (int b = 0; b < s; b++) line[b] = p[base + b * step];
                for (int b = 0; b < s; b++) {
                    float acc = 0.0f;
                    for (int i = -rad; i <= rad; i++) acc += k[i + rad] * line[reflect_index(b + i, s)];
                    p[base + b * step] = acc;
                }
            }
    }
}

// ImageOps.solarize: invert the pixels >= 128 of 255 (F.solarize with threshold 128/255).
static void solarize(float *x, int C, int s) {
    for (size_t i = 0; i < (size_t)C * s * s; i++) if (x[i] >= 128.0f / 255.0f) x[i] = 1.0f - x[i];
}

// F.normalize: (x - mean) / std per channel.
static void normalize(float *x, int C, int s, const float *mean, const float *std) {
    size_t n = (size_t)s * s;
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n; i++) x[c * n + i] = (x[c * n + i] - mean[c]) / std[c];
}

// One crop with its draws, all the way to normalised floats: DataAugmentationDINO's
// operations in its order.
void apply_crop(float *out, const uint8_t *img, int C, int S, int s, const CropDraws *d, const Config *cfg) {
    crop_resize(out, img, C, S, d->top, d->left, d->h, d->w, s);
    if (d->flip) hflip(out, C, s);
    if (d->jitter) color_jitter(out, C, s, d);
    if (d->gray) rgb_to_grayscale(out, s);
    if (d->blur) gaussian_blur(out, C, s, d->sigma);
    if (d->solarize) solarize(out, C, s);
    normalize(out, C, s, cfg->mean, cfg->std);
}

// The crops of one training batch: globals (2B, C, S, S) and locals (NL*B, C, s, s),
// crop-major (crop j of image b is row j*B + b). idx lists the B images of the batch.
void make_crops(float *globals, float *locals, const Dataset *ds, const int *idx, int B, const Config *cfg, uint64_t step) {
    int C = ds->C, S = cfg->img_size, s = cfg->local_size, ncrops = 2 + cfg->n_local;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int j = 0; j < ncrops; j++) {
            Rng r = rng_stream(cfg->seed, step, idx[b], j);
            const uint8_t *img = ds->pixels + (size_t)idx[b] * C * ds->S * ds->S;
            int kind = j < 2 ? j : 2, size = j < 2 ? S : s; // global crop 1, 2, or a local crop
            float *out = j < 2 ? globals + ((size_t)j * B + b) * C * S * S
                               : locals + ((size_t)(j - 2) * B + b) * C * s * s;
            CropDraws d;
            draw_crop(&d, C, ds->S, size, kind, cfg, &r);
            apply_crop(out, img, C, ds->S, size, &d, cfg);
        }
}

// The evaluation view of an image: the whole image resized to the training resolution
// (bicubic, as eval_knn.py's Resize; the identity when the sizes agree), normalised
// (eval_knn.py resizes and centre-crops; our images are square already).
void eval_view(float *out, const Dataset *ds, int i, const Config *cfg) {
    int S = cfg->img_size, C = ds->C;
    crop_resize(out, ds->pixels + (size_t)i * C * ds->S * ds->S, C, ds->S, 0, 0, ds->S, ds->S, S);
    normalize(out, C, S, cfg->mean, cfg->std);
}

// ----------------------------------------------------------------------------
// 8. features and k-NN evaluation (eval_knn.py)

// Teacher (or student) backbone features of every image: the CLS token after the final
// norm (what VisionTransformer.forward returns), on the evaluation view. feats is (n, D).
void backbone_features(float *feats, const Dataset *ds, const Dino *d, int use_teacher) {
    const Config *c = &d->cfg;
    int D = c->dim, R = 256;
    size_t img = (size_t)ds->C * c->img_size * c->img_size;
    BackboneActs a;
    backbone_acts_alloc(&a, c, R, c->img_size, 0);
    float *x = (float *)mallocCheck(R * img * sizeof(float));
    for (int start = 0; start < ds->n; start += R) {
        int rows = ds->n - start < R ? ds->n - start : R;
        #pragma omp parallel for
        for (int i = 0; i < rows; i++) eval_view(x + i * img, ds, start + i, c);
        a.R = rows; // a pass may use fewer rows than it was allocated for
        backbone_forward(&a, use_teacher ? &d->t : &d->p, c, x, feats + (size_t)start * D, NULL, 0);
    }
    backbone_acts_free(&a);
    free(x);
}

// The same, L2-normalised: the features k-NN compares by cosine similarity.
void extract_features(float *feats, const Dataset *ds, const Dino *d, int use_teacher) {
    float *norm = (float *)mallocCheck((size_t)ds->n * sizeof(float));
    backbone_features(feats, ds, d, use_teacher);
    l2norm_forward(feats, norm, feats, ds->n, d->cfg.dim);
    free(norm);
}

// Raw pixels as features (the --baseline): the evaluation view, flattened, L2-normalised.
float *pixel_features(const Dataset *ds, const Config *c, int *dim) {
    size_t img = (size_t)ds->C * c->img_size * c->img_size;
    float *f = (float *)mallocCheck(ds->n * img * sizeof(float)), *norm = (float *)mallocCheck(ds->n * sizeof(float));
    #pragma omp parallel for
    for (int i = 0; i < ds->n; i++) eval_view(f + i * img, ds, i, c);
    l2norm_forward(f, norm, f, ds->n, (int)img);
    free(norm);
    *dim = (int)img;
    return f;
}

// The k training features nearest to each of nq query features by cosine similarity (both
// L2-normalised, so a dot product), eval_knn.py's similarity.topk: sim (nq, k) the similarities,
// most similar first, who (nq, k) the training indices. A tie goes to the lower training index:
// a later one must be strictly more similar to pass it. train_t is (D, ntrain), the training
// features transposed; k <= ntrain. k-NN classification and ./dino neighbours both use it.
void nearest_neighbours(float *sim, int *who, const float *query, int nq, const float *train_t, int ntrain, int D,
                        int k) {
    float *sims = (float *)mallocCheck((size_t)nq * ntrain * sizeof(float));
    // cosines: sims (nq, ntrain) = query (nq, D) @ train_t (D, ntrain)
    matmul_parallel(sims, ntrain, query, D, 1, train_t, ntrain, 1, NULL, 0, nq, ntrain, D);
    #pragma omp parallel for
    for (int r = 0; r < nq; r++) {
        const float *s = sims + (size_t)r * ntrain;
        float *best = sim + (size_t)r * k;
        int *idx = who + (size_t)r * k, nb = 0;
        // the k most similar, kept sorted by insertion (k is small)
        for (int j = 0; j < ntrain; j++) {
            if (nb == k && s[j] <= best[nb - 1]) continue;
            int pos = nb < k ? nb++ : nb - 1;
            while (pos > 0 && best[pos - 1] < s[j]) { best[pos] = best[pos - 1]; idx[pos] = idx[pos - 1]; pos--; }
            best[pos] = s[j];
            idx[pos] = j;
        }
    }
    free(sims);
}

// Weighted k-NN (eval_knn.py knn_classifier): cosine similarity to every training
// feature, the k most similar vote for their class with weight exp(sim / T), top-1 and
// top-5 of the summed votes, in percent, for each k in ks.
void knn_classify(float *top1, float *top5, const int *ks, int nk, const float *train, const int *train_labels, int ntrain,
                  const float *test, const int *test_labels, int ntest, int D, int nclasses, float T) {
    int kmax = 1, chunk = 64;
    for (int q = 0; q < nk; q++) if (ks[q] > kmax) kmax = ks[q];
    if (kmax > ntrain) kmax = ntrain;
    int hits1[nk], hits5[nk];
    for (int q = 0; q < nk; q++) hits1[q] = hits5[q] = 0;
    float *sim = (float *)mallocCheck((size_t)chunk * kmax * sizeof(float));
    int *who = (int *)mallocCheck((size_t)chunk * kmax * sizeof(int));
    float *train_t = (float *)mallocCheck((size_t)D * ntrain * sizeof(float)); // (D, ntrain), once for all chunks
    transpose(train_t, train, ntrain, D);
    for (int start = 0; start < ntest; start += chunk) {
        int rows = ntest - start < chunk ? ntest - start : chunk;
        nearest_neighbours(sim, who, test + (size_t)start * D, rows, train_t, ntrain, D, kmax);
        #pragma omp parallel for reduction(+ : hits1[:nk], hits5[:nk]) // counts: the same sums in any order
        for (int r = 0; r < rows; r++) {
            const float *best = sim + (size_t)r * kmax;
            const int *nearest = who + (size_t)r * kmax;
            float votes[nclasses];
            for (int q = 0; q < nk; q++) {
                int k = ks[q] < kmax ? ks[q] : kmax;
                for (int c = 0; c < nclasses; c++) votes[c] = 0.0f;
                for (int i = 0; i < k; i++) votes[train_labels[nearest[i]]] += expf(best[i] / T);
                int label = test_labels[start + r], rank = 0; // classes ranked above the true one
                for (int c = 0; c < nclasses; c++) if (votes[c] > votes[label] || (votes[c] == votes[label] && c < label)) rank++;
                hits1[q] += rank == 0;
                hits5[q] += rank < 5;
            }
        }
    }
    for (int q = 0; q < nk; q++) { top1[q] = 100.0f * hits1[q] / ntest; top5[q] = 100.0f * hits5[q] / ntest; }
    free(sim);
    free(who);
    free(train_t);
}

#define KNN_NK 4
static const int knn_ks[KNN_NK] = { 10, 20, 100, 200 }; // eval_knn.py's nb_knn; 20 is the headline

// k-NN of the teacher's features on (a prefix of) the test set; returns k=20 top-1.
float knn_eval(const Dino *d, const Dataset *train, const Dataset *test, int max_train, int max_test, float T, float *top1, float *top5) {
    Dataset tr = *train, te = *test; // views of prefixes
    if (max_train > 0 && tr.n > max_train) tr.n = max_train;
    if (max_test > 0 && te.n > max_test) te.n = max_test;
    int D = d->cfg.dim;
    float *ftr = (float *)mallocCheck((size_t)tr.n * D * sizeof(float)), *fte = (float *)mallocCheck((size_t)te.n * D * sizeof(float));
    extract_features(ftr, &tr, d, 1);
    extract_features(fte, &te, d, 1);
    int nclasses = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    knn_classify(top1, top5, knn_ks, KNN_NK, ftr, tr.labels, tr.n, fte, te.labels, te.n, D, nclasses, T);
    free(ftr); free(fte);
    return top1[1];
}

// ----------------------------------------------------------------------------
// 9. the training loop

// Ctrl-C (SIGINT), SIGTERM (kill, a job scheduler) and SIGHUP (a closed terminal) ask the
// loop to save and stop after the current step. SIGKILL cannot be caught: then the last
// checkpoint, which is always complete, is where --resume continues.
static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }
static const int stop_signals[3] = { SIGINT, SIGTERM, SIGHUP };

// The images of batch `step`: data epoch e = step / batches_per_epoch walks a random
// permutation of the data set drawn from (seed, e). It depends on the step alone, so a
// resumed run sees exactly the batches the uninterrupted one would have.
void batch_indices(int *idx, int *perm, int *perm_epoch, int n, int B, int seed, int step) {
    int per_epoch = n / B, e = step / per_epoch, k = step % per_epoch;
    if (*perm_epoch != e) {
        Rng r = rng_stream(seed, 0xDA7A, e, 0);
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) { int j = (int)(rng_next(&r) % (uint64_t)(i + 1)); int t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        *perm_epoch = e;
    }
    memcpy(idx, perm + (size_t)k * B, B * sizeof(int));
}

static void format_duration(char *buf, size_t size, double s) {
    if (s < 60) snprintf(buf, size, "%.0fs", s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

// A resumed run continues log.csv from its checkpoint's step: the lines a killed run wrote
// after its last checkpoint (and a half-written last line) are dropped, so the log of an
// interrupted and resumed run has each step once, like the log of an uninterrupted one.
static void trim_log(const char *path, int step) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return; // no log yet
    char tmp[4200], line[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *g = fopen(tmp, "w");
    if (g == NULL) die("cannot write '%s': %s; is the output directory writable?", tmp, strerror(errno));
    for (int first = 1; fgets(line, sizeof(line), f) != NULL; first = 0) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n' && (first || atoi(line) <= step)) fputs(line, g);
    }
    fclose(f);
    if (fflush(g) != 0 || ferror(g) || fclose(g) != 0 || rename(tmp, path) != 0)
        die("cannot rewrite '%s': %s (disk full?)", path, strerror(errno));
}

// Stops a run that went non-finite, with what happened, where, and what to try. Nothing is
// saved: the checkpoint on disk, if any, is from before.
static void diverged(const Dino *d, int step, const char *what, int last_saved, const char *model_path) {
    char kept[4200] = "no checkpoint was written yet";
    if (is_file(model_path)) snprintf(kept, sizeof(kept), "the last good checkpoint (step %d) is kept in %s", last_saved, model_path);
    die("training diverged at step %d: %s (loss %g, lr %.3g, teacher temp %.3g, student temp %.3g); start again with a lower "
        "--lr or a higher --teacher_temp (and --clip_grad 3 if it is off); %s",
        step, what, d->loss, d->lr, d->teacher_temp, d->cfg.student_temp, kept);
}

// The log reaches the disk before the checkpoint does, so that after a kill the log holds
// at least every step up to the checkpoint (trim_log drops the rest on resume).
static void save_log_and_checkpoint(const Dino *d, FILE *log, const char *log_path, const char *model_path, int last_saved) {
    if (!state_finite(d)) diverged(d, d->step, "the parameters are not finite", last_saved, model_path);
    if (fflush(log) != 0 || fsync(fileno(log)) != 0) die("cannot write '%s': %s (disk full?)", log_path, strerror(errno));
    save_checkpoint(d, model_path);
}

typedef struct {
    const char *out;        // output directory: model.bin, log.csv
    int steps;              // steps to run to (the schedule's end by default)
    int save_every, eval_every, log_every;
    int eval_train_n, eval_test_n; // k-NN during training on these prefixes (0 = all)
    float knn_temp;
    double deadline;        // --minutes: now_seconds() at which to end (0 = no deadline)
    double eval_cost;       // --minutes: expected seconds of one periodic k-NN (0 = learn it)
} TrainLoop;

// Fit the schedules to a run of `total` steps (--steps, --minutes): the recipe's epochs
// become fractions of the run (epoch_at, epoch_iters), so warm-ups keep their share.
// steps_per_epoch is then kept only for the checkpoint header.
void fit_schedules(Config *c, int total) {
    c->total_steps = total;
    c->steps_per_epoch = total / c->epochs > 0 ? total / c->epochs : 1;
}

// Trains d on ds from its current step to loop->steps (with a deadline: to the step that
// ends on time). Returns the number of the last step done. Evaluates with k-NN when test is
// not NULL.
int train_loop(Dino *d, const Dataset *ds, const Dataset *test, const TrainLoop *loop) {
    const Config *c = &d->cfg;
    int B = c->batch;
    size_t ng = (size_t)2 * B * c->channels * c->img_size * c->img_size;
    size_t nl = (size_t)c->n_local * B * c->channels * c->local_size * c->local_size;
    float *globals = (float *)mallocCheck(ng * sizeof(float)), *locals = (float *)mallocCheck(nl * sizeof(float));
    int *perm = (int *)mallocCheck(ds->n * sizeof(int)), *idx = (int *)mallocCheck(B * sizeof(int)), perm_epoch = -1;
    char model_path[4096], log_path[4096];
    snprintf(model_path, sizeof(model_path), "%s/model.bin", loop->out);
    snprintf(log_path, sizeof(log_path), "%s/log.csv", loop->out);
    if (d->step > 0) trim_log(log_path, d->step);
    int new_log = !is_file(log_path);
    FILE *log = fopen(log_path, "a");
    if (log == NULL) die("cannot write '%s': %s; is the output directory writable?", log_path, strerror(errno));
    if (new_log) fprintf(log, "step,epoch,loss,lr,wd,momentum,teacher_temp,teacher_entropy,kl,img_per_s,elapsed_s,knn_top1,knn_top5\n");
    // SA_RESTART: a write (of the log, of a checkpoint) under way when the signal comes completes
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART }, old_sa[3];
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &sa, &old_sa[i]);

    // The speed, the time left and --minutes' pace leave out the time spent on k-NN: `trained`
    // below is the seconds of training so far; window_* and refit_* are the step and the
    // seconds trained at the last log line and at the last refit.
    double t0 = now_seconds(), eval_seconds = 0.0, window_trained = 0.0, refit_trained = 0.0;
    int start = d->step, last_saved = d->step, window_start = d->step, end = loop->steps, evals = 0;
    // --minutes: the run's length was fitted to a probe of a few steps, which misses data
    // loading, logging, k-NN evaluations and a machine that is busier than it was. So the
    // schedules are fitted again to the pace of this run after 3% of it, then after every
    // further tenth, each time from the pace since the previous refit (the load may change).
    int next_refit = start + (int)fmax(20, 0.03 * (end - start)), refit_step = start;
    while (d->step < end && !stop_requested) {
        batch_indices(idx, perm, &perm_epoch, ds->n, B, c->seed, d->step);
        make_crops(globals, locals, ds, idx, B, c, d->step);
        float loss = dino_step(d, globals, locals);
        if (!isfinite(loss)) // dino_step updated nothing (but the center)
            diverged(d, d->step + 1, isfinite(d->loss) ? "a gradient is not finite" : "the loss is not finite", last_saved, model_path);
        double now = now_seconds();
        int step = d->step; // steps done
        float top1[KNN_NK] = { 0 }, top5[KNN_NK] = { 0 };
        int evaluated = 0;
        if (test != NULL && loop->eval_every > 0 && step % loop->eval_every == 0 && step < end) {
            double te = now_seconds();
            knn_eval(d, ds, test, loop->eval_train_n, loop->eval_test_n, loop->knn_temp, top1, top5);
            evaluated = 1;
            printf("  knn (%d train / %d test images) k=20 top1 %.2f top5 %.2f  [%.1fs]\n",
                   loop->eval_train_n > 0 && loop->eval_train_n < ds->n ? loop->eval_train_n : ds->n,
                   loop->eval_test_n > 0 && loop->eval_test_n < test->n ? loop->eval_test_n : test->n, top1[1], top5[1], now_seconds() - te);
            now = now_seconds();
            eval_seconds += now - te;
            evals++;
        }
        double trained = now - t0 - eval_seconds;
        if (loop->deadline > 0 && step == next_refit && step < end) {
            double per_eval = test == NULL ? 0.0 : evals > 0 ? eval_seconds / evals : loop->eval_cost;
            double per_step = (trained - refit_trained) / (step - refit_step);
            double cost = per_step + (loop->eval_every > 0 ? per_eval / loop->eval_every : 0.0);
            int total = step + (int)fmax(1.0, (loop->deadline - now) / cost);
            fit_schedules(&d->cfg, total); // the recipe's epochs stay fractions of the run
            if (total != end)
                printf("pace: %.3f s/step%s -> the run ends at step %d\n", per_step,
                       loop->eval_every > 0 ? " and k-NN" : "", total);
            end = total;
            next_refit = step + (int)fmax(20, (end - start) / 10);
            refit_step = step, refit_trained = trained;
        }
        // speed over the steps since the last log line, time left from the whole run so far
        float img_s = (float)(step - window_start) * B / (float)fmax(trained - window_trained, 1e-9);
        double sec_per_step = trained / (step - start);
        float epoch = (float)step * B / ds->n;
        fprintf(log, "%d,%.4f,%.6f,%.6g,%.6g,%.6f,%.5f,%.5f,%.5f,%.1f,%.2f,", step, epoch, loss, d->lr, d->wd, d->momentum,
                d->teacher_temp, d->teacher_entropy, d->kl, img_s, now - t0);
        if (evaluated) fprintf(log, "%.2f,%.2f\n", top1[1], top5[1]); else fprintf(log, ",\n");
        if (step % loop->log_every == 0 || step == end || step == start + 1) {
            char left[32];
            format_duration(left, sizeof(left), sec_per_step * (end - step));
            printf("step %*d/%d | epoch %.2f | loss %.4f | lr %.2e wd %.3f mom %.4f Tt %.4f | H(t) %.3f KL %.3f | %.0f img/s | %s left\n",
                   (int)snprintf(NULL, 0, "%d", end), step, end, epoch, loss, d->lr, d->wd, d->momentum,
                   d->teacher_temp, d->teacher_entropy, d->kl, img_s, left);
            fflush(stdout);
            if (fflush(log) != 0) die("cannot write '%s': %s (disk full?)", log_path, strerror(errno));
            window_start = step;
            window_trained = trained;
        }
        if (loop->save_every > 0 && step % loop->save_every == 0 && step < end) {
            save_log_and_checkpoint(d, log, log_path, model_path, last_saved);
            last_saved = step;
        }
    }
    save_log_and_checkpoint(d, log, log_path, model_path, last_saved);
    if (stop_requested) printf("interrupted: saved step %d to %s; continue with --resume %s\n", d->step, model_path, model_path);
    fclose(log);
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &old_sa[i], NULL); // Ctrl-C now stops a final k-NN at once
    free(globals); free(locals); free(perm); free(idx);
    return d->step;
}

// ----------------------------------------------------------------------------
// 10. looking inside a trained model: attention maps, feature files, the linear probe

// The paper's figure 1: in the last block, the attention of the CLS token to every patch,
// one map per head (visualize_attention.py: get_last_selfattention(img)[0, :, 0, 1:]).
// out is (R, NH, T): entry 0 is the CLS token's attention to itself, entries 1..NP its
// attention to the patches in row-major grid order; each row of T is a softmax, so it sums
// to 1. imgs is (R, C, S, S) at the resolution a was allocated for; feat (R, D) receives
// the backbone output on the way.
void cls_attention(float *out, float *feat, BackboneActs *a, const ParameterTensors *p, const Config *c, const float *imgs) {
    int R = a->R, T = a->T, NH = c->heads;
    backbone_forward(a, p, c, imgs, feat, NULL, 0);
    // att is (slots, R, NH, T, T), but the last block has the CLS query only: its slot (the one
    // slot with keep_all = 0) holds (R, NH, 1, T), which is exactly out's layout
    size_t last = a->keep_all ? (size_t)(c->depth - 1) : 0;
    memcpy(out, a->att + last * R * NH * T * T, (size_t)R * NH * T * sizeof(float));
}

// visualize_attention.py --threshold: the smallest set of patches that holds `threshold` of
// the attention mass, taking patches from the most attended down (the mass is that of the
// patches alone: the CLS token's attention to itself is left out, as there). att is (NP),
// mask (NP) gets 1 for a kept patch. Returns the number kept.
int attention_mask(uint8_t *mask, const float *att, int NP, float threshold) {
    double total = 0.0, held = 0.0;
    for (int i = 0; i < NP; i++) { total += att[i]; mask[i] = 0; }
    int kept = 0;
    while (kept < NP && held < threshold * total) {
        int best = -1; // the most attended patch not yet kept (NP is small: a plain scan)
        for (int i = 0; i < NP; i++)
            if (!mask[i] && (best < 0 || att[i] > att[best])) best = i;
        mask[best] = 1;
        held += att[best];
        kept++;
    }
    return kept;
}

// How well the attention segments (paper Table 4): the Jaccard similarity |A n B| / |A u B|
// of the mask A of attention_mask (the patches holding 60% of the attention) and the true
// object B. dino.c measures it on the synthetic set's shapes at patch resolution: the object
// is seen at the model's resolution M as the image is (the nearest pixel of the S x S
// mask), and a patch belongs to it when at least half of its P x P pixels do. mask is
// (S, S), out (G, G) with G = M / P.
void object_patches(uint8_t *out, const uint8_t *mask, int S, int M, int P) {
    int G = M / P;
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            int in = 0;
            for (int y = gy * P; y < (gy + 1) * P; y++)
                for (int x = gx * P; x < (gx + 1) * P; x++) in += mask[(y * S / M) * S + x * S / M];
            out[gy * G + gx] = 2 * in >= P * P;
        }
}

// |a n b| / |a u b| of two masks of n patches (1 when both are empty).
float jaccard(const uint8_t *a, const uint8_t *b, int n) {
    int both = 0, either = 0;
    for (int i = 0; i < n; i++) {
        both += a[i] && b[i];
        either += a[i] || b[i];
    }
    return either > 0 ? (float)both / either : 1.0f;
}

// The mean Jaccard over n images, in percent, of each head's mask (jac[0 .. NH-1]) and of
// the mask of the mean of the heads' maps (jac[NH]). att is (n, NH, T) as cls_attention
// gives it (entry 0, the CLS token's attention to itself, is left out as in the pictures),
// objects (n, NP) the object's patches.
void attention_jaccard(float *jac, const float *att, const uint8_t *objects, int n, int NH, int NP, float threshold) {
    int T = 1 + NP;
    float mean[NP];
    uint8_t mask[NP];
    for (int h = 0; h <= NH; h++) jac[h] = 0.0f;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < NP; k++) mean[k] = 0.0f;
        for (int h = 0; h <= NH; h++) { // the heads, then (h = NH) their mean, complete by then
            const float *map = h < NH ? att + ((size_t)i * NH + h) * T + 1 : mean;
            for (int k = 0; h < NH && k < NP; k++) mean[k] += map[k] / NH;
            attention_mask(mask, map, NP, threshold);
            jac[h] += 100.0f * jaccard(mask, objects + (size_t)i * NP, NP) / n;
        }
    }
}

// attention_jaccard on the images of ds that have an object (ds->masks not all 0: the
// synthetic set's shapes), at most max of them (0: all), with the CLS attention of the last
// block of the teacher (or the student) on the evaluation view. Returns the images measured.
int dataset_jaccard(float *jac, const Dino *d, const Dataset *ds, int max, int use_teacher, float threshold) {
    const Config *c = &d->cfg;
    int G = c->img_size / c->patch, NP = G * G, T = 1 + NP, NH = c->heads, R = 64, n = 0;
    size_t img = (size_t)ds->C * c->img_size * c->img_size, SS = (size_t)ds->S * ds->S;
    int *which = (int *)mallocCheck(ds->n * sizeof(int));
    for (int i = 0; i < ds->n && (max == 0 || n < max); i++) {
        int object = 0;
        for (size_t k = 0; k < SS; k++) object |= ds->masks[i * SS + k];
        if (object) which[n++] = i;
    }
    float *att = (float *)mallocCheck((size_t)n * NH * T * sizeof(float) + 1), *x = (float *)mallocCheck(R * img * sizeof(float));
    float *feat = (float *)mallocCheck((size_t)R * c->dim * sizeof(float));
    uint8_t *objects = (uint8_t *)mallocCheck((size_t)n * NP + 1);
    BackboneActs a;
    backbone_acts_alloc(&a, c, R, c->img_size, 0);
    for (int start = 0; start < n; start += R) {
        a.R = imin(R, n - start); // a pass may use fewer rows than it was allocated for
        #pragma omp parallel for
        for (int i = 0; i < a.R; i++) {
            eval_view(x + i * img, ds, which[start + i], c);
            object_patches(objects + (size_t)(start + i) * NP, ds->masks + which[start + i] * SS, ds->S, c->img_size, c->patch);
        }
        cls_attention(att + (size_t)start * NH * T, feat, &a, use_teacher ? &d->t : &d->p, c, x);
    }
    attention_jaccard(jac, att, objects, n, NH, NP, threshold);
    backbone_acts_free(&a);
    free(which); free(att); free(x); free(feat); free(objects);
    return n;
}

// viridis (matplotlib's default colour map, also visualize_attention.py's through
// plt.imsave): perceptually uniform, dark blue for low values to yellow for high. Ten
// evenly spaced stops, linearly interpolated.
static void viridis(uint8_t *rgb, float t) {
    static const uint8_t stops[10][3] = {
        { 68, 1, 84 }, { 72, 40, 120 }, { 62, 74, 137 }, { 49, 104, 142 }, { 38, 130, 142 },
        { 31, 158, 137 }, { 53, 183, 121 }, { 109, 205, 89 }, { 180, 222, 44 }, { 253, 231, 37 },
    };
    t = clamp01(t) * 9.0f;
    int i = t >= 9.0f ? 8 : (int)t;
    float f = t - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lrintf(stops[i][c] * (1.0f - f) + stops[i + 1][c] * f);
}

// A G x G map drawn over a W x H picture: each pixel takes the value of the patch it falls
// in (nearest, as visualize_attention.py upsamples), scaled so the map's smallest value is
// the bottom of the colour map and its largest the top (as plt.imsave does). out is (H, W, 3).
void render_heatmap(uint8_t *out, int W, int H, const float *map, int G) {
    float lo = map[0], hi = map[0];
    for (int i = 1; i < G * G; i++) { lo = fminf(lo, map[i]); hi = fmaxf(hi, map[i]); }
    float range = hi > lo ? hi - lo : 1.0f;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            viridis(out + ((size_t)y * W + x) * 3, (map[(y * G / H) * G + x * G / W] - lo) / range);
}

// The mask laid over the picture img (H, W, 3), as visualize_attention.py's display_instances:
// kept patches tinted half-way to a colour, their outline drawn in it.
void render_mask(uint8_t *out, const uint8_t *img, int W, int H, const uint8_t *mask, int G) {
    static const uint8_t tint[3] = { 255, 48, 48 };
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int in = mask[(y * G / H) * G + x * G / W], edge = 0;
            // on the outline: inside, with a 4-neighbour outside the mask or the picture
            for (int k = 0; k < 4 && in; k++) {
                int nx = x + (k == 0) - (k == 1), ny = y + (k == 2) - (k == 3);
                if (nx < 0 || ny < 0 || nx >= W || ny >= H || !mask[(ny * G / H) * G + nx * G / W]) edge = 1;
            }
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * W + x) * 3 + c;
                out[i] = edge ? tint[c] : in ? (uint8_t)((img[i] + tint[c] + 1) / 2) : img[i];
            }
        }
}

// The size of the pictures of one image of w x h pixels: its own, enlarged by a whole factor
// to at least 128 px (so CIFAR's 32 px pixels stay sharp squares) or shrunk to at most 512
// px on the longer side.
static void picture_size(int *W, int *H, int w, int h) {
    int longest = w > h ? w : h;
    if (longest < 128) { int zoom = (128 + longest - 1) / longest; *W = w * zoom; *H = h * zoom; }
    else if (longest > 512) { *W = (int)((long)w * 512 / longest); *H = (int)((long)h * 512 / longest); }
    else { *W = w; *H = h; }
    if (*W < 1) *W = 1;
    if (*H < 1) *H = 1;
}

static void paste(uint8_t *canvas, int CW, const uint8_t *cell, int W, int H, int x0, int y0) {
    for (int y = 0; y < H; y++) memcpy(canvas + (((size_t)y0 + y) * CW + x0) * 3, cell + (size_t)y * W * 3, (size_t)W * 3);
}

// DIR/NAME_<what><head>.png (no number when head < 0)
static int write_png(const char *dir, const char *name, const char *what, int head, int W, int H, const uint8_t *rgb) {
    char path[8192], number[16] = "";
    if (head >= 0) snprintf(number, sizeof(number), "%d", head);
    snprintf(path, sizeof(path), "%s/%s_%s%s.png", dir, name, what, number);
    return stbi_write_png(path, W, H, 3, rgb, W * 3) ? 0 : data_fail("cannot write '%s'", path);
}

// Everything ./dino attn writes for one image. img is the image as read, (h, w, C)
// interleaved, any size. The model sees it resized to its resolution (the whole image,
// squeezed if it is not square, as visualize_attention.py's Resize((480, 480)) does); the
// pictures are drawn at picture_size. Writes DIR/NAME_input.png, NAME_head<h>.png (the
// map), NAME_mask<h>.png (the thresholded mask over the image) and NAME_montage.png: the
// input and each head's map in a row, under them the mean map of the heads and each head's
// mask, 4 px apart. Returns 0, or -1 (data_error says why) when a file cannot be written.
int attention_pictures(const char *dir, const char *name, const uint8_t *img, int w, int h, const Dino *d,
                       int use_teacher, float threshold) {
    const Config *c = &d->cfg;
    int C = c->channels, S = c->img_size, G = S / c->patch, NP = G * G, T = 1 + NP, NH = c->heads;
    // the model's input: resized, planar, normalised with the data set's mean and std as eval_view does
    uint8_t *small = (uint8_t *)mallocCheck((size_t)S * S * C);
    if (w == S && h == S) memcpy(small, img, (size_t)S * S * C);
    else stbir_resize_uint8(img, w, h, 0, small, S, S, 0, C);
    float *x = (float *)mallocCheck((size_t)C * S * S * sizeof(float));
    for (int ch = 0; ch < C; ch++)
        for (int i = 0; i < S * S; i++) x[(size_t)ch * S * S + i] = (small[(size_t)i * C + ch] * (1.0f / 255.0f) - c->mean[ch]) / c->std[ch];
    BackboneActs a;
    backbone_acts_alloc(&a, c, 1, S, 0);
    float *att = (float *)mallocCheck((size_t)NH * T * sizeof(float)), *feat = (float *)mallocCheck(c->dim * sizeof(float));
    cls_attention(att, feat, &a, use_teacher ? &d->t : &d->p, c, x);
    backbone_acts_free(&a);

    // the picture at display size, RGB (grey images repeat their one channel)
    int W, H, gap = 4;
    picture_size(&W, &H, w, h);
    int MW = (NH + 1) * (W + gap) - gap, MH = 2 * H + gap; // the montage: 2 rows of NH + 1 cells
    size_t cell = (size_t)W * H * 3;
    uint8_t *shown = (uint8_t *)mallocCheck((size_t)W * H * C), *rgb = (uint8_t *)mallocCheck(cell), *tmp = (uint8_t *)mallocCheck(cell);
    if (W >= w) // enlarged by a whole factor (or kept): nearest neighbour keeps pixels sharp
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) memcpy(shown + ((size_t)y * W + xx) * C, img + ((size_t)(y * h / H) * w + xx * w / W) * C, C);
    else stbir_resize_uint8(img, w, h, 0, shown, W, H, 0, C);
    for (size_t i = 0; i < (size_t)W * H; i++)
        for (int ch = 0; ch < 3; ch++) rgb[i * 3 + ch] = shown[i * C + (C == 3 ? ch : 0)];
    uint8_t *montage = (uint8_t *)mallocCheck((size_t)MW * MH * 3);
    memset(montage, 255, (size_t)MW * MH * 3);
    paste(montage, MW, rgb, W, H, 0, 0);
    int status = write_png(dir, name, "input", -1, W, H, rgb);

    float *mean = (float *)callocCheck(NP, sizeof(float));
    uint8_t *mask = (uint8_t *)mallocCheck(NP);
    for (int hd = 0; hd < NH && status == 0; hd++) {
        const float *patches = att + (size_t)hd * T + 1; // leave out the CLS token's attention to itself
        for (int i = 0; i < NP; i++) mean[i] += patches[i] / NH;
        render_heatmap(tmp, W, H, patches, G);
        paste(montage, MW, tmp, W, H, (hd + 1) * (W + gap), 0);
        status = write_png(dir, name, "head", hd, W, H, tmp);
        attention_mask(mask, patches, NP, threshold);
        render_mask(tmp, rgb, W, H, mask, G);
        paste(montage, MW, tmp, W, H, (hd + 1) * (W + gap), H + gap);
        if (status == 0) status = write_png(dir, name, "mask", hd, W, H, tmp);
    }
    render_heatmap(tmp, W, H, mean, G);
    paste(montage, MW, tmp, W, H, 0, H + gap);
    if (status == 0) status = write_png(dir, name, "montage", -1, MW, MH, montage);
    free(small); free(x); free(att); free(feat); free(shown); free(rgb); free(tmp); free(montage); free(mean); free(mask);
    return status;
}

// The digits 0-9 in a 3 x 5 pixel font, for the class numbers under the pictures of ./dino
// neighbours: one byte per row, top row first, the 4 bit for the left pixel, 1 for the right.
static const uint8_t digit_font[10][5] = {
    { 7, 5, 5, 5, 7 }, { 2, 6, 2, 2, 7 }, { 7, 1, 7, 4, 7 }, { 7, 1, 3, 1, 7 }, { 5, 5, 7, 1, 1 },
    { 7, 4, 7, 1, 7 }, { 7, 4, 7, 5, 7 }, { 7, 1, 1, 1, 1 }, { 7, 5, 7, 5, 7 }, { 7, 5, 7, 1, 7 },
};

// number (>= 0) in that font into the picture out (W wide, RGB), its top left corner at
// (x0, y0), each font pixel a scale x scale square, digits one font pixel apart. The caller
// leaves room: (4 digits - 1) scale wide, 5 scale high, which is what it returns (the width).
int draw_number(uint8_t *out, int W, int x0, int y0, int number, int scale, const uint8_t rgb[3]) {
    char text[16];
    int n = snprintf(text, sizeof(text), "%d", number);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < 5 * scale; y++)
            for (int x = 0; x < 3 * scale; x++)
                if (digit_font[text[i] - '0'][y / scale] >> (2 - x / scale) & 1)
                    memcpy(out + ((size_t)(y0 + y) * W + x0 + i * 4 * scale + x) * 3, rgb, 3);
    return (4 * n - 1) * scale;
}

// ./dino neighbours' picture: one row per query (test image q[r]): the query, a gap, then its
// k neighbours (training images who[r * k + j], most similar first). Each image as stored (uint8,
// 1 channel drawn grey), enlarged to picture_size by nearest neighbour (32 px -> 128), in a
// frame: grey for the query, green for a neighbour of the query's label, red for another; its
// label under it. Returns the RGB picture (malloc'd), its size in *PW, *PH.
uint8_t *neighbour_picture(int *PW, int *PH, const Dataset *test, const int *q, int nq, const Dataset *train,
                           const int *who, int k) {
    static const uint8_t grey[3] = { 128, 128, 128 }, green[3] = { 0, 170, 0 }, red[3] = { 220, 0, 0 };
    static const uint8_t black[3] = { 0, 0, 0 };
    int W, H, F = 4, scale = 3, gap = 4, query_gap = 20; // frame, font pixel, gaps (rows 2 gaps apart)
    picture_size(&W, &H, test->S, test->S);
    int CW = W + 2 * F, CH = H + 2 * F + 5 * scale + 2 * F; // a cell: the framed image, the label strip
    *PW = (k + 1) * CW + query_gap + (k - 1) * gap;
    *PH = nq * CH + (nq - 1) * 2 * gap;
    uint8_t *out = (uint8_t *)mallocCheck((size_t)*PW * *PH * 3);
    memset(out, 255, (size_t)*PW * *PH * 3);
    for (int r = 0; r < nq; r++)
        for (int j = -1; j < k; j++) { // j = -1: the query
            const Dataset *ds = j < 0 ? test : train;
            int i = j < 0 ? q[r] : who[(size_t)r * k + j], S = ds->S;
            const uint8_t *pixels = ds->pixels + (size_t)i * ds->C * S * S; // planar (C, S, S)
            int x0 = j < 0 ? 0 : CW + query_gap + j * (CW + gap), y0 = r * (CH + 2 * gap);
            const uint8_t *frame = j < 0 ? grey : ds->labels[i] == test->labels[q[r]] ? green : red;
            for (int y = 0; y < H + 2 * F; y++)
                for (int x = 0; x < CW; x++) {
                    uint8_t *px = out + ((size_t)(y0 + y) * *PW + x0 + x) * 3;
                    int iy = y - F, ix = x - F;
                    if (iy < 0 || ix < 0 || iy >= H || ix >= W) memcpy(px, frame, 3);
                    else // grey repeats its one plane
                        for (int c = 0; c < 3; c++)
                            px[c] = pixels[(ds->C == 3 ? c : 0) * S * S + (iy * S / H) * S + ix * S / W];
                }
            draw_number(out, *PW, x0 + F, y0 + H + 3 * F, ds->labels[i], scale, black);
        }
    return out;
}

// NumPy's .npy format (version 1.0), which numpy.load reads as it is: the magic "\x93NUMPY",
// the version (1, 0), the header's length (uint16, little-endian), the header (a Python
// dict literal of dtype, order and shape, padded with spaces so the data starts at a
// multiple of 64 bytes, ending in '\n'), then the values in C order. descr is "<f4"
// (float32) or "<i4" (int32); cols 0 writes a 1-D array of rows values. Little-endian
// machines only, like the checkpoints. Returns 0, or -1 with data_error set.
int write_npy(const char *path, const char *descr, const void *data, size_t elem_size, size_t rows, size_t cols) {
    char header[256];
    int len = cols > 0
        ? snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }", descr, rows, cols)
        : snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }", descr, rows);
    int total = (10 + len + 1 + 63) / 64 * 64; // magic 6 + version 2 + length 2, the header, '\n'
    while (10 + len < total - 1) header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (f == NULL) return data_fail("cannot write '%s': %s", path, strerror(errno));
    uint8_t pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(len & 0xff), (uint8_t)(len >> 8) };
    size_t n = rows * (cols > 0 ? cols : 1);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, len, f) == (size_t)len && fwrite(data, elem_size, n, f) == n;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : data_fail("writing '%s' failed (disk full?)", path);
}

// The linear probe (eval_linear.py, simplified): a linear classifier on frozen features,
// trained with cross-entropy by mini-batch SGD with momentum 0.9 and a cosine learning rate
// from lr to 0, no weight decay (eval_linear.py's choices). Unlike eval_linear.py the
// features are computed once, on the evaluation view (no augmentation), and standardised
// per dimension with the training set's mean and std (a BatchNorm without parameters, as in
// MAE's linear probe): then one learning rate suits any model.
typedef struct {
    int D, nclasses;
    float *w, *b;       // (nclasses, D), (nclasses): one block, b right after w
    float *mean, *istd; // (D) each, one block: the standardisation, from the training features
} LinearProbe;

static void standardise(float *z, const float *x, const LinearProbe *lp) {
    for (int j = 0; j < lp->D; j++) z[j] = (x[j] - lp->mean[j]) * lp->istd[j];
}

// Class probabilities of one standardised feature row z.
static void linear_probe_softmax(float *prob, const LinearProbe *lp, const float *z) {
    for (int k = 0; k < lp->nclasses; k++) {
        float s = lp->b[k];
        for (int j = 0; j < lp->D; j++) s += lp->w[(size_t)k * lp->D + j] * z[j];
        prob[k] = s;
    }
    softmax_row(prob, prob, NULL, 1.0f, lp->nclasses);
}

void linear_probe_fit(LinearProbe *lp, const float *x, const int *y, int n, int D, int nclasses,
                      int epochs, int batch, float lr, int seed) {
    lp->D = D; lp->nclasses = nclasses;
    size_t nw = (size_t)nclasses * (D + 1); // w and b: the gradient and the momentum buffer have the same layout
    lp->w = (float *)callocCheck(nw, sizeof(float)); // a convex problem: zeros are a fine start
    lp->b = lp->w + (size_t)nclasses * D;
    lp->mean = (float *)mallocCheck(2 * (size_t)D * sizeof(float));
    lp->istd = lp->mean + D;
    for (int j = 0; j < D; j++) {
        double s = 0.0, s2 = 0.0;
        for (int i = 0; i < n; i++) { double v = x[(size_t)i * D + j]; s += v; s2 += v * v; }
        double m = s / n, var = s2 / n - m * m;
        lp->mean[j] = (float)m;
        lp->istd[j] = var > 1e-12 ? (float)(1.0 / sqrt(var)) : 0.0f; // a constant dimension tells nothing
    }
    float *z = (float *)mallocCheck((size_t)n * D * sizeof(float));
    for (int i = 0; i < n; i++) standardise(z + (size_t)i * D, x + (size_t)i * D, lp);
    if (batch > n) batch = n;
    float *grad = (float *)mallocCheck(nw * sizeof(float)), *buf = (float *)callocCheck(nw, sizeof(float));
    float *prob = (float *)mallocCheck((size_t)batch * nclasses * sizeof(float));
    int *perm = (int *)mallocCheck(n * sizeof(int)), *idx = (int *)mallocCheck(batch * sizeof(int)), perm_epoch = -1;
    int iters = epochs * (n / batch);
    for (int it = 0; it < iters; it++) {
        batch_indices(idx, perm, &perm_epoch, n, batch, seed, it); // the training loop's shuffling, a fresh one each epoch
        // d loss / d logits = p - onehot(y), averaged over the batch. No OpenMP here: a step is
        // a few hundred thousand multiply-adds, less than starting the threads costs.
        for (int i = 0; i < batch; i++) {
            float *p = prob + (size_t)i * nclasses;
            linear_probe_softmax(p, lp, z + (size_t)idx[i] * D);
            p[y[idx[i]]] -= 1.0f;
        }
        memset(grad, 0, nw * sizeof(float));
        for (int k = 0; k < nclasses; k++) {
            float *gw = grad + (size_t)k * D, *gb = grad + (size_t)nclasses * D + k;
            for (int i = 0; i < batch; i++) {
                float g = prob[(size_t)i * nclasses + k] / batch;
                const float *zi = z + (size_t)idx[i] * D;
                for (int j = 0; j < D; j++) gw[j] += g * zi[j];
                *gb += g;
            }
        }
        // torch.optim.SGD with momentum: buf = 0.9 buf + grad; param -= lr buf
        float lr_t = (float)(0.5 * lr * (1.0 + cos(M_PI * it / iters)));
        for (size_t j = 0; j < nw; j++) { // j runs through w, then b
            buf[j] = 0.9f * buf[j] + grad[j];
            lp->w[j] -= lr_t * buf[j];
        }
    }
    free(z); free(grad); free(buf); free(prob); free(perm); free(idx);
}

// Top-1 accuracy in percent of the probe on n feature rows x (not standardised: the probe
// applies the training set's standardisation).
float linear_probe_accuracy(const LinearProbe *lp, const float *x, const int *y, int n) {
    int hits = 0;
    #pragma omp parallel for reduction(+ : hits)
    for (int i = 0; i < n; i++) {
        float z[lp->D], p[lp->nclasses];
        standardise(z, x + (size_t)i * lp->D, lp);
        linear_probe_softmax(p, lp, z);
        int best = 0;
        for (int k = 1; k < lp->nclasses; k++) if (p[k] > p[best]) best = k;
        hits += best == y[i];
    }
    return 100.0f * hits / n;
}

void linear_probe_free(LinearProbe *lp) { free(lp->w); free(lp->mean); memset(lp, 0, sizeof(*lp)); }

// ----------------------------------------------------------------------------
// 11. the command line
#ifndef TESTING

// Command-line options of one command: strings, integers, numbers, switches and lists
// (a flag given several times, e.g. --image a.png --image b.png). parse_args checks each
// value given: an integer must be in [lo, hi], a number in (lo, hi], where hi = 0 means no
// upper bound; so by default integers must not be negative and numbers must be > 0.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" // the tables give lo and hi only where needed
typedef struct { const char *name; char type; void *dst; const char *help; double lo, hi; } Opt;
#define MAX_LIST 256
typedef struct { int n; const char *v[MAX_LIST]; } StrList;

// The config fields as options pointing into cfg, over the whole range of their type:
// config_error judges them together, at the end of parse_args.
static void config_opts(Opt *opts, Config *cfg) {
    for (int i = 0; i < NUM_CONFIG_FIELDS; i++) {
        const ConfigField *f = &config_fields[i];
        opts[i] = f->is_float ? (Opt){ f->name, 'f', config_float(cfg, i), f->help, -INFINITY, INFINITY }
                              : (Opt){ f->name, 'i', config_int(cfg, i), f->help, INT32_MIN, INFINITY };
    }
    opts[NUM_CONFIG_FIELDS] = (Opt){ 0 };
}

// An option's value as --help shows it (its default): "-" for no string and for lists.
static const char *opt_value(char buf[64], const Opt *o) {
    if (o->type == 'i') snprintf(buf, 64, "%d", *(int *)o->dst);
    else if (o->type == 'f') snprintf(buf, 64, "%g", *(float *)o->dst);
    else if (o->type == 'b') snprintf(buf, 64, "off");
    else snprintf(buf, 64, "%s", o->type == 's' && *(const char **)o->dst ? *(const char **)o->dst : "-");
    return buf;
}

static void print_opts(const Opt *opts) {
    char v[64];
    for (const Opt *o = opts; o->name != NULL; o++) printf("  --%-27s %-10s %s\n", o->name, opt_value(v, o), o->help);
}

// The value of --flag as an integer (type 'i') in [lo, hi] or a number ('f') in (lo, hi].
static double parse_number(const char *flag, const char *text, char type, double lo, double hi) {
    char *end;
    errno = 0;
    double v = type == 'i' ? (double)strtol(text, &end, 10) : (double)strtof(text, &end);
    if (end == text || *end != '\0') die("--%s expects %s, got '%s'", flag, type == 'i' ? "an integer" : "a number", text);
    if (type == 'i' && (errno == ERANGE || v < INT32_MIN || v > INT32_MAX))
        die("--%s %s is out of the range of an int", flag, text);
    if (errno == ERANGE) die("--%s %s is out of the range of a float32", flag, text);
    if (!isfinite(v)) die("--%s must be a finite number, got '%s'", flag, text);
    if (hi == 0) hi = INFINITY;
    if (type == 'i' && lo >= 0 && v < 0) die("--%s must not be negative, got %.0f", flag, v);
    if (type == 'i' && v < lo && hi == INFINITY) die("--%s must be >= %.0f, got %.0f", flag, lo, v);
    if (type == 'i' && (v < lo || v > hi)) die("--%s must be in [%.0f, %.0f], got %.0f", flag, lo, hi, v);
    if (type == 'f' && !(v > lo) && hi == INFINITY) die("--%s must be > %g, got %g", flag, lo, v);
    if (type == 'f' && !(v > lo && v <= hi)) die("--%s must be in (%g, %g], got %g", flag, lo, hi, v);
    return v;
}

// Which config fields parse_args saw: a resumed run must not change them, and the data's
// pixel statistics must not overwrite them.
static int cfg_given[NUM_CONFIG_FIELDS];

// Parses argv[2..] into the command's options and, when cfg is not NULL, the config fields,
// which must then make a config that can work. --help (or -h) anywhere prints the command's
// usage line, its options and config flags with their defaults, and exits.
static void parse_args(int argc, char **argv, const Opt *opts, Config *cfg, const char *cmd, const char *usage) {
    Opt all[64 + NUM_CONFIG_FIELDS + 1]; // the command's options, then the config fields
    int n = 0;
    for (; opts[n].name != NULL; n++) all[n] = opts[n];
    all[n] = (Opt){ 0 };
    if (cfg != NULL) config_opts(all + n, cfg);
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: ./dino %s %s\n", cmd, usage);
            print_opts(opts);
            if (cfg != NULL) printf("model and recipe (config flags; the defaults of ./dino %s):\n", cmd);
            print_opts(all + n);
            exit(0);
        }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) die("unexpected argument '%s'; flags look like --name value (./dino %s --help)", a, cmd);
        const Opt *o = all;
        while (o->name != NULL && strcmp(o->name, a + 2) != 0) o++;
        if (o->name == NULL) die("unknown flag %s (./dino %s --help lists them)", a, cmd);
        if (o >= all + n) cfg_given[o - all - n] = 1;
        if (o->type == 'b') { *(int *)o->dst = 1; continue; }
        if (++i >= argc) die("flag %s needs a value (./dino %s --help)", a, cmd);
        if (o->type == 's') *(const char **)o->dst = argv[i];
        else if (o->type == 'l') {
            StrList *l = (StrList *)o->dst;
            if (l->n == MAX_LIST) die("--%s is given more than %d times", o->name, MAX_LIST);
            l->v[l->n++] = argv[i];
        } else if (o->type == 'i') *(int *)o->dst = (int)parse_number(o->name, argv[i], 'i', o->lo, o->hi);
        else *(float *)o->dst = (float)parse_number(o->name, argv[i], 'f', o->lo, o->hi);
    }
    const char *err = cfg != NULL ? config_error(cfg) : NULL;
    if (err != NULL) die("bad config: %s (./dino %s --help lists the flags)", err, cmd);
}

// --threads N (0: OMP_NUM_THREADS or all cores); returns the number the parallel loops use.
static int set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
    return omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

// The pixel mean and std of the data, for the channels whose --mean_* / --std_* were not given.
static void set_pixel_stats(Config *cfg, const Dataset *ds) {
    float mean[3], std[3];
    dataset_stats(ds, mean, std);
    for (int c = 0; c < ds->C; c++) { // the config fields mean_r, mean_g, mean_b follow each other, as do std_*
        if (!cfg_given[config_index("mean_r") + c]) cfg->mean[c] = mean[c];
        if (!cfg_given[config_index("std_r") + c]) cfg->std[c] = std[c];
    }
}

// The output directory given by --flag, made if it is not there; what: the files it is for.
static void make_dirs(const char *path, const char *flag, const char *what) {
    if (path[0] == '\0') die("--%s is empty; give the directory to write %s in", flag, what);
    if (strlen(path) > 4000) die("--%s is longer than 4000 characters; choose a shorter path", flag);
    char p[4096];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = '\0'; mkdir(p, 0755); *s = '/'; }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("cannot create output directory '%s': %s; choose another --%s", path, strerror(errno), flag);
    if (!is_dir(p)) die("output path '%s' is not a directory; choose another --%s", path, flag);
    if (access(p, W_OK) != 0)
        die("output directory '%s' is not writable: %s; choose another --%s", path, strerror(errno), flag);
}

// Does `path` come with its own held-out split (a CIFAR/MNIST directory, or synthetic)?
static int has_test_split(const char *path) {
    char p[4096];
    if (strcmp(path, "synthetic") == 0) return 1;
    const char *names[] = { "test_batch.bin", "test.bin", "t10k-images-idx3-ubyte" };
    for (int i = 0; i < 3; i++) { snprintf(p, sizeof(p), "%s/%s", path, names[i]); if (is_file(p)) return 1; }
    return 0;
}

// A CIFAR-10 directory without test_batch.bin: train holds out its data_batch_5.bin (the
// path goes to holdout) as the test split. 0 for every other data set.
static int cifar_holdout(char holdout[4096], const char *path) {
    char batch1[4096];
    snprintf(holdout, 4096, "%s/data_batch_5.bin", path);
    snprintf(batch1, sizeof(batch1), "%s/data_batch_1.bin", path);
    return is_dir(path) && !has_test_split(path) && is_file(holdout) && is_file(batch1);
}

static void open_or_die(Dataset *ds, const char *path, int test_split, const char *exclude, const Config *c, int synthetic_n, int skip_bad) {
    if (dataset_open(ds, path, test_split, exclude, c->channels, c->img_size, synthetic_n, skip_bad) != 0) die("%s", data_error);
}

// Held-out data named by --test: of a directory or the synthetic set, its test split.
static void open_test(Dataset *ds, const char *path, const Config *c, int synthetic_n, int skip_bad) {
    open_or_die(ds, path, is_dir(path) || strcmp(path, "synthetic") == 0, NULL, c, synthetic_n, skip_bad);
}

// What knn, linear and neighbours share: the checkpoint in *d and its labelled --train and --test
// data, cut to their first max_train and max_test images (0: all). --test is found as open_test
// finds it, except that a CIFAR-10 directory without test_batch.bin holds out its
// data_batch_5.bin, as train does. Returns the number of classes.
static int open_labelled(Dino *d, Dataset *tr, Dataset *te, const char *cmd, const char *model, const char *train_path,
                         const char *test_path, int synthetic_n, int max_train, int max_test) {
    if (model == NULL || train_path == NULL || test_path == NULL) die("./dino %s needs --model, --train and --test", cmd);
    load_checkpoint(d, model);
    char holdout[4096];
    if (cifar_holdout(holdout, test_path)) { // as train: data_batch_5.bin is the test split, left out of --train
        printf("note: '%s' has no test_batch.bin: holding out data_batch_5.bin as the test split\n", test_path);
        test_path = holdout;
    }
    open_or_die(tr, train_path, 0, test_path, &d->cfg, synthetic_n, 0);
    open_test(te, test_path, &d->cfg, synthetic_n, 0);
    if (tr->labels == NULL || te->labels == NULL) die("./dino %s needs labels in both --train and --test", cmd);
    if (tr->C != d->cfg.channels || te->C != d->cfg.channels)
        die("the data has %d channel(s) but the model in '%s' has %d; ./dino %s needs data like its training data",
            tr->C != d->cfg.channels ? tr->C : te->C, model, d->cfg.channels, cmd);
    if (max_train > 0 && tr->n > max_train) tr->n = max_train;
    if (max_test > 0 && te->n > max_test) te->n = max_test;
    return tr->nclasses > te->nclasses ? tr->nclasses : te->nclasses;
}

// The CLS features of every image of ds, (n, dim); L2-normalised ones are those k-NN compares.
static float *cls_features(const Dataset *ds, const Dino *d, int teacher, int l2) {
    float *f = (float *)mallocCheck((size_t)ds->n * d->cfg.dim * sizeof(float));
    if (l2) extract_features(f, ds, d, teacher);
    else backbone_features(f, ds, d, teacher);
    return f;
}

static void print_knn_rows(const int *ks, int nk, const float *top1, const float *top5) {
    printf("  k      top1    top5\n");
    for (int q = 0; q < nk; q++) printf("  %-4d  %6.2f  %6.2f\n", ks[q], top1[q], top5[q]);
}

// dataset_jaccard's figures of a trained model next to its random init's (init NULL: not
// measured, e.g. a resumed run), the best head of each, and one line for scripts.
static void print_jaccard(const float *init, const float *trained, int NH, int n, float threshold) {
    printf("attention vs the objects (paper Table 4): Jaccard %% of the mask holding %.0f%% of the last block's CLS "
           "attention, %d images with an object\n  map              random init      trained\n", threshold * 100.0f, n);
    const float *column[2] = { init, trained };
    int best[2] = { 0, 0 };
    for (int h = 0; h <= NH + 1; h++) { // the heads, the mean of the heads, the best head
        char name[32], cell[2][32];
        snprintf(name, sizeof(name), h < NH ? "head %d" : h == NH ? "mean of heads" : "best head", h);
        for (int j = 0; j < 2; j++) {
            if (h < NH && column[j] != NULL && column[j][h] > column[j][best[j]]) best[j] = h;
            if (column[j] == NULL) snprintf(cell[j], sizeof(cell[j]), "     -");
            else if (h <= NH) snprintf(cell[j], sizeof(cell[j]), "%6.2f", column[j][h]);
            else snprintf(cell[j], sizeof(cell[j]), "%6.2f (head %d)", column[j][best[j]], best[j]);
        }
        printf("  %-15s  %-15s  %s\n", name, cell[0], cell[1]);
    }
    printf("jaccard best head %.2f mean of heads %.2f\n", trained[best[1]], trained[NH]);
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

// Times warmup + n training steps of d and returns the median of the last n (t: their
// seconds, sorted). With ds, each step first draws a batch of it and makes its crops, as
// training does (the --minutes probe); without, every step trains on the same random crops.
static double time_steps(Dino *d, const Dataset *ds, int warmup, int n, double *t) {
    const Config *c = &d->cfg;
    int B = c->batch, pe = -1, *idx = (int *)mallocCheck(B * sizeof(int));
    int *perm = (int *)mallocCheck((ds ? ds->n : 1) * sizeof(int));
    size_t ng = (size_t)2 * B * c->channels * c->img_size * c->img_size;
    size_t nl = (size_t)c->n_local * B * c->channels * c->local_size * c->local_size;
    float *g = (float *)mallocCheck(ng * 4), *l = (float *)mallocCheck((nl ? nl : 1) * 4);
    Rng r = { 1 };
    for (size_t i = 0; ds == NULL && i < ng; i++) g[i] = rng_normal(&r);
    for (size_t i = 0; ds == NULL && i < nl; i++) l[i] = rng_normal(&r);
    for (int s = 0; s < warmup + n; s++) {
        double t0 = now_seconds();
        if (ds != NULL) {
            batch_indices(idx, perm, &pe, ds->n, B, c->seed, s);
            make_crops(g, l, ds, idx, B, c, s);
        }
        dino_step(d, g, l);
        if (s >= warmup) t[s - warmup] = now_seconds() - t0;
    }
    free(g); free(l); free(perm); free(idx);
    qsort(t, n, sizeof(double), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static int cmd_train(int argc, char **argv) {
    Config cfg = default_config();
    static const char default_out[] = "runs/dino";
    const char *data = NULL, *test_path = NULL, *out = default_out, *resume = NULL;
    int epochs = 0, steps = 0, save_every = 2000, eval_every = 0, log_every = 50, eval_train = 10000, eval_test = 2000;
    int synthetic_n = 10000, skip_bad = 0, threads = 0, no_final_eval = 0, no_centering = 0, no_sharpening = 0;
    float minutes = 0.0f, knn_temp = 0.07f;
    Opt opts[] = {
        { "data", 's', &data, "training data: CIFAR dir/.bin, MNIST IDX, image folder, or 'synthetic'" },
        { "test", 's', &test_path, "held-out labelled data for k-NN (default: the data set's test split)" },
        { "out", 's', &out, "output directory (model.bin, log.csv); with --resume: the checkpoint's" },
        { "epochs", 'i', &epochs, "train for N passes over the data (the schedules span them)", 1 },
        { "steps", 'i', &steps, "train for N steps (the schedules are fitted to them)", 1 },
        { "minutes", 'f', &minutes, "train for M minutes of wall clock (schedules fitted to the steps that fit)" },
        { "resume", 's', &resume, "continue a run from its checkpoint" },
        { "save-every", 'i', &save_every, "write the checkpoint every N steps (and at the end; 0 = only then)" },
        { "eval-every", 'i', &eval_every, "k-NN evaluation every N steps (0 = start and end only)" },
        { "log-every", 'i', &log_every, "print a log line every N steps (log.csv gets every step)", 1 },
        { "eval-train", 'i', &eval_train, "training images used by the periodic k-NN (0 = all)" },
        { "eval-test", 'i', &eval_test, "test images used by the periodic k-NN (0 = all)" },
        { "knn-temp", 'f', &knn_temp, "k-NN vote temperature" },
        { "synthetic-n", 'i', &synthetic_n, "training images of the synthetic set (test: n/5)", 1, 1000000 },
        { "skip-bad-images", 'b', &skip_bad, "leave out unreadable images (reported) instead of stopping" },
        { "no-final-eval", 'b', &no_final_eval, "skip the k-NN at the start and the end" },
        { "no-centering", 'b', &no_centering, "collapse study: no centering (= --center 0)" },
        { "no-sharpening", 'b', &no_sharpening, "collapse study: teacher temperature = student's (both teacher temps)" },
        { "threads", 'i', &threads, "OpenMP threads (0 = OMP_NUM_THREADS or all cores)", 0, 1024 },
        { 0 },
    };
    parse_args(argc, argv, opts, &cfg, "train",
               "--data PATH [--test PATH] [--out DIR] [--epochs N | --steps N | --minutes M] [flags]");
    // the two ablations of the paper's collapse study (section 5.3, figure 7), as config fields
    if (no_centering) { cfg.center = 0; cfg_given[config_index("center")] = 1; }
    if (no_sharpening) {
        cfg.teacher_temp = cfg.warmup_teacher_temp = cfg.student_temp;
        cfg_given[config_index("teacher_temp")] = cfg_given[config_index("warmup_teacher_temp")] = 1;
    }
    // everything that can be checked before the data is loaded
    if (data == NULL) die("./dino train needs --data PATH (a CIFAR directory, an MNIST directory, an image folder, or 'synthetic')");
    if ((epochs > 0) + (steps > 0) + (minutes > 0) > 1) die("give only one of --epochs, --steps, --minutes");
    if (resume != NULL && (epochs > 0 || minutes > 0))
        die("--%s cannot be combined with --resume: the run's schedules were fixed when it started (--steps N stops it at step N)",
            epochs > 0 ? "epochs" : "minutes");
    set_threads(threads);
    Dino d;
    if (resume != NULL) {
        load_checkpoint(&d, resume);
        Opt mine[NUM_CONFIG_FIELDS + 1], theirs[NUM_CONFIG_FIELDS + 1];
        config_opts(mine, &cfg);
        config_opts(theirs, &d.cfg);
        for (int i = 0; i < NUM_CONFIG_FIELDS; i++) {
            char want[64], have[64];
            if (cfg_given[i] && memcmp(mine[i].dst, theirs[i].dst, 4) != 0)
                die("--%s %s differs from the checkpoint being resumed ('%s' has %s %s): drop the flag to continue that "
                    "run, or start a new run", mine[i].name, opt_value(want, &mine[i]), resume, mine[i].name,
                    opt_value(have, &theirs[i]));
        }
        cfg = d.cfg;
    }
    // the output directory before the data: a run that cannot save should not start.
    // A resumed run continues in its checkpoint's directory unless --out says otherwise.
    char resume_dir[4096], existing[4200];
    if (resume != NULL && out == default_out) {
        snprintf(resume_dir, sizeof(resume_dir), "%s", resume);
        char *slash = strrchr(resume_dir, '/');
        if (slash != NULL) *slash = '\0';
        out = slash != NULL ? resume_dir : ".";
    }
    make_dirs(out, "out", "model.bin and log.csv");
    snprintf(existing, sizeof(existing), "%s/model.bin", out);
    if (resume == NULL && is_file(existing))
        die("'%s' already holds a run (%s): continue it with --resume %s, or choose another --out", out, existing, existing);
    if (resume != NULL && is_file(existing) && !same_file(existing, resume))
        die("'%s' already holds another run (%s): choose another --out for the resumed run, or leave --out out to continue in '%s''s directory",
            out, existing, resume);
    // the training data, and a held-out split for k-NN: --test, the data set's own, or a CIFAR-10 batch
    char holdout[4096];
    if (test_path == NULL && cifar_holdout(holdout, data)) {
        printf("note: '%s' has no test_batch.bin: holding out data_batch_5.bin as the test split\n", data);
        test_path = holdout;
    }
    Dataset ds, test, *testp = NULL;
    open_or_die(&ds, data, 0, test_path, &cfg, synthetic_n, skip_bad);
    if (test_path == NULL && has_test_split(data)) test_path = data;
    if (test_path != NULL) { open_test(&test, test_path, &cfg, synthetic_n, skip_bad); testp = &test; }
    if (testp != NULL && (testp->labels == NULL || ds.labels == NULL)) { dataset_free(testp); testp = NULL; } // k-NN needs labels
    if (testp != NULL && (testp->C != ds.C)) die("test data has %d channels, training data %d", testp->C, ds.C);
    if (resume == NULL && !cfg_given[config_index("channels")]) cfg.channels = ds.C;
    if (ds.C != cfg.channels)
        die("the data has %d channel(s) but the model %s %d; %s", ds.C, resume ? "being resumed has" : "expects", cfg.channels,
            resume ? "resume it with the data it was trained on" : "set --channels to match, or leave it out");
    if (ds.n < cfg.batch) die("the data set has %d images, fewer than one batch (--batch %d)", ds.n, cfg.batch);
    printf("data: %s, %d images %dx%dx%d%s", data, ds.n, ds.C, ds.S, ds.S, ds.labels ? ", labelled" : "");
    if (testp) printf("; test: %s, %d images", test_path, testp->n);
    printf("\n");

    int total = steps; // how long, and the schedules fitted to it
    if (resume != NULL) {
        if (total == 0) total = schedule_length(&cfg); // resume may stop early; the schedules stay as they were
        printf("resuming %s at step %d of %d\n", resume, d.step, total);
    } else {
        set_pixel_stats(&cfg, &ds);
        if (minutes > 0) { // time 5 steps of this config on this data (after one more that warms caches up)
            Config pc = cfg;
            pc.total_steps = 1000;
            Dino probe; // a throwaway model
            dino_build(&probe, &pc);
            double t[5], per_step = time_steps(&probe, &ds, 1, 5, t);
            dino_free(&probe);
            total = (int)fmax(1.0, minutes * 60.0 / (per_step * 1.03)); // 3% for logging and checkpoints
            printf("budget: %.1f min at %.3f s/step (median of 5) -> %d steps (%.2f epochs)\n",
                   minutes, per_step, total, (double)total / (ds.n / cfg.batch));
        }
        if (total > 0) fit_schedules(&cfg, total);
        else {
            if (epochs > 0) cfg.epochs = epochs;
            cfg.steps_per_epoch = ds.n / cfg.batch;
            cfg.total_steps = 0;
            total = cfg.epochs * cfg.steps_per_epoch;
        }
        dino_build(&d, &cfg);
    }
    printf("model: %zu parameters, ViT dim %d depth %d heads %d patch %d, K %d, %d global %d px + %d local %d px crops, batch %d\n",
           d.num_params, cfg.dim, cfg.depth, cfg.heads, cfg.patch, cfg.out_dim, 2, cfg.img_size, cfg.n_local, cfg.local_size, cfg.batch);

    float init1[KNN_NK] = { 0 }, init5[KNN_NK] = { 0 }, top1[KNN_NK] = { 0 }, top5[KNN_NK] = { 0 };
    int eval = testp != NULL && !no_final_eval, jaccard = eval && testp->masks != NULL; // held-out shapes: Table 4 too
    float jac_init[cfg.heads + 1], jac[cfg.heads + 1];
    double eval_cost = 0.0; // of one periodic k-NN, from the first one's images
    if (eval && d.step == 0) {
        double t = now_seconds();
        knn_eval(&d, &ds, testp, 0, 0, knn_temp, init1, init5);
        t = now_seconds() - t;
        printf("knn at random init: k=20 top1 %.2f top5 %.2f [%.0fs]\n", init1[1], init5[1], t);
        int ntr = eval_train > 0 && eval_train < ds.n ? eval_train : ds.n, nte = eval_test > 0 && eval_test < testp->n ? eval_test : testp->n;
        eval_cost = t * (ntr + nte) / (double)(ds.n + testp->n);
        if (jaccard) dataset_jaccard(jac_init, &d, testp, 0, 1, 0.6f);
    }
    double t0 = now_seconds();
    TrainLoop loop = { out, total, save_every, eval_every, log_every, eval_train, eval_test, knn_temp,
                       minutes > 0 ? t0 + minutes * 60.0 : 0.0, eval_cost };
    train_loop(&d, &ds, testp, &loop);
    char took[32];
    format_duration(took, sizeof(took), now_seconds() - t0);
    printf("trained %d steps in %s; checkpoint %s/model.bin, log %s/log.csv\n", d.step, took, out, out);
    if (eval && !stop_requested) {
        knn_eval(&d, &ds, testp, 0, 0, knn_temp, top1, top5);
        if (d.step > 0 && init1[1] > 0) {
            printf("k-NN on %d held-out images (teacher CLS features, T=%.2f)\n  k     random init   trained\n", testp->n, knn_temp);
            for (int q = 0; q < KNN_NK; q++) printf("  %-4d  %6.2f        %6.2f\n", knn_ks[q], init1[q], top1[q]);
        } else {
            printf("k-NN on the held-out split\n");
            print_knn_rows(knn_ks, KNN_NK, top1, top5);
        }
        printf("knn k=20 top1 %.2f\n", top1[1]);
        if (jaccard) {
            int n = dataset_jaccard(jac, &d, testp, 0, 1, 0.6f);
            print_jaccard(d.step > 0 && init1[1] > 0 ? jac_init : NULL, jac, cfg.heads, n, 0.6f);
        }
    }
    dataset_free(&ds);
    if (testp) dataset_free(&test);
    dino_free(&d);
    return 0;
}

static int cmd_knn(int argc, char **argv) {
    const char *model = NULL, *train_path = NULL, *test_path = NULL;
    int k = 20, baseline = 0, max_train = 0, max_test = 0, synthetic_n = 10000;
    float temp = 0.07f;
    Opt opts[] = {
        { "model", 's', &model, "checkpoint (model.bin)" },
        { "train", 's', &train_path, "labelled training data (the neighbours)" },
        { "test", 's', &test_path, "labelled test data" },
        { "k", 'i', &k, "the headline k (10, 20, 100 and 200 are always shown)", 1, 10000 },
        { "temp", 'f', &temp, "vote temperature T: weight exp(similarity / T)" },
        { "baseline", 'b', &baseline, "also k-NN on raw normalised pixels" },
        { "max-train", 'i', &max_train, "use only the first N training images (0 = all)" },
        { "max-test", 'i', &max_test, "use only the first N test images (0 = all)" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic training set", 1, 1000000 },
        { 0 },
    };
    parse_args(argc, argv, opts, NULL, "knn", "--model CKPT --train PATH --test PATH [flags]");
    Dino d;
    Dataset tr, te;
    int nclasses = open_labelled(&d, &tr, &te, "knn", model, train_path, test_path, synthetic_n, max_train, max_test);
    int D = d.cfg.dim;
    double t = now_seconds();
    float *ftr = cls_features(&tr, &d, 1, 1), *fte = cls_features(&te, &d, 1, 1);
    int ks[KNN_NK + 1], nk = KNN_NK, head;
    memcpy(ks, knn_ks, sizeof(knn_ks));
    for (head = 0; head < nk && ks[head] != k; head++) {}
    if (head == nk) ks[nk++] = k;
    float top1[KNN_NK + 1], top5[KNN_NK + 1];
    knn_classify(top1, top5, ks, nk, ftr, tr.labels, tr.n, fte, te.labels, te.n, D, nclasses, temp);
    printf("k-NN on teacher CLS features (dim %d), %d train / %d test images, T=%.2f [%.1fs]\n",
           D, tr.n, te.n, temp, now_seconds() - t);
    print_knn_rows(ks, nk, top1, top5);
    if (baseline) {
        int pd;
        float *ptr = pixel_features(&tr, &d.cfg, &pd), *pte = pixel_features(&te, &d.cfg, &pd);
        float b1[KNN_NK + 1], b5[KNN_NK + 1];
        knn_classify(b1, b5, ks, nk, ptr, tr.labels, tr.n, pte, te.labels, te.n, pd, nclasses, temp);
        printf("baseline: k-NN on raw normalised pixels (dim %d)\n", pd);
        print_knn_rows(ks, nk, b1, b5);
        printf("pixels k=%d top1 %.2f\n", k, b1[head]);
        free(ptr); free(pte);
    }
    printf("knn k=%d top1 %.2f\n", k, top1[head]);
    free(ftr); free(fte);
    dataset_free(&tr); dataset_free(&te);
    dino_free(&d);
    return 0;
}

// Writes one image's crops side by side as a PNG: the image, global crop 1 and 2, then the
// local crops, each scaled up (nearest neighbour) to the same cell size.
static int cmd_crops(int argc, char **argv) {
    Config cfg = default_config();
    const char *data = NULL, *output = "crops.png";
    int index = 0, synthetic_n = 100;
    Opt opts[] = {
        { "data", 's', &data, "data set (as for train)" },
        { "index", 'i', &index, "which image" },
        { "output", 's', &output, "PNG file to write" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic set", 1, 1000000 },
        { 0 },
    };
    parse_args(argc, argv, opts, &cfg, "crops", "--data PATH [--index I] [--output FILE.png] [config flags]");
    if (data == NULL) die("./dino crops needs --data PATH");
    Dataset ds;
    open_or_die(&ds, data, 0, NULL, &cfg, synthetic_n, 0);
    if (index >= ds.n) die("--index %d is out of range: the data set has %d images", index, ds.n);
    cfg.channels = ds.C;
    set_pixel_stats(&cfg, &ds);
    int C = ds.C, S = cfg.img_size, s = cfg.local_size, ncrops = 2 + cfg.n_local, cell = 4 * S, gap = 4;
    int W = (ncrops + 1) * (cell + gap) - gap;
    float *g = (float *)mallocCheck((size_t)2 * C * S * S * 4), *l = (float *)mallocCheck((size_t)(cfg.n_local ? cfg.n_local : 1) * C * s * s * 4);
    float *orig = (float *)mallocCheck((size_t)C * S * S * 4);
    make_crops(g, l, &ds, &index, 1, &cfg, 0);
    eval_view(orig, &ds, index, &cfg);
    uint8_t *png = (uint8_t *)callocCheck((size_t)W * cell * 3, 1);
    memset(png, 255, (size_t)W * cell * 3);
    for (int j = 0; j <= ncrops; j++) {
        const float *x = j == 0 ? orig : (j <= 2 ? g + (size_t)(j - 1) * C * S * S : l + (size_t)(j - 3) * C * s * s);
        int side = j <= 2 ? S : s;
        for (int y = 0; y < cell; y++)
            for (int xx = 0; xx < cell; xx++)
                for (int c = 0; c < 3; c++) {
                    int cc = C == 3 ? c : 0;
                    float v = x[((size_t)cc * side + y * side / cell) * side + xx * side / cell] * cfg.std[cc] + cfg.mean[cc];
                    png[((size_t)y * W + j * (cell + gap) + xx) * 3 + c] = (uint8_t)lrintf(clamp01(v) * 255.0f);
                }
    }
    int written = stbi_write_png(output, W, cell, 3, png, W * 3), err_write = errno;
    free(g); free(l); free(orig); free(png);
    if (!written) die("cannot write '%s': %s; is its directory writable?", output, strerror(err_write));
    printf("wrote %s: image %d, then global crops 1 and 2, then %d local crops\n", output, index, cfg.n_local);
    dataset_free(&ds);
    return 0;
}

// One split of a data set, found the way train finds it. "test": the data set's own
// held-out split (CIFAR test_batch.bin, MNIST t10k, the synthetic set's held-out range),
// else data_batch_5.bin of a CIFAR-10 directory without test_batch.bin (which train holds
// out); "train": the rest. A data set without a held-out split (a file, an image folder)
// is read whole whichever split is asked for, with a note for "test".
static void open_split(Dataset *ds, const char *path, const char *split, const Config *c, int synthetic_n) {
    int test = strcmp(split, "test") == 0, own = has_test_split(path);
    if (!test && strcmp(split, "train") != 0) die("--split must be train or test, got '%s'", split);
    char holdout[4096];
    int cifar = cifar_holdout(holdout, path);
    if (test && !own && !cifar) printf("note: '%s' has no held-out split: using all of it\n", path);
    if (test && cifar) open_or_die(ds, holdout, 0, NULL, c, synthetic_n, 0);
    else open_or_die(ds, path, test && own, cifar ? holdout : NULL, c, synthetic_n, 0);
    if (ds->C != c->channels) die("'%s' has %d channel(s), the model %d", path, ds->C, c->channels);
}

// ./dino attn --jaccard: the paper's Table 4 on a data set that knows its objects, for the
// checkpoint and for the random init it started from (dino_build with its config and seed).
static int attn_jaccard(const char *model, const char *data, const char *split, int synthetic_n, int max_n, int teacher,
                        float threshold) {
    if (data == NULL) die("./dino attn --jaccard needs --data: a data set with object masks (--data synthetic --split test)");
    Dino d, init;
    load_checkpoint(&d, model);
    Dataset ds;
    open_split(&ds, data, split, &d.cfg, synthetic_n);
    if (ds.masks == NULL) die("'%s' has no object masks: --jaccard needs the synthetic set (--data synthetic)", data);
    dino_build(&init, &d.cfg);
    float *jac_init = (float *)mallocCheck((d.cfg.heads + 1) * sizeof(float)), *jac = (float *)mallocCheck((d.cfg.heads + 1) * sizeof(float));
    dataset_jaccard(jac_init, &init, &ds, max_n, teacher, threshold);
    int n = dataset_jaccard(jac, &d, &ds, max_n, teacher, threshold);
    if (n == 0) die("the %s split of '%s' has no image with an object among its %d", split, data, ds.n);
    printf("%s (step %d), %s split of %s, %s\n", model, d.step, split, data, teacher ? "teacher" : "student");
    print_jaccard(jac_init, jac, d.cfg.heads, n, threshold);
    free(jac_init); free(jac);
    dataset_free(&ds);
    dino_free(&init); dino_free(&d);
    return 0;
}

// The paper's figure 1 on your own images: the last block's CLS attention, one map per head.
static int cmd_attn(int argc, char **argv) {
    const char *model = NULL, *output = "attention", *data = NULL, *split = "train";
    StrList images = { 0 }, indices = { 0 };
    float threshold = 0.6f;
    int student = 0, synthetic_n = 10000, jaccard = 0, max_n = 0;
    Opt opts[] = {
        { "model", 's', &model, "checkpoint (model.bin)" },
        { "image", 'l', &images, "an image file (any format and size stb_image reads); repeat for more" },
        { "data", 's', &data, "or images of a data set (as for train), chosen by --index" },
        { "index", 'l', &indices, "which image of --data; repeat for more" },
        { "split", 's', &split, "the split of --data: train, or test for held-out images" },
        { "output", 's', &output, "directory for the PNGs" },
        { "threshold", 'f', &threshold, "masks keep the most attended patches holding this fraction of the attention", 0, 1 },
        { "student", 'b', &student, "the student's attention (default: the teacher's)" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic training set (its test split has n/5)", 1, 1000000 },
        { "jaccard", 'b', &jaccard, "no pictures: the masks' Jaccard against the objects of --data (synthetic), and random init's" },
        { "n", 'i', &max_n, "--jaccard measures the first N images with an object (0 = all)" },
        { 0 },
    };
    parse_args(argc, argv, opts, NULL, "attn",
               "--model CKPT (--image FILE ... | --data PATH --index I ... | --jaccard --data synthetic --split test) --output DIR");
    if (model == NULL) die("./dino attn needs --model CKPT");
    if (jaccard) return attn_jaccard(model, data, split, synthetic_n, max_n, !student, threshold);
    if (images.n == 0 && indices.n == 0) die("./dino attn needs --image FILE, or --data PATH with --index I");
    if ((data != NULL) != (indices.n > 0)) die("--data and --index go together: --data PATH --index I [--index J ...]");
    Dino d;
    load_checkpoint(&d, model);
    int C = d.cfg.channels;
    make_dirs(output, "output", "the PNGs");
    for (int i = 0; i < images.n; i++) {
        int w, h, n;
        uint8_t *img = stbi_load(images.v[i], &w, &h, &n, C);
        if (img == NULL) die("cannot read image '%s': %s", images.v[i], stbi_failure_reason());
        char name[1024]; // the file's name without its directory and extension
        const char *base = strrchr(images.v[i], '/') ? strrchr(images.v[i], '/') + 1 : images.v[i];
        snprintf(name, sizeof(name), "%s", base);
        if (strrchr(name, '.') != NULL && strrchr(name, '.') != name) *strrchr(name, '.') = '\0';
        if (attention_pictures(output, name, img, w, h, &d, !student, threshold) != 0) die("%s", data_error);
        printf("%s (%dx%d): wrote %s/%s_montage.png, _input.png, _head<h>.png, _mask<h>.png\n", images.v[i], w, h, output, name);
        stbi_image_free(img);
    }
    if (indices.n > 0) {
        Dataset ds;
        open_split(&ds, data, split, &d.cfg, synthetic_n);
        size_t SS = (size_t)ds.S * ds.S;
        uint8_t *img = (uint8_t *)mallocCheck(SS * C);
        for (int i = 0; i < indices.n; i++) {
            int index = (int)parse_number("index", indices.v[i], 'i', 0, 0);
            if (index >= ds.n) die("--index %d is out of range: the %s split has %d images", index, split, ds.n);
            for (int ch = 0; ch < C; ch++) // planar (C, S, S) to interleaved (S, S, C)
                for (size_t k = 0; k < SS; k++) img[k * C + ch] = ds.pixels[((size_t)index * C + ch) * SS + k];
            char name[64], label[32] = "";
            snprintf(name, sizeof(name), "%s%d", split, index);
            if (ds.labels != NULL) snprintf(label, sizeof(label), ", class %d", ds.labels[index]);
            if (attention_pictures(output, name, img, ds.S, ds.S, &d, !student, threshold) != 0) die("%s", data_error);
            printf("%s %s image %d%s: wrote %s/%s_montage.png, _input.png, _head<h>.png, _mask<h>.png\n", data, split, index, label, output, name);
        }
        free(img);
        dataset_free(&ds);
    }
    dino_free(&d);
    return 0;
}

// Retrieval: the training images nearest to held-out ones by the teacher's CLS features (the
// neighbours k-NN votes with), printed and drawn as one PNG, to see what the features learned.
static int cmd_neighbours(int argc, char **argv) {
    const char *model = NULL, *train_path = NULL, *test_path = NULL, *output = NULL;
    StrList indices = { 0 };
    int k = 8, student = 0, synthetic_n = 10000;
    Opt opts[] = {
        { "model", 's', &model, "checkpoint (model.bin)" },
        { "train", 's', &train_path, "labelled training data (the neighbours), as for knn" },
        { "test", 's', &test_path, "labelled held-out data (the queries), as for knn" },
        { "index", 'l', &indices, "a query: image I of --test; repeat for more (one row each)" },
        { "k", 'i', &k, "neighbours per query", 1, 64 },
        { "output", 's', &output, "the PNG to write" },
        { "student", 'b', &student, "the student's features (default: the teacher's)" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic training set (its test split has n/5)", 1, 1000000 },
        { 0 },
    };
    parse_args(argc, argv, opts, NULL, "neighbours",
               "--model CKPT --train PATH --test PATH --index I [--index J ...] [--k 8] --output F.png [flags]");
    if (model == NULL || train_path == NULL || test_path == NULL || indices.n == 0 || output == NULL)
        die("./dino neighbours needs --model, --train, --test, --index and --output");
    Dino d;
    Dataset tr, te;
    open_labelled(&d, &tr, &te, "neighbours", model, train_path, test_path, synthetic_n, 0, 0);
    if (k > tr.n) die("--k %d is more than the %d training images", k, tr.n);
    int nq = indices.n, D = d.cfg.dim, q[MAX_LIST];
    size_t img = (size_t)te.C * te.S * te.S;
    Dataset queries = te; // copies of the query images: their features come from one pass
    queries.n = nq;
    queries.pixels = (uint8_t *)mallocCheck(nq * img);
    for (int i = 0; i < nq; i++) {
        q[i] = (int)parse_number("index", indices.v[i], 'i', 0, 0);
        if (q[i] >= te.n)
            die("--index %d is out of range: the test split of '%s' has %d images", q[i], test_path, te.n);
        memcpy(queries.pixels + i * img, te.pixels + q[i] * img, img);
    }
    FILE *f = fopen(output, "wb"); // tried now, so that a bad path stops us before the features are computed
    if (f == NULL) die("cannot write '%s': %s", output, strerror(errno));
    fclose(f);
    float *ftr = cls_features(&tr, &d, !student, 1), *fq = cls_features(&queries, &d, !student, 1);
    float *train_t = (float *)mallocCheck((size_t)D * tr.n * sizeof(float));
    float *sim = (float *)mallocCheck(nq * k * sizeof(float));
    int *who = (int *)mallocCheck(nq * k * sizeof(int));
    transpose(train_t, ftr, tr.n, D);
    nearest_neighbours(sim, who, fq, nq, train_t, tr.n, D, k);
    for (int i = 0; i < nq; i++) {
        printf("test %d (label %d): its %d nearest training images by %s CLS features\n", q[i], te.labels[q[i]], k,
               student ? "student" : "teacher");
        for (int j = i * k; j < (i + 1) * k; j++)
            printf("  train %-6d label %-3d similarity %.3f\n", who[j], tr.labels[who[j]], sim[j]);
    }
    int PW, PH;
    uint8_t *png = neighbour_picture(&PW, &PH, &te, q, nq, &tr, who, k);
    if (!stbi_write_png(output, PW, PH, 3, png, PW * 3)) die("cannot write '%s'", output);
    printf("wrote %s (%d x %d px: a row per query, then its neighbours; green frame: same label, red: another)\n",
           output, PW, PH);
    free(png); free(ftr); free(fq); free(train_t); free(sim); free(who); free(queries.pixels);
    dataset_free(&tr); dataset_free(&te);
    dino_free(&d);
    return 0;
}

// Teacher CLS features for other programs, as .npy files numpy.load reads directly.
static int cmd_embed(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *output = NULL, *labels_path = NULL, *split = "train";
    int student = 0, l2 = 0, synthetic_n = 10000;
    Opt opts[] = {
        { "model", 's', &model, "checkpoint (model.bin)" },
        { "data", 's', &data, "images (as for train), embedded in data order" },
        { "split", 's', &split, "the split of --data: train or test" },
        { "output", 's', &output, "FILE.npy: float32 (images, dim), one row per image" },
        { "labels", 's', &labels_path, "int32 labels .npy, when the data has them (default: FILE_labels.npy)" },
        { "student", 'b', &student, "the student's features (default: the teacher's)" },
        { "l2", 'b', &l2, "L2-normalise each row (the features k-NN compares)" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic training set (its test split has n/5)", 1, 1000000 },
        { 0 },
    };
    parse_args(argc, argv, opts, NULL, "embed", "--model CKPT --data PATH --output FILE.npy [flags]");
    if (model == NULL || data == NULL || output == NULL) die("./dino embed needs --model, --data and --output");
    Dino d;
    load_checkpoint(&d, model);
    Dataset ds;
    open_split(&ds, data, split, &d.cfg, synthetic_n);
    float *feats = cls_features(&ds, &d, !student, l2);
    if (write_npy(output, "<f4", feats, sizeof(float), ds.n, d.cfg.dim) != 0) die("%s", data_error);
    printf("wrote %s: %d x %d float32, %s CLS features after the final norm%s\n", output, ds.n, d.cfg.dim,
           student ? "student" : "teacher", l2 ? ", L2-normalised" : "");
    if (ds.labels != NULL) {
        char derived[4096];
        if (labels_path == NULL) { // FILE.npy -> FILE_labels.npy
            size_t len = strlen(output);
            int cut = len > 4 && strcmp(output + len - 4, ".npy") == 0 ? (int)len - 4 : (int)len;
            snprintf(derived, sizeof(derived), "%.*s_labels.npy", cut, output);
            labels_path = derived;
        }
        if (write_npy(labels_path, "<i4", ds.labels, sizeof(int), ds.n, 0) != 0) die("%s", data_error);
        printf("wrote %s: %d int32 labels (%d classes)\n", labels_path, ds.n, ds.nclasses);
    }
    free(feats);
    dataset_free(&ds);
    dino_free(&d);
    return 0;
}

// The linear probe: a linear classifier on frozen teacher features, train and test top-1.
static int cmd_linear(int argc, char **argv) {
    const char *model = NULL, *train_path = NULL, *test_path = NULL;
    // 100 epochs as eval_linear.py; the rate from a sweep on a synthetic-set model (0.1: 36%, 1: 44.5%, 3: 46.6%
    // test top-1, all still rising with more epochs): the probe is cheap, so it can afford to converge
    int epochs = 100, batch = 256, max_train = 0, max_test = 0, synthetic_n = 10000, student = 0, seed = 0;
    float lr = 1.0f;
    Opt opts[] = {
        { "model", 's', &model, "checkpoint (model.bin)" },
        { "train", 's', &train_path, "labelled training data" },
        { "test", 's', &test_path, "labelled test data" },
        { "epochs", 'i', &epochs, "passes over the training features", 1 },
        { "batch", 'i', &batch, "features per SGD step", 1 },
        { "lr", 'f', &lr, "learning rate at the start (cosine to 0; momentum 0.9; standardised features)" },
        { "seed", 'i', &seed, "shuffling seed" },
        { "student", 'b', &student, "the student's features (default: the teacher's)" },
        { "max-train", 'i', &max_train, "use only the first N training images (0 = all)" },
        { "max-test", 'i', &max_test, "use only the first N test images (0 = all)" },
        { "synthetic-n", 'i', &synthetic_n, "size of the synthetic training set", 1, 1000000 },
        { 0 },
    };
    parse_args(argc, argv, opts, NULL, "linear", "--model CKPT --train PATH --test PATH [flags]");
    Dino d;
    Dataset tr, te;
    int nclasses = open_labelled(&d, &tr, &te, "linear", model, train_path, test_path, synthetic_n, max_train, max_test);
    int D = d.cfg.dim;
    double t = now_seconds();
    float *ftr = cls_features(&tr, &d, !student, 0), *fte = cls_features(&te, &d, !student, 0);
    double t_feat = now_seconds() - t;
    LinearProbe lp;
    linear_probe_fit(&lp, ftr, tr.labels, tr.n, D, nclasses, epochs, batch, lr, seed);
    float train_top1 = linear_probe_accuracy(&lp, ftr, tr.labels, tr.n);
    float test_top1 = linear_probe_accuracy(&lp, fte, te.labels, te.n);
    printf("linear probe on %s CLS features (dim %d), %d train / %d test images, %d epochs, lr %g [features %.1fs, probe %.1fs]\n",
           student ? "student" : "teacher", D, tr.n, te.n, epochs, lr, t_feat, now_seconds() - t - t_feat);
    printf("linear top1 train %.2f test %.2f\n", train_top1, test_top1);
    linear_probe_free(&lp);
    free(ftr); free(fte);
    dataset_free(&tr); dataset_free(&te);
    dino_free(&d);
    return 0;
}

// FLOPs of one training step, counting matmuls and attention only: the teacher's forward on
// the global crops, the student's forward and backward on all crops (backward = 2x forward,
// but the patch embedding needs no input gradient). executed = 0: the model's FLOPs, counted
// as data/bench_torch.py counts them (every row of every block, the last layer's gradient
// computed while frozen); 1: the ones dino.c runs, without the last block's rows other than
// the CLS token's after its qkv (their attention rows, projection and MLP: block_forward)
// and, with last_frozen, without the frozen gradient.
static double step_flops(const Config *c, int executed, int last_frozen) {
    double D = c->dim, H = (double)c->mlp_ratio * c->dim, hs = (double)c->dim / c->heads, CPP = (double)c->channels * c->patch * c->patch;
    double fwd[2], bwd[2];
    for (int g = 0; g < 2; g++) {
        double n = (double)((g == 0 ? c->img_size : c->local_size) / c->patch), np = n * n, T = np + 1;
        double embed = 2 * np * CPP * D;
        double qkv = 2 * T * D * 3 * D, per_query = 2 * D * D + 4 * D * H + c->heads * 4 * T * hs; // proj, MLP, attention row
        double block = qkv + T * per_query, last = executed ? qkv + per_query : block; // qkv of every token, the rest of CLS
        fwd[g] = embed + (c->depth - 1) * block + last;
        bwd[g] = embed + 2 * ((c->depth - 1) * block + last);
    }
    double HH = c->head_hidden, BN = c->bottleneck, K = c->out_dim, head = 2 * (D * HH + HH * HH + HH * BN + BN * K);
    double head_bwd = 2 * head - (executed && last_frozen ? 2 * BN * K : 0);
    double ng = 2.0 * c->batch, nl = (double)c->n_local * c->batch;
    return ng * (fwd[0] + head) + ng * fwd[0] + nl * fwd[1] + (ng + nl) * head + ng * bwd[0] + nl * bwd[1] + (ng + nl) * head_bwd;
}

// Times full training steps on fixed random crops (no data loading): teacher forward,
// student forward and backward, loss, clipping, AdamW, EMA.
static int cmd_bench(int argc, char **argv) {
    Config cfg = default_config();
    // the fixed benchmark configuration (issue 5): keep it so figures stay comparable
    cfg.img_size = 32; cfg.patch = 4; cfg.dim = 192; cfg.depth = 6; cfg.heads = 3; cfg.mlp_ratio = 4;
    cfg.head_hidden = 1024; cfg.bottleneck = 256; cfg.out_dim = 4096;
    cfg.n_local = 6; cfg.local_size = 16; cfg.batch = 64; cfg.drop_path = 0.1f;
    int steps = 10, warmup = 2, threads = 0;
    Opt opts[] = {
        { "steps", 'i', &steps, "timed steps", 1 },
        { "warmup", 'i', &warmup, "untimed steps first" },
        { "threads", 'i', &threads, "OpenMP threads (0 = OMP_NUM_THREADS or all cores)", 0, 1024 },
        { 0 },
    };
    parse_args(argc, argv, opts, &cfg, "bench",
               "[--steps N] [config flags]  (default: the fixed benchmark configuration)");
    threads = set_threads(threads);
    cfg.total_steps = 1000; // a mid-schedule step: lr > 0, every part of the update runs
    Dino d;
    dino_build(&d, &cfg);
    const int start = 200; // the timed steps run from here
    d.step = start;
    double *t = (double *)mallocCheck(steps * sizeof(double)), med = time_steps(&d, NULL, warmup, steps, t);
    double flops = step_flops(&cfg, 0, 0), run = step_flops(&cfg, 1, epoch_at(&cfg, start) < cfg.freeze_last_layer);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("config: %d px patch %d, dim %d depth %d heads %d mlp %d, head %d/%d, K %d, 2x%d px + %dx%d px crops, batch %d\n",
           cfg.img_size, cfg.patch, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.head_hidden, cfg.bottleneck, cfg.out_dim,
           cfg.img_size, cfg.n_local, cfg.local_size, cfg.batch);
    printf("FLOPs per step: %.3f GFLOP (matmuls and attention, counted as data/bench_torch.py counts them); dino.c runs "
           "%.3f of them (the last block's CLS rows only after its qkv, no gradient for the frozen last layer): "
           "%.1f GFLOP/s\n", flops / 1e9, run / 1e9, run / med / 1e9);
    printf("bench dino.c: step %.1f ms (median of %d, min %.1f, max %.1f), %.1f img/s, %.1f GFLOP/s, peak RSS %.0f MiB, threads %d\n",
           med * 1e3, steps, t[0] * 1e3, t[steps - 1] * 1e3, cfg.batch / med, flops / med / 1e9, ru.ru_maxrss / 1024.0, threads);
    free(t);
    dino_free(&d);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    Config c = default_config();
    Opt none[] = { { 0 } }, fields[NUM_CONFIG_FIELDS + 1];
    parse_args(argc, argv, none, &c, "info", "[config flags]");
    Dino d;
    dino_build(&d, &c);
    config_opts(fields, &d.cfg);
    print_opts(fields);
    printf("parameters (student; the teacher, the gradients and both AdamW moments have the same layout):\n");
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        printf("  %2d %-10s %10zu  %s%s\n", i, param_info[i].name, d.param_sizes[i], param_info[i].torch_name,
               param_info[i].per_block ? " (stacked over blocks)" : "");
    printf("total %zu parameters (%.2f MB per copy)\n", d.num_params, d.num_params * 4.0 / 1e6);
    dino_free(&d);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const struct { const char *name; int (*run)(int, char **); const char *help; } commands[] = {
        { "train", cmd_train, "self-supervised training: ./dino train --data PATH --out DIR [--minutes M]" },
        { "knn", cmd_knn, "k-NN evaluation of a checkpoint: ./dino knn --model CKPT --train PATH --test PATH" },
        { "crops", cmd_crops, "PNG of one image's multi-crop views: ./dino crops --data PATH --output crops.png" },
        { "attn", cmd_attn, "attention maps of the last block: ./dino attn --model CKPT --image FILE --output DIR" },
        { "neighbours", cmd_neighbours,
          "nearest training images: ./dino neighbours --model CKPT --train P --test P --index I --output F.png" },
        { "embed", cmd_embed, "teacher features as .npy: ./dino embed --model CKPT --data PATH --output FILE.npy" },
        { "linear", cmd_linear, "linear probe on frozen features: ./dino linear --model CKPT --train PATH --test PATH" },
        { "bench", cmd_bench, "time training steps on fixed random crops: ./dino bench [--steps N]" },
        { "info", cmd_info, "the configuration and the parameter layout" },
    };
    int n = (int)(sizeof(commands) / sizeof(commands[0]));
    if (argc < 2) die("no command given; ./dino --help lists the commands");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        printf("usage: ./dino COMMAND [flags]   (./dino COMMAND --help for its flags)\n");
        for (int i = 0; i < n; i++) printf("  %-10s %s\n", commands[i].name, commands[i].help);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    die("unknown command '%s'; try ./dino --help", argv[1]);
}
#endif
