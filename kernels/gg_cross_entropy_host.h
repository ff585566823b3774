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
// The loops are `omp simd` (glibc's vector exp and log): the row sums are added lane by lane.
#pragma once

// The shift of a row: the max of its numbers. Where the row holds a NaN the rule's max is NaN and
// shifts by 0, this one shifts by the rest's max; either way the row's sum, loss and gradient are
// NaN, and nothing else of the row is observable.
template <class T>
T gg_ce_row_shift(const T* __restrict xr, long long cols) {
    T m = -gg_inf<T>();
#pragma omp simd reduction(max : m)
    for (long long k = 0; k < cols; ++k) m = xr[k] > m ? xr[k] : m;
    return gg_isfinite(m) ? m : T(0);
}

// Short rows are taken in blocks of about GG_CE_BLOCK elements (in L1): each block's shifted
// logits are written row by row, exponentiated in one flat loop across its rows, then summed row
// by row, so that the vector exp runs full width (10 classes: one 8-lane call and two scalar ones
// per row otherwise; 256 x 10 float32 took 24.1 us, 9.8 us blocked). A long row is one loop (a
// block of it would be three passes over L2: 128 x 32000 took 2.6 ms so, 2.9-3.1 ms blocked).
#ifndef GG_CE_BLOCK
#define GG_CE_BLOCK 2048
#endif

template <class T>
void gg_ce_host_fwd(const T* __restrict x, const long long* __restrict labels, long long rows, long long cols,
                    T* __restrict e, T* __restrict s, T* __restrict row_loss) {
    if (cols >= GG_CE_BLOCK) {
        for (long long r = 0; r < rows; ++r) {
            const T* xr = x + r * cols;
            T* er = e + r * cols;
            const T m = gg_ce_row_shift(xr, cols);
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
        return;
    }
    const long long per = GG_CE_BLOCK / cols;
    for (long long r0 = 0; r0 < rows; r0 += per) {
        const long long r1 = r0 + per < rows ? r0 + per : rows;
        for (long long r = r0; r < r1; ++r) {
            const T* xr = x + r * cols;
            T* er = e + r * cols;
            const T m = gg_ce_row_shift(xr, cols);
            row_loss[r] = m;  // (the shift, until the row's loss replaces it)
#pragma omp simd
            for (long long k = 0; k < cols; ++k) er[k] = xr[k] - m;
        }
        T* eb = e + r0 * cols;
        const long long n = (r1 - r0) * cols;
#pragma omp simd
        for (long long k = 0; k < n; ++k) eb[k] = gg_exp(eb[k]);
        for (long long r = r0; r < r1; ++r) {
            const T* er = e + r * cols;
            T sum = T(0);
#pragma omp simd reduction(+ : sum)
            for (long long k = 0; k < cols; ++k) sum += er[k];
            s[r] = sum;
        }
#pragma omp simd
        for (long long r = r0; r < r1; ++r) row_loss[r] = gg_log(s[r]) - (x[r * cols + labels[r]] - row_loss[r]);
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
