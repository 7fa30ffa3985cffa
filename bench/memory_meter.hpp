// The heap meter's interface (bench/memory_meter.cpp): one object linked into every benchmark
// binary replaces malloc/calloc/realloc/free to count allocations and live bytes.
#pragma once

namespace ift::bench {

/// Heap allocations (malloc, calloc, realloc) made by this process so far.
long long mallocs();
/// Registers the heap meter as Google Benchmark's MemoryManager: every benchmark then also
/// reports allocs_per_iter and max_bytes_used (run_main calls it).
void register_heap_meter();

}  // namespace ift::bench
