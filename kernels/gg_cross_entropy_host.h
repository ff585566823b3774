// gpugrad host kernels: softmax cross-entropy from logits and integer labels, one row at a time,
// for the CPU (gpugrad/fusion/host_ops.py registers them for the op "cross_entropy").
//
// The op's rule (gpugrad/ops/nn.py, CrossEntropy) in one pass per row instead of a dozen NumPy
// calls, for x (M, C) contiguous and every label in [0, C), no weights, smoothing or ignored rows:
//   m_i = max_c x_ic (0 where it is not finite: the rule's _shift), e_ic = exp(x_ic - m_i),
//   s_i = sum_c e_ic, row_i = log(s_i) - (x_{i,y_i} - m_i)
// and its gradient for the rows' common factor g (the loss's gradient over the mean's count):
//   dx_ic = (e_ic / s_i - [c == y_i]) * g
// e and s are what the rule's forward keeps for its backward, so either runs after the other.
// The loops over a row are `omp simd` (glibc's vector exp): the row sums are added lane by lane.
#pragma once

template <class T>
void gg_ce_host_fwd(const T* __restrict x, const long long* __restrict labels, long long rows, long long cols,
                    T* __restrict e, T* __restrict s, T* __restrict row_loss) {
    for (long long r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        T* er = e + r * cols;
        // The max of the row's numbers: where the row holds a NaN the rule's max is NaN and shifts
        // by 0, this one shifts by the rest's max; either way the row's sum, loss and gradient are
        // NaN, and nothing else of the row is observable.
        T m = -gg_inf<T>();
#pragma omp simd reduction(max : m)
        for (long long k = 0; k < cols; ++k) m = xr[k] > m ? xr[k] : m;
        if (!gg_isfinite(m)) m = T(0);
        T sum = T(0);
#pragma omp simd reduction(+ : sum)
        for (long long k = 0; k < cols; ++k) {
            const T ek = gg_exp(xr[k] - m);
            er[k] = ek;
            sum += ek;
        }
        s[r] = sum;
        row_loss[r] = gg_log(sum) - (xr[labels[r]] - m);
    }
}

template <class T>
void gg_ce_host_bwd(const T* __restrict e, const T* __restrict s, const long long* __restrict labels,
                    long long rows, long long cols, T g, T* __restrict dx) {
    for (long long r = 0; r < rows; ++r) {
        const T* er = e + r * cols;
        T* dr = dx + r * cols;
        const T sr = s[r];
        const long long y = labels[r];
#pragma omp simd
        for (long long k = 0; k < cols; ++k) {
            const T p = er[k] / sr;
            dr[k] = (k == y ? p - T(1) : p) * g;
        }
    }
}
