// The MLP's activation and the bias gradient of the linear layers. Every
// linear layer's bias rides in its GEMMs' cuBLASLt epilogues (reclip-mlp's
// fused.rs): c_fc's forward GEMM writes the pre-activation u = x·Wᵀ + b, kept
// for the backward, and c_fc's weight-gradient GEMM sums db. What cuBLASLt
// has no epilogue for runs here: h = act(u) and du = dh·act'(u) for the
// exact erf GELU and QuickGELU (u·σ(1.702u)); GELU's tanh approximation, the
// one cuBLASLt computes, is fused into the GEMMs instead (GELU_AUX_BIAS and
// DGELU_BGRAD) and comes here only when its width is not a multiple of 8.
// bias_grad sums a bias gradient for a layer whose weight takes none,
// reduced in two deterministic stages (no atomics): per-tile partial sums
// over a fixed chunk of rows, then the chunks in order.
// Register counts are ptxas's for sm_80/sm_90 (tools/ptxas-report.sh); none
// spills.
#include "common.cuh"

namespace mlp {

enum Activation { GELU = 1, QUICK_GELU = 2, GELU_TANH = 3 };

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kQuickGeluScale = 1.702f;
// GELU_TANH: ½(1 + tanh y) = σ(2y), y = √(2/π)(u + 0.044715u³), as
// reclip_core::cpu::gelu_tanh writes it.
constexpr float kTwoSqrt2OverPi = 1.5957691216057308f;
constexpr float kCubic = 0.044715f;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float activate(int act, float u) {
  if (act == GELU) return 0.5f * u * (1.0f + erff(u * kSqrtHalf));
  if (act == QUICK_GELU) return u * sigmoid(kQuickGeluScale * u);
  return u * sigmoid(kTwoSqrt2OverPi * (u + kCubic * u * u * u));
}

// d act / du: GELU' = Φ(u) + u·φ(u); QuickGELU' = s·(1 + 1.702·u·(1 − s)),
// s = σ(1.702u); GELU_TANH' = s + u·s(1 − s)·2√(2/π)(1 + 3·0.044715u²), s = σ(2y).
__device__ __forceinline__ float derivative(int act, float u) {
  if (act == GELU) return 0.5f * (1.0f + erff(u * kSqrtHalf)) + u * kInvSqrt2Pi * expf(-0.5f * u * u);
  if (act == QUICK_GELU) {
    const float s = sigmoid(kQuickGeluScale * u);
    return s * (1.0f + kQuickGeluScale * u * (1.0f - s));
  }
  const float s = sigmoid(kTwoSqrt2OverPi * (u + kCubic * u * u * u));
  return s + u * s * (1.0f - s) * kTwoSqrt2OverPi * (1.0f + 3.0f * kCubic * u * u);
}

// Launch (both): 1-D grid-stride loop, 256 threads; no shared memory. Scalar
// form (K = 1, any n and alignment, grid ceil(n / 256)) and vector form (K =
// 16-byte pack, n a multiple of it, 16-byte aligned pointers; each thread
// loads kInFlight = 4 packs of every input before it computes), chosen as
// for the elementwise kernels (reclip_core::gpu::map_form). Memory-bound:
// act_fwd reads u and writes h, act_bwd reads dh and u and writes du, once.
// Floor for ViT-B/16's c_fc at 224 px, batch 256 (50432 × 3072 = 155 M
// elements, bf16): act_fwd 620 MB, 144 µs; act_bwd 930 MB, 216 µs at 4.3 TB/s.
// Registers (sm_80/sm_90): act_fwd 27/32, act_bwd 32/32; vector forms
// act_fwd 40/40, act_bwd 56/56.
constexpr int kInFlight = 4;

template <typename T, int K>
__device__ void act_forward(const T* u, T* h, long long n, int act) {
  common::map1<kInFlight, T, K>(u, h, n, [&](float v) { return activate(act, v); });
}

template <typename T, int K>
__device__ void act_backward(const T* dh, const T* u, T* du, long long n, int act) {
  common::map2<kInFlight, T, K>(dh, u, du, n, [&](float g, float v) { return g * derivative(act, v); });
}

constexpr int kTileCols = 32;
constexpr int kTileRows = 8;

// Column sums of dy per chunk of rows. Launch: grid (ceil(cols/32), chunks),
// block (32, 8): thread (x, y) of block (bx, by) owns column bx*32 + x and
// rows by*rows_per_chunk + y, + 8, ...; a warp reads 32 consecutive elements
// of a row. Static shared memory 8×33 floats (1056 B): the eight row-phases
// of each column are added in order and written to partial[by, column].
// Every thread reaches the barrier, including those past the last column.
// Registers: 32/32.
template <typename T>
__device__ void column_sums(const T* dy, float* partial, long long rows, int cols, long long rows_per_chunk) {
  __shared__ float sums[kTileRows][kTileCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * kTileCols + tx;
  const long long first = static_cast<long long>(blockIdx.y) * rows_per_chunk;
  const long long end = min(rows, first + rows_per_chunk);
  float acc = 0.0f;
  if (col < cols) {
    for (long long r = first + ty; r < end; r += kTileRows) acc += common::to_float(dy[r * cols + col]);
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

extern "C" __global__ void act_fwd_f32(const float* u, float* h, long long n, int act) {
  mlp::act_forward<float, 1>(u, h, n, act);
}
extern "C" __global__ void act_bwd_f32(const float* dh, const float* u, float* du, long long n, int act) {
  mlp::act_backward<float, 1>(dh, u, du, n, act);
}
extern "C" __global__ void act_fwd_bf16(const bf16* u, bf16* h, long long n, int act) {
  mlp::act_forward<bf16, 1>(u, h, n, act);
}
extern "C" __global__ void act_bwd_bf16(const bf16* dh, const bf16* u, bf16* du, long long n, int act) {
  mlp::act_backward<bf16, 1>(dh, u, du, n, act);
}
extern "C" __global__ void act_fwd_vec_f32(const float* u, float* h, long long n, int act) {
  mlp::act_forward<float, 4>(u, h, n, act);
}
extern "C" __global__ void act_bwd_vec_f32(const float* dh, const float* u, float* du, long long n, int act) {
  mlp::act_backward<float, 4>(dh, u, du, n, act);
}
extern "C" __global__ void act_fwd_vec_bf16(const bf16* u, bf16* h, long long n, int act) {
  mlp::act_forward<bf16, 8>(u, h, n, act);
}
extern "C" __global__ void act_bwd_vec_bf16(const bf16* dh, const bf16* u, bf16* du, long long n, int act) {
  mlp::act_backward<bf16, 8>(dh, u, du, n, act);
}

extern "C" __global__ void bias_grad_f32(const float* dy, float* partial, long long rows, int cols,
                                         long long rows_per_chunk) {
  mlp::column_sums(dy, partial, rows, cols, rows_per_chunk);
}
extern "C" __global__ void bias_grad_bf16(const bf16* dy, float* partial, long long rows, int cols,
                                          long long rows_per_chunk) {
  mlp::column_sums(dy, partial, rows, cols, rows_per_chunk);
}
extern "C" __global__ void bias_grad_finish_f32(const float* partial, int chunks, int cols, float* db) {
  mlp::column_sums_finish(partial, chunks, cols, db);
}
extern "C" __global__ void bias_grad_finish_bf16(const float* partial, int chunks, int cols, bf16* db) {
  mlp::column_sums_finish(partial, chunks, cols, db);
}
