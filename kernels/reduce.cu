// Reductions over the middle dimension of a contiguous [outer, n, inner] view.
//
// Rows (inner == 1): one warp per row, 8 rows per 256-thread block; lanes
// stride through the row, then a butterfly shuffle combines them. Columns
// (inner > 1): one thread per (outer, inner) output, looping over n, so that
// neighbouring threads read neighbouring addresses. No shared memory; a few
// registers. Summation order is fixed, so results are deterministic.
#include "common.cuh"

namespace reduce {

constexpr int kRowsPerBlock = 8;

template <typename T>
__device__ void sum_rows(const T* x, T* out, long long outer, int n) {
  const long long row = static_cast<long long>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= outer) return;  // the whole warp leaves together
  const int lane = threadIdx.x % 32;
  float acc = 0.0f;
  for (int j = lane; j < n; j += 32) acc += common::to_float(x[row * n + j]);
  acc = common::warp_sum(acc);
  if (lane == 0) out[row] = common::from_float<T>(acc);
}

template <typename T>
__device__ void sum_cols(const T* x, T* out, long long outer, int n, long long inner) {
  for (long long k = common::grid_index(); k < outer * inner; k += common::grid_stride()) {
    const long long o = k / inner, i = k % inner;
    float acc = 0.0f;
    for (int j = 0; j < n; ++j) acc += common::to_float(x[(o * n + j) * inner + i]);
    out[k] = common::from_float<T>(acc);
  }
}

// Keeps the larger value; NaN wins over numbers; ties keep the first index.
__device__ __forceinline__ void take_max(float& v, unsigned& idx, float other, unsigned other_idx) {
  const bool v_nan = isnan(v), o_nan = isnan(other);
  const bool better = (o_nan && !v_nan) || (!v_nan && !o_nan && other > v) ||
                      ((o_nan == v_nan) && (o_nan || other == v) && other_idx < idx);
  if (better) {
    v = other;
    idx = other_idx;
  }
}

template <typename T>
__device__ void max_rows(const T* x, T* out, unsigned* arg, long long outer, int n) {
  const long long row = static_cast<long long>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= outer) return;
  const int lane = threadIdx.x % 32;
  float v = -INFINITY;
  unsigned idx = 0xffffffffu;
  for (int j = lane; j < n; j += 32) take_max(v, idx, common::to_float(x[row * n + j]), j);
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const unsigned oi = __shfl_xor_sync(0xffffffffu, idx, offset);
    take_max(v, idx, ov, oi);
  }
  if (lane == 0) {
    out[row] = common::from_float<T>(v);
    arg[row] = idx;
  }
}

template <typename T>
__device__ void max_cols(const T* x, T* out, unsigned* arg, long long outer, int n, long long inner) {
  for (long long k = common::grid_index(); k < outer * inner; k += common::grid_stride()) {
    const long long o = k / inner, i = k % inner;
    float v = -INFINITY;
    unsigned idx = 0xffffffffu;
    for (int j = 0; j < n; ++j) take_max(v, idx, common::to_float(x[(o * n + j) * inner + i]), j);
    out[k] = common::from_float<T>(v);
    arg[k] = idx;
  }
}

}  // namespace reduce

extern "C" __global__ void sum_rows_f32(const float* x, float* out, long long outer, int n) { reduce::sum_rows(x, out, outer, n); }
extern "C" __global__ void sum_rows_bf16(const bf16* x, bf16* out, long long outer, int n) { reduce::sum_rows(x, out, outer, n); }
extern "C" __global__ void sum_cols_f32(const float* x, float* out, long long outer, int n, long long inner) {
  reduce::sum_cols(x, out, outer, n, inner);
}
extern "C" __global__ void sum_cols_bf16(const bf16* x, bf16* out, long long outer, int n, long long inner) {
  reduce::sum_cols(x, out, outer, n, inner);
}
extern "C" __global__ void max_rows_f32(const float* x, float* out, unsigned* arg, long long outer, int n) {
  reduce::max_rows(x, out, arg, outer, n);
}
extern "C" __global__ void max_rows_bf16(const bf16* x, bf16* out, unsigned* arg, long long outer, int n) {
  reduce::max_rows(x, out, arg, outer, n);
}
extern "C" __global__ void max_cols_f32(const float* x, float* out, unsigned* arg, long long outer, int n, long long inner) {
  reduce::max_cols(x, out, arg, outer, n, inner);
}
extern "C" __global__ void max_cols_bf16(const bf16* x, bf16* out, unsigned* arg, long long outer, int n, long long inner) {
  reduce::max_cols(x, out, arg, outer, n, inner);
}
