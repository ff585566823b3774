// gpugrad host kernels: the gradient of an embedding (a gather of weight rows) for the CPU
// (gpugrad/fusion/host_ops.py registers it for the op "embedding").
//
// The op's rule (gpugrad/ops/nn.py, Embedding; a sorted segment sum with NumPy) as one loop:
//   out = 0; out[idx_i] += g_i for each i in order, rows whose index is `pad` skipped (pad < 0: none)
// Each weight row's sum is taken in the order of its occurrences (np.add.at's order; the rule's
// np.add.reduceat may group the additions otherwise: a few ulp apart). Each index is read once
// and checked before its row is written (they are the caller's array, which may have changed since
// the forward checked them, or change while this runs): one outside [0, rows_out) returns 1, and
// the caller throws `out` away.
#pragma once

template <class T>
int gg_embedding_host_bwd(const long long* __restrict idx, long long n, const T* __restrict g, long long cols,
                          long long rows_out, long long pad, T* __restrict out) {
    const long long total = rows_out * cols;
#pragma omp simd
    for (long long k = 0; k < total; ++k) out[k] = T(0);
    for (long long i = 0; i < n; ++i) {
        const long long r = ((const volatile long long*)idx)[i];  // (one read: see above)
        if (r < 0 || r >= rows_out) return 1;
        if (r == pad) continue;
        T* __restrict o = out + r * cols;
        const T* __restrict gi = g + i * cols;
#pragma omp simd
        for (long long k = 0; k < cols; ++k) o[k] += gi[k];
    }
    return 0;
}
