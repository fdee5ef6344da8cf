#!/usr/bin/env bash
# Runs reclip over a corpus of hostile inputs, each case under a memory cap
# and a time limit, and checks that every one ends as a careful user would
# expect: exit 0 with the right result, or exit 2 with a one-line message
# naming what is wrong. Never a signal, a panic, a hang, silent nonsense, or
# a changed input file.
#
#     tools/hostile-inputs.sh [--quick] [--bin PATH] [--mem-mib N] [--keep]
#
#   --quick      the subset CI runs (every kind of case, a few minutes on 2
#                cores); the full form runs all of tools/hostile/cases.sh
#   --bin PATH   the reclip binary (default: target/release/reclip)
#   --mem-mib N  the address-space cap of each case (ulimit -v), 4096 unless
#                RECLIP_HOSTILE_MEM_MIB says otherwise
#   --keep       keep the work folder (corpus, outputs, logs) even when all pass
#
# The corpus (tools/hostile/make_corpus.py) is written to a temporary folder
# beside a finished tiny run; both are fingerprinted before the cases and
# after each (tools/hostile/checksum.py). Prints one line per failing case
# and ends with
#
#     N inputs: C clean (exit 0 or 2), K crashes, H hangs, M inputs modified
#
# (with ", W wrong results" when a clean exit was not the expected one).
# Exit status 0 only when every case is clean, as expected, and changed
# nothing.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
quick=0
keep=0
bin=$root/target/release/reclip
# A healthy tiny run reserves about 1.7 GiB of address space on 2 cores and
# 2.1 GiB with 16 threads (mimalloc's arenas and each thread's stack count,
# touched or not); 4 GiB leaves room for that and stops any input that
# makes reclip allocate more than a tiny run could need.
mem_mib=${RECLIP_HOSTILE_MEM_MIB:-4096}

usage() { sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --keep) keep=1 ;;
        --bin) bin=${2:?--bin needs a path}; shift ;;
        --mem-mib) mem_mib=${2:?--mem-mib needs a number}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "hostile-inputs: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done
if [[ ! -x $bin ]]; then
    echo "hostile-inputs: no reclip binary at $bin: run cargo build --release, or pass --bin PATH" >&2
    exit 1
fi
bin=$(realpath "$bin")
# A healthy case takes seconds; a hang is cut here (SIGTERM, SIGKILL 5 s later).
limit_s=$((quick ? 30 : 60))

work=$(mktemp -d "${TMPDIR:-/tmp}/reclip-hostile.XXXXXX")
C=$work/corpus
P=$work/previous-run
O=$work/out
L=$work/logs
mkdir -p "$O" "$L" "$work/cwd"
started=$SECONDS

fingerprint() { python3 -B -S "$here/hostile/checksum.py" "$@" "$C" "$P"; }

# limited LOG ARGS...: runs ARGS in an empty folder under the caps, stdout
# and stderr to LOG.out and LOG.err; sets rc and ms (wall milliseconds).
limited() {
    local log=$1
    shift
    local start
    start=$(date +%s%N)
    # The outer 2>/dev/null silences bash's own "Aborted" notice; the
    # case's stderr is in LOG.err.
    {
        (
            cd "$work/cwd" || exit 1
            ulimit -v $((mem_mib * 1024)) || exit 1
            exec env -u RUST_BACKTRACE timeout -k 5 "$limit_s" "$@"
        ) >"$log.out" 2>"$log.err" </dev/null
    } 2>/dev/null
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
}

# The model of the run in DIR's latest checkpoint (a path that does not
# exist when the run left none).
latest_model() {
    local name
    name=$(cat "$1/checkpoints/latest" 2>/dev/null) || name=NO-CHECKPOINT-LEFT
    echo "$1/checkpoints/$name/model.safetensors"
}

last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }

# What is wrong with a refusal (exit 2) in LOG, given NEEDLE; empty if nothing.
refusal_problem() {
    local log=$1 needle=$2 last
    last=$(last_line "$log.err")
    if grep -qE 'panicked|RUST_BACKTRACE|stack backtrace|Caused by:' "$log.err"; then
        echo "a panic or backtrace on stderr: $(grep -m1 -E 'panicked|RUST_BACKTRACE|stack backtrace|Caused by:' "$log.err")"
    elif [[ $last != "error: "* ]]; then
        echo "stderr's last line is not 'error: ...' (a message over several lines?): ${last:0:200}"
    elif (($(grep -c '^error: ' "$log.err") > 1)); then
        echo "more than one 'error: ' line: ${last:0:200}"
    elif grep -qE '[A-Za-z_]+ \{ [a-z_]+: ' <<<"$last"; then
        echo "a Rust Debug struct in the message: ${last:0:200}"
    elif ((${#last} > 400)); then
        echo "a message of ${#last} characters: ${last:0:200}..."
    else
        local part
        while read -r part; do
            if [[ -n $part ]] && ! grep -qF -- "$part" <<<"$last"; then
                echo "the message does not name '$part': ${last:0:300}"
                return
            fi
        done <<<"${needle//&&/$'\n'}"
    fi
}

# What is wrong with a success (exit 0) in LOG, given PATTERN (an extended
# regex the output must match) and what a mismatch means; empty if nothing.
success_problem() {
    local log=$1 pattern=$2 meaning=$3
    if grep -q 'panicked' "$log.err"; then
        echo "exit 0 after a panic: $(grep -m1 'panicked' "$log.err")"
    elif [[ -n $pattern ]] && ! cat "$log.out" "$log.err" | grep -qE -- "$pattern"; then
        echo "exit 0 but the output does not match '$pattern' ($meaning)"
    elif grep -qwE 'NaN|nan|inf|-inf|infinity' "$log.out"; then
        echo "exit 0 with a non-finite number in the output: $(grep -m1 -wE 'NaN|nan|inf|-inf|infinity' "$log.out")"
    fi
}

total=0 clean=0 crashes=0 hangs=0 modified=0 wrong=0
fail() { echo "FAIL $1: $2"; }

# check TIER ID EXPECT NEEDLE ARGS...: one case (see tools/hostile/cases.sh).
check() {
    local tier=$1 id=$2 expect=${3%%=*} needle=$4 answer=""
    [[ $3 == *=* ]] && answer=${3#*=}
    shift 4
    ((quick)) && [[ $tier != q ]] && return 0
    total=$((total + 1))
    local args=() a
    for a in "$@"; do
        case $a in
            @out*) a=$O/$id${a#@out} ;;
            @latest:*) a=$(latest_model "${a#@latest:}") ;;
            @copy:*)
                cp -a --sparse=always "${a#@copy:}" "$O/$id.copy" || exit 1
                a=$O/$id.copy
                ;;
        esac
        args+=("$a")
    done
    local log=$L/$id
    printf '%s\n' "${args[@]}" >"$log.args"
    limited "$log" "$bin" "${args[@]}"
    local problem=""
    if ((rc == 124 || (rc == 137 && ms >= limit_s * 1000))); then
        hangs=$((hangs + 1))
        fail "$id" "hang: no exit within ${limit_s} s"
    elif ((rc >= 128)); then
        crashes=$((crashes + 1))
        fail "$id" "crash: killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))) after ${ms} ms: $(last_line "$log.err" | cut -c1-200)"
    elif ((rc != 0 && rc != 2)); then
        crashes=$((crashes + 1))
        fail "$id" "crash: exit $rc: $(grep -m1 'panicked' "$log.err" || last_line "$log.err" | cut -c1-200)"
    else
        clean=$((clean + 1))
        case $expect:$rc in
            ok:0) problem=$(success_problem "$log" "$needle" "silently skipped?") ;;
            either:0) problem=$(success_problem "$log" "$answer" "not the right answer") ;;
            refuse:2 | either:2) problem=$(refusal_problem "$log" "$needle") ;;
            ok:2) problem="exit 2, expected success: $(last_line "$log.err" | cut -c1-300)" ;;
            refuse:0) problem="exit 0, expected a refusal naming '$needle' (silent nonsense)" ;;
        esac
        if [[ -n $problem ]]; then
            wrong=$((wrong + 1))
            fail "$id" "wrong: $problem"
        fi
    fi
    fingerprint --cache "$work/hashes.json" >"$work/sums.after"
    if ! cmp -s "$work/sums.before" "$work/sums.after"; then
        modified=$((modified + 1))
        local changed
        changed=$(diff "$work/sums.before" "$work/sums.after" | sed -n 's/^[<>] .*  \([^ ]*\).*/\1/p' | sort -u |
            head -n 3 | tr '\n' ' ')
        fail "$id" "modified an input: $changed"
        # Later cases get the inputs as they were.
        rm -rf "$C" "$P"
        cp -a --sparse=always "$work/pristine/corpus" "$C"
        cp -a --sparse=always "$work/pristine/previous-run" "$P"
        fingerprint --cache "$work/hashes.json" >"$work/sums.after"
    fi
    mv "$work/sums.after" "$work/sums.before"
}

# The previous run the cases must not touch; its model seeds the checkpoints.
limited "$L/setup-previous-run" "$bin" train --steps 2 --batch-size 4 --eval-every 0 --checkpoint-every 0 \
    --probe-steps 1 --quiet --out "$P"
if ((rc != 0)); then
    echo "hostile-inputs: the healthy tiny run failed (exit $rc) under a ${mem_mib} MiB cap: $(last_line "$L/setup-previous-run.err")" >&2
    echo "hostile-inputs: logs in $work/logs; a cap too small for this machine can be raised with --mem-mib" >&2
    exit 1
fi
python3 -B -S "$here/hostile/make_corpus.py" "$C" --model "$P/model.safetensors" --run "$P" || exit 1
fingerprint --cache "$work/hashes.json" >"$work/sums.before"
mkdir "$work/pristine"
cp -a --sparse=always "$C" "$P" "$work/pristine/" || exit 1

# shellcheck source-path=SCRIPTDIR source=hostile/cases.sh
source "$here/hostile/cases.sh"

# The per-case fingerprints trust unchanged stat data; the last one hashes
# every file again.
fingerprint >"$work/sums.full"
if ! cmp -s "$work/sums.before" "$work/sums.full"; then
    modified=$((modified + 1))
    echo "FAIL (a case): an input changed without a change of its stat data; diff $work/sums.before $work/sums.full"
fi

summary="$total inputs: $clean clean (exit 0 or 2), $crashes crashes, $hangs hangs, $modified inputs modified"
((wrong)) && summary+=", $wrong wrong results"
echo "$summary"
form=full
((quick)) && form=quick
echo "($form form, $((SECONDS - started)) s, cap ${mem_mib} MiB and ${limit_s} s per case)"
if ((clean == total && modified == 0 && wrong == 0)); then
    if ((keep)); then
        echo "work folder: $work"
    else
        rm -rf "$work"
    fi
    exit 0
fi
echo "logs of each case (ID.args, ID.out, ID.err): $L"
exit 1
