// Multi-head self-attention on tensor cores for bf16, softmax(Q·Kᵀ/√d)·V,
// forward and backward, sequences of up to 256 tokens (CLIP's 17, 50, 77 and
// 197 included), head widths d = 32, 64, 128. The same inputs, outputs and
// packed layouts as kernels/attention.cu (whose CUDA-core kernels stay for
// f32 and for longer sequences); the logsumexp is natural-log, f32, so the
// two families' outputs mean the same thing.
//
// Products: mma.sync m16n8k16 (bf16 in, f32 accumulate) through
// kernels/mma.cuh, operands staged in shared memory and read with ldmatrix
// (.trans where the k dimension runs down memory rows: V in P·V, K in dS·K,
// dO in Pᵀ·dO, Q in dSᵀ·Q). The probabilities and dS are rounded to bf16 to
// become the next product's A operand straight from the accumulators (an
// m16n8 accumulator pair is an m16k16 A fragment); the softmax sums and the
// logsumexp use the f32 values, so the logsumexp is as exact as the f32
// kernels'.
//
// Work decomposition: a warp owns 16 rows (queries for the forward and dQ,
// keys for dK/dV); a block has W ≤ 4 warps, W chosen so that a pair's
// ⌈L/16⌉ row tiles split into equal blocks (L = 17: 2 warps, 1 block; 50:
// 4 warps; 77: 3 warps, 2 blocks; 197: 4 warps, 4 blocks). The grid is one
// dimension, block = pair · blocks_per_pair + row block, so the blocks of one
// (batch, head) pair are adjacent and its K and V (Q and dO for dK/dV) come
// from L2 after the first. The whole other side of the pair (padded to a
// multiple of 16 rows, zero-filled) sits in shared memory, loaded once with
// 16-byte reads; each warp then streams it in chunks of C columns (C = 64,
// 32 for d = 128 in the backward) with an online softmax in base-2 units, and
// computes only the 16-column tiles below L (17 tokens: 2 tiles, not 4) and,
// when causal, those its rows can see.
//
// Kernels (d = 32, 64, 128):
// - attention_mma_fwd_hw{d}_bf16: O and lse.
// - attention_mma_bwd_dq_hw{d}_bf16: D = rowsum(dO ∘ O) (also written to a
//   [pairs, L] scratch for the next kernel), then per key chunk S = Q·Kᵀ,
//   P = exp(S − lse), dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ += dS·K.
// - attention_mma_bwd_dkv_hw{d}_bf16: per key row block, over query chunks,
//   Sᵀ = K·Qᵀ, Pᵀ, dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ, dK += dSᵀ·Q.
// Every output element is written once by one thread with sums in a fixed
// order: deterministic, no atomics.
//
// Shared memory (bf16 rows of d + 8: 16-byte aligned for ldmatrix, and the 8
// rows an ldmatrix reads fall on distinct banks), R = 16·W own rows, P = L
// rounded up to 16:
//   fwd (R + 2P)·(d+8)·2 B;  dq (2R + 2P)·(d+8)·2 + 4R B;
//   dkv (2R + 2P)·(d+8)·2 + 8P B.
//   d = 64, L = 197 (W = 4): 67.5 / 76.8 / 78.1 KiB; L = 77 (W = 3):
//   29.2 / 36.2 / 36.6 KiB; d = 128, L = 256: 153 / 170 / 172 KiB (the
//   largest; 227 KiB allowed).
// Registers (ptxas, CUDA 13.0, sm_80 / sm_90; no spills, no stack frame;
// __launch_bounds__(128, 1): with the plain bound ptxas held bwd_dkv at d = 32
// to 128 registers and spilled):
//              d = 32      d = 64      d = 128
//   fwd        93 / 96    111 / 116   146 / 151
//   bwd_dq    118 / 122   129 / 132   142 / 144
//   bwd_dkv   135 / 141   180 / 175   212 / 215   (dK and dV both held)
// What limits occupancy: shared memory at long sequences (L = 197, d = 64:
// 2–3 blocks, 8–12 warps an SM), registers otherwise (bwd_dkv at d = 64: 2
// blocks). Tensor-core kernels need few warps to saturate: each warp's 16
// rows issue 4–8 independent mma per k step.
// Predicted floor on an H200 (790 TFLOP/s bf16 mma, 4.3 TB/s): ViT-B/16 at
// 224 px, batch 256 (3072 pairs, L = 197, d = 64): the forward's 2·2·L²·d
// per pair = 30.5 GFLOP → 39 µs of tensor-core time, its 3072·197·(3+1)·64·2
// bytes = 310 MB → 72 µs of HBM: memory-bound at ≈ 72 µs; the backward
// (5 products, 76 GFLOP, ≈ 700 MB) ≈ 165 µs. Padding 197 to 208 columns
// and the online softmax's exp2 (MUFU, 16 per clock per SM quarter) add
// ~20 %; the kernels reach what they reach in `cargo bench --bench attention`.
#include "common.cuh"
#include "mma.cuh"

namespace attention_mma {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int HW>
struct Geometry {
  static_assert(HW == 32 || HW == 64 || HW == 128, "head widths 32, 64 and 128");
  static constexpr int kStride = HW + 8;   // bf16 per shared row
  static constexpr int kSteps = HW / 16;   // k steps of 16 over the head width
  static constexpr int kTiles = HW / 8;    // 8-column accumulator tiles over the head width
  static constexpr int kChunkFwd = 64;     // columns of S per online-softmax step
  static constexpr int kChunkBwd = HW == 128 ? 32 : 64;
};

// The launch's shape: (batch, head) pairs, sequence length, heads, causal
// mask, and row blocks per pair.
struct Problem {
  int pairs, len, heads, causal, blocks_per_pair;
};

struct Place {
  int pair, batch, head, row0;  // row0: the block's first own row
};

__device__ __forceinline__ Place place(const Problem& p) {
  Place at;
  at.pair = static_cast<int>(blockIdx.x) / p.blocks_per_pair;
  at.batch = at.pair / p.heads;
  at.head = at.pair - at.batch * p.heads;
  at.row0 = (static_cast<int>(blockIdx.x) - at.pair * p.blocks_per_pair) * 16 * (blockDim.x / 32);
  return at;
}

__device__ __forceinline__ int padded(int len) { return (len + 15) & ~15; }

// rows × HW bf16 from `src` (rows `stride` elements apart) into shared rows
// of kStride, 16 bytes a thread at a time; rows from `live` on are zeros.
template <int HW>
__device__ __forceinline__ void stage(bf16* dst, const bf16* src, long long stride, int rows, int live) {
  constexpr int kVectors = HW / 8;
  for (int i = threadIdx.x; i < rows * kVectors; i += blockDim.x) {
    const int r = i / kVectors, c = i - r * kVectors;
    common::Pack<bf16, 8> v{};
    if (r < live) v = common::load_pack<8>(src + r * stride + c * 8);
    common::store_pack(dst + r * Geometry<HW>::kStride + c * 8, v);
  }
}

// A fragment of 16 rows × 16 columns (k) at `rows` (shared, row-major).
template <int HW>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* rows, int k0) {
  const int l = threadIdx.x % 32;
  mma::ldmatrix_x4(a, rows + (l % 16) * Geometry<HW>::kStride + k0 + (l / 16) * 8);
}

// B fragments of two 8-column tiles whose columns are the 16 shared rows at
// `rows` (k = 16 elements from k0 along each row): K in Q·Kᵀ.
template <int HW>
__device__ __forceinline__ void load_b_rows(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16* rows, int k0) {
  const int l = threadIdx.x % 32;
  uint32_t r[4];
  mma::ldmatrix_x4(r, rows + ((l / 16) * 8 + l % 8) * Geometry<HW>::kStride + k0 + ((l / 8) % 2) * 8);
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}

// B fragments of two 8-column tiles (columns n0 .. n0+15 of the shared rows)
// whose k dimension runs down the 16 rows at `rows`: V in P·V.
template <int HW>
__device__ __forceinline__ void load_b_cols(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16* rows, int n0) {
  const int l = threadIdx.x % 32;
  uint32_t r[4];
  mma::ldmatrix_x4_trans(r, rows + (((l / 8) % 2) * 8 + l % 8) * Geometry<HW>::kStride + n0 + (l / 16) * 8);
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}

// acc[0 .. 2·pairs) (8-column tiles) += the warp's 16 rows at `a_rows` times
// the transposed 16-row groups at `b_rows` (16·pairs rows): S = Q·Kᵀ and the
// like, over the whole head width. Tile pairs from `live` (16-column tiles
// past the last one needed) are skipped.
template <int HW, int N>
__device__ __forceinline__ void rows_times_rows(float (&acc)[N][4], const bf16* a_rows, const bf16* b_rows, int live) {
  using G = Geometry<HW>;
  RECLIP_UNROLL
  for (int i = 0; i < N; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  RECLIP_UNROLL
  for (int s = 0; s < G::kSteps; ++s) {
    uint32_t a[4];
    load_a<HW>(a, a_rows, 16 * s);
    RECLIP_UNROLL
    for (int j = 0; j < N / 2; ++j) {
      if (j >= live) break;
      uint32_t b0[2], b1[2];
      load_b_rows<HW>(b0, b1, b_rows + 16 * j * G::kStride, 16 * s);
      mma::m16n8k16(acc[2 * j], a, b0, acc[2 * j]);
      mma::m16n8k16(acc[2 * j + 1], a, b1, acc[2 * j + 1]);
    }
  }
}

// out[0 .. kTiles) += w · (the shared rows at `rows`, k along them), w the
// warp's 16 × 16·live weights in accumulator layout (P, dS): P·V and the like.
template <int HW, int N>
__device__ __forceinline__ void weights_times_rows(float (&out)[Geometry<HW>::kTiles][4], const float (&w)[N][4],
                                                   const bf16* rows, int live) {
  using G = Geometry<HW>;
  RECLIP_UNROLL
  for (int j = 0; j < N / 2; ++j) {
    if (j >= live) break;
    const uint32_t a[4] = {mma::pack(w[2 * j][0], w[2 * j][1]), mma::pack(w[2 * j][2], w[2 * j][3]),
                           mma::pack(w[2 * j + 1][0], w[2 * j + 1][1]), mma::pack(w[2 * j + 1][2], w[2 * j + 1][3])};
    RECLIP_UNROLL
    for (int n = 0; n < G::kTiles / 2; ++n) {
      uint32_t b0[2], b1[2];
      load_b_cols<HW>(b0, b1, rows + 16 * j * G::kStride, 16 * n);
      mma::m16n8k16(out[2 * n], a, b0, out[2 * n]);
      mma::m16n8k16(out[2 * n + 1], a, b1, out[2 * n + 1]);
    }
  }
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Whether element i of accumulator tile `tile` (row `row0` + g + 8·(i/2),
// column `col0` + 8·tile + 2t + i % 2) is a live, unmasked score.
__device__ __forceinline__ bool visible(int row, int col, int len, int causal) {
  return col < len && row < len && (!causal || col <= row);
}

// Writes the warp's 16 rows of `acc` · `scale` as bf16 into rows of `dst`
// (`stride` elements apart, row `row0` first), rows below `len` only.
template <int HW>
__device__ __forceinline__ void store_rows(bf16* dst, long long stride, const float (&acc)[Geometry<HW>::kTiles][4],
                                           int row0, int len, const float (&scale)[2]) {
  const int l = threadIdx.x % 32, g = l / 4, t = l % 4;
  RECLIP_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + g + 8 * half;
    if (row >= len) continue;
    RECLIP_UNROLL
    for (int n = 0; n < Geometry<HW>::kTiles; ++n) {
      const uint32_t v = mma::pack(acc[n][2 * half] * scale[half], acc[n][2 * half + 1] * scale[half]);
      *reinterpret_cast<uint32_t*>(dst + row * stride + 8 * n + 2 * t) = v;
    }
  }
}

template <int HW>
__device__ void forward(const bf16* qkv, bf16* out, float* lse, const Problem p) {
  using G = Geometry<HW>;
  constexpr int kChunk = G::kChunkFwd;
  RECLIP_DYNAMIC_SHARED(bf16, shared);
  const Place at = place(p);
  const int warps = blockDim.x / 32, rows = 16 * warps, width = p.heads * HW, keys = padded(p.len);
  const long long stride = 3LL * width;
  const bf16* pair_rows = qkv + static_cast<long long>(at.batch) * p.len * stride + at.head * HW;
  bf16* sq = shared;
  bf16* sk = sq + rows * G::kStride;
  bf16* sv = sk + keys * G::kStride;
  stage<HW>(sq, pair_rows + at.row0 * stride, stride, rows, p.len - at.row0);
  stage<HW>(sk, pair_rows + width, stride, keys, p.len);
  stage<HW>(sv, pair_rows + 2 * width, stride, keys, p.len);
  __syncthreads();

  const int warp = threadIdx.x / 32, l = threadIdx.x % 32, g = l / 4, t = l % 4;
  const int row0 = at.row0 + 16 * warp;
  if (row0 >= p.len) return;  // a whole warp; no block barrier follows
  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  const int key_end = p.causal ? min(p.len, row0 + 16) : p.len;
  float o[G::kTiles][4];
  RECLIP_UNROLL
  for (int n = 0; n < G::kTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0f, 0.0f};
  for (int c0 = 0; c0 < key_end; c0 += kChunk) {
    const int live = (min(key_end - c0, kChunk) + 15) / 16;
    float s[kChunk / 8][4];
    rows_times_rows<HW>(s, sq + 16 * warp * G::kStride, sk + c0 * G::kStride, live);
    float top[2] = {m[0], m[1]};
    RECLIP_UNROLL
    for (int n = 0; n < kChunk / 8; ++n)
      RECLIP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int row = row0 + g + 8 * (i / 2), col = c0 + 8 * n + 2 * t + i % 2;
        s[n][i] = visible(row, col, p.len, p.causal) ? s[n][i] * scale : -INFINITY;
        top[i / 2] = fmaxf(top[i / 2], s[n][i]);
      }
    float base[2];
    RECLIP_UNROLL
    for (int h = 0; h < 2; ++h) {
      top[h] = quad_max(top[h]);
      base[h] = top[h] == -INFINITY ? 0.0f : top[h];
      const float keep = exp2f(m[h] - base[h]);
      m[h] = top[h];
      sum[h] *= keep;
      RECLIP_UNROLL
      for (int n = 0; n < G::kTiles; ++n) {
        o[n][2 * h] *= keep;
        o[n][2 * h + 1] *= keep;
      }
    }
    RECLIP_UNROLL
    for (int n = 0; n < kChunk / 8; ++n)
      RECLIP_UNROLL
      for (int i = 0; i < 4; ++i) {
        s[n][i] = exp2f(s[n][i] - base[i / 2]);
        sum[i / 2] += s[n][i];
      }
    weights_times_rows<HW>(o, s, sv + c0 * G::kStride, live);
  }
  float inv[2];
  RECLIP_UNROLL
  for (int h = 0; h < 2; ++h) {
    sum[h] = quad_sum(sum[h]);
    inv[h] = 1.0f / sum[h];
    const int row = row0 + g + 8 * h;
    if (t == 0 && row < p.len) lse[static_cast<long long>(at.pair) * p.len + row] = (m[h] + log2f(sum[h])) * kLn2;
  }
  const long long out_row = static_cast<long long>(at.batch) * p.len;
  store_rows<HW>(out + out_row * width + at.head * HW, width, o, row0, p.len, inv);
}

template <int HW>
__device__ void backward_dq(const bf16* qkv, const bf16* out, const bf16* d_out, const float* lse, float* delta,
                            bf16* d_qkv, const Problem p) {
  using G = Geometry<HW>;
  constexpr int kChunk = G::kChunkBwd;
  RECLIP_DYNAMIC_SHARED(bf16, shared);
  const Place at = place(p);
  const int warps = blockDim.x / 32, rows = 16 * warps, width = p.heads * HW, keys = padded(p.len);
  const long long stride = 3LL * width, batch_row = static_cast<long long>(at.batch) * p.len;
  const bf16* pair_rows = qkv + batch_row * stride + at.head * HW;
  const bf16* go_rows = d_out + batch_row * width + at.head * HW;
  bf16* sq = shared;
  bf16* sg = sq + rows * G::kStride;
  bf16* sk = sg + rows * G::kStride;
  bf16* sv = sk + keys * G::kStride;
  float* sd = reinterpret_cast<float*>(sv + keys * G::kStride);
  stage<HW>(sq, pair_rows + at.row0 * stride, stride, rows, p.len - at.row0);
  stage<HW>(sg, go_rows + at.row0 * width, width, rows, p.len - at.row0);
  stage<HW>(sk, pair_rows + width, stride, keys, p.len);
  stage<HW>(sv, pair_rows + 2 * width, stride, keys, p.len);
  __syncthreads();

  const int warp = threadIdx.x / 32, l = threadIdx.x % 32, g = l / 4, t = l % 4;
  const int row0 = at.row0 + 16 * warp;
  if (row0 >= p.len) return;
  // D = rowsum(dO ∘ O): two lanes a row, each over half the head width.
  {
    const int row = row0 + l / 2;
    float acc = 0.0f;
    if (row < p.len) {
      const bf16* o_row = out + (batch_row + row) * width + at.head * HW + (l % 2) * (HW / 2);
      const bf16* g_row = go_rows + static_cast<long long>(row) * width + (l % 2) * (HW / 2);
      RECLIP_UNROLL
      for (int v = 0; v < HW / 16; ++v) {
        const common::Pack<bf16, 8> o8 = common::load_pack<8>(o_row + 8 * v), g8 = common::load_pack<8>(g_row + 8 * v);
        RECLIP_UNROLL
        for (int e = 0; e < 8; ++e) acc += o8.get(e) * g8.get(e);
      }
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    if (l % 2 == 0) {
      sd[16 * warp + l / 2] = acc;
      if (row < p.len) delta[static_cast<long long>(at.pair) * p.len + row] = acc;
    }
    __syncwarp();
  }
  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  float lse2[2], dsum[2];
  RECLIP_UNROLL
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + g + 8 * h;
    lse2[h] = row < p.len ? lse[static_cast<long long>(at.pair) * p.len + row] * kLog2e : 0.0f;
    dsum[h] = sd[16 * warp + g + 8 * h];
  }
  const int key_end = p.causal ? min(p.len, row0 + 16) : p.len;
  float dq[G::kTiles][4];
  RECLIP_UNROLL
  for (int n = 0; n < G::kTiles; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
  for (int c0 = 0; c0 < key_end; c0 += kChunk) {
    const int live = (min(key_end - c0, kChunk) + 15) / 16;
    float s[kChunk / 8][4], dp[kChunk / 8][4];
    rows_times_rows<HW>(s, sq + 16 * warp * G::kStride, sk + c0 * G::kStride, live);
    rows_times_rows<HW>(dp, sg + 16 * warp * G::kStride, sv + c0 * G::kStride, live);
    RECLIP_UNROLL
    for (int n = 0; n < kChunk / 8; ++n)
      RECLIP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int row = row0 + g + 8 * (i / 2), col = c0 + 8 * n + 2 * t + i % 2;
        const float prob = visible(row, col, p.len, p.causal) ? exp2f(s[n][i] * scale - lse2[i / 2]) : 0.0f;
        s[n][i] = prob * (dp[n][i] - dsum[i / 2]);
      }
    weights_times_rows<HW>(dq, s, sk + c0 * G::kStride, live);
  }
  const float unscale = 1.0f / sqrtf(static_cast<float>(HW));
  const float both[2] = {unscale, unscale};
  store_rows<HW>(d_qkv + batch_row * stride + at.head * HW, stride, dq, row0, p.len, both);
}

template <int HW>
__device__ void backward_dkv(const bf16* qkv, const bf16* d_out, const float* lse, const float* delta, bf16* d_qkv,
                             const Problem p) {
  using G = Geometry<HW>;
  constexpr int kChunk = G::kChunkBwd;
  RECLIP_DYNAMIC_SHARED(bf16, shared);
  const Place at = place(p);
  const int warps = blockDim.x / 32, rows = 16 * warps, width = p.heads * HW, queries = padded(p.len);
  const long long stride = 3LL * width, batch_row = static_cast<long long>(at.batch) * p.len;
  const bf16* pair_rows = qkv + batch_row * stride + at.head * HW;
  bf16* sk = shared;
  bf16* sv = sk + rows * G::kStride;
  bf16* sq = sv + rows * G::kStride;
  bf16* sg = sq + queries * G::kStride;
  float* slse = reinterpret_cast<float*>(sg + queries * G::kStride);
  float* sd = slse + queries;
  stage<HW>(sk, pair_rows + at.row0 * stride + width, stride, rows, p.len - at.row0);
  stage<HW>(sv, pair_rows + at.row0 * stride + 2 * width, stride, rows, p.len - at.row0);
  stage<HW>(sq, pair_rows, stride, queries, p.len);
  stage<HW>(sg, d_out + batch_row * width + at.head * HW, width, queries, p.len);
  for (int i = threadIdx.x; i < queries; i += blockDim.x) {
    const long long at_row = static_cast<long long>(at.pair) * p.len + i;
    slse[i] = i < p.len ? lse[at_row] * kLog2e : 0.0f;
    sd[i] = i < p.len ? delta[at_row] : 0.0f;
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, l = threadIdx.x % 32, g = l / 4, t = l % 4;
  const int key0 = at.row0 + 16 * warp;
  if (key0 >= p.len) return;
  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  float dk[G::kTiles][4], dv[G::kTiles][4];
  RECLIP_UNROLL
  for (int n = 0; n < G::kTiles; ++n) {
    dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
    dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
  }
  // Causal: queries before the warp's first key see none of its keys.
  for (int c0 = p.causal ? key0 : 0; c0 < p.len; c0 += kChunk) {
    const int live = (min(p.len - c0, kChunk) + 15) / 16;
    float s[kChunk / 8][4], dp[kChunk / 8][4];
    rows_times_rows<HW>(s, sk + 16 * warp * G::kStride, sq + c0 * G::kStride, live);
    rows_times_rows<HW>(dp, sv + 16 * warp * G::kStride, sg + c0 * G::kStride, live);
    RECLIP_UNROLL
    for (int n = 0; n < kChunk / 8; ++n)
      RECLIP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int key = key0 + g + 8 * (i / 2), query = c0 + 8 * n + 2 * t + i % 2;
        const bool seen = visible(query, key, p.len, p.causal);
        const float prob = seen ? exp2f(s[n][i] * scale - slse[min(query, queries - 1)]) : 0.0f;
        s[n][i] = prob;
        dp[n][i] = seen ? prob * (dp[n][i] - sd[min(query, queries - 1)]) : 0.0f;
      }
    weights_times_rows<HW>(dv, s, sg + c0 * G::kStride, live);
    weights_times_rows<HW>(dk, dp, sq + c0 * G::kStride, live);
  }
  const float unscale = 1.0f / sqrtf(static_cast<float>(HW));
  const float one[2] = {1.0f, 1.0f}, both[2] = {unscale, unscale};
  bf16* d_rows = d_qkv + batch_row * stride + at.head * HW;
  store_rows<HW>(d_rows + width, stride, dk, key0, p.len, both);
  store_rows<HW>(d_rows + 2 * width, stride, dv, key0, p.len, one);
}

}  // namespace attention_mma

extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_fwd_hw32_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                             int blocks_per_pair) {
  attention_mma::forward<32>(qkv, out, lse, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dq_hw32_bf16(const bf16* qkv, const bf16* out, const bf16* d_out, const float* lse, float* delta,
                                bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dq<32>(qkv, out, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dkv_hw32_bf16(const bf16* qkv, const bf16* d_out, const float* lse, const float* delta,
                                 bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dkv<32>(qkv, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}

extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_fwd_hw64_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                             int blocks_per_pair) {
  attention_mma::forward<64>(qkv, out, lse, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dq_hw64_bf16(const bf16* qkv, const bf16* out, const bf16* d_out, const float* lse, float* delta,
                                bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dq<64>(qkv, out, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dkv_hw64_bf16(const bf16* qkv, const bf16* d_out, const float* lse, const float* delta,
                                 bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dkv<64>(qkv, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}

extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_fwd_hw128_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                             int blocks_per_pair) {
  attention_mma::forward<128>(qkv, out, lse, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dq_hw128_bf16(const bf16* qkv, const bf16* out, const bf16* d_out, const float* lse, float* delta,
                                bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dq<128>(qkv, out, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}
extern "C" __global__ void __launch_bounds__(128, 1)
attention_mma_bwd_dkv_hw128_bf16(const bf16* qkv, const bf16* d_out, const float* lse, const float* delta,
                                 bf16* d_qkv, int pairs, int len, int heads, int causal, int blocks_per_pair) {
  attention_mma::backward_dkv<128>(qkv, d_out, lse, delta, d_qkv, {pairs, len, heads, causal, blocks_per_pair});
}
