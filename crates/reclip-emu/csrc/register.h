// Registration of emulated kernels: for each kernel, a trampoline that
// unpacks a cuLaunchKernel-style argument array (one pointer per parameter,
// pointing at the parameter's value) and calls the kernel, plus the
// parameter sizes so that the runtime can check the launch's arguments.
#pragma once

#include <stddef.h>

#include <utility>

namespace reclip_emu {

using Trampoline = void (*)(void** args);

struct KernelEntry {
  const char* name;
  Trampoline run;
  unsigned int param_count;
  const size_t* param_sizes;
};

void register_kernel(const KernelEntry& entry);

template <typename... P, size_t... I>
void call_kernel(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<P>*>(args[I])...);
}

template <typename F>
struct KernelTraits;

template <typename... P>
struct KernelTraits<void (*)(P...)> {
  static constexpr unsigned int count = sizeof...(P);
  static constexpr size_t sizes[sizeof...(P) + 1] = {sizeof(P)..., 0};
  template <void (*K)(P...)>
  static void trampoline(void** args) {
    call_kernel(K, args, std::index_sequence_for<P...>{});
  }
};

template <auto K>
void add(const char* name) {
  using Traits = KernelTraits<decltype(K)>;
  register_kernel({name, &Traits::template trampoline<K>, Traits::count, Traits::sizes});
}

}  // namespace reclip_emu
