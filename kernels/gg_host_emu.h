// gpugrad: compile CUDA kernel sources as host C++ (no GPU, no CUDA toolkit needed).
//
// CI machines have no GPU, so the host library runs the very kernel code the GPU runs: each
// block's threads are OS threads that meet at a barrier for __syncthreads, __shared__ arrays
// are function statics (blocks run one after another), atomics take a lock. Kernels that never
// synchronise (the rendered elementwise ones) run their threads in a plain loop instead.
// Exported launchers take the kernel's arguments as cuLaunchKernel does: an array of pointers
// to each argument's value.
#pragma once
#define GG_HOST_EMU 1

#include <barrier>
#include <cstddef>
#include <math.h>
#include <mutex>
#include <string.h>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

struct gg_dim3 {
    unsigned int x, y, z;
};
inline thread_local gg_dim3 threadIdx = {0, 0, 0};
inline thread_local gg_dim3 blockIdx = {0, 0, 0};
inline gg_dim3 blockDim = {1, 1, 1};
inline gg_dim3 gridDim = {1, 1, 1};
inline std::barrier<>* gg_emu_barrier = nullptr;
inline std::mutex gg_emu_mutex;

inline void __syncthreads() {
    if (gg_emu_barrier) gg_emu_barrier->arrive_and_wait();
}

inline float atomicAdd(float* p, float v) {
    std::lock_guard<std::mutex> lock(gg_emu_mutex);
    float old = *p;
    *p = old + v;
    return old;
}
inline double atomicAdd(double* p, double v) {
    std::lock_guard<std::mutex> lock(gg_emu_mutex);
    double old = *p;
    *p = old + v;
    return old;
}
inline unsigned int atomicCAS(unsigned int* p, unsigned int compare, unsigned int value) {
    std::lock_guard<std::mutex> lock(gg_emu_mutex);
    unsigned int old = *p;
    if (old == compare) *p = value;
    return old;
}

template <class... A, std::size_t... I>
void gg_emu_call(void (*fn)(A...), void** args, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

// Run fn<<<grid, block>>>(args). threads=false: one OS thread walks the block's threads in
// order (valid for kernels without __syncthreads).
template <class... A>
void gg_emu_launch(void (*fn)(A...), unsigned int grid, unsigned int block, void** args, bool threads) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        if (!threads) {
            gg_emu_barrier = nullptr;
            for (unsigned int t = 0; t < block; ++t) {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                gg_emu_call(fn, args, std::index_sequence_for<A...>{});
            }
            continue;
        }
        std::barrier<> bar(block);
        gg_emu_barrier = &bar;
        std::vector<std::thread> pool;
        pool.reserve(block);
        for (unsigned int t = 0; t < block; ++t) {
            pool.emplace_back([=] {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                gg_emu_call(fn, args, std::index_sequence_for<A...>{});
            });
        }
        for (auto& th : pool) th.join();
        gg_emu_barrier = nullptr;
    }
}

// The byte size of each kernel parameter, so that a caller can check what it packs.
template <class... A>
unsigned int gg_emu_param_sizes(void (*)(A...), unsigned int* out) {
    unsigned int sizes[] = {0u, (unsigned int)sizeof(std::remove_cv_t<std::remove_reference_t<A>>)...};
    for (unsigned int i = 0; i < sizeof...(A); ++i) out[i] = sizes[i + 1];
    return (unsigned int)sizeof...(A);
}

#define GG_EMU_EXPORT_IMPL(name, threads)                                                    \
    extern "C" void gg_emu_##name(unsigned int grid, unsigned int block, void** args) {      \
        gg_emu_launch(name, grid, block, args, threads);                                     \
    }                                                                                        \
    extern "C" unsigned int gg_emu_sizes_##name(unsigned int* out) {                         \
        return gg_emu_param_sizes(name, out);                                                \
    }
#define GG_EMU_EXPORT(name) GG_EMU_EXPORT_IMPL(name, true)
#define GG_EMU_EXPORT_SEQ(name) GG_EMU_EXPORT_IMPL(name, false)
