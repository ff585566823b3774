// gpugrad CUDA kernels: softmax and log_softmax along one axis, forward and backward, each in
// one launch.
//
//   rows: the axis is the last one, x as (rows, R); one block per row reduces max and sum.
//   cols: the axis has a stride, x as (outer, R, inner); one thread per (outer, inner) column,
//         neighbouring threads reading neighbouring columns.
// Forward (as the NumPy backend): m = max (0 when not finite), e = exp(x - m);
//   softmax = e / sum(e), log_softmax = x - m - log(sum(e)).
// Backward from the output y:  softmax: gx = y * (g - sum(g * y));
//                          log_softmax: gx = g - exp(y) * sum(g).
#include "gg_math.cuh"

#define GG_SM_BLOCK 256

template <class T>
__device__ __forceinline__ void gg_softmax_rows_impl(const T* __restrict__ x, T* __restrict__ y, gg_index rows,
                                                     gg_index R, int log_) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_SM_BLOCK];
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * R;
        T* yr = y + r * R;
        A m = -gg_inf<A>();
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) {
            A v = gg_in(xr, k);
            if (v > m || v != v) m = v;
        }
        m = gg_block_max(m, buf);
        if (!gg_isfinite(m)) m = A(0);
        A s = A(0);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) s += gg_exp(A(gg_in(xr, k)) - m);
        s = gg_block_sum(s, buf);
        if (log_) {
            const A ls = gg_log(s);
            for (gg_index k = threadIdx.x; k < R; k += blockDim.x) gg_out(yr, k, A(gg_in(xr, k)) - m - ls);
        } else {
            for (gg_index k = threadIdx.x; k < R; k += blockDim.x) gg_out(yr, k, gg_exp(A(gg_in(xr, k)) - m) / s);
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_softmax_cols_impl(const T* __restrict__ x, T* __restrict__ y, gg_index outer,
                                                     gg_index R, gg_index inner, int log_) {
    typedef typename gg_acc<T>::type A;
    const gg_index total = outer * inner;
    for (gg_index t = (gg_index)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (gg_index)gridDim.x * blockDim.x) {
        const gg_index base = (t / inner) * R * inner + t % inner;
        A m = -gg_inf<A>();
        for (gg_index r = 0; r < R; ++r) {
            A v = gg_in(x, base + r * inner);
            if (v > m || v != v) m = v;
        }
        if (!gg_isfinite(m)) m = A(0);
        A s = A(0);
        for (gg_index r = 0; r < R; ++r) s += gg_exp(A(gg_in(x, base + r * inner)) - m);
        const A ls = gg_log(s);
        for (gg_index r = 0; r < R; ++r) {
            const gg_index i = base + r * inner;
            A v = A(gg_in(x, i)) - m;
            gg_out(y, i, log_ ? v - ls : gg_exp(v) / s);
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_softmax_bwd_rows_impl(const T* __restrict__ g, const T* __restrict__ y,
                                                         T* __restrict__ gx, gg_index rows, gg_index R, int log_) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_SM_BLOCK];
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* gr = g + r * R;
        const T* yr = y + r * R;
        T* out = gx + r * R;
        A s = A(0);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x)
            s += log_ ? A(gg_in(gr, k)) : A(gg_in(gr, k)) * A(gg_in(yr, k));
        s = gg_block_sum(s, buf);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) {
            const A gv = gg_in(gr, k), yv = gg_in(yr, k);
            gg_out(out, k, log_ ? gv - gg_exp(yv) * s : yv * (gv - s));
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_softmax_bwd_cols_impl(const T* __restrict__ g, const T* __restrict__ y,
                                                         T* __restrict__ gx, gg_index outer, gg_index R,
                                                         gg_index inner, int log_) {
    typedef typename gg_acc<T>::type A;
    const gg_index total = outer * inner;
    for (gg_index t = (gg_index)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (gg_index)gridDim.x * blockDim.x) {
        const gg_index base = (t / inner) * R * inner + t % inner;
        A s = A(0);
        for (gg_index r = 0; r < R; ++r) {
            const gg_index i = base + r * inner;
            s += log_ ? A(gg_in(g, i)) : A(gg_in(g, i)) * A(gg_in(y, i));
        }
        for (gg_index r = 0; r < R; ++r) {
            const gg_index i = base + r * inner;
            const A gv = gg_in(g, i), yv = gg_in(y, i);
            gg_out(gx, i, log_ ? gv - gg_exp(yv) * s : yv * (gv - s));
        }
    }
}

#define GG_SOFTMAX(T, SFX)                                                                                     \
    extern "C" __global__ void gg_softmax_rows_##SFX(const T* __restrict__ x, T* __restrict__ y, gg_index rows, \
                                                     gg_index R, int log_) {                                  \
        gg_softmax_rows_impl<T>(x, y, rows, R, log_);                                                          \
    }                                                                                                          \
    extern "C" __global__ void gg_softmax_cols_##SFX(const T* __restrict__ x, T* __restrict__ y, gg_index outer, \
                                                     gg_index R, gg_index inner, int log_) {                  \
        gg_softmax_cols_impl<T>(x, y, outer, R, inner, log_);                                                  \
    }                                                                                                          \
    extern "C" __global__ void gg_softmax_bwd_rows_##SFX(const T* __restrict__ g, const T* __restrict__ y,     \
                                                         T* __restrict__ gx, gg_index rows, gg_index R,         \
                                                         int log_) {                                          \
        gg_softmax_bwd_rows_impl<T>(g, y, gx, rows, R, log_);                                                  \
    }                                                                                                          \
    extern "C" __global__ void gg_softmax_bwd_cols_##SFX(const T* __restrict__ g, const T* __restrict__ y,     \
                                                         T* __restrict__ gx, gg_index outer, gg_index R,        \
                                                         gg_index inner, int log_) {                          \
        gg_softmax_bwd_cols_impl<T>(g, y, gx, outer, R, inner, log_);                                          \
    }

GG_SOFTMAX(gg_half, f16)
GG_SOFTMAX(float, f32)
GG_SOFTMAX(double, f64)
