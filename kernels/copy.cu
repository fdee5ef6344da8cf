// Copies between layouts and dtypes, and fills. Launch (all): 1-D grid-stride loop,
// 256 threads per block, up to 65536 blocks; a few registers, no shared
// memory. Memory-bound: one read and one write per element.
#include "common.cuh"

namespace copy {

// dst (contiguous) = src (any layout).
template <typename T>
__device__ void gather(const T* src, T* dst, StridedLayout src_layout, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    dst[i] = src[common::strided_offset(src_layout, i)];
  }
}

// dst (any layout, e.g. a slice of a concat's output) = src (contiguous).
template <typename T>
__device__ void scatter(const T* src, T* dst, StridedLayout dst_layout, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    dst[common::strided_offset(dst_layout, i)] = src[i];
  }
}

template <typename S, typename D>
__device__ void cast(const S* src, D* dst, long long n) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    dst[i] = common::from_float<D>(common::to_float(src[i]));
  }
}

// A constant made on the device, so that creating one (the seed of a
// backward pass, a scalar operand) costs no host-to-device transfer.
template <typename T>
__device__ void fill(T* dst, long long n, T value) {
  for (long long i = common::grid_index(); i < n; i += common::grid_stride()) {
    dst[i] = value;
  }
}

}  // namespace copy

extern "C" __global__ void strided_gather_f32(const float* src, float* dst, StridedLayout l, long long n) {
  copy::gather(src, dst, l, n);
}
extern "C" __global__ void strided_gather_bf16(const bf16* src, bf16* dst, StridedLayout l, long long n) {
  copy::gather(src, dst, l, n);
}
extern "C" __global__ void strided_gather_u32(const unsigned* src, unsigned* dst, StridedLayout l, long long n) {
  copy::gather(src, dst, l, n);
}
extern "C" __global__ void strided_scatter_f32(const float* src, float* dst, StridedLayout l, long long n) {
  copy::scatter(src, dst, l, n);
}
extern "C" __global__ void strided_scatter_bf16(const bf16* src, bf16* dst, StridedLayout l, long long n) {
  copy::scatter(src, dst, l, n);
}
extern "C" __global__ void strided_scatter_u32(const unsigned* src, unsigned* dst, StridedLayout l, long long n) {
  copy::scatter(src, dst, l, n);
}
extern "C" __global__ void cast_f32_to_bf16(const float* src, bf16* dst, long long n) { copy::cast(src, dst, n); }
extern "C" __global__ void cast_bf16_to_f32(const bf16* src, float* dst, long long n) { copy::cast(src, dst, n); }
extern "C" __global__ void fill_f32(float* dst, long long n, float value) { copy::fill(dst, n, value); }
extern "C" __global__ void fill_bf16(bf16* dst, long long n, float value) {
  copy::fill(dst, n, common::from_float<bf16>(value));
}
extern "C" __global__ void fill_u32(unsigned* dst, long long n, unsigned value) { copy::fill(dst, n, value); }
