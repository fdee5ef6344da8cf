// Elementwise ops with NumPy broadcasting. Launch (all): 1-D grid-stride
// loop, 256 threads per block, up to 65536 blocks; no shared memory.
// Memory-bound; inputs are read as f32 and results rounded once to the
// output dtype. Op codes follow reclip_core::gpu::elementwise.
#include "common.cuh"

namespace elementwise {

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
template <typename T>
__device__ void binary_same(int op, const T* a, const T* b, T* out, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    out[i] = common::from_float<T>(binary(op, common::to_float(a[i]), common::to_float(b[i])));
  }
}

// Inputs are views broadcast to the (contiguous) output's shape.
template <typename T>
__device__ void binary_strided(int op, const T* a, StridedLayout la, const T* b, StridedLayout lb, T* out, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    const float x = common::to_float(a[common::strided_offset(la, i)]);
    const float y = common::to_float(b[common::strided_offset(lb, i)]);
    out[i] = common::from_float<T>(binary(op, x, y));
  }
}

template <typename T>
__device__ void unary_map(int op, const T* x, T* out, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    out[i] = common::from_float<T>(unary(op, common::to_float(x[i])));
  }
}

template <typename T>
__device__ void affine(const T* x, T* out, long long n, float mul, float add) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    out[i] = common::from_float<T>(common::to_float(x[i]) * mul + add);
  }
}

template <typename T>
__device__ void power(const T* x, T* out, long long n, float e) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    out[i] = common::from_float<T>(powf(common::to_float(x[i]), e));
  }
}

// In place, for a parameter bounded after each optimizer step (CLIP's
// log-temperature): the buffer keeps its address, so the optimizer's
// device-side table of parameters stays valid.
template <typename T>
__device__ void clamp_in_place(T* x, long long n, float lo, float hi) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    x[i] = common::from_float<T>(fminf(fmaxf(common::to_float(x[i]), lo), hi));
  }
}

}  // namespace elementwise

extern "C" __global__ void binary_same_f32(int op, const float* a, const float* b, float* out, long long n) {
  elementwise::binary_same(op, a, b, out, n);
}
extern "C" __global__ void binary_same_bf16(int op, const bf16* a, const bf16* b, bf16* out, long long n) {
  elementwise::binary_same(op, a, b, out, n);
}
extern "C" __global__ void binary_strided_f32(int op, const float* a, StridedLayout la, const float* b, StridedLayout lb,
                                              float* out, long long n) {
  elementwise::binary_strided(op, a, la, b, lb, out, n);
}
extern "C" __global__ void binary_strided_bf16(int op, const bf16* a, StridedLayout la, const bf16* b, StridedLayout lb,
                                               bf16* out, long long n) {
  elementwise::binary_strided(op, a, la, b, lb, out, n);
}
extern "C" __global__ void unary_f32(int op, const float* x, float* out, long long n) { elementwise::unary_map(op, x, out, n); }
extern "C" __global__ void unary_bf16(int op, const bf16* x, bf16* out, long long n) { elementwise::unary_map(op, x, out, n); }
extern "C" __global__ void affine_f32(const float* x, float* out, long long n, float mul, float add) {
  elementwise::affine(x, out, n, mul, add);
}
extern "C" __global__ void affine_bf16(const bf16* x, bf16* out, long long n, float mul, float add) {
  elementwise::affine(x, out, n, mul, add);
}
extern "C" __global__ void powf_f32(const float* x, float* out, long long n, float e) { elementwise::power(x, out, n, e); }
extern "C" __global__ void powf_bf16(const bf16* x, bf16* out, long long n, float e) { elementwise::power(x, out, n, e); }
extern "C" __global__ void clamp_in_place_f32(float* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place(x, n, lo, hi);
}
extern "C" __global__ void clamp_in_place_bf16(bf16* x, long long n, float lo, float hi) {
  elementwise::clamp_in_place(x, n, lo, hi);
}
