// gpugrad host kernels: the gradient of 2-D max pooling for the CPU (gpugrad/fusion/host_ops.py
// registers it for the op "max_pool2d"), for windows that lie inside the input (no padding, the
// last window ending inside: the common 2x2/stride-2 case; the op's rule runs otherwise).
//
// The op's rule (gpugrad/ops/nn.py, MaxPool2d; gpugrad/backends/portable.py pool2d, pool_argmax,
// pool_scatter), window by window: taps k = i * kw + j in order, the window's best is the first
// maximum (a later tap replaces it only when greater), or the last NaN (PyTorch's CPU rule):
//   forward:  y[n,c,oh,ow] = x at the best tap (NaN where the window holds one)
//   backward: gx = 0; gx[n,c, oh*sh + i*dh, ow*sw + j*dw] += g[n,c,oh,ow] at the best tap (i, j)
// x, g and gx are addressed through their element strides (n, c, h, w), so any layout whose rows
// are contiguous in x and gx is taken (the channels-first storage of a convolution's output, say).
// The taps of a row of windows are compared as vectors; the gradient is then added window by
// window (where windows overlap, an input element's sum is taken in another order than the rule's
// tap by tap: a few ulp apart).
#pragma once

// S[0..5]: n, c, h, w, oh, ow; S[12..15]: x's element strides (n, c, h, w). The window's shape,
// stride and dilation are template arguments (the taps unroll; a row of windows vectorises).
struct gg_pool_geom {
    long long n, c, h, w, oh, ow;
    long long xs[4];
};

static inline gg_pool_geom gg_pool_geom_of(const double* S) {
    gg_pool_geom q;
    q.n = (long long)S[0]; q.c = (long long)S[1]; q.h = (long long)S[2]; q.w = (long long)S[3];
    q.oh = (long long)S[4]; q.ow = (long long)S[5];
    for (int k = 0; k < 4; ++k) q.xs[k] = (long long)S[12 + k];
    return q;
}

// One row of windows (n, c, oh): each window's best value and tap.
template <class T, int KH, int KW, int SH, int SW, int DH, int DW>
static inline void gg_pool_row(const T* __restrict x, const gg_pool_geom& q, long long n, long long c, long long oh,
                               T* __restrict best, int* __restrict tap) {
    const T* base = x + n * q.xs[0] + c * q.xs[1] + oh * SH * q.xs[2];
    const long long xh = q.xs[2];
    const int xw = 1;  // (x's rows are contiguous: host_ops declines other layouts)
#pragma omp simd
    for (long long o = 0; o < q.ow; ++o) {
        const T* win = base + o * SW;
        T b = win[0];
        int t = 0;
#pragma GCC unroll 16
        for (int i = 0; i < KH; ++i)
#pragma GCC unroll 16
            for (int j = 0; j < KW; ++j) {
                const T v = win[i * DH * xh + j * DW * xw];
                const bool up = v > b || v != v;
                b = up ? v : b;
                t = up ? i * KW + j : t;
            }
        best[o] = b;
        tap[o] = t;
    }
}

// The planes (n, c) in x's storage order (channels-first storage: c outer), so that x and gx are
// walked in the order they lie in memory.
template <class F>
static inline void gg_pool_planes(const gg_pool_geom& q, F&& body) {
    if (q.xs[1] > q.xs[0]) {
        for (long long c = 0; c < q.c; ++c)
            for (long long n = 0; n < q.n; ++n) body(n, c);
    } else {
        for (long long n = 0; n < q.n; ++n)
            for (long long c = 0; c < q.c; ++c) body(n, c);
    }
}

// g: (n, c, oh, ow) with element strides S[16..19] (rows contiguous); gx: a contiguous buffer of
// n*c*h*w elements addressed with element strides S[20..23] (rows contiguous). scratch: ow values
// of T, then ow ints.
template <class T, int KH, int KW, int SH, int SW, int DH, int DW>
void gg_max_pool_host_bwd(const T* __restrict x, const T* __restrict g, const double* S, T* __restrict gx,
                          T* __restrict best, int* __restrict tap) {
    const gg_pool_geom q = gg_pool_geom_of(S);
    long long gs[4], xs[4];
    for (int k = 0; k < 4; ++k) {
        gs[k] = (long long)S[16 + k];
        xs[k] = (long long)S[20 + k];
    }
    const long long total = q.n * q.c * q.h * q.w;
#pragma omp simd
    for (long long k = 0; k < total; ++k) gx[k] = T(0);
    gg_pool_planes(q, [&](long long n, long long c) {
        for (long long r = 0; r < q.oh; ++r) {
            gg_pool_row<T, KH, KW, SH, SW, DH, DW>(x, q, n, c, r, best, tap);
            const T* gr = g + n * gs[0] + c * gs[1] + r * gs[2];
            T* out = gx + n * xs[0] + c * xs[1] + r * SH * xs[2];
            const long long xh = xs[2];
            for (long long o = 0; o < q.ow; ++o) {
                const int i = tap[o] / KW, j = tap[o] % KW;
                out[i * DH * xh + o * SW + j * DW] += gr[o];
            }
        }
    });
}
