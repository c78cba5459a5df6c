"""The `tf-nst` commands: each checks what it can before TensorFlow loads, then calls the library.

`tf_nst.cli` parses the arguments and maps what these raise to exit statuses; the long jobs run
through `tf_nst.run`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import pathlib
import sys

from tf_nst.cli.options import from_arguments, split_list
from tf_nst.config import (
    INITS,
    AnyStyleConfig,
    ApplyConfig,
    OutputOptions,
    StyleConfig,
    TfliteConfig,
    TrainConfig,
)
from tf_nst.errors import StyleTransferError
from tf_nst.run.console import print_line as _print
from tf_nst.text import field_to_flag, one_line, printable


def run_stylize(arguments: argparse.Namespace) -> int:
    """Checks everything a user can get wrong, cheapest first, then runs the stylization."""
    from tf_nst import run
    from tf_nst.features.backbones import validate_layer_choice
    from tf_nst.features.weights_file import check_weights_file
    from tf_nst.image import decoding, writing
    from tf_nst.optimize.job import OptimizationJob, optimization_resume_key
    from tf_nst.optimize.memory import check_fits, estimate_run_bytes, format_bytes, load_sides
    from tf_nst.optimize.scales import check_image_sizes

    config = from_arguments(StyleConfig, arguments)
    options = from_arguments(OutputOptions, arguments)
    content_path, style_paths = _stylize_inputs(arguments)
    config.normalized_style_blend(len(style_paths))
    init_path = None if config.init in INITS else config.init
    if init_path is not None and not os.path.exists(init_path):
        raise StyleTransferError(
            f"`init` {printable(init_path)!r} is neither content, recolored, noise, style nor an "
            "existing image file: pass one of those words or the path of an image"
        )
    input_paths = [content_path, *style_paths] + ([init_path] if init_path else [])
    writing.check_output_path(options.output, input_paths)
    check_weights_file(config.weights, config.backbone)
    validate_layer_choice(config.backbone, config.content_layers, config.style_layers)
    headers = [decoding.read_image_info(path) for path in input_paths]
    check_image_sizes(
        config, _shape(headers[0]), [_shape(info) for info in headers[1 : 1 + len(style_paths)]],
        content_path, style_paths,
    )  # fmt: skip
    key = optimization_resume_key(config, content_path, style_paths)
    plan = run.check_outputs(options, key, config.steps)
    content_side, style_side = load_sides(config)
    content = decoding.load_image(content_path, long_side=content_side)
    styles = [decoding.load_image(path, long_side=style_side) for path in style_paths]
    init_image = decoding.load_image(init_path, long_side=content_side) if init_path else None

    import_tensorflow(verbose=arguments.debug)
    from tf_nst.precision import resolve_precision

    console = run.Console(quiet=options.quiet, time_limit=config.time_limit)
    precision = resolve_precision(config.precision)
    estimate = estimate_run_bytes(
        config, headers[0], headers[1 : 1 + len(style_paths)],
        headers[-1] if init_path else None, precision,
    )  # fmt: skip
    console.note(f"precision {precision}, estimated peak memory {format_bytes(estimate)}")
    check_fits(estimate, config.size)
    outcome = run.run_job(
        lambda: OptimizationJob(content, styles, config, init_image=init_image),
        options, key, plan=plan, console=console,
    )  # fmt: skip
    return outcome.status


def _stylize_inputs(arguments) -> tuple[str, list[str]]:
    if arguments.example or arguments.content is None:
        if arguments.content is not None:
            raise StyleTransferError(
                "--example takes no CONTENT or STYLE images: drop them or drop --example"
            )
        from tf_nst.examples import content_path, style_path

        return str(content_path()), [str(style_path())]
    if not arguments.styles:
        raise StyleTransferError("give at least one STYLE image after CONTENT (or use --example)")
    return arguments.content, list(arguments.styles)


def _shape(info) -> tuple[int, int]:
    return info.height, info.width


def run_export(arguments: argparse.Namespace) -> int:
    """Builds the extractor and writes it as a SavedModel; a signal lets it finish first."""
    from tf_nst import run
    from tf_nst.features.backbones import check_distinct, validate_layers

    if arguments.format == "tflite":
        return run_export_tflite(arguments)
    for name in ("output", "photos", "paintings", "quantize"):
        if getattr(arguments, name, None) is not None:
            raise StyleTransferError(f"--{name} applies to --format tflite only: drop it")

    config = from_arguments(StyleConfig, arguments, defaults={"precision": "fp32"})
    output = pathlib.Path(os.path.abspath(arguments.output_directory))
    label = printable(arguments.output_directory)
    if os.path.lexists(output):
        raise StyleTransferError(
            f"{label} already exists: choose a new OUT_DIR or remove the old export"
        )
    _check_parent_directory(output, label, "OUT_DIR")
    if len(os.fsencode(output.name)) > 200:
        raise StyleTransferError(f"OUT_DIR name {label[:40]}... is too long: choose a shorter one")
    layers = validate_layers(config.backbone, split_list(arguments.layers, str, "layers"))
    if not layers:
        raise StyleTransferError("--layers is empty: name at least one layer")
    check_distinct(layers, "--layers")
    import_tensorflow(verbose=arguments.debug)
    import tensorflow as tf

    from tf_nst.features.export import export_feature_extractor
    from tf_nst.features.extractor import build_feature_extractor
    from tf_nst.precision import resolve_precision

    with run.SignalHandler() as interrupts:
        try:
            extractor = build_feature_extractor(
                layers, config.backbone, config.weights, config.pooling,
                resolve_precision(config.precision),
            )  # fmt: skip
            try:
                export_feature_extractor(extractor, output)
            except (OSError, tf.errors.OpError) as error:
                raise StyleTransferError(
                    f"cannot write the export to {label} ({one_line(error)}): check that the "
                    "disk has space and the directory is writable"
                ) from None
        except run.SecondSignalError:
            _print("tf-nst: stopped at once by a second signal; no partial export was left")
            return interrupts.exit_status
    if interrupts.signal_name:
        _print(
            f"tf-nst: {interrupts.signal_name} received while exporting: the export finished "
            f"first and is complete in {label}"
        )
        return interrupts.exit_status
    _print(f"exported {config.backbone} features {', '.join(layers)} to {label}", sys.stdout)
    return 0


def _signals_stop_at_once(command):
    """Runs `command` with a first signal stopping it at once, until `run_job` takes over.

    Before the run starts there is nothing to save, and a long phase (a folder walk, TensorFlow
    loading) must not keep a signal waiting: the signal's exit status, one line.
    """

    @functools.wraps(command)
    def wrapped(arguments: argparse.Namespace) -> int:
        from tf_nst.run.console import SignalHandler, StopNowError

        with SignalHandler(at_once=True) as early:
            try:
                return command(arguments)
            except StopNowError:
                _print(
                    f"tf-nst: {early.signal_name} received before the run started; nothing was "
                    "saved"
                )
                return early.exit_status

    return wrapped


@_signals_stop_at_once
def run_train(arguments: argparse.Namespace) -> int:
    """Checks the inputs and outputs, then trains a style network and exports the best one."""
    from tf_nst import run

    if arguments.paintings:
        return run_train_any_style(arguments)
    if not arguments.styles:
        raise StyleTransferError("give at least one STYLE image, or --paintings DIR")
    for name in ANY_STYLE_ONLY_FIELDS:
        if name in vars(arguments):
            raise StyleTransferError(f"`{name}` applies to --paintings training only: drop it")
    from tf_nst.features.backbones import validate_layer_choice
    from tf_nst.features.weights_file import check_weights_file
    from tf_nst.image import decoding
    from tf_nst.networks.job import TrainJob, check_own_model, train_resume_key
    from tf_nst.networks.memory import check_train_fits
    from tf_nst.networks.photos import find_photos, skipped_warnings

    config = from_arguments(TrainConfig, arguments)
    options = from_arguments(OutputOptions, arguments)
    config.normalized_style_blend(len(arguments.styles))
    check_weights_file(config.weights, config.backbone)
    validate_layer_choice(config.backbone, config.content_layers, config.style_layers)
    photos = pathlib.Path(arguments.photos)
    if not photos.is_dir():
        what = "is a file" if photos.exists() else "does not exist"
        raise StyleTransferError(
            f"--photos {printable(arguments.photos)} {what}: pass a folder of photos"
        )
    if not options.resume:  # an interrupted run's checkpoint: say --resume, not a new MODEL_DIR
        run.check_no_checkpoint(options.output)
    if not (options.resume and os.path.lexists(options.output)):
        _check_new_directory(options.output, "MODEL_DIR")
    # The sizes, widths and style size are checked against the memory before TensorFlow
    # allocates anything, and the styles are decoded at the size the loss sees them.
    check_train_fits(config, [decoding.read_image_info(path) for path in arguments.styles])
    styles = [decoding.load_image(path, long_side=config.style_side) for path in arguments.styles]
    photo_paths = find_photos(photos)
    key = train_resume_key(config, photo_paths, arguments.styles)
    plan = run.check_outputs(options, key)
    if options.resume:  # it replaces the network its interrupted run exported, and nothing else
        check_own_model(options.output, plan.run_id)

    import_tensorflow(verbose=arguments.debug)
    from tf_nst.networks.distribute import is_chief, make_strategy
    from tf_nst.networks.training import NetworkTrainer

    console = run.Console(quiet=options.quiet, time_limit=config.time_limit)
    # Multi-worker training must create its strategy before any other TensorFlow work.
    strategy = make_strategy(config.distribute)
    with _worker_outputs(is_chief(strategy)) as scratch:
        if scratch is not None:  # not the chief: write where nobody reads, then delete
            options = dataclasses.replace(
                options, output=str(scratch / "model"), logdir=str(scratch / "logs")
            )
            plan = run.check_outputs(options, key)

        def build():
            trainer = NetworkTrainer(photos, styles, config, strategy=strategy)
            console.note(
                f"{len(trainer.photos.training)} training and {len(trainer.photos.validation)} "
                f"validation photos, {trainer.global_batch_size} per step over "
                f"{strategy.num_replicas_in_sync} replica(s)"
            )
            for line in skipped_warnings(trainer.photos):
                console.warn(line)
            return TrainJob(trainer, styles, arguments.styles)

        outcome = run.run_job(build, options, key, plan=plan, console=console)
    return outcome.status


@contextlib.contextmanager
def _worker_outputs(chief: bool):
    """Yields None on the chief, else a scratch folder deleted afterwards (the TF guide's way)."""
    if chief:
        yield None
        return
    import shutil
    import tempfile

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="tf_nst_worker_"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_new_directory(path: str, name: str) -> None:
    """Refuses a directory output that exists, or whose parent is missing or a file."""
    output = pathlib.Path(os.path.abspath(path))
    label = printable(path)
    if os.path.lexists(output):
        raise StyleTransferError(f"{name} {label} already exists: choose a new {name}")
    _check_parent_directory(output, label, name)
    parent = output.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StyleTransferError(
            f"the directory {printable(str(parent))} is not writable: choose another {name}"
        )
    # The export is written to `.NAME.XXXXXXXX` beside it first.
    if len(os.fsencode(output.name)) > 200:
        raise StyleTransferError(f"{name} name {label[:40]}... is too long: choose a shorter one")


def _check_parent_directory(output: pathlib.Path, label: str, name: str) -> None:
    """Refuses a directory output whose parent is missing, or is (or lies under) a file."""
    parent = output.parent
    existing = next(part for part in (parent, *parent.parents) if os.path.lexists(part))
    if not existing.is_dir():
        what = "a file, not a directory" if existing.is_file() else "not a directory"
        raise StyleTransferError(
            f"{name} {label} cannot be created: {printable(str(existing))} is {what}; choose "
            f"another {name}"
        )
    if existing != parent:
        raise StyleTransferError(
            f"the directory {printable(str(parent))} does not exist: create it first, or choose "
            f"another {name}"
        )


def run_apply(arguments: argparse.Namespace) -> int:
    """Stylizes files with a trained network; some failing gives exit status 1."""
    from tf_nst import run

    config = from_arguments(ApplyConfig, arguments)
    any_style = _check_apply_styles(arguments)
    import_tensorflow(verbose=arguments.debug)
    from tf_nst.networks.apply import apply_to_files
    from tf_nst.networks.stylizer import load_stylizer

    console = run.Console(quiet=arguments.quiet)
    # "auto" goes to load_stylizer as it is: there it falls back to fp32 when the export lacks
    # the precision the hardware prefers.
    stylizer = load_stylizer(arguments.model, precision=config.precision)
    if any_style:
        stylizer = _bind_styles(stylizer, arguments.styles, config)

    class _StopError(Exception):
        pass

    with run.SignalHandler() as interrupts:

        def progress(done: int, total: int, source: str, written: str | None) -> None:
            if written is not None:
                console.note(f"[{done}/{total}] {printable(written)}")
            if interrupts.signal_name:
                raise _StopError

        try:
            result = apply_to_files(
                stylizer, arguments.inputs, arguments.output, config, progress=progress
            )
        except (_StopError, run.SecondSignalError):
            console.final(
                f"tf-nst: {interrupts.signal_name} received: the images written so far are "
                "complete; the others were not started"
            )
            return interrupts.exit_status
    for source, reason in result.failed:
        console.warn(f"skipped {printable(source)}: {field_to_flag(one_line(Exception(reason)))}")
    written = len(result.written)
    seconds = result.seconds
    summary = f"stylized {written} image{'' if written == 1 else 's'} in {seconds:.1f} s"
    if result.failed:
        console.final(f"tf-nst: {summary}; {len(result.failed)} failed (see above)")
    else:
        console.note(summary)
    return result.exit_status


def import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow and probes its devices with its native start-up log hidden.

    TensorFlow writes start-up lines (absl, oneDNN, CUDA probing) straight to file descriptor 2,
    ignoring TF_CPP_MIN_LOG_LEVEL, so they would bury the CLI's one-line messages. They go to a
    temporary file instead, which is shown only if the import fails.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    import tempfile

    from tf_nst.run.console import StopNowError

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except (KeyboardInterrupt, StopNowError):
            raise  # a signal, not a failure of the import: its log says nothing
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# --- any-style networks (AdaIN): train --paintings, apply --style, export --format tflite -----

# The any-style training's settings that the per-style training does not have.
ANY_STYLE_ONLY_FIELDS = (
    "learning_rate_decay",
    "decoder_width",
    "identity_weight",
    "validation_paintings",
)
# Per-style settings with no meaning for an any-style network.
PER_STYLE_ONLY_FIELDS = ("width", "style_size", "coarse_style_weight")
# A --style painting is read at this long side: the scale the paintings had in training (the
# AdaIN paper's 512).
STYLE_LONG_SIDE = 512


def run_train_any_style(arguments: argparse.Namespace) -> int:
    """Checks the inputs and outputs, then trains an any-style network and exports the best."""
    from tf_nst import run
    from tf_nst.features.backbones import validate_layer_choice
    from tf_nst.features.weights_file import check_weights_file
    from tf_nst.networks import data
    from tf_nst.networks.any_style import data as painting_data
    from tf_nst.networks.any_style.job import AnyStyleJob, any_style_resume_key
    from tf_nst.networks.job import is_stylizer

    if arguments.styles:
        raise StyleTransferError(
            "STYLE images and --paintings exclude each other: a per-style network takes STYLE "
            "images, an any-style network a folder of --paintings"
        )
    for name in PER_STYLE_ONLY_FIELDS:
        if name in vars(arguments):
            hint = "use --decoder-width" if name == "width" else "leave it out"
            raise StyleTransferError(f"`{name}` sets a per-style network; with --paintings {hint}")
    config = from_arguments(AnyStyleConfig, arguments)
    options = from_arguments(OutputOptions, arguments)
    check_weights_file(config.weights, config.backbone)
    validate_layer_choice(config.backbone, config.content_layers, config.style_layers)
    photos = pathlib.Path(arguments.photos)
    if not photos.is_dir():
        what = "is a file" if photos.exists() else "does not exist"
        raise StyleTransferError(
            f"--photos {printable(arguments.photos)} {what}: pass a folder of photos"
        )
    painting_paths = painting_data.find_paintings(arguments.paintings)
    if not (options.resume and is_stylizer(options.output)):
        _check_new_directory(options.output, "MODEL_DIR")
    photo_paths = data.find_photos(photos)
    key = any_style_resume_key(config, photo_paths, painting_paths)
    plan = run.check_outputs(options, key)

    import_tensorflow(verbose=arguments.debug)
    from tf_nst.networks.any_style.training import AnyStyleTrainer
    from tf_nst.networks.distribute import is_chief, make_strategy

    console = run.Console(quiet=options.quiet, time_limit=config.time_limit)
    strategy = make_strategy(config.distribute)
    with _worker_outputs(is_chief(strategy)) as scratch:
        if scratch is not None:
            options = dataclasses.replace(
                options, output=str(scratch / "model"), logdir=str(scratch / "logs")
            )
            plan = run.check_outputs(options, key)

        def build():
            trainer = AnyStyleTrainer(photos, arguments.paintings, config, strategy=strategy)
            console.note(
                f"{len(trainer.photos.training)} training and {len(trainer.photos.validation)} "
                f"validation photos, {len(trainer.paintings.training)} training and "
                f"{len(trainer.paintings.validation)} held-out paintings, "
                f"{trainer.global_batch_size} pairs per step over "
                f"{strategy.num_replicas_in_sync} replica(s)"
            )
            skipped = [*trainer.photos.skipped, *trainer.paintings.skipped]
            if skipped:
                console.warn(
                    f"skipped {len(skipped)} unreadable image(s), e.g. "
                    f"{printable(str(skipped[0][0]))}: {printable(str(skipped[0][1]))}"
                )
            return AnyStyleJob(trainer, arguments.photos, arguments.paintings)

        outcome = run.run_job(build, options, key, plan=plan, console=console)
    return outcome.status


def _stylizer_kind(model: str) -> str | None:
    """The kind in a model folder's metadata, before TensorFlow loads; None if unreadable."""
    import json

    from tf_nst.networks.export import STYLIZER_METADATA

    try:
        metadata = json.loads((pathlib.Path(model) / STYLIZER_METADATA).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # `load_stylizer` reports it
    return metadata.get("kind", "per-style") if isinstance(metadata, dict) else None


def _check_apply_styles(arguments: argparse.Namespace) -> bool:
    """Refuses --style for a per-style network and its absence for an any-style one.

    Returns:
        Whether the network is an any-style one.
    """
    kind = _stylizer_kind(arguments.model)
    label = printable(arguments.model)
    if kind == "any-style":
        if not arguments.styles:
            raise StyleTransferError(
                f"{label} is an any-style network: give the painting to paint in with "
                "--style PAINTING"
            )
        from tf_nst.image import decoding

        for path in arguments.styles:
            decoding.read_image_info(path)
        return True
    if arguments.styles:
        raise StyleTransferError(
            f"{label} is a per-style network, trained for its own style: drop --style (an "
            "any-style network comes from tf-nst train --paintings)"
        )
    for name in ("strength", "style_blend"):
        if name in vars(arguments):
            raise StyleTransferError(
                f"`{name}` needs an any-style network (tf-nst train --paintings); {label} is a "
                "per-style network"
            )
    return False


def _bind_styles(network, style_paths, config: ApplyConfig):
    from tf_nst.image import decoding
    from tf_nst.networks.any_style.stylizer import normalized_blend

    blend = normalized_blend(len(style_paths), config.style_blend)
    styles = [decoding.load_image(path, long_side=STYLE_LONG_SIDE) for path in style_paths]
    return network.with_styles(styles, config.strength, blend)


def _sample_images(image_folders, label: str, count: int = 16) -> list:
    """Up to `count` images spread over the folders' images, reduced to 512 px."""
    from tf_nst.image import decoding, folders

    paths = []
    for folder in image_folders:
        path = pathlib.Path(folder)
        if not path.is_dir():
            raise StyleTransferError(
                f"--{label} {printable(str(folder))} is not a folder: pass a folder of images"
            )
        paths.extend(folders.find_images(path))
    if not paths:
        raise StyleTransferError(f"--{label} holds no images: pass a folder of images")
    chosen = [paths[int((index + 0.5) * len(paths) / count)] for index in range(count)]
    return [decoding.load_image(path, long_side=512) for path in dict.fromkeys(chosen)]


def run_export_tflite(arguments: argparse.Namespace) -> int:
    """Converts a network from tf-nst train (either kind) to TFLite files in a new folder."""
    import json

    from tf_nst.networks.export import STYLIZER_METADATA

    config = from_arguments(TfliteConfig, arguments)
    if not arguments.output:
        raise StyleTransferError("--format tflite needs -o OUT, the folder to create")
    model = arguments.output_directory
    kind = _stylizer_kind(model)
    if kind is None:
        raise StyleTransferError(
            f"{printable(model)} is not a model folder from tf-nst train (no readable "
            f"{STYLIZER_METADATA}): pass MODEL_DIR"
        )
    _check_new_directory(arguments.output, "OUT")
    photos = styles = None
    if config.quantize == "int8":
        metadata = json.loads((pathlib.Path(model) / STYLIZER_METADATA).read_text("utf-8"))
        training = metadata.get("training", {})
        photo_folders = [arguments.photos] if arguments.photos else training.get("photos")
        painting_folders = (
            [arguments.paintings] if arguments.paintings else training.get("paintings")
        )
        if not photo_folders:
            raise StyleTransferError("int8 calibrates on training photos: pass --photos DIR")
        photos = _sample_images(photo_folders, "photos")
        if kind == "any-style":
            if not painting_folders:
                raise StyleTransferError(
                    "int8 calibrates on training paintings: pass --paintings DIR"
                )
            styles = _sample_images(painting_folders, "paintings")
    import_tensorflow(verbose=arguments.debug)
    from tf_nst.networks.any_style.export import export_tflite

    description = export_tflite(model, arguments.output, config.quantize, photos, styles)
    sizes = ", ".join(
        f"{name} {entry['bytes'] / 1e6:.2f} MB" for name, entry in description["files"].items()
    )
    _print(
        f"exported {kind} TFLite ({config.quantize}) to {printable(arguments.output)}: {sizes}",
        sys.stdout,
    )
    return 0
