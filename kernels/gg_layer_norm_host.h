// gpugrad host kernels: layer normalisation over the last `cols` elements of each row, forward and
// backward, for the CPU (gpugrad/fusion/host_ops.py registers them for the op "layer_norm").
//
// The op's rule (gpugrad/ops/nn.py, LayerNorm; kernels/layer_norm.cu on the GPU) in one pass per row
// instead of a dozen NumPy calls, for x (rows, cols) contiguous, weight and bias of cols elements
// or absent:
//   mean = sum_k x_k / cols, rstd = 1 / sqrt(sum_k (x_k - mean)^2 / cols + eps)   (biased variance)
//   y_k = (x_k - mean) * rstd * w_k + b_k
// and its gradient, the statistics recomputed from x as the rule recomputes them:
//   xhat_k = (x_k - mean) * rstd, gh_k = g_k * w_k,
//   gx_k = rstd * (gh_k - mean(gh) - xhat_k * mean(gh * xhat)),
//   gw_k = sum_rows g_k * xhat_k, gb_k = sum_rows g_k (added row after row, as NumPy's sum over
//   the leading axes adds them).
// Statistics are accumulated in T, as the rule and the CUDA kernels do for float32 and float64;
// the loops are `omp simd`, so a row's sums are added lane by lane (a few ulp from NumPy's
// pairwise sums).
#pragma once

template <class T>
static inline void gg_ln_host_stats(const T* __restrict xr, long long cols, T eps, T* mean, T* rstd) {
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (long long k = 0; k < cols; ++k) s += xr[k];
    const T m = s / T(cols);
    T v = T(0);
#pragma omp simd reduction(+ : v)
    for (long long k = 0; k < cols; ++k) {
        const T d = xr[k] - m;
        v += d * d;
    }
    *mean = m;
    *rstd = T(1) / gg_sqrt(v / T(cols) + eps);
}

// w, b: null when absent.
template <class T>
void gg_ln_host_fwd(const T* __restrict x, const T* __restrict w, const T* __restrict b, long long rows,
                    long long cols, T eps, T* __restrict y) {
    for (long long r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        T m, rstd;
        gg_ln_host_stats(xr, cols, eps, &m, &rstd);
        if (w && b) {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) yr[k] = (xr[k] - m) * rstd * w[k] + b[k];
        } else if (w) {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) yr[k] = (xr[k] - m) * rstd * w[k];
        } else if (b) {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) yr[k] = (xr[k] - m) * rstd + b[k];
        } else {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) yr[k] = (xr[k] - m) * rstd;
        }
    }
}

// w: null when absent; gx, gw, gb: null when not wanted (gw and gb are overwritten, not added to).
template <class T>
void gg_ln_host_bwd(const T* __restrict x, const T* __restrict w, const T* __restrict g, long long rows,
                    long long cols, T eps, T* __restrict gx, T* __restrict gw, T* __restrict gb) {
    if (gw) {
#pragma omp simd
        for (long long k = 0; k < cols; ++k) gw[k] = T(0);
    }
    if (gb) {
#pragma omp simd
        for (long long k = 0; k < cols; ++k) gb[k] = T(0);
    }
    for (long long r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        const T* gr = g + r * cols;
        T m, rstd;
        gg_ln_host_stats(xr, cols, eps, &m, &rstd);
        if (gw) {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) gw[k] += gr[k] * ((xr[k] - m) * rstd);
        }
        if (gb) {
#pragma omp simd
            for (long long k = 0; k < cols; ++k) gb[k] += gr[k];
        }
        if (!gx) continue;
        T s1 = T(0), s2 = T(0);
#pragma omp simd reduction(+ : s1, s2)
        for (long long k = 0; k < cols; ++k) {
            const T gh = w ? gr[k] * w[k] : gr[k];
            s1 += gh;
            s2 += gh * ((xr[k] - m) * rstd);
        }
        const T m1 = s1 / T(cols), m2 = s2 / T(cols);
        T* gxr = gx + r * cols;
#pragma omp simd
        for (long long k = 0; k < cols; ++k) {
            const T xhat = (xr[k] - m) * rstd;
            const T gh = w ? gr[k] * w[k] : gr[k];
            gxr[k] = rstd * (gh - m1 - xhat * m2);
        }
    }
}
