#!/usr/bin/env bash
# Makes a base image for dockerfiles/Dockerfile from Debian bookworm packages, for machines that reach a
# Debian mirror but no container registry (the default base, python:3.11-slim-bookworm, lives on Docker Hub).
# debootstrap fetches the packages, the rootfs is tarred and imported as an image; nothing else is downloaded.
#
#   dockerfiles/make-base-image.sh [TAG]        (default localhost/deep-lulc-base:bookworm; needs root)
#
# Environment: CONTAINER_ENGINE, ENGINE_FLAGS, CONTAINER_FLAGS (dockerfiles/engine.sh), DEBIAN_MIRROR
# (default: the first Debian mirror in this machine's apt sources, else http://deb.debian.org/debian),
# DEBIAN_SECURITY_MIRROR.
set -euo pipefail

tag="${1:-localhost/deep-lulc-base:bookworm}"
suite=bookworm
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=dockerfiles/engine.sh
source "$here/engine.sh"

# The Dockerfile needs python (python-is-python3 gives the `python` that python:3.11-slim has), venv with
# ensurepip, CA certificates for pip and libgomp1 (LightGBM's OpenMP runtime); passwd (in minbase) gives
# groupadd/useradd.
packages=python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates,libgomp1

apt_mirror() {
    # First "URIs:"/"deb" entry of the host's apt sources that serves Debian itself (not -security).
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
        grep -Eo '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' | awk '{print $2}' | head -n 1 || true
}
mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-${mirror%/debian*}/debian-security}"

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/deep-lulc-base.XXXXXX")"
chmod 0755 "$rootfs" # mktemp makes it 0700, and it becomes the image's /
cleanup() {
    # debootstrap may leave /proc and /sys mounted inside the rootfs when it fails halfway.
    umount -l "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true
    rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

echo "debootstrap $suite from $mirror into $rootfs" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2

# Security and point-release updates, as the official images ship them.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean && rm -rf /var/lib/apt/lists/*' >&2
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/log/"*.log "$rootfs/tmp/"*

# An imported image has no configuration: give it the PATH and locale that python:3.11-slim has, or the
# Dockerfile's `ENV PATH=/opt/deep-lulc/bin:${PATH}` would end in an empty entry (the working directory).
tar --numeric-owner -C "$rootfs" -c . |
    "$engine" "${engine_flags[@]}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$tag" >&2
"$engine" "${engine_flags[@]}" run "${container_flags[@]}" --rm --network none "$tag" python --version >&2
echo "$tag"
