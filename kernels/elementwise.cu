// Elementwise ops with NumPy broadcasting. Memory-bound; inputs are read as
// f32 and results rounded once to the output dtype. Op codes follow
// reclip_core::gpu::elementwise.
//
// Launch (all): 1-D grid-stride loop, 256 threads per block, up to 65536
// blocks; no shared memory. Every contiguous op comes in two forms from one
// source: the scalar form (`*_f32`, `*_bf16`; any length and alignment;
// grid ceil(n / 256)) and the vector form (`*_vec_f32`, `*_vec_bf16`), which
// crates/reclip-core/src/gpu/elementwise.rs launches when n is a multiple of
// the 16-byte pack (4 f32, 8 bf16) and every pointer is 16-byte aligned, on a
// grid of ceil(n / (256 · kInFlight · pack)): each thread loads kInFlight = 4
// packs (64 bytes per input, 128 for binary_same) before it computes and
// stores them. Each output element is computed from its inputs alone, so
// both forms give the same bits. binary_strided (broadcast or strided views)
// is scalar only.
//
// Registers (sm_80/sm_90), scalar forms: 18–32; vector forms: affine and
// clamp 30–32, unary and powf 39–40, binary_same 55–56 (4 blocks, 1024
// threads, 128 KiB of loads in flight per SM).
//
// Floors for a ViT-B/16 activation (256 × 197 × 768 = 38.7 M elements) at
// 4.3 TB/s: a binary op 232 MB in bf16 (two reads, one write), 54 µs; f32
// 108 µs; a unary op or affine 155 MB in bf16, 36 µs; f32 72 µs.
// Predictions, not measurements.
#include "common.cuh"

namespace elementwise {

constexpr int kInFlight = 4;

enum Binary { ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAX = 4, MIN = 5 };
enum Unary { NEG = 0, EXP = 1, LOG = 2, SQRT = 3, RECIP = 4, SQR = 5, TANH = 6, SIGMOID = 7, RELU = 8, ABS = 9, STEP = 10, SIGN = 11 };

__device__ __forceinline__ float binary(int op, float a, float b) {
  switch (op) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return a / b;
    case MAX: return fmaxf(a, b);
    default: return fminf(a, b);
  }
}

__device__ __forceinline__ float unary(int op, float x) {
  switch (op) {
    case NEG: return -x;
    case EXP: return expf(x);
    case LOG: return logf(x);
    case SQRT: return sqrtf(x);
    case RECIP: return 1.0f / x;
    case SQR: return x * x;
    case TANH: return tanhf(x);
    case SIGMOID: return 1.0f / (1.0f + expf(-x));
    case RELU: return fmaxf(x, 0.0f);
    case ABS: return fabsf(x);
    case STEP: return x > 0.0f ? 1.0f : 0.0f;
    default: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  }
}

// Both inputs have the output's shape and are contiguous.
template <typename T, int K>
__device__ void binary_same(int op, const T* a, const T* b, T* out, long long n) {
  common::map2<kInFlight, T, K>(a, b, out, n, [&](float x, float y) { return binary(op, x, y); });
}

// Inputs are views broadcast to the (contiguous) output's shape. Scalar only.
template <typename T>
__device__ void binary_strided(int op, const T* a, StridedLayout la, const T* b, StridedLayout lb, T* out, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    const float x = common::to_float(a[common::strided_offset(la, i)]);
    const float y = common::to_float(b[common::strided_offset(lb, i)]);
    out[i] = common::from_float<T>(binary(op, x, y));
  }
}

template <typename T, int K>
__device__ void unary_map(int op, const T* x, T* out, long long n) {
  common::map1<kInFlight, T, K>(x, out, n, [&](float v) { return unary(op, v); });
}

template <typename T, int K>
__device__ void affine(const T* x, T* out, long long n, float mul, float add) {
  common::map1<kInFlight, T, K>(x, out, n, [&](float v) { return v * mul + add; });
}

template <typename T, int K>
__device__ void power(const T* x, T* out, long long n, float e) {
  common::map1<kInFlight, T, K>(x, out, n, [&](float v) { return powf(v, e); });
}

// In place, for a parameter bounded after each optimizer step (CLIP's
// log-temperature): the buffer keeps its address, so the optimizer's
// device-side table of parameters stays valid. Each element is read before
// it is written, by the same thread.
template <typename T, int K>
__device__ void clamp_in_place(T* x, long long n, float lo, float hi) {
  common::map1<kInFlight, T, K>(x, x, n, [&](float v) { return fminf(fmaxf(v, lo), hi); });
}

}  // namespace elementwise

// Scalar forms: any length, any alignment.
extern "C" __global__ void binary_same_f32(int op, const float* a, const float* b, float* out, long long n) {
  elementwise::binary_same<float, 1>(op, a, b, out, n);
}
extern "C" __global__ void unary_f32(int op, const float* x, float* out, long long n) {
  elementwise::unary_map<float, 1>(op, x, out, n);
}
extern "C" __global__ void affine_f32(const float* x, float* out, long long n, float mul, float add) {
  elementwise::affine<float, 1>(x, out, n, mul, add);
}
extern "C" __global__ void powf_f32(const float* x, float* out, long long n, float e) {
  elementwise::power<float, 1>(x, out, n, e);
}
extern "C" __global__ void clamp_in_place_f32(float* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place<float, 1>(x, n, lo, hi);
}
extern "C" __global__ void binary_same_bf16(int op, const bf16* a, const bf16* b, bf16* out, long long n) {
  elementwise::binary_same<bf16, 1>(op, a, b, out, n);
}
extern "C" __global__ void unary_bf16(int op, const bf16* x, bf16* out, long long n) {
  elementwise::unary_map<bf16, 1>(op, x, out, n);
}
extern "C" __global__ void affine_bf16(const bf16* x, bf16* out, long long n, float mul, float add) {
  elementwise::affine<bf16, 1>(x, out, n, mul, add);
}
extern "C" __global__ void powf_bf16(const bf16* x, bf16* out, long long n, float e) {
  elementwise::power<bf16, 1>(x, out, n, e);
}
extern "C" __global__ void clamp_in_place_bf16(bf16* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place<bf16, 1>(x, n, lo, hi);
}
extern "C" __global__ void binary_strided_f32(int op, const float* a, StridedLayout la, const float* b, StridedLayout lb,
                                              float* out, long long n) {
  elementwise::binary_strided(op, a, la, b, lb, out, n);
}
extern "C" __global__ void binary_strided_bf16(int op, const bf16* a, StridedLayout la, const bf16* b, StridedLayout lb,
                                               bf16* out, long long n) {
  elementwise::binary_strided(op, a, la, b, lb, out, n);
}

// Vector forms: n a multiple of K (4 f32, 8 bf16), every pointer 16-byte aligned.
extern "C" __global__ void binary_same_vec_f32(int op, const float* a, const float* b, float* out, long long n) {
  elementwise::binary_same<float, 4>(op, a, b, out, n);
}
extern "C" __global__ void unary_vec_f32(int op, const float* x, float* out, long long n) {
  elementwise::unary_map<float, 4>(op, x, out, n);
}
extern "C" __global__ void affine_vec_f32(const float* x, float* out, long long n, float mul, float add) {
  elementwise::affine<float, 4>(x, out, n, mul, add);
}
extern "C" __global__ void powf_vec_f32(const float* x, float* out, long long n, float e) {
  elementwise::power<float, 4>(x, out, n, e);
}
extern "C" __global__ void clamp_in_place_vec_f32(float* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place<float, 4>(x, n, lo, hi);
}
extern "C" __global__ void binary_same_vec_bf16(int op, const bf16* a, const bf16* b, bf16* out, long long n) {
  elementwise::binary_same<bf16, 8>(op, a, b, out, n);
}
extern "C" __global__ void unary_vec_bf16(int op, const bf16* x, bf16* out, long long n) {
  elementwise::unary_map<bf16, 8>(op, x, out, n);
}
extern "C" __global__ void affine_vec_bf16(const bf16* x, bf16* out, long long n, float mul, float add) {
  elementwise::affine<bf16, 8>(x, out, n, mul, add);
}
extern "C" __global__ void powf_vec_bf16(const bf16* x, bf16* out, long long n, float e) {
  elementwise::power<bf16, 8>(x, out, n, e);
}
extern "C" __global__ void clamp_in_place_vec_bf16(bf16* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place<bf16, 8>(x, n, lo, hi);
}
