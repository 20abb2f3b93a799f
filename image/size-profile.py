#!/usr/bin/env python3
"""Where the bytes of the release binary go: sections, CPython against Rust, Rust by
crate, the C side by library and Python module, and the largest symbols.

    image/size-profile.py BINARY [--nm aarch64-linux-gnu-nm] [--pystatic DIR] [--top 40]

BINARY must still have its symbol table: build with CARGO_PROFILE_RELEASE_STRIP=none
(code is the same; only the symbols stay), e.g.

    CARGO_PROFILE_RELEASE_STRIP=none image/build-bundle.sh aarch64
    image/size-profile.py target-arm/aarch64-unknown-linux-gnu/release/vwed-edge

--pystatic is the folder of static archives the binary was linked against
(toolchain.sh's <cache>/<arch>/pystatic); C symbols are attributed to the archive
member that defines them (libpython's own objects, the extra modules compiled by
toolchain.sh, libz, liblzma, ...). Rust symbols go by the first segment of their
demangled path; generic code counts for the crate that instantiated it when the
path is `<core type as crate::Trait>`. What nm cannot see (anonymous constants,
string literals, unwind tables) shows as "unattributed" per section.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

STD = {"core", "alloc", "std", "hashbrown", "std_detect", "rustc_demangle", "compiler_builtins",
       "addr2line", "gimli", "miniz_oxide", "object", "adler2", "memchr", "panic_unwind"}
FILE_SECTIONS = (".text", ".rodata", ".data.rel.ro", ".data", ".eh_frame", ".eh_frame_hdr",
                 ".gcc_except_table", ".init_array", ".fini_array", ".got", ".rela.dyn", ".dynsym",
                 ".dynstr")


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def sections(binary, size_tool):
    out = {}
    for line in run(size_tool, "-A", binary).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def archive_owners(nm, pystatic):
    """symbol name -> owner, from the definitions in each static archive."""
    owners = {}
    if not pystatic:
        return owners
    for ar in sorted(os.listdir(pystatic)):
        if not ar.endswith(".a"):
            continue
        lib = ar[3:-2]
        member = None
        text = subprocess.run([nm, "--defined-only", os.path.join(pystatic, ar)],
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            if line.endswith(".o:"):
                member = line[:-3]
                continue
            parts = line.split()
            if len(parts) != 3:
                continue
            if lib == "python3.11":
                # toolchain.sh names its objects <module>__<file>.o
                owner = ("python module " + member.split("__")[0]) if "__" in member \
                    else "libpython " + member
            else:
                owner = "lib" + lib
            owners.setdefault(parts[2], owner)
    return owners


GENERIC_IMPL = re.compile(r"^<(.+?) as ([A-Za-z_][A-Za-z0-9_]*)::")


def rust_crate(name):
    if name.startswith("<"):
        m = GENERIC_IMPL.match(name)
        inner = name[1:]
        prefix = re.compile(r"^(?:&|\*|mut |const |dyn |\(|\[|'[a-z_]+ )+")
        inner = prefix.sub("", inner)
        first = re.split(r"::|<| |;|,|\)|\]", inner, maxsplit=1)[0]
        if m and first in STD and m.group(2) not in STD:
            return m.group(2)
        return first or "?"
    return name.split("::", 1)[0]


def is_rust(raw, demangled):
    return raw.startswith("_ZN") or raw.startswith("_R") or "::" in demangled


def profile(args):
    nm = args.nm
    size_tool = nm[:-2] + "size" if nm.endswith("nm") else "size"
    secs = sections(args.binary, size_tool)
    owners = archive_owners(nm, args.pystatic)
    raw_lines = run(nm, "-S", "--size-sort", args.binary).splitlines()
    dem_lines = run(nm, "-S", "--size-sort", "-C", args.binary).splitlines()
    by_kind = collections.Counter()
    rust = collections.Counter()
    c_side = collections.Counter()
    kinds_seen = collections.Counter()
    top = []
    for raw, dem in zip(raw_lines, dem_lines):
        rp, dp = raw.split(maxsplit=3), dem.split(maxsplit=3)
        if len(rp) < 4:
            continue
        size, kind, rname, dname = int(rp[1], 16), rp[2], rp[3], dp[3]
        if kind in "bBuU":
            continue  # .bss takes no file space
        if is_rust(rname, dname):
            crate = rust_crate(dname)
            rust[crate] += size
            side = "Rust"
        else:
            owner = owners.get(rname, "other C (glibc stubs, libgcc, linker)")
            c_side[owner] += size
            side = "C"
        by_kind[(side, kind.lower())] += size
        kinds_seen[kind.lower()] += size
        top.append((size, side, dname))
    return secs, by_kind, rust, c_side, top


def mb(n):
    return f"{n / 1e6:7.3f} MB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--nm", default="aarch64-linux-gnu-nm")
    ap.add_argument("--pystatic", default=None)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--crates", type=int, default=40)
    args = ap.parse_args()
    secs, by_kind, rust, c_side, top = profile(args)
    print(f"file: {os.path.getsize(args.binary)} bytes (unstripped)")
    print("\nsections (bytes in the file):")
    for s in FILE_SECTIONS:
        if s in secs:
            print(f"  {s:20} {secs[s]:>10}")
    alloc = sum(v for k, v in secs.items() if k in FILE_SECTIONS)
    print(f"  {'sum of the above':20} {alloc:>10}")
    print("\nnamed symbols by side and kind (t text, r rodata, d data):")
    for side in ("C", "Rust"):
        total = sum(v for (s, _), v in by_kind.items() if s == side)
        detail = ", ".join(f"{k} {v / 1e6:.3f}" for (s, k), v in sorted(by_kind.items()) if s == side)
        print(f"  {side:5} {mb(total)}   ({detail} MB)")
    named_text = sum(v for (_, k), v in by_kind.items() if k == "t")
    named_ro = sum(v for (_, k), v in by_kind.items() if k in "rv")
    print(f"  unattributed .text   {mb(secs.get('.text', 0) - named_text)}")
    print(f"  unattributed .rodata {mb(secs.get('.rodata', 0) - named_ro)} (string literals, anonymous constants)")
    print(f"\nRust by crate (top {args.crates}):")
    for crate, n in rust.most_common(args.crates):
        print(f"  {mb(n)}  {crate}")
    print("\nC by library / Python module (top 40):")
    for owner, n in c_side.most_common(40):
        print(f"  {mb(n)}  {owner}")
    print(f"\nlargest symbols (top {args.top}):")
    for size, side, name in sorted(top, reverse=True)[: args.top]:
        print(f"  {size:>9}  {side:4}  {name[:150]}")


if __name__ == "__main__":
    sys.exit(main())
