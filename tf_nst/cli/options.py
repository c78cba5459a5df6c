"""Command-line options generated from the config dataclasses' fields.

Every option is a field of a frozen config dataclass (`tf_nst.config`), declared with
`setting(default, help, choices=...)`. `add_fields` turns fields into argparse flags whose default
is the dataclass's own, `from_arguments` builds the dataclass back from the parsed flags, and
`markdown_options_table` writes the README's tables from the same fields, so `--help`, the README
and the defaults cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses

from tf_nst.config import (
    AnyStyleConfig,
    ApplyConfig,
    OutputOptions,
    StyleConfig,
    TrainConfig,
    own_fields_first,
    shown_default,
)
from tf_nst.errors import StyleTransferError
from tf_nst.text import printable, setting_text


def add_fields(parser, config_class, names=None, defaults=None) -> None:
    """Adds one flag per field of `config_class` (or of `names`), from the field's metadata.

    Flags default to `argparse.SUPPRESS`, so that a flag not given leaves the dataclass default in
    charge: the default exists once, in the dataclass, and `--help` shows it from there.
    """
    defaults = defaults or {}
    fields = {field.name: field for field in own_fields_first(config_class)}
    unused = getattr(config_class, "UNUSED_FIELDS", ())
    for name in names or [name for name in fields if name not in unused]:
        field = fields[name]
        default = defaults.get(name, shown_default(config_class, name))
        options = {key: value for key, value in field.metadata.items() if key != "help"}
        kind = field.type.replace(" | None", "")
        if kind == "bool":
            options.setdefault("action", argparse.BooleanOptionalAction)
        elif kind in ("int", "float"):
            options["type"] = int if kind == "int" else float
        if "choices" not in options and kind != "bool":
            options.setdefault("metavar", _metavar(name, kind))
        help_text, shown = _help_and_default(config_class, field, default)
        help_text += f" (default: {shown})"
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=help_text.replace("%", "%%"),
            **options,
        )


def _help_and_default(config_class, field, default) -> tuple[str, str]:
    """A field's help without its "(default: ...)" and the default to show.

    A default written into the help wins over the field's value, unless the class names one in
    its `SHOWN_DEFAULTS` (a path whose default differs from the shared field's).
    """
    help_text, _, written = field.metadata["help"].partition(" (default: ")
    shown = "off" if default is False else setting_text(default)
    if written and field.name not in getattr(config_class, "SHOWN_DEFAULTS", {}):
        shown = written.rstrip(")")
    return help_text, str(shown)


def _metavar(name: str, kind: str) -> str:
    if kind.startswith("tuple[float"):
        return "W,W,..."
    if kind.startswith("tuple[str"):
        return "LAYER,..."
    return {"int": "N", "float": "X"}.get(kind, name.upper())


def from_arguments(config_class, arguments: argparse.Namespace, defaults=None):
    """Builds `config_class` from the flags that were given, converting comma lists."""
    values = dict(defaults or {})
    for field in dataclasses.fields(config_class):
        if field.name not in vars(arguments):
            continue
        value = getattr(arguments, field.name)
        if field.type.startswith("tuple[") and isinstance(value, str):
            value = split_list(value, float if "float" in field.type else str, field.name)
        values[field.name] = value
    return config_class(**values)


def split_list(text: str, convert, name: str) -> tuple:
    """Splits a comma-separated flag value and converts each item (`float` or `str`).

    Raises:
        StyleTransferError: If an item does not convert, naming the field.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tuple(convert(item) for item in items)
    except ValueError:
        raise StyleTransferError(
            f"`{name}` must be comma-separated numbers, got {printable(text)!r}"
        ) from None


def markdown_options_table(config_class, defaults=None) -> str:
    """The README's table of a command's options, from the same fields as `--help`."""
    defaults = defaults or {}
    rows = ["| Option | Default | What it does |", "| --- | --- | --- |"]
    for field in own_fields_first(config_class):
        if field.name in getattr(config_class, "UNUSED_FIELDS", ()):
            continue
        default = defaults.get(field.name, shown_default(config_class, field.name))
        help_text, shown = _help_and_default(config_class, field, default)
        flag = "--" + field.name.replace("_", "-")
        rows.append(f"| `{flag}` | {shown} | {help_text}. |")
    return "\n".join(rows)


def readme_tables() -> str:
    """The README's options tables for `stylize`, `train` (both kinds) and `apply`, as markdown."""
    return "\n\n".join(
        [
            "Settings of the stylization (`StyleConfig`):",
            markdown_options_table(StyleConfig),
            "Outputs (`OutputOptions`; `-o` is `--output`):",
            markdown_options_table(OutputOptions),
            "Settings of `tf-nst train` (`TrainConfig`):",
            markdown_options_table(TrainConfig),
            "Settings of `tf-nst train --paintings` (`AnyStyleConfig`):",
            markdown_options_table(AnyStyleConfig),
            "Settings of `tf-nst apply` (`ApplyConfig`):",
            markdown_options_table(ApplyConfig),
        ]
    )
