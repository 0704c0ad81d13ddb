# Sourced by the image scripts: picks the container engine and the options this machine needs.
#   engine           CONTAINER_ENGINE, else docker when its daemon answers, else podman when it works
#                    (a docker CLI without a running daemon is common on development machines)
#   engine_flags     ENGINE_FLAGS (global options, e.g. "--storage-driver vfs"), else what podman needs here
#   container_flags  CONTAINER_FLAGS (options for both build and run), else what podman needs here
# The podman defaults cover restricted hosts and change nothing elsewhere:
#   - crun refuses hybrid cgroups (v1 controllers plus a cgroup2 mount that has controllers); runc copes;
#   - podman asks for more open files and processes than a caller without CAP_SYS_RESOURCE may grant, so
#     containers get the caller's own hard limits (processes bounded by kernel.pid_max).
# shellcheck shell=bash

pick_engine() {
    local candidate
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    echo "no working container engine: install podman or start the docker daemon (or set CONTAINER_ENGINE)" >&2
    return 1
}

engine="${CONTAINER_ENGINE:-$(pick_engine)}"
engine_flags=()
container_flags=()
if [ -n "${ENGINE_FLAGS+set}" ]; then
    read -r -a engine_flags <<<"$ENGINE_FLAGS" || true
elif [ "$engine" = podman ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ] &&
    command -v runc >/dev/null 2>&1; then
    engine_flags=(--runtime runc)
fi
if [ -n "${CONTAINER_FLAGS+set}" ]; then
    read -r -a container_flags <<<"$CONTAINER_FLAGS" || true
elif [ "$engine" = podman ]; then
    nproc="$(ulimit -Hu)"
    pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo "$nproc")"
    if [ "$nproc" = unlimited ] || { [ "$pid_max" != unlimited ] && [ "$nproc" -gt "$pid_max" ]; }; then
        nproc="$pid_max"
    fi
    container_flags=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
fi
