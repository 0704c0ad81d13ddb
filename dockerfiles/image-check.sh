#!/usr/bin/env bash
# Smoke check of a built image (`make image-check` builds it first): runs it the way the Argo templates do,
# as its non-root user with a read-only root filesystem and a writable tmpfs at /tmp, without a network,
# then prints `deep-lulc --version`, the torch build inside, the demo's summary, the image size and the
# time of the last `make image` (build/image-build-time).
#
# Environment (all optional): IMAGE (default deep-lulc:cpu, deep-lulc:gpu for TORCH_FLAVOUR=cuda), CONTAINER_ENGINE, ENGINE_FLAGS, CONTAINER_FLAGS
# (dockerfiles/engine.sh).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=dockerfiles/engine.sh
source dockerfiles/engine.sh
case "${TORCH_FLAVOUR:-cpu}" in cuda) image="${IMAGE:-deep-lulc:gpu}" ;; *) image="${IMAGE:-deep-lulc:cpu}" ;; esac

in_image() {
    # No --user: the image's own USER is what is being checked.
    "$engine" "${engine_flags[@]}" run "${container_flags[@]}" --rm --read-only --tmpfs /tmp:rw,mode=1777 --network none "$@"
}

uid="$(in_image --entrypoint id "$image" -u)"
if [ "$uid" != 10001 ]; then
    echo "FAIL: the image runs as uid $uid, not the non-root user 10001" >&2
    exit 1
fi
if in_image --entrypoint touch "$image" /opt/deep-lulc/written 2>/dev/null; then
    echo "FAIL: the root filesystem was writable" >&2
    exit 1
fi

echo "== deep-lulc --version (uid $uid, read-only root, tmpfs /tmp, no network)"
in_image "$image" --version
echo "== torch inside"
in_image --entrypoint python "$image" -c \
    'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda)'
echo "== deep-lulc demo --out /tmp/demo"
start="$(date +%s)"
in_image "$image" demo --out /tmp/demo
echo "demo took $(($(date +%s) - start)) s in the container"

echo "== image"
size="$("$engine" "${engine_flags[@]}" image inspect --format '{{.Size}}' "$image")"
base="$("$engine" "${engine_flags[@]}" image inspect --format '{{index .Config.Labels "org.opencontainers.image.base.name"}}' "$image")"
python3 -c 'import sys; print(f"{sys.argv[1]}: {int(sys.argv[2]) / 1e9:.2f} GB (uncompressed), base {sys.argv[3]}")' \
    "$image" "$size" "$base"
if [ -f build/image-build-time ]; then
    IFS=$'\t' read -r seconds built_tag when flags <build/image-build-time
    echo "last make image: $built_tag in $seconds s at $when${flags:+ (flags: $flags)}"
else
    echo "no build/image-build-time: the image was not built by make image here"
fi
echo "image-check: OK"
