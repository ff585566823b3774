// gpugrad CUDA kernels: the template that elementwise kernels are rendered on.
//
// gpugrad/backends/cuda_codegen.py renders, from the op table, one element function per
// expression (forward value, each input's gradient) and one kernel per variant:
//
//   gg_<op>_<dtype>_f_<pattern>_<layout>            forward: out = f(inputs, params)
//   gg_<op>_<dtype>_b<mask>_<pattern>_<layout>       backward: each input i in <mask> gets
//                                                    gi (+)= g * d_i(inputs, out, params)
//
// <pattern> says per input whether it is read from an array ('a'), passed as a scalar ('s'),
// or not read ('x'). <layout> 'c': every array operand is contiguous with the output's shape or
// a broadcast scalar (element i is p[i * inc], inc 1 or 0); 's': general strides from a
// gg_geom passed by value. Outputs are always contiguous. The backward kernel reads g, the
// inputs and out once and writes, or with acc_i != 0 accumulates into, each gradient once.
#pragma once
#include "gg_math.cuh"

#define GG_MAXDIM 6
#define GG_MAXOPS 6
#define GG_UNROLL 4

// Geometry of a strided launch: the output's (collapsed) shape and, per operand, its element
// strides along those dims (0 where it is broadcast). Passed by value (a kernel parameter).
struct gg_geom {
    gg_index ndim;
    gg_index shape[GG_MAXDIM];
    gg_index strides[GG_MAXOPS][GG_MAXDIM];
};

template <int NOPS>
GG_HD void gg_offsets(const gg_geom& g, gg_index i, gg_index* off) {
#pragma unroll
    for (int k = 0; k < NOPS; ++k) off[k] = 0;
    for (int d = (int)g.ndim - 1; d >= 0; --d) {
        gg_index s = g.shape[d];
        gg_index c = i % s;
        i /= s;
#pragma unroll
        for (int k = 0; k < NOPS; ++k) off[k] += c * g.strides[k][d];
    }
}

// Grid-stride loop over [0, n) in tiles: each thread takes GG_UNROLL elements blockDim.x apart
// per tile (consecutive threads touch consecutive elements: coalesced). A rendered kernel walks
// a tile's lanes twice, first loading every operand, then computing and storing, so that
// GG_UNROLL loads per operand are in flight before the first store.
#define GG_TILES(n)                                                                            \
    for (gg_index _base = (gg_index)blockIdx.x * blockDim.x * GG_UNROLL + threadIdx.x,         \
                  _step = (gg_index)gridDim.x * blockDim.x * GG_UNROLL;                        \
         _base < (n); _base += _step)
#define GG_LANES(i, n)                                                                         \
    for (int _u = 0; _u < GG_UNROLL; ++_u) /* constant trip count: nvcc unrolls it */         \
        if (gg_index i = _base + (gg_index)_u * blockDim.x; i < (n))
