// The epilogues of the MLP's linear layers with an activation (the GEMMs run
// in cuBLAS): y = act(z + bias) with act GELU (exact, erf) or QuickGELU
// (u·σ(1.702u)), or the identity, its backward du = dy·act'(z + bias), and the
// bias gradient db = Σ_rows du, reduced in two deterministic stages (no
// atomics): per-tile partial sums over a fixed chunk of rows, then the chunks
// in order. z is the GEMM's output, kept for the backward instead of the
// pre-activation. Layers without activation add their bias and sum its
// gradient in cuBLASLt's GEMM epilogues instead (reclip-mlp's fused.rs); they
// use bias_grad only when their weight takes no gradient.
// Register counts are ptxas's for sm_80/sm_90 (tools/ptxas-report.sh); none
// spills.
#include "common.cuh"

namespace mlp {

enum Activation { IDENTITY = 0, GELU = 1, QUICK_GELU = 2 };

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kQuickGeluScale = 1.702f;

__device__ __forceinline__ float activate(int act, float u) {
  if (act == GELU) return 0.5f * u * (1.0f + erff(u * kSqrtHalf));
  if (act == QUICK_GELU) return u / (1.0f + expf(-kQuickGeluScale * u));
  return u;
}

// d act / du: GELU' = Φ(u) + u·φ(u); QuickGELU' = s·(1 + 1.702·u·(1 − s)), s = σ(1.702u).
__device__ __forceinline__ float derivative(int act, float u) {
  if (act == GELU) return 0.5f * (1.0f + erff(u * kSqrtHalf)) + u * kInvSqrt2Pi * expf(-0.5f * u * u);
  if (act == QUICK_GELU) {
    const float s = 1.0f / (1.0f + expf(-kQuickGeluScale * u));
    return s * (1.0f + kQuickGeluScale * u * (1.0f - s));
  }
  return 1.0f;
}

// Launch: 1-D grid-stride loop, 256 threads, one element per thread; no
// shared memory. Memory-bound: z read and y written once, the bias row from
// cache. Registers (sm_80/sm_90): f32 30/28, bf16 21/22.
template <typename T>
__device__ void bias_act_forward(const T* z, const T* bias, T* y, long long rows, int cols, int act) {
  for (long long i = common::grid_index(); i < rows * cols; i += common::grid_stride()) {
    const int c = static_cast<int>(i % cols);
    y[i] = common::from_float<T>(activate(act, common::to_float(z[i]) + common::to_float(bias[c])));
  }
}

constexpr int kTileCols = 32;
constexpr int kTileRows = 8;

// Column sums of g = dy·act'(z + bias) (kDerivative) or of dy itself, per
// chunk of rows. Launch: grid (ceil(cols/32), chunks), block (32, 8): thread
// (x, y) of block (bx, by) owns column bx*32 + x and rows by*rows_per_chunk
// + y, + 8, ...; a warp reads 32 consecutive elements of a row. With
// kDerivative it writes du. Static shared memory 8×33 floats (1056 B): the
// eight row-phases of each column are added in order and written to
// partial[by, column]. Every thread reaches the barrier, including those
// past the last column. Registers: bias_act_bwd 40/40 (f32 and bf16), so
// registers limit occupancy to 6 blocks (48 warps) per SM; bias_grad 32/32.
template <typename T, bool kDerivative>
__device__ void column_sums(const T* dy, const T* z, const T* bias, T* du, float* partial, long long rows, int cols,
                            int act, long long rows_per_chunk) {
  __shared__ float sums[kTileRows][kTileCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * kTileCols + tx;
  const long long first = static_cast<long long>(blockIdx.y) * rows_per_chunk;
  const long long end = min(rows, first + rows_per_chunk);
  float acc = 0.0f;
  if (col < cols) {
    const float b = kDerivative ? common::to_float(bias[col]) : 0.0f;
    for (long long r = first + ty; r < end; r += kTileRows) {
      const long long i = r * cols + col;
      float g = common::to_float(dy[i]);
      if (kDerivative) {
        g *= derivative(act, common::to_float(z[i]) + b);
        du[i] = common::from_float<T>(g);
      }
      acc += g;
    }
  }
  sums[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && col < cols) {
    float total = 0.0f;
    for (int k = 0; k < kTileRows; ++k) total += sums[k][tx];
    partial[static_cast<long long>(blockIdx.y) * cols + col] = total;
  }
}

// db[c] = Σ_k partial[k, c] over the chunks in order. Launch: 1-D grid-stride
// loop over the columns, 256 threads; no shared memory. Registers: 32/32.
template <typename T>
__device__ void column_sums_finish(const float* partial, int chunks, int cols, T* db) {
  for (long long c = common::grid_index(); c < cols; c += common::grid_stride()) {
    float total = 0.0f;
    for (int k = 0; k < chunks; ++k) total += partial[static_cast<long long>(k) * cols + c];
    db[c] = common::from_float<T>(total);
  }
}

}  // namespace mlp

extern "C" __global__ void bias_act_fwd_f32(const float* z, const float* bias, float* y, long long rows, int cols,
                                            int act) {
  mlp::bias_act_forward(z, bias, y, rows, cols, act);
}
extern "C" __global__ void bias_act_fwd_bf16(const bf16* z, const bf16* bias, bf16* y, long long rows, int cols,
                                             int act) {
  mlp::bias_act_forward(z, bias, y, rows, cols, act);
}
extern "C" __global__ void bias_act_bwd_f32(const float* dy, const float* z, const float* bias, float* du,
                                            float* partial, long long rows, int cols, int act,
                                            long long rows_per_chunk) {
  mlp::column_sums<float, true>(dy, z, bias, du, partial, rows, cols, act, rows_per_chunk);
}
extern "C" __global__ void bias_act_bwd_bf16(const bf16* dy, const bf16* z, const bf16* bias, bf16* du,
                                             float* partial, long long rows, int cols, int act,
                                             long long rows_per_chunk) {
  mlp::column_sums<bf16, true>(dy, z, bias, du, partial, rows, cols, act, rows_per_chunk);
}
extern "C" __global__ void bias_grad_f32(const float* dy, float* partial, long long rows, int cols,
                                         long long rows_per_chunk) {
  mlp::column_sums<float, false>(dy, nullptr, nullptr, nullptr, partial, rows, cols, 0, rows_per_chunk);
}
extern "C" __global__ void bias_grad_bf16(const bf16* dy, float* partial, long long rows, int cols,
                                          long long rows_per_chunk) {
  mlp::column_sums<bf16, false>(dy, nullptr, nullptr, nullptr, partial, rows, cols, 0, rows_per_chunk);
}
extern "C" __global__ void bias_grad_finish_f32(const float* partial, int chunks, int cols, float* db) {
  mlp::column_sums_finish(partial, chunks, cols, db);
}
extern "C" __global__ void bias_grad_finish_bf16(const float* partial, int chunks, int cols, bf16* db) {
  mlp::column_sums_finish(partial, chunks, cols, db);
}
