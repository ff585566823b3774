// gpugrad CUDA kernels: types and helpers shared by every kernel source.
//
// Everything here compiles three ways: as CUDA device code (nvcc for the ahead-of-time build,
// NVRTC through CuPy at run time), and as plain C++ for the host library that CI tests on
// machines without a GPU (kernels/gg_host_emu.h supplies blockIdx, __syncthreads, atomicAdd).
// So: no CUDA headers (NVRTC does not ship cuda_fp16.h everywhere), no warp intrinsics (the
// host emulation runs a block's threads as OS threads meeting at barriers), static shared memory.
#pragma once

#if !defined(__CUDACC__) && !defined(GG_HOST_EMU)
#error "include gg_host_emu.h before compiling gpugrad kernels as host C++"
#endif

#if !defined(__CUDACC_RTC__)
#include <math.h>
#include <string.h>
#endif

#define GG_HD __host__ __device__ __forceinline__

typedef long long gg_index;

// float16 storage. Arithmetic is done in float and rounded once when stored, as the NumPy
// backend does, so results agree bit for bit wherever float math does.
struct gg_half {
    unsigned short bits;
};

GG_HD unsigned int gg_f32_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    unsigned int u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

GG_HD float gg_bits_f32(unsigned int u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

GG_HD float gg_h2f(gg_half h) {
#if defined(__CUDA_ARCH__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
#else
    unsigned int sign = (unsigned int)(h.bits >> 15) << 31;
    unsigned int e = (h.bits >> 10) & 0x1f;
    unsigned int m = h.bits & 0x3ff;
    if (e == 0) {
        // zero or subnormal: m * 2^-24, exact in float
        float v = (float)m * 5.9604644775390625e-08f;
        return gg_bits_f32(gg_f32_bits(v) | sign);
    }
    if (e == 31) return gg_bits_f32(sign | 0x7f800000u | (m << 13));
    return gg_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
#endif
}

GG_HD gg_half gg_f2h(float f) {
    gg_half h;
#if defined(__CUDA_ARCH__)
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
#else
    // round to nearest, ties to even (what cvt.rn and NumPy's astype do)
    unsigned int x = gg_f32_bits(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int ax = x & 0x7fffffffu;
    unsigned int r;
    if (ax > 0x7f800000u) {
        r = 0x7e00u;  // NaN
    } else if (ax >= 0x477ff000u) {
        r = 0x7c00u;  // rounds past 65504: infinity
    } else if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        if (ax <= 0x33000000u) {
            r = 0;
        } else {
            unsigned int e = ax >> 23;
            unsigned int m = (ax & 0x7fffffu) | 0x800000u;
            unsigned int shift = 126u - e;
            r = m >> shift;
            unsigned int rem = m & ((1u << shift) - 1u);
            unsigned int halfway = 1u << (shift - 1u);
            if (rem > halfway || (rem == halfway && (r & 1u))) r += 1u;
        }
    } else {
        r = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13);
        unsigned int rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r += 1u;
    }
    h.bits = (unsigned short)(sign | r);
#endif
    return h;
}

template <class A> GG_HD A gg_inf() { return (A)gg_bits_f32(0x7f800000u); }

// Loads convert storage to the compute type (float for half and float, double for double).
GG_HD float gg_in(const float* p, gg_index i) { return p[i]; }
GG_HD double gg_in(const double* p, gg_index i) { return p[i]; }
GG_HD float gg_in(const gg_half* p, gg_index i) { return gg_h2f(p[i]); }
GG_HD bool gg_in(const bool* p, gg_index i) { return p[i]; }

GG_HD void gg_out(float* p, gg_index i, float v) { p[i] = v; }
GG_HD void gg_out(double* p, gg_index i, double v) { p[i] = v; }
GG_HD void gg_out(gg_half* p, gg_index i, float v) { p[i] = gg_f2h(v); }
GG_HD void gg_out(bool* p, gg_index i, bool v) { p[i] = v; }

// The accumulation type of a storage type.
template <class T> struct gg_acc { typedef T type; };
template <> struct gg_acc<gg_half> { typedef float type; };

// Block-wide reductions through shared memory. ``buf`` holds blockDim.x values; blockDim.x must
// be a power of two. Every thread of the block must call these (they synchronise).
template <class A>
__device__ __forceinline__ A gg_block_sum(A v, A* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    A r = buf[0];
    __syncthreads();
    return r;
}

template <class A>
__device__ __forceinline__ A gg_block_max(A v, A* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            A o = buf[threadIdx.x + s];
            // NaN wins, as in NumPy's max
            if (o > buf[threadIdx.x] || o != o) buf[threadIdx.x] = o;
        }
        __syncthreads();
    }
    A r = buf[0];
    __syncthreads();
    return r;
}

// atomicAdd for every storage type. float16 adds in place with the native half atomic
// (sm_70+, PTX red.add.noftz.f16) on the GPU; touching only the element's own two bytes matters:
// a compare-and-swap on the surrounding 32-bit word would reach past the end of an array whose
// last element sits in the lower half of a word.
__device__ __forceinline__ void gg_atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void gg_atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void gg_atomic_add(gg_half* p, float v) {
#if defined(__CUDA_ARCH__)
    unsigned short add = gg_f2h(v).bits;
    asm volatile("red.add.noftz.f16 [%0], %1;" : : "l"(p), "h"(add) : "memory");
#else
    unsigned short* word = &p->bits;
    unsigned short old = __atomic_load_n(word, __ATOMIC_RELAXED), assumed;  // host: the emulated device
    do {
        assumed = old;
        gg_half h;
        h.bits = assumed;
        old = atomicCAS(word, assumed, gg_f2h(gg_h2f(h) + gg_h2f(gg_f2h(v))).bits);
    } while (old != assumed);
#endif
}
