"""The machinery of the configs: declaring a setting, its choices, and checking values.

Every check raises `tf_nst.errors.StyleTransferError` with a message that names the setting and
what it takes, so an invalid config never exists and the CLI shows one line.
"""

from __future__ import annotations

import dataclasses
import math

from tf_nst.errors import StyleTransferError

BACKBONES = ("vgg19", "vgg16")
INITS = ("recolored", "content", "noise", "style")
POOLINGS = ("max", "avg")
OPTIMIZERS = ("adam", "lbfgs")
PRESERVE_COLORS = ("none", "luminance", "histogram")
LOSS_NORMALIZATIONS = ("normalized", "tutorial")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
APPLY_PRECISIONS = ("auto", "fp32", "bf16")
DISTRIBUTE_MODES = ("auto", "none", "mirrored", "multiworker")
LOSS_WEIGHT_FIELDS = ("content_weight", "style_weight", "tv_weight")
FLOAT32_MAX = 3.4028234663852886e38

TFLITE_QUANTIZATIONS = ("none", "fp16", "int8")


def setting(default, help: str, **options):
    """Declares a config field with its command-line help.

    The CLI builds its flags from these fields (`tf_nst.cli`), so a field's default, help and
    choices exist once, here. `options` are passed to argparse (`choices`, `metavar`).
    """
    return dataclasses.field(default=default, metadata={"help": help, **options})


def preserve_colors_setting(help: str):
    """The `preserve_colors` field of a path that can keep the photo's colours."""
    return setting("none", help, choices=PRESERVE_COLORS)


def distribute_setting():
    """The `distribute` field of both network trainings: how the step is spread over devices."""
    return setting(
        "auto",
        "auto: all GPUs when there are several; mirrored: all local devices; multiworker: the "
        "cluster in TF_CONFIG; none: one device",
        choices=DISTRIBUTE_MODES,
    )


def own_fields_first(config_class) -> list[dataclasses.Field]:
    """The fields of `config_class`, those it declares itself before those of its bases.

    That is the order of `--help`, the README's tables and the hparams dashboard: a path's own
    settings (its size, steps, ...) lead, the shared loss settings follow.
    """
    inherited = set()
    for base in config_class.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            inherited.update(field.name for field in dataclasses.fields(base))
    fields = dataclasses.fields(config_class)
    own = [field for field in fields if field.name not in inherited]
    return own + [field for field in fields if field.name in inherited]


def shown_default(config_class, name: str):
    """The default of a field as `--help` and the README show it (a path's own, if it has one).

    A text in the class's `SHOWN_DEFAULTS` comes first, then the class's `PATH_DEFAULTS`, then
    the field's own default.
    """
    shown = getattr(config_class, "SHOWN_DEFAULTS", {})
    if name in shown:
        return shown[name]
    path_defaults = getattr(config_class, "PATH_DEFAULTS", {})
    if name in path_defaults:
        return path_defaults[name]
    return {field.name: field for field in dataclasses.fields(config_class)}[name].default


def choices_of(config_class) -> dict[str, tuple]:
    """Returns each field's allowed values, for fields that have a fixed choice."""
    return {
        field.name: tuple(field.metadata["choices"])
        for field in dataclasses.fields(config_class)
        if "choices" in field.metadata
    }


def leading_first(config, first: tuple[str, ...]) -> dict:
    """Every setting of `config` by name, the names in `first` leading, then its own fields."""
    names = [field.name for field in own_fields_first(type(config))]
    ordered = [name for name in first if name in names]
    ordered += [name for name in names if name not in ordered]
    return {name: getattr(config, name) for name in ordered}


def check_run_length(config) -> None:
    """The size, steps and learning rate that each path declares with its own meaning."""
    check_positive_int("size", config.size)
    check_positive_int("steps", config.steps)
    check_positive_number("learning_rate", config.learning_rate)


def check_seed(name: str, value) -> None:
    """Checks a seed: an integer from 0 to 2**32 - 1."""
    # numpy and TensorFlow take seeds from 0 to 2**32 - 1; anything else fails deep inside them.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise StyleTransferError(
            f"`{name}` must be an integer from 0 to {2**32 - 1}, got {value!r}"
        )


def check_positive_int(name: str, value) -> None:
    """Checks a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StyleTransferError(f"`{name}` must be a positive integer, got {value!r}")


def check_positive_number(name: str, value) -> None:
    """Checks a finite positive number within float32's range."""
    if not is_finite_number(value) or value <= 0:
        raise StyleTransferError(
            f"`{name}` must be a positive number up to {FLOAT32_MAX:.4g}, got {value!r}"
        )


def check_non_negative_number(name: str, value) -> None:
    """Checks a finite number from 0 within float32's range."""
    if not is_finite_number(value) or value < 0:
        raise StyleTransferError(
            f"`{name}` must be a number from 0 to {FLOAT32_MAX:.4g}, got {value!r}"
        )


def check_blend(name: str, weights) -> None:
    """Checks blend weights: each a number from 0, and at least one above 0."""
    for weight in weights:
        check_non_negative_number(name, weight)
    if sum(weights) <= 0:
        raise StyleTransferError(f"`{name}` sums to 0: give at least one positive weight")


def is_finite_number(value) -> bool:
    """True for an int or float (not a bool) that is finite and within float32's range."""
    # Numbers beyond float32's range would turn every loss infinite once in the graph.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= FLOAT32_MAX
    )


def check_choices(config) -> None:
    """Checks every field declared with `choices` against them."""
    for field in dataclasses.fields(config):
        if "choices" in field.metadata:
            check_choice(field.name, getattr(config, field.name), tuple(field.metadata["choices"]))


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Checks that `value` is one of `choices`."""
    if value not in choices:
        raise StyleTransferError(f"`{name}` must be one of {', '.join(choices)}; got {value!r}")
