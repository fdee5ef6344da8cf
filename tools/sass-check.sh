#!/usr/bin/env bash
# Checks the machine code nvcc made of every kernel, with cuobjdump from
# tools/install-cuda.sh: every tensor-core kernel (a name containing `_mma_`)
# has HMMA instructions in its sm_80 and its sm_90 SASS, at least one such
# kernel exists, and no kernel has a stack frame or local memory. Prints a
# table file × kernel × arch × HMMA count × stack and local bytes, then one
# line per failing kernel; exits 1 if any fails.
#
#   tools/sass-check.sh [DIR]
#
# DIR holds the *.fatbin files; without it, the newest ones that a build with
# `--features cuda` finished under target/*/build/reclip-cuda-*/out (or under
# $CARGO_TARGET_DIR).
#
# Stack and local bytes are cuobjdump's --dump-resource-usage (STACK:, LOCAL:),
# not a search of the SASS for LDL/STL: they are the sizes ptxas wrote into the
# cubin for each function (its "bytes stack frame" under -Xptxas -v), so they
# count spills, local arrays and call frames alike, whereas a local array
# reached through a generic pointer is read and written with plain LD/ST,
# which a search for LDL/STL does not see.
#
# HMMA is what mma.sync and wmma compile to on both targets; an HFMA2.MMA is
# an ordinary half-precision FMA issued to the same pipe, and does not count.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
archs="sm_80 sm_90" # the SASS targets of crates/reclip-cuda/build.rs
start=$(date +%s%N)

if (($# > 1)); then
  echo "usage: tools/sass-check.sh [DIR with the *.fatbin files]" >&2
  exit 2
fi
if (($# == 1)); then
  dir=$1
else
  # build.rs writes kernels.rs after the last fatbin: a finished build.
  newest=
  for f in "${CARGO_TARGET_DIR:-$root/target}"/*/build/reclip-cuda-*/out/kernels.rs; do
    if [[ -f $f && (-z $newest || $f -nt $newest) ]]; then
      newest=$f
    fi
  done
  if [[ -z $newest ]]; then
    echo "sass-check: no finished cuda build under ${CARGO_TARGET_DIR:-$root/target}/*/build/reclip-cuda-*/out; build them with cargo build -p reclip-cuda --features cuda" >&2
    exit 1
  fi
  dir=$(dirname "$newest")
fi
fatbins=("$dir"/*.fatbin)
if [[ ! -f ${fatbins[0]} ]]; then
  echo "sass-check: no *.fatbin in $dir" >&2
  exit 1
fi

"$root/tools/install-cuda.sh"
cuobjdump="$(dirname "$("$root/tools/install-cuda.sh" --print-nvcc)")/cuobjdump"
facts=$(mktemp)
trap 'rm -f "$facts"' EXIT

# One line per function and arch: "usage FILE ARCH NAME STACK LOCAL" and
# "hmma FILE ARCH NAME COUNT".
for f in "${fatbins[@]}"; do
  file=$(basename "$f" .fatbin)
  "$cuobjdump" --dump-resource-usage "$f" | awk -v file="$file" '
    /^arch = / { arch = $3 }
    /^ Function .*:$/ { name = $2; sub(/:$/, "", name) }
    /STACK:/ {
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^STACK:/) stack = substr($i, 7)
        if ($i ~ /^LOCAL:/) lmem = substr($i, 7)
      }
      print "usage", file, arch, name, stack, lmem
    }' >>"$facts"
  "$cuobjdump" --dump-sass "$f" | awk -v file="$file" '
    /^[ \t]*code for sm_/ { arch = $3 }
    /^[ \t]*Function : / { name = $3; count[arch " " name] += 0 }
    # An instruction: /*offset*/ [@predicate] OPCODE.modifiers operands ;
    /^[ \t]*\/\*[0-9a-f]+\*\// {
      op = ($2 ~ /^@/) ? $3 : $2
      if (op ~ /^HMMA(\.|$)/) count[arch " " name]++
    }
    END { for (k in count) print "hmma", file, k, count[k] }' >>"$facts"
done

status=0
sort -k2,2 -k4,4 -k3,3 "$facts" | awk -v dir="$dir" -v archs="$archs" '
  $1 == "hmma" { hmma[$2 " " $3 " " $4] = $5; next }
  { rows[++n] = $2 " " $3 " " $4; stack[rows[n]] = $5; lmem[rows[n]] = $6 }
  END {
    wfile = length("file"); wname = length("kernel")
    for (i = 1; i <= n; i++) {
      split(rows[i], k, " ")
      if (length(k[1]) > wfile) wfile = length(k[1])
      if (length(k[3]) > wname) wname = length(k[3])
    }
    fmt = "%-" wfile "s  %-" wname "s  %-5s  %5s  %5s  %5s\n"
    printf fmt, "file", "kernel", "arch", "HMMA", "stack", "local"
    nwant = split(archs, want, " ")
    for (i = 1; i <= n; i++) {
      r = rows[i]; split(r, k, " "); file = k[1]; arch = k[2]; name = k[3]
      h = (r in hmma) ? hmma[r] : 0
      printf fmt, file, name, arch, h, stack[r], lmem[r]
      kernel = name " (" file ".cu)"
      if (!(kernel in seen)) { seen[kernel] = 1; order[++nk] = kernel }
      if (name ~ /_mma_/) { mma[kernel] = 1; has[kernel " " arch] = 1 }
      if (name ~ /_mma_/ && h == 0) why[kernel] = why[kernel] "; " arch ": no HMMA instruction"
      if (stack[r] != 0 || lmem[r] != 0)
        why[kernel] = why[kernel] "; " arch ": " stack[r] " bytes stack frame, " lmem[r] " bytes local memory"
    }
    for (kernel in mma)
      for (j = 1; j <= nwant; j++)
        if (!((kernel " " want[j]) in has)) why[kernel] = why[kernel] "; no " want[j] " SASS"
    fflush() # the table before the reasons, where both go to one log
    failed = 0
    for (i = 1; i <= nk; i++) {
      if (order[i] in why) {
        print "sass-check: " order[i] ": " substr(why[order[i]], 3) > "/dev/stderr"
        failed++
      }
    }
    nmma = 0
    for (kernel in mma) nmma++
    if (nmma == 0) {
      print "sass-check: no tensor-core kernel (a name containing _mma_) in " dir > "/dev/stderr"
      failed++
    }
    printf "sass-check: %d kernels, %d with _mma_, in %s\n", nk, nmma, dir
    exit (failed > 0)
  }' || status=$?
echo "sass-check: $((($(date +%s%N) - start) / 1000000)) ms"
exit "$status"
