// The optimizer step over all parameters in one launch.
//
// The host cuts every parameter into chunks of at most kChunk elements and
// uploads one AdamChunk per chunk (pointers already offset to the chunk).
// grad_sq_partials: one block per chunk; 256 threads stride through it and
// reduce the squares of the gradient (warp shuffles, then 8 warp sums in
// shared memory) into partial[chunk]. clip_coefficient: one block of 256
// threads sums the partials in a fixed order and writes the global norm and
// min(1, max_norm / (norm + 1e-6)) — deterministic, and the host never waits
// for it. adamw_step: one block per chunk, one element per thread per
// iteration; reads the coefficient from device memory. Registers: ~30; shared
// memory: 8 floats (32 B) in the reductions; occupancy is not a concern
// (memory-bound: 16 bytes read and 12 written per element).
#include "common.cuh"

struct AdamChunk {
  float* param;
  const float* grad;
  float* m;
  float* v;
  long long n;
  int decay;
  int pad;
};

namespace adamw {

__device__ float block_sum_256(float v) {
  __shared__ float warp_sums[8];
  v = common::warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  if (warp == 0) {
    total = lane < 8 ? warp_sums[lane] : 0.0f;
    total = common::warp_sum(total);
  }
  return total;
}

}  // namespace adamw

// Launch: grid = chunks, block = 256.
extern "C" __global__ void grad_sq_partials_f32(const AdamChunk* chunks, float* partial) {
  const AdamChunk c = chunks[blockIdx.x];
  float acc = 0.0f;
  for (long long i = threadIdx.x; i < c.n; i += blockDim.x) acc += c.grad[i] * c.grad[i];
  acc = adamw::block_sum_256(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Launch: grid = 1, block = 256. out[0] = global gradient norm, out[1] = the
// clipping coefficient (1 when max_norm <= 0: no clipping).
extern "C" __global__ void clip_coefficient_f32(const float* partial, int chunks, float max_norm, float* out) {
  float acc = 0.0f;
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) acc += partial[i];
  acc = adamw::block_sum_256(acc);
  if (threadIdx.x == 0) {
    const float norm = sqrtf(acc);
    out[0] = norm;
    out[1] = max_norm > 0.0f ? fminf(1.0f, max_norm / (norm + 1e-6f)) : 1.0f;
  }
}

// Launch: grid = chunks, block = 256. AdamW as PyTorch's torch.optim.AdamW:
// decoupled weight decay p -= lr·wd·p, then the bias-corrected Adam update.
extern "C" __global__ void adamw_step_f32(const AdamChunk* chunks, const float* clip, float lr, float beta1, float beta2,
                                          float eps, float weight_decay, float bias_correction1,
                                          float bias_correction2) {
  const AdamChunk c = chunks[blockIdx.x];
  const float scale = clip[1];
  const float decay = c.decay ? lr * weight_decay : 0.0f;
  const float step = lr / bias_correction1;
  const float rsqrt_bc2 = 1.0f / sqrtf(bias_correction2);
  for (long long i = threadIdx.x; i < c.n; i += blockDim.x) {
    const float g = c.grad[i] * scale;
    const float m = beta1 * c.m[i] + (1.0f - beta1) * g;
    const float v = beta2 * c.v[i] + (1.0f - beta2) * g * g;
    c.m[i] = m;
    c.v[i] = v;
    float p = c.param[i] - decay * c.param[i];
    p -= step * m / (sqrtf(v) * rsqrt_bc2 + eps);
    c.param[i] = p;
  }
}
