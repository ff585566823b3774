// gpugrad CUDA kernels: sums over axes, used for sum/mean and for summing a broadcast
// gradient back to its input's shape (sum_to).
//
// The backend collapses the reduced and kept axes of a contiguous array into one of two forms
// and, when a reduction is long and there are few outputs, splits it into chunks whose partial
// sums (in the accumulation type) a second launch adds up:
//   gg_sum_rows: x as (rows, R), sum over R (each block reduces one (row, chunk));
//   gg_sum_cols: x as (outer, R, inner), sum over R (32 adjacent columns per block, so reads
//                along inner are coalesced).
// Names end in <in>_<out> dtypes; accumulation is in float for half and float, double for double.
#include "gg_common.cuh"

#define GG_RED_BLOCK 256

template <class TI, class TO>
__device__ __forceinline__ void gg_sum_rows_impl(const TI* __restrict__ x, TO* __restrict__ y, gg_index rows,
                                                 gg_index R, gg_index nchunks, gg_index chunk, double scale) {
    typedef typename gg_acc<TI>::type A;
    __shared__ A buf[GG_RED_BLOCK];
    const gg_index work = rows * nchunks;
    for (gg_index w = blockIdx.x; w < work; w += gridDim.x) {
        const gg_index r = w / nchunks;
        const gg_index lo = (w % nchunks) * chunk;
        const gg_index hi = lo + chunk < R ? lo + chunk : R;
        const TI* xr = x + r * R;
        A s = A(0);
        for (gg_index k = lo + threadIdx.x; k < hi; k += blockDim.x) s += gg_in(xr, k);
        s = gg_block_sum(s, buf);
        if (threadIdx.x == 0) gg_out(y, w, (A)(s * scale));
    }
}

template <class TI, class TO>
__device__ __forceinline__ void gg_sum_cols_impl(const TI* __restrict__ x, TO* __restrict__ y, gg_index outer,
                                                 gg_index R, gg_index inner, gg_index nchunks, gg_index chunk,
                                                 double scale) {
    typedef typename gg_acc<TI>::type A;
    __shared__ A buf[GG_RED_BLOCK];
    const unsigned int tx = threadIdx.x & 31u, ty = threadIdx.x >> 5, ny = blockDim.x >> 5;
    const gg_index ncb = (inner + 31) / 32;
    const gg_index work = outer * nchunks * ncb;
    for (gg_index w = blockIdx.x; w < work; w += gridDim.x) {
        const gg_index cb = w % ncb;
        const gg_index t = w / ncb;
        const gg_index c = t % nchunks;
        const gg_index o = t / nchunks;
        const gg_index j = cb * 32 + tx;
        const gg_index lo = c * chunk;
        const gg_index hi = lo + chunk < R ? lo + chunk : R;
        A s = A(0);
        if (j < inner) {
            const TI* xo = x + o * R * inner + j;
            for (gg_index r = lo + ty; r < hi; r += ny) s += gg_in(xo, r * inner);
        }
        buf[threadIdx.x] = s;
        __syncthreads();
        for (unsigned int h = ny / 2; h > 0; h >>= 1) {
            if (ty < h) buf[threadIdx.x] += buf[threadIdx.x + h * 32];
            __syncthreads();
        }
        if (ty == 0 && j < inner) gg_out(y, (o * nchunks + c) * inner + j, (A)(buf[tx] * scale));
        __syncthreads();
    }
}

#define GG_SUM(TI, TO, SFX)                                                                                  \
    extern "C" __global__ void gg_sum_rows_##SFX(const TI* __restrict__ x, TO* __restrict__ y, gg_index rows, \
                                                 gg_index R, gg_index nchunks, gg_index chunk, double scale) { \
        gg_sum_rows_impl<TI, TO>(x, y, rows, R, nchunks, chunk, scale);                                      \
    }                                                                                                        \
    extern "C" __global__ void gg_sum_cols_##SFX(const TI* __restrict__ x, TO* __restrict__ y, gg_index outer, \
                                                 gg_index R, gg_index inner, gg_index nchunks, gg_index chunk, \
                                                 double scale) {                                             \
        gg_sum_cols_impl<TI, TO>(x, y, outer, R, inner, nchunks, chunk, scale);                              \
    }

GG_SUM(gg_half, gg_half, f16_f16)
GG_SUM(gg_half, float, f16_f32)
GG_SUM(float, gg_half, f32_f16)
GG_SUM(float, float, f32_f32)
GG_SUM(double, double, f64_f64)
