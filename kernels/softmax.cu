// Softmax and log-softmax over the middle dimension of a contiguous
// [outer, n, inner] view, computed in f32 with the maximum subtracted.
//
// Rows (inner == 1): one warp per row, 8 rows per 256-thread block, three
// passes over the row (max, sum of exponentials, write). Columns (inner > 1):
// one thread per (outer, inner) column, the same three passes. No shared
// memory.
#include "common.cuh"

namespace softmax {

constexpr int kRowsPerBlock = 8;

__device__ __forceinline__ float finish(float x, float max, float sum, bool log) {
  return log ? x - max - logf(sum) : expf(x - max) / sum;
}

template <typename T>
__device__ void rows(const T* x, T* out, long long outer, int n, int log) {
  const long long row = static_cast<long long>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= outer) return;
  const int lane = threadIdx.x % 32;
  const T* in = x + row * n;
  float m = -INFINITY;
  for (int j = lane; j < n; j += 32) m = fmaxf(m, common::to_float(in[j]));
  m = common::warp_max(m);
  float s = 0.0f;
  for (int j = lane; j < n; j += 32) s += expf(common::to_float(in[j]) - m);
  s = common::warp_sum(s);
  for (int j = lane; j < n; j += 32) out[row * n + j] = common::from_float<T>(finish(common::to_float(in[j]), m, s, log));
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
  softmax::rows(x, out, outer, n, log);
}
extern "C" __global__ void softmax_rows_bf16(const bf16* x, bf16* out, long long outer, int n, int log) {
  softmax::rows(x, out, outer, n, log);
}
extern "C" __global__ void softmax_cols_f32(const float* x, float* out, long long outer, int n, long long inner, int log) {
  softmax::cols(x, out, outer, n, inner, log);
}
extern "C" __global__ void softmax_cols_bf16(const bf16* x, bf16* out, long long outer, int n, long long inner, int log) {
  softmax::cols(x, out, outer, n, inner, log);
}
