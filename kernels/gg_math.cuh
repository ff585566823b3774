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

// Correctly rounded + - * / that the compiler may not contract into an FMA (the optimisers'
// update rules must equal NumPy's operation for operation; the host build uses -ffp-contract=off).
#if defined(__CUDA_ARCH__)
GG_HD float gg_add_rn(float a, float b) { return __fadd_rn(a, b); }
GG_HD float gg_sub_rn(float a, float b) { return __fsub_rn(a, b); }
GG_HD float gg_mul_rn(float a, float b) { return __fmul_rn(a, b); }
GG_HD float gg_div_rn(float a, float b) { return __fdiv_rn(a, b); }
GG_HD double gg_add_rn(double a, double b) { return __dadd_rn(a, b); }
GG_HD double gg_sub_rn(double a, double b) { return __dsub_rn(a, b); }
GG_HD double gg_mul_rn(double a, double b) { return __dmul_rn(a, b); }
GG_HD double gg_div_rn(double a, double b) { return __ddiv_rn(a, b); }
#else
template <class T> GG_HD T gg_add_rn(T a, T b) { return a + b; }
template <class T> GG_HD T gg_sub_rn(T a, T b) { return a - b; }
template <class T> GG_HD T gg_mul_rn(T a, T b) { return a * b; }
template <class T> GG_HD T gg_div_rn(T a, T b) { return a / b; }
#endif

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

// numpy.maximum / minimum propagate NaN from either side (fmax/fmin do not), and give b on a tie
// (maximum(-0.0, 0.0) is +0.0: ReLU of -0.0 has NumPy's sign bit)
template <class C> GG_HD C gg_maximum(C a, C b) { return (a > b || a != a) ? a : b; }
template <class C> GG_HD C gg_minimum(C a, C b) { return (a < b || a != a) ? a : b; }

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

// ---- special functions (gpugrad.scipy.special) ----------------------------------------------
// CUDA's device math library has these; on the host (the test library) glibc has erfc and the
// Bessel functions j0 j1 y0 y1 jn yn, libstdc++ has the modified Bessel function I, and erfinv/
// erfcinv are solved below. Results follow scipy.special's (NaN outside the domain).
#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif

GG_UNARY(erfc, erfcf, erfc)
GG_UNARY(j0, j0f, j0)
GG_UNARY(j1, j1f, j1)
GG_UNARY(y0, y0f, y0)
GG_UNARY(y1, y1f, y1)

#if defined(__CUDA_ARCH__)
GG_UNARY(i0, cyl_bessel_i0f, cyl_bessel_i0)
GG_UNARY(i1, cyl_bessel_i1f, cyl_bessel_i1)
GG_UNARY(erfinv, erfinvf, erfinv)
GG_UNARY(erfcinv, erfcinvf, erfcinv)
#else
// I0 is even and I1 odd; std::cyl_bessel_i takes x >= 0 only, and throws past the range of double
// (|x| beyond about 713, inf): that is inf, with I1's sign (an exception must not cross the C
// boundary of a compiled pass: it would abort the process).
inline double gg_host_i(double order, double x) {
    if (x != x) return x;
    try {
        return std::cyl_bessel_i(order, fabs(x));
    } catch (...) {
        return HUGE_VAL;
    }
}
inline double gg_host_i0(double x) { return gg_host_i(0.0, x); }
inline double gg_host_i1(double x) { double v = gg_host_i(1.0, x); return x != x ? v : copysign(v, x); }

// erfc(x) = z for z in (0, 1]: Halley steps on f(x) = erfc(x) - z (f' = -2/sqrt(pi) exp(-x^2),
// f'' = -2x f'), which converge cubically from Winitzki's closed-form estimate (error ~2e-3).
// Working with erfc keeps full relative precision in the tail, where erf(x) - y would cancel.
inline double gg_host_erfcinv_upper(double z) {
    if (z == 0.0) return HUGE_VAL;
    const double a = 0.147, two_over_pi_a = 2.0 / (3.14159265358979323846 * 0.147);
    double l = log(z * (2.0 - z));  // log(1 - y^2) for y = 1 - z, without cancellation
    double t = two_over_pi_a + 0.5 * l;
    double x = sqrt(sqrt(t * t - l / a) - t);
    for (int k = 0; k < 6; ++k) {
        double f = erfc(x) - z;
        double fp = -1.1283791670955126 * exp(-x * x);
        if (fp == 0.0) break;
        double r = f / fp;
        double step = r / (1.0 + x * r);
        x -= step;
        if (fabs(step) <= 1e-17 * fabs(x)) break;
    }
    return x;
}
inline double gg_host_erfcinv(double z) {
    if (!(z >= 0.0 && z <= 2.0)) return NAN;  // outside [0, 2], and NaN
    return z <= 1.0 ? gg_host_erfcinv_upper(z) : -gg_host_erfcinv_upper(2.0 - z);
}
inline double gg_host_erfinv(double y) {
    if (!(y >= -1.0 && y <= 1.0)) return NAN;
    double ay = fabs(y);
    if (ay >= 0.5) return copysign(gg_host_erfcinv_upper(1.0 - ay), y);  // 1 - |y| is exact here
    // |y| < 0.5: Halley on erf(x) - y from the first terms of the series (erf' has the same form)
    double x = 0.886226925452758 * y * (1.0 + 0.2617993877991494 * y * y);
    for (int k = 0; k < 6; ++k) {
        double f = erf(x) - y;
        double r = f / (1.1283791670955126 * exp(-x * x));
        double step = r / (1.0 + x * r);
        x -= step;
        if (fabs(step) <= 1e-17 * fabs(x)) break;
    }
    return x;
}
GG_HD float gg_i0(float x) { return (float)gg_host_i0(x); }
GG_HD double gg_i0(double x) { return gg_host_i0(x); }
GG_HD float gg_i1(float x) { return (float)gg_host_i1(x); }
GG_HD double gg_i1(double x) { return gg_host_i1(x); }
GG_HD float gg_erfinv(float x) { return (float)gg_host_erfinv(x); }
GG_HD double gg_erfinv(double x) { return gg_host_erfinv(x); }
GG_HD float gg_erfcinv(float x) { return (float)gg_host_erfcinv(x); }
GG_HD double gg_erfcinv(double x) { return gg_host_erfcinv(x); }
#endif

// Integer orders n (given as a value of the compute type, truncated like scipy's yn); negative
// orders by reflection, J_{-n} = (-1)^n J_n and Y_{-n} = (-1)^n Y_n.
// An order past int's range (|n| >= 2^31: the cast would overflow, and glibc's jn would then loop
// 2^31 times an element) is J = 0 and Y = -inf at finite x, as scipy's jn and yn give.
#define GG_HUGE_ORDER(n, x, value) if (!(fabs((double)(n)) < 2147483648.0)) return (x) != (x) ? (x) : (value);
GG_HD float gg_jn(float n, float x) {
    GG_HUGE_ORDER(n, x, 0.0f)
    int k = (int)n;
    float v = jnf(k < 0 ? -k : k, x);
    return (k < 0 && (k & 1)) ? -v : v;
}
GG_HD double gg_jn(double n, double x) {
    GG_HUGE_ORDER(n, x, 0.0)
    int k = (int)n;
    double v = jn(k < 0 ? -k : k, x);
    return (k < 0 && (k & 1)) ? -v : v;
}
GG_HD float gg_yn(float n, float x) {
    GG_HUGE_ORDER(n, x, -gg_inf<float>())
    int k = (int)n;
    float v = ynf(k < 0 ? -k : k, x);
    return (k < 0 && (k & 1)) ? -v : v;
}
GG_HD double gg_yn(double n, double x) {
    GG_HUGE_ORDER(n, x, -gg_inf<double>())
    int k = (int)n;
    double v = yn(k < 0 ? -k : k, x);
    return (k < 0 && (k & 1)) ? -v : v;
}

#undef GG_UNARY
#undef GG_HUGE_ORDER
