// The one include every kernel file starts with. It is shared by the two
// builds of the kernels: nvcc for GPUs, and the host C++ compiler for reclip's
// CPU emulator (RECLIP_EMULATOR defined, CUDA's surface provided by
// crates/reclip-emu/csrc/reclip_emu.h). What differs between the two lives
// here and in that header; kernel sources stay plain CUDA.
//
// Conventions for kernel files:
// - entry points are `extern "C" __global__` and named with their dtype
//   (`_f32`, `_bf16`); they accumulate in f32;
// - helpers live in a namespace named after the file, so that no two files
//   define the same symbol;
// - dynamic shared memory is declared with RECLIP_DYNAMIC_SHARED.
#pragma once

#ifdef RECLIP_EMULATOR
#include "reclip_emu.h"
#define RECLIP_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(reclip_emu::dynamic_shared())
#define RECLIP_UNROLL _Pragma("GCC unroll 16")
#else
#define RECLIP_UNROLL _Pragma("unroll")
#include <cuda_bf16.h>
#include <stdint.h>
// One name for every kernel's dynamic shared memory, so that kernels of
// different element types can share a translation unit.
#define RECLIP_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char reclip_dynamic_shared[]; \
  T* name = reinterpret_cast<T*>(reclip_dynamic_shared)
#endif

typedef __nv_bfloat16 bf16;

// A view's shape and strides (in elements), passed by value to kernels that
// read or write non-contiguous tensors. Matches reclip_core::KernelLayout.
struct StridedLayout {
  int rank;
  int dims[6];
  long long strides[6];
};

namespace common {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float v) { return __float2bfloat16(v); }

// Butterfly reductions over a full warp: every lane ends with the result.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Storage offset of the i-th element (row-major order) of a view. Unused
// trailing dimensions are 1 (stride 0) and change nothing; the loop is fully
// unrolled so that the layout is read with constant indices and stays out of
// local memory.
__device__ __forceinline__ long long strided_offset(const StridedLayout& l, long long i) {
  long long offset = 0;
  RECLIP_UNROLL
  for (int d = 5; d >= 0; --d) {
    offset += (i % l.dims[d]) * l.strides[d];
    i /= l.dims[d];
  }
  return offset;
}

// The grid-stride loop index of this thread and the loop's stride.
__device__ __forceinline__ long long grid_index() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() { return static_cast<long long>(gridDim.x) * blockDim.x; }

}  // namespace common
