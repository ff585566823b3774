// gpugrad: compile CUDA kernel sources as host C++, for the emulated CUDA device
// (gpugrad/testing/cuda_emulator), on machines without a GPU or a CUDA toolkit.
//
// The emulator runs the very kernel code a GPU runs and exposes what a GPU would:
//  * in every kernel exported with GG_EMU_EXPORT (those with barriers) the threads of a block
//    run concurrently, as OS threads meeting at a real barrier (mode 1: what ThreadSanitizer
//    checks), or as fibers on one OS thread that switch at each __syncthreads (mode 0, the
//    default: a block's threads interleave only at barriers, which is all CUDA promises, and
//    it is two orders of magnitude faster). Either way a thread that returns while others of
//    its block wait at a barrier is reported (a GPU would hang or misbehave), not hung;
//  * kernels exported with GG_EMU_EXPORT_SEQ (no barrier: the rendered elementwise ones) run
//    their threads one after another; a __syncthreads there is reported, not ignored;
//  * __shared__ arrays live in one section that is filled with 0xff bytes (NaN for floats, -1
//    for integers) before every block, so a read before a write shows up in results;
//  * atomics are real atomic operations on the target element only;
//  * blocks run one after another (the shared section is per process).
// Launch errors unwind the kernel's threads and come back as a message, never as a crash.
// Each kernel ``k`` is exported as gg_emu_launch_k(grid[3], block[3], args, err, errlen)
// taking its arguments as cuLaunchKernel does (an array of pointers to each value), and
// gg_emu_sig_k() describing its parameters' C types for the caller to check.
#pragma once
#define GG_HOST_EMU 1

#include <atomic>
#include <csetjmp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <math.h>
#include <setjmp.h>
#include <ucontext.h>
#include <mutex>
#include <stdexcept>
#include <string.h>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __host__
#define __device__
#if defined(GG_EMU_SCAN)
#define __global__ GG_EMU_KERNEL_MARK  // preprocessing only: marks kernels for the emulator to find
#else
#define __global__
#endif
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
// Every __shared__ variable goes to one section, poisoned before each block (see above).
#define __shared__ static __attribute__((section("gg_shared"), aligned(16)))

#define GG_EMU_API extern "C" __attribute__((visibility("default")))

struct gg_dim3 {
    unsigned int x, y, z;
};
inline thread_local gg_dim3 threadIdx = {0, 0, 0};
inline thread_local gg_dim3 blockIdx = {0, 0, 0};
inline gg_dim3 blockDim = {1, 1, 1};
inline gg_dim3 gridDim = {1, 1, 1};

namespace gg_emu {

// Thrown inside a kernel thread to unwind it after an error; never escapes a launch.
struct Abort {};

struct Block;
inline thread_local Block* current = nullptr;  // null in sequential mode

// One block's threads and their barrier.
struct Block {
    std::mutex m;
    std::condition_variable cv;
    unsigned int nthreads = 0;
    unsigned int arrived = 0, exited = 0;
    unsigned long long phase = 0;
    bool failed = false;
    std::string error;

    void fail_locked(const std::string& why) {
        if (!failed) {
            failed = true;
            error = why;
        }
        cv.notify_all();
    }
    void barrier() {
        std::unique_lock<std::mutex> lock(m);
        if (failed) throw Abort{};
        if (++arrived + exited == nthreads) {
            if (exited) {
                fail_locked("__syncthreads: " + std::to_string(exited) + " thread(s) of block " +
                            std::to_string(blockIdx.x) + " returned before a barrier that the other " +
                            std::to_string(arrived) + " reached (a divergent __syncthreads)");
                throw Abort{};
            }
            arrived = 0;
            ++phase;
            cv.notify_all();
            return;
        }
        unsigned long long my_phase = phase;
        cv.wait(lock, [&] { return phase != my_phase || failed; });
        if (failed) throw Abort{};
    }
    void exit_thread() {
        std::lock_guard<std::mutex> lock(m);
        ++exited;
        if (arrived && arrived + exited == nthreads && !failed)
            fail_locked("__syncthreads: thread " + std::to_string(threadIdx.x) + " of block " +
                        std::to_string(blockIdx.x) + " returned while " + std::to_string(arrived) +
                        " thread(s) of its block wait at a barrier (a divergent __syncthreads)");
    }
};

inline thread_local std::string* seq_error = nullptr;

// A persistent pool of OS threads that run one block at a time.
class Pool {
  public:
    static Pool& get() {
        static Pool pool;
        return pool;
    }
    // Run body(t) for t in [0, n) on n threads at once; returns when all have finished.
    void run(unsigned int n, const std::function<void(unsigned int)>& body) {
        std::unique_lock<std::mutex> lock(m_);
        while (workers_.size() < n) {
            unsigned int id = (unsigned int)workers_.size();
            workers_.emplace_back([this, id] { loop(id); });
        }
        body_ = &body;
        active_ = n;
        remaining_ = n;
        ++generation_;
        start_.notify_all();
        done_.wait(lock, [&] { return remaining_ == 0; });
        body_ = nullptr;
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
            start_.notify_all();
        }
        for (auto& w : workers_) w.join();
    }

  private:
    void loop(unsigned int id) {
        unsigned long long seen = 0;
        for (;;) {
            const std::function<void(unsigned int)>* body;
            {
                std::unique_lock<std::mutex> lock(m_);
                start_.wait(lock, [&] { return stop_ || (generation_ != seen && id < active_); });
                if (stop_) return;
                seen = generation_;
                body = body_;
            }
            (*body)(id);
            std::lock_guard<std::mutex> lock(m_);
            if (--remaining_ == 0) done_.notify_all();
        }
    }
    std::mutex m_;
    std::condition_variable start_, done_;
    std::vector<std::thread> workers_;
    const std::function<void(unsigned int)>* body_ = nullptr;
    unsigned int active_ = 0, remaining_ = 0;
    unsigned long long generation_ = 0;
    bool stop_ = false;
};


// ---- fibers: a block's threads on one OS thread, switching at __syncthreads ----------------
// Each fiber gets its own stack (reused across launches); makecontext starts it once and
// _setjmp/_longjmp switch (no signal-mask system call, unlike swapcontext).
inline int mode = 0;  // 0 fibers, 1 OS threads (set by gg_emu_set_mode)

struct Fiber {
    jmp_buf jb;
    std::vector<char> stack;
    int state = 0;  // 0 running, 1 at a barrier, 2 finished
    unsigned int barriers = 0;
    std::string error;
};

struct FiberBlock {
    std::vector<Fiber> fibers;
    const std::function<void(unsigned int)>* body = nullptr;
    jmp_buf sched;
    jmp_buf creator;
    unsigned int starting = 0;
    unsigned int running = 0;
};

inline thread_local FiberBlock* fiber_block = nullptr;

inline void fiber_entry() {
    FiberBlock* fb = fiber_block;
    unsigned int idx = fb->starting;
    Fiber& f = fb->fibers[idx];
    if (!_setjmp(f.jb)) _longjmp(fb->creator, 1);  // created: back to the creator
    try {
        (*fb->body)(idx);
    } catch (Abort&) {
    } catch (std::exception& e) {
        f.error = e.what();
    }
    f.state = 2;
    _longjmp(fiber_block->sched, 1);
}

inline void fiber_barrier() {
    FiberBlock* fb = fiber_block;
    Fiber& f = fb->fibers[fb->running];
    f.state = 1;
    ++f.barriers;
    if (!_setjmp(f.jb)) _longjmp(fb->sched, 1);
    f.state = 0;  // resumed: every thread of the block reached this barrier
    unsigned int t = fb->running;
    threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
}

// Run body(t) for t in [0, n) as fibers; returns an error message or "".
inline std::string run_fibers(unsigned int n, const std::function<void(unsigned int)>& body) {
    static thread_local FiberBlock fb;
    fiber_block = &fb;
    if (fb.fibers.size() < n) fb.fibers.resize(n);
    fb.body = &body;
    for (unsigned int i = 0; i < n; ++i) {
        Fiber& f = fb.fibers[i];
        f.state = 0;
        f.barriers = 0;
        f.error.clear();
        if (f.stack.empty()) f.stack.resize(64 * 1024);
        ucontext_t uc;
        getcontext(&uc);
        uc.uc_stack.ss_sp = f.stack.data();
        uc.uc_stack.ss_size = f.stack.size();
        uc.uc_link = nullptr;
        makecontext(&uc, fiber_entry, 0);
        fb.starting = i;
        if (!_setjmp(fb.creator)) setcontext(&uc);
    }
    std::string error;
    for (;;) {
        unsigned int at_barrier = 0, finished = 0;
        for (unsigned int i = 0; i < n; ++i) {
            Fiber& f = fb.fibers[i];
            if (f.state == 2) {
                ++finished;
                continue;
            }
            fb.running = i;
            if (!_setjmp(fb.sched)) _longjmp(f.jb, 1);
            if (!f.error.empty() && error.empty()) error = f.error;
            if (f.state == 2) ++finished;
            else ++at_barrier;
        }
        if (!error.empty()) break;
        if (at_barrier == 0) break;  // all finished
        if (finished) {
            unsigned int lo = ~0u, hi = 0;
            for (unsigned int i = 0; i < n; ++i) {
                lo = fb.fibers[i].barriers < lo ? fb.fibers[i].barriers : lo;
                hi = fb.fibers[i].barriers > hi ? fb.fibers[i].barriers : hi;
            }
            error = "__syncthreads: " + std::to_string(finished) + " thread(s) of block " +
                    std::to_string(blockIdx.x) + " returned before a barrier that the other " +
                    std::to_string(at_barrier) + " reached (a divergent __syncthreads; threads passed " +
                    std::to_string(lo) + " to " + std::to_string(hi) + " barriers)";
            break;
        }
    }
    fiber_block = nullptr;
    return error;
}

extern "C" char __start_gg_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_gg_shared[] __attribute__((weak, visibility("hidden")));

// Fill this library's shared section with 0xff: a read before a write gives NaN / -1.
__attribute__((no_sanitize("address", "thread"))) inline void poison_shared() {
    if (!__start_gg_shared || !__stop_gg_shared) return;
    for (volatile char* p = __start_gg_shared; p < __stop_gg_shared; ++p) *p = (char)0xff;
}

template <class... A, std::size_t... I>
void call(void (*fn)(A...), void** args, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

inline void set_thread(unsigned int flat, unsigned int bx, unsigned int by, unsigned int bz) {
    threadIdx = {flat % blockDim.x, (flat / blockDim.x) % blockDim.y, flat / (blockDim.x * blockDim.y)};
    blockIdx = {bx, by, bz};
}

// Run fn<<<grid, block>>>(args). Returns 0, or 1 with a message in err.
template <class... A>
int launch(void (*fn)(A...), const unsigned int* grid, const unsigned int* block, void** args, bool threads,
           const char* name, char* err, unsigned int errlen) {
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    const unsigned int n = block[0] * block[1] * block[2];
    std::string error;
    for (unsigned int bz = 0; bz < grid[2] && error.empty(); ++bz)
        for (unsigned int by = 0; by < grid[1] && error.empty(); ++by)
            for (unsigned int bx = 0; bx < grid[0] && error.empty(); ++bx) {
                poison_shared();
                if (!threads) {
                    std::string seq_err;
                    seq_error = &seq_err;
                    current = nullptr;
                    try {
                        for (unsigned int t = 0; t < n && seq_err.empty(); ++t) {
                            set_thread(t, bx, by, bz);
                            call(fn, args, std::index_sequence_for<A...>{});
                        }
                    } catch (Abort&) {
                    } catch (std::exception& e) {
                        seq_err = e.what();
                    }
                    seq_error = nullptr;
                    error = seq_err;
                    continue;
                }
                if (mode == 0) {
                    std::function<void(unsigned int)> body = [&](unsigned int t) {
                        set_thread(t, bx, by, bz);
                        call(fn, args, std::index_sequence_for<A...>{});
                    };
                    error = run_fibers(n, body);
                    continue;
                }
                Block blk;
                blk.nthreads = n;
                Pool::get().run(n, [&](unsigned int t) {
                    current = &blk;
                    set_thread(t, bx, by, bz);
                    try {
                        call(fn, args, std::index_sequence_for<A...>{});
                        blk.exit_thread();
                    } catch (Abort&) {
                    } catch (std::exception& e) {
                        std::lock_guard<std::mutex> lock(blk.m);
                        blk.fail_locked(e.what());
                    }
                    current = nullptr;
                });
                if (blk.failed) error = blk.error;
            }
    if (error.empty()) return 0;
    std::string msg = std::string(name) + ": " + error;
    if (err && errlen) {
        strncpy(err, msg.c_str(), errlen - 1);
        err[errlen - 1] = 0;
    }
    return 1;
}

// C type codes of kernel parameters: f4 float, f8 double, i4 int, i8 long long, u4 unsigned,
// b1 bool, p<code> pointer to <code> (pv: void), S<n> a struct of n bytes.
template <class T> struct code {
    static std::string get() {
        if constexpr (std::is_pointer_v<T>) {
            using P = std::remove_cv_t<std::remove_pointer_t<T>>;
            if constexpr (std::is_void_v<P>)
                return "pv";
            else
                return "p" + code<P>::get();
        } else if constexpr (std::is_same_v<T, bool>) {
            return "b1";
        } else if constexpr (std::is_floating_point_v<T>) {
            return "f" + std::to_string(sizeof(T));
        } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
            return "i" + std::to_string(sizeof(T));
        } else if constexpr (std::is_integral_v<T>) {
            return "u" + std::to_string(sizeof(T));
        } else {
            return "S" + std::to_string(sizeof(T));
        }
    }
};

template <class... A>
std::string signature(void (*)(A...)) {
    std::string s;
    ((s += (s.empty() ? "" : ",") + code<std::remove_cv_t<std::remove_reference_t<A>>>::get()), ...);
    return s;
}

}  // namespace gg_emu

inline void __syncthreads() {
    if (gg_emu::current) {
        gg_emu::current->barrier();
        return;
    }
    if (gg_emu::fiber_block) {
        gg_emu::fiber_barrier();
        return;
    }
    if (gg_emu::seq_error && gg_emu::seq_error->empty())
        *gg_emu::seq_error =
            "__syncthreads in a kernel launched in sequential mode (exported with GG_EMU_EXPORT_SEQ: "
            "its threads do not run concurrently, so the barrier cannot be honoured)";
    throw gg_emu::Abort{};
}

// A memory fence between a block's writes and the atomic that publishes them.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// Atomics: real atomic read-modify-writes of exactly the target element.
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return std::atomic_ref<unsigned int>(*p).fetch_add(v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}
template <class T> inline T gg_emu_cas(T* p, T compare, T value) {
    std::atomic_ref<T>(*p).compare_exchange_strong(compare, value);
    return compare;  // the old value, as atomicCAS returns
}
inline unsigned int atomicCAS(unsigned int* p, unsigned int c, unsigned int v) { return gg_emu_cas(p, c, v); }
inline unsigned short atomicCAS(unsigned short* p, unsigned short c, unsigned short v) {
    return gg_emu_cas(p, c, v);
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
    return gg_emu_cas(p, c, v);
}

// Correctly rounded arithmetic intrinsics (no contraction into an FMA: built with -ffp-contract=off).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return sqrt(a); }

#define GG_EMU_EXPORT_IMPL(name, threads)                                                              \
    GG_EMU_API int gg_emu_launch_##name(const unsigned int* grid, const unsigned int* block, void** args, \
                                        char* err, unsigned int errlen) {                              \
        return gg_emu::launch(name, grid, block, args, threads, #name, err, errlen);                  \
    }                                                                                                  \
    GG_EMU_API const char* gg_emu_sig_##name() {                                                       \
        static const std::string s = gg_emu::signature(name);                                          \
        return s.c_str();                                                                              \
    }
// The threads of barrier kernels: 0 fibers, 1 OS threads (weak: one per library however many
// units include this header).
extern "C" __attribute__((weak, visibility("default"))) void gg_emu_set_mode(int m) { gg_emu::mode = m; }
// Kernels with __syncthreads: threads of a block run concurrently.
#define GG_EMU_EXPORT(name) GG_EMU_EXPORT_IMPL(name, true)
// Kernels without barriers: threads run one after another (faster; a barrier is an error).
#define GG_EMU_EXPORT_SEQ(name) GG_EMU_EXPORT_IMPL(name, false)
