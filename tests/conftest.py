"""Shared fixtures (the tiny random VGG, the shared real weights and images, the CLI runner) and
the tiers of the test suite.

Tiers:

* fast (no mark): in-process, on the tiny random VGG-shaped model (`tiny_extractor`) or none, no
  subprocess, no real weights, each test well under ~5 s. `python -m pytest -m "not slow"` runs
  all of them in about a minute on a 2-core machine; run it before every commit.
* `slow`: everything else: any test that starts a process (`subprocess.run`/`Popen`, `run_cli`,
  `python -m ...`, `sys.executable`), that uses the real VGG16 weights, or that takes more than
  ~5 s (including its fixtures' setup). `python -m pytest` runs both tiers.
* `real_weights` (always also `slow`): needs ../shared (`TF_NST_SHARED`): the real VGG16 weights
  (`vgg16_weights`) or the shared photos (`shared_images`); skipped with a reason when absent.
  `-m "not real_weights"` runs what a machine without ../shared can run.

The marks are given by `pytest_collection_modifyitems` below, so a new test cannot forget them:
it marks `real_weights` (and `slow`) every test that uses the `vgg16_weights` or `shared_images`
fixture (directly or through another fixture), and `slow` every test whose own code, or a
fixture's, or a helper function they call in the test module or in conftest/cli_checks, starts a
process (see `_starts_a_process`), or that uses a fixture decorated with `slow_setup` (one whose
setup takes more than ~5 s, e.g. training or exporting a network). Explicit `slow` marks remain
for what the hook cannot see: a test slow by its own amount of work, or one that reaches the
weights through `request.getfixturevalue`. The one exception is `light_subprocess`: a test that
starts a single short interpreter which never imports TensorFlow (well under a second) may carry
it to stay in the fast tier.
"""

from __future__ import annotations

import ast
import functools
import inspect
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


# --- tiers: the marks given at collection ------------------------------------------------------

# Fixtures that give a test ../shared: it is `real_weights` (and so `slow`).
SHARED_FIXTURES = frozenset({"vgg16_weights", "shared_images"})
# Names that, imported from conftest, give a function ../shared.
_SHARED_NAMES = frozenset({"SHARED", "VGG16_WEIGHTS", "IMAGES", "shared_photos"})
# `module.function` calls that start a process.
_PROCESS_CALLS = {
    "subprocess": {"run", "Popen", "call", "check_call", "check_output", "getoutput"},
    "os": {"system", "popen", "fork", "forkpty", "spawnv", "spawnl", "execv", "execl"},
    "multiprocessing": {"Process", "Pool", "get_context"},
    "pty": {"spawn", "fork"},
}
# Helpers of conftest and cli_checks are found by the same analysis; their modules:
_HELPER_MODULES = ("conftest", "cli_checks")
_TESTS = pathlib.Path(__file__).resolve().parent


@functools.cache
def _module_analysis(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """(functions that start a process, functions that reach ../shared) of one module, by name.

    A function starts a process if its body (nested functions included) calls one of
    `_PROCESS_CALLS` (as `subprocess.run(...)` or after `from subprocess import run`), reads
    `sys.executable`, or names a function of the same module, or one imported from conftest or
    cli_checks, that starts a process. Likewise for the names of `_SHARED_NAMES`.
    """
    tree = ast.parse(pathlib.Path(path).read_text(encoding="utf-8"), path)
    starters = {  # the local names of process-starting functions imported by name
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module in _PROCESS_CALLS
        for alias in node.names
        if alias.name in _PROCESS_CALLS[node.module]
    }
    process_names, shared_names = set(), set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in _HELPER_MODULES:
            helper = _TESTS / f"{node.module}.py"
            helper_process, helper_shared = (
                _module_analysis(str(helper)) if str(helper) != path else (frozenset(), frozenset())
            )
            for alias in node.names:
                local = alias.asname or alias.name
                if alias.name in helper_process:
                    process_names.add(local)
                if alias.name in helper_shared or (
                    node.module == "conftest" and alias.name in _SHARED_NAMES
                ):
                    shared_names.add(local)
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    direct = {name: _starts_a_process(node, starters) for name, node in functions.items()}
    used = {
        name: {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}
        for name, node in functions.items()
    }
    process = {name for name, starts in direct.items() if starts} | process_names
    shared = set(shared_names)
    changed = True
    while changed:  # to the fixed point: a helper of a helper of ...
        changed = False
        for name in functions:
            if name not in process and used[name] & process:
                process.add(name)
                changed = True
            if name not in shared and used[name] & shared:
                shared.add(name)
                changed = True
    return frozenset(process & functions.keys() | process_names), frozenset(
        shared & functions.keys() | shared_names
    )


def _starts_a_process(function: ast.AST, starters: set[str]) -> bool:
    """Whether `function`'s own code calls a process-starting function or reads sys.executable."""
    for node in ast.walk(function):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "sys" and node.attr == "executable":
                return True
            if node.attr in _PROCESS_CALLS.get(node.value.id, ()):
                return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in starters
        ):
            return True
    return False


def _functions_of(item: pytest.Item):
    """The test function and every fixture function it uses (its whole fixture closure)."""
    yield item.obj
    fixture_info = getattr(item, "_fixtureinfo", None)
    for definitions in getattr(fixture_info, "name2fixturedefs", {}).values():
        for definition in definitions:
            yield definition.func


def shared_photos(count: int, long_side: int) -> list[np.ndarray]:
    """The first `count` photos of ../shared/photos at `long_side`; skips when it is absent."""
    from tf_nst.image import decoding, folders

    folder = SHARED / "photos"
    if not folder.is_dir():
        pytest.skip(f"shared photos not found in {folder} (set TF_NST_SHARED)")
    paths = folders.find_images(folder)[:count]
    return [decoding.load_image(path, long_side=long_side) for path in paths]


def square(image: np.ndarray, side: int) -> np.ndarray:
    """`image` resized to a `[1, side, side, 3]` batch in [0, 1] (antialiased)."""
    import tensorflow as tf

    return tf.image.resize(image[None], [side, side], antialias=True).numpy().clip(0, 1)


def slow_setup(function):
    """Marks a fixture function whose setup takes more than ~5 s (it trains, or exports a
    network): the hook marks every test that uses it `slow`. Put it under `@pytest.fixture`."""
    function.slow_setup = True
    return function


def _has_slow_setup(item: pytest.Item) -> bool:
    return any(
        getattr(inspect.unwrap(function), "slow_setup", False) for function in _functions_of(item)
    )


def _uses(item: pytest.Item) -> tuple[bool, bool]:
    """(starts a process, reaches ../shared) for the test or any of its fixtures."""
    process = shared = False
    for function in _functions_of(item):
        function = inspect.unwrap(function)
        try:
            path = inspect.getsourcefile(function)
        except TypeError:  # a builtin or a C function: pytest's own fixtures
            continue
        if path is None or not path.endswith(".py") or not path.startswith(str(_TESTS)):
            continue
        process_names, shared_names = _module_analysis(path)
        process |= function.__name__ in process_names
        shared |= function.__name__ in shared_names
    return process, shared


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marks
def pytest_collection_modifyitems(config, items):
    """Marks the tiers (see the module docstring): `real_weights` and `slow` by fixture and by
    helper use; `slow` for every test that starts a process or uses a `slow_setup` fixture."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        starts_a_process, reaches_shared = _uses(item)
        if SHARED_FIXTURES & set(item.fixturenames) or reaches_shared:
            item.add_marker(pytest.mark.real_weights)
        light = item.get_closest_marker("light_subprocess") is not None
        if (
            item.get_closest_marker("real_weights")
            or (starts_a_process and not light)
            or _has_slow_setup(item)
        ):
            item.add_marker(pytest.mark.slow)
