// Softmax and log-softmax over the middle dimension of a contiguous
// [outer, n, inner] view, computed in f32 with the maximum subtracted.
//
// Rows (inner == 1): one warp per row, 8 rows per 256-thread block, grid
// ceil(outer / 8), three passes over the row (max, sum of exponentials,
// write; the second and third meant to hit L1). Two forms from one source:
// the scalar form (`softmax_rows_f32`, `_bf16`; any n and alignment) and the
// vector form (`softmax_rows_vec_*`), which crates/reclip-core/src/gpu/reduce.rs
// launches when n is a multiple of the 16-byte pack (4 f32, 8 bf16) and both
// pointers are 16-byte aligned. A lane takes packs lane, lane + 32, ..., 4 of
// them (64 bytes) loaded before any is used. Order of sums: the scalar form
// adds a lane's exponentials in the order lane, lane + 32, ... (the results
// of before packs); the vector form pack by pack, each pack's elements in
// order, so its sums round differently in the last bits. The maximum does
// not depend on the order. Registers (sm_80/sm_90): scalar 23–26, vector 40
// (6 blocks, 48 warps per SM).
//
// Columns (inner > 1): one thread per (outer, inner) column, the same three
// passes, scalar only. Registers: 32 (bf16), 48/40 (f32). No shared memory.
//
// Floor for rows the size of a ViT-B/16 activation ([50432, 768]) at
// 4.3 TB/s: 155 MB in bf16 (one read, one write), 36 µs; f32 72 µs.
// Predictions, not measurements.
#include "common.cuh"

namespace softmax {

constexpr int kRowsPerBlock = 8;
constexpr int kInFlight = 4;

__device__ __forceinline__ float finish(float x, float max, float sum, bool log) {
  return log ? x - max - logf(sum) : expf(x - max) / sum;
}

template <typename T, int K>
__device__ void rows(const T* x, T* out, long long outer, int n, int log) {
  using P = common::Pack<T, K>;
  const long long row = static_cast<long long>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= outer) return;
  const int lane = threadIdx.x % 32;
  const T* in = x + row * n;
  T* dst = out + row * n;
  const int packs = n / K;
  const auto load = [&](int p) { return common::load_pack<K>(in + p * K); };
  float m = -INFINITY;
  common::walk<kInFlight>(lane, packs, 32, load, [&](int, const P& v) {
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) m = fmaxf(m, v.get(e));
  });
  m = common::warp_max(m);
  float s = 0.0f;
  common::walk<kInFlight>(lane, packs, 32, load, [&](int, const P& v) {
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) s += expf(v.get(e) - m);
  });
  s = common::warp_sum(s);
  common::walk<kInFlight>(lane, packs, 32, load, [&](int p, const P& v) {
    P r{};
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) r.set(e, finish(v.get(e), m, s, log));
    common::store_pack<K>(dst + p * K, r);
  });
}

template <typename T>
__device__ void cols(const T* x, T* out, long long outer, int n, long long inner, int log) {
  for (long long k = common::grid_index(); k < outer * inner; k += common::grid_stride()) {
    const long long o = k / inner, i = k % inner;
    const T* in = x + o * n * inner + i;
    float m = -INFINITY;
    for (int j = 0; j < n; ++j) m = fmaxf(m, common::to_float(in[j * inner]));
    float s = 0.0f;
    for (int j = 0; j < n; ++j) s += expf(common::to_float(in[j * inner]) - m);
    for (int j = 0; j < n; ++j) {
      out[(o * n + j) * inner + i] = common::from_float<T>(finish(common::to_float(in[j * inner]), m, s, log));
    }
  }
}

}  // namespace softmax

extern "C" __global__ void softmax_rows_f32(const float* x, float* out, long long outer, int n, int log) {
  softmax::rows<float, 1>(x, out, outer, n, log);
}
extern "C" __global__ void softmax_rows_bf16(const bf16* x, bf16* out, long long outer, int n, int log) {
  softmax::rows<bf16, 1>(x, out, outer, n, log);
}
extern "C" __global__ void softmax_rows_vec_f32(const float* x, float* out, long long outer, int n, int log) {
  softmax::rows<float, 4>(x, out, outer, n, log);
}
extern "C" __global__ void softmax_rows_vec_bf16(const bf16* x, bf16* out, long long outer, int n, int log) {
  softmax::rows<bf16, 8>(x, out, outer, n, log);
}
extern "C" __global__ void softmax_cols_f32(const float* x, float* out, long long outer, int n, long long inner, int log) {
  softmax::cols(x, out, outer, n, inner, log);
}
extern "C" __global__ void softmax_cols_bf16(const bf16* x, bf16* out, long long outer, int n, long long inner, int log) {
  softmax::cols(x, out, outer, n, inner, log);
}
