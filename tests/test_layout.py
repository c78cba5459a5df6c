"""The project's layout keeps its promises: private names stay private, the TensorFlow-free modules
stay free of TensorFlow, the README's Python examples run, and every benchmark and script imports.

* Private names: an AST walk over every `.py` file of tf_nst/, benchmarks/ and scripts/ (no
  import) fails for `from X import _name` with X a project module (tf_nst, a relative import or
  a module of benchmarks/ or scripts/), for `module._name` on an imported tf_nst module, and, in
  benchmarks/ and scripts/, for reading `something._name` of any object but `self` or `cls`.
  Dunder names (`__version__`) and `__future__` are fine. Offences are listed as `path:line name`.
* `tf_nst.TENSORFLOW_FREE_MODULES`: imported together in one fresh interpreter, which must then
  hold neither tensorflow nor keras; every package (`tf_nst/**/__init__.py`) must be listed.
* README.md: each fenced ```python block runs in order, in a namespace of its own, in one
  temporary working directory holding `photo.jpg` and `painting.jpg`, with `WEIGHTS` (the real
  VGG16 weights of ../shared) and `PHOTOS` (a folder of 12 small photos) in its namespace.
* benchmarks/ and scripts/: every module imports (by file path, its folder on sys.path) without
  running its main.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
from cli_checks import smooth_picture
from conftest import REPOSITORY
from PIL import Image

import tf_nst

PACKAGE = REPOSITORY / "tf_nst"
SCRIPT_FOLDERS = ("benchmarks", "scripts")
CHECKED_FOLDERS = ("tf_nst", *SCRIPT_FOLDERS)
# Public API despite the underscore: namedtuple's methods and fields.
PUBLIC_UNDERSCORED = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})


def _python_files(*folders: str) -> list[pathlib.Path]:
    return sorted(
        path
        for folder in folders
        for path in (REPOSITORY / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# --- 1. no private name is imported from another module -----------------------------------------


def _module_name(path: pathlib.Path, root: pathlib.Path = REPOSITORY) -> str:
    """The dotted name of a file of tf_nst/ ("tf_nst.image.colors"), or its stem elsewhere."""
    relative = path.relative_to(root)
    if relative.parts[0] != "tf_nst":
        return path.stem
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package_module(dotted: str) -> bool:
    """Whether `dotted` ("tf_nst.image.colors") names a module or package of tf_nst."""
    if dotted != "tf_nst" and not dotted.startswith("tf_nst."):
        return False
    path = REPOSITORY.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, path: pathlib.Path, root: pathlib.Path) -> str | None:
    """The module an ImportFrom imports from, made absolute for relative imports in tf_nst."""
    if not node.level:
        return node.module
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base) if base else None


def _dotted(node: ast.AST) -> str | None:
    """The text ("a.b.c") of an expression made of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def private_name_offences(path: pathlib.Path, root: pathlib.Path = REPOSITORY) -> list[str]:
    """`path:line name` for every private name `path` (a file under `root`) takes from another
    module; the project modules are tf_nst and the modules of `root`'s benchmarks/ and scripts/."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    relative = path.relative_to(root)
    in_scripts = relative.parts[0] in SCRIPT_FOLDERS
    project_modules = {
        script.stem for folder in SCRIPT_FOLDERS for script in (root / folder).glob("*.py")
    }
    offences = []
    modules = {}  # local name -> the project module (tf_nst's, or of benchmarks/ or scripts/)
    other_modules = set()  # local names bound to modules from outside the project
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "tf_nst" or top in project_modules:
                    offences.extend(
                        f"{relative}:{node.lineno} {alias.name}"
                        for part in alias.name.split(".")[1:]
                        if _is_private(part)
                    )
                    modules[alias.asname or top] = alias.name if alias.asname else top
                else:
                    other_modules.add(alias.asname or top)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, path, root)
            if source == "__future__":
                continue
            top = (source or "").split(".")[0]
            project = node.level > 0 or top == "tf_nst" or top in project_modules
            for alias in node.names:
                if project and _is_private(alias.name):
                    where = f"{source}." if source else "." * node.level
                    offences.append(f"{relative}:{node.lineno} {where}{alias.name}")
                local = alias.asname or alias.name
                if source and _is_package_module(f"{source}.{alias.name}"):
                    modules[local] = f"{source}.{alias.name}"
                elif not project:
                    other_modules.add(local)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        if node.attr in PUBLIC_UNDERSCORED:
            continue
        base = _dotted(node.value)
        head = base.split(".")[0] if base else None
        if head in modules:
            # `colors._x`, `tf_nst.image.colors._x`: a private name of a tf_nst module.
            offences.append(f"{relative}:{node.lineno} {base}.{node.attr}")
        elif in_scripts and head not in ("self", "cls") and head not in other_modules:
            # A private attribute of an object, most likely one of tf_nst's.
            offences.append(f"{relative}:{node.lineno} {base or '(...)'}.{node.attr}")
    return offences


def test_no_private_name_is_imported_from_another_module():
    offences = [
        offence
        for path in _python_files(*CHECKED_FOLDERS)
        for offence in private_name_offences(path)
    ]
    assert not offences, "private names used outside their module:\n" + "\n".join(offences)


def test_the_private_name_check_finds_each_kind_of_offence(tmp_path):
    """The checker itself: each forbidden form is found, the allowed ones are not."""
    source = textwrap.dedent(
        """
        from __future__ import annotations
        import os
        import tf_nst.image.colors
        from tf_nst import __version__, config
        from tf_nst.image import colors as c
        from tf_nst.image.colors import _as_color_image
        from harness import _private_helper
        from tutorial_baseline import CONTENT_LAYERS
        import harness
        from . import _sibling

        os._exit
        c._YIQ_TO_RGB
        config._check_choices
        tf_nst.image.colors._symmetric_power
        self._fine
        point._replace(x=1)
        result._state
        harness._TABLE
        """
    )
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "example.py").write_text(source)
    (folder / "harness.py").write_text("")
    offences = private_name_offences(folder / "example.py", root=tmp_path)
    assert all(re.match(r"benchmarks/example\.py:\d+ \S+$", offence) for offence in offences)
    names = sorted(offence.split(" ", 1)[1] for offence in offences)
    assert names == sorted(
        [
            "tf_nst.image.colors._as_color_image",
            "harness._private_helper",
            "c._YIQ_TO_RGB",
            "config._check_choices",
            "tf_nst.image.colors._symmetric_power",
            "result._state",
            "harness._TABLE",
            "._sibling",
        ]
    )


def test_the_private_name_check_resolves_relative_imports_in_the_package(tmp_path):
    """In tf_nst/ a relative import is a project import; objects' private attributes are the
    package's own business there (only benchmarks/ and scripts/ are held to that)."""
    source = textwrap.dedent(
        """
        from ..errors import StyleTransferError
        from .colors import _as_color_image
        from . import colors
        from . import decoding as _decoding

        colors._YIQ_TO_RGB
        result._state
        """
    )
    folder = tmp_path / "tf_nst" / "image"
    folder.mkdir(parents=True)
    (folder / "example.py").write_text(source)
    names = sorted(
        offence.split(" ", 1)[1]
        for offence in private_name_offences(folder / "example.py", root=tmp_path)
    )
    assert names == ["colors._YIQ_TO_RGB", "tf_nst.image.colors._as_color_image"]


# --- 2. the modules that must import without TensorFlow --------------------------------------

# Imports each module named on the command line, in order, and prints the first one after which
# tensorflow or keras is loaded (with what it loaded), or null.
IMPORT_WITHOUT_TENSORFLOW = """
import importlib, json, sys

heavy = {"tensorflow", "keras"}
culprit = None
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded = sorted(heavy & {module.split(".")[0] for module in sys.modules})
    if loaded and culprit is None:
        culprit = [name, loaded]
print(json.dumps(culprit))
"""


def _tensorflow_free_modules() -> tuple[str, ...]:
    modules = getattr(tf_nst, "TENSORFLOW_FREE_MODULES", None)
    if modules is None:
        pytest.fail(
            "tf_nst.TENSORFLOW_FREE_MODULES is missing: tf_nst/__init__.py must list, as a tuple "
            "of dotted names, the modules that import without TensorFlow"
        )
    return tuple(modules)


def _packages() -> list[str]:
    return sorted(_module_name(path) for path in PACKAGE.rglob("__init__.py"))


@pytest.mark.light_subprocess
def test_the_tensorflow_free_modules_import_without_tensorflow():
    modules = _tensorflow_free_modules()
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_TENSORFLOW, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPOSITORY,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    culprit = json.loads(completed.stdout.strip().splitlines()[-1])
    assert culprit is None, (
        f"importing {culprit[0]} (after the modules before it in TENSORFLOW_FREE_MODULES) "
        f"loaded {', '.join(culprit[1])}"
    )


def test_every_package_is_among_the_tensorflow_free_modules():
    missing = sorted(set(_packages()) - set(_tensorflow_free_modules()))
    assert not missing, f"packages missing from tf_nst.TENSORFLOW_FREE_MODULES: {missing}"


# --- 3. the README's Python examples run -------------------------------------------------------

README = REPOSITORY / "README.md"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")


def readme_python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the first code line, dedented source) of every ```python block."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if not opening:
            continue
        fence = opening["fence"]
        start, body = index, []
        while index < len(lines) and not (
            lines[index].strip().startswith(fence[0] * len(fence))
            and not lines[index].strip().strip(fence[0])
        ):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        if opening["info"].lower() == "python":
            blocks.append((start + 1, textwrap.dedent("\n".join(body)) + "\n"))
    return blocks


def _readme_cases():
    blocks = readme_python_blocks(README.read_text(encoding="utf-8")) if README.is_file() else []
    if not blocks:
        return [
            pytest.param(None, None, marks=pytest.mark.skip(reason="README.md has no python block"))
        ]
    cases = []
    for line, source in blocks:
        first = next((text.strip() for text in source.splitlines() if text.strip()), "(empty)")
        cases.append(pytest.param(line, source, id=f"line {line}: {first}"))
    return cases


@pytest.fixture(scope="module")
def readme_directory(tmp_path_factory, vgg16_weights) -> pathlib.Path:
    """The working directory of every block: photo.jpg, painting.jpg, photos/ (PHOTOS) and the
    real VGG16 weights under their own file name (a symbolic link)."""
    directory = tmp_path_factory.mktemp("readme")
    Image.fromarray(smooth_picture(96, 128, seed=21)).save(directory / "photo.jpg", quality=95)
    Image.fromarray(smooth_picture(128, 128, seed=22)).save(directory / "painting.jpg", quality=95)
    photos = directory / "photos"
    photos.mkdir()
    for index in range(12):
        picture = smooth_picture(72 + 8 * (index % 3), 96, seed=30 + index)
        Image.fromarray(picture).save(photos / f"photo_{index:02d}.jpg", quality=95)
    (directory / vgg16_weights.name).symlink_to(vgg16_weights)
    return directory


def _export_extractor(directory: pathlib.Path, weights: pathlib.Path) -> None:
    """What `tf-nst export extractor/ --layers block1_conv1,block4_conv2` writes (on VGG16)."""
    from tf_nst.features.export import export_feature_extractor
    from tf_nst.features.extractor import build_feature_extractor

    layers = ("block1_conv1", "block4_conv2")
    export_feature_extractor(build_feature_extractor(layers, "vgg16", str(weights)), directory)


def _export_stylizer(directory: pathlib.Path, weights: pathlib.Path) -> None:
    """A SavedModel of the kind `tf-nst train ... -o starry_model` writes (an untrained network)."""
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.transform import build_transform_network

    metadata = {"styles": [{"name": "starry_night.jpg", "sha256": "0" * 64}], "steps": 0}
    export_stylizer(build_transform_network(width=4), directory, metadata, precisions=("fp32",))


# What the CLI examples beside the blocks write and the blocks then load: made here, once, the
# first time a block names them (quoted).
CLI_OUTPUTS = {"extractor": _export_extractor, "starry_model": _export_stylizer}


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.parametrize(("line", "source"), _readme_cases())
def test_readme_python_block_runs(line, source, readme_directory, vgg16_weights, monkeypatch):
    monkeypatch.chdir(readme_directory)
    for name, make in CLI_OUTPUTS.items():
        if re.search(rf"[\"']{name}/?[\"']", source) and not (readme_directory / name).exists():
            make(readme_directory / name, vgg16_weights)
    namespace = {
        "__name__": "__readme__",
        "WEIGHTS": str(vgg16_weights),
        "PHOTOS": str(readme_directory / "photos"),
    }
    # Padded with empty lines, so that a traceback names the README's own line numbers.
    code = compile("\n" * (line - 1) + source, str(README), "exec")
    exec(code, namespace)  # noqa: S102 - the README's own examples


def test_readme_blocks_are_found_with_their_line_numbers():
    text = "intro\n```python\nx = 1\n```\n\n  ```python\n  y = 2\n  ```\n```bash\nls\n```\n"
    assert readme_python_blocks(text) == [(3, "x = 1\n"), (7, "y = 2\n")]


# --- 4. every benchmark and script imports -----------------------------------------------------


def _script_cases():
    return [
        pytest.param(path, id=str(path.relative_to(REPOSITORY)))
        for path in _python_files(*SCRIPT_FOLDERS)
    ]


def _modules_from(folder: pathlib.Path) -> list[str]:
    """The names in sys.modules of modules loaded from the files of `folder`."""
    prefix = str(folder) + os.sep
    return [
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    ]


@pytest.mark.parametrize("path", _script_cases())
def test_benchmarks_and_scripts_import(path, monkeypatch):
    """Imported as the module of its file name, as `python PATH` would see its siblings, but not
    as __main__, so nothing runs; the folder's modules are dropped again afterwards."""
    folder = path.parent
    monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
    for name in _modules_from(folder):
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # SystemExit too: an argparse call at import
        pytest.fail(
            f"{path.relative_to(REPOSITORY)} does not import: {type(error).__name__}: {error}"
        )
    finally:
        for name in _modules_from(folder):
            sys.modules.pop(name, None)
        if sys.modules.get(path.stem) is module:
            del sys.modules[path.stem]
