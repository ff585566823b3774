// gpugrad CUDA kernels: scatter-add, the backward of gathering (advanced indexing, take,
// embedding lookups). Repeated indices accumulate, as numpy.add.at.
//
// src is viewed as (outer, nidx, inner) and dst as (outer, dim, inner):
//   dst[o, idx[k], j] += src[o, k, j]      (negative indices count from the end)
// A flattened general index is the case outer = inner = 1. Atomics make the order of additions
// (and so the last bits of float sums at repeated indices) vary between runs.
#include "gg_common.cuh"

template <class T>
__device__ __forceinline__ void gg_index_add_impl(const T* __restrict__ src, const long long* __restrict__ idx,
                                                  T* __restrict__ dst, gg_index outer, gg_index nidx,
                                                  gg_index inner, gg_index dim) {
    const gg_index total = outer * nidx * inner;
    for (gg_index t = (gg_index)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (gg_index)gridDim.x * blockDim.x) {
        const gg_index j = t % inner;
        const gg_index q = t / inner;
        const gg_index k = q % nidx;
        const gg_index o = q / nidx;
        long long d = idx[k];
        if (d < 0) d += dim;
        if (d >= 0 && d < dim) gg_atomic_add(dst + (o * dim + d) * inner + j, gg_in(src, t));
    }
}

#define GG_INDEX_ADD(T, SFX)                                                                                  \
    extern "C" __global__ void gg_index_add_##SFX(const T* __restrict__ src, const long long* __restrict__ idx, \
                                                  T* __restrict__ dst, gg_index outer, gg_index nidx,         \
                                                  gg_index inner, gg_index dim) {                             \
        gg_index_add_impl<T>(src, idx, dst, outer, nidx, inner, dim);                                         \
    }

GG_INDEX_ADD(gg_half, f16)
GG_INDEX_ADD(float, f32)
GG_INDEX_ADD(double, f64)
