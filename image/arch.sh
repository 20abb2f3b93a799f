# shellcheck shell=bash
# Names one target architecture has in each tool. Sourced: `. image/arch.sh aarch64`.
case "${1:-}" in
    aarch64|arm64)
        ARCH=aarch64 DEB_ARCH=arm64 GNU_TRIPLE=aarch64-linux-gnu RUST_TARGET=aarch64-unknown-linux-gnu
        RUST_TARGET_ENV=AARCH64_UNKNOWN_LINUX_GNU QEMU=qemu-aarch64-static POINTER_WIDTH=64
        # libmpdec's portable 64-bit configuration, as Debian's build picks for arm64
        MPDEC_CFLAGS="-DCONFIG_64=1 -DANSI=1 -DHAVE_UINT128_T=1" ;;
    armv7|armhf|arm)
        ARCH=armv7 DEB_ARCH=armhf GNU_TRIPLE=arm-linux-gnueabihf RUST_TARGET=armv7-unknown-linux-gnueabihf
        RUST_TARGET_ENV=ARMV7_UNKNOWN_LINUX_GNUEABIHF QEMU=qemu-arm-static POINTER_WIDTH=32
        MPDEC_CFLAGS="-DCONFIG_32=1 -DANSI=1" ;;
    *) echo "unknown architecture '${1:-}' (aarch64 or armv7)" >&2; exit 2 ;;
esac
CC_PKG=gcc-$GNU_TRIPLE
CC_CROSS=$GNU_TRIPLE-gcc
AR_CROSS=$GNU_TRIPLE-ar
STRIP_CROSS=$GNU_TRIPLE-strip
CARGO_LINKER_VAR=CARGO_TARGET_${RUST_TARGET_ENV}_LINKER
SYSROOT=${VWED_CROSS_CACHE:-/var/cache/vwed-cross}/$ARCH/sysroot
export ARCH DEB_ARCH GNU_TRIPLE RUST_TARGET RUST_TARGET_ENV QEMU POINTER_WIDTH MPDEC_CFLAGS CC_CROSS AR_CROSS STRIP_CROSS SYSROOT
