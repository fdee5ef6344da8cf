// Demonstration kernels: the smallest examples of each mechanism the real
// kernels rely on (a grid-stride loop, shared memory with barriers, warp
// shuffles, bf16 conversion). They prove the build, the emulator and the GPU
// runtime end to end, and serve as templates.
#include "common.cuh"

namespace demo {

// out[i] = a[i] + b[i]. Launch: any grid/block; grid-stride loop, so one
// launch shape serves every n. Registers: a handful; no shared memory.
template <typename T>
__device__ void vector_add(const T* a, const T* b, T* out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    out[i] = common::from_float<T>(common::to_float(a[i]) + common::to_float(b[i]));
  }
}

// partial[block] = sum of the block's grid-stride slice of x, reduced as a
// tree through shared memory. Launch: blockDim.x a power of two ≤ 1024, any
// grid; dynamic shared memory blockDim.x floats. One barrier per tree level.
template <typename T>
__device__ void block_sum(const T* x, float* partial, int n) {
  RECLIP_DYNAMIC_SHARED(float, buf);
  float acc = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) acc += common::to_float(x[i]);
  buf[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}

// partial[block] = sum of the block's slice, reduced with warp shuffles then
// one shared-memory exchange of the per-warp sums. Launch: blockDim.x a
// multiple of 32, ≤ 1024; static shared memory 32 floats.
template <typename T>
__device__ void warp_sum(const T* x, float* partial, int n) {
  __shared__ float warp_sums[32];
  float acc = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) acc += common::to_float(x[i]);
  acc = common::warp_sum(acc);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / 32;
    float v = lane < warps ? warp_sums[lane] : 0.0f;
    v = common::warp_sum(v);
    if (lane == 0) partial[blockIdx.x] = v;
  }
}

}  // namespace demo

extern "C" __global__ void vector_add_f32(const float* a, const float* b, float* out, int n) { demo::vector_add(a, b, out, n); }
extern "C" __global__ void vector_add_bf16(const bf16* a, const bf16* b, bf16* out, int n) { demo::vector_add(a, b, out, n); }
extern "C" __global__ void block_sum_f32(const float* x, float* partial, int n) { demo::block_sum(x, partial, n); }
extern "C" __global__ void block_sum_bf16(const bf16* x, float* partial, int n) { demo::block_sum(x, partial, n); }
extern "C" __global__ void warp_sum_f32(const float* x, float* partial, int n) { demo::warp_sum(x, partial, n); }
extern "C" __global__ void warp_sum_bf16(const bf16* x, float* partial, int n) { demo::warp_sum(x, partial, n); }

// f32 -> bf16 -> f32: rounds to nearest even, as every bf16 store does.
extern "C" __global__ void bf16_round_trip_f32(const float* x, bf16* as_bf16, float* back, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const bf16 b = __float2bfloat16(x[i]);
    as_bf16[i] = b;
    back[i] = __bfloat162float(b);
  }
}
