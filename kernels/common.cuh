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

// What a Pack<T, K> holds its elements in: bf16 elements of a vector pack
// two to a 32-bit word, so that a loaded pack stays in 4 registers until its
// elements are read (an array of bf16 takes a register per element).
template <typename T, int K>
struct PackWord {
  using type = T;
};
template <int K>
struct PackWord<bf16, K> {
  using type = uint32_t;
};
template <>
struct PackWord<bf16, 1> {
  using type = bf16;
};

// K consecutive elements of T that move together: one plain access when
// K == 1, whole 16-byte accesses (ld/st.global.v4 under nvcc) when K·sizeof(T)
// is a multiple of 16, e.g. 4 f32 or 8 bf16. A kernel written over packs has
// a scalar form (K = 1) and a vector form from the same source. A 16-byte
// access needs a 16-byte aligned address: launch code picks the vector form
// only when its pointers and row lengths allow, and the emulator fails a
// launch that breaks this. Elements are read as f32 and written rounded to T.
template <typename T, int K>
struct alignas(sizeof(T) * K < 16 ? sizeof(T) * K : 16) Pack {
  static_assert(K == 1 || sizeof(T) * K % 16 == 0, "a pack is one element or whole 16-byte words");
  using Word = typename PackWord<T, K>::type;
  static constexpr bool kWords = sizeof(Word) != sizeof(T);
  Word w[sizeof(T) * K / sizeof(Word)];

  __device__ __forceinline__ float get(int e) const {
    if constexpr (kWords) {
      const uint32_t word = w[e / 2];
      return __uint_as_float(e % 2 ? word & 0xffff0000u : word << 16);  // bf16 widens exactly
    } else {
      return to_float(w[e]);
    }
  }
  // Packs written element by element start as Pack<T, K>{} (zero words).
  __device__ __forceinline__ void set(int e, float v) {
    if constexpr (kWords) {
      const T rounded = from_float<T>(v);
      uint16_t bits;
      memcpy(&bits, &rounded, sizeof(bits));
      uint32_t& word = w[e / 2];
      word = e % 2 ? (word & 0xffffu) | static_cast<uint32_t>(bits) << 16 : (word & 0xffff0000u) | bits;
    } else {
      w[e] = from_float<T>(v);
    }
  }
};

template <int K, typename T>
__device__ __forceinline__ Pack<T, K> load_pack(const T* p) {
  Pack<T, K> out;
  if constexpr (K == 1) {
    out.w[0] = *p;
  } else {
#ifdef RECLIP_EMULATOR
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) reclip_emu::fail("16-byte load from an address not 16-byte aligned");
    memcpy(&out, p, sizeof(out));
#else
    RECLIP_UNROLL
    for (int i = 0; i < static_cast<int>(sizeof(out) / 16); ++i) {
      const float4 word = reinterpret_cast<const float4*>(p)[i];
      memcpy(reinterpret_cast<unsigned char*>(&out) + 16 * i, &word, 16);
    }
#endif
  }
  return out;
}

template <int K, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, K>& in) {
  if constexpr (K == 1) {
    *p = in.w[0];
  } else {
#ifdef RECLIP_EMULATOR
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) reclip_emu::fail("16-byte store to an address not 16-byte aligned");
    memcpy(p, &in, sizeof(in));
#else
    RECLIP_UNROLL
    for (int i = 0; i < static_cast<int>(sizeof(in) / 16); ++i) {
      float4 word;
      memcpy(&word, reinterpret_cast<const unsigned char*>(&in) + 16 * i, 16);
      reinterpret_cast<float4*>(p)[i] = word;
    }
#endif
  }
}

// The loop `for (i = first; i < end; i += stride) use(i, load(i))`, the same
// i in the same order, but with the loads of kInFlight iterations issued
// before the first of their uses, so that a thread has that many independent
// loads in flight. So load(j) must not read what use(i) writes for another i
// of the batch. With first = lane and stride 32 it is a warp's coalesced pass
// over a row; with grid_index() and grid_stride(), a grid-stride loop.
template <int kInFlight, typename I, typename Load, typename Use>
__device__ __forceinline__ void walk(I first, I end, I stride, Load load, Use use) {
  for (I i = first; i < end; i += kInFlight * stride) {
    decltype(load(i)) held[kInFlight] = {};  // zeros past `end` are never used (nor kept by ptxas)
    RECLIP_UNROLL
    for (int u = 0; u < kInFlight; ++u) {
      if (i + u * stride < end) held[u] = load(i + u * stride);
    }
    RECLIP_UNROLL
    for (int u = 0; u < kInFlight; ++u) {
      if (i + u * stride < end) use(i + u * stride, held[u]);
    }
  }
}

// out[i] = f(x[i]) (map1) or f(a[i], b[i]) (map2) for contiguous arrays of n
// elements: threads take elements (K = 1) or 16-byte packs of them (the
// vector forms) in a grid-stride loop, kInFlight at a time loaded before any
// is used. n must be a multiple of K.
template <int kInFlight, typename T, int K, typename F>
__device__ __forceinline__ void map1(const T* x, T* out, long long n, F f) {
  using P = Pack<T, K>;
  walk<kInFlight>(
      grid_index(), n / K, grid_stride(), [&](long long p) { return load_pack<K>(x + p * K); },
      [&](long long p, const P& in) {
        P r{};
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) r.set(e, f(in.get(e)));
        store_pack<K>(out + p * K, r);
      });
}

template <int kInFlight, typename T, int K, typename F>
__device__ __forceinline__ void map2(const T* a, const T* b, T* out, long long n, F f) {
  using P = Pack<T, K>;
  struct Operands {
    P a, b;
  };
  walk<kInFlight>(
      grid_index(), n / K, grid_stride(),
      [&](long long p) { return Operands{load_pack<K>(a + p * K), load_pack<K>(b + p * K)}; },
      [&](long long p, const Operands& in) {
        P r{};
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) r.set(e, f(in.a.get(e), in.b.get(e)));
        store_pack<K>(out + p * K, r);
      });
}
}  // namespace common
