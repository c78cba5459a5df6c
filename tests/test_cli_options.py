"""The CLI's options come from one source: the config dataclasses' fields.

`--help`, the README's tables and the defaults must agree; every option must say what it does and
show its default exactly once. None of this imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
from conftest import REPOSITORY

from tf_nst import __version__, cli
from tf_nst.cli import options
from tf_nst.config import OutputOptions, StyleConfig


def _help(*command: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tf_nst", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "1000", "PATH": ""},
    ).stdout


def test_readme_holds_the_generated_options_tables():
    readme = (REPOSITORY / "README.md").read_text()

    for table in options.readme_tables().split("\n\n"):
        assert table in readme, f"README.md lacks (run scripts/options_table.py):\n{table}"


@pytest.mark.parametrize("command", ["stylize", "export"])
def test_every_option_has_help_and_shows_its_default_once(command):
    text = _help(command)
    options = re.findall(r"^  (--[a-z-]+)[^\n]*?  +(\S[^\n]*)$", text, re.MULTILINE)

    assert options, text
    for option, help_text in options:
        if option == "--help":
            continue
        assert len(help_text) > 10, (option, help_text)
        assert help_text.count("default") <= 1, (option, help_text)


def test_stylize_help_lists_every_config_field_with_its_dataclass_default():
    text = _help("stylize")

    for config_class in (StyleConfig, OutputOptions):
        for field in dataclasses.fields(config_class):
            flag = "--" + field.name.replace("_", "-")
            pattern = re.compile(rf"^  (-o [A-Z]+, )?{flag}[ ,]")
            (line,) = [line for line in text.splitlines() if pattern.match(line)]
            if isinstance(field.default, int | float) and not isinstance(field.default, bool):
                assert f"(default: {field.default})" in line, line


def test_a_flag_not_given_leaves_the_dataclass_default():
    arguments = cli.build_parser().parse_args(["stylize", "a.png", "b.png", "--size", "64"])

    config = options.from_arguments(StyleConfig, arguments)

    assert config == StyleConfig(size=64)
    assert options.from_arguments(OutputOptions, arguments) == OutputOptions()


def test_comma_lists_become_tuples_and_bad_numbers_name_the_flag(capsys):
    arguments = cli.build_parser().parse_args(
        ["stylize", "a.png", "b.png", "--style-layers", "block1_conv1, block2_conv1"]
    )
    assert options.from_arguments(StyleConfig, arguments).style_layers == (
        "block1_conv1",
        "block2_conv1",
    )

    status = cli.main(["stylize", "a.png", "b.png", "--style-blend", "1,x"])

    assert status == 2
    assert "--style-blend must be comma-separated numbers" in capsys.readouterr().err


def test_version_and_python_dash_m():
    for command in (["-m", "tf_nst", "--version"], ["-m", "tf_nst.cli", "--version"]):
        completed = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, check=True
        )
        assert completed.stdout.strip() == f"tf-nst {__version__}"
