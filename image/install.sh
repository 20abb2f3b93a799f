#!/bin/sh
# Installs this VWED Edge bundle on a controller (glibc Linux; Python need not be present:
# the interpreter is inside bin/vwed-edge and its stdlib in lib/python311.zip).
#
#   sudo ./install.sh                 install or upgrade, enable and (re)start the service
#   sudo ./install.sh --no-start      install, enable, but do not start
#   ./install.sh --root DIR --no-systemd   install into DIR (image builds, tests)
#
# Layout: /opt/vwed-edge/{bin/vwed-edge,lib/python311.zip,boards/,BUILDINFO},
# /etc/vwed-edge/config.toml (kept across upgrades), /var/lib/vwed-edge (data, created
# by systemd's StateDirectory), /etc/systemd/system/vwed-edge.service.
# POSIX sh on purpose: some controller images have no bash.
set -eu

src=$(cd "$(dirname "$0")" && pwd)
root=""
start=1
systemd=1
while [ $# -gt 0 ]; do
    case $1 in
        --root) root=${2%/}; shift 2 ;;
        --no-start) start=0; shift ;;
        --no-systemd) systemd=0; start=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

prefix=$root/opt/vwed-edge
etc=$root/etc/vwed-edge
unitdir=$root/etc/systemd/system
say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
info() { sed -n "s/^$1=//p" "$src/BUILDINFO"; }

[ -f "$src/BUILDINFO" ] && [ -x "$src/bin/vwed-edge" ] || die "run me from an unpacked bundle"
[ -n "$root" ] || [ "$(id -u)" = 0 ] || die "must run as root (or give --root DIR)"

# Refuse a bundle for another CPU or an older glibc before touching anything.
arch=$(info arch)
if [ -z "$root" ]; then
    case "$arch:$(uname -m)" in
        aarch64:aarch64|aarch64:arm64|armv7:armv7l|armv7:armv8l|armv7:aarch64) ;;
        *) die "this bundle is for $arch, this machine is $(uname -m)" ;;
    esac
    need=$(info glibc_min)
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
    if [ -n "$need" ] && [ -n "$have" ]; then
        lowest=$(printf '%s\n%s\n' "$need" "$have" | sort -t. -k1,1n -k2,2n | head -n1)
        [ "$lowest" = "$need" ] || die "needs glibc >= $need, this system has $have"
    fi
fi

# A dedicated system user owns the data; scripts run with its rights only.
if [ -z "$root" ] && ! id vwed-edge >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /var/lib/vwed-edge \
            --shell /usr/sbin/nologin --comment "VWED Edge runtime" vwed-edge
    elif command -v adduser >/dev/null 2>&1; then
        adduser -S -D -H -h /var/lib/vwed-edge -s /sbin/nologin -g "VWED Edge runtime" vwed-edge 2>/dev/null \
            || adduser --system --group --no-create-home --home /var/lib/vwed-edge vwed-edge
    else
        die "no useradd/adduser to create the vwed-edge user"
    fi
    say "created system user vwed-edge"
fi
if [ -z "$root" ]; then
    # Field-bus devices (serial, GPIO, I2C, SPI) are group-owned on most images.
    for g in dialout gpio i2c spi; do
        if getent group "$g" >/dev/null 2>&1 && command -v usermod >/dev/null 2>&1; then
            usermod -a -G "$g" vwed-edge
        fi
    done
fi

mkdir -p "$prefix/bin" "$prefix/lib" "$prefix/boards" "$etc"
# New files go in under temporary names and are renamed: a running service keeps its
# old binary until the restart below, and a failed copy leaves the old install intact.
cp "$src/bin/vwed-edge" "$prefix/bin/.vwed-edge.new"
chmod 755 "$prefix/bin/.vwed-edge.new"
cp "$src/lib/python311.zip" "$prefix/lib/.python311.zip.new"
chmod 644 "$prefix/lib/.python311.zip.new"
mv -f "$prefix/lib/.python311.zip.new" "$prefix/lib/python311.zip"
mv -f "$prefix/bin/.vwed-edge.new" "$prefix/bin/vwed-edge"
rm -f "$prefix"/boards/*.toml
for f in "$src"/boards/*.toml; do
    [ -f "$f" ] && cp "$f" "$prefix/boards/"
done
cp "$src/BUILDINFO" "$prefix/BUILDINFO"
[ -f "$src/README.md" ] && cp "$src/README.md" "$prefix/README.md"
cp "$src/uninstall.sh" "$prefix/uninstall.sh"
chmod 755 "$prefix/uninstall.sh"

if [ -f "$etc/config.toml" ]; then
    if ! cmp -s "$src/etc/config.toml" "$etc/config.toml"; then
        cp "$src/etc/config.toml" "$etc/config.toml.new"
        say "kept $etc/config.toml; the bundle's default is in config.toml.new"
    fi
else
    cp "$src/etc/config.toml" "$etc/config.toml"
fi
chmod 644 "$etc/config.toml"

if [ "$systemd" = 1 ]; then
    if [ ! -d /run/systemd/system ]; then
        # Without systemd nobody creates the StateDirectory: do it here.
        mkdir -p /var/lib/vwed-edge
        chown vwed-edge:vwed-edge /var/lib/vwed-edge
        chmod 750 /var/lib/vwed-edge
        say "systemd is not running here: installed files only. Start by hand with"
        say "  runuser -u vwed-edge -- env PYTHONHOME=$prefix $prefix/bin/vwed-edge serve --config $etc/config.toml --data-dir /var/lib/vwed-edge"
        exit 0
    fi
    mkdir -p "$unitdir"
    cp "$src/systemd/vwed-edge.service" "$unitdir/vwed-edge.service"
    chmod 644 "$unitdir/vwed-edge.service"
    systemctl daemon-reload
    systemctl enable vwed-edge.service >/dev/null
    if [ "$start" = 1 ]; then
        systemctl restart vwed-edge.service
        say "vwed-edge $(info version) started; logs: journalctl -u vwed-edge -f"
    else
        say "vwed-edge $(info version) installed and enabled; start: systemctl start vwed-edge"
    fi
else
    mkdir -p "$unitdir"
    cp "$src/systemd/vwed-edge.service" "$unitdir/vwed-edge.service"
    say "vwed-edge $(info version) installed under $prefix"
fi
