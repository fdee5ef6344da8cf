// LayerNorm over the last dimension of a contiguous [rows, dim] tensor:
// y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps), with the
// biased variance, as torch.nn.LayerNorm. f32 statistics and accumulation for
// f32 and bf16 data. Any width for the forward; the backward keeps per-warp
// f32 accumulators of dgamma and dbeta in shared memory, 32*dim bytes per
// block, so dim <= 7264. No float atomics: every sum runs in a fixed order.
//
// The forward, the fused residual-add forward and the backward each come in
// two forms from one source, written over packs of K elements
// (common::Pack): the scalar form (K = 1; `*_f32`, `*_bf16`; any width and
// alignment) and the vector form (`*_vec_f32`, K = 4; `*_vec_bf16`, K = 8:
// 16-byte loads and stores), which crates/reclip-norm/src/gpu.rs launches
// when dim is a multiple of K and every tensor's address is 16-byte aligned.
// Both have the same launch shapes. A lane takes packs lane, lane + 32, ...
// of its row, several loaded before any is used (bytes per lane below).
//
// Order of sums: the scalar form adds a lane's elements in the order lane,
// lane + 32, ..., as before the vector form existed (the same bits as
// then); the vector form adds pack by pack, each pack's K elements in order,
// so its means, variances and the backward's row sums (mean(g),
// mean(g·xhat)) round differently in the last bits. dgamma and dbeta sum
// each column over rows in the same order in both forms.
//
// Floors for ViT-B/16 (256 × 197 = 50432 rows of 768) at 4.3 TB/s, each
// element's DRAM bytes counted once: forward 155 MB in bf16 (x read, y
// written), 36 µs; f32 72 µs. Fused add 310 MB in bf16 (x, h read; r, y
// written), 72 µs; f32 144 µs. Backward 232 MB in bf16 (dy, x read; dx
// written) and 12.6 MB of partials (written, read back), 57 µs; f32 111 µs.
// Predictions, not measurements: no GPU figures yet.
#include "common.cuh"

namespace layer_norm {

constexpr int kForwardWarps = 8;
constexpr int kBackwardWarps = 4;
// Packs of each input a lane loads before it uses any.
constexpr int kForwardInFlight = 4;  // the forward's statistics passes
constexpr int kOutputInFlight = 2;   // its output pass, which reads x, gamma and beta
constexpr int kBackwardInFlight = 2;
// Partials a thread of layer_norm_bwd_params loads before it adds them.
constexpr int kParamsInFlight = 8;

template <typename T, int K>
using Pack = common::Pack<T, K>;

// One warp per row, kForwardWarps rows per 256-thread block; grid
// ceil(rows / 8). Lanes stride through the row three times: the sum, then
// the squared deviations (two passes, so the variance does not cancel),
// then the output. Only the first pass is meant to reach DRAM: a warp
// re-reads the 4*dim (or 2*dim) bytes of its row right away, while they are
// in L1 (not measured: no GPU figures yet). With kResidual the
// first pass also forms r = x + h, rounds it to T and writes it, and the
// statistics and output are those of the rounded r, as an add followed by a
// LayerNorm would compute them: one read of r saved. No shared memory.
// In flight per lane in the vector forms: 64 bytes in the first pass (128
// with the residual's h), 64 in the second, 96 (2 packs each of x, gamma and
// beta) in the third. Registers (sm_80/sm_90): scalar layer_norm_fwd f32
// 32/32, bf16 30/30, add_layer_norm_fwd f32 32/31, bf16 30/32: 8 blocks (64
// warps) per SM; vector layer_norm_fwd f32 46/40, bf16 48/48,
// add_layer_norm_fwd 46/46 and 48/48: 5 blocks (40 warps) per SM (6 for
// f32 on sm_90), 80 KiB of loads in flight per SM in the first pass.
template <typename T, int K, bool kResidual>
__device__ void forward(const T* x, const T* h, T* r, const T* gamma, const T* beta, T* y, float* mean_out,
                        float* rstd_out, long long rows, int dim, float eps) {
  const long long row = static_cast<long long>(blockIdx.x) * kForwardWarps + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp leaves together
  const int lane = threadIdx.x % 32;
  const long long base = row * dim;
  const int packs = dim / K;
  const T* src = (kResidual ? r : x) + base;
  float sum = 0.0f;
  if constexpr (kResidual) {
    struct Terms {
      Pack<T, K> x, h;
    };
    common::walk<kForwardInFlight>(
        lane, packs, 32,
        [&](int p) { return Terms{common::load_pack<K>(x + base + p * K), common::load_pack<K>(h + base + p * K)}; },
        [&](int p, const Terms& in) {
          Pack<T, K> rounded{};
          RECLIP_UNROLL
          for (int e = 0; e < K; ++e) {
            rounded.set(e, in.x.get(e) + in.h.get(e));
            sum += rounded.get(e);
          }
          common::store_pack<K>(r + base + p * K, rounded);
        });
  } else {
    common::walk<kForwardInFlight>(
        lane, packs, 32, [&](int p) { return common::load_pack<K>(src + p * K); },
        [&](int, const Pack<T, K>& in) {
          RECLIP_UNROLL
          for (int e = 0; e < K; ++e) sum += in.get(e);
        });
  }
  const float mean = common::warp_sum(sum) / dim;
  float squares = 0.0f;
  common::walk<kForwardInFlight>(
      lane, packs, 32, [&](int p) { return common::load_pack<K>(src + p * K); },
      [&](int, const Pack<T, K>& in) {
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) {
          const float d = in.get(e) - mean;
          squares += d * d;
        }
      });
  const float rstd = rsqrtf(common::warp_sum(squares) / dim + eps);
  struct Terms {
    Pack<T, K> x, gamma, beta;
  };
  common::walk<kOutputInFlight>(
      lane, packs, 32,
      [&](int p) {
        return Terms{common::load_pack<K>(src + p * K), common::load_pack<K>(gamma + p * K),
                     common::load_pack<K>(beta + p * K)};
      },
      [&](int p, const Terms& in) {
        Pack<T, K> out{};
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) {
          const float xhat = (in.x.get(e) - mean) * rstd;
          out.set(e, xhat * in.gamma.get(e) + in.beta.get(e));
        }
        common::store_pack<K>(y + base + p * K, out);
      });
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
// block); a lane only ever touches the columns of its own packs, so a warp
// needs no barrier (the vector forms read and write the accumulators as
// 16-byte words too). At the end the block adds its 4 warps' rows in order
// and writes partial[block] = [dgamma | dbeta] (2*dim floats), which
// layer_norm_bwd_params sums over blocks in order. Each row is read twice
// (x, dy, gamma), the second time meant to hit L1. In flight per lane in the
// vector forms: 2 packs each of x, dy and gamma (96 bytes). Registers
// (sm_80/sm_90, under __launch_bounds__(128, 8)): scalar f32 47/47, bf16
// 45/47; vector f32 57/57, bf16 64/64, so registers allow 8 blocks (32 warps)
// per SM and shared memory ⌊228 KiB / (32·dim + 1 KiB)⌋: 9 at dim 768, 3 (12
// warps) at dim 2048.
template <typename T, int K>
__device__ void backward(const T* dy, const T* x, const T* gamma, const float* mean, const float* rstd, T* dx,
                         float* partial, long long rows, int dim) {
  RECLIP_DYNAMIC_SHARED(float, acc);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* dgamma = acc + 2 * warp * dim;
  float* dbeta = dgamma + dim;
  const int packs = dim / K;
  const Pack<float, K> zero{};
  for (int p = lane; p < packs; p += 32) {
    common::store_pack<K>(dgamma + p * K, zero);
    common::store_pack<K>(dbeta + p * K, zero);
  }
  struct Terms {
    Pack<T, K> x, dy, gamma;
  };
  const long long stride = static_cast<long long>(gridDim.x) * kBackwardWarps;
  for (long long row = static_cast<long long>(blockIdx.x) * kBackwardWarps + warp; row < rows; row += stride) {
    const long long base = row * dim;
    const auto load = [&](int p) {
      return Terms{common::load_pack<K>(x + base + p * K), common::load_pack<K>(dy + base + p * K),
                   common::load_pack<K>(gamma + p * K)};
    };
    const float mu = mean[row], rs = rstd[row];
    float sum_g = 0.0f, sum_gx = 0.0f;
    common::walk<kBackwardInFlight>(lane, packs, 32, load, [&](int p, const Terms& in) {
      Pack<float, K> dg = common::load_pack<K>(dgamma + p * K), db = common::load_pack<K>(dbeta + p * K);
      RECLIP_UNROLL
      for (int e = 0; e < K; ++e) {
        const float xhat = (in.x.get(e) - mu) * rs;
        const float d = in.dy.get(e);
        const float g = d * in.gamma.get(e);
        sum_g += g;
        sum_gx += g * xhat;
        dg.set(e, dg.get(e) + d * xhat);
        db.set(e, db.get(e) + d);
      }
      common::store_pack<K>(dgamma + p * K, dg);
      common::store_pack<K>(dbeta + p * K, db);
    });
    const float mean_g = common::warp_sum(sum_g) / dim;
    const float mean_gx = common::warp_sum(sum_gx) / dim;
    common::walk<kBackwardInFlight>(lane, packs, 32, load, [&](int p, const Terms& in) {
      Pack<T, K> out{};
      RECLIP_UNROLL
      for (int e = 0; e < K; ++e) {
        const float xhat = (in.x.get(e) - mu) * rs;
        const float g = in.dy.get(e) * in.gamma.get(e);
        out.set(e, rs * (g - mean_g - xhat * mean_gx));
      }
      common::store_pack<K>(dx + base + p * K, out);
    });
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
// memory; neighbouring threads read neighbouring partials, each thread
// kParamsInFlight (8) of its column's partials before it adds them, in
// order: the same sums as one at a time. Registers: 28–29. Only 2*dim
// threads run (1536 at dim 768, 6 blocks), each through `blocks` (1024)
// partials: latency bounds it, not bandwidth, at about 128 round trips to
// L2 (the 6.3 MB of partials were just written). More parallelism needs the
// blocks' sum split, which changes its order.
template <typename T>
__device__ void backward_params(const float* partial, int blocks, int dim, T* dgamma, T* dbeta) {
  for (long long j = common::grid_index(); j < 2LL * dim; j += common::grid_stride()) {
    float total = 0.0f;
    common::walk<kParamsInFlight>(
        0, blocks, 1, [&](int b) { return partial[2LL * b * dim + j]; }, [&](int, float v) { total += v; });
    if (j < dim) {
      dgamma[j] = common::from_float<T>(total);
    } else {
      dbeta[j - dim] = common::from_float<T>(total);
    }
  }
}

}  // namespace layer_norm

// Scalar forms: any width, any alignment.
extern "C" __global__ void layer_norm_fwd_f32(const float* x, const float* gamma, const float* beta, float* y,
    float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<float, 1, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_f32(const float* x, const float* h, float* r, const float* gamma,
    const float* beta, float* y, float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<float, 1, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void __launch_bounds__(128, 8) layer_norm_bwd_f32(const float* dy, const float* x,
    const float* gamma, const float* mean, const float* rstd, float* dx, float* partial, long long rows, int dim) {
  layer_norm::backward<float, 1>(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
extern "C" __global__ void layer_norm_fwd_bf16(const bf16* x, const bf16* gamma, const bf16* beta, bf16* y,
    float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<bf16, 1, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_bf16(const bf16* x, const bf16* h, bf16* r, const bf16* gamma,
    const bf16* beta, bf16* y, float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<bf16, 1, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void __launch_bounds__(128, 8) layer_norm_bwd_bf16(const bf16* dy, const bf16* x,
    const bf16* gamma, const float* mean, const float* rstd, bf16* dx, float* partial, long long rows, int dim) {
  layer_norm::backward<bf16, 1>(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
// Vector forms: dim a multiple of K, every tensor 16-byte aligned.
extern "C" __global__ void layer_norm_fwd_vec_f32(const float* x, const float* gamma, const float* beta, float* y,
    float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<float, 4, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_vec_f32(const float* x, const float* h, float* r, const float* gamma,
    const float* beta, float* y, float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<float, 4, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void __launch_bounds__(128, 8) layer_norm_bwd_vec_f32(const float* dy, const float* x,
    const float* gamma, const float* mean, const float* rstd, float* dx, float* partial, long long rows, int dim) {
  layer_norm::backward<float, 4>(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
extern "C" __global__ void layer_norm_fwd_vec_bf16(const bf16* x, const bf16* gamma, const bf16* beta, bf16* y,
    float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<bf16, 8, false>(x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void add_layer_norm_fwd_vec_bf16(const bf16* x, const bf16* h, bf16* r, const bf16* gamma,
    const bf16* beta, bf16* y, float* mean, float* rstd, long long rows, int dim, float eps) {
  layer_norm::forward<bf16, 8, true>(x, h, r, gamma, beta, y, mean, rstd, rows, dim, eps);
}
extern "C" __global__ void __launch_bounds__(128, 8) layer_norm_bwd_vec_bf16(const bf16* dy, const bf16* x,
    const bf16* gamma, const float* mean, const float* rstd, bf16* dx, float* partial, long long rows, int dim) {
  layer_norm::backward<bf16, 8>(dy, x, gamma, mean, rstd, dx, partial, rows, dim);
}
extern "C" __global__ void layer_norm_bwd_params_f32(const float* partial, int blocks, int dim, float* dgamma,
                                                     float* dbeta) {
  layer_norm::backward_params(partial, blocks, dim, dgamma, dbeta);
}
extern "C" __global__ void layer_norm_bwd_params_bf16(const float* partial, int blocks, int dim, bf16* dgamma,
                                                      bf16* dbeta) {
  layer_norm::backward_params(partial, blocks, dim, dgamma, dbeta);
}
