"""The memory both paths plan with: what the machine has free, the runtime's base, and units.

Each path has its own model of what a run needs (`tf_nst.optimize.memory`,
`tf_nst.networks.memory`); both count the same runtime base and plan against the same reading of
what is available. No TensorFlow here: the CLI plans before TensorFlow loads.
"""

from __future__ import annotations

import os

RUNTIME_BASE_BYTES = 800 * 2**20
"""TensorFlow, Keras and Python themselves: the intercept of every memory fit."""


def available_bytes() -> int | None:
    """Returns the memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return None


def format_bytes(count: float) -> str:
    """Formats a byte count as e.g. "1.5 GiB"."""
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GiB"
