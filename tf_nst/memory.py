"""The memory both paths plan with: what the process may still use, the runtime's base, and units.

Each path has its own model of what a run needs (`tf_nst.optimize.memory`,
`tf_nst.networks.memory`); both count the same runtime base and plan against the same reading of
what is available: the smaller of the machine's free memory (Linux MemAvailable) and what the
process's control groups still allow (a container's or a systemd unit's memory limit), so that a
run in a container is refused up front instead of being killed by the kernel half-way. No
TensorFlow here: the CLI plans before TensorFlow loads.
"""

from __future__ import annotations

import os
import pathlib

from tf_nst.features.backbones import BLOCK_DEPTHS, BLOCK_FILTERS, layer_names

RUNTIME_BASE_BYTES = 800 * 2**20
"""TensorFlow, Keras and Python themselves: the intercept of every memory fit."""

BYTES_PER_ELEMENT = {"fp32": 4, "bf16": 2, "fp16": 2}
"""Bytes of one activation of the convolutions at each precision."""

# Live copies of each activation when only the forward pass runs (the style targets): Keras keeps
# every layer's output until the call returns, and each convolution's output before its ReLU is
# alive beside it for a moment; the outputs the run reads are also cast to float32.
FORWARD_COPIES = 2.0
# XLA keeps more buffers alive than the graph executor (benchmarks/README.md, "Memory").
JIT_FACTOR = 1.8
# Bytes per pixel of resizing an image to a working size and handing it to the network (the
# float image, Lanczos' per-channel copies, the stacked and clipped results, the input tensor).
RESIZE_WORK_BYTES = 64

CGROUP_ROOT_VARIABLE = "TF_NST_CGROUP_ROOT"
"""Environment variable naming the directory the cgroup file systems are mounted under, in place
of the mounts that /proc/self/mountinfo lists: the cgroup v2 hierarchy at the directory itself,
the v1 memory hierarchy in its `memory` subfolder. For tests (a fake tree), and for a system
that mounts them elsewhere."""

DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"

# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number.
_UNLIMITED = 2**62


def available_bytes() -> int | None:
    """Returns the memory a new allocation may take, or None if it cannot be read.

    That is the smaller of Linux's MemAvailable (else the free physical pages) and the room left
    under this process's cgroup memory limits (`cgroup_available_bytes`).
    """
    readings = [
        reading for reading in (_machine_bytes(), cgroup_available_bytes()) if reading is not None
    ]
    return min(readings) if readings else None


def _machine_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return None


def cgroup_available_bytes(root: str | os.PathLike | None = None) -> int | None:
    """Returns the memory this process's cgroups still allow it, or None if none sets a limit.

    For each memory hierarchy (cgroup v2, and v1's `memory` controller) it finds the process's
    cgroup (/proc/self/cgroup) inside the mounted file system (/proc/self/mountinfo, else
    /sys/fs/cgroup) and reads that cgroup and every ancestor visible in the mount: a limit set on
    a parent (a container, a systemd slice) binds its children too. Each limit (v2 `memory.max`,
    where "max" means none; v1 `memory.limit_in_bytes`) leaves the limit minus the usage (v2
    `memory.current`, v1 `memory.usage_in_bytes`), where the usage does not count the inactive
    file cache (`memory.stat`), which the kernel reclaims before it kills anything, just as
    MemAvailable counts it as available. The smallest room wins.

    Args:
        root: Where the cgroup file systems are mounted (see `CGROUP_ROOT_VARIABLE`); None reads
            that variable, and without it the mounts of /proc/self/mountinfo.
    """
    if root is None:
        root = os.environ.get(CGROUP_ROOT_VARIABLE) or None
    rooms = []
    memberships = _memberships()
    for version, mount_point, mount_root in _memory_mounts(root):
        path = memberships.get(version, "/")
        if path == mount_root or path.startswith(mount_root.rstrip("/") + "/"):
            path = path[len(mount_root.rstrip("/")) :]
        else:
            path = "/"  # the process's cgroup is outside this mount: its root is all there is
        directory = pathlib.Path(mount_point, path.lstrip("/"))
        top = pathlib.Path(mount_point)
        while True:
            room = _room(directory, version)
            if room is not None:
                rooms.append(room)
            if directory == top or top not in directory.parents:
                break
            directory = directory.parent
    return min(rooms) if rooms else None


def _memberships() -> dict[int, str]:
    """The process's cgroup path in the v2 hierarchy (2) and in v1's memory hierarchy (1)."""
    found = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as cgroups:
            for line in cgroups:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3:
                    continue
                if parts[0] == "0" and parts[1] == "":
                    found[2] = parts[2]
                elif "memory" in parts[1].split(","):
                    found[1] = parts[2]
    except OSError:
        pass
    return found


def _memory_mounts(root) -> list[tuple[int, str, str]]:
    """(version, mount point, the mount's root within the hierarchy) of each memory hierarchy."""
    if root is not None:
        return [(2, os.fspath(root), "/"), (1, os.path.join(root, "memory"), "/")]
    mounts = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                if "-" not in fields:
                    continue
                separator = fields.index("-")
                if len(fields) < separator + 4 or separator < 5:
                    continue
                kind, options = fields[separator + 1], fields[separator + 3].split(",")
                mount_root, mount_point = _unescape(fields[3]), _unescape(fields[4])
                if kind == "cgroup2":
                    mounts.append((2, mount_point, mount_root))
                elif kind == "cgroup" and "memory" in options:
                    mounts.append((1, mount_point, mount_root))
    except OSError:
        memory = os.path.join(DEFAULT_CGROUP_ROOT, "memory")
        return [(2, DEFAULT_CGROUP_ROOT, "/"), (1, memory, "/")]
    return mounts


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, character in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, character)
    return field


def _room(directory: pathlib.Path, version: int) -> int | None:
    """The limit minus the non-reclaimable usage of one cgroup, or None without a limit."""
    limit_file, usage_file, cache_key = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    limit = _read_number(directory / limit_file)
    if limit is None or limit >= _UNLIMITED:
        return None
    usage = _read_number(directory / usage_file) or 0
    usage -= min(usage, _statistic(directory / "memory.stat", cache_key))
    return max(0, limit - usage)


def _read_number(path: pathlib.Path) -> int | None:
    """The number in a cgroup file; None for "max", a missing file or anything unreadable."""
    try:
        text = path.read_text(encoding="ascii").strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _statistic(path: pathlib.Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return max(0, int(value))
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return 0


def backbone_elements(height: int, width: int, backbone: str, layers) -> tuple[int, int]:
    """Counts (activation elements, weight elements) of one image through the VGG backbone.

    The network is cut after the deepest of `layers`.
    """
    names = layer_names(backbone)
    deepest = max(names.index(name) for name in layers)
    activation_elements = 0
    weight_elements = 0
    block_height, block_width, channels_in = height, width, 3
    index = 0
    for block, depth in enumerate(BLOCK_DEPTHS[backbone]):
        filters = BLOCK_FILTERS[block]
        for _ in range(depth):
            if index > deepest:
                break
            activation_elements += block_height * block_width * filters
            weight_elements += 9 * channels_in * filters + filters
            channels_in = filters
            index += 1
        block_height, block_width = max(1, block_height // 2), max(1, block_width // 2)
    return activation_elements, weight_elements


def forward_pass_bytes(shape: tuple[int, int], backbone: str, layers, precision: str) -> int:
    """The peak of one backbone forward pass without gradient, beyond the runtime base.

    That is what a style image's Gram targets take at its working `shape`.
    """
    height, width = shape
    activations, weights = backbone_elements(height, width, backbone, layers)
    # Outputs and intermediate tensors are float32 at fp32 and mixed at bf16/fp16; count 4 bytes
    # for all of them, as the outputs the run reads are cast to float32 anyway.
    return int(
        RESIZE_WORK_BYTES * height * width
        + FORWARD_COPIES * activations * max(4, BYTES_PER_ELEMENT.get(precision, 4))
        + weights * 4 * (1 if precision == "fp32" else 1.5)
    )


def format_bytes(count: float) -> str:
    """Formats a byte count as e.g. "1.5 GiB"."""
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GiB"
