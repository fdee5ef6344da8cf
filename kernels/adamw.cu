// The optimizer step over all parameters in one launch.
//
// The host cuts every parameter into chunks of at most 65536 elements and
// uploads one AdamChunk per chunk (pointers already offset to the chunk).
// grad_sq_partials: one block per chunk; 256 threads stride through it and
// reduce the squares of the gradient (warp shuffles, then 8 warp sums in
// shared memory) into partial[chunk]. clip_coefficient: one block of 256
// threads sums the partials in a fixed order and writes the global norm and
// min(1, max_norm / (norm + 1e-6)) — deterministic, and the host never waits
// for it. adamw_step: one block per chunk; reads the coefficient from device
// memory, and in a step recorded as a CUDA graph the learning rate and bias
// corrections too (`scalars`, written before each replay). Memory-bound: 16
// bytes read and 12 written per element (plus 4 read for the norm).
//
// Chunks of whole 16-byte packs (n a multiple of 4) whose four pointers are
// 16-byte aligned are marked `packed` by crates/reclip-optim/src/adamw/gpu.rs
// (which lays the gradient arena out so that every parameter starts on a
// 16-byte boundary); in them threads take packs of 4 floats, thread t the
// packs t, t + 256, ..., with loads of several packs in flight: kNormInFlight
// = 4 in grad_sq_partials (64 bytes), kStepInFlight = 2 of each of g, m, v
// and p in adamw_step (128 bytes). Other chunks run the same loops over
// single elements. The update is per element, so both forms give the same
// bits; the norm's per-thread sums do not: in a packed chunk thread t adds
// the squares of elements 4p..4p+3 of its packs p in that order, elsewhere
// (and before packs existed) those of elements t, t + 256, ...; they round
// differently in the last bits. The order is still fixed by the parameters'
// shapes and the table alone.
//
// Registers (sm_80/sm_90): grad_sq_partials 32/32, clip_coefficient 16/16,
// adamw_step 64/62 (both forms in one kernel: 4 blocks, 128 KiB of loads in
// flight per SM); shared memory: 8 floats (32 B) in the reductions.
// Floor for ViT-B/16's 150 M parameters at 4.3 TB/s: 150 M × (4 + 28) bytes
// = 4.8 GB, 1.1 ms (the gradient copy into the arena, 8 bytes more per
// parameter, is a device copy outside these kernels). Predictions, not
// measurements.
#include "common.cuh"

struct AdamChunk {
  float* param;
  const float* grad;
  float* m;
  float* v;
  long long n;
  int decay;
  int packed;  // n % 4 == 0 and every pointer 16-byte aligned
};

namespace adamw {

constexpr int kNormInFlight = 4;
constexpr int kStepInFlight = 2;

template <int K>
using Pack = common::Pack<float, K>;

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

// This thread's sum of squares of the chunk's gradient, over packs of K.
template <int K>
__device__ float grad_squares(const AdamChunk& c) {
  float acc = 0.0f;
  common::walk<kNormInFlight>(
      static_cast<long long>(threadIdx.x), c.n / K, static_cast<long long>(blockDim.x),
      [&](long long p) { return common::load_pack<K>(c.grad + p * K); },
      [&](long long, const Pack<K>& g) {
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) acc += g.get(e) * g.get(e);
      });
  return acc;
}

struct Step {
  float scale, decay, step, rsqrt_bc2, beta1, beta2, eps;
};

// AdamW as PyTorch's torch.optim.AdamW over the chunk, in packs of K:
// decoupled weight decay p -= lr·wd·p, then the bias-corrected Adam update.
template <int K>
__device__ void update(const AdamChunk& c, const Step& s) {
  struct State {
    Pack<K> g, m, v, p;
  };
  common::walk<kStepInFlight>(
      static_cast<long long>(threadIdx.x), c.n / K, static_cast<long long>(blockDim.x),
      [&](long long i) {
        return State{common::load_pack<K>(c.grad + i * K), common::load_pack<K>(c.m + i * K),
                     common::load_pack<K>(c.v + i * K), common::load_pack<K>(c.param + i * K)};
      },
      [&](long long i, const State& in) {
        Pack<K> m{}, v{}, p{};
        RECLIP_UNROLL
        for (int e = 0; e < K; ++e) {
          const float g = in.g.get(e) * s.scale;
          m.set(e, s.beta1 * in.m.get(e) + (1.0f - s.beta1) * g);
          v.set(e, s.beta2 * in.v.get(e) + (1.0f - s.beta2) * g * g);
          float q = in.p.get(e) - s.decay * in.p.get(e);
          q -= s.step * m.get(e) / (sqrtf(v.get(e)) * s.rsqrt_bc2 + s.eps);
          p.set(e, q);
        }
        common::store_pack<K>(c.m + i * K, m);
        common::store_pack<K>(c.v + i * K, v);
        common::store_pack<K>(c.param + i * K, p);
      });
}

}  // namespace adamw

// Launch: grid = chunks, block = 256.
extern "C" __global__ void grad_sq_partials_f32(const AdamChunk* chunks, float* partial) {
  const AdamChunk c = chunks[blockIdx.x];
  float acc = c.packed ? adamw::grad_squares<4>(c) : adamw::grad_squares<1>(c);
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

// Launch: grid = chunks, block = 256. `scalars`, when not null, holds lr and
// the two bias corrections and overrides those arguments: a recorded CUDA
// graph replays a launch with the arguments it was recorded with, so a graph
// step reads each step's from device memory written before its replay.
extern "C" __global__ void adamw_step_f32(const AdamChunk* chunks, const float* clip, float lr, float beta1, float beta2,
                                          float eps, float weight_decay, float bias_correction1,
                                          float bias_correction2, const float* scalars) {
  if (scalars != nullptr) {
    lr = scalars[0];
    bias_correction1 = scalars[1];
    bias_correction2 = scalars[2];
  }
  const AdamChunk c = chunks[blockIdx.x];
  const adamw::Step s{clip[1], c.decay ? lr * weight_decay : 0.0f, lr / bias_correction1,
                      1.0f / sqrtf(bias_correction2), beta1, beta2, eps};
  if (c.packed) {
    adamw::update<4>(c, s);
  } else {
    adamw::update<1>(c, s);
  }
}
