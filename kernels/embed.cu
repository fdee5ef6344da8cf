// Embedding layers: the ViT patch embedding (patchify + class token +
// positional embedding around a cuBLAS GEMM), the text token embedding, and
// the batch reductions of their backward passes. No float atomics anywhere:
// every sum runs in a fixed order, so results are deterministic. Register
// counts are ptxas's for sm_80/sm_90 (tools/ptxas-report.sh); none spills.
// All kernels are memory-bound, without shared memory; at ≤ 34 registers and
// 256-thread blocks, nothing but the thread count limits occupancy.
//
// Patch embedding, forward (two launches, see reclip-embed/src/gpu.rs):
//   1. patch_embed_im2col writes the patch matrix cols [B*T, K] (T = 1 + gh*gw
//      tokens per image, K = C*P*P; the class-token row of each image is zero)
//      and initialises the output out [B*T, D] with the positional embedding
//      (plus the class embedding in each image's row 0);
//   2. one GEMM out += cols · Wᵀ (beta = 1), so the positional add rides on
//      cuBLAS's read of C and the class rows come out as cls + pos[0].
// Memory: images read once; cols written once and read by the GEMM; out
// written once (the initialisation) and read and written once by the GEMM's
// epilogue. Writing out without that initialisation pass would need a
// hand-written GEMM (implicit im2col, positional add in its epilogue) in
// place of cuBLAS; cols is only as large as the images.
// Backward: dW = doutᵀ · cols and dcols = dout · W are GEMMs; dimages is
// patch_embed_col2im of dcols; dpos and dcls are the batch sums below.
#include "common.cuh"

namespace embed {

// Launch: 1-D grid-stride loop, 256 threads, over the K-elements of cols then
// the D-elements of out. No shared memory. Consecutive threads read
// consecutive pixels of a patch row (runs of P elements) and write
// consecutive elements of cols and out. Registers (sm_80/sm_90): f32 30/32,
// bf16 26/30.
template <typename T>
__device__ void im2col(const T* images, const T* cls, const T* pos, T* cols, T* out, int batch, int channels,
                       int height, int width, int patch, int dim) {
  const int gw = width / patch;
  const int tokens = 1 + (height / patch) * gw;
  const int k_len = channels * patch * patch;
  const long long n_cols = static_cast<long long>(batch) * tokens * k_len;
  const long long n_out = static_cast<long long>(batch) * tokens * dim;
  for (long long i = common::grid_index(); i < n_cols + n_out; i += common::grid_stride()) {
    if (i < n_cols) {
      const int k = static_cast<int>(i % k_len);
      const long long row = i / k_len;
      const int t = static_cast<int>(row % tokens);
      const long long b = row / tokens;
      float v = 0.0f;
      if (t > 0) {
        const int gy = (t - 1) / gw, gx = (t - 1) % gw;
        const int px = k % patch, py = (k / patch) % patch, c = k / (patch * patch);
        v = common::to_float(images[((b * channels + c) * height + gy * patch + py) * width + gx * patch + px]);
      }
      cols[i] = common::from_float<T>(v);
    } else {
      const long long j = i - n_cols;
      const int d = static_cast<int>(j % dim);
      const int t = static_cast<int>((j / dim) % tokens);
      float v = common::to_float(pos[static_cast<long long>(t) * dim + d]);
      if (t == 0) v += common::to_float(cls[d]);
      out[j] = common::from_float<T>(v);
    }
  }
}

// dimages[b, c, y, x] = dcols[b*T + 1 + (y/P)*gw + x/P, (c*P + y%P)*P + x%P]:
// patches do not overlap, so every pixel has exactly one source and no sum is
// needed. Launch: 1-D grid-stride loop, 256 threads, one image element per
// thread; no shared memory. Registers: 30/32 (f32 and bf16).
template <typename T>
__device__ void col2im(const T* dcols, T* dimages, int batch, int channels, int height, int width, int patch) {
  const int gw = width / patch;
  const int tokens = 1 + (height / patch) * gw;
  const int k_len = channels * patch * patch;
  const long long total = static_cast<long long>(batch) * channels * height * width;
  for (long long i = common::grid_index(); i < total; i += common::grid_stride()) {
    const int x = static_cast<int>(i % width);
    const int y = static_cast<int>((i / width) % height);
    const int c = static_cast<int>((i / (static_cast<long long>(width) * height)) % channels);
    const long long b = i / (static_cast<long long>(width) * height * channels);
    const long long row = b * tokens + 1 + (y / patch) * gw + x / patch;
    const int k = (c * patch + y % patch) * patch + x % patch;
    dimages[i] = dcols[row * k_len + k];
  }
}

// First stage of a sum over the batch of x [batch, row_len]: block row
// blockIdx.y sums images [y*chunk, (y+1)*chunk) into partial[y, :] (f32).
// Launch: grid (ceil(row_len/256) capped, splits), 256 threads, grid-stride
// over row_len; no shared memory. Neighbouring threads read neighbouring
// elements of one image. Registers: f32 22/27, bf16 22/29.
template <typename T>
__device__ void batch_sum_partial(const T* x, float* partial, int batch, long long row_len, int chunk) {
  const int b0 = static_cast<int>(blockIdx.y) * chunk;
  const int b1 = min(batch, b0 + chunk);
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < row_len; e += stride) {
    float acc = 0.0f;
    for (int b = b0; b < b1; ++b) acc += common::to_float(x[b * row_len + e]);
    partial[blockIdx.y * row_len + e] = acc;
  }
}

// Second stage: out[e] = Σ_s partial[s, e] for e < row_len, 0 for the rows
// of out beyond (a positional table longer than the sequence); head[e] gets
// a copy of the first head_len sums (the class embedding's gradient).
// Launch: 1-D grid-stride loop, 256 threads; no shared memory. Registers:
// 32/32.
template <typename T>
__device__ void batch_sum_finish(const float* partial, int splits, long long row_len, long long out_len, T* out,
                                 T* head, int head_len) {
  for (long long e = common::grid_index(); e < out_len; e += common::grid_stride()) {
    float acc = 0.0f;
    if (e < row_len)
      for (int s = 0; s < splits; ++s) acc += partial[s * row_len + e];
    out[e] = common::from_float<T>(acc);
    if (e < head_len) head[e] = common::from_float<T>(acc);
  }
}

// out[r, d] = table[ids[r], d] + pos[r % len, d] over the rows r of [B, len].
// Launch: 1-D grid-stride loop, 256 threads; no shared memory. A warp reads
// 32 consecutive elements of one table row. Registers: f32 34/32, bf16 22/22.
template <typename T>
__device__ void token_forward(const unsigned* ids, const T* table, const T* pos, T* out, long long rows, int len,
                              int dim) {
  for (long long i = common::grid_index(); i < rows * dim; i += common::grid_stride()) {
    const int d = static_cast<int>(i % dim);
    const long long r = i / dim;
    const float v = common::to_float(table[static_cast<long long>(ids[r]) * dim + d]) +
                    common::to_float(pos[(r % len) * dim + d]);
    out[i] = common::from_float<T>(v);
  }
}

// dtable[v, d] = Σ grad[order[p], d] for p in starts[v]..starts[v+1]: the
// positions holding token v, in increasing order (a stable counting sort on
// the host), so the sum is deterministic and needs no atomics; rows of
// tokens that do not occur are written as zeros. Launch: 1-D grid-stride
// loop, 256 threads, one dtable element per thread; no shared memory.
// Registers: f32 32/32, bf16 28/32.
template <typename T>
__device__ void token_table_backward(const T* grad, const unsigned* order, const unsigned* starts, T* dtable,
                                     long long vocab, int dim) {
  for (long long i = common::grid_index(); i < vocab * dim; i += common::grid_stride()) {
    const int d = static_cast<int>(i % dim);
    const long long v = i / dim;
    float acc = 0.0f;
    for (unsigned p = starts[v]; p < starts[v + 1]; ++p)
      acc += common::to_float(grad[static_cast<long long>(order[p]) * dim + d]);
    dtable[i] = common::from_float<T>(acc);
  }
}

}  // namespace embed

extern "C" __global__ void patch_embed_im2col_f32(const float* images, const float* cls, const float* pos, float* cols,
                                                  float* out, int batch, int channels, int height, int width,
                                                  int patch, int dim) {
  embed::im2col(images, cls, pos, cols, out, batch, channels, height, width, patch, dim);
}
extern "C" __global__ void patch_embed_im2col_bf16(const bf16* images, const bf16* cls, const bf16* pos, bf16* cols,
                                                   bf16* out, int batch, int channels, int height, int width,
                                                   int patch, int dim) {
  embed::im2col(images, cls, pos, cols, out, batch, channels, height, width, patch, dim);
}
extern "C" __global__ void patch_embed_col2im_f32(const float* dcols, float* dimages, int batch, int channels,
                                                  int height, int width, int patch) {
  embed::col2im(dcols, dimages, batch, channels, height, width, patch);
}
extern "C" __global__ void patch_embed_col2im_bf16(const bf16* dcols, bf16* dimages, int batch, int channels,
                                                   int height, int width, int patch) {
  embed::col2im(dcols, dimages, batch, channels, height, width, patch);
}
extern "C" __global__ void embed_batch_sum_f32(const float* x, float* partial, int batch, long long row_len,
                                               int chunk) {
  embed::batch_sum_partial(x, partial, batch, row_len, chunk);
}
extern "C" __global__ void embed_batch_sum_bf16(const bf16* x, float* partial, int batch, long long row_len,
                                                int chunk) {
  embed::batch_sum_partial(x, partial, batch, row_len, chunk);
}
extern "C" __global__ void embed_batch_finish_f32(const float* partial, int splits, long long row_len,
                                                  long long out_len, float* out, float* head, int head_len) {
  embed::batch_sum_finish(partial, splits, row_len, out_len, out, head, head_len);
}
extern "C" __global__ void embed_batch_finish_bf16(const float* partial, int splits, long long row_len,
                                                   long long out_len, bf16* out, bf16* head, int head_len) {
  embed::batch_sum_finish(partial, splits, row_len, out_len, out, head, head_len);
}
extern "C" __global__ void token_embed_forward_f32(const unsigned* ids, const float* table, const float* pos,
                                                   float* out, long long rows, int len, int dim) {
  embed::token_forward(ids, table, pos, out, rows, len, dim);
}
extern "C" __global__ void token_embed_forward_bf16(const unsigned* ids, const bf16* table, const bf16* pos, bf16* out,
                                                    long long rows, int len, int dim) {
  embed::token_forward(ids, table, pos, out, rows, len, dim);
}
extern "C" __global__ void token_embed_backward_f32(const float* grad, const unsigned* order, const unsigned* starts,
                                                    float* dtable, long long vocab, int dim) {
  embed::token_table_backward(grad, order, starts, dtable, vocab, dim);
}
extern "C" __global__ void token_embed_backward_bf16(const bf16* grad, const unsigned* order, const unsigned* starts,
                                                     bf16* dtable, long long vocab, int dim) {
  embed::token_table_backward(grad, order, starts, dtable, vocab, dim);
}
