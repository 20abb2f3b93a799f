#!/usr/bin/env bash
# Builds the release bundle for one ARM architecture:
#
#   image/build-bundle.sh aarch64        # or armv7
#
# Result: target-arm/dist/vwed-edge-<version>-<arch>.tar.gz (path printed on the last line), holding
#   bin/vwed-edge                 stripped, CPython linked in statically, needs only glibc
#   lib/python311.zip             the stdlib (the interpreter finds it via PYTHONHOME)
#   etc/config.toml               default configuration, installed if none exists
#   boards/*.toml                 board profiles known at build time
#   systemd/vwed-edge.service     the unit
#   install.sh, uninstall.sh      installer for a controller
#   BUILDINFO                     versions, target, built-in Python modules
#
# Environment: CARGO_TARGET_DIR (default <repo>/target-arm, kept apart from host builds),
# DIST_DIR (default $CARGO_TARGET_DIR/dist), VWED_CROSS_CACHE (toolchain cache, see toolchain.sh),
# VWED_PY_OPTIONAL (extra Python module groups: "ssl sqlite cjk"), VWED_BUNDLE_* (see below).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
arch=${1:-aarch64}
log() { printf '[bundle %s] %s\n' "$arch" "$*" >&2; }

envfile=$("$here/toolchain.sh" "$arch" | tail -n1)
# shellcheck disable=SC1090
. "$envfile"
arch=$VWED_ARCH

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target-arm}
dist=${DIST_DIR:-$CARGO_TARGET_DIR/dist}
mkdir -p "$dist"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)

log "cargo build --release --target $VWED_RUST_TARGET (Debian $("$RUSTC" --version))"
start=$(date +%s)
# Size budget for the binary: 15 MB. CPython with its modules takes about 9 MB of
# it, the Rust runtime the rest, and the runtime grows. Release artefacts therefore get
# - fat LTO in one codegen unit (about -0.9 MB against the workspace's thin LTO);
# - opt-level "z" (about -1.9 MB for "s" against 3, then -1.25 MB for "z" against "s");
#   the interpreter, where scripts spend their time, is prebuilt C and unaffected, and
#   the supervisor is I/O-bound;
# - a non-PIE executable (about -1.3 MB of dynamic relocations that the bfd linker
#   cannot pack on aarch64). The main image then loads at a fixed address; the
#   stack, heap and shared libraries stay randomised. The API runs operator-supplied
#   Python by design, so the unit's sandbox, not image ASLR, is the security boundary.
# Each can be overridden: VWED_BUNDLE_LTO, VWED_BUNDLE_CODEGEN_UNITS,
# VWED_BUNDLE_OPT_LEVEL, VWED_BUNDLE_PIE=1. Host builds keep the workspace profile.
export CARGO_PROFILE_RELEASE_LTO=${VWED_BUNDLE_LTO:-fat}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${VWED_BUNDLE_CODEGEN_UNITS:-1}
export CARGO_PROFILE_RELEASE_OPT_LEVEL=${VWED_BUNDLE_OPT_LEVEL:-z}
if [ "${VWED_BUNDLE_PIE:-0}" != 1 ]; then
    flags_var=CARGO_TARGET_$(echo "$VWED_RUST_TARGET" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
    export "$flags_var=${!flags_var} -C relocation-model=static"
fi
# --locked: a cross build must never rewrite the lock file the host build owns.
(cd "$repo" && "$CARGO_BIN" build --release --locked --target "$VWED_RUST_TARGET" -p vwed-edge --bin vwed-edge)
log "cargo finished in $(($(date +%s) - start)) s"

bin=$CARGO_TARGET_DIR/$VWED_RUST_TARGET/release/vwed-edge
name=vwed-edge-$version-$VWED_ARCH
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/lib" "$root/etc" "$root/boards" "$root/systemd"

cp "$bin" "$root/bin/vwed-edge"
"$VWED_STRIP" --strip-all "$root/bin/vwed-edge"

# The board must need nothing but glibc: refuse a binary that wants anything else.
needed=$(readelf -d "$root/bin/vwed-edge" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
    case $lib in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|libgcc_s.so.*|ld-linux*) ;;
        *) log "binary needs $lib, which is not part of glibc"; exit 1 ;;
    esac
done
glibc_min=$(objdump -T "$root/bin/vwed-edge" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 || true)

host_py=$(command -v python3.11 || command -v python3)
"$host_py" "$here/mkstdlib.py" "$VWED_SYSROOT/usr/lib/python3.11" "$root/lib/python311.zip"

cp "$here/config.toml" "$root/etc/config.toml"
cp "$here/vwed-edge.service" "$root/systemd/vwed-edge.service"
cp "$here/install.sh" "$here/uninstall.sh" "$root/"
cp "$here/README.md" "$root/README.md"
chmod 755 "$root/install.sh" "$root/uninstall.sh" "$root/bin/vwed-edge"
shopt -s nullglob
profiles=("$repo"/boards/profiles/*.toml)
shopt -u nullglob
if [ ${#profiles[@]} -gt 0 ]; then cp "${profiles[@]}" "$root/boards/"; fi
log "board profiles: ${#profiles[@]}"

cat >"$root/BUILDINFO" <<EOF
name=vwed-edge
version=$version
commit=$commit
arch=$VWED_ARCH
target=$VWED_RUST_TARGET
rustc=$("$RUSTC" --version)
python=$VWED_PYVER (static)
python_builtin_extra=$VWED_PY_BUILTIN_EXTRA
needed=$needed
glibc_min=${glibc_min#GLIBC_}
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

tarball=$dist/$name.tar.gz
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tarball.tmp" "$name"
mv "$tarball.tmp" "$tarball"
log "binary $(stat -c %s "$root/bin/vwed-edge") bytes, stdlib zip $(stat -c %s "$root/lib/python311.zip") bytes, bundle $(stat -c %s "$tarball") bytes"
echo "$tarball"
