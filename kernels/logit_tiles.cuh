// The machinery of reclip's contrastive losses (clip_loss.cu: CLIP's
// softmax loss; siglip_loss.cu: SigLIP's sigmoid loss) over normalised
// embeddings A (m rows) and C (n rows) held in f32: logits z = s·A·Cᵀ (+ a
// bias for SigLIP) recomputed tile by tile in registers and shared memory,
// never stored; the gradient sweep d(loss)/dA that both losses run with
// their own d(loss)/dz; and a fixed-order block sum. Every sum runs in a
// fixed order, so results are bitwise reproducible run to run.
//
// The products are plain f32 FMAs: the losses are a few percent of a step
// (BENCHMARKS.md's roofline), and f32 logits keep the gradients of large
// batches exact enough without the bf16 rounding tensor cores would add.
#pragma once
#include "common.cuh"

namespace logit_tiles {

// ln 100 rounded to f32, where open_clip's clamp leaves its f32 parameter
// (reclip_loss::MAX_LOG_SCALE).
constexpr float kMaxLogScale = 4.6051702f;
constexpr int kThreads = 256;

__device__ __forceinline__ float logit_scale(const float* log_scale) { return expf(fminf(log_scale[0], kMaxLogScale)); }

// Copies rows [row0, row0 + R) and elements [k0, k0 + D) of the row-major
// [rows, d] matrix x into s[k * (R + 4) + r], zero outside x. Consecutive
// threads read consecutive elements of a row (coalesced).
template <int R, int D>
__device__ __forceinline__ void stage_transposed(const float* x, int rows, int d, int row0, int k0, float* s) {
  RECLIP_UNROLL
  for (int i = 0; i < R * D / kThreads; ++i) {
    const int e = i * kThreads + threadIdx.x;
    const int r = e / D, k = e % D;
    const int row = row0 + r, col = k0 + k;
    s[k * (R + 4) + r] = (row < rows && col < d) ? x[static_cast<long long>(row) * d + col] : 0.0f;
  }
}

// acc[i][j] += Σ_k as[k][ra + i] · cs[k][cb + j] over one stage.
template <int D, int RI, int CJ, int AStride, int CStride>
__device__ __forceinline__ void stage_product(const float* as, const float* cs, int ra, int cb, float (&acc)[RI][CJ]) {
  RECLIP_UNROLL
  for (int k = 0; k < D; ++k) {
    float a[RI], c[CJ];
    RECLIP_UNROLL
    for (int i = 0; i < RI; ++i) a[i] = as[k * AStride + ra + i];
    RECLIP_UNROLL
    for (int j = 0; j < CJ; ++j) c[j] = cs[k * CStride + cb + j];
    RECLIP_UNROLL
    for (int i = 0; i < RI; ++i) {
      RECLIP_UNROLL
      for (int j = 0; j < CJ; ++j) acc[i][j] += a[i] * c[j];
    }
  }
}

// z[i][j] = Σ_k a[ra + i]·c[cb + j] for a tile of R rows of `a` from row0 and
// Cc rows of `c` from col0, staged through shared memory D elements at a
// time. With Buffers = 2 the stages are double-buffered (stage k + 1 is
// written while stage k is read: one barrier per stage); with Buffers = 1
// a stage is written, read, then released (two barriers), which keeps fewer
// loads in flight for register-bound callers. `a_stage` and `c_stage` hold
// Buffers stages of D × (R + 4) and D × (Cc + 4) floats. Ends with a barrier,
// so the stages may be reused at once.
template <int R, int Cc, int D, int Buffers, int RI, int CJ>
__device__ __forceinline__ void tile_logits(const float* a, const float* c, int m, int n, int d, int row0, int col0,
                                            float* a_stage, float* c_stage, int ra, int cb, float (&z)[RI][CJ]) {
  static_assert(Buffers == 1 || Buffers == 2, "one or two stage buffers");
  constexpr int kAStage = D * (R + 4), kCStage = D * (Cc + 4);
  RECLIP_UNROLL
  for (int i = 0; i < RI; ++i) {
    RECLIP_UNROLL
    for (int j = 0; j < CJ; ++j) z[i][j] = 0.0f;
  }
  if (Buffers == 1) {
    for (int k0 = 0; k0 < d; k0 += D) {
      stage_transposed<R, D>(a, m, d, row0, k0, a_stage);
      stage_transposed<Cc, D>(c, n, d, col0, k0, c_stage);
      __syncthreads();
      stage_product<D, RI, CJ, R + 4, Cc + 4>(a_stage, c_stage, ra, cb, z);
      __syncthreads();
    }
    return;
  }
  stage_transposed<R, D>(a, m, d, row0, 0, a_stage);
  stage_transposed<Cc, D>(c, n, d, col0, 0, c_stage);
  __syncthreads();
  for (int k0 = 0, buf = 0; k0 < d; k0 += D, buf ^= 1) {
    if (k0 + D < d) {
      // The other buffer's last readers passed the barrier that ended the previous stage.
      stage_transposed<R, D>(a, m, d, row0, k0 + D, a_stage + (buf ^ 1) * kAStage);
      stage_transposed<Cc, D>(c, n, d, col0, k0 + D, c_stage + (buf ^ 1) * kCStage);
    }
    stage_product<D, RI, CJ, R + 4, Cc + 4>(a_stage + buf * kAStage, c_stage + buf * kCStage, ra, cb, z);
    __syncthreads();
  }
}

// ---- One-block reductions in a fixed order: thread k sums elements k, k+256,
// …; then the warps, then every warp over the warp sums (kThreads / 32 floats
// of shared memory in `warp_sums`).
__device__ __forceinline__ float block_sum(float v, float* warp_sums) {
  v = common::warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = lane < kThreads / 32 ? warp_sums[lane] : 0.0f;
  return common::warp_sum(total);  // every warp computes it; thread 0 writes it
}

// ---- The gradient sweep: a block owns kGradRows rows of A and one split of
// the embedding columns (at most kSplit wide; blockIdx.y picks it) and sweeps
// C in tiles of kGradCols. Per tile: (1) recompute the logits, 2×4 per
// thread; (2) turn them into s·d(loss)/dz in shared memory; (3) add that tile
// times C's rows into an 8×8 register accumulator per thread, reading C
// through the L1 cache (the four warps of a row group read the same lines).
// Splits beyond the first recompute (1); the first also writes the per-row
// Σ dz·(s·â·ĉ) for dt, and with kBias the per-row Σ dz for the bias.
constexpr int kGradRows = 32;
constexpr int kGradCols = 64;
constexpr int kGradDepth = 32;
constexpr int kSplit = 512;
constexpr int kGroups = kSplit / 64;  // columns per thread in step (3), 64 apart
// The shared memory of one sweep, in floats: declared by the kernel (the
// emulator's build cannot place static shared memory of template functions).
constexpr int kGradAStage = kGradDepth * (kGradRows + 4);
constexpr int kGradCStage = kGradDepth * (kGradCols + 4);
constexpr int kGradDzTile = kGradCols * kGradRows;  // [col][row]

// Terms is the loss's d(loss)/dz (s·d(loss)/dz is what step (3) adds up):
//   typename Terms::Row  what a row needs, loaded once: terms.row(row), row < m;
//   float terms.col(col) a value per column, col < n;
//   float terms.dz(row_state, col_value, row, col, sz) for sz = s·â_row·ĉ_col.
template <bool kBias, typename Terms>
__device__ __forceinline__ void grad_sweep(const float* a, const float* c, float s, const Terms& terms, float* da,
                                           float* dt_rows, float* db_rows, int m, int n, int d, int width,
                                           float* a_stage, float* c_stage, float* dz_tile) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // step (1): rows ty*2+i, cols tx*4+j
  const int cg = threadIdx.x % 64, rg = threadIdx.x / 64;  // step (3): rows rg*8+r, columns cg+64*q
  const int row0 = blockIdx.x * kGradRows;
  const int split0 = blockIdx.y * width;
  float acc[8][kGroups];
  RECLIP_UNROLL
  for (int r = 0; r < 8; ++r) {
    RECLIP_UNROLL
    for (int q = 0; q < kGroups; ++q) acc[r][q] = 0.0f;
  }
  float dt_part[2] = {0.0f, 0.0f};
  float db_part[2] = {0.0f, 0.0f};
  typename Terms::Row own[2];
  RECLIP_UNROLL
  for (int i = 0; i < 2; ++i) {
    const int row = row0 + ty * 2 + i;
    own[i] = row < m ? terms.row(row) : typename Terms::Row{};
  }
  bool dim_ok[kGroups];  // column cg + 64·q lies in this split
  RECLIP_UNROLL
  for (int q = 0; q < kGroups; ++q) dim_ok[q] = cg + 64 * q < width && split0 + cg + 64 * q < d;

  for (int col0 = 0; col0 < n; col0 += kGradCols) {
    // tile_logits passes a barrier before it returns, so every thread has
    // finished reading the previous dz_tile before it is overwritten below.
    float z[2][4];
    tile_logits<kGradRows, kGradCols, kGradDepth, 1, 2, 4>(a, c, m, n, d, row0, col0, a_stage, c_stage, ty * 2, tx * 4, z);
    RECLIP_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + tx * 4 + j;
      const float other = col < n ? terms.col(col) : 0.0f;
      RECLIP_UNROLL
      for (int i = 0; i < 2; ++i) {
        const int row = row0 + ty * 2 + i;
        float dz = 0.0f;
        if (row < m && col < n) {
          const float sz = z[i][j] * s;
          dz = terms.dz(own[i], other, row, col, sz);
          dt_part[i] += dz * sz;
          if (kBias) db_part[i] += dz;
        }
        dz_tile[(tx * 4 + j) * kGradRows + ty * 2 + i] = s * dz;
      }
    }
    __syncthreads();
    const int cols = min(kGradCols, n - col0);
    for (int t = 0; t < cols; ++t) {
      const float* c_row = c + static_cast<long long>(col0 + t) * d + split0 + cg;
      float zr[8], cv[kGroups];
      RECLIP_UNROLL
      for (int r = 0; r < 8; ++r) zr[r] = dz_tile[t * kGradRows + rg * 8 + r];
      RECLIP_UNROLL
      for (int q = 0; q < kGroups; ++q) cv[q] = dim_ok[q] ? __ldg(c_row + 64 * q) : 0.0f;
      RECLIP_UNROLL
      for (int r = 0; r < 8; ++r) {
        RECLIP_UNROLL
        for (int q = 0; q < kGroups; ++q) acc[r][q] += zr[r] * cv[q];
      }
    }
  }

  RECLIP_UNROLL
  for (int r = 0; r < 8; ++r) {
    const int row = row0 + rg * 8 + r;
    RECLIP_UNROLL
    for (int q = 0; q < kGroups; ++q) {
      if (row < m && dim_ok[q]) da[static_cast<long long>(row) * d + split0 + cg + 64 * q] = acc[r][q];
    }
  }
  if (dt_rows == nullptr || blockIdx.y != 0) return;  // the same for the whole block
  // a_stage is free: step (3) does not read it, and tile_logits ended with a barrier.
  const int row = row0 + threadIdx.x;
  RECLIP_UNROLL
  for (int i = 0; i < 2; ++i) a_stage[(ty * 2 + i) * 16 + tx] = dt_part[i];
  if (kBias) {
    RECLIP_UNROLL
    for (int i = 0; i < 2; ++i) a_stage[kGradRows * 16 + (ty * 2 + i) * 16 + tx] = db_part[i];
  }
  __syncthreads();
  if (threadIdx.x < kGradRows && row < m) {
    float total = 0.0f;
    for (int t = 0; t < 16; ++t) total += a_stage[threadIdx.x * 16 + t];
    dt_rows[row] = total;
    if (kBias) {
      float bias_total = 0.0f;
      for (int t = 0; t < 16; ++t) bias_total += a_stage[kGradRows * 16 + threadIdx.x * 16 + t];
      db_rows[row] = bias_total;
    }
  }
}

}  // namespace logit_tiles
