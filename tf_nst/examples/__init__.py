"""Paths to the example content and style images shipped with the package.

Both images are drawn by `scripts/make_examples.py` (our own procedural art, CC0), so demos, docs
and tests can run without downloading anything.
"""

from __future__ import annotations

import pathlib

from tf_nst.errors import StyleTransferError

# The images are plain package data beside this module; a regular or editable install keeps them
# as real files, so a filesystem path is all callers (PIL, the CLI) need.
_EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent


def _example_path(name: str) -> pathlib.Path:
    """Return the path of one example image, or raise if it is missing."""
    path = _EXAMPLES_DIR / name
    if not path.is_file():
        raise StyleTransferError(
            f"example image {path} is missing; regenerate it with `python scripts/make_examples.py`"
        )
    return path


def content_path() -> pathlib.Path:
    """Return the path of the example content image.

    Returns:
        Path to `content.png`: a 384x288 landscape of a riverside village with a church spire.

    Raises:
        StyleTransferError: If the file is missing from the installation.
    """
    return _example_path("content.png")


def style_path() -> pathlib.Path:
    """Return the path of the example style image.

    Returns:
        Path to `style.png`: a 320x320 painting of swirling blue and yellow brush strokes.

    Raises:
        StyleTransferError: If the file is missing from the installation.
    """
    return _example_path("style.png")
