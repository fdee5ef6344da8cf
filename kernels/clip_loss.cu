// CLIP's symmetric contrastive loss without a B×B buffer of logits.
//
// For embeddings A (m rows) and C (n rows), both normalised to unit length
// and held in f32, and s = exp(min(t, ln 100)), the logits are z = s·A·Cᵀ. The
// host (crates/reclip-loss/src/gpu.rs) chains these kernels:
//   clip_normalize_*     x / max(‖x‖, 1e-12) in f32, and ‖x‖
//   clip_lse_rows_f32    logsumexp of each row of z, and the row's label logit
//   clip_loss_value_f32  the scalar loss from two (logsumexp, label logit) sets
//   clip_grad_rows_f32   d(loss)/dA, recomputing z tile by tile
//   clip_dt_value_f32    d(loss)/dt from per-row partial sums
//   clip_denormalize_*   back through the normalisation, in the input dtype
// The (de)normalisation kernels come in a scalar form and a vector form
// (16-byte loads and stores); their entry points say when each runs.
// The single-rank loss runs the row kernels twice, on (A, C) = (images, texts)
// and (texts, images): the rows of the second are the columns of the first.
// Logits live only in registers and shared memory (logit_tiles.cuh, shared
// with siglip_loss.cu). Every output element is written by one thread and
// every sum runs in a fixed order, so results are bitwise reproducible run
// to run.
#include "logit_tiles.cuh"

namespace clip_loss {

using namespace logit_tiles;

constexpr float kNormEps = 1e-12f;  // F.normalize's default
// Folds the running (max, sum of exp(z - max)) pair (om, ol) into (m, l).
__device__ __forceinline__ void merge_stat(float& m, float& l, float om, float ol) {
  const float nm = fmaxf(m, om);
  if (nm == -INFINITY) return;  // both empty
  l = l * expf(m - nm) + ol * expf(om - nm);
  m = nm;
}

// The sum of v over the calling warp, through `partial` (32 floats per warp
// of the block): two warp barriers where a shuffle tree needs ten (the
// emulator pays per barrier). Every lane adds the values in lane order, so
// all lanes get the same bits.
__device__ __forceinline__ float warp_total(float v, float* partial) {
  float* mine = partial + (threadIdx.x / 32) * 32;
  mine[threadIdx.x % 32] = v;
  __syncwarp();
  float total = 0.0f;
  for (int l = 0; l < 32; ++l) total += mine[l];
  __syncwarp();  // the slots may be written again after this
  return total;
}

// ---- clip_normalize: one warp per row, kNormRows rows per block; `partial`
// is kThreads floats of shared memory for warp_total. Over packs of K
// elements: K = 1 in the scalar form, 16 bytes of x (4 f32, 8 bf16) in the
// vector form; a lane takes packs lane, lane + 32, ..., kNormalizeInFlight
// of them loaded before any is used.
constexpr int kNormRows = kThreads / 32;
constexpr int kNormalizeInFlight = 4;
constexpr int kDenormalizeInFlight = 2;

template <typename T, int K>
__device__ void normalize(const T* x, float* hat, float* norm, int rows, int d, float* partial) {
  const int row = blockIdx.x * kNormRows + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp leaves together
  const int lane = threadIdx.x % 32;
  const T* in = x + static_cast<long long>(row) * d;
  const auto load = [&](int p) { return common::load_pack<K>(in + p * K); };
  float ss = 0.0f;
  common::walk<kNormalizeInFlight>(lane, d / K, 32, load, [&](int, const common::Pack<T, K>& v) {
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) ss += v.get(e) * v.get(e);
  });
  const float nrm = sqrtf(warp_total(ss, partial));
  const float denom = fmaxf(nrm, kNormEps);
  float* out = hat + static_cast<long long>(row) * d;
  common::walk<kNormalizeInFlight>(lane, d / K, 32, load, [&](int p, const common::Pack<T, K>& v) {
    common::Pack<float, K> o{};
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) o.set(e, v.get(e) / denom);
    common::store_pack<K>(out + p * K, o);
  });
  if (lane == 0) norm[row] = nrm;
}

// ---- clip_lse_rows: a block owns kLseRows rows of A and sweeps all of C in
// tiles of kLseCols; each thread holds a 4×4 patch of the tile and a running
// (max, sum) per row. At the end one thread per row merges the row's 16
// pairs, in column order, through shared memory.
constexpr int kLseRows = 64;
constexpr int kLseCols = 64;
constexpr int kLseDepth = 32;

__device__ void lse_rows(const float* a, const float* c, const float* log_scale, float* lse, float* label_logit, int m,
                         int n, int d, int label_offset) {
  __align__(16) __shared__ float a_stage[2 * kLseDepth * (kLseRows + 4)];
  __align__(16) __shared__ float c_stage[2 * kLseDepth * (kLseCols + 4)];
  const float s = logit_scale(log_scale);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.x * kLseRows;
  float run_max[4], run_sum[4];
  RECLIP_UNROLL
  for (int i = 0; i < 4; ++i) {
    run_max[i] = -INFINITY;
    run_sum[i] = 0.0f;
  }
  for (int col0 = 0; col0 < n; col0 += kLseCols) {
    float z[4][4];
    tile_logits<kLseRows, kLseCols, kLseDepth, 2, 4, 4>(a, c, m, n, d, row0, col0, a_stage, c_stage, ty * 4, tx * 4, z);
    RECLIP_UNROLL
    for (int i = 0; i < 4; ++i) {
      const int row = row0 + ty * 4 + i;
      float tile_max = -INFINITY;
      RECLIP_UNROLL
      for (int j = 0; j < 4; ++j) {
        z[i][j] *= s;
        const int col = col0 + tx * 4 + j;
        if (col < n) tile_max = fmaxf(tile_max, z[i][j]);
        if (col < n && row < m && col == row + label_offset) label_logit[row] = z[i][j];
      }
      if (tile_max == -INFINITY) continue;  // no column of this thread in range
      const float nm = fmaxf(run_max[i], tile_max);
      float sum = run_sum[i] * expf(run_max[i] - nm);
      RECLIP_UNROLL
      for (int j = 0; j < 4; ++j) {
        if (col0 + tx * 4 + j < n) sum += expf(z[i][j] - nm);
      }
      run_max[i] = nm;
      run_sum[i] = sum;
    }
  }
  // The stages are free: tile_logits ended with a barrier.
  float* stat_max = a_stage;
  float* stat_sum = a_stage + kLseRows * 16;
  RECLIP_UNROLL
  for (int i = 0; i < 4; ++i) {
    stat_max[(ty * 4 + i) * 16 + tx] = run_max[i];
    stat_sum[(ty * 4 + i) * 16 + tx] = run_sum[i];
  }
  __syncthreads();
  const int row = row0 + threadIdx.x;
  if (threadIdx.x < kLseRows && row < m) {
    float mx = -INFINITY, sum = 0.0f;
    for (int t = 0; t < 16; ++t) merge_stat(mx, sum, stat_max[threadIdx.x * 16 + t], stat_sum[threadIdx.x * 16 + t]);
    lse[row] = mx + logf(sum);
  }
}

// ---- clip_grad_rows: logit_tiles::grad_sweep with the softmax terms,
// dz = g·(w_own·exp(z − lse_own[row]) + w_other·exp(z − lse_other[col]) −
// w_label·[col = row + label_offset]); either logsumexp may be absent.
struct SoftmaxTerms {
  using Row = float;
  const float* lse_own;
  const float* lse_other;
  float w_own, w_other, w_label, g;
  int label_offset;

  __device__ __forceinline__ float row(int r) const { return lse_own != nullptr ? lse_own[r] : 0.0f; }
  __device__ __forceinline__ float col(int c) const { return lse_other != nullptr ? lse_other[c] : 0.0f; }
  __device__ __forceinline__ float dz(float own, float other, int r, int c, float z) const {
    float p = 0.0f;
    if (lse_own != nullptr) p += w_own * expf(z - own);
    if (lse_other != nullptr) p += w_other * expf(z - other);
    if (c == r + label_offset) p -= w_label;
    return g * p;
  }
};

__device__ void grad_rows(const float* a, const float* c, const float* log_scale, const float* grad_loss,
                          const float* lse_own, const float* lse_other, float w_own, float w_other, float w_label,
                          int label_offset, float* da, float* dt_rows, int m, int n, int d, int width) {
  __align__(16) __shared__ float a_stage[kGradAStage];
  __align__(16) __shared__ float c_stage[kGradCStage];
  __align__(16) __shared__ float dz_tile[kGradDzTile];
  const SoftmaxTerms terms{lse_own, lse_other, w_own, w_other, w_label, grad_loss[0], label_offset};
  grad_sweep<false>(a, c, logit_scale(log_scale), terms, da, dt_rows, nullptr, m, n, d, width, a_stage, c_stage,
                    dz_tile);
}

__device__ void loss_value(const float* lse_a, const float* label_a, const float* lse_b, const float* label_b, int m,
                           float* loss) {
  __shared__ float warp_sums[kThreads / 32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < m; i += kThreads) acc += (lse_a[i] - label_a[i]) + (lse_b[i] - label_b[i]);
  const float total = block_sum(acc, warp_sums);
  if (threadIdx.x == 0) loss[0] = total / (2.0f * static_cast<float>(m));
}

__device__ void dt_value(const float* rows_a, int m_a, const float* rows_b, int m_b, const float* log_scale,
                         float* dt) {
  __shared__ float warp_sums[kThreads / 32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < m_a; i += kThreads) acc += rows_a[i];
  for (int i = threadIdx.x; i < m_b; i += kThreads) acc += rows_b[i];
  const float total = block_sum(acc, warp_sums);
  // Where the clamp of t is active, s does not depend on t.
  if (threadIdx.x == 0) dt[0] = log_scale[0] > kMaxLogScale ? 0.0f : total;
}

// ---- clip_denormalize: dx = (dx̂ - x̂·(x̂·dx̂)) / ‖x‖, or dx̂ / eps where the
// norm was clamped. One warp per row, like clip_normalize; packs of K
// elements (16 bytes of dx in the vector form), kDenormalizeInFlight of each
// of x̂ and dx̂ in flight per lane.
template <typename T, int K>
__device__ void denormalize(const float* hat, const float* norm, const float* dhat, T* dx, int rows, int d,
                            float* partial) {
  const int row = blockIdx.x * kNormRows + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const long long base = static_cast<long long>(row) * d;
  const float nrm = norm[row];
  struct Terms {
    common::Pack<float, K> hat, dhat;
  };
  const auto load = [&](int p) {
    return Terms{common::load_pack<K>(hat + base + p * K), common::load_pack<K>(dhat + base + p * K)};
  };
  float dot = 0.0f;
  common::walk<kDenormalizeInFlight>(lane, d / K, 32, load, [&](int, const Terms& in) {
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) dot += in.hat.get(e) * in.dhat.get(e);
  });
  dot = warp_total(dot, partial);
  common::walk<kDenormalizeInFlight>(lane, d / K, 32, load, [&](int p, const Terms& in) {
    common::Pack<T, K> out{};
    RECLIP_UNROLL
    for (int e = 0; e < K; ++e) {
      const float h = in.hat.get(e), g = in.dhat.get(e);
      out.set(e, nrm >= kNormEps ? (g - h * dot) / nrm : g / kNormEps);
    }
    common::store_pack<K>(dx + base + p * K, out);
  });
}

}  // namespace clip_loss

// One warp per row. Launch: grid ceil(rows / 8), 256 threads; static shared
// memory 1 KiB (declared in the entry point: the emulator's build cannot
// place static shared memory of template functions). Memory-bound; nothing
// limits occupancy. The scalar forms take any width and alignment; the
// vector forms (`_vec_`), which crates/reclip-loss/src/gpu.rs launches when d
// is a multiple of 16 bytes of x (4 f32, 8 bf16) and x and x̂ are 16-byte
// aligned, load 4 packs of 16 bytes of x per lane (64 bytes) before using
// any. Order of sums: the scalar form adds a lane's squares in the order
// lane, lane + 32, ... (the results of before packs); the vector form pack
// by pack, each pack's elements in order, so ‖x‖ (and x̂) rounds differently
// in the last bits.
// Registers (sm_80/sm_90): scalar f32 32/31, bf16 30/30; vector f32 42/43,
// bf16 48/48 (5 blocks, 40 warps per SM). Floor for 32768 rows of 512
// (open_clip's ViT-B/16 batch and embedding) at 4.3 TB/s: 101 MB in bf16 (x
// read, x̂ written in f32), 23 µs; f32 134 MB, 31 µs. Predictions.
extern "C" __global__ void clip_normalize_f32(const float* x, float* hat, float* norm, int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::normalize<float, 1>(x, hat, norm, rows, d, partial);
}
extern "C" __global__ void clip_normalize_bf16(const bf16* x, float* hat, float* norm, int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::normalize<bf16, 1>(x, hat, norm, rows, d, partial);
}
extern "C" __global__ void clip_normalize_vec_f32(const float* x, float* hat, float* norm, int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::normalize<float, 4>(x, hat, norm, rows, d, partial);
}
extern "C" __global__ void clip_normalize_vec_bf16(const bf16* x, float* hat, float* norm, int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::normalize<bf16, 8>(x, hat, norm, rows, d, partial);
}

// A block: 64 rows of A against all of C in 64-column tiles. Launch: grid
// ceil(m / 64), 256 threads; static shared memory 34 KiB (two buffers of a
// 32×68 stage of A and of C). Registers: 127 (sm_80), 109 (sm_90) under
// __launch_bounds__(256, 2); registers limit occupancy to 2 blocks (16
// warps) per SM. Per embedding element a thread does 16 FMAs for two
// 128-bit shared loads.
extern "C" __global__ void __launch_bounds__(256, 2) clip_lse_rows_f32(const float* a, const float* c,
                                                                    const float* log_scale, float* lse,
                                                                    float* label_logit, int m, int n, int d,
                                                                    int label_offset) {
  clip_loss::lse_rows(a, c, log_scale, lse, label_logit, m, n, d, label_offset);
}

// A block: 32 rows of A and up to 512 embedding columns of dA, against all
// of C in 64-column tiles. Launch: grid (ceil(m / 32), ceil(d / 512)), 256
// threads, `width` = ceil(d / gridDim.y); static shared memory 21 KiB (32×36
// and 32×68 stages, the 64×32 dz tile). Registers: 128 on sm_80 and sm_90
// under __launch_bounds__(256, 2), no spills (the 64 accumulators and the
// stages fit exactly; the single-buffered stages keep it so); registers
// limit occupancy to 2 blocks per SM. For d > 512 each column split
// recomputes the logits.
extern "C" __global__ void __launch_bounds__(256, 2)
    clip_grad_rows_f32(const float* a, const float* c, const float* log_scale, const float* grad_loss,
                       const float* lse_own, const float* lse_other, float w_own, float w_other, float w_label,
                       int label_offset, float* da, float* dt_rows, int m, int n, int d, int width) {
  clip_loss::grad_rows(a, c, log_scale, grad_loss, lse_own, lse_other, w_own, w_other, w_label, label_offset, da,
                       dt_rows, m, n, d, width);
}

// One block of 256 threads; static shared memory 32 B; registers 29–31.
extern "C" __global__ void clip_loss_value_f32(const float* lse_a, const float* label_a, const float* lse_b,
                                               const float* label_b, int m, float* loss) {
  clip_loss::loss_value(lse_a, label_a, lse_b, label_b, m, loss);
}
extern "C" __global__ void clip_dt_value_f32(const float* rows_a, int m_a, const float* rows_b, int m_b,
                                             const float* log_scale, float* dt) {
  clip_loss::dt_value(rows_a, m_a, rows_b, m_b, log_scale, dt);
}

// Like clip_normalize: grid ceil(rows / 8), 256 threads, 1 KiB of static
// shared memory, memory-bound; the vector forms (d a multiple of 16 bytes of
// dx, x̂, dx̂ and dx 16-byte aligned) keep 2 packs of each of x̂ and dx̂ in
// flight per lane (64 bytes in f32, 128 in bf16, whose packs are 8 floats of
// x̂). The order of x̂·dx̂'s terms differs between the forms as ‖x‖'s does.
// Registers: scalar 29/32 (f32 and bf16); vector f32 39/38, bf16 54/54.
// Floor at 32768 × 512: 168 MB with a bf16 dx (x̂, dx̂ read in f32), 39 µs;
// f32 201 MB, 47 µs.
extern "C" __global__ void clip_denormalize_f32(const float* hat, const float* norm, const float* dhat, float* dx,
                                                int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::denormalize<float, 1>(hat, norm, dhat, dx, rows, d, partial);
}
extern "C" __global__ void clip_denormalize_bf16(const float* hat, const float* norm, const float* dhat, bf16* dx,
                                                 int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::denormalize<bf16, 1>(hat, norm, dhat, dx, rows, d, partial);
}
extern "C" __global__ void clip_denormalize_vec_f32(const float* hat, const float* norm, const float* dhat, float* dx,
                                                    int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::denormalize<float, 4>(hat, norm, dhat, dx, rows, d, partial);
}
extern "C" __global__ void clip_denormalize_vec_bf16(const float* hat, const float* norm, const float* dhat, bf16* dx,
                                                     int rows, int d) {
  __shared__ float partial[logit_tiles::kThreads];
  clip_loss::denormalize<bf16, 8>(hat, norm, dhat, dx, rows, d, partial);
}
