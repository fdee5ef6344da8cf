// Gathers and deterministic scatter-adds over the middle dimension of
// contiguous [outer, n, inner] tensors. Indices are u32 and were checked to
// be in range on the host. Launch (all): 1-D grid-stride loop, 256 threads,
// one thread per output element; no shared memory, no atomics — each output
// element sums its contributions in index order, so results are
// deterministic.
#include "common.cuh"

namespace index_ops {

// out[o, j, c] = x[o, ids[j], c]; out is [outer, m, inner].
template <typename T>
__device__ void select(const T* x, const unsigned* ids, T* out, long long outer, int n, long long inner, int m) {
  const long long total = outer * m * inner;
  for (long long k = common::grid_index(); k < total; k += common::grid_stride()) {
    const long long c = k % inner, j = (k / inner) % m, o = k / (inner * m);
    out[k] = x[(o * n + ids[j]) * inner + c];
  }
}

// out[o, r, c] = base[o, r, c] + Σ src[o, j, c] over the positions j with
// ids[j] == r, in increasing j. `order` lists positions grouped by target row
// (stably), `starts[r]..starts[r+1]` is row r's group.
template <typename T>
__device__ void add(const T* base, const T* src, const unsigned* order, const unsigned* starts, T* out, long long outer,
                    int n, long long inner, int m) {
  const long long total = outer * n * inner;
  for (long long k = common::grid_index(); k < total; k += common::grid_stride()) {
    const long long c = k % inner, r = (k / inner) % n, o = k / (inner * n);
    float acc = common::to_float(base[k]);
    for (unsigned p = starts[r]; p < starts[r + 1]; ++p) acc += common::to_float(src[(o * m + order[p]) * inner + c]);
    out[k] = common::from_float<T>(acc);
  }
}

// out[o, j, c] = x[o, index[o, j, c], c]; index and out are [outer, m, inner].
template <typename T>
__device__ void gather(const T* x, const unsigned* index, T* out, long long outer, int n, long long inner, int m) {
  const long long total = outer * m * inner;
  for (long long k = common::grid_index(); k < total; k += common::grid_stride()) {
    const long long c = k % inner, o = k / (inner * m);
    out[k] = x[(o * n + index[k]) * inner + c];
  }
}

// out[o, r, c] = base[o, r, c] + Σ_j src[o, j, c] where index[o, j, c] == r.
template <typename T>
__device__ void scatter_add(const T* base, const unsigned* index, const T* src, T* out, long long outer, int n,
                            long long inner, int m) {
  const long long total = outer * n * inner;
  for (long long k = common::grid_index(); k < total; k += common::grid_stride()) {
    const long long c = k % inner, r = (k / inner) % n, o = k / (inner * n);
    float acc = common::to_float(base[k]);
    for (int j = 0; j < m; ++j) {
      const long long s = (o * m + j) * inner + c;
      if (index[s] == r) acc += common::to_float(src[s]);
    }
    out[k] = common::from_float<T>(acc);
  }
}

}  // namespace index_ops

extern "C" __global__ void index_select_f32(const float* x, const unsigned* ids, float* out, long long outer, int n,
                                         long long inner, int m) {
  index_ops::select(x, ids, out, outer, n, inner, m);
}
extern "C" __global__ void index_add_f32(const float* base, const float* src, const unsigned* order, const unsigned* starts,
                                      float* out, long long outer, int n, long long inner, int m) {
  index_ops::add(base, src, order, starts, out, outer, n, inner, m);
}
extern "C" __global__ void gather_f32(const float* x, const unsigned* index, float* out, long long outer, int n, long long inner,
                                   int m) {
  index_ops::gather(x, index, out, outer, n, inner, m);
}
extern "C" __global__ void scatter_add_f32(const float* base, const unsigned* index, const float* src, float* out,
                                        long long outer, int n, long long inner, int m) {
  index_ops::scatter_add(base, index, src, out, outer, n, inner, m);
}
extern "C" __global__ void index_select_bf16(const bf16* x, const unsigned* ids, bf16* out, long long outer, int n,
                                         long long inner, int m) {
  index_ops::select(x, ids, out, outer, n, inner, m);
}
extern "C" __global__ void index_add_bf16(const bf16* base, const bf16* src, const unsigned* order, const unsigned* starts,
                                      bf16* out, long long outer, int n, long long inner, int m) {
  index_ops::add(base, src, order, starts, out, outer, n, inner, m);
}
extern "C" __global__ void gather_bf16(const bf16* x, const unsigned* index, bf16* out, long long outer, int n, long long inner,
                                   int m) {
  index_ops::gather(x, index, out, outer, n, inner, m);
}
extern "C" __global__ void scatter_add_bf16(const bf16* base, const unsigned* index, const bf16* src, bf16* out,
                                        long long outer, int n, long long inner, int m) {
  index_ops::scatter_add(base, index, src, out, outer, n, inner, m);
}
