#!/usr/bin/env python3
"""Fingerprints every entry under some folders, one line each, sorted, so
that two runs can be compared with diff: a regular file by its SHA-256 (as
sha256sum prints it), with its size and mode; a folder, a FIFO or a symlink
by its kind, mode and target. Symlinks are not followed and FIFOs are not
opened: fingerprinting must not block or read /dev/zero.

    checksum.py [--cache FILE] ROOT...

--cache keeps each file's hash keyed by its inode, size, mtime and ctime,
and hashes again only files whose stat changed (any write changes mtime and
ctime): the runner fingerprints the corpus after every case. Without
--cache every file is hashed.

Files above BIG_FILE (the 8 GiB sparse ones) are fingerprinted by their
stat and the hash of their first and last MiB: hashing them whole would
take minutes, and a write to them changes their mtime and ctime anyway.
"""

import argparse
import hashlib
import json
import os
import stat
import sys

BIG_FILE = 64 << 20
EDGE = 1 << 20


def file_hash(path: str, st: os.stat_result) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if st.st_size <= BIG_FILE:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest()
        h.update(f.read(EDGE))
        f.seek(st.st_size - EDGE)
        h.update(f.read(EDGE))
    return f"{h.hexdigest()} (first and last MiB; mtime {st.st_mtime_ns}, ctime {st.st_ctime_ns})"


def fingerprint(path: str, cache: dict) -> str:
    """The entry's line: what it is and its content's hash, then its path."""
    st = os.lstat(path)
    mode = f"{stat.S_IMODE(st.st_mode):o}"
    if stat.S_ISLNK(st.st_mode):
        return f"link {mode} -> {os.readlink(path)}  {path}"
    if stat.S_ISDIR(st.st_mode):
        return f"dir {mode}  {path}"
    if stat.S_ISFIFO(st.st_mode):
        return f"fifo {mode}  {path}"
    if not stat.S_ISREG(st.st_mode):
        return f"special {mode}  {path}"
    key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    cached = cache.get(path)
    if cached and cached[0] == key:
        digest = cached[1]
    else:
        digest = file_hash(path, st)
        cache[path] = [key, digest]
    return f"{digest}  {path} ({st.st_size} bytes, mode {mode})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", help="a JSON file of hashes keyed by stat, read and rewritten")
    parser.add_argument("roots", nargs="+")
    args = parser.parse_args()
    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = json.load(f)
    lines = []
    for root in args.roots:
        if not os.path.lexists(root):
            lines.append(f"missing  {root}")
            continue
        lines.append(fingerprint(root, cache))
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                lines.append(fingerprint(os.path.join(folder, name), cache))
    if args.cache:
        with open(args.cache, "w") as f:
            json.dump(cache, f)
    # In path order, so that a diff of two runs reads as a list of paths.
    lines.sort(key=lambda line: line.split("  ", 1)[1])
    sys.stdout.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    main()
