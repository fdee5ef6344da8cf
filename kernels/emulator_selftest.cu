// Deliberately wrong kernels that the emulator's own tests expect to fail:
// they show that the emulator catches the bugs it claims to catch. They are
// never launched by reclip's ops.
#include "common.cuh"

// Each thread writes its value to shared memory and reads its neighbour's —
// with no __syncthreads between the write and the read. On a GPU the result
// depends on warp scheduling; on the emulator on the barrier seed.
extern "C" __global__ void selftest_missing_sync_f32(const float* x, float* out, int n) {
  __shared__ float buf[256];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = i < n ? x[i] : 0.0f;
  // A barrier belongs here.
  const float neighbour = buf[(threadIdx.x + 1) % blockDim.x];
  // Meet once so that fibers interleave in a shuffled order around this point.
  __syncthreads();
  if (i < n) out[i] = neighbour;
}

// Reads a shared-memory slot no thread wrote: the emulator fills shared
// memory with NaN at block start, so the output is NaN.
extern "C" __global__ void selftest_uninitialised_shared_f32(float* out, int n) {
  __shared__ float buf[64];
  if (threadIdx.x < 32) buf[threadIdx.x] = 1.0f;
  __syncthreads();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = buf[threadIdx.x % 64];
}

// 256 threads through `rounds` barriers: the emulator's cost per barrier.
extern "C" __global__ void selftest_barriers_f32(float* out, int rounds) {
  __shared__ float buf[256];
  float acc = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    buf[threadIdx.x] = acc + r;
    __syncthreads();
    acc += buf[(threadIdx.x + r) % blockDim.x];
    __syncthreads();
  }
  out[threadIdx.x] = acc;
}

// Only the first half of the block reaches the barrier: a deadlock on the
// emulator (undefined behaviour on a GPU).
extern "C" __global__ void selftest_divergent_barrier_f32(float* out) {
  if (threadIdx.x < blockDim.x / 2) {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}
