#!/usr/bin/env bash
# Builds dockerfiles/Dockerfile from the repository root with docker or podman (`make image` runs this) and
# records the build's wall time in build/image-build-time. Where the defaults cannot be reached it says so
# and takes what can:
#   - the base image: python:3.11-slim-bookworm when the engine has it or can pull it, else a base made from
#     Debian packages by dockerfiles/make-base-image.sh (made once, kept as localhost/deep-lulc-base:bookworm);
#   - the CPU image's torch/torchvision: PyTorch's CPU index when it answers, else PyPI's locked pair (a CUDA
#     build, several GB larger, that runs on CPU as well), never a pair that does not match.
#
# Environment (all optional): IMAGE (tag), TORCH_FLAVOUR (cpu|cuda), BASE_IMAGE, TORCH_CPU_INDEX (a URL,
# or "pypi" for PyPI's pair), PIP_INDEX_URL (a PyPI mirror), PIP_CA_BUNDLE (CA bundle pip trusts during the
# build; default this machine's /etc/ssl/certs/ca-certificates.crt, so TLS-intercepting proxies work; never
# stored in the image), IMAGE_BUILD_FLAGS (extra build options, e.g. "--no-cache"), and CONTAINER_ENGINE,
# ENGINE_FLAGS, CONTAINER_FLAGS (dockerfiles/engine.sh).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=dockerfiles/engine.sh
source dockerfiles/engine.sh
flavour="${TORCH_FLAVOUR:-cpu}"
case "$flavour" in
    cpu) image="${IMAGE:-deep-lulc:cpu}" ;;
    cuda) image="${IMAGE:-deep-lulc:gpu}" ;;
    *) echo "TORCH_FLAVOUR must be cpu or cuda, not '$flavour'" >&2; exit 2 ;;
esac
# Host networking: RUN steps reach the package registries exactly as this machine does (sandboxes and CI
# runners often have no working bridge network for containers).
read -r -a build_flags <<<"${IMAGE_BUILD_FLAGS:-} --network host" || true

have_image() { "$engine" "${engine_flags[@]}" image inspect "$1" >/dev/null 2>&1; }

base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
    base=python:3.11-slim-bookworm
    if ! have_image "$base" && ! "$engine" "${engine_flags[@]}" pull "docker.io/library/$base" >/dev/null 2>&1; then
        base=localhost/deep-lulc-base:bookworm
        echo "note: python:3.11-slim-bookworm cannot be pulled here; using $base (Debian bookworm's python3.11)" >&2
        if ! have_image "$base"; then
            CONTAINER_ENGINE="$engine" dockerfiles/make-base-image.sh "$base" >/dev/null
        fi
    fi
fi
relax=""
if [ "$base" = localhost/deep-lulc-base:bookworm ]; then
    relax="$(grep -v '^#' dockerfiles/relax-pins-bookworm.txt | tr '\n' ' ')"
    echo "note: Debian's Python 3.11.2 cannot install the lock's pins of: $relax(dockerfiles/relax-pins-bookworm.txt)" >&2
fi

cpu_index="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
if [ "$cpu_index" = pypi ]; then
    cpu_index=""
elif [ "$flavour" = cpu ] && [ -z "${TORCH_CPU_INDEX:-}" ] &&
    ! python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)' "$cpu_index/torch/" 2>/dev/null; then
    echo "note: $cpu_index does not answer; the CPU image takes PyPI's locked torch/torchvision (CUDA build)" >&2
    cpu_index=""
fi

args=(--build-arg "BASE_IMAGE=$base" --build-arg "TORCH_FLAVOUR=$flavour" --build-arg "TORCH_CPU_INDEX=$cpu_index"
    --build-arg "RELAX_PINS=$relax")
ca="${PIP_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
if [ -n "$ca" ] && [ -f "$ca" ]; then
    args+=(--secret "id=pip-ca,src=$ca")
fi
if [ -n "${PIP_INDEX_URL:-}" ]; then
    args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
fi

mkdir -p build
echo "building $image with $engine: base $base, torch ${cpu_index:-from PyPI} ($flavour)" >&2
start="$(date +%s)"
"$engine" "${engine_flags[@]}" build "${container_flags[@]}" "${build_flags[@]}" "${args[@]}" -f dockerfiles/Dockerfile -t "$image" .
seconds="$(($(date +%s) - start))"
printf '%s\t%s\t%s\t%s\n' "$seconds" "$image" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${IMAGE_BUILD_FLAGS:-}" \
    >build/image-build-time
echo "built $image in ${seconds} s" >&2
