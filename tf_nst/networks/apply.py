"""`tf-nst apply`: stylize image files and folders with a trained network, never overwriting.

An image too large for the memory available is stylized in tiles (`tf_nst.networks.tiling`), as
`tf_nst.networks.memory` decides.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from tf_nst.config import ApplyConfig
from tf_nst.errors import StyleTransferError
from tf_nst.image import colors, decoding, folders, writing
from tf_nst.memory import available_bytes
from tf_nst.networks.memory import MEMORY_FRACTION, estimate_apply_bytes, plan_photo
from tf_nst.networks.stylizer import StyleNetwork, load_stylizer
from tf_nst.text import printable


@dataclasses.dataclass
class ApplyResult:
    """What `apply_to_files` did.

    Attributes:
        written: (input, output) paths of every image stylized and saved.
        failed: (input, one-line reason) of every image skipped.
        seconds: Wall time of the whole call.
    """

    written: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every input was stylized."""
        return not self.failed

    @property
    def exit_status(self) -> int:
        """0 when every input was stylized, 1 when some failed (the CLI's exit status)."""
        return 0 if self.ok else 1


def list_inputs(inputs: Sequence[str | os.PathLike]) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Expands files and folders into (input file, output path relative to the output folder).

    Folders are searched recursively for `decoding.IMAGE_EXTENSIONS` (hidden entries skipped)
    and keep their inner structure under a subfolder named after the folder; files keep their
    own name.

    Raises:
        StyleTransferError: If an input does not exist or a folder holds no decoding.
    """
    found = []
    for entry in map(pathlib.Path, inputs):
        label = printable(os.fspath(entry))
        if entry.is_dir():
            files = folders.find_images(entry)
            if not files:
                raise StyleTransferError(
                    f"input folder {label} holds no images "
                    f"({', '.join(decoding.IMAGE_EXTENSIONS)}): pass a folder of images"
                )
            base = pathlib.Path(entry.resolve().name)
            found.extend((file, base / file.relative_to(entry)) for file in files)
        elif entry.exists():
            found.append((entry, pathlib.Path(entry.name)))
        else:
            raise StyleTransferError(f"input {label} does not exist: check the path")
    # The same file named twice (or inside a folder also given) is stylized once.
    unique = {}
    for source, relative in found:
        unique.setdefault(os.path.realpath(source), (source, relative))
    return list(unique.values())


def _output_name(relative: pathlib.Path) -> pathlib.Path:
    # Keep a writable format's extension; others (GIF, AVIF) become PNG.
    if relative.suffix.lower() in writing.OUTPUT_EXTENSIONS:
        return relative
    return relative.with_suffix(".png")


def plan_outputs(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike
) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Pairs every input image with its output path, and checks that none overwrites an input.

    One input file gives `output` as a file, unless `output` is a folder or ends with "/";
    anything else (several inputs, or a folder) makes `output` a folder, created if missing,
    holding one file per input named after it.

    Raises:
        StyleTransferError: If an input is missing, two inputs would write the same output, an
            output would overwrite an input, or the output cannot be written.
    """
    listed = list_inputs(inputs)
    # A trailing slash says "a folder", as it does to cp and rsync, whether or not it exists yet.
    folder_named = os.fspath(output).endswith(("/", os.sep))
    output = pathlib.Path(output)
    one_file = len(inputs) == 1 and len(listed) == 1 and not pathlib.Path(inputs[0]).is_dir()
    if one_file and not folder_named:
        if output.is_dir():
            output = output / _output_name(listed[0][1])
        # The extension, the parent folder and the inputs are checked before anything runs.
        writing.check_output_path(output, [listed[0][0]])
        pairs = [(listed[0][0], output)]
    else:
        if output.exists() and not output.is_dir():
            label = printable(os.fspath(output))
            raise StyleTransferError(
                f"output {label}/ names a folder, but {label} is a file: pass a folder with -o"
                if one_file
                else f"output {label} is a file, but several images need an output folder: "
                "pass a folder with -o"
            )
        pairs = [(source, output / _output_name(relative)) for source, relative in listed]
    seen = {}
    for source, target in pairs:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise StyleTransferError(
                f"{printable(str(seen[key]))} and {printable(str(source))} would "
                f"both be written to {printable(str(target))}: rename one or apply them "
                "separately"
            )
        seen[key] = source
    all_inputs = [source for source, _ in listed]
    for _, target in pairs:
        for source in all_inputs:
            if writing.same_file(target, source):
                raise StyleTransferError(
                    f"the output {printable(str(target))} would overwrite the input "
                    f"{printable(str(source))}: choose another output path"
                )
    return pairs


def apply_to_files(
    stylizer: StyleNetwork | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: ApplyConfig | None = None,
    progress: Callable[[int, int, str, str | None], None] | None = None,
) -> ApplyResult:
    """Stylizes image files and folders with a trained stylizer (`tf-nst apply`).

    `inputs` are image files and folders (searched recursively for `decoding.IMAGE_EXTENSIONS`).
    `output` (`-o OUT`) is a file for one input file, else a folder (created if missing) that
    gets one image per input, named after it (folders keep their structure in a subfolder).
    Outputs are written atomically, and an output that would overwrite an input is refused
    before anything runs. `config` holds the rest (`ApplyConfig`: size, batch size, colours,
    precision).

    Each image is decoded reduced to `config.size` and planned from its header first
    (`tf_nst.networks.memory.plan_photo`); one too large for the memory available is stylized in
    tiles (`StyleNetwork.stylize_image`), and one that cannot fit even so is refused. A file
    that cannot be read, planned or written is reported in the result and skipped; the others go
    on. A single input that cannot be read or planned stops the run instead.

    Args:
        stylizer: A `StyleNetwork`, used at the precision it was loaded with, or the path of one,
            loaded at `config.precision`.
        inputs: See above.
        output: See above.
        config: The settings; defaults if None.
        progress: Called after each input as `progress(done, total, input, output or None)`.

    Returns:
        An `ApplyResult`; its `exit_status` is 1 if any input failed.

    Raises:
        StyleTransferError: For a problem that stops the whole run (a missing input, a stylizer
            that does not load, an output that would overwrite an input, an output folder that
            cannot be created, or a single input that cannot be read or stylized).
    """
    started = time.perf_counter()
    config = config or ApplyConfig()
    if not inputs:
        raise StyleTransferError("no input images were given: pass image files or folders")
    pairs = plan_outputs(inputs, output)
    if isinstance(stylizer, (str, os.PathLike)):
        stylizer = load_stylizer(stylizer, config.precision)

    result = ApplyResult()
    done = 0
    created_folders = set()
    for start in range(0, len(pairs), config.batch_size):
        loaded = []
        for source, target in pairs[start : start + config.batch_size]:
            try:
                loaded.append((source, target, _load_photo(source, config, stylizer)))
            except StyleTransferError as error:
                if len(pairs) == 1:
                    raise  # the only input: nothing else can go on, and nothing was written
                result.failed.append((os.fspath(source), str(error)))
                done += 1
                if progress is not None:
                    progress(done, len(pairs), os.fspath(source), None)
        for source, target, photo, stylized in _stylize_group(stylizer, loaded):
            # Created on first use, so that a run where every input fails makes none.
            if target.parent not in created_folders:
                _create_folder(target.parent)
                created_folders.add(target.parent)
            try:
                stylized = colors.keep_colors(stylized, photo, config.preserve_colors)
                writing.save_image(stylized, target)
                result.written.append((os.fspath(source), os.fspath(target)))
                written = os.fspath(target)
            except StyleTransferError as error:
                result.failed.append((os.fspath(source), str(error)))
                written = None
            done += 1
            if progress is not None:
                progress(done, len(pairs), os.fspath(source), written)
    result.seconds = time.perf_counter() - started
    return result


def _load_photo(source: pathlib.Path, config: ApplyConfig, stylizer: StyleNetwork) -> np.ndarray:
    """Decodes one photo at the size the run needs, once its plan says that it fits."""
    info = decoding.read_image_info(source)
    label = printable(os.fspath(source))
    plan_photo(info, config.size, stylizer.width, stylizer.precision, label=label)
    photo = decoding.load_image(source, long_side=config.size)
    if config.size is not None and max(photo.shape[:2]) != config.size:
        photo = decoding.resize_to_long_side(photo, config.size)  # scaling a small photo up
    return photo


def _create_folder(folder: pathlib.Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StyleTransferError(
            f"cannot create the output folder {printable(str(folder))} "
            f"({error.strerror or error}): choose a writable output"
        ) from None


def _stylize_group(stylizer: StyleNetwork, loaded):
    """Yields (source, target, photo, stylized), batching photos of equal size that fit whole."""
    by_shape = {}
    for entry in loaded:
        by_shape.setdefault(entry[2].shape, []).append(entry)
    for shape, entries in by_shape.items():
        height, width = shape[:2]
        whole = estimate_apply_bytes(
            height, width, stylizer.width, stylizer.precision, len(entries)
        )
        available = available_bytes()
        if len(entries) > 1 and (available is None or whole <= MEMORY_FRACTION * available):
            stylized = stylizer(np.stack([entry[2] for entry in entries])).numpy()
            for entry, image in zip(entries, stylized, strict=True):
                yield (*entry, image)
        else:
            for entry in entries:
                yield (*entry, stylizer.stylize_image(entry[2]))
