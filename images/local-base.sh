#!/usr/bin/env bash
# Makes a Debian bookworm base image without a registry: debootstrap from this machine's own Debian mirror, then
# import it. For machines where the pinned base in versions.env cannot be pulled (CI here, air-gapped hosts).
# Usage: images/local-base.sh [IMAGE_NAME]   env: IMAGE_TOOL (podman|buildah|docker), IMAGE_TOOL_FLAGS, CACHE_DIR
set -euo pipefail

name=${1:-localhost/debian:bookworm-local}
cache=${CACHE_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/images}
tool=${IMAGE_TOOL:-podman}
read -r -a flags <<<"${IMAGE_TOOL_FLAGS:-}"
tarball="$cache/debian-bookworm-minbase.tar"

# The first Debian mirror apt uses here, so the base comes from where this machine already gets its packages.
mirror=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . >"$tarball.part"
    mv "$tarball.part" "$tarball"
fi

case "$tool" in
    buildah)
        # buildah has no import: a one-layer image from the tarball.
        ctr=$(buildah "${flags[@]}" from scratch)
        mnt=$(buildah "${flags[@]}" mount "$ctr")
        tar -C "$mnt" -xf "$tarball"
        buildah "${flags[@]}" commit --rm "$ctr" "$name" >/dev/null ;;
    *)
        "$tool" "${flags[@]}" import "$tarball" "$name" >/dev/null ;;
esac
echo "$name"
