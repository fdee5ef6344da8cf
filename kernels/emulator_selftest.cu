// Deliberately wrong kernels that the emulator's own tests expect to fail:
// they show that the emulator catches the bugs it claims to catch. They are
// never launched by reclip's ops.
#include "common.cuh"
#include "mma.cuh"

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

// Tensor-core products of one warp, C [M, N] f32 = A [M, K] · B, all in
// shared memory first (sizes multiples of 16 and ≤ 64; N a multiple of 8).
namespace selftest {

constexpr int kMax = 64;
constexpr int kStride = kMax + 8;  // bf16 per shared row: 16-byte aligned rows

__device__ __forceinline__ void stage(bf16 (*dst)[kStride], const bf16* src, int rows, int cols) {
  for (int i = threadIdx.x; i < rows * cols; i += 32) dst[i / cols][i % cols] = src[i];
  __syncwarp();
}

__device__ __forceinline__ void store(float* c, const float (&acc)[4], int m0, int n0, int n) {
  const int g = threadIdx.x / 4, t = threadIdx.x % 4;
  for (int i = 0; i < 4; ++i) c[(m0 + g + 8 * (i / 2)) * n + n0 + 2 * t + i % 2] = acc[i];
}

}  // namespace selftest

// B given transposed, bt [N, K] (its n columns are memory rows): ldmatrix x4
// for A, x2 for B.
extern "C" __global__ void selftest_mma_nt_bf16(const bf16* a, const bf16* bt, float* c, int m, int n, int k) {
  using namespace selftest;
  __shared__ __align__(16) bf16 sa[kMax][kStride];
  __shared__ __align__(16) bf16 sb[kMax][kStride];
  stage(sa, a, m, k);
  stage(sb, bt, n, k);
  const int l = threadIdx.x;
  for (int m0 = 0; m0 < m; m0 += 16)
    for (int n0 = 0; n0 < n; n0 += 8) {
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int k0 = 0; k0 < k; k0 += 16) {
        uint32_t fa[4], fb[2];
        mma::ldmatrix_x4(fa, &sa[m0 + l % 16][k0 + (l / 16) * 8]);
        mma::ldmatrix_x2(fb, &sb[n0 + l % 8][k0 + ((l / 8) % 2) * 8]);
        mma::m16n8k16(acc, fa, fb, acc);
      }
      store(c, acc, m0, n0, n);
    }
}

// B as stored, b [K, N] (its k values run down memory rows): ldmatrix
// x4.trans for two 8-column tiles at a time, x2.trans for an odd last one.
extern "C" __global__ void selftest_mma_nn_bf16(const bf16* a, const bf16* b, float* c, int m, int n, int k) {
  using namespace selftest;
  __shared__ __align__(16) bf16 sa[kMax][kStride];
  __shared__ __align__(16) bf16 sb[kMax][kStride];
  stage(sa, a, m, k);
  stage(sb, b, k, n);
  const int l = threadIdx.x;
  for (int m0 = 0; m0 < m; m0 += 16)
    for (int n0 = 0; n0 < n; n0 += 16) {
      float acc0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const bool pair = n0 + 16 <= n;
      for (int k0 = 0; k0 < k; k0 += 16) {
        uint32_t fa[4];
        mma::ldmatrix_x4(fa, &sa[m0 + l % 16][k0 + (l / 16) * 8]);
        if (pair) {
          uint32_t fb[4];
          mma::ldmatrix_x4_trans(fb, &sb[k0 + (l / 8) % 2 * 8 + l % 8][n0 + (l / 16) * 8]);
          const uint32_t b0[2] = {fb[0], fb[1]}, b1[2] = {fb[2], fb[3]};
          mma::m16n8k16(acc0, fa, b0, acc0);
          mma::m16n8k16(acc1, fa, b1, acc1);
        } else {
          uint32_t fb[2];
          mma::ldmatrix_x2_trans(fb, &sb[k0 + (l / 8) % 2 * 8 + l % 8][n0]);
          mma::m16n8k16(acc0, fa, fb, acc0);
        }
      }
      store(c, acc0, m0, n0, n);
      if (pair) store(c, acc1, m0, n0 + 8, n);
    }
}

// Fragments built by hand from shared memory in the PTX ISA's documented
// layout, without ldmatrix: this checks the emulator's mma against the
// documentation independently of its ldmatrix. With `swap_a` set, A's second
// and third registers are swapped (rows 8–15 taken for columns 8–15): the
// planted mistake, whose product is wrong on a GPU and must be wrong here.
extern "C" __global__ void selftest_mma_by_hand_bf16(const bf16* a, const bf16* bt, float* c, int m, int n, int k,
                                                     int swap_a) {
  using namespace selftest;
  __shared__ __align__(16) bf16 sa[kMax][kStride];
  __shared__ __align__(16) bf16 sb[kMax][kStride];
  stage(sa, a, m, k);
  stage(sb, bt, n, k);
  const int l = threadIdx.x, g = l / 4, t = l % 4;
  auto pair = [](const bf16* p) {
    return static_cast<uint32_t>(__bfloat16_as_ushort(p[0])) | (static_cast<uint32_t>(__bfloat16_as_ushort(p[1])) << 16);
  };
  for (int m0 = 0; m0 < m; m0 += 16)
    for (int n0 = 0; n0 < n; n0 += 8) {
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int k0 = 0; k0 < k; k0 += 16) {
        const uint32_t lower = pair(&sa[m0 + g + 8][k0 + 2 * t]), right = pair(&sa[m0 + g][k0 + 2 * t + 8]);
        const uint32_t fa[4] = {pair(&sa[m0 + g][k0 + 2 * t]), swap_a ? right : lower, swap_a ? lower : right,
                                pair(&sa[m0 + g + 8][k0 + 2 * t + 8])};
        const uint32_t fb[2] = {pair(&sb[n0 + g][k0 + 2 * t]), pair(&sb[n0 + g][k0 + 2 * t + 8])};
        mma::m16n8k16(acc, fa, fb, acc);
      }
      store(c, acc, m0, n0, n);
    }
}

// ldmatrix reads shared memory only: given a global address it must fail.
extern "C" __global__ void selftest_ldmatrix_global_bf16(const bf16* x, float* out) {
  uint32_t r[4];
  mma::ldmatrix_x4(r, x + (threadIdx.x % 16) * 8);
  out[threadIdx.x] = static_cast<float>(r[0] & 1u);
}
