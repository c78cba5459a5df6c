"""Text for one-line messages and for settings shown as text (TensorBoard, checkpoints)."""

from __future__ import annotations

import re

# Library messages name a setting by its field in backticks (`style_weight`); the CLI shows the
# flag instead (--style-weight), a Python user the field.
_FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")


def printable(text: str) -> str:
    """`text` with control characters (newlines, escapes) shown escaped, so it stays one line."""
    return "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in text
    )


def one_line(error: BaseException) -> str:
    """The error's message on one printable line, or its type when it has no message."""
    return printable(str(error).strip() or type(error).__name__)


def field_to_flag(message: str) -> str:
    """Replaces each `field_name` in a library message by its flag, --field-name."""
    return _FIELD.sub(lambda match: "--" + match.group(1).replace("_", "-"), message)


def setting_text(value) -> str | bool | int | float:
    """A setting as TensorBoard and checkpoints record it: tuples comma-joined, None "none".

    Numbers, booleans and strings pass through, so that they keep their type where one counts.
    """
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value)
    return str(value)
