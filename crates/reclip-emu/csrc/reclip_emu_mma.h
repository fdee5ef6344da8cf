// The emulator's side of kernels/mma.cuh: ldmatrix and mma.sync m16n8k16 as
// warp-collective operations. Each lane publishes its operands in its warp's
// exchange area, the warp meets, each lane computes the elements the PTX ISA
// assigns to it from the other lanes' registers, and the warp meets again so
// that no lane overwrites operands still being read. The lane-to-element
// mapping is the documented one (see mma.cuh), not a convenient one: a kernel
// that builds a fragment in the wrong layout gets the wrong product here.
//
// Products of bf16 are exact in f32; they are accumulated onto c in k order
// with f32 fused multiply-adds. Tensor cores sum in an unspecified order and
// precision, so kernels are tested against their CPU references with bf16
// tolerances, never bitwise.
#pragma once

#include "reclip_emu.h"

namespace mma {

namespace detail {

inline unsigned int lane() { return reclip_emu::g_thread->lane; }

inline void check_warp(const char* what) {
  if (reclip_emu::warp_width() != 32) reclip_emu::fail(what);
}

inline float half(uint32_t reg, int which) {
  const uint32_t bits = which == 0 ? (reg & 0xffffu) : (reg >> 16);
  return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(bits)));
}

// ldmatrix of `count` 8×8 matrices of b16.
inline void ldmatrix(uint32_t* r, int count, bool trans, const bf16* row) {
  check_warp("ldmatrix in a partial warp");
  uint64_t* slots = reclip_emu::warp_slots();
  const unsigned int l = lane();
  if (l < 8u * count) {
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0) reclip_emu::fail("ldmatrix: a row address is not 16-byte aligned");
    if (!reclip_emu::in_shared(row, 16)) reclip_emu::fail("ldmatrix: a row address is not in shared memory");
  }
  slots[l] = reinterpret_cast<uintptr_t>(row);
  reclip_emu::sync_warp();
  const unsigned int g = l / 4, t = l % 4;
  for (int j = 0; j < count; ++j) {
    const uint16_t* rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const uint16_t*>(slots[8 * j + i]);
    const uint16_t lo = trans ? rows[2 * t][g] : rows[g][2 * t];
    const uint16_t hi = trans ? rows[2 * t + 1][g] : rows[g][2 * t + 1];
    r[j] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  reclip_emu::sync_warp();
}

}  // namespace detail

inline void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) { detail::ldmatrix(r, 4, false, row); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) { detail::ldmatrix(r, 4, true, row); }
inline void ldmatrix_x2(uint32_t (&r)[2], const bf16* row) { detail::ldmatrix(r, 2, false, row); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const bf16* row) { detail::ldmatrix(r, 2, true, row); }

inline void m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  detail::check_warp("mma.sync in a partial warp");
  uint32_t* x = reclip_emu::warp_exchange();
  const unsigned int l = detail::lane();
  uint32_t* mine = x + reclip_emu::kExchangeWords * l;
  for (int i = 0; i < 4; ++i) mine[i] = a[i];
  mine[4] = b[0];
  mine[5] = b[1];
  reclip_emu::sync_warp();
  // Element (row, k) of A lives in lane (row % 8)·4 + (k % 8)/2, register
  // (row ≥ 8) + 2·(k ≥ 8), half k % 2; element (k, col) of B in lane
  // col·4 + (k % 8)/2, register 4 + (k ≥ 8), half k % 2.
  auto a_at = [&](int row, int k) {
    const uint32_t* owner = x + reclip_emu::kExchangeWords * ((row % 8) * 4 + (k % 8) / 2);
    return detail::half(owner[(row >= 8) + 2 * (k >= 8)], k % 2);
  };
  auto b_at = [&](int k, int col) {
    const uint32_t* owner = x + reclip_emu::kExchangeWords * (col * 4 + (k % 8) / 2);
    return detail::half(owner[4 + (k >= 8)], k % 2);
  };
  const int g = static_cast<int>(l / 4), t = static_cast<int>(l % 4);
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
    float acc = c[i];
    for (int k = 0; k < 16; ++k) acc = fmaf(a_at(row, k), b_at(k, col), acc);
    out[i] = acc;
  }
  reclip_emu::sync_warp();
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

}  // namespace mma
