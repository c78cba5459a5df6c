"""The `tf-nst` command line: argparse to `StyleConfig` to library calls.

The CLI owns every file a run touches: it loads the images, writes the output and intermediate
images atomically, the checkpoint beside the output and the TensorBoard run under `--logdir`. A
user-fixable problem prints one line, `tf-nst: error: ...`, and exits with status 2 (`--debug`
shows the traceback instead). SIGINT and SIGTERM save the best image and a checkpoint, then exit
with 130 or 143; a second signal stops at once, still without leaving a partial file.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import signal
import sys
import time

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_nst.config import (  # noqa: E402  (the environment must be set before TensorFlow loads)
    BACKBONES,
    LOSS_NORMALIZATIONS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESERVE_COLORS,
    StyleConfig,
)
from tf_nst.errors import StyleTransferError  # noqa: E402

DEFAULTS = StyleConfig()
CHECKPOINT_SUFFIX = ".checkpoint"
# Settings that change the optimisation's trajectory: a resumed run must keep them.
RESUME_KEYS = (
    "size", "steps", "scales", "backbone", "weights", "pooling", "optimizer", "learning_rate",
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "style_blend", "preserve_colors", "style_scale", "loss_normalization",
    "precision",
)  # fmt: skip


class _SecondSignalError(Exception):
    """Raised in the main thread by a second SIGINT/SIGTERM: stop now."""


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
    add_backbone_arguments(export)
    export.add_argument(
        "--layers",
        default=",".join(dict.fromkeys(DEFAULTS.style_layers + DEFAULTS.content_layers)),
        help="comma-separated layers to export",
    )
    export.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
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
        default=DEFAULTS.precision,
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
        default=None,
        help="coarse-to-fine scales; by default 1 up to 512 px and more above",
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
    group.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight)
    group.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight)
    group.add_argument("--tv-weight", type=float, default=DEFAULTS.tv_weight)
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
        content_weight=arguments.content_weight,
        style_weight=arguments.style_weight,
        tv_weight=arguments.tv_weight,
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
        scales=arguments.scales,
        loss_normalization=arguments.loss_normalization,
        precision=arguments.precision,
        jit=arguments.jit,
        time_limit=arguments.time_limit,
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the `tf-nst` command line and returns its exit status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "export":
            return run_export(arguments)
        return run_stylize(arguments, parser)
    except StyleTransferError as error:
        if arguments.debug:
            raise
        print(f"tf-nst: error: {error}", file=sys.stderr)
        return 2


def run_export(arguments: argparse.Namespace) -> int:
    """Builds the extractor and writes it as a SavedModel."""
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
    precision = arguments.precision
    if precision == "auto":
        from tf_nst.features import preferred_precision

        precision = preferred_precision()
    extractor = build_feature_extractor(
        layers, arguments.backbone, arguments.weights, arguments.pooling, precision
    )
    export_feature_extractor(extractor, output)
    print(f"exported {arguments.backbone} features {', '.join(layers)} to {output}")
    return 0


def _inputs(arguments, parser) -> tuple[str, list[str]]:
    if arguments.example or arguments.content is None:
        if arguments.content is not None:
            parser.error("--example takes no CONTENT or STYLE images")
        from tf_nst.example_data import content_path, style_path

        return str(content_path()), [str(style_path())]
    if not arguments.styles:
        parser.error("give at least one STYLE image after CONTENT (or use --example)")
    return arguments.content, list(arguments.styles)


def run_stylize(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Runs a stylization with progress, TensorBoard, checkpoints and interrupt handling."""
    for option in ("save_every", "image_every", "checkpoint_every"):
        if getattr(arguments, option) < 0:
            parser.error(f"--{option.replace('_', '-')} must be >= 0")
    config = config_from_arguments(arguments)
    content_path, style_paths = _inputs(arguments, parser)

    from tf_nst import images
    from tf_nst.features import validate_layers

    validate_layers(config.backbone, config.content_layers + config.style_layers)
    init_path = None if config.init in ("content", "noise", "style") else config.init
    inputs = [content_path, *style_paths] + ([init_path] if init_path else [])
    output = images.check_output_path(arguments.output, inputs)
    content = images.load_image(content_path)
    styles = [images.load_image(path) for path in style_paths]
    init_image = images.load_image(init_path) if init_path else None
    config.normalized_style_blend(len(styles))
    checkpoint_directory = output.parent / (output.stem + CHECKPOINT_SUFFIX)
    resume_state = _read_resume_state(checkpoint_directory, config) if arguments.resume else None

    _check_memory(config, content, quiet=arguments.quiet)

    from tf_nst.optimize import Stylizer
    from tf_nst.summaries import RunLog, make_run_directory

    stylizer = Stylizer(content, styles, config, init_image=init_image)
    if resume_state:
        stylizer.restore(resume_state["checkpoint"])
        run_directory = pathlib.Path(resume_state["run_directory"])
        run_directory.mkdir(parents=True, exist_ok=True)
    else:
        run_directory = make_run_directory(arguments.logdir, arguments.run_name)
    _say(arguments, f"precision {stylizer.precision}; TensorBoard run {run_directory}")

    interrupts = _InterruptHandler()
    log = RunLog(run_directory)
    last = None
    try:
        with interrupts:
            if not resume_state:
                _log_start(log, config, stylizer, content, styles, run_directory)
            last = _optimise(
                arguments, stylizer, log, output, checkpoint_directory, run_directory, interrupts
            )
            final = stylizer.final_image()
            images.save_image(final, output)
            _log_end(log, stylizer, last, final)
    except _SecondSignalError:
        print(
            "\ntf-nst: stopped at once by a second signal; no partial file was left",
            file=sys.stderr,
        )
        return interrupts.exit_status
    finally:
        log.close()

    if stylizer.stop_reason and stylizer.stop_reason != "time limit":
        print(
            f"tf-nst: stopped: {stylizer.stop_reason}; saved the best finite image "
            f"(loss {stylizer.best_loss:.4g}) to {output}",
            file=sys.stderr,
        )
        return 1
    if interrupts.signal_name:
        _save_checkpoint(stylizer, checkpoint_directory, run_directory, config)
        print(
            f"\ntf-nst: {interrupts.signal_name} received: saved the best image "
            f"(loss {stylizer.best_loss:.4g}) to {output} and a checkpoint to "
            f"{checkpoint_directory}; continue with the same command plus --resume",
            file=sys.stderr,
        )
        return interrupts.exit_status
    reason = " (time limit reached)" if stylizer.stop_reason == "time limit" else ""
    _say(
        arguments,
        f"saved {output}{reason}: best loss {stylizer.best_loss:.4g} after "
        f"{stylizer.step} steps in {last.elapsed_seconds if last else 0:.1f} s",
    )
    return 0


def _optimise(arguments, stylizer, log, output, checkpoint_directory, run_directory, interrupts):
    from tf_nst import images
    from tf_nst.losses import group_totals

    progress = ProgressBar(sys.stderr, enabled=not arguments.quiet)
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
        if arguments.checkpoint_every and result.step % arguments.checkpoint_every == 0:
            _save_checkpoint(stylizer, checkpoint_directory, run_directory, stylizer.config)
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


def _save_checkpoint(stylizer, directory: pathlib.Path, run_directory, config) -> None:
    import tensorflow as tf

    from tf_nst.images import atomic_write_bytes

    manager = tf.train.CheckpointManager(stylizer.checkpoint(), str(directory), max_to_keep=1)
    path = manager.save(checkpoint_number=stylizer.step)
    state = {
        "checkpoint": os.path.basename(path),
        "run_directory": str(pathlib.Path(run_directory).resolve()),
        "settings": {key: config.hparams()[key] for key in RESUME_KEYS},
    }
    atomic_write_bytes(json.dumps(state, indent=2).encode(), directory / "run.json")


def _read_resume_state(directory: pathlib.Path, config: StyleConfig) -> dict:
    state_path = directory / "run.json"
    if not state_path.is_file():
        raise StyleTransferError(
            f"nothing to resume: no checkpoint in {directory}; run without --resume"
        )
    try:
        state = json.loads(state_path.read_text())
        checkpoint = str(directory / state["checkpoint"])
        settings = state["settings"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StyleTransferError(
            f"checkpoint state {state_path} is unreadable ({error}): run without --resume"
        ) from None
    current = config.hparams()
    changed = [key for key in RESUME_KEYS if str(settings.get(key)) != str(current[key])]
    if changed:
        raise StyleTransferError(
            "--resume needs the settings of the interrupted run, but these differ: "
            + ", ".join(f"--{key.replace('_', '-')} (was {settings.get(key)})" for key in changed)
        )
    return {**state, "checkpoint": checkpoint}


def _check_memory(config: StyleConfig, content, quiet: bool) -> None:
    from tf_nst.memory import check_fits, estimate_peak_bytes, format_bytes
    from tf_nst.optimize import plan_scales, resolve_precision, working_shape

    largest = plan_scales(config.size, config.steps, config.scales)[-1]
    height, width = working_shape(content.shape, largest.long_side)
    estimate = estimate_peak_bytes(
        height,
        width,
        config.backbone,
        config.content_layers + config.style_layers,
        resolve_precision(config.precision),
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
    """Turns the first SIGINT/SIGTERM into a request to stop and save, the second into exit."""

    def __init__(self):
        self.signal_name: str | None = None
        self.exit_status = 0
        self._previous = {}

    def __enter__(self):
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
            raise _SecondSignalError
        self.signal_name = signal.Signals(number).name


class ProgressBar:
    """A one-line progress bar with loss, speed and ETA; plain lines when not a terminal."""

    WIDTH = 24

    def __init__(self, stream, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.terminal = enabled and stream.isatty()
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
