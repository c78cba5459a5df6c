"""Every setting of every path, with its default, validated once.

The configs are frozen dataclasses: the CLI builds one from its flags (`tf_nst.cli.options`), the
Python API takes one, and TensorBoard's hparams dashboard records `hparams()` of it. Validation
happens in `__post_init__`, so an invalid config never exists.

The modules follow the paths:

- `fields`: declaring a setting (`setting`), its choices, the order of fields, the checks;
- `shared`: `LossSettings`, declared once for every path that has a loss: the loss weights and
  layers, the style images' blend, the backbone, the precision, the seed and the time limit;
- `optimization`: `StyleConfig` (`tf-nst stylize`) and its defaults;
- `networks`: `TrainConfig` and `AnyStyleConfig` (`tf-nst train`, per-style and any-style) on
  `NetworkTrainingSettings`, the validation and distribution settings they share;
- `outputs`: `ApplyConfig`, `TfliteConfig` and `OutputOptions` (where every long job writes).

Where two paths want different defaults (the loss weights and layers), the field's default is
None and each path fills it in from its `PATH_DEFAULTS`; `shown_default` says what `--help` and
the README show. Every public name is importable from `tf_nst.config`.
"""

from __future__ import annotations

from tf_nst.config.fields import (
    APPLY_PRECISIONS,
    BACKBONES,
    DISTRIBUTE_MODES,
    INITS,
    LOSS_NORMALIZATIONS,
    LOSS_WEIGHT_FIELDS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESERVE_COLORS,
    TFLITE_QUANTIZATIONS,
    choices_of,
    own_fields_first,
    setting,
    shown_default,
)
from tf_nst.config.networks import (
    DEFAULT_ANY_STYLE_CONTENT_LAYERS,
    DEFAULT_ANY_STYLE_LOSS_WEIGHTS,
    DEFAULT_ANY_STYLE_STYLE_LAYERS,
    DEFAULT_TRAIN_CONTENT_LAYERS,
    DEFAULT_TRAIN_LOSS_WEIGHTS,
    DEFAULT_TRAIN_STYLE_LAYERS,
    AnyStyleConfig,
    NetworkTrainingSettings,
    TrainConfig,
)
from tf_nst.config.optimization import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_LOSS_WEIGHTS,
    DEFAULT_STYLE_LAYER_WEIGHTS,
    DEFAULT_STYLE_LAYERS,
    StyleConfig,
)
from tf_nst.config.outputs import ApplyConfig, OutputOptions, TfliteConfig
from tf_nst.config.shared import LossSettings

__all__ = [
    "APPLY_PRECISIONS",
    "BACKBONES",
    "DEFAULT_ANY_STYLE_CONTENT_LAYERS",
    "DEFAULT_ANY_STYLE_LOSS_WEIGHTS",
    "DEFAULT_ANY_STYLE_STYLE_LAYERS",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_LOSS_WEIGHTS",
    "DEFAULT_STYLE_LAYER_WEIGHTS",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_TRAIN_CONTENT_LAYERS",
    "DEFAULT_TRAIN_LOSS_WEIGHTS",
    "DEFAULT_TRAIN_STYLE_LAYERS",
    "DISTRIBUTE_MODES",
    "INITS",
    "LOSS_NORMALIZATIONS",
    "LOSS_WEIGHT_FIELDS",
    "OPTIMIZERS",
    "POOLINGS",
    "PRECISIONS",
    "PRESERVE_COLORS",
    "TFLITE_QUANTIZATIONS",
    "AnyStyleConfig",
    "ApplyConfig",
    "LossSettings",
    "NetworkTrainingSettings",
    "OutputOptions",
    "StyleConfig",
    "TfliteConfig",
    "TrainConfig",
    "choices_of",
    "own_fields_first",
    "setting",
    "shown_default",
]
