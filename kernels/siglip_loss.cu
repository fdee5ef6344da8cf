// SigLIP's sigmoid loss without a B×B buffer of logits.
//
// For normalised embeddings A (m rows) and C (n rows) in f32, s = exp(min(t,
// ln 100)) and the learnable bias β, the logits are z = s·A·Cᵀ + β and each
// pair's label y_ij is +1 where j = i + label_offset (the matching pair) and
// −1 elsewhere (label_offset ≥ n: a block of negatives only). The loss of a
// block is w·Σ_ij softplus(−y_ij·z_ij), w = 1 / (the image rows of the
// rank), so the blocks of a ring exchange add up to open_clip's SigLipLoss.
// The host (crates/reclip-loss/src/siglip/gpu.rs) chains, after
// clip_loss.cu's clip_normalize_*:
//   siglip_rows_f32        Σ_j softplus(−y_ij z_ij) per row of A
//   siglip_total_f32       w · Σ over rows (the loss; dt and dβ below)
//   siglip_grad_rows_f32   d(loss)/dA, recomputing z tile by tile, and per
//                          row of A the partial sums of d(loss)/dt and dβ
// then clip_denormalize_*. The backward runs siglip_grad_rows_f32 twice, on
// (A, C) = (images, texts) and (texts, images). d(loss)/dz_ij =
// −w·y_ij·σ(−y_ij z_ij). Logits live in registers and shared memory only
// (logit_tiles.cuh); every sum has a fixed order: bitwise reproducible.
#include "logit_tiles.cuh"

namespace siglip {

using namespace logit_tiles;

constexpr int kRows = 64;
constexpr int kCols = 64;
constexpr int kDepth = 32;

// softplus(x) = log(1 + eˣ) without overflow: max(x, 0) + log1p(e^−|x|).
__device__ __forceinline__ float softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

__device__ __forceinline__ float label(int row, int col, int label_offset) {
  return col == row + label_offset ? 1.0f : -1.0f;
}

// ---- siglip_rows: a block owns kRows rows of A and sweeps all of C in
// tiles of kCols; each thread holds a 4×4 patch of the tile and a running
// sum per row. At the end one thread per row adds the row's 16 partial sums
// in column order through shared memory.
__device__ void rows(const float* a, const float* c, const float* log_scale, const float* bias, float* row_loss,
                     int m, int n, int d, int label_offset) {
  __align__(16) __shared__ float a_stage[2 * kDepth * (kRows + 4)];
  __align__(16) __shared__ float c_stage[2 * kDepth * (kCols + 4)];
  const float s = logit_scale(log_scale), beta = bias[0];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.x * kRows;
  float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int col0 = 0; col0 < n; col0 += kCols) {
    float z[4][4];
    tile_logits<kRows, kCols, kDepth, 2, 4, 4>(a, c, m, n, d, row0, col0, a_stage, c_stage, ty * 4, tx * 4, z);
    RECLIP_UNROLL
    for (int i = 0; i < 4; ++i) {
      const int row = row0 + ty * 4 + i;
      RECLIP_UNROLL
      for (int j = 0; j < 4; ++j) {
        const int col = col0 + tx * 4 + j;
        if (col < n) sum[i] += softplus(-label(row, col, label_offset) * (z[i][j] * s + beta));
      }
    }
  }
  // The stages are free: tile_logits ended with a barrier.
  RECLIP_UNROLL
  for (int i = 0; i < 4; ++i) a_stage[(ty * 4 + i) * 16 + tx] = sum[i];
  __syncthreads();
  const int row = row0 + threadIdx.x;
  if (threadIdx.x < kRows && row < m) {
    float total = 0.0f;
    for (int t = 0; t < 16; ++t) total += a_stage[threadIdx.x * 16 + t];
    row_loss[row] = total;
  }
}

// logit_tiles::grad_sweep's terms: dz = −g·w·y·σ(−y·(sz + β)).
struct SigmoidTerms {
  struct Row {};
  float beta, gw;
  int label_offset;

  __device__ __forceinline__ Row row(int) const { return {}; }
  __device__ __forceinline__ float col(int) const { return 0.0f; }
  __device__ __forceinline__ float dz(Row, float, int r, int c, float sz) const {
    const float y = label(r, c, label_offset);
    return -gw * y / (1.0f + expf(y * (sz + beta)));
  }
};

__device__ void total(const float* rows, int m, float weight, const float* clamp_by, float* out) {
  __shared__ float warp_sums[kThreads / 32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < m; i += kThreads) acc += rows[i];
  const float sum = block_sum(acc, warp_sums);
  // d(loss)/dt is zero where the clamp of t is active.
  if (threadIdx.x == 0) out[0] = clamp_by != nullptr && clamp_by[0] > kMaxLogScale ? 0.0f : weight * sum;
}

}  // namespace siglip

// A block: 64 rows of A against all of C in 64-column tiles. Launch: grid
// ceil(m / 64), 256 threads; static shared memory 34 KiB (two buffers of a
// 32×68 stage of A and of C). Registers (sm_80/sm_90): 121/109 under
// __launch_bounds__(256, 2), no spills; registers limit occupancy to 2
// blocks per SM. Per embedding element a thread does 16 FMAs for two 128-bit
// shared loads, as clip_lse_rows_f32. Floor at B = 32768, d = 512 (a large
// SigLIP batch): 1.1 TFLOP of logits, 16 ms at the 67 TFLOP/s of f32 FMA an
// H200's specification gives (not measured); the backward's two sweeps each
// twice that.
extern "C" __global__ void __launch_bounds__(256, 2) siglip_rows_f32(const float* a, const float* c,
                                                                  const float* log_scale, const float* bias,
                                                                  float* row_loss, int m, int n, int d,
                                                                  int label_offset) {
  siglip::rows(a, c, log_scale, bias, row_loss, m, n, d, label_offset);
}

// A block: 32 rows of A and up to 512 embedding columns of dA, against all
// of C in 64-column tiles (logit_tiles::grad_sweep). Launch: grid (ceil(m /
// 32), ceil(d / 512)), 256 threads, `width` = ceil(d / gridDim.y); static
// shared memory 21 KiB; registers 128/128 under __launch_bounds__(256, 2),
// no spills. dt_rows and db_rows (both or neither) get the per-row partial
// sums of d(loss)/dt and dβ.
extern "C" __global__ void __launch_bounds__(256, 2)
    siglip_grad_rows_f32(const float* a, const float* c, const float* log_scale, const float* bias,
                         const float* grad_loss, float weight, int label_offset, float* da, float* dt_rows,
                         float* db_rows, int m, int n, int d, int width) {
  __align__(16) __shared__ float a_stage[logit_tiles::kGradAStage];
  __align__(16) __shared__ float c_stage[logit_tiles::kGradCStage];
  __align__(16) __shared__ float dz_tile[logit_tiles::kGradDzTile];
  const siglip::SigmoidTerms terms{bias[0], grad_loss[0] * weight, label_offset};
  logit_tiles::grad_sweep<true>(a, c, logit_tiles::logit_scale(log_scale), terms, da, dt_rows, db_rows, m, n, d,
                                width, a_stage, c_stage, dz_tile);
}

// One block of 256 threads: out = weight · Σ rows, in a fixed order, or 0
// where clamp_by (the log-temperature, for its gradient) is past ln 100.
// Static shared memory 32 B; registers 31/31.
extern "C" __global__ void siglip_total_f32(const float* rows, int m, float weight, const float* clamp_by,
                                            float* out) {
  siglip::total(rows, m, weight, clamp_by, out);
}
