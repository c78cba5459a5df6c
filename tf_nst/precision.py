"""Compute precision, for both paths: the backbone and the style networks share one choice.

"auto" becomes bf16 where the hardware computes bfloat16 natively and fp32 elsewhere. The module
imports TensorFlow only when it must look at the GPUs, so the CLI can name the choices before
TensorFlow loads.
"""

from __future__ import annotations

# Precision name to the Keras dtype policy of the convolutions.
PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def resolve_precision(precision: str) -> str:
    """Turns "auto" into "bf16" or "fp32" by the hardware; other values pass through."""
    return preferred_precision() if precision == "auto" else precision


def preferred_precision() -> str:
    """Returns "bf16" where the hardware computes bfloat16 natively, else "fp32".

    That is an Ampere-or-newer GPU (compute capability 8.0+) on every visible GPU, or, with no
    GPU, a CPU with the AVX512-BF16 or AMX-BF16 instructions, which oneDNN uses for bfloat16
    convolutions at about half the time of fp32 (benchmarks/README.md, "Precision").
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in gpus
    ]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = set(cpuinfo.read().split())
    except OSError:
        flags = set()
    return precision_for_hardware(capabilities, flags)


def precision_for_hardware(gpu_capabilities, cpu_flags) -> str:
    """The choice of `preferred_precision`, from the GPUs' compute capabilities and CPU flags."""
    if gpu_capabilities:
        return "bf16" if all(tuple(c) >= (8, 0) for c in gpu_capabilities) else "fp32"
    return "bf16" if {"avx512_bf16", "amx_bf16"} & set(cpu_flags) else "fp32"
