// Fused optimiser steps: one kernel per update rule, one launch per parameter tensor. Each thread
// reads a parameter element and its gradient once, updates every state element of that parameter
// (momentum buffer, first/second moments, AMSGrad maximum) and writes the parameter once.
//
// The math is exactly gpugrad/backends/numpy_backend.py's sgd_step / rmsprop_step / adam_step:
// the same operations in the same order, each rounded once (the __*_rn intrinsics stop the
// compiler from contracting a*b+c into an FMA, which would round differently from NumPy), with
// the scalar coefficients precomputed on the host in double precision and rounded to the state
// type, as NumPy does when a Python float meets a float32 array.
//
// Types: float32 and float64 parameters with state of the same type; float16 parameters with
// float32 state (computed in float32, rounded to half once when written back).
// Instantiated as extern "C" symbols <rule>_step_<dtype>, e.g. adam_step_float32.
// Loaded like every hand-written kernel (ahead-of-time fatbin, else NVRTC through CuPy's
// RawModule); it needs no CUDA toolkit header (float16 is gg_common.cuh's gg_half).

#include "gg_common.cuh"

namespace gg_optim {

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqroot(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqroot(double a) { return __dsqrt_rn(a); }

// NumPy's maximum: NaN if either operand is NaN.
template <typename S>
__device__ __forceinline__ S nan_max(S a, S b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
}

template <typename P, typename S> struct Convert {
    __device__ __forceinline__ static S load(P v) { return static_cast<S>(v); }
    __device__ __forceinline__ static P store(S v) { return static_cast<P>(v); }
};
template <> struct Convert<gg_half, float> {
    __device__ __forceinline__ static float load(gg_half v) { return gg_h2f(v); }
    __device__ __forceinline__ static gg_half store(float v) { return gg_f2h(v); }
};

#define GG_GRID_STRIDE(i, n)                                                             \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);        \
         i += (long long)blockDim.x * gridDim.x)

// SGD: g = grad + wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
// g = g + momentum buf (Nesterov) or buf; p -= lr g.
template <typename P, typename S>
__device__ void sgd(P* __restrict__ param, const P* __restrict__ grad, S* __restrict__ buf, long long n,
                    S lr, S momentum, S one_minus_dampening, S weight_decay, int nesterov, int first) {
    GG_GRID_STRIDE(i, n) {
        S p = Convert<P, S>::load(param[i]);
        S g = Convert<P, S>::load(grad[i]);
        if (weight_decay != S(0)) g = add(g, mul(weight_decay, p));
        if (momentum != S(0)) {
            S b = first ? g : add(mul(buf[i], momentum), mul(one_minus_dampening, g));
            buf[i] = b;
            g = nesterov ? add(g, mul(momentum, b)) : b;
        }
        p = sub(p, mul(lr, g));
        param[i] = Convert<P, S>::store(p);
    }
}

// RMSprop: s = alpha s + (1 - alpha) g^2; centered: a = alpha a + (1 - alpha) g, avg = sqrt(s - a^2),
// else avg = sqrt(s); avg += eps; momentum: b = momentum b + g / avg, p -= lr b; else p -= lr (g / avg).
template <typename P, typename S>
__device__ void rmsprop(P* __restrict__ param, const P* __restrict__ grad, S* __restrict__ square_avg,
                        S* __restrict__ grad_avg, S* __restrict__ buf, long long n, S lr, S alpha,
                        S one_minus_alpha, S eps, S weight_decay, S momentum, int centered, int use_momentum) {
    GG_GRID_STRIDE(i, n) {
        S p = Convert<P, S>::load(param[i]);
        S g = Convert<P, S>::load(grad[i]);
        if (weight_decay != S(0)) g = add(g, mul(weight_decay, p));
        S sq = add(mul(square_avg[i], alpha), mul(one_minus_alpha, mul(g, g)));
        square_avg[i] = sq;
        S avg;
        if (centered) {
            S ga = add(mul(grad_avg[i], alpha), mul(one_minus_alpha, g));
            grad_avg[i] = ga;
            avg = sqroot(sub(sq, mul(ga, ga)));
        } else {
            avg = sqroot(sq);
        }
        avg = add(avg, eps);
        if (use_momentum) {
            S b = add(mul(buf[i], momentum), div(g, avg));
            buf[i] = b;
            p = sub(p, mul(lr, b));
        } else {
            p = sub(p, mul(lr, div(g, avg)));
        }
        param[i] = Convert<P, S>::store(p);
    }
}

// Adam / AdamW: decoupled: p *= 1 - lr wd, else g = grad + wd p; m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; AMSGrad: vmax = max(vmax, v); denom = sqrt(v or vmax) / sqrt(1 - b2^t) + eps;
// p -= (lr / (1 - b1^t)) (m / denom).
template <typename P, typename S>
__device__ void adam(P* __restrict__ param, const P* __restrict__ grad, S* __restrict__ exp_avg,
                     S* __restrict__ exp_avg_sq, S* __restrict__ max_exp_avg_sq, long long n, S beta1,
                     S one_minus_beta1, S beta2, S one_minus_beta2, S eps, S weight_decay, S decay_factor,
                     S step_size, S bias_correction2_sqrt, int decoupled, int amsgrad) {
    GG_GRID_STRIDE(i, n) {
        S p = Convert<P, S>::load(param[i]);
        S g = Convert<P, S>::load(grad[i]);
        if (weight_decay != S(0)) {
            if (decoupled) p = mul(p, decay_factor);
            else g = add(g, mul(weight_decay, p));
        }
        S m = add(mul(exp_avg[i], beta1), mul(one_minus_beta1, g));
        exp_avg[i] = m;
        S v = add(mul(exp_avg_sq[i], beta2), mul(one_minus_beta2, mul(g, g)));
        exp_avg_sq[i] = v;
        S denom;
        if (amsgrad) {
            S vm = nan_max(max_exp_avg_sq[i], v);
            max_exp_avg_sq[i] = vm;
            denom = sqroot(vm);
        } else {
            denom = sqroot(v);
        }
        denom = add(div(denom, bias_correction2_sqrt), eps);
        p = sub(p, mul(step_size, div(m, denom)));
        param[i] = Convert<P, S>::store(p);
    }
}

}  // namespace gg_optim

#define GG_OPTIM_KERNELS(NAME, P, S)                                                                        \
    extern "C" __global__ void sgd_step_##NAME(P* param, const P* grad, S* buf, long long n, S lr,          \
                                               S momentum, S one_minus_dampening, S weight_decay,           \
                                               int nesterov, int first) {                                   \
        gg_optim::sgd<P, S>(param, grad, buf, n, lr, momentum, one_minus_dampening, weight_decay, nesterov, \
                            first);                                                                         \
    }                                                                                                       \
    extern "C" __global__ void rmsprop_step_##NAME(P* param, const P* grad, S* square_avg, S* grad_avg,     \
                                                   S* buf, long long n, S lr, S alpha, S one_minus_alpha,   \
                                                   S eps, S weight_decay, S momentum, int centered,         \
                                                   int use_momentum) {                                      \
        gg_optim::rmsprop<P, S>(param, grad, square_avg, grad_avg, buf, n, lr, alpha, one_minus_alpha, eps, \
                                weight_decay, momentum, centered, use_momentum);                            \
    }                                                                                                       \
    extern "C" __global__ void adam_step_##NAME(P* param, const P* grad, S* exp_avg, S* exp_avg_sq,         \
                                                S* max_exp_avg_sq, long long n, S beta1, S one_minus_beta1, \
                                                S beta2, S one_minus_beta2, S eps, S weight_decay,          \
                                                S decay_factor, S step_size, S bias_correction2_sqrt,       \
                                                int decoupled, int amsgrad) {                               \
        gg_optim::adam<P, S>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, beta1, one_minus_beta1,   \
                             beta2, one_minus_beta2, eps, weight_decay, decay_factor, step_size,            \
                             bias_correction2_sqrt, decoupled, amsgrad);                                    \
    }

GG_OPTIM_KERNELS(float32, float, float)
GG_OPTIM_KERNELS(float64, double, double)
GG_OPTIM_KERNELS(float16, gg_half, float)
