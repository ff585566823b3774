// gpugrad CUDA kernels: the functions of the op table's expression language
// (gpugrad/ops/expr.py FUNCTIONS), for compute types float and double, on host and device.
//
// Each follows NumPy's definition where CUDA's differs (NaN-propagating maximum/minimum,
// floor_divide and remainder with Python's sign rules, sign of NaN), so that the CUDA backend
// and the host library agree with the NumPy backend.
#pragma once
#include "gg_common.cuh"

#define GG_UNARY(name, ff, fd)                          \
    GG_HD float gg_##name(float x) { return ff(x); }   \
    GG_HD double gg_##name(double x) { return fd(x); }

GG_UNARY(exp, expf, exp)
GG_UNARY(exp2, exp2f, exp2)
GG_UNARY(log, logf, log)
GG_UNARY(log2, log2f, log2)
GG_UNARY(log10, log10f, log10)
GG_UNARY(log1p, log1pf, log1p)
GG_UNARY(expm1, expm1f, expm1)
GG_UNARY(sqrt, sqrtf, sqrt)
GG_UNARY(cbrt, cbrtf, cbrt)
GG_UNARY(abs, fabsf, fabs)
GG_UNARY(sin, sinf, sin)
GG_UNARY(cos, cosf, cos)
GG_UNARY(tan, tanf, tan)
GG_UNARY(arcsin, asinf, asin)
GG_UNARY(arccos, acosf, acos)
GG_UNARY(arctan, atanf, atan)
GG_UNARY(sinh, sinhf, sinh)
GG_UNARY(cosh, coshf, cosh)
GG_UNARY(tanh, tanhf, tanh)
GG_UNARY(arcsinh, asinhf, asinh)
GG_UNARY(arccosh, acoshf, acosh)
GG_UNARY(arctanh, atanhf, atanh)
GG_UNARY(erf, erff, erf)
GG_UNARY(floor, floorf, floor)
GG_UNARY(ceil, ceilf, ceil)
GG_UNARY(rint, rintf, rint)  // round half to even, as numpy.rint
GG_UNARY(trunc, truncf, trunc)
#undef GG_UNARY

GG_HD float gg_rsqrt(float x) {
#if defined(__CUDA_ARCH__)
    return rsqrtf(x);
#else
    return 1.0f / sqrtf(x);
#endif
}
GG_HD double gg_rsqrt(double x) {
#if defined(__CUDA_ARCH__)
    return rsqrt(x);
#else
    return 1.0 / sqrt(x);
#endif
}

GG_HD float gg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
GG_HD double gg_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// numpy.sign: -1, 0, +1, and NaN for NaN
template <class C> GG_HD C gg_sign_t(C x) { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : (x == C(0) ? C(0) : x)); }
GG_HD float gg_sign(float x) { return gg_sign_t(x); }
GG_HD double gg_sign(double x) { return gg_sign_t(x); }

// classification without relying on the isnan/isinf macros, which differ between toolchains
GG_HD bool gg_isnan(float x) { return x != x; }
GG_HD bool gg_isnan(double x) { return x != x; }
GG_HD bool gg_isinf(float x) { return fabsf(x) > 3.4028234663852886e38f; }
GG_HD bool gg_isinf(double x) { return fabs(x) > 1.7976931348623157e308; }
GG_HD bool gg_isfinite(float x) { return fabsf(x) <= 3.4028234663852886e38f; }
GG_HD bool gg_isfinite(double x) { return fabs(x) <= 1.7976931348623157e308; }

template <class C> GG_HD bool gg_logical_not(C x) { return !(x != C(0)); }
template <class C> GG_HD bool gg_logical_and(C a, C b) { return (a != C(0)) && (b != C(0)); }
template <class C> GG_HD bool gg_logical_or(C a, C b) { return (a != C(0)) || (b != C(0)); }
template <class C> GG_HD bool gg_logical_xor(C a, C b) { return (a != C(0)) != (b != C(0)); }

GG_HD float gg_pow(float a, float b) { return powf(a, b); }
GG_HD double gg_pow(double a, double b) { return pow(a, b); }
GG_HD float gg_arctan2(float a, float b) { return atan2f(a, b); }
GG_HD double gg_arctan2(double a, double b) { return atan2(a, b); }
GG_HD float gg_hypot(float a, float b) { return hypotf(a, b); }
GG_HD double gg_hypot(double a, double b) { return hypot(a, b); }

// numpy.maximum / minimum propagate NaN from either side (fmax/fmin do not)
template <class C> GG_HD C gg_maximum(C a, C b) { return (a >= b || a != a) ? a : b; }
template <class C> GG_HD C gg_minimum(C a, C b) { return (a <= b || a != a) ? a : b; }

// numpy's floor_divide and remainder for floats (npy_divmod): the result of floor division
// and a remainder with the divisor's sign, computed from fmod so that they stay consistent.
template <class C> GG_HD C gg_fmod_t(C a, C b);
template <> GG_HD float gg_fmod_t<float>(float a, float b) { return fmodf(a, b); }
template <> GG_HD double gg_fmod_t<double>(double a, double b) { return fmod(a, b); }
template <class C> GG_HD C gg_floor_t(C x);
template <> GG_HD float gg_floor_t<float>(float x) { return floorf(x); }
template <> GG_HD double gg_floor_t<double>(double x) { return floor(x); }
template <class C> GG_HD C gg_copysign_t(C a, C b);
template <> GG_HD float gg_copysign_t<float>(float a, float b) { return copysignf(a, b); }
template <> GG_HD double gg_copysign_t<double>(double a, double b) { return copysign(a, b); }

template <class C> GG_HD C gg_floordiv(C a, C b) {
    if (b == C(0)) return a / b;
    C mod = gg_fmod_t<C>(a, b);
    C div = (a - mod) / b;
    if (mod != C(0)) {
        if ((b < C(0)) != (mod < C(0))) div -= C(1);
    }
    C fl;
    if (div != C(0)) {
        fl = gg_floor_t<C>(div);
        if (div - fl > C(0.5)) fl += C(1);
    } else {
        fl = gg_copysign_t<C>(C(0), a / b);
    }
    return fl;
}

template <class C> GG_HD C gg_mod(C a, C b) {
    if (b == C(0)) return gg_fmod_t<C>(a, b);
    C mod = gg_fmod_t<C>(a, b);
    if (mod != C(0)) {
        if ((b < C(0)) != (mod < C(0))) mod += b;
    } else {
        mod = gg_copysign_t<C>(C(0), b);
    }
    return mod;
}
