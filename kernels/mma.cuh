// The tensor-core operations reclip's kernels use, in one place for both
// builds: nvcc compiles the PTX instructions below; the emulator runs the same
// calls as warp-collective operations (crates/reclip-emu/csrc/reclip_emu_mma.h)
// that follow the PTX ISA's fragment layouts exactly, so a kernel that puts an
// element in the wrong lane or register computes a wrong result on the
// emulator, as it would on the GPU.
//
// Operations (all warp-collective: every lane of a full warp calls them with
// the same arguments' shapes, in converged code):
// - mma::m16n8k16(d, a, b, c): d = a·b + c, mma.sync.aligned.m16n8k16.row.col
//   .f32.bf16.bf16.f32 — a 16×16 bf16 (row-major A), b 16×8 bf16 (k × n,
//   "col": each column's k values contiguous), c and d 16×8 f32.
// - mma::ldmatrix_x4 / _x2 (and _trans): ldmatrix.sync.aligned.m8n8.x{4,2}
//   {.trans}.shared.b16 — lane l gives the address of row l % 8 of matrix
//   l / 8 (16 bytes, 16-byte aligned, in shared memory; lanes 16–31 of an x2
//   are ignored); register j of each lane receives its two elements of
//   matrix j.
// - mma::pack(lo, hi): two f32 rounded to bf16 in one register (lo in the low
//   half), the form accumulators take to become the next product's A operand.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4; each register holds two bf16, the lower
// column (or k) in the low half:
//   A (16×16): a[0] = (row g,   cols 2t, 2t+1)   a[1] = (row g+8, cols 2t, 2t+1)
//              a[2] = (row g,   cols 2t+8, +9)   a[3] = (row g+8, cols 2t+8, +9)
//   B (16×8):  b[0] = (k 2t, 2t+1, col g)        b[1] = (k 2t+8, 2t+9, col g)
//   C, D:      c[0], c[1] = (row g, cols 2t, 2t+1)   c[2], c[3] = (row g+8, ...)
//   ldmatrix:  register j = (row g, cols 2t, 2t+1) of matrix j; with .trans
//              (rows 2t, 2t+1, col g), i.e. of the matrix transposed.
// So an A tile of a row-major 16×16 block at `p` (row stride s elements) is
// ldmatrix_x4(a, p + (l % 16)·s + (l / 16)·8); a B tile whose n columns are
// rows of memory (K for Q·Kᵀ) is ldmatrix of those rows; a B tile whose k
// values run down memory rows (V for P·V) is ldmatrix_trans.
#pragma once

#include "common.cuh"

#ifdef RECLIP_EMULATOR
#include "reclip_emu_mma.h"
#else

namespace mma {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                         const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}

}  // namespace mma

#endif

namespace mma {

__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16(hi))) << 16);
}

}  // namespace mma
