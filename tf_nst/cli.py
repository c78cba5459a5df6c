"""The `tf-nst` command line: argparse to `StyleConfig` to library calls.

The CLI owns every file a run touches: it loads the images, writes the output and intermediate
images atomically, the checkpoint beside the output and the TensorBoard run under `--logdir`.

Exit statuses:
    0: done; also when `--time-limit` ran out (the best image is saved).
    1: stopped early because the loss or gradient became non-finite; the best finite image is
        saved (if any step was finite), never a NaN pixel.
    2: a user-fixable problem (bad image, option, path, weights file or resume state), reported
        as one line, `tf-nst: error: ...`, before anything is written (`--debug` shows the
        traceback instead). argparse's own errors also exit with 2.
    130, 143: stopped by SIGINT or SIGTERM (128 + the signal number). The first signal saves the
        best image and a checkpoint; a second one stops at once, still without a partial file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pathlib
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_nst.config import (  # noqa: E402  (the environment must be set before TensorFlow loads)
    BACKBONES,
    DEFAULT_LOSS_WEIGHTS,
    INITS,
    LOSS_NORMALIZATIONS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESERVE_COLORS,
    StyleConfig,
)
from tf_nst.errors import StyleTransferError  # noqa: E402
from tf_nst.weights_file import check_weights_file  # noqa: E402

DEFAULTS = StyleConfig()
CHECKPOINT_SUFFIX = ".checkpoint"
RUN_STATE = "run.json"
# Settings that change the optimisation's trajectory: a resumed run must keep them.
RESUME_KEYS = (
    "size", "steps", "scales", "backbone", "weights", "pooling", "optimizer", "learning_rate",
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "style_blend", "preserve_colors", "style_scale", "loss_normalization",
    "precision",
)  # fmt: skip


class _SecondSignalError(BaseException):
    """Raised in the main thread by a second SIGINT/SIGTERM: stop now.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (Keras
    loading weights, say) can swallow it.
    """


def build_parser() -> argparse.ArgumentParser:
    """Returns the `tf-nst` argument parser with its `stylize` and `export` subcommands."""
    parser = argparse.ArgumentParser(
        prog="tf-nst",
        description="Neural style transfer (Gatys et al.) with TensorFlow and Keras.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    stylize = commands.add_parser(
        "stylize",
        help="paint a content photo in the style of one or more paintings",
        description="Optimise an image so that its VGG features match CONTENT and its Gram "
        "matrices match the STYLE images. With no images (or --example) it runs on the "
        "bundled example pair.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_stylize_arguments(stylize)
    export = commands.add_parser(
        "export",
        help="export the VGG feature extractor as a SavedModel",
        description="Write the feature extractor as a SavedModel whose serving_default "
        "signature maps `images` (float32 [batch, height, width, 3], RGB in [0, 1]) to one "
        "output per layer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    export.add_argument("output_directory", metavar="OUT_DIR", help="SavedModel directory")
    # fp32 by default: an exported model should not depend on the machine that exported it.
    add_backbone_arguments(export, precision="fp32")
    export.add_argument(
        "--layers",
        default=",".join(dict.fromkeys(DEFAULTS.style_layers + DEFAULTS.content_layers)),
        help="comma-separated layers to export",
    )
    export.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def add_backbone_arguments(parser: argparse.ArgumentParser, precision: str = "auto") -> None:
    """Adds the options that choose and load the network."""
    parser.add_argument("--backbone", choices=BACKBONES, default=DEFAULTS.backbone)
    parser.add_argument(
        "--weights",
        default=DEFAULTS.weights,
        help="'imagenet' (downloaded once into ~/.keras/models) or PATH to a Keras weights "
        "file (.weights.h5 or .h5) of the backbone without its top; offline, pass a PATH",
    )
    parser.add_argument("--pooling", choices=POOLINGS, default=DEFAULTS.pooling)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=precision,
        help="compute precision of the network; auto picks bf16 where the hardware has it "
        "natively and fp32 elsewhere",
    )


def add_stylize_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every `stylize` option."""
    parser.add_argument("content", nargs="?", metavar="CONTENT", help="content image")
    parser.add_argument("styles", nargs="*", metavar="STYLE", help="style image(s)")
    parser.add_argument("--example", action="store_true", help="use the bundled example pair")
    parser.add_argument("-o", "--output", default="stylized.png", help="output image path")
    group = parser.add_argument_group("optimisation")
    group.add_argument("--size", type=int, default=DEFAULTS.size, help="long side of the output")
    group.add_argument("--steps", type=int, default=DEFAULTS.steps, help="steps over all scales")
    group.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    group.add_argument(
        "--scales",
        type=int,
        default=argparse.SUPPRESS,  # its default depends on --size, which the help spells out
        help="coarse-to-fine scales (default: 1 up to 384 px, then one per doubling from 256)",
    )
    group.add_argument(
        "--init",
        default=DEFAULTS.init,
        help="starting image: content, noise, style or PATH to an image",
    )
    group.add_argument("--seed", type=int, default=None, help="seed for --init noise")
    group.add_argument(
        "--time-limit", type=float, default=None, help="stop after SECONDS, keeping the best image"
    )
    group.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.jit,
        help="compile the step with XLA",
    )
    group = parser.add_argument_group("loss")
    for name, index in (("content", 0), ("style", 1), ("tv", 2)):
        group.add_argument(
            f"--{name}-weight",
            type=float,
            # SUPPRESS: the default depends on --loss-normalization, which the help spells out.
            default=argparse.SUPPRESS,
            help="default: "
            + ", ".join(
                f"{weights[index]:g} with --loss-normalization {mode}"
                for mode, weights in DEFAULT_LOSS_WEIGHTS.items()
            ),
        )
    group.add_argument(
        "--content-layers", default=",".join(DEFAULTS.content_layers), help="comma-separated"
    )
    group.add_argument(
        "--style-layers", default=",".join(DEFAULTS.style_layers), help="comma-separated"
    )
    group.add_argument(
        "--style-layer-weights",
        default=None,
        help="comma-separated weights matching --style-layers (default: equal)",
    )
    group.add_argument(
        "--style-blend",
        default=None,
        help="comma-separated weights of the STYLE images, normalised to sum to 1 (default: equal)",
    )
    group.add_argument(
        "--loss-normalization",
        choices=LOSS_NORMALIZATIONS,
        default=DEFAULTS.loss_normalization,
        help="normalized: weights that carry across backbones; tutorial: exactly the "
        "TensorFlow tutorial's objective",
    )
    group = parser.add_argument_group("look")
    group.add_argument(
        "--preserve-colors",
        choices=PRESERVE_COLORS,
        default=DEFAULTS.preserve_colors,
        help="keep the content's colours (Gatys et al. 2016)",
    )
    group.add_argument(
        "--style-scale",
        type=float,
        default=DEFAULTS.style_scale,
        help="style image size relative to the working size; larger means larger brush strokes",
    )
    add_backbone_arguments(parser)
    group = parser.add_argument_group("outputs")
    group.add_argument("--logdir", default="logs", help="TensorBoard root; each run gets a subdir")
    group.add_argument("--run-name", default=None, help="TensorBoard run name (default: time)")
    group.add_argument(
        "--save-every", type=int, default=0, help="save numbered intermediate images every N steps"
    )
    group.add_argument(
        "--image-every", type=int, default=25, help="log the current image to TensorBoard every N"
    )
    group.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="save a resumable checkpoint beside the output every N steps",
    )
    group.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint beside the output"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument("--debug", action="store_true", help="show tracebacks")


def _split(text: str | None, convert=str, option: str = "") -> tuple | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tuple(convert(item) for item in items)
    except ValueError:
        raise StyleTransferError(
            f"{option} must be comma-separated numbers, got {text!r}"
        ) from None


def config_from_arguments(arguments: argparse.Namespace) -> StyleConfig:
    """Builds the validated `StyleConfig` that the parsed arguments describe."""
    return StyleConfig(
        size=arguments.size,
        steps=arguments.steps,
        learning_rate=arguments.learning_rate,
        content_weight=getattr(arguments, "content_weight", None),
        style_weight=getattr(arguments, "style_weight", None),
        tv_weight=getattr(arguments, "tv_weight", None),
        content_layers=_split(arguments.content_layers),
        style_layers=_split(arguments.style_layers),
        style_layer_weights=_split(arguments.style_layer_weights, float, "--style-layer-weights"),
        style_blend=_split(arguments.style_blend, float, "--style-blend"),
        backbone=arguments.backbone,
        weights=arguments.weights,
        pooling=arguments.pooling,
        init=arguments.init,
        seed=arguments.seed,
        preserve_colors=arguments.preserve_colors,
        style_scale=arguments.style_scale,
        optimizer=arguments.optimizer,
        scales=getattr(arguments, "scales", None),
        loss_normalization=arguments.loss_normalization,
        precision=arguments.precision,
        jit=arguments.jit,
        time_limit=arguments.time_limit,
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the `tf-nst` command line and returns its exit status.

    Exit statuses: 0 done (also when `--time-limit` ran out); 1 the loss or gradient became
    non-finite, so the run stopped and kept its best finite image; 2 a user-fixable problem (a
    bad image, option, path or weights file; argparse's own errors too), with one line saying what
    to fix and nothing written; 130 or 143 stopped by SIGINT or SIGTERM (128 + signal number).
    """
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "export":
            return run_export(arguments)
        return run_stylize(arguments)
    except StyleTransferError as error:
        if arguments.debug:
            raise
        print(f"tf-nst: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C while TensorFlow loads, before the run's own handler is installed.
        if arguments.debug:
            raise
        print("\ntf-nst: interrupted before the run started; nothing was saved", file=sys.stderr)
        return 128 + signal.SIGINT


def _import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow and probes its devices with its native start-up log hidden.

    TensorFlow 2.21 writes start-up lines (absl, oneDNN, CUDA probing) straight to file
    descriptor 2, ignoring TF_CPP_MIN_LOG_LEVEL, so they would bury the CLI's one-line messages.
    They go to a temporary file instead, which is shown only if the import fails.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _one_line(error: Exception) -> str:
    """The error's message on one line: control characters (newlines) are escaped."""
    text = str(error).strip() or type(error).__name__
    return "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in text
    )


def run_export(arguments: argparse.Namespace) -> int:
    """Builds the extractor and writes it as a SavedModel."""
    _import_tensorflow(verbose=arguments.debug)
    from tf_nst.export import export_feature_extractor
    from tf_nst.features import build_feature_extractor, validate_layers

    layers = validate_layers(arguments.backbone, _split(arguments.layers))
    if not layers:
        raise StyleTransferError("--layers is empty: name at least one layer")
    output = pathlib.Path(arguments.output_directory)
    if output.exists():
        raise StyleTransferError(
            f"{output} already exists: choose a new OUT_DIR or remove the old export"
        )
    if not output.absolute().parent.is_dir():
        raise StyleTransferError(f"directory {output.absolute().parent} does not exist: create it")
    from tf_nst.optimize import resolve_precision

    extractor = build_feature_extractor(
        layers,
        arguments.backbone,
        arguments.weights,
        arguments.pooling,
        resolve_precision(arguments.precision),
    )
    export_feature_extractor(extractor, output)
    print(f"exported {arguments.backbone} features {', '.join(layers)} to {output}")
    return 0


def _inputs(arguments) -> tuple[str, list[str]]:
    if arguments.example or arguments.content is None:
        if arguments.content is not None:
            raise StyleTransferError(
                "--example takes no CONTENT or STYLE images: drop them or drop --example"
            )
        from tf_nst.example_data import content_path, style_path

        return str(content_path()), [str(style_path())]
    if not arguments.styles:
        raise StyleTransferError("give at least one STYLE image after CONTENT (or use --example)")
    return arguments.content, list(arguments.styles)


def run_stylize(arguments: argparse.Namespace) -> int:
    """Runs a stylization with progress, TensorBoard, checkpoints and interrupt handling.

    Everything a user can get wrong is checked before anything is written, cheapest first and,
    as far as possible, before TensorFlow is even imported: the numbers, the output path, the
    weights file, the images and the resume state; then the layers, the image sizes, the memory
    and the network. Only then is the run directory made (see `_run`).
    """
    for option in ("save_every", "image_every", "checkpoint_every"):
        value = getattr(arguments, option)
        if value < 0:
            raise StyleTransferError(
                f"--{option.replace('_', '-')} must be >= 0 (0 turns it off), got {value}"
            )
    config = config_from_arguments(arguments)
    content_path, style_paths = _inputs(arguments)
    config.normalized_style_blend(len(style_paths))
    init_path = None if config.init in INITS else config.init
    if init_path is not None and not os.path.exists(init_path):
        raise StyleTransferError(
            f"--init {init_path!r} is neither content, noise, style nor an existing image file: "
            "pass one of those words or the path of an image"
        )

    from tf_nst import images  # numpy and Pillow only

    input_paths = [content_path, *style_paths] + ([init_path] if init_path else [])
    output = images.check_output_path(arguments.output, input_paths)
    check_weights_file(config.weights, config.backbone)
    content = images.load_image(content_path)
    styles = [images.load_image(path) for path in style_paths]
    init_image = images.load_image(init_path) if init_path else None
    digests = _input_digests(content_path, style_paths)
    checkpoint_directory = output.parent / (output.stem + CHECKPOINT_SUFFIX)
    resume_state = None
    if arguments.resume:
        resume_state = _read_resume_state(checkpoint_directory, config, digests)

    # From here on TensorFlow is needed.
    _import_tensorflow(verbose=arguments.debug)
    from tf_nst.features import minimum_input_side, validate_layers

    layers = validate_layers(config.backbone, config.content_layers + config.style_layers)
    _check_source_sizes(
        [("content image", content_path, content)]
        + [("style image", path, style) for path, style in zip(style_paths, styles, strict=True)],
        minimum_input_side(layers),
        max(layers),
    )
    _check_memory(config, content, quiet=arguments.quiet)
    checkpointer = _Checkpointer(checkpoint_directory, config, digests)
    return _run(arguments, config, output, checkpointer, content, styles, init_image, resume_state)


def _run(arguments, config, output, checkpointer, content, styles, init_image, resume_state) -> int:
    """Builds the network, makes or reopens the run directory and runs the optimisation.

    SIGINT and SIGTERM are caught from here on: the first saves the best image and a checkpoint
    and exits with 128 + the signal number; a second exits at once (`_SecondSignalError`),
    after removing any checkpoint it cut short. A fresh run directory that never saw a step is
    removed again whatever ends the run.
    """
    from tf_nst import images
    from tf_nst.optimize import Stylizer
    from tf_nst.summaries import RunLog, make_run_directory

    interrupts = _InterruptHandler()
    fresh = resume_state is None
    stylizer = None
    run_directory = None
    with interrupts:
        try:
            stylizer = Stylizer(content, styles, config, init_image=init_image)
            if resume_state:
                _restore(stylizer, resume_state["checkpoint"])
            if interrupts.signal_name:
                return _nothing_saved(interrupts, "before the first step")
            if fresh:
                run_directory = make_run_directory(arguments.logdir, arguments.run_name)
            else:
                run_directory = _reopen_run_directory(resume_state["run_directory"])
            checkpointer.run_directory = run_directory
            _say(arguments, f"precision {stylizer.precision}; TensorBoard run {run_directory}")
            log = RunLog(run_directory)
            try:
                if fresh:
                    _log_start(log, config, stylizer, content, styles, run_directory)
                last = _optimise(arguments, stylizer, log, output, checkpointer, interrupts)
                if stylizer.best_image is None:  # not one finite step
                    log.close()
                    _remove_unused_run_directory(run_directory, fresh, stylizer)
                    if interrupts.signal_name:
                        return _nothing_saved(interrupts, "before the first step")
                    print(
                        f"tf-nst: stopped: {stylizer.stop_reason}; no step had a finite loss, so "
                        "nothing was saved: lower --learning-rate or the loss weights",
                        file=sys.stderr,
                    )
                    return 1
                final = stylizer.final_image()
                images.save_image(final, output)
                _log_end(log, stylizer, last, final)
                if interrupts.signal_name and not stylizer.stop_reason:
                    checkpointer.save(stylizer)
            finally:
                log.close()
        except _SecondSignalError:
            checkpointer.discard_unfinished()
            _remove_unused_run_directory(run_directory, fresh, stylizer)
            print(
                "\ntf-nst: stopped at once by a second signal; files already written are "
                "complete and no partial file was left",
                file=sys.stderr,
            )
            return interrupts.exit_status
        except BaseException:
            _remove_unused_run_directory(run_directory, fresh, stylizer)
            raise

    steps = f"after {stylizer.step} step{'' if stylizer.step == 1 else 's'}"
    if stylizer.stop_reason and stylizer.stop_reason != "time limit":
        print(
            f"tf-nst: stopped: {stylizer.stop_reason}; saved the best finite image (loss "
            f"{stylizer.best_loss:.4g}, {steps}) to {output}: lower --learning-rate or the loss "
            "weights",
            file=sys.stderr,
        )
        return 1
    if interrupts.signal_name:
        print(
            f"\ntf-nst: {interrupts.signal_name} received: saved the best image (loss "
            f"{stylizer.best_loss:.4g}, {steps}) to {output} and a checkpoint to "
            f"{checkpointer.directory}; continue with the same command plus --resume",
            file=sys.stderr,
        )
        return interrupts.exit_status
    reason = " (time limit reached)" if stylizer.stop_reason == "time limit" else ""
    _say(
        arguments,
        f"saved {output}{reason}: best loss {stylizer.best_loss:.4g} {steps} in "
        f"{last.elapsed_seconds if last else 0:.1f} s",
    )
    return 0


def _reopen_run_directory(path: str) -> pathlib.Path:
    """The interrupted run's TensorBoard directory, which the resumed run appends to."""
    run_directory = pathlib.Path(path)
    try:
        run_directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StyleTransferError(
            f"cannot reopen the TensorBoard run {run_directory} of the interrupted run "
            f"({error.strerror or error}): make it writable, or run without --resume"
        ) from None
    return run_directory


def _nothing_saved(interrupts, when: str) -> int:
    print(
        f"\ntf-nst: {interrupts.signal_name} received {when}; nothing was saved",
        file=sys.stderr,
    )
    return interrupts.exit_status


def _remove_unused_run_directory(run_directory, fresh: bool, stylizer) -> None:
    """Removes a run directory this run made if no step reached it: it would only be clutter."""
    if run_directory is None or not fresh or (stylizer is not None and stylizer.step > 0):
        return
    shutil.rmtree(run_directory, ignore_errors=True)


def _optimise(arguments, stylizer, log, output, checkpointer, interrupts):
    from tf_nst import images
    from tf_nst.losses import group_totals

    if interrupts.signal_name:
        return None
    progress = ProgressBar(sys.stderr, enabled=not arguments.quiet, time_limit=arguments.time_limit)
    last = None
    for result in stylizer.steps():
        last = result
        scalars = {f"loss/{name}": value for name, value in result.terms.items()}
        scalars.update(
            {
                f"loss/{name}": value
                for name, value in group_totals(result.terms).items()
                if name != "tv"
            }
        )
        scalars.update(
            {
                "loss/total": result.loss,
                "loss/best": result.best_loss,
                "time/step_seconds": result.step_seconds,
                "scale/long_side": stylizer.scales[result.scale_index].long_side,
            }
        )
        log.scalars(result.step, scalars)
        if arguments.image_every and result.step % arguments.image_every == 0:
            log.image("images/current", result.step, result.image)
        if arguments.save_every and result.step % arguments.save_every == 0:
            numbered = output.with_name(f"{output.stem}_{result.step:05d}{output.suffix}")
            images.save_image(stylizer.postprocess(result.image), numbered)
        if (
            arguments.checkpoint_every
            and result.step % arguments.checkpoint_every == 0
            and not stylizer.stop_reason  # a diverged state is not worth resuming
        ):
            checkpointer.save(stylizer)
        progress.update(result)
        if interrupts.signal_name:
            break
    progress.close()
    return last


def _command_line() -> str:
    return shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]])


def _log_start(log, config, stylizer, content, styles, run_directory) -> None:
    from tf_nst.summaries import markdown_code_block

    log.text("run/command_line", 0, markdown_code_block(_command_line()))
    hparams = config.hparams()
    hparams["precision"] = stylizer.precision
    log.hparams(hparams, trial_id=run_directory.name)
    log.image("images/content", 0, stylizer.postprocess(content))
    for index, style in enumerate(styles):
        log.image("images/style" if index == 0 else f"images/style_{index + 1}", 0, style)
    log.flush()


def _log_end(log, stylizer, last, final) -> None:
    step = stylizer.step
    log.image("images/final", step, final)
    if last is not None:
        log.scalars(step, {"loss/final": last.loss, "loss/best": stylizer.best_loss})
    log.flush()


class _Checkpointer:
    """Writes resumable checkpoints into `directory` (beside the output), crash-safely.

    Each save writes the `Stylizer.checkpoint()` under a fresh name, then switches `run.json` to
    it (an atomic rename), and only then deletes older checkpoints: whenever the process dies,
    `run.json` names a complete checkpoint or does not exist.
    """

    def __init__(self, directory: pathlib.Path, config: StyleConfig, digests: dict):
        self.directory = directory
        self.config = config
        self.digests = digests
        self.run_directory: pathlib.Path | None = None
        self._saved_step: int | None = None
        self._writing: str | None = None  # the checkpoint being written, until run.json names it
        self._made_directory = False

    def save(self, stylizer) -> None:
        """Checkpoints `stylizer` unless this step is saved already."""
        if stylizer.step == self._saved_step:
            return
        import tensorflow as tf

        from tf_nst.images import atomic_write_bytes

        name = f"ckpt-{stylizer.step}-{secrets.token_hex(4)}"
        try:
            if not self.directory.is_dir():
                self.directory.mkdir()
                self._made_directory = True
            self._writing = name
            stylizer.checkpoint().write(str(self.directory / name))
        except (OSError, tf.errors.OpError) as error:
            self.discard_unfinished()
            raise StyleTransferError(
                f"cannot write a checkpoint in {self.directory} ({_one_line(error)[:200]}): "
                "check the directory is writable and has space"
            ) from None
        state = {
            "step": stylizer.step,
            "checkpoint": name,
            "run_directory": str(pathlib.Path(self.run_directory).resolve()),
            "settings": _resume_settings(self.config),
            "inputs": self.digests,
        }
        try:
            atomic_write_bytes(json.dumps(state, indent=2).encode(), self.directory / RUN_STATE)
        except StyleTransferError:
            self.discard_unfinished()
            raise
        self._writing = None
        self._saved_step = stylizer.step
        # run.json names the new checkpoint now: the older ones (also a previous run's) can go.
        self._remove(lambda entry: not entry.startswith(f"{name}."))

    def discard_unfinished(self) -> None:
        """Removes the files of a save that was cut short, before run.json named them."""
        if self._writing is None or not self.directory.is_dir():
            return
        writing, self._writing = self._writing, None
        if self._named_in_state() == writing:
            return  # the second signal came after run.json was switched: the save is complete
        # TensorFlow writes `NAME.index`, `NAME.data-*` and, on the way, `NAME_temp/`.
        self._remove(lambda entry: entry.startswith((f"{writing}.", f"{writing}_temp")))
        if self._made_directory:
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # only if that left it empty

    def _named_in_state(self) -> str | None:
        try:
            return json.loads((self.directory / RUN_STATE).read_text()).get("checkpoint")
        except (OSError, ValueError, AttributeError):
            return None

    def _remove(self, select) -> None:
        for entry in self.directory.iterdir():
            if not entry.name.startswith("ckpt-") or not select(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _resume_settings(config: StyleConfig) -> dict:
    hparams = config.hparams()
    settings = {key: hparams[key] for key in RESUME_KEYS}
    if settings["weights"] != "imagenet":
        settings["weights"] = os.path.abspath(settings["weights"])
    return settings


def _input_digests(content_path: str, style_paths: list[str]) -> dict:
    """SHA-256 of the content and style files, so --resume can tell they are the same."""
    return {
        "content": _file_digest(content_path),
        "styles": [_file_digest(path) for path in style_paths],
    }


def _file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_resume_state(directory: pathlib.Path, config: StyleConfig, digests: dict) -> dict:
    state_path = directory / RUN_STATE
    if not state_path.is_file():
        raise StyleTransferError(
            f"nothing to resume: no checkpoint in {directory}; run without --resume (or give "
            "the -o/--output of the interrupted run)"
        )
    try:
        state = json.loads(state_path.read_text())
        name = state["checkpoint"]
        settings = state["settings"]
        run_directory = state["run_directory"]
        if not isinstance(name, str) or not isinstance(settings, dict):
            raise TypeError("malformed run.json")
        if not isinstance(run_directory, str):
            raise TypeError("malformed run.json")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StyleTransferError(
            f"checkpoint state {state_path} is unreadable ({_one_line(error)}): run without "
            "--resume to start over"
        ) from None
    if not (directory / f"{name}.index").is_file():
        raise StyleTransferError(
            f"checkpoint {directory / name} named in {state_path} is missing: run without "
            "--resume to start over"
        )
    current = _resume_settings(config)
    changed = [
        f"--{key.replace('_', '-')} (was {settings.get(key)}, now {current[key]})"
        for key in RESUME_KEYS
        if str(settings.get(key)) != str(current[key])
    ]
    inputs = state.get("inputs")
    if isinstance(inputs, dict):  # absent in checkpoints of older versions
        if inputs.get("content") != digests["content"]:
            changed.append("CONTENT (a different file)")
        if inputs.get("styles") != digests["styles"]:
            changed.append("STYLE (different files)")
    if changed:
        raise StyleTransferError(
            "--resume needs the settings and images of the interrupted run, but these differ: "
            + ", ".join(changed)
            + "; use the old ones, or run without --resume to start over"
        )
    return {**state, "checkpoint": str(directory / name)}


def _restore(stylizer, path: str) -> None:
    import tensorflow as tf

    try:
        stylizer.restore(path)
    except StyleTransferError:
        raise
    except (tf.errors.OpError, ValueError, KeyError, AssertionError) as error:
        raise StyleTransferError(
            f"checkpoint {path} cannot be restored ({_one_line(error)[:200]}): run without "
            "--resume to start over"
        ) from None


def _check_source_sizes(inputs, minimum: int, deepest_layer: str) -> None:
    """Refuses images with fewer pixels per side than the deepest layer needs.

    Upscaling such an image to --size would hand the network a blur with nothing to match (a
    1x1 image becomes a flat colour). Too-thin images at the chosen --size are refused by
    `Stylizer`.
    """
    for kind, path, image in inputs:
        height, width = image.shape[:2]
        if min(height, width) < minimum:
            raise StyleTransferError(
                f"{kind} {path} is only {width}x{height} px; the layer {deepest_layer} needs at "
                f"least {minimum} px per side: use a larger image (or shallower layers)"
            )


def _check_memory(config: StyleConfig, content, quiet: bool) -> None:
    from tf_nst.memory import check_fits, estimate_peak_bytes, format_bytes
    from tf_nst.optimize import LBFGS_HISTORY, plan_scales, resolve_precision, working_shape

    largest = plan_scales(config.size, config.steps, config.scales)[-1]
    height, width = working_shape(content.shape, largest.long_side)
    estimate = estimate_peak_bytes(
        height,
        width,
        config.backbone,
        config.content_layers + config.style_layers,
        resolve_precision(config.precision),
        config.jit,
        LBFGS_HISTORY if config.optimizer == "lbfgs" else 0,
    )
    if not quiet:
        print(
            f"tf-nst: {width}x{height} px, estimated peak memory {format_bytes(estimate)}",
            file=sys.stderr,
        )
    check_fits(estimate, config.size)


def _say(arguments, message: str) -> None:
    if not arguments.quiet:
        print(f"tf-nst: {message}", file=sys.stderr)


class _InterruptHandler:
    """Turns the first SIGINT/SIGTERM into a request to stop and save, the second into exit.

    The first signal only sets `signal_name`; the loop stops after the current step and the
    caller saves. The second raises `_SecondSignalError` wherever the main thread is, and from
    then on further signals are ignored so that the clean-up cannot itself be cut short.
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self.exit_status = 0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        del frame
        self.exit_status = 128 + number
        if self.signal_name:
            for other in self._previous:
                signal.signal(other, signal.SIG_IGN)
            raise _SecondSignalError
        self.signal_name = signal.Signals(number).name


class ProgressBar:
    """A one-line progress bar with loss, speed and ETA; plain lines when not a terminal."""

    WIDTH = 24

    def __init__(self, stream, enabled: bool = True, time_limit: float | None = None):
        self.stream = stream
        self.enabled = enabled
        self.terminal = enabled and stream.isatty()
        self.time_limit = time_limit
        self._last_print = 0.0

    def update(self, result) -> None:
        """Shows `result` (a `StepResult`)."""
        if not self.enabled:
            return
        now = time.monotonic()
        done = result.step >= result.total_steps
        if not self.terminal and not done and now - self._last_print < 10:
            return
        self._last_print = now
        filled = int(self.WIDTH * result.progress)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        eta = result.elapsed_seconds * (1 - result.progress) / max(result.progress, 1e-9)
        if self.time_limit is not None:
            eta = min(eta, max(0.0, self.time_limit - result.elapsed_seconds))
        scale = (
            f" scale {result.scale_index + 1}/{result.scale_count}"
            if result.scale_count > 1
            else ""
        )
        line = (
            f"[{bar}] {result.progress:4.0%} step {result.step}/{result.total_steps}{scale} "
            f"loss {result.loss:.4g} best {result.best_loss:.4g} "
            f"{result.step_seconds:.2f} s/step ETA {_clock(eta)}"
        )
        if self.terminal:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the bar's line."""
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


if __name__ == "__main__":
    sys.exit(main())
