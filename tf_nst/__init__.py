"""tf_nst: neural style transfer (Gatys et al.) for TensorFlow 2 / Keras 3.

The public names load lazily, so `import tf_nst` (and the CLI's argument checking) does not pay
for importing TensorFlow until a name that needs it is used.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "StyleConfig": "tf_nst.config",
    "StyleTransferError": "tf_nst.errors",
    "Optimization": "tf_nst.optimize.optimization",
    "StepResult": "tf_nst.optimize.optimization",
    "stylize": "tf_nst.optimize.optimization",
    "build_feature_extractor": "tf_nst.features.extractor",
    "export_feature_extractor": "tf_nst.features.export",
    "build_transform_network": "tf_nst.networks.transform",
    "export_stylizer": "tf_nst.networks.export",
    "load_stylizer": "tf_nst.networks.stylizer",
    "apply_to_files": "tf_nst.networks.apply",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tf_nst' has no attribute {name!r}")
