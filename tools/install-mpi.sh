#!/usr/bin/env bash
# Installs what the `mpi` cargo feature (crates/reclip-dist) needs on Debian
# or Ubuntu, from apt: Open MPI's launcher mpirun, its compiler wrapper mpicc
# (which the mpi crate's build asks how to compile and link against MPI) and
# libclang (with which it generates its bindings to mpi.h). Idempotent: it
# exits at once when all three are there. With --check it only says what is
# missing, and exits 1 if anything is. Installing needs root, or sudo.
#
# Open MPI refuses to start as root. Where the ranks must run as root (a
# container), set both of
#   OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# in mpirun's environment.
set -euo pipefail

# What is missing, one indented "what (package)" a line.
missing() {
  command -v mpirun >/dev/null || echo "  mpirun (openmpi-bin)"
  command -v mpicc >/dev/null || echo "  mpicc (libopenmpi-dev)"
  has_libclang || echo "  libclang (libclang-dev)"
}

# The unversioned libclang*.so that bindgen loads comes with the -dev
# packages (the runtime package has only libclang-N.so.M), which also bring
# the clang headers bindgen needs.
has_libclang() {
  if [[ -n "${LIBCLANG_PATH:-}" ]] && compgen -G "$LIBCLANG_PATH/libclang*.so" >/dev/null; then
    return 0
  fi
  compgen -G "/usr/lib/llvm-*/lib/libclang.so" >/dev/null && return 0
  # Read whole before grep -q stops reading, so that ldconfig never dies of a closed pipe.
  local cache
  cache=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
  grep -Eq '^\s*libclang(-[0-9.]+)?\.so\s' <<<"$cache"
}

# The first line of `mpirun --version`, read whole for the same reason.
mpi_version() {
  mpirun --version 2>&1 | sed -n 1p
}

case "${1:-}" in
  "") ;;
  --check)
    gaps=$(missing)
    if [[ -n "$gaps" ]]; then
      echo "missing for the mpi feature:"
      echo "$gaps"
      exit 1
    fi
    echo "mpirun, mpicc and libclang are installed: $(mpi_version)"
    exit 0
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if [[ -z "$(missing)" ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-mpi.sh: no apt-get here; install Open MPI (mpirun, mpicc) and libclang by hand" >&2
  exit 1
fi
as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-mpi.sh: not root and no sudo; as root run: apt-get install -y openmpi-bin libopenmpi-dev libclang-dev" >&2
    exit 1
  fi
  as_root=(sudo)
fi
# A fresh container has no package lists yet.
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y openmpi-bin libopenmpi-dev libclang-dev

gaps=$(missing)
if [[ -n "$gaps" ]]; then
  echo "install-mpi.sh: still missing after apt-get install:" >&2
  echo "$gaps" >&2
  exit 1
fi
mpi_version
