// gpugrad CUDA kernels: layer normalisation over the last R elements of each row (x as (rows, R),
// weight and bias of R elements), forward and backward, as the op's rule (LayerNorm in
// gpugrad/ops/nn.py): biased variance, eps inside the square root, statistics accumulated in
// float for float16/float32 and in double for float64.
//
//   gg_ln_fwd_rows:    one block per row: mean, rstd = 1 / sqrt(mean((x - mean)^2) + eps),
//                      y = (x - mean) * rstd * w + b; stats[2r] = mean, stats[2r + 1] = rstd.
//   gg_ln_bwd_rows:    one block per row, from those statistics: xhat = (x - mean) * rstd,
//                      gxhat = g * w, gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)).
//   gg_ln_bwd_params:  one thread per column: gw = sum_r g * xhat, gb = sum_r g, added in row order
//                      (the same bits on every run).
#include "gg_math.cuh"

#define GG_LN_BLOCK 256

template <class T>
__device__ __forceinline__ void gg_ln_fwd_rows_impl(const T* __restrict__ x, const T* __restrict__ w,
                                                    const T* __restrict__ b, T* __restrict__ y,
                                                    typename gg_acc<T>::type* __restrict__ stats, gg_index rows,
                                                    gg_index R, double eps) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_LN_BLOCK];
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * R;
        T* yr = y + r * R;
        A s = A(0);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) s += A(gg_in(xr, k));
        const A mean = gg_block_sum(s, buf) / A(R);
        A v = A(0);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) {
            const A d = A(gg_in(xr, k)) - mean;
            v += d * d;
        }
        const A rstd = A(1) / gg_sqrt(gg_block_sum(v, buf) / A(R) + A(eps));
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x)
            gg_out(yr, k, (A(gg_in(xr, k)) - mean) * rstd * A(gg_in(w, k)) + A(gg_in(b, k)));
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_ln_bwd_rows_impl(const T* __restrict__ g, const T* __restrict__ x,
                                                    const T* __restrict__ w,
                                                    const typename gg_acc<T>::type* __restrict__ stats,
                                                    T* __restrict__ gx, gg_index rows, gg_index R) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_LN_BLOCK];
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* gr = g + r * R;
        const T* xr = x + r * R;
        T* out = gx + r * R;
        const A mean = stats[2 * r], rstd = stats[2 * r + 1];
        A s1 = A(0), s2 = A(0);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) {
            const A gh = A(gg_in(gr, k)) * A(gg_in(w, k));
            s1 += gh;
            s2 += gh * (A(gg_in(xr, k)) - mean) * rstd;
        }
        const A m1 = gg_block_sum(s1, buf) / A(R);
        const A m2 = gg_block_sum(s2, buf) / A(R);
        for (gg_index k = threadIdx.x; k < R; k += blockDim.x) {
            const A gh = A(gg_in(gr, k)) * A(gg_in(w, k));
            const A xhat = (A(gg_in(xr, k)) - mean) * rstd;
            gg_out(out, k, rstd * (gh - m1 - xhat * m2));
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_ln_bwd_params_impl(const T* __restrict__ g, const T* __restrict__ x,
                                                      const typename gg_acc<T>::type* __restrict__ stats,
                                                      T* __restrict__ gw, T* __restrict__ gb, gg_index rows,
                                                      gg_index R) {
    typedef typename gg_acc<T>::type A;
    for (gg_index k = (gg_index)blockIdx.x * blockDim.x + threadIdx.x; k < R; k += (gg_index)gridDim.x * blockDim.x) {
        A sw = A(0), sb = A(0);
        for (gg_index r = 0; r < rows; ++r) {
            const A gv = gg_in(g, r * R + k);
            sw += gv * (A(gg_in(x, r * R + k)) - stats[2 * r]) * stats[2 * r + 1];
            sb += gv;
        }
        gg_out(gw, k, sw);
        gg_out(gb, k, sb);
    }
}

#define GG_LN(T, SFX)                                                                                          \
    extern "C" __global__ void gg_ln_fwd_rows_##SFX(const T* __restrict__ x, const T* __restrict__ w,          \
                                                    const T* __restrict__ b, T* __restrict__ y,               \
                                                    gg_acc<T>::type* __restrict__ stats, gg_index rows,       \
                                                    gg_index R, double eps) {                                  \
        gg_ln_fwd_rows_impl<T>(x, w, b, y, stats, rows, R, eps);                                               \
    }                                                                                                          \
    extern "C" __global__ void gg_ln_bwd_rows_##SFX(const T* __restrict__ g, const T* __restrict__ x,          \
                                                    const T* __restrict__ w,                                   \
                                                    const gg_acc<T>::type* __restrict__ stats,                 \
                                                    T* __restrict__ gx, gg_index rows, gg_index R) {           \
        gg_ln_bwd_rows_impl<T>(g, x, w, stats, gx, rows, R);                                                   \
    }                                                                                                          \
    extern "C" __global__ void gg_ln_bwd_params_##SFX(const T* __restrict__ g, const T* __restrict__ x,        \
                                                      const gg_acc<T>::type* __restrict__ stats,               \
                                                      T* __restrict__ gw, T* __restrict__ gb, gg_index rows,   \
                                                      gg_index R) {                                            \
        gg_ln_bwd_params_impl<T>(g, x, stats, gw, gb, rows, R);                                                \
    }

GG_LN(gg_half, f16)
GG_LN(float, f32)
GG_LN(double, f64)
