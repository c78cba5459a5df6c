"""Shared fixtures: the tiny random VGG, the shared real weights and images, CLI runner."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
# CI and developers have ../shared beside the clone; TF_NST_SHARED points elsewhere.
SHARED = pathlib.Path(os.environ.get("TF_NST_SHARED", REPOSITORY.parent / "shared"))
VGG16_WEIGHTS = SHARED / "weights" / "vgg16_imagenet_keras_convention_notop.weights.h5"
IMAGES = SHARED / "images"


@pytest.fixture(scope="session")
def vgg16_weights() -> pathlib.Path:
    """The real ImageNet VGG16 weights from ../shared, or a skip saying why."""
    if not VGG16_WEIGHTS.is_file():
        pytest.skip(f"real VGG16 weights not found at {VGG16_WEIGHTS} (set TF_NST_SHARED)")
    return VGG16_WEIGHTS


@pytest.fixture(scope="session")
def shared_images() -> pathlib.Path:
    """The folder of real test photos and paintings from ../shared, or a skip saying why."""
    if not (IMAGES / "tubingen.jpg").is_file():
        pytest.skip(f"shared test images not found in {IMAGES} (set TF_NST_SHARED)")
    return IMAGES


@pytest.fixture(scope="session")
def tiny_extractor():
    """A randomly initialised VGG19 with the real layer names and 1/16 of the filters."""
    from tf_nst.config import StyleConfig
    from tf_nst.features.extractor import build_feature_extractor

    config = StyleConfig()
    return build_feature_extractor(
        config.content_layers + config.style_layers, "vgg19", None, width_scale=1 / 16
    )


@pytest.fixture()
def random_images():
    """A content image and a style image, as float32 RGB in [0, 1]."""
    generator = np.random.default_rng(0)
    content = generator.random((24, 32, 3), dtype=np.float32)
    style = generator.random((32, 32, 3), dtype=np.float32)
    return content, style


def run_cli(*arguments, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """Runs `python -m tf_nst.cli ARGUMENTS` in a subprocess and returns the completed process."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "tf_nst.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        **kwargs,
    )
