// Fused multi-head self-attention, softmax(Q·Kᵀ/√d)·V, for CLIP's short
// sequences (17, 50, 77, 197 tokens), forward and backward. f32 and bf16
// inputs; everything is computed in f32.
//
// Data layout. Q, K and V are read in place from the packed in-projection
// output qkv [B, L, 3D] (q | k | v along the last dimension, head h in columns
// h·d .. h·d+d of each part, as nn.MultiheadAttention packs them); the output
// O is written as [B, L, D] with the heads concatenated, which is what the
// out-projection GEMM reads. The backward writes d(qkv) [B, L, 3D] in the same
// packed layout. A (batch, head) pair is called a "pair" below; d = HW.
//
// Work decomposition (the same for the three kernels). A block owns a set of
// "rows": query rows (forward, dQ) or key rows (dK/dV). Each row belongs to a
// group of TPR = d/8 consecutive threads of one warp (4, 8, 16 threads for
// d = 32, 64, 128), so no group straddles warps and a row needs only
// __syncwarp and width-TPR shuffles, never a block barrier. Blocks have at
// most 320 threads (40 rows at d = 64). The other side (keys for forward and
// dQ, queries for dK/dV) streams through shared memory in tiles of T tokens
// (T = 64 at d = 64, 32 at d = 32 and 128) covering all the block's pairs.
// Tile shapes by L (crates/reclip-attention/src/tiles.rs chooses them):
// - L ≤ T and L ≤ 320/TPR: one tile holds a pair's whole sequence, so short
//   sequences never rescale; a block holds G whole pairs, G the smallest
//   count that makes ≥ 90 % of its threads useful (blocks are whole warps and
//   17 rows are not): L = 17, d = 64: G = 2, 272 of 288 threads; d = 32:
//   G = 3, 204 of 224; d = 128: G = 1, 272 of 288.
// - otherwise one pair a block, its rows split into equal row tiles of at
//   most 320/TPR rows (L = 50, d = 64: 2 × 25 rows; L = 77: 2 × 39; L = 197:
//   5 × 40, 320 threads), the other side streamed in tiles of T with an online
//   softmax. Causal blocks skip the tiles their rows never see.
//
// Within a tile, each thread of a row's group takes every TPR-th column
// (T/TPR = 8 columns at d = 32 and 64, 2 at d = 128) and computes that
// column's dot products over d from shared memory (d/4 float4 loads of the
// row, broadcast within the group, and of each column); the row's softmax
// statistics combine through the group's shuffles. The column weights (P, or
// dS) go to the row's line of a shared score buffer, and then each thread
// accumulates its 8 of the row's d output dimensions (two 4-wide chunks,
// lane and lane+TPR) over the tile's columns. Scores therefore exist only in
// registers and in that per-tile shared buffer; they never reach global
// memory.
//
// Kernels:
// - attention_fwd_hw{32,64,128}_{f32,bf16}: per query row, online softmax
//   over the key tiles in base-2 units (exp2 of scores pre-scaled by
//   log2(e)/√d); writes O and the row's natural-log logsumexp (f32, [B, H, L]).
// - attention_bwd_dq_*: per query row: D = rowsum(dO ∘ O) (written to a
//   scratch [B·H, L] for the next kernel), then over key tiles P =
//   exp(S − lse), dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ = dS·K/√d.
// - attention_bwd_dkv_*: per key row, over query tiles (with their lse and D):
//   dV = Pᵀ·dO, dK = dSᵀ·Q/√d. Launched after bwd_dq on the same stream.
// Every output element is written by exactly one thread, with sums in a
// fixed order: the backward is deterministic, with no atomics.
//
// Shared memory (f32, rows padded to d+4 floats so that the 8 rows a quarter
// warp reads at once fall on different banks; score lines padded to a
// multiple of 32 plus 4 floats for the same reason), S = row slots =
// threads/TPR, T' = min(T, L) rounded up to 4:
// - fwd: Q rows S·(d+4), K and V tiles 2·G·T'·(d+4), P lines
// - dq:  Q and dO rows 2·S·(d+4), K and V tiles 2·G·T'·(d+4), dS lines
// - dkv: K and V rows 2·S·(d+4), Q and dO tiles 2·G·T'·(d+4), lse and D of
//        the tile 2·G·T', P and dS lines
// fwd / dq / dkv at d = 64: L = 17: 36 / 45 / 51 KB; L = 50: 43 / 50 / 58 KB;
// L = 77 and 197: 55 / 66 / 77 KB.
//
// Registers (ptxas of CUDA 13.0, sm_80 / sm_90; no spills, no stack frame;
// f32 and bf16 alike):
//   attention_fwd_hw32, _hw64      91 / 93     attention_fwd_hw128      70 / 74
//   attention_bwd_dq_hw32, _hw64   88 / 96     attention_bwd_dq_hw128   74 / 78
//   attention_bwd_dkv_hw32, _hw64  80 / 83     attention_bwd_dkv_hw128  82 / 86
// What limits occupancy: registers. __launch_bounds__(320, 2) caps them at 96
// so that two blocks of up to 10 warps fit an SM (about 18–20 warps at CLIP's
// shapes); shared memory would allow two blocks of every shape above. To stay
// within 96 registers without spilling, the loops over d and over the tile are
// not unrolled (ATTENTION_ROLLED) and the backward computes its dot products
// 4 (dQ) or 2 (dK/dV) columns at a time. The inner loops issue one shared-
// memory vector load per 4–8 FMAs, which, rather than FMA throughput, bounds
// these CUDA-core kernels; tensor cores (mma.sync) would be the next step for
// L ≥ 128, with a portable path kept for the emulator.
#include "common.cuh"

// Loops whose full unrolling would hoist so many shared-memory loads that
// the kernels outgrow their 96 registers.
#ifdef RECLIP_EMULATOR
#define ATTENTION_ROLLED
#else
#define ATTENTION_ROLLED _Pragma("unroll 1")
#endif

namespace attention {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Dimensions of a row each thread accumulates: two 4-wide chunks.
constexpr int kDimsPerThread = 8;

template <int HW>
struct Geometry {
  static_assert(HW == 32 || HW == 64 || HW == 128, "head widths 32, 64 and 128");
  static constexpr int kTpr = HW / kDimsPerThread;     // threads sharing a row
  static constexpr int kChunks = HW / 4;               // 4-wide chunks per row
  static constexpr int kTile = HW == 64 ? 64 : 32;     // tokens per streamed tile
  static constexpr int kPerThread = kTile / kTpr;      // tile columns per thread
  // Tile columns per pass of the backward's dot products: fewer loads in
  // flight, so that dK/dV (which also holds two accumulators) fits its registers.
  static constexpr int kPassDq = kPerThread < 4 ? kPerThread : 4;
  static constexpr int kPassDkv = 2;
  static constexpr int kStride = HW + 4;               // floats per shared row
};

// The launch's shape, the same for the three kernels: `tile` is the streamed
// tile length (keys, or queries for dK/dV), `row_tile` the rows per pair in a
// block and `group_pairs` (G) the pairs per block.
struct Problem {
  int pairs, len, heads, causal, group_pairs, row_tile, tile;
};

__device__ __forceinline__ int round4(int n) { return (n + 3) & ~3; }
__device__ __forceinline__ int score_stride(int tile) { return ((tile + 31) & ~31) + 4; }

struct __align__(8) Bf16x4 {
  bf16 v[4];
};

__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const bf16* p) {
  const Bf16x4 c = *reinterpret_cast<const Bf16x4*>(p);
  return make_float4(common::to_float(c.v[0]), common::to_float(c.v[1]), common::to_float(c.v[2]),
                     common::to_float(c.v[3]));
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(bf16* p, float4 v) {
  Bf16x4 c;
  c.v[0] = common::from_float<bf16>(v.x);
  c.v[1] = common::from_float<bf16>(v.y);
  c.v[2] = common::from_float<bf16>(v.z);
  c.v[3] = common::from_float<bf16>(v.w);
  *reinterpret_cast<Bf16x4*>(p) = c;
}
__device__ __forceinline__ float4 scaled(float4 v, float s) { return make_float4(v.x * s, v.y * s, v.z * s, v.w * s); }
__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

template <int W>
__device__ __forceinline__ float group_max(float v) {
  for (int off = W / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off, W));
  return v;
}
template <int W>
__device__ __forceinline__ float group_sum(float v) {
  for (int off = W / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off, W);
  return v;
}

// Element offset of head `pair % heads`, token `token` of batch entry
// `pair / heads` in a tensor of rows `row_stride` elements apart.
template <int HW>
__device__ __forceinline__ long long row_offset(const Problem& p, int pair, int token, long long row_stride) {
  // 32-bit division: a 64-bit one is a call with a stack frame.
  const int b = pair / p.heads, h = pair - b * p.heads;
  return (static_cast<long long>(b) * p.len + token) * row_stride + h * HW;
}

// The row this thread's group owns: slot threadIdx.x / TPR of the block.
struct Row {
  int slot;   // row slot in the block (and line of the shared buffers)
  int lane;   // thread within the row's group
  int local;  // pair within the block (clamped for the idle slots past the last pair)
  int pair;   // (batch, head) pair
  int index;  // token index of the row
  bool valid; // slots past L or past the last pair compute on zeros and write nothing
};

__device__ __forceinline__ void slot_row(const Problem& p, int slot, int& local, int& pair, int& index, bool& valid) {
  local = slot / p.row_tile;
  index = static_cast<int>(blockIdx.y) * p.row_tile + slot % p.row_tile;
  pair = static_cast<int>(blockIdx.x) * p.group_pairs + local;
  valid = local < p.group_pairs && pair < p.pairs && index < p.len;
}

template <int TPR>
__device__ __forceinline__ Row my_row(const Problem& p) {
  Row r;
  r.slot = threadIdx.x / TPR;
  r.lane = threadIdx.x % TPR;
  slot_row(p, r.slot, r.local, r.pair, r.index, r.valid);
  r.local = min(r.local, p.group_pairs - 1);
  return r;
}

// The block's own rows of `src` (one per slot), as f32; idle slots get zeros.
template <typename T, int HW>
__device__ void load_slot_rows(float* dst, const T* src, long long row_stride, const Problem& p, int slots) {
  using G = Geometry<HW>;
  for (int c = threadIdx.x; c < slots * G::kChunks; c += blockDim.x) {
    const int slot = c / G::kChunks, chunk = c % G::kChunks;
    int local, pair, index;
    bool valid;
    slot_row(p, slot, local, pair, index, valid);
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (valid) v = load4(src + row_offset<HW>(p, pair, index, row_stride) + chunk * 4);
    store4(dst + slot * G::kStride + chunk * 4, v);
  }
}

// Tokens [t0, t0 + n) of each of the block's pairs, `padded` rows per pair;
// rows past n (or past the last pair) are zeros, so that weights of zero
// never meet uninitialised values.
template <typename T, int HW>
__device__ void load_tile_rows(float* dst, const T* src, long long row_stride, const Problem& p, int t0, int n, int padded) {
  using G = Geometry<HW>;
  for (int c = threadIdx.x; c < p.group_pairs * padded * G::kChunks; c += blockDim.x) {
    const int row = c / G::kChunks, chunk = c % G::kChunks;
    const int r = row % padded, pair = static_cast<int>(blockIdx.x) * p.group_pairs + row / padded;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < n && pair < p.pairs) v = load4(src + row_offset<HW>(p, pair, t0 + r, row_stride) + chunk * 4);
    store4(dst + row * G::kStride + chunk * 4, v);
  }
}

// Per-token statistics ([pairs, len] f32) of a tile, times `scale`.
__device__ void load_tile_scalars(float* dst, const float* src, float scale, const Problem& p, int t0, int n, int padded) {
  for (int c = threadIdx.x; c < p.group_pairs * padded; c += blockDim.x) {
    const int r = c % padded, pair = static_cast<int>(blockIdx.x) * p.group_pairs + c / padded;
    dst[c] = (r < n && pair < p.pairs) ? src[static_cast<long long>(pair) * p.len + t0 + r] * scale : 0.0f;
  }
}

// x[k] = a · a_rows[j], y[k] = b · b_rows[j] for this thread's tile columns
// j = lane + k·TPR (columns past the padded tile read its last, zero row).
template <int HW>
__device__ __forceinline__ void dots(float (&x)[Geometry<HW>::kPerThread], const float* a, const float* a_rows, int lane,
                                     int padded) {
  using G = Geometry<HW>;
  RECLIP_UNROLL
  for (int k = 0; k < G::kPerThread; ++k) x[k] = 0.0f;
  ATTENTION_ROLLED
  for (int c = 0; c < G::kChunks; ++c) {
    const float4 av = load4(a + c * 4);
    RECLIP_UNROLL
    for (int k = 0; k < G::kPerThread; ++k) {
      const int j = min(lane + k * G::kTpr, padded - 1);
      x[k] += dot4(av, load4(a_rows + j * G::kStride + c * 4));
    }
  }
}

// The backward's two products for N of this thread's tile columns at a
// time, j = first + k·TPR (k < N): x[k] = a · a_rows[j], y[k] = b · b_rows[j].
// N < T/TPR keeps fewer loads in flight and the kernels within 80 registers.
template <int HW, int N>
__device__ __forceinline__ void dots2(float (&x)[N], float (&y)[N], const float* a, const float* b, const float* a_rows,
                                      const float* b_rows, int first, int padded) {
  using G = Geometry<HW>;
  RECLIP_UNROLL
  for (int k = 0; k < N; ++k) x[k] = y[k] = 0.0f;
  ATTENTION_ROLLED
  for (int c = 0; c < G::kChunks; ++c) {
    const float4 av = load4(a + c * 4), bv = load4(b + c * 4);
    RECLIP_UNROLL
    for (int k = 0; k < N; ++k) {
      const int off = min(first + k * G::kTpr, padded - 1) * G::kStride + c * 4;
      x[k] += dot4(av, load4(a_rows + off));
      y[k] += dot4(bv, load4(b_rows + off));
    }
  }
}

// acc (this lane's 8 dimensions) += Σ_{begin ≤ j < end} w[j] · rows[j]; begin
// and end are multiples of 4 within the padded tile.
template <int HW>
__device__ __forceinline__ void accumulate(float (&acc)[kDimsPerThread], const float* w, const float* rows, int lane,
                                           int begin, int end) {
  using G = Geometry<HW>;
  ATTENTION_ROLLED
  for (int j = begin; j < end; j += 4) {
    const float4 w4 = load4(w + j);
    const float ws[4] = {w4.x, w4.y, w4.z, w4.w};
    RECLIP_UNROLL
    for (int u = 0; u < 4; ++u) {
      const float* row = rows + (j + u) * G::kStride;
      const float4 v0 = load4(row + lane * 4), v1 = load4(row + (lane + G::kTpr) * 4);
      acc[0] += ws[u] * v0.x;
      acc[1] += ws[u] * v0.y;
      acc[2] += ws[u] * v0.z;
      acc[3] += ws[u] * v0.w;
      acc[4] += ws[u] * v1.x;
      acc[5] += ws[u] * v1.y;
      acc[6] += ws[u] * v1.z;
      acc[7] += ws[u] * v1.w;
    }
  }
}

// Writes this lane's 8 dimensions of a row, times `scale`.
template <typename T, int HW>
__device__ __forceinline__ void store_row(T* dst, const float (&acc)[kDimsPerThread], float scale, int lane) {
  store4(dst + lane * 4, scaled(make_float4(acc[0], acc[1], acc[2], acc[3]), scale));
  store4(dst + (lane + Geometry<HW>::kTpr) * 4, scaled(make_float4(acc[4], acc[5], acc[6], acc[7]), scale));
}

// Aborts the launch when the shared-memory layout outgrows what the launch
// code allocated: a mismatch between the two would corrupt memory silently.
__device__ __forceinline__ void check_shared(const float* base, const float* end, int shared_bytes) {
  if ((end - base) * static_cast<long long>(sizeof(float)) > shared_bytes) __trap();
}

template <typename T, int HW>
__device__ void forward(const T* qkv, T* out, float* lse, const Problem p, int shared_bytes) {
  using G = Geometry<HW>;
  RECLIP_DYNAMIC_SHARED(float, smem);
  const int slots = blockDim.x / G::kTpr, padded = round4(p.tile), lines = score_stride(p.tile);
  float* s_q = smem;
  float* s_k = s_q + slots * G::kStride;
  float* s_v = s_k + p.group_pairs * padded * G::kStride;
  float* s_p = s_v + p.group_pairs * padded * G::kStride;
  check_shared(smem, s_p + slots * lines, shared_bytes);

  const long long width = static_cast<long long>(p.heads) * HW;
  const Row me = my_row<G::kTpr>(p);
  const float* my_k = s_k + me.local * padded * G::kStride;
  const float* my_v = s_v + me.local * padded * G::kStride;
  float* my_p = s_p + me.slot * lines;
  load_slot_rows<T, HW>(s_q, qkv, 3 * width, p, slots);

  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  float m = -INFINITY, l = 0.0f;
  float acc[kDimsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const int key_end = p.causal ? min(p.len, static_cast<int>(blockIdx.y + 1) * p.row_tile) : p.len;
  for (int k0 = 0; k0 < key_end; k0 += p.tile) {
    const int n = min(p.tile, p.len - k0);
    __syncthreads();  // the previous tile's readers are done
    load_tile_rows<T, HW>(s_k, qkv + width, 3 * width, p, k0, n, padded);
    load_tile_rows<T, HW>(s_v, qkv + 2 * width, 3 * width, p, k0, n, padded);
    __syncthreads();

    float s[G::kPerThread];
    dots<HW>(s, s_q + me.slot * G::kStride, my_k, me.lane, padded);
    float tile_max = -INFINITY;
    RECLIP_UNROLL
    for (int k = 0; k < G::kPerThread; ++k) {
      const int j = me.lane + k * G::kTpr;
      const bool live = j < n && (!p.causal || k0 + j <= me.index);
      s[k] = live ? s[k] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, s[k]);
    }
    const float m_new = fmaxf(m, group_max<G::kTpr>(tile_max));
    // A row that has seen no key yet (idle slots only) keeps everything at zero.
    const float base = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = exp2f(m - base);
    float sum = 0.0f;
    RECLIP_UNROLL
    for (int k = 0; k < G::kPerThread; ++k) {
      s[k] = exp2f(s[k] - base);
      sum += s[k];
    }
    l = l * alpha + group_sum<G::kTpr>(sum);
    m = m_new;
    RECLIP_UNROLL
    for (int k = 0; k < G::kPerThread; ++k) {
      const int j = me.lane + k * G::kTpr;
      if (j < padded) my_p[j] = s[k];
    }
    __syncwarp();

    RECLIP_UNROLL
    for (int a = 0; a < kDimsPerThread; ++a) acc[a] *= alpha;
    const int end = p.causal ? max(0, min(n, me.index - k0 + 1)) : n;
    accumulate<HW>(acc, my_p, my_v, me.lane, 0, round4(end));
  }
  if (me.valid) {
    store_row<T, HW>(out + row_offset<HW>(p, me.pair, me.index, width), acc, 1.0f / l, me.lane);
    if (me.lane == 0) lse[static_cast<long long>(me.pair) * p.len + me.index] = (m + log2f(l)) * kLn2;
  }
}

template <typename T, int HW>
__device__ void backward_dq(const T* qkv, const T* out, const T* dout, const float* lse, float* delta, T* dqkv,
                            const Problem p, int shared_bytes) {
  using G = Geometry<HW>;
  RECLIP_DYNAMIC_SHARED(float, smem);
  const int slots = blockDim.x / G::kTpr, padded = round4(p.tile), lines = score_stride(p.tile);
  float* s_q = smem;
  float* s_do = s_q + slots * G::kStride;
  float* s_k = s_do + slots * G::kStride;
  float* s_v = s_k + p.group_pairs * padded * G::kStride;
  float* s_ds = s_v + p.group_pairs * padded * G::kStride;
  check_shared(smem, s_ds + slots * lines, shared_bytes);

  const long long width = static_cast<long long>(p.heads) * HW;
  const Row me = my_row<G::kTpr>(p);
  const float* my_k = s_k + me.local * padded * G::kStride;
  const float* my_v = s_v + me.local * padded * G::kStride;
  float* my_ds = s_ds + me.slot * lines;
  load_slot_rows<T, HW>(s_q, qkv, 3 * width, p, slots);
  load_slot_rows<T, HW>(s_do, dout, width, p, slots);
  __syncthreads();

  // D = rowsum(dO ∘ O): each lane its 8 dimensions, then the group.
  float part = 0.0f;
  if (me.valid) {
    const T* o = out + row_offset<HW>(p, me.pair, me.index, width);
    const float* d_o = s_do + me.slot * G::kStride;
    part = dot4(load4(o + me.lane * 4), load4(d_o + me.lane * 4)) +
           dot4(load4(o + (me.lane + G::kTpr) * 4), load4(d_o + (me.lane + G::kTpr) * 4));
  }
  const float d_row = group_sum<G::kTpr>(part);
  const long long stat = static_cast<long long>(me.pair) * p.len + me.index;
  if (me.valid && me.lane == 0) delta[stat] = d_row;
  const float lse2 = me.valid ? lse[stat] * kLog2e : 0.0f;

  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  float acc[kDimsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const int key_end = p.causal ? min(p.len, static_cast<int>(blockIdx.y + 1) * p.row_tile) : p.len;
  for (int k0 = 0; k0 < key_end; k0 += p.tile) {
    const int n = min(p.tile, p.len - k0);
    __syncthreads();
    load_tile_rows<T, HW>(s_k, qkv + width, 3 * width, p, k0, n, padded);
    load_tile_rows<T, HW>(s_v, qkv + 2 * width, 3 * width, p, k0, n, padded);
    __syncthreads();

    ATTENTION_ROLLED
    for (int k1 = 0; k1 < G::kPerThread; k1 += G::kPassDq) {
      float s[G::kPassDq], dp[G::kPassDq];
      const int first = me.lane + k1 * G::kTpr;
      dots2<HW>(s, dp, s_q + me.slot * G::kStride, s_do + me.slot * G::kStride, my_k, my_v, first, padded);
      RECLIP_UNROLL
      for (int k = 0; k < G::kPassDq; ++k) {
        const int j = first + k * G::kTpr;
        const bool live = me.valid && j < n && (!p.causal || k0 + j <= me.index);
        const float ds = live ? exp2f(s[k] * scale - lse2) * (dp[k] - d_row) : 0.0f;
        if (j < padded) my_ds[j] = ds;
      }
    }
    __syncwarp();
    const int end = p.causal ? max(0, min(n, me.index - k0 + 1)) : n;
    accumulate<HW>(acc, my_ds, my_k, me.lane, 0, round4(end));
  }
  if (me.valid) {
    store_row<T, HW>(dqkv + row_offset<HW>(p, me.pair, me.index, 3 * width), acc, 1.0f / sqrtf(static_cast<float>(HW)),
                     me.lane);
  }
}

template <typename T, int HW>
__device__ void backward_dkv(const T* qkv, const T* dout, const float* lse, const float* delta, T* dqkv, const Problem p,
                             int shared_bytes) {
  using G = Geometry<HW>;
  RECLIP_DYNAMIC_SHARED(float, smem);
  const int slots = blockDim.x / G::kTpr, padded = round4(p.tile), lines = score_stride(p.tile);
  float* s_k = smem;
  float* s_v = s_k + slots * G::kStride;
  float* s_q = s_v + slots * G::kStride;
  float* s_do = s_q + p.group_pairs * padded * G::kStride;
  float* s_lse = s_do + p.group_pairs * padded * G::kStride;
  float* s_delta = s_lse + p.group_pairs * padded;
  float* s_p = s_delta + p.group_pairs * padded;
  float* s_ds = s_p + slots * lines;
  check_shared(smem, s_ds + slots * lines, shared_bytes);

  const long long width = static_cast<long long>(p.heads) * HW;
  const Row me = my_row<G::kTpr>(p);
  const float* my_q = s_q + me.local * padded * G::kStride;
  const float* my_do = s_do + me.local * padded * G::kStride;
  const float* my_lse = s_lse + me.local * padded;
  const float* my_delta = s_delta + me.local * padded;
  float* my_p = s_p + me.slot * lines;
  float* my_ds = s_ds + me.slot * lines;
  load_slot_rows<T, HW>(s_k, qkv + width, 3 * width, p, slots);
  load_slot_rows<T, HW>(s_v, qkv + 2 * width, 3 * width, p, slots);

  const float scale = kLog2e / sqrtf(static_cast<float>(HW));
  float acc_k[kDimsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  float acc_v[kDimsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  // Causal: queries before the block's first key never attend to its keys.
  const int query_begin = p.causal ? (static_cast<int>(blockIdx.y) * p.row_tile) / p.tile * p.tile : 0;
  for (int q0 = query_begin; q0 < p.len; q0 += p.tile) {
    const int n = min(p.tile, p.len - q0);
    __syncthreads();
    load_tile_rows<T, HW>(s_q, qkv, 3 * width, p, q0, n, padded);
    load_tile_rows<T, HW>(s_do, dout, width, p, q0, n, padded);
    load_tile_scalars(s_lse, lse, kLog2e, p, q0, n, padded);
    load_tile_scalars(s_delta, delta, 1.0f, p, q0, n, padded);
    __syncthreads();

    ATTENTION_ROLLED
    for (int k1 = 0; k1 < G::kPerThread; k1 += G::kPassDkv) {
      float s[G::kPassDkv], dp[G::kPassDkv];
      const int first = me.lane + k1 * G::kTpr;
      dots2<HW>(s, dp, s_k + me.slot * G::kStride, s_v + me.slot * G::kStride, my_q, my_do, first, padded);
      RECLIP_UNROLL
      for (int k = 0; k < G::kPassDkv; ++k) {
        const int i = first + k * G::kTpr;
        const int ic = min(i, padded - 1);
        const bool live = me.valid && i < n && (!p.causal || q0 + i >= me.index);
        const float pr = live ? exp2f(s[k] * scale - my_lse[ic]) : 0.0f;
        if (i < padded) {
          my_p[i] = pr;
          my_ds[i] = pr * (dp[k] - my_delta[ic]);
        }
      }
    }
    __syncwarp();
    const int begin = p.causal ? max(0, min(n, me.index - q0)) & ~3 : 0;
    accumulate<HW>(acc_v, my_p, my_do, me.lane, begin, round4(n));
    accumulate<HW>(acc_k, my_ds, my_q, me.lane, begin, round4(n));
  }
  if (me.valid) {
    T* row = dqkv + row_offset<HW>(p, me.pair, me.index, 3 * width);
    store_row<T, HW>(row + width, acc_k, 1.0f / sqrtf(static_cast<float>(HW)), me.lane);
    store_row<T, HW>(row + 2 * width, acc_v, 1.0f, me.lane);
  }
}

}  // namespace attention

// Entry points. Arguments after the tensors: pairs (B·H), len (L), heads,
// causal, group_pairs, row_tile, tile, shared_bytes.
#define ATTENTION_PROBLEM attention::Problem{pairs, len, heads, causal, group_pairs, row_tile, tile}

extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw32_f32(const float* qkv, float* out, float* lse, int pairs, int len, int heads, int causal,
                           int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<float, 32>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw64_f32(const float* qkv, float* out, float* lse, int pairs, int len, int heads, int causal,
                           int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<float, 64>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw128_f32(const float* qkv, float* out, float* lse, int pairs, int len, int heads, int causal,
                            int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<float, 128>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw32_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                            int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<bf16, 32>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw64_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                            int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<bf16, 64>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_fwd_hw128_bf16(const bf16* qkv, bf16* out, float* lse, int pairs, int len, int heads, int causal,
                             int group_pairs, int row_tile, int tile, int shared_bytes) {
  attention::forward<bf16, 128>(qkv, out, lse, ATTENTION_PROBLEM, shared_bytes);
}

extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw32_f32(const float* qkv, const float* out, const float* dout, const float* lse, float* delta,
                              float* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                              int tile, int shared_bytes) {
  attention::backward_dq<float, 32>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw64_f32(const float* qkv, const float* out, const float* dout, const float* lse, float* delta,
                              float* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                              int tile, int shared_bytes) {
  attention::backward_dq<float, 64>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw128_f32(const float* qkv, const float* out, const float* dout, const float* lse, float* delta,
                               float* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                               int tile, int shared_bytes) {
  attention::backward_dq<float, 128>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw32_bf16(const bf16* qkv, const bf16* out, const bf16* dout, const float* lse, float* delta,
                               bf16* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                               int tile, int shared_bytes) {
  attention::backward_dq<bf16, 32>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw64_bf16(const bf16* qkv, const bf16* out, const bf16* dout, const float* lse, float* delta,
                               bf16* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                               int tile, int shared_bytes) {
  attention::backward_dq<bf16, 64>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dq_hw128_bf16(const bf16* qkv, const bf16* out, const bf16* dout, const float* lse, float* delta,
                                bf16* dqkv, int pairs, int len, int heads, int causal, int group_pairs, int row_tile,
                                int tile, int shared_bytes) {
  attention::backward_dq<bf16, 128>(qkv, out, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}

extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw32_f32(const float* qkv, const float* dout, const float* lse, const float* delta, float* dqkv,
                               int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                               int shared_bytes) {
  attention::backward_dkv<float, 32>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw64_f32(const float* qkv, const float* dout, const float* lse, const float* delta, float* dqkv,
                               int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                               int shared_bytes) {
  attention::backward_dkv<float, 64>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw128_f32(const float* qkv, const float* dout, const float* lse, const float* delta, float* dqkv,
                                int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                                int shared_bytes) {
  attention::backward_dkv<float, 128>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw32_bf16(const bf16* qkv, const bf16* dout, const float* lse, const float* delta, bf16* dqkv,
                                int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                                int shared_bytes) {
  attention::backward_dkv<bf16, 32>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw64_bf16(const bf16* qkv, const bf16* dout, const float* lse, const float* delta, bf16* dqkv,
                                int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                                int shared_bytes) {
  attention::backward_dkv<bf16, 64>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
extern "C" __global__ void __launch_bounds__(320, 2)
    attention_bwd_dkv_hw128_bf16(const bf16* qkv, const bf16* dout, const float* lse, const float* delta, bf16* dqkv,
                                 int pairs, int len, int heads, int causal, int group_pairs, int row_tile, int tile,
                                 int shared_bytes) {
  attention::backward_dkv<bf16, 128>(qkv, dout, lse, delta, dqkv, ATTENTION_PROBLEM, shared_bytes);
}
