"""tf_nst: neural style transfer for TensorFlow 2 / Keras 3, by optimisation or trained network.

The package's folders follow the pipeline: `features` (the VGG backbone), `losses`, `image`
(decoding, writing, colour), the ways to stylize, `optimize` (Gatys et al.) and `networks`
(Johnson et al.; `networks.any_style`: one network for any painting, AdaIN), the run machinery
`run` that every long job shares, and the thin `cli`.

The public names load lazily, so `import tf_nst` (and the CLI's argument checking) does not pay
for importing TensorFlow until a name that needs it is used.
"""

import importlib

__version__ = "0.3.0"

_PUBLIC = {
    # Settings and errors.
    "StyleConfig": "tf_nst.config",
    "TrainConfig": "tf_nst.config",
    "ApplyConfig": "tf_nst.config",
    "OutputOptions": "tf_nst.config",
    "StyleTransferError": "tf_nst.errors",
    # Images in and out.
    "load_image": "tf_nst.image.decoding",
    "save_image": "tf_nst.image.writing",
    # The feature extractor.
    "build_feature_extractor": "tf_nst.features.extractor",
    "export_feature_extractor": "tf_nst.features.export",
    # The optimisation.
    "Optimization": "tf_nst.optimize.optimization",
    "StepResult": "tf_nst.optimize.optimization",
    "stylize": "tf_nst.optimize.optimization",
    "OptimizationJob": "tf_nst.optimize.job",
    # Style networks.
    "NetworkTrainer": "tf_nst.networks.training",
    "TrainStepResult": "tf_nst.networks.keep_best",
    "TrainJob": "tf_nst.networks.job",
    "build_transform_network": "tf_nst.networks.transform",
    "export_stylizer": "tf_nst.networks.export",
    "load_stylizer": "tf_nst.networks.stylizer",
    "StyleNetwork": "tf_nst.networks.stylizer",
    "apply_to_files": "tf_nst.networks.apply",
    # Any-style networks (AdaIN).
    "AnyStyleConfig": "tf_nst.config",
    "AnyStyleTrainer": "tf_nst.networks.any_style.training",
    "AnyStyleJob": "tf_nst.networks.any_style.job",
    "AnyStyleNetwork": "tf_nst.networks.any_style.stylizer",
    "export_any_style": "tf_nst.networks.any_style.export",
    "export_tflite": "tf_nst.networks.any_style.export",
    # The run machinery.
    "run_job": "tf_nst.run.loop",
    "Outcome": "tf_nst.run.loop",
}

TENSORFLOW_FREE_MODULES = (
    "tf_nst",
    "tf_nst.config",
    "tf_nst.config.fields",
    "tf_nst.config.shared",
    "tf_nst.config.optimization",
    "tf_nst.config.networks",
    "tf_nst.config.outputs",
    "tf_nst.errors",
    "tf_nst.text",
    "tf_nst.precision",
    "tf_nst.memory",
    "tf_nst.sizes",
    "tf_nst.examples",
    "tf_nst.features",
    "tf_nst.features.backbones",
    "tf_nst.features.weights_file",
    "tf_nst.image",
    "tf_nst.image.decoding",
    "tf_nst.image.folders",
    "tf_nst.image.writing",
    "tf_nst.image.colors",
    "tf_nst.optimize",
    "tf_nst.optimize.scales",
    "tf_nst.optimize.memory",
    "tf_nst.optimize.job",
    "tf_nst.networks",
    "tf_nst.networks.job",
    "tf_nst.networks.architecture",
    "tf_nst.networks.tiling",
    "tf_nst.networks.memory",
    "tf_nst.networks.photos",
    "tf_nst.networks.any_style",
    "tf_nst.networks.any_style.job",
    "tf_nst.run",
    "tf_nst.run.outputs",
    "tf_nst.run.checkpoints",
    "tf_nst.run.console",
    "tf_nst.run.job",
    "tf_nst.run.loop",
    "tf_nst.cli",
    "tf_nst.cli.parser",
    "tf_nst.cli.options",
    "tf_nst.cli.commands",
)
"""The modules that import without TensorFlow (nor Keras): what the CLI needs to check its
arguments, paths, image headers, sizes and memory before TensorFlow loads. A test imports them
all in a fresh interpreter."""

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tf_nst' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_PUBLIC})
