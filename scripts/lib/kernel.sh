# shellcheck shell=bash
# Shared helpers for scripts/with-kvm and scripts/get-linux-guest: fetch a Debian kernel
# package (no installation: apt-get download + dpkg-deb -x), resolve module load order,
# build busybox-static initramfs images. Source this file; it defines functions only.

MICA_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # used by the sourcing scripts
MICA_BUILD=$MICA_ROOT/build

# log MSG...: progress messages go to stderr only (stdout may belong to a wrapped command).
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# die MSG...: one-line error and exit 1.
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# need TOOL "HOW TO GET IT": fail clearly when a required tool is missing.
need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found; $2"
}

# need_static_busybox: the initramfs has no libc, so /bin/busybox must be the static build.
need_static_busybox() {
    [[ -x /bin/busybox ]] || die "/bin/busybox not found; apt-get install busybox-static"
    if LC_ALL=C ldd /bin/busybox 2>/dev/null | grep -q '=>'; then
        die "/bin/busybox is dynamically linked; apt-get install busybox-static"
    fi
}

# kernel_pkg_for META: the versioned kernel package that metapackage META depends on,
# e.g. linux-image-amd64 -> linux-image-6.1.0-56-amd64. Uses local apt metadata only.
kernel_pkg_for() {
    apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'
}

# fetch_kernel META CACHE: make sure the kernel package META depends on is unpacked under
# CACHE (downloading it only when that exact package+version is not cached yet). Sets
#   KPKG  package name      KVER   kernel release (e.g. 6.1.0-56-cloud-amd64)
#   KROOT unpacked tree     KIMAGE path of the bzImage inside KROOT
# When apt metadata is unavailable, falls back to the newest cached unpacked tree.
fetch_kernel() {
    local meta=$1 cache=$2 pkg ver dir tmp deb
    need apt-get "this script needs Debian's apt (apt-get download)"
    need dpkg-deb "apt-get install dpkg"
    pkg=$(kernel_pkg_for "$meta")
    if [[ -n $pkg ]]; then
        ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/{print $2; exit}')
        dir=$cache/pkg/${pkg}_${ver}
    else
        # No apt metadata (e.g. lists cleaned): reuse whatever was unpacked before.
        dir=$(ls -d "$cache"/pkg/linux-image-*/ 2>/dev/null | sort -V | tail -n1)
        dir=${dir%/}
        [[ -n $dir && -e $dir/.done ]] ||
            die "cannot find the package '$meta' depends on; run 'apt-get update' first"
        log "apt metadata for $meta unavailable, using cached ${dir##*/}"
    fi
    if [[ ! -e $dir/.done ]]; then
        log "downloading $pkg $ver ..."
        rm -rf "$dir"
        mkdir -p "$cache/pkg"
        tmp=$(mktemp -d "$cache/pkg/.dl.XXXXXX")
        # APT::Sandbox::User=root: the temp dir is not writable by _apt; avoids a warning.
        (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver") >&2 ||
            { rm -rf "$tmp"; die "apt-get download $pkg failed; check network/apt sources (apt-get update)"; }
        deb=$(ls "$tmp"/*.deb)
        log "unpacking ${deb##*/} ..."
        mkdir -p "$tmp/root"
        dpkg-deb -x "$deb" "$tmp/root"
        rm -f "$deb"
        mv "$tmp/root" "$dir"
        rm -rf "$tmp"
        touch "$dir/.done"
    fi
    KROOT=$dir
    KPKG=${dir##*/}; KPKG=${KPKG%%_*}
    KVER=$(ls "$KROOT/lib/modules" | head -n1)
    KIMAGE=$KROOT/boot/vmlinuz-$KVER
    [[ -n $KVER && -f $KIMAGE ]] || die "unexpected layout in $KROOT (no lib/modules or boot/vmlinuz); delete it and re-run"
}

# kernel_modules MODULE...: print the .ko files (absolute paths in KROOT) needed to load the
# given modules, in insmod order, without duplicates. Built-in modules print nothing.
# The Debian package ships no modules.dep, so run depmod on the unpacked tree once.
kernel_modules() {
    need depmod "apt-get install kmod"
    need modprobe "apt-get install kmod"
    if [[ ! -e $KROOT/lib/modules/$KVER/modules.dep ]]; then
        depmod -b "$KROOT" "$KVER" || die "depmod failed on $KROOT"
    fi
    local m out
    for m in "$@"; do
        out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m") ||
            die "kernel $KVER has no module '$m'"
        printf '%s\n' "$out"
    done | awk '$1 == "insmod" && !seen[$2]++ {print $2}'
}

# cpio_gz DIR OUT: pack DIR as a gzip'd newc cpio (initramfs), files owned by root.
cpio_gz() {
    need cpio "apt-get install cpio"
    need gzip "apt-get install gzip"
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$2.tmp"
    mv "$2.tmp" "$2"
}

# quick_key FILE...: cheap fingerprint (no apt-cache/modprobe runs, which take ~1.5 s) of what
# can change a prepared cache: apt metadata (apt-get update), /bin/busybox, the given scripts.
quick_key() {
    inputs_hash "$(stat -c '%n %Y %s' /var/lib/apt/lists /bin/busybox 2>&1)" "$(cat -- "$@")"
}

# inputs_hash STRING...: fingerprint of build inputs, to rebuild outputs only when they change.
inputs_hash() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
