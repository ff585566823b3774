// gpugrad CUDA kernels: softmax cross-entropy from logits and integer labels, fused.
//
// For logits x (N, C) and labels y (N,) int64, with label smoothing eps (PyTorch's definition):
//   lse_i  = log(sum_c exp(x_ic))
//   loss_i = (1 - eps) * (lse_i - x_{i,y_i}) + eps * (lse_i - mean_c x_ic)
//   loss   = sum over rows with y_i != ignore_index of loss_i / (number of such rows)
// (0/0 = NaN when every row is ignored, as PyTorch; a label outside [0, C) gives NaN, since a
// GPU kernel cannot raise). d loss / d x_ic = g / count * (softmax_ic - (1-eps)[c == y_i] - eps/C)
// on counted rows, 0 on ignored ones.
//
// gg_ce_fwd_rows writes per-row losses and counts into work[0:N], work[N:2N] and lse into
// stats[0:N]; gg_ce_finish (one block) writes the mean loss and stats[N] = count; the backward
// reads stats. work and stats are in the accumulation type (float for half).
#include "gg_math.cuh"

#define GG_CE_BLOCK 256

template <class T>
__device__ __forceinline__ void gg_ce_fwd_rows_impl(const T* __restrict__ x, const long long* __restrict__ labels,
                                                    typename gg_acc<T>::type* __restrict__ work,
                                                    typename gg_acc<T>::type* __restrict__ stats, gg_index rows,
                                                    gg_index C, long long ignore_index, double eps) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_CE_BLOCK];
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * C;
        A m = -gg_inf<A>();
        A sx = A(0);
        for (gg_index k = threadIdx.x; k < C; k += blockDim.x) {
            A v = gg_in(xr, k);
            sx += v;
            if (v > m || v != v) m = v;
        }
        m = gg_block_max(m, buf);
        sx = gg_block_sum(sx, buf);
        if (!gg_isfinite(m)) m = A(0);
        A s = A(0);
        for (gg_index k = threadIdx.x; k < C; k += blockDim.x) s += gg_exp(A(gg_in(xr, k)) - m);
        s = gg_block_sum(s, buf);
        if (threadIdx.x == 0) {
            const A lse = m + gg_log(s);
            const long long label = labels[r];
            stats[r] = lse;
            if (label == ignore_index) {
                work[r] = A(0);
                work[rows + r] = A(0);
            } else {
                A nll = (label >= 0 && label < C) ? lse - A(gg_in(xr, label)) : gg_inf<A>() - gg_inf<A>();
                A smooth = lse - sx / A(C);
                work[r] = A(1.0 - eps) * nll + A(eps) * smooth;
                work[rows + r] = A(1);
            }
        }
    }
}

template <class T>
__device__ __forceinline__ void gg_ce_finish_impl(const typename gg_acc<T>::type* __restrict__ work,
                                                  typename gg_acc<T>::type* __restrict__ stats, T* __restrict__ loss,
                                                  gg_index rows) {
    typedef typename gg_acc<T>::type A;
    __shared__ A buf[GG_CE_BLOCK];
    A s = A(0), c = A(0);
    for (gg_index r = threadIdx.x; r < rows; r += blockDim.x) {
        s += work[r];
        c += work[rows + r];
    }
    s = gg_block_sum(s, buf);
    c = gg_block_sum(c, buf);
    if (threadIdx.x == 0) {
        gg_out(loss, 0, s / c);
        stats[rows] = c;
    }
}

template <class T>
__device__ __forceinline__ void gg_ce_bwd_rows_impl(const T* __restrict__ g, const T* __restrict__ x,
                                                    const long long* __restrict__ labels,
                                                    const typename gg_acc<T>::type* __restrict__ stats,
                                                    T* __restrict__ dx, gg_index rows, gg_index C,
                                                    long long ignore_index, double eps) {
    typedef typename gg_acc<T>::type A;
    const A scale = A(gg_in(g, 0)) / stats[rows];
    const A off = A(eps) / A(C);
    const A on = A(1.0 - eps);
    for (gg_index r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * C;
        T* dr = dx + r * C;
        const long long label = labels[r];
        if (label == ignore_index) {
            for (gg_index k = threadIdx.x; k < C; k += blockDim.x) gg_out(dr, k, A(0));
        } else {
            const A lse = stats[r];
            for (gg_index k = threadIdx.x; k < C; k += blockDim.x) {
                A p = gg_exp(A(gg_in(xr, k)) - lse);
                gg_out(dr, k, scale * (p - (k == label ? on : A(0)) - off));
            }
        }
    }
}

#define GG_CE(T, SFX)                                                                                         \
    extern "C" __global__ void gg_ce_fwd_rows_##SFX(const T* __restrict__ x, const long long* __restrict__ labels, \
                                                    gg_acc<T>::type* __restrict__ work,                      \
                                                    gg_acc<T>::type* __restrict__ stats, gg_index rows,      \
                                                    gg_index C, long long ignore_index, double eps) {         \
        gg_ce_fwd_rows_impl<T>(x, labels, work, stats, rows, C, ignore_index, eps);                           \
    }                                                                                                         \
    extern "C" __global__ void gg_ce_finish_##SFX(const gg_acc<T>::type* __restrict__ work,                   \
                                                  gg_acc<T>::type* __restrict__ stats, T* __restrict__ loss,  \
                                                  gg_index rows) {                                            \
        gg_ce_finish_impl<T>(work, stats, loss, rows);                                                        \
    }                                                                                                         \
    extern "C" __global__ void gg_ce_bwd_rows_##SFX(const T* __restrict__ g, const T* __restrict__ x,         \
                                                    const long long* __restrict__ labels,                    \
                                                    const gg_acc<T>::type* __restrict__ stats,               \
                                                    T* __restrict__ dx, gg_index rows, gg_index C,           \
                                                    long long ignore_index, double eps) {                     \
        gg_ce_bwd_rows_impl<T>(g, x, labels, stats, dx, rows, C, ignore_index, eps);                          \
    }

GG_CE(gg_half, f16)
GG_CE(float, f32)
GG_CE(double, f64)
