// The emulator's scheduler. A launch runs its blocks one after another; each
// block's threads are fibers (ucontext) on the calling OS thread. A fiber runs
// until it reaches a barrier or returns. When no fiber can run, the waiting
// ones are released: a warp whose every lane waits at a warp barrier
// (shuffle, __syncwarp), or else the whole block once every thread waits at
// __syncthreads. Released fibers resume in an order shuffled by the launch
// seed, so kernels that depend on an order the GPU does not promise produce
// different (wrong) results on different seeds. Shared memory is filled with
// NaN at each block's start. A state no fiber can leave is reported as a
// deadlock, and a fiber that calls reclip_emu::fail stops the launch.
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "register.h"
#include "reclip_emu.h"

extern "C" char __start_reclip_shared[] __attribute__((weak));
extern "C" char __stop_reclip_shared[] __attribute__((weak));

namespace reclip_emu {

ThreadState* g_thread = nullptr;
uint3 g_block_idx;
dim3 g_block_dim;
dim3 g_grid_dim;

namespace {

constexpr size_t kMaxDynamicShared = 227 * 1024;
constexpr unsigned int kMaxThreads = 1024;

enum class State { Ready, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
  ucontext_t context;
  State state;
  ThreadState thread;
};

struct Launch {
  Trampoline run = nullptr;
  void** args = nullptr;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;  // 32 per warp
  std::vector<uint32_t> exchange;  // 32 · kExchangeWords per warp
  std::vector<unsigned char> dynamic;
  ucontext_t scheduler;
  Fiber* current = nullptr;
  std::string error;
};

Launch* g_launch = nullptr;

std::unordered_map<std::string, KernelEntry>& registry() {
  static std::unordered_map<std::string, KernelEntry> kernels;
  return kernels;
}

// Fiber stacks are allocated once and reused by every block and launch.
struct StackPool {
  size_t stack_bytes = 0;
  std::vector<char*> stacks;

  char* get(size_t i) {
    if (stack_bytes == 0) {
      const char* env = getenv("RECLIP_EMU_STACK_KB");
      stack_bytes = static_cast<size_t>(env ? atoi(env) : 64) * 1024;
    }
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      stacks.push_back(static_cast<char*>(p));
    }
    return stacks[i];
  }
};
StackPool g_stacks;

void fiber_main() {
  Launch* l = g_launch;
  l->run(l->args);
  l->current->state = State::Done;
  swapcontext(&l->current->context, &l->scheduler);
}

void wait(State state) {
  Launch* l = g_launch;
  l->current->state = state;
  swapcontext(&l->current->context, &l->scheduler);
}

std::string describe_stall(const Launch& l) {
  size_t ready = 0, block = 0, warp = 0, done = 0;
  for (const Fiber& f : l.fibers) {
    switch (f.state) {
      case State::Ready: ++ready; break;
      case State::AtBlockBarrier: ++block; break;
      case State::AtWarpBarrier: ++warp; break;
      case State::Done: ++done; break;
    }
  }
  return "deadlock in block (" + std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) + "," +
         std::to_string(g_block_idx.z) + "): " + std::to_string(block) + " threads at __syncthreads, " +
         std::to_string(warp) + " at a warp barrier (shuffle/__syncwarp), " + std::to_string(done) +
         " returned — a barrier that not every thread reaches";
}

// Releases the waiting fibers that can go on; returns them, or nothing when
// the block is finished or stuck.
std::vector<size_t> release(Launch& l) {
  std::vector<size_t> released;
  const size_t n = l.fibers.size();
  for (size_t w = 0; w * 32 < n; ++w) {
    const size_t lo = w * 32, hi = std::min(n, lo + 32);
    bool all_waiting = true;
    for (size_t i = lo; i < hi; ++i) all_waiting = all_waiting && l.fibers[i].state == State::AtWarpBarrier;
    if (!all_waiting) continue;
    for (size_t i = lo; i < hi; ++i) released.push_back(i);
  }
  if (!released.empty()) return released;
  // A block barrier opens when every thread of the block waits at it: a
  // thread that has returned never arrives (CUDA leaves that undefined).
  bool all_at_block = true;
  for (const Fiber& f : l.fibers) all_at_block = all_at_block && f.state == State::AtBlockBarrier;
  if (all_at_block) {
    for (size_t i = 0; i < n; ++i) released.push_back(i);
  }
  return released;
}

bool run_block(Launch& l, std::mt19937_64& rng) {
  const size_t n = l.fibers.size();
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = l.fibers[i];
    const unsigned int t = static_cast<unsigned int>(i);
    f.thread.tid = {t % g_block_dim.x, (t / g_block_dim.x) % g_block_dim.y, t / (g_block_dim.x * g_block_dim.y)};
    f.thread.lane = t % 32;
    f.thread.warp = t / 32;
    f.state = State::Ready;
    char* stack = g_stacks.get(i);
    if (stack == nullptr) {
      l.error = "cannot allocate fiber stacks";
      return false;
    }
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = stack;
    f.context.uc_stack.ss_size = g_stacks.stack_bytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
  }
  if (__start_reclip_shared != nullptr) memset(__start_reclip_shared, 0xff, __stop_reclip_shared - __start_reclip_shared);
  std::fill(l.dynamic.begin(), l.dynamic.end(), 0xff);
  std::fill(l.slots.begin(), l.slots.end(), ~uint64_t{0});
  std::fill(l.exchange.begin(), l.exchange.end(), ~uint32_t{0});

  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      Fiber& f = l.fibers[i];
      if (f.state != State::Ready) continue;
      l.current = &f;
      g_thread = &f.thread;
      swapcontext(&l.scheduler, &f.context);
      if (!l.error.empty()) return false;
    }
    order = release(l);
    if (order.empty()) break;
    for (size_t i : order) l.fibers[i].state = State::Ready;
  }
  for (const Fiber& f : l.fibers) {
    if (f.state != State::Done) {
      l.error = describe_stall(l);
      return false;
    }
  }
  return true;
}

}  // namespace

void register_kernel(const KernelEntry& entry) { registry()[entry.name] = entry; }

void sync_block() { wait(State::AtBlockBarrier); }
void sync_warp() { wait(State::AtWarpBarrier); }
void* dynamic_shared() { return g_launch->dynamic.data(); }
uint64_t* warp_slots() { return g_launch->slots.data() + 32 * g_thread->warp; }
uint32_t* warp_exchange() { return g_launch->exchange.data() + 32 * kExchangeWords * g_thread->warp; }
bool in_shared(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  const std::vector<unsigned char>& d = g_launch->dynamic;
  const char* dyn = reinterpret_cast<const char*>(d.data());
  if (!d.empty() && c >= dyn && c + bytes <= dyn + d.size()) return true;
  return __start_reclip_shared != nullptr && c >= __start_reclip_shared && c + bytes <= __stop_reclip_shared;
}
unsigned int warp_width() {
  const size_t n = g_launch->fibers.size();
  return static_cast<unsigned int>(std::min<size_t>(32, n - 32 * g_thread->warp));
}

void fail(const char* what) {
  Launch* l = g_launch;
  l->error = what;
  l->current->state = State::Done;
  swapcontext(&l->current->context, &l->scheduler);
  __builtin_unreachable();
}

}  // namespace reclip_emu

extern "C" void reclip_emu_register_all();

namespace {

void set_error(char* err, size_t err_len, const std::string& msg) {
  if (err_len == 0) return;
  const size_t n = std::min(msg.size(), err_len - 1);
  memcpy(err, msg.data(), n);
  err[n] = 0;
}

void ensure_registered() {
  static bool done = [] {
    reclip_emu_register_all();
    return true;
  }();
  (void)done;
}

}  // namespace

// Runs one launch. Returns 0 on success, otherwise writes a message to `err`.
// Not reentrant: the caller serialises launches.
extern "C" int reclip_emu_launch(const char* name, const uint32_t grid[3], const uint32_t block[3],
                                 uint32_t shared_bytes, void** args, const uint64_t* arg_sizes, uint32_t arg_count,
                                 uint64_t seed, char* err, size_t err_len) {
  using namespace reclip_emu;
  ensure_registered();
  auto it = registry().find(name);
  if (it == registry().end()) {
    set_error(err, err_len, std::string("no kernel named ") + name + " in the emulator build");
    return 1;
  }
  const KernelEntry& k = it->second;
  if (arg_count != k.param_count) {
    set_error(err, err_len,
              std::string(name) + " takes " + std::to_string(k.param_count) + " arguments, the launch passed " +
                  std::to_string(arg_count));
    return 1;
  }
  for (uint32_t i = 0; i < arg_count; ++i) {
    if (arg_sizes[i] != k.param_sizes[i]) {
      set_error(err, err_len,
                std::string(name) + ": argument " + std::to_string(i) + " is " + std::to_string(k.param_sizes[i]) +
                    " bytes, the launch passed " + std::to_string(arg_sizes[i]));
      return 1;
    }
  }
  const uint64_t threads = uint64_t{block[0]} * block[1] * block[2];
  if (threads == 0 || threads > kMaxThreads || grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || grid[1] > 65535 ||
      grid[2] > 65535) {
    set_error(err, err_len, std::string(name) + ": invalid launch shape");
    return 1;
  }
  if (shared_bytes > kMaxDynamicShared) {
    set_error(err, err_len,
              std::string(name) + ": " + std::to_string(shared_bytes) + " bytes of dynamic shared memory exceed " +
                  std::to_string(kMaxDynamicShared));
    return 1;
  }

  Launch l;
  l.run = k.run;
  l.args = args;
  l.fibers.resize(threads);
  l.slots.resize(32 * ((threads + 31) / 32));
  l.exchange.resize(32 * kExchangeWords * ((threads + 31) / 32));
  l.dynamic.resize(shared_bytes);
  g_launch = &l;
  g_grid_dim = {grid[0], grid[1], grid[2]};
  g_block_dim = {block[0], block[1], block[2]};
  std::mt19937_64 rng(seed);
  bool ok = true;
  for (uint32_t z = 0; ok && z < grid[2]; ++z)
    for (uint32_t y = 0; ok && y < grid[1]; ++y)
      for (uint32_t x = 0; ok && x < grid[0]; ++x) {
        g_block_idx = {x, y, z};
        ok = run_block(l, rng);
      }
  g_launch = nullptr;
  g_thread = nullptr;
  if (!ok) {
    set_error(err, err_len, std::string(name) + ": " + l.error);
    return 1;
  }
  return 0;
}
