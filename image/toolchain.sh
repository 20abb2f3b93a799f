#!/usr/bin/env bash
# Prepares everything a cross build of vwed-edge needs, from Debian packages only:
# Debian's rustc/cargo plus the target std (rustup targets are unreachable here),
# a cross gcc, qemu-user, and a static CPython with the modules scripts rely on.
#
#   image/toolchain.sh aarch64|armv7 [--python-only]     (as root: apt-get is used)
#
# Idempotent: a second run with the same inputs only checks a stamp. Everything
# downloaded or built lands in $VWED_CROSS_CACHE (default /var/cache/vwed-cross),
# so CI machines that keep that folder skip the slow parts.
# Writes $VWED_CROSS_CACHE/<arch>/env.sh and prints its path as the last line.
#
# --python-only prepares only the cross gcc and the static CPython (no Debian
# rustc, no qemu). `cross` runs this file as its pre-build step, with the Rust
# target triple as argument, inside a Debian bookworm image: see Cross.toml.
# That is why this script depends on no other file of the repository.
set -euo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
python_only=0
arch_arg=""
for a in "$@"; do
    case $a in
        --python-only) python_only=1 ;;
        *) arch_arg=$a ;;
    esac
done
case "${arch_arg:-aarch64}" in
    aarch64|arm64|aarch64-unknown-linux-gnu)
        ARCH=aarch64 DEB_ARCH=arm64 GNU_TRIPLE=aarch64-linux-gnu RUST_TARGET=aarch64-unknown-linux-gnu
        QEMU=qemu-aarch64-static POINTER_WIDTH=64
        # libmpdec's portable 64-bit configuration, as Debian's build picks for arm64
        MPDEC_CFLAGS="-DCONFIG_64=1 -DANSI=1 -DHAVE_UINT128_T=1" ;;
    armv7|armhf|armv7-unknown-linux-gnueabihf)
        ARCH=armv7 DEB_ARCH=armhf GNU_TRIPLE=arm-linux-gnueabihf RUST_TARGET=armv7-unknown-linux-gnueabihf
        QEMU=qemu-arm-static POINTER_WIDTH=32
        MPDEC_CFLAGS="-DCONFIG_32=1 -DANSI=1" ;;
    *) echo "toolchain.sh: unknown architecture '$arch_arg' (aarch64 or armv7)" >&2; exit 2 ;;
esac
# `cross` hands over the Rust triple: it builds with its own rustc.
case "$arch_arg" in *-unknown-*) python_only=1 ;; esac
RUST_TARGET_ENV=$(echo "$RUST_TARGET" | tr 'a-z-' 'A-Z_')
CC_CROSS=$GNU_TRIPLE-gcc AR_CROSS=$GNU_TRIPLE-ar STRIP_CROSS=$GNU_TRIPLE-strip OBJCOPY_CROSS=$GNU_TRIPLE-objcopy

log() { printf '[toolchain %s] %s\n' "$ARCH" "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1; fi
}

cache=${VWED_CROSS_CACHE:-/var/cache/vwed-cross}
as_root mkdir -p "$cache"
[ -w "$cache" ] || as_root chown "$(id -u):$(id -g)" "$cache"
out=$cache/$ARCH
SYSROOT=$out/sysroot
debs=$cache/debs-$DEB_ARCH
src=$cache/src
mkdir -p "$out" "$debs" "$src"

# Python modules that Debian ships as lib-dynload shared objects and that we
# compile into the static interpreter instead. group|name|sources|extra cflags
# (sources relative to Modules/). Left out on purpose: _crypt (needs libcrypt
# beside glibc), readline/_curses/_dbm/_gdbm/nis (terminal or db libraries a
# headless controller does not have), audioop/ossaudiodev, _tkinter, _test*.
extra_modules() {
    cat <<EOF
core|_asyncio|_asynciomodule.c|
core|_contextvars|_contextvarsmodule.c|
core|_json|_json.c|
core|_queue|_queuemodule.c|
core|_typing|_typingmodule.c|
core|_zoneinfo|_zoneinfo.c|
core|_lsprof|_lsprof.c rotatingtree.c|
core|_uuid|_uuidmodule.c|-I$SYSROOT/usr/include/uuid
core|mmap|mmapmodule.c|
core|resource|resource.c|
core|termios|termios.c|
core|_posixshmem|_multiprocessing/posixshmem.c|-IMULTI
core|_multiprocessing|_multiprocessing/multiprocessing.c _multiprocessing/semaphore.c|-IMULTI
core|_multibytecodec|cjkcodecs/multibytecodec.c|
core|_codecs_cn|cjkcodecs/_codecs_cn.c|
compress|_bz2|_bz2module.c|
compress|_lzma|_lzmamodule.c|
decimal|_decimal|_decimal/_decimal.c $(echo _decimal/libmpdec/{basearith,constants,context,convolute,crt,difradix2,fnt,fourstep,io,mpalloc,mpdecimal,numbertheory,sixstep,transpose}.c)|-IMPDEC $MPDEC_CFLAGS
core|_ctypes|_ctypes/_ctypes.c _ctypes/callbacks.c _ctypes/callproc.c _ctypes/stgdict.c _ctypes/cfield.c|-DHAVE_FFI_PREP_CIF_VAR=1 -DHAVE_FFI_PREP_CLOSURE_LOC=1 -DHAVE_FFI_CLOSURE_ALLOC=1
cjk|_codecs_hk|cjkcodecs/_codecs_hk.c|
cjk|_codecs_tw|cjkcodecs/_codecs_tw.c|
cjk|_codecs_jp|cjkcodecs/_codecs_jp.c|
cjk|_codecs_kr|cjkcodecs/_codecs_kr.c|
cjk|_codecs_iso2022|cjkcodecs/_codecs_iso2022.c|
sqlite|_sqlite3|_sqlite/blob.c _sqlite/connection.c _sqlite/cursor.c _sqlite/microprotocols.c _sqlite/module.c _sqlite/prepare_protocol.c _sqlite/row.c _sqlite/statement.c _sqlite/util.c|-ISQLITE
ssl|_ssl|_ssl.c|
ssl|_hashlib|_hashopenssl.c|
EOF
}
# Optional groups cost binary size (measured on aarch64): ssl (OpenSSL) about 3.3 MB,
# sqlite about 1.1 MB, cjk (Japanese/Korean/Traditional Chinese codecs) about 0.6 MB,
# decimal (the C accelerator of `decimal`, libmpdec) about 0.25 MB: without it
# `import decimal` loads the pure-Python _pydecimal from the stdlib zip, same API,
# slower arithmetic; compress (`bz2` and `lzma`, with libbz2 and liblzma) about 0.2 MB:
# without it those two modules are missing (gzip, zlib and zipfile's deflate stay).
# GBK/GB18030 (_codecs_cn) is always in.
PY_OPTIONAL=${VWED_PY_OPTIONAL-}
selected_modules() {
    extra_modules | while IFS='|' read -r group name files extra; do
        case " core $PY_OPTIONAL " in *" $group "*) printf '%s|%s|%s\n' "$name" "$files" "$extra" ;; esac
    done
}
# Static libraries those modules pull in, in link order.
STATIC_LIBS="ssl crypto sqlite3 lzma bz2 uuid ffi expat z"

stamp_inputs() {
    dpkg-query -W -f='${Version}\n' rustc-web 2>/dev/null || true
    echo "optional=$PY_OPTIONAL python_only=$python_only"
    cat "$self"
}

if [ -f "$out/stamp" ] && [ -f "$out/env.sh" ] && [ "$(stamp_inputs | sha256sum)" = "$(cat "$out/stamp")" ] \
    && command -v "$CC_CROSS" >/dev/null \
    && { [ "$python_only" = 1 ] || { [ -d "/usr/lib/rustlib/$RUST_TARGET/lib" ] && command -v "$QEMU" >/dev/null; }; }; then
    log "up to date ($out)"
    echo "$out/env.sh"
    exit 0
fi

# --- apt: host tools ------------------------------------------------------
apt_update() {
    # Mirrors occasionally serve a foreign-architecture index mid-sync; retry a few times
    # and carry on with what we have, the version checks below catch a stale index.
    local i
    for i in 1 2 3 4 5; do
        if as_root apt-get "${apt_arch[@]}" update -qq >"$cache/apt-update.log" 2>&1; then return 0; fi
        log "apt-get update failed (attempt $i), retrying"; sleep $((i * 5))
    done
    log "apt-get update kept failing; continuing with the indexes we have"
}

# The target architecture is named on apt's command line instead of being added to
# dpkg: apt then fetches and resolves target packages for us, while the machine's own
# `apt-get update` stays untouched by a mirror that serves a broken foreign index.
apt_arch=(-o "APT::Architectures::=$(dpkg --print-architecture)" -o "APT::Architectures::=$DEB_ARCH")
# The orig tarball of Debian's python3.11 gives the module sources; it needs a deb-src line.
srclist=/etc/apt/sources.list.d/vwed-cross-src.sources
if [ ! -f "$srclist" ]; then
    as_root tee "$srclist" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    need_update=1
fi
if [ -n "${need_update:-}" ] || [ -z "$(apt-cache "${apt_arch[@]}" policy "libpython3.11-dev:$DEB_ARCH" 2>/dev/null | sed -n 's/ *Candidate: //p' | grep -v '(none)')" ]; then
    apt_update
    need_update=""
fi

if [ "$python_only" = 1 ]; then
    host_pkgs="gcc-$GNU_TRIPLE libc6-dev-$DEB_ARCH-cross"
else
    host_pkgs="rustc-web cargo-web gcc-$GNU_TRIPLE libc6-dev-$DEB_ARCH-cross qemu-user-static"
fi
missing=""
for p in $host_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    log "installing$missing"
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || { apt_update; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
fi

# --- Rust std for the target, matching Debian's rustc exactly ---------------
V=$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || echo none)
short=${V%%.0+*}
if [ "$python_only" = 0 ] && ! cmp -s "$out/std.version" <(echo "$V") || [ ! -d "/usr/lib/rustlib/$RUST_TARGET/lib" ]; then
    log "unpacking libstd-rust-web-dev:$DEB_ARCH $V"
    # The target std has target-only dependencies that apt will not co-install: unpack it.
    (cd "$debs" && apt-get "${apt_arch[@]}" download -qq "libstd-rust-web-dev:$DEB_ARCH=$V" "libstd-rust-web-$short:$DEB_ARCH=$V" 2>&1 \
        | grep -v 'unsandboxed' || true)
    if [ ! -f "$debs/libstd-rust-web-dev_${V//:/%3a}_$DEB_ARCH.deb" ] && [ "${VWED_UNVERIFIED_POOL:-0}" = 1 ]; then
        # A mirror mid-sync can serve a foreign index that fails verification while the
        # packages themselves are in the pool. Opt-in only: these files are not checked
        # against a signed index.
        log "WARNING: fetching libstd-rust-web for $DEB_ARCH straight from the security pool (unverified)"
        for n in "libstd-rust-web-dev" "libstd-rust-web-$short"; do
            curl -fsS -o "$debs/${n}_${V}_$DEB_ARCH.deb" \
                "http://deb.debian.org/debian-security/pool/updates/main/r/rustc-web/${n}_${V}_$DEB_ARCH.deb"
        done
    fi
    ls "$debs"/libstd-rust-web-dev_"${V//:/%3a}"_"$DEB_ARCH".deb >/dev/null 2>&1 || {
        log "libstd-rust-web-dev:$DEB_ARCH=$V not available; is bookworm-security in the apt sources and indexed for $DEB_ARCH?"
        log "(if the mirror serves a broken $DEB_ARCH index, VWED_UNVERIFIED_POOL=1 fetches from the pool)"
        exit 1; }
    for f in "$debs"/libstd-rust-web-*"${V//:/%3a}"_"$DEB_ARCH".deb; do as_root dpkg -x "$f" /; done
    echo "$V" >"$out/std.version"
fi

# --- target sysroot: Python and the C libraries we link statically -----------
# libbluetooth-dev: only its headers, which socketmodule.h (included by _ssl.c) wants
sys_pkgs="libpython3.11-dev libpython3.11 libpython3.11-stdlib libpython3.11-minimal libexpat1 libexpat1-dev
          zlib1g zlib1g-dev libffi8 libffi-dev libssl-dev libbz2-dev liblzma-dev uuid-dev libsqlite3-dev
          libbluetooth-dev"
log "fetching target packages into $SYSROOT"
(cd "$debs" && for p in $sys_pkgs; do ls "${p}"_*_"$DEB_ARCH".deb >/dev/null 2>&1 || echo "$p:$DEB_ARCH"; done \
    | xargs -r apt-get "${apt_arch[@]}" download -qq 2>&1 | grep -v 'unsandboxed' || true)
rm -rf "$SYSROOT"; mkdir -p "$SYSROOT"
for p in $sys_pkgs; do
    # Several versions may sit in the cache after an upgrade; take the newest.
    f=$( (ls -v "$debs"/"${p}"_*_"$DEB_ARCH".deb 2>/dev/null || true) | tail -n1)
    [ -n "$f" ] || { log "missing package $p:$DEB_ARCH"; exit 1; }
    dpkg -x "$f" "$SYSROOT"
done
pyver=$(sed -n 's/^#define PY_VERSION *"\(.*\)"/\1/p' "$SYSROOT/usr/include/python3.11/patchlevel.h")
log "target CPython $pyver"

# --- CPython sources (same upstream release as the headers) -------------------
pysrc=$src/Python-$pyver
if [ ! -f "$pysrc/Modules/_json.c" ]; then
    orig=$src/python3.11_$pyver.orig.tar.gz
    if [ ! -f "$orig" ]; then
        # Only the orig tarball matters; the Debian diff may be missing on a mirror.
        (cd "$src" && apt-get source --download-only -qq python3.11 >/dev/null 2>&1 || true)
        [ -f "$orig" ] || (cd "$src" && apt-get source --download-only -qq python3.11/bookworm >/dev/null 2>&1 || true)
    fi
    [ -f "$orig" ] || { log "could not fetch $orig (deb-src for python3.11)"; exit 1; }
    rm -rf "$pysrc.tmp"; mkdir -p "$pysrc.tmp"
    tar -xzf "$orig" -C "$pysrc.tmp" --strip-components=1
    rm -rf "$pysrc"; mv "$pysrc.tmp" "$pysrc"
fi

# --- static libpython with the extra modules built in --------------------------
st=$out/pystatic
objs=$out/pymods
rm -rf "$st" "$objs"; mkdir -p "$st" "$objs"
confdir=$(echo "$SYSROOT"/usr/lib/python3.11/config-3.11-*)
incs="-I$SYSROOT/usr/include/python3.11 -I$SYSROOT/usr/include/python3.11/internal -I$SYSROOT/usr/include"
incs="$incs -I$SYSROOT/usr/include/$GNU_TRIPLE -I$SYSROOT/usr/include/$GNU_TRIPLE/python3.11"
cflags="-O2 -fPIC -fwrapv -fno-strict-overflow -DNDEBUG -DPy_BUILD_CORE_BUILTIN $incs"
externs="" entries=""
jobs=$(nproc)
while IFS='|' read -r name files extra; do
    [ -n "$name" ] || continue
    extra=${extra//-IMULTI/-I$pysrc/Modules/_multiprocessing}
    extra=${extra//-IMPDEC/-I$pysrc/Modules/_decimal/libmpdec}
    extra=${extra//-ISQLITE/-I$pysrc/Modules/_sqlite}
    for f in $files; do
        o=$objs/${name}__$(echo "$f" | tr '/' '_' | sed 's/\.c$/.o/')
        # shellcheck disable=SC2086
        echo "$CC_CROSS $cflags $extra -c $pysrc/Modules/$f -o $o"
    done
    externs="${externs}extern PyObject* PyInit_${name}(void);\n"
    entries="${entries}    {\"${name}\", PyInit_${name}},\n"
done < <(selected_modules) >"$objs/compile.txt"
log "compiling $(wc -l <"$objs/compile.txt") C files of extra modules"
if ! xargs -d '\n' -P "$jobs" -I{} sh -c '{}' <"$objs/compile.txt" 2>"$objs/compile.err"; then
    grep -v 'warning\|note:' "$objs/compile.err" | head -40 >&2; exit 1
fi

# The interpreter finds built-in modules through the _PyImport_Inittab table in
# config.o; regenerate it from Debian's config.c with our modules appended.
sed -e "s|/\* -- ADDMODULE MARKER 1 -- \*/|/* -- ADDMODULE MARKER 1 -- */\n${externs}|" \
    -e "s|/\* -- ADDMODULE MARKER 2 -- \*/|${entries}/* -- ADDMODULE MARKER 2 -- */|" \
    "$confdir/config.c" >"$objs/config.c"
# shellcheck disable=SC2086
$CC_CROSS $cflags -DPy_BUILD_CORE -c "$objs/config.c" -o "$objs/config.o"

# Only the -pic archive links into a PIE, and it must sit in a folder without
# Debian's non-PIC libpython3.11.a, hence a folder of its own.
cp "$confdir/libpython3.11-pic.a" "$st/libpython3.11.a"
(cd "$objs" && "$AR_CROSS" rcs "$st/libpython3.11.a" config.o ./*__*.o)
for l in $STATIC_LIBS; do
    a=$SYSROOT/usr/lib/$GNU_TRIPLE/lib$l.a
    [ -f "$a" ] || { log "missing static lib$l.a"; exit 1; }
    cp "$a" "$st/"
done
# The C code's unwind tables (.eh_frame, about 0.5 MB of the aarch64 binary) go: nothing
# unwinds through these frames. Rust panics are caught at pyo3's boundary before they
# reach CPython (and a panic leaving an extern "C" function aborts), Python exceptions
# are not unwinding. The one unwind that crosses CPython is the forced one of
# pthread_exit, which Python < 3.14 calls on a thread that wants the GIL while the
# interpreter finalizes: it now ends at the first frame without a table and glibc jumps
# to the thread's start (documented glibc behaviour), skipping the destructors of any
# frames below; the worker's own code runs Python on its main thread only, so this
# concerns threads a script started, at process exit. What else is lost: a debugger on
# the board walks C stacks by prologue analysis. libffi keeps its tables (ffi_call's
# assembly); OpenSSL, built only with the ssl group, is left as Debian built it.
for l in python3.11 expat z uuid bz2 lzma sqlite3; do
    "$OBJCOPY_CROSS" --remove-section=.eh_frame "$st/lib$l.a"
done

cat >"$out/pyo3.cfg" <<EOF
implementation=CPython
version=3.11
shared=false
abi3=false
lib_name=python3.11
lib_dir=$st
pointer_width=$POINTER_WIDTH
build_flags=
suppress_build_script_link_lines=false
EOF

link_args="-L $st -C link-arg=-Wl,-Bstatic"
for l in $STATIC_LIBS; do link_args="$link_args -C link-arg=-l$l"; done
# Rust links with -nodefaultlibs; OpenSSL is built with outline atomics whose helpers
# live in the static libgcc only. The trailing -lc brings libc_nonshared (atexit) for
# archives that come after the libc Rust links.
link_args="$link_args -C link-arg=-lgcc"
link_args="$link_args -C link-arg=-Wl,-Bdynamic -C link-arg=-lm -C link-arg=-ldl -C link-arg=-lpthread -C link-arg=-lutil -C link-arg=-lc"

cat >"$out/env.sh" <<EOF
# generated by image/toolchain.sh; sourced by image/build-bundle.sh
export VWED_ARCH=$ARCH
export VWED_DEB_ARCH=$DEB_ARCH
export VWED_RUST_TARGET=$RUST_TARGET
export VWED_SYSROOT=$SYSROOT
export VWED_QEMU=$QEMU
export VWED_QEMU_ROOT=/usr/$GNU_TRIPLE
export VWED_STRIP=$STRIP_CROSS
export VWED_PYVER=$pyver
export VWED_PY_OPTIONAL="$PY_OPTIONAL"
export VWED_PY_BUILTIN_EXTRA="$(selected_modules | cut -d'|' -f1 | tr '\n' ' ')"
$([ "$python_only" = 1 ] || printf 'export RUSTC=/usr/bin/rustc\nexport RUSTDOC=/usr/bin/rustdoc\nexport CARGO_BIN=/usr/bin/cargo')
export CARGO_TARGET_${RUST_TARGET_ENV}_LINKER=$CC_CROSS
export PYO3_CONFIG_FILE=$out/pyo3.cfg
export PYO3_CROSS_LIB_DIR=$st
export CARGO_TARGET_${RUST_TARGET_ENV}_RUSTFLAGS="$link_args"
EOF
stamp_inputs | sha256sum >"$out/stamp"
log "ready: $out/env.sh"
echo "$out/env.sh"
