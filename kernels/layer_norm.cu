// LayerNorm over the last dimension of a contiguous [rows, dim] tensor:
// y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps), with the
// biased variance, as torch.nn.LayerNorm. f32 statistics and accumulation for
// f32 and bf16 data. Any width for the forward; the backward keeps per-warp
// f32 accumulators of dgamma and dbeta in shared memory, 32*dim bytes per
// block, so dim <= 7264. No float atomics: every sum runs in a fixed order.
#include "common.cuh"

namespace layer_norm {

constexpr int kForwardWarps = 8;
constexpr int kBackwardWarps = 4;

// One warp per row, kForwardWarps rows per 256-thread block; grid
// ceil(rows / 8). Lanes stride through the row three times: the sum, then
// the squared deviations (two passes, so the variance does not cancel),
// then the output. Only the first pass is meant to reach DRAM: a warp
// re-reads the 4*dim (or 2*dim) bytes of its row right away, while they are
// in L1 (not measured: no GPU figures yet). With kResidual the
// first pass also forms r = x + h, rounds it to T and writes it, and the
// statistics and output are those of the rounded r, as an add followed by a
// LayerNorm would compute them: one read of r saved. No shared memory.
// Registers (sm_80/sm_90): layer_norm_fwd f32 32/32, bf16 29/32;
// add_layer_norm_fwd f32 32/32, bf16 30/30: 8 blocks (64 warps) per SM.
template <typename T, bool kResidual>
__device__ void forward(const T* x, const T* h, T* r, const T* gamma, const T* beta, T* y, float* mean_out,
                        float* rstd_out, long long rows, int dim, float eps) {
  const long long row = static_cast<long long>(blockIdx.x) * kForwardWarps + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp leaves together
  const int lane = threadIdx.x % 32;
  const long long base = row * dim;
  const T* src = kResidual ? r : x;
  float sum = 0.0f;
  for (int j = lane; j < dim; j += 32) {
    float v;
    if (kResidual) {
      const T rounded = common::from_float<T>(common::to_float(x[base + j]) + common::to_float(h[base + j]));
      r[base + j] = rounded;
      v = common::to_float(rounded);
    } else {
      v = common::to_float(x[base + j]);
    }
    sum += v;
  }
  const float mean = common::warp_sum(sum) / dim;
  float squares = 0.0f;
  for (int j = lane; j < dim; j += 32) {
    const float d = common::to_float(src[base + j]) - mean;
    squares += d * d;
  }
  const float rstd = rsqrtf(common::warp_sum(squares) / dim + eps);
  for (int j = lane; j < dim; j += 32) {
    const float xhat = (common::to_float(src[base + j]) - mean) * rstd;
    y[base + j] = common::from_float<T>(xhat * common::to_float(gamma[j]) + common::to_float(beta[j]));
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma, and
// the per-block partial sums of dgamma = Σ dy * xhat and dbeta = Σ dy.
// Launch: `blocks` blocks (a count fixed by the shape) of 4 warps; warp w of
// block b takes rows b*4 + w, then every blocks*4 rows. Each warp adds into
// its own two dim-long f32 rows of dynamic shared memory (32*dim bytes per
// block); lane l only ever touches columns l, l+32, ..., so a warp needs no
// barrier. At the end the block adds its 4 warps' rows in order and writes
// partial[block] = [dgamma | dbeta] (2*dim floats), which
// layer_norm_bwd_params sums over blocks in order. Each row is read twice
// (x, dy, gamma), the second time meant to hit L1. Registers: 48/40 (f32 and bf16).
// Shared memory limits occupancy: ⌊228 KiB / (32·dim + 1 KiB)⌋ blocks per
// SM, e.g. 8 (32 warps) at dim 768, 3 (12 warps) at dim 2048.
template <typename T>
__device__ void backward(const T* dy, const T* x, const T* gamma, const float* mean, const float* rstd, T* dx,
                         float* partial, long long rows, int dim) {
  RECLIP_DYNAMIC_SHARED(float, acc);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* dgamma = acc + 2 * warp * dim;
  float* dbeta = dgamma + dim;
  for (int j = lane; j < dim; j += 32) {
    dgamma[j] = 0.0f;
    dbeta[j] = 0.0f;
  }
  const long long stride = static_cast<long long>(gridDim.x) * kBackwardWarps;
  for (long long row = static_cast<long long>(blockIdx.x) * kBackwardWarps + warp; row < rows; row += stride) {
    const long long base = row * dim;
    const float mu = mean[row], rs = rstd[row];
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int j = lane; j < dim; j += 32) {
      const float xhat = (common::to_float(x[base + j]) - mu) * rs;
      const float d = common::to_float(dy[base + j]);
      const float g = d * common::to_float(gamma[j]);
      sum_g += g;
      sum_gx += g * xhat;
      dgamma[j] += d * xhat;
      dbeta[j] += d;
    }
    const float mean_g = common::warp_sum(sum_g) / dim;
    const float mean_gx = common::warp_sum(sum_gx) / dim;
    for (int j = lane; j < dim; j += 32) {
      const float xhat = (common::to_float(x[base + j]) - mu) * rs;
      const float g = common::to_float(dy[base + j]) * common::to_float(gamma[j]);
      dx[base + j] = common::from_float<T>(rs * (g - mean_g - xhat * mean_gx));
    }
  }
  __syncthreads();
  for (int j = threadIdx.x; j < 2 * dim; j += blockDim.x) {
    float total = 0.0f;
    for (int w = 0; w < kBackwardWarps; ++w) total += acc[2 * w * dim + j];
    partial[2LL * blockIdx.x * dim + j] = total;
  }
}

// dgamma[j] = Σ_b partial[b, j], dbeta[j] = Σ_b partial[b, dim + j], blocks
// in order. Launch: 1-D grid-stride loop over 2*dim, 256 threads; no shared
// memory; neighbouring threads read neighbouring partials. Registers: 32/32.
template <typename T>
__device__ void backward_params(const float* partial, int blocks, int dim, T* dgamma, T* dbeta) {
  for (long long j = common::grid_index(); j < 2LL * dim; j += common::grid_stride()) {
    float total = 0.0f;
    for (int b = 0; b < blocks; ++b) total += partial[2LL * b * dim + j];
    if (j < dim) {
      dgamma[j] = common::from_float<T>(total);
    } else {
      dbeta[j - dim] = common::from_float<T>(total);
    }
  }
}

}  // namespace layer_norm

extern "C" __global__ void layer_norm_fwd_f32(const float* x, const float* gamma, const float* beta, float* y,
                                              float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<float, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void layer_norm_fwd_bf16(const bf16* x, const bf16* gamma, const bf16* beta, bf16* y,
                                               float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<bf16, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_f32(const float* x, const float* h, float* r, const float* gamma,
                                                  const float* beta, float* y, float* mean, float* rstd,
                                                  long long rows, int dim, float eps) {
  layer_norm::forward<float, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_bf16(const bf16* x, const bf16* h, bf16* r, const bf16* gamma,
                                                   const bf16* beta, bf16* y, float* mean, float* rstd,
                                                   long long rows, int dim, float eps) {
  layer_norm::forward<bf16, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void layer_norm_bwd_f32(const float* dy, const float* x, const float* gamma, const float* mean,
                                              const float* rstd, float* dx, float* partial, long long rows, int dim) {
  layer_norm::backward(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
extern "C" __global__ void layer_norm_bwd_bf16(const bf16* dy, const bf16* x, const bf16* gamma, const float* mean,
                                               const float* rstd, bf16* dx, float* partial, long long rows, int dim) {
  layer_norm::backward(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
extern "C" __global__ void layer_norm_bwd_params_f32(const float* partial, int blocks, int dim, float* dgamma,
                                                     float* dbeta) {
  layer_norm::backward_params(partial, blocks, dim, dgamma, dbeta);
}
extern "C" __global__ void layer_norm_bwd_params_bf16(const float* partial, int blocks, int dim, bf16* dgamma,
                                                      bf16* dbeta) {
  layer_norm::backward_params(partial, blocks, dim, dgamma, dbeta);
}
