// CUDA's device-side surface for reclip's CPU emulator.
//
// The kernels in kernels/ are compiled as host C++ against this header. Each
// CUDA thread of a block runs as a fiber (runtime.cpp); blockIdx, threadIdx
// and friends read the running fiber's coordinates; barriers and warp
// shuffles switch fibers. Static __shared__ arrays are placed in one linker
// section so that the runtime can fill all of them with NaN at each block's
// start; dynamic shared memory is one buffer, poisoned likewise.
//
// What CUDA offers and the emulator cannot run is a compile error here, so a
// kernel that uses it must keep a portable path: inline PTX (asm), WMMA
// fragments (nvcuda::wmma is not declared), partial-mask warp intrinsics
// (checked at run time: only the full mask is accepted). The tensor-core
// instructions reclip's kernels use are wrapped in kernels/mma.cuh, whose
// emulator side (reclip_emu_mma.h) runs them as warp-collective operations.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("reclip_shared")))
#define __constant__ static const
// Inline PTX cannot run on a CPU: using it names the problem in the error.
#define asm inline_ptx_cannot_run_on_the_reclip_emulator
#define __asm__ inline_ptx_cannot_run_on_the_reclip_emulator

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
};
struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

namespace reclip_emu {

struct ThreadState {
  uint3 tid;
  unsigned int lane;
  unsigned int warp;
};

extern ThreadState* g_thread;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;

void sync_block();
void sync_warp();
void* dynamic_shared();
// The exchange slots of the running fiber's warp (32 of them), and the
// number of threads the warp really has.
uint64_t* warp_slots();
// A wider exchange area of the running fiber's warp: kExchangeWords words for
// each of its 32 lanes (a tensor-core operation's fragments).
constexpr int kExchangeWords = 16;
uint32_t* warp_exchange();
unsigned int warp_width();
// Whether [p, p + bytes) lies in the block's shared memory (static or dynamic).
bool in_shared(const void* p, size_t bytes);
[[noreturn]] void fail(const char* what);

inline void check_full_mask(unsigned int mask, const char* what) {
  if (mask != 0xffffffffu) fail(what);
  if (warp_width() != 32) fail("warp intrinsic in a partial warp (blockDim is not a multiple of 32)");
}

// Every lane publishes its value, meets its warp, reads its source lane's
// value, and meets again so that no lane overwrites a slot still being read.
template <typename T>
T shuffle_from(T v, int src_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a value wider than 8 bytes");
  uint64_t* slots = warp_slots();
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  slots[g_thread->lane] = bits;
  sync_warp();
  T out = v;
  if (src_lane >= 0) memcpy(&out, &slots[src_lane], sizeof(T));
  sync_warp();
  return out;
}

inline int segment_start(int width) { return static_cast<int>(g_thread->lane) & ~(width - 1); }

}  // namespace reclip_emu

#define threadIdx (reclip_emu::g_thread->tid)
#define blockIdx (reclip_emu::g_block_idx)
#define blockDim (reclip_emu::g_block_dim)
#define gridDim (reclip_emu::g_grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { reclip_emu::sync_block(); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) {
  reclip_emu::check_full_mask(mask, "__syncwarp with a partial mask");
  reclip_emu::sync_warp();
}
inline void __threadfence() {}
inline void __threadfence_block() {}
[[noreturn]] inline void __trap() { reclip_emu::fail("__trap() called"); }

template <typename T>
T __shfl_sync(unsigned int mask, T v, int src, int width = 32) {
  reclip_emu::check_full_mask(mask, "__shfl_sync with a partial mask");
  return reclip_emu::shuffle_from(v, reclip_emu::segment_start(width) + (src & (width - 1)));
}
template <typename T>
T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32) {
  reclip_emu::check_full_mask(mask, "__shfl_xor_sync with a partial mask");
  const int lane = static_cast<int>(reclip_emu::g_thread->lane);
  const int src = lane ^ lane_mask;
  return reclip_emu::shuffle_from(v, src >= reclip_emu::segment_start(width) + width ? -1 : src);
}
template <typename T>
T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
  reclip_emu::check_full_mask(mask, "__shfl_down_sync with a partial mask");
  const int lane = static_cast<int>(reclip_emu::g_thread->lane);
  const int in_segment = (lane & (width - 1)) + static_cast<int>(delta);
  return reclip_emu::shuffle_from(v, in_segment >= width ? -1 : lane + static_cast<int>(delta));
}
template <typename T>
T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
  reclip_emu::check_full_mask(mask, "__shfl_up_sync with a partial mask");
  const int lane = static_cast<int>(reclip_emu::g_thread->lane);
  const int in_segment = (lane & (width - 1)) - static_cast<int>(delta);
  return reclip_emu::shuffle_from(v, in_segment < 0 ? -1 : lane - static_cast<int>(delta));
}
inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
  reclip_emu::check_full_mask(mask, "__ballot_sync with a partial mask");
  uint64_t* slots = reclip_emu::warp_slots();
  slots[reclip_emu::g_thread->lane] = predicate != 0;
  reclip_emu::sync_warp();
  unsigned int bits = 0;
  for (int l = 0; l < 32; ++l) bits |= static_cast<unsigned int>(slots[l] != 0) << l;
  reclip_emu::sync_warp();
  return bits;
}
inline int __any_sync(unsigned int mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned int mask, int predicate) { return __ballot_sync(mask, predicate) == 0xffffffffu; }

// Atomics: fibers of the emulator never run at the same time, so plain
// read-modify-write is atomic here.
template <typename T>
T atomicAdd(T* address, T v) {
  const T old = *address;
  *address = old + v;
  return old;
}
template <typename T>
T atomicMax(T* address, T v) {
  const T old = *address;
  *address = old > v ? old : v;
  return old;
}
template <typename T>
T atomicMin(T* address, T v) {
  const T old = *address;
  *address = old < v ? old : v;
  return old;
}
template <typename T>
T atomicExch(T* address, T v) {
  const T old = *address;
  *address = v;
  return old;
}
template <typename T>
T atomicCAS(T* address, T compare, T v) {
  const T old = *address;
  if (old == compare) *address = v;
  return old;
}

// Math intrinsics with their IEEE-rounded host equivalents.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float_as_int(float x) {
  int i;
  memcpy(&i, &x, 4);
  return i;
}
inline unsigned int __float_as_uint(float x) {
  unsigned int i;
  memcpy(&i, &x, 4);
  return i;
}
inline float __int_as_float(int i) {
  float x;
  memcpy(&x, &i, 4);
  return x;
}
inline float __uint_as_float(unsigned int i) {
  float x;
  memcpy(&x, &i, 4);
  return x;
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float min(float a, float b) { return fminf(a, b); }

// bf16 with CUDA's conversions: f32 -> bf16 rounds to nearest even; NaN stays
// NaN (quiet, sign kept).
struct __nv_bfloat16 {
  uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return {u}; }
