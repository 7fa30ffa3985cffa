// The heap meter of every ift benchmark binary: this translation unit (linked once per binary, an
// object library in bench/CMakeLists.txt) replaces malloc, calloc, realloc and free, forwarding to
// glibc's __libc_* functions, and counts allocations and live bytes (malloc_usable_size). Two
// readers use the counts:
//   - Google Benchmark's memory-manager hook (MemoryManager, registered by run_main): after each
//     benchmark's timed run the library repeats up to 16 iterations between Start() and Stop(),
//     and reports allocs_per_iter and max_bytes_used (peak live bytes over what was live at Start)
//     in the console and JSON output;
//   - CallMeter's allocs_per_call (bench_meter.hpp), which counts only the timed call itself, not
//     the interleaved reference or the untimed warm-up call.
// glibc 2.34 removed __malloc_hook, so replacing the functions is the only portable way to count
// under glibc without a second allocator.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <benchmark/benchmark.h>

#include "memory_meter.hpp"

extern "C" void* __libc_malloc(std::size_t size);
extern "C" void* __libc_calloc(std::size_t count, std::size_t size);
extern "C" void* __libc_realloc(void* ptr, std::size_t size);
extern "C" void __libc_free(void* ptr);

namespace {
std::atomic<long long> g_allocs{0};
std::atomic<long long> g_live{0};
std::atomic<long long> g_peak{0};

void on_allocate(void* p) {
  if (p == nullptr) return;
  const auto bytes = static_cast<long long>(malloc_usable_size(p));
  const long long live = g_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  long long peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}
void on_release(void* p) {
  if (p == nullptr) return;
  g_live.fetch_sub(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace

extern "C" void* malloc(std::size_t size) {
  void* p = __libc_malloc(size);
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  on_allocate(p);
  return p;
}
extern "C" void* calloc(std::size_t count, std::size_t size) {
  void* p = __libc_calloc(count, size);
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  on_allocate(p);
  return p;
}
extern "C" void* realloc(void* ptr, std::size_t size) {
  on_release(ptr);
  void* p = __libc_realloc(ptr, size);
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  // On failure the old block is still live: count it back.
  on_allocate(p != nullptr || size == 0 ? p : ptr);
  return p;
}
extern "C" void free(void* ptr) {
  on_release(ptr);
  __libc_free(ptr);
}

namespace ift::bench {

long long mallocs() { return g_allocs.load(std::memory_order_relaxed); }

namespace {
/// Google Benchmark's hook: allocations and peak live bytes between Start() and Stop().
class HeapMeter final : public benchmark::MemoryManager {
 public:
  void Start() override {
    allocs0_ = g_allocs.load(std::memory_order_relaxed);
    live0_ = g_live.load(std::memory_order_relaxed);
    g_peak.store(live0_, std::memory_order_relaxed);
  }
  // The 1.7 interface declares the pointer form deprecated but pure; the reference form
  // forwards to it.
  BENCHMARK_DISABLE_DEPRECATED_WARNING
  void Stop(Result* result) override { Stop(*result); }
  BENCHMARK_RESTORE_DEPRECATED_WARNING
  void Stop(Result& result) override {
    result.num_allocs = g_allocs.load(std::memory_order_relaxed) - allocs0_;
    result.max_bytes_used = std::max<long long>(0, g_peak.load(std::memory_order_relaxed) - live0_);
    result.net_heap_growth = g_live.load(std::memory_order_relaxed) - live0_;
  }

 private:
  long long allocs0_ = 0, live0_ = 0;
};
}  // namespace

void register_heap_meter() {
  static HeapMeter meter;
  benchmark::RegisterMemoryManager(&meter);
}

}  // namespace ift::bench
