#!/usr/bin/env python3
"""Packs the target's Python stdlib into python311.zip.

zipimport never writes bytecode caches, so each worker start would recompile every
stdlib module it imports from source, which costs seconds on a small ARM core. The zip
therefore carries unchecked-hash .pyc files (valid whatever the clock or time zone
on the board) next to the .py sources that tracebacks quote.

usage: mkstdlib.py <stdlib dir> <out.zip> [--no-source]
"""
import importlib.util
import os
import py_compile
import sys
import tempfile
import zipfile

SKIP_DIRS = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
    "lib-dynload", "site-packages", "dist-packages", "__pycache__", "venv", "pydoc_data",
}
SKIP_FILES = {"turtle.py", "antigravity.py", "this.py", "pydoc.py"}


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    with_source = "--no-source" not in sys.argv
    if sys.version_info[:2] != (3, 11):
        # Bytecode is only valid for the same minor version; ship sources alone.
        print(f"mkstdlib: host Python is {sys.version_info[:2]}, not 3.11: no .pyc", file=sys.stderr)
        pyc = False
    else:
        pyc = True
    count = 0
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-3"))
            rel_root = os.path.relpath(root, src)
            for name in sorted(files):
                if not name.endswith(".py") or name in SKIP_FILES:
                    continue
                path = os.path.join(root, name)
                arc = os.path.normpath(os.path.join(rel_root, name))
                if with_source or not pyc:
                    zf.write(path, arc)
                if pyc:
                    cfile = os.path.join(tmp, "m.pyc")
                    py_compile.compile(
                        path, cfile, dfile=arc, doraise=True, optimize=0,
                        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                    )
                    zf.write(cfile, arc[:-3] + ".pyc")
                count += 1
    print(f"mkstdlib: {count} modules -> {out} ({os.path.getsize(out) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
