#!/usr/bin/env bash
# CI stage for ARM delivery: toolchain, aarch64 bundle, smoke test under qemu-user.
#
#   image/ci-arm.sh [aarch64|armv7]
#
# (a) installs the cross toolchain (idempotent; cached in $VWED_CROSS_CACHE,
#     default /var/cache/vwed-cross, and the cargo target dir, default target-arm/),
# (b) builds the bundle (target-arm/dist/vwed-edge-<version>-<arch>.tar.gz) and fails
#     when its stripped binary is over the budget of 15,500,000 bytes,
# (c) installs it into a scratch root with the bundle's own install.sh and runs
#     image/smoke.py against it under qemu-user, with a library root holding only
#     glibc, on a free loopback port and a temporary data dir,
# (d) prints the figures (sizes, RSS, start time, stage wall time), also written
#     to $CI_ARM_FIGURES (default target-arm/dist/ci-arm-<arch>.json).
# Needs root (apt-get, binfmt_misc) on the first run.
set -euo pipefail

t_start=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
arch=${1:-aarch64}
log() { printf '[ci-arm] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1; fi
}

# (a) toolchain
t0=$(date +%s)
envfile=$("$here/toolchain.sh" "$arch" | tail -n1)
# shellcheck disable=SC1090
. "$envfile"
t_toolchain=$(($(date +%s) - t0))

# (b) bundle
t0=$(date +%s)
tarball=$("$here/build-bundle.sh" "$VWED_ARCH" | tail -n1)
t_build=$(($(date +%s) - t0))

# (c) smoke test. The supervisor starts each script worker by executing its own
# binary; under qemu-user that exec only works when the kernel hands ARM ELF files
# to qemu, i.e. with a binfmt_misc entry (the library root then comes from
# QEMU_LD_PREFIX, which smoke.py sets).
qemu_arch=${VWED_QEMU#qemu-}
qemu_arch=${qemu_arch%-static}
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qemu_arch" ]; then
    conf=/usr/lib/binfmt.d/qemu-$qemu_arch.conf
    [ -f "$conf" ] || { log "no $conf from qemu-user-static"; exit 1; }
    as_root sh -c "cat '$conf' > /proc/sys/fs/binfmt_misc/register"
fi
grep -qx enabled "/proc/sys/fs/binfmt_misc/qemu-$qemu_arch" || {
    log "binfmt_misc entry qemu-$qemu_arch is disabled"; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -C "$scratch" -xzf "$tarball"
bundle_dir=$(echo "$scratch"/vwed-edge-*)

# The size budget is an architecture rule (image/README.md, "Binary size"): a bundle
# whose stripped binary exceeds it fails the stage before anything else is tested.
budget=15500000
bin_bytes=$(stat -c %s "$bundle_dir/bin/vwed-edge")
if [ "$bin_bytes" -gt "$budget" ]; then
    log "FAILED: the stripped binary is $bin_bytes bytes, $((bin_bytes - budget)) over the budget of $budget bytes"
    log "see image/README.md (Binary size) for what it is made of and image/size-profile.py to find what grew"
    exit 1
fi
log "stripped binary $bin_bytes bytes (budget $budget, $((budget - bin_bytes)) left)"
"$bundle_dir/install.sh" --root "$scratch/root" --no-systemd >&2
prefix=$scratch/root/opt/vwed-edge

# The qemu library root must hold glibc only: no libpython, no stdlib.
if find "$VWED_QEMU_ROOT" -name 'libpython*' -o -name 'python3*' | grep -q .; then
    log "$VWED_QEMU_ROOT holds Python files; the smoke test would not prove the bundle self-contained"
    exit 1
fi

figures_file=${CI_ARM_FIGURES:-${CARGO_TARGET_DIR:-$repo/target-arm}/dist/ci-arm-$VWED_ARCH.json}
t0=$(date +%s)
smoke_out=$(python3 "$here/smoke.py" --prefix "$prefix" --config "$scratch/root/etc/vwed-edge/config.toml" \
    --qemu "$VWED_QEMU" --qemu-root "$VWED_QEMU_ROOT") || { echo "$smoke_out" | tail -n1 >&2; log "smoke test FAILED"; exit 1; }
t_smoke=$(($(date +%s) - t0))

# (d) figures
zip_bytes=$(stat -c %s "$prefix/lib/python311.zip")
tar_bytes=$(stat -c %s "$tarball")
t_total=$(($(date +%s) - t_start))
python3 - "$smoke_out" "$figures_file" <<EOF
import json, sys
smoke = json.loads(sys.argv[1].strip().splitlines()[-1])
fig = {
    "arch": "$VWED_ARCH",
    "bundle": "$(basename "$tarball")",
    "binary_stripped_bytes": $bin_bytes,
    "binary_budget_bytes": $budget,
    "stdlib_zip_bytes": $zip_bytes,
    "bundle_bytes": $tar_bytes,
    "python_builtin_extra": "$VWED_PY_BUILTIN_EXTRA".split(),
    "wall_s": {"toolchain": $t_toolchain, "build": $t_build, "smoke": $t_smoke, "total": $t_total},
}
fig.update({k: v for k, v in smoke.items() if k != "ok"})
json.dump(fig, open(sys.argv[2], "w"), indent=2, ensure_ascii=False)
mb = lambda b: f"{b / 1e6:.1f} MB"
print(f"""ARM delivery figures ({fig['arch']}, {fig['bundle']})
  stripped binary        {mb($bin_bytes)}  ($bin_bytes bytes, budget $budget)
  stdlib zip             {mb($zip_bytes)}
  bundle (tar.gz)        {mb($tar_bytes)}
  exec -> /health (qemu) {smoke.get('exec_to_health_s')} s
  supervisor RSS idle    {smoke.get('supervisor_rss_idle_kb', 0) / 1024:.1f} MiB (qemu-user, includes emulator)
  worker RSS, 1 script   {smoke.get('worker_rss_kb', 0) / 1024:.1f} MiB (qemu-user)
  script start (qemu)    {smoke.get('script_start_s')} s
  sd_notify              READY={smoke.get('sd_notify_ready')} watchdog pings={smoke.get('sd_notify_watchdog_pings')}
  stdlib missing         {', '.join(smoke.get('stdlib_missing', [])) or 'none'}
  wall time              toolchain {$t_toolchain} s, build {$t_build} s, smoke {$t_smoke} s, total {$t_total} s""")
EOF
log "figures written to $figures_file"
