"""The `tf-nst` command line: flags generated from the config dataclasses, then library calls.

Every option is a field of `StyleConfig` or `OutputOptions` (`tf_nst.config`), where its default,
help and choices live once; `--help` and the README's options table are generated from them. The
CLI parses, runs the checks that can run before TensorFlow loads, calls the library and maps
exceptions to exit statuses. The run itself (TensorBoard, checkpoints, signals, progress, atomic
outputs) is `tf_nst.run`.

Exit statuses:
    0: done; also when `--time-limit` ran out (the best result is saved).
    1: stopped early because the loss became non-finite (the best finite result is saved, if any
        step was finite), the result could not be written (a checkpoint is kept), or an
        unexpected error (one line; `--debug` shows the traceback).
    2: a user-fixable problem (bad image, option, path, weights file or resume state), reported
        as one line, `tf-nst: error: ...`, before anything is written. argparse's own errors
        also exit with 2.
    128 + N: stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP). The first signal saves
        the best result and a checkpoint; a second one stops at once, without a partial file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pathlib
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_nst import __version__  # noqa: E402  (the environment must be set before TensorFlow loads)
from tf_nst.config import INITS, OutputOptions, StyleConfig  # noqa: E402
from tf_nst.errors import StyleTransferError  # noqa: E402
from tf_nst.text import field_to_flag, one_line, printable, setting_text  # noqa: E402

BACKBONE_FIELDS = ("backbone", "weights", "pooling", "precision")


# --- options generated from the config dataclasses -------------------------------------------


def add_fields(parser, config_class, names=None, defaults=None) -> None:
    """Adds one flag per field of `config_class` (or of `names`), from the field's metadata.

    Flags default to `argparse.SUPPRESS`, so that a flag not given leaves the dataclass default in
    charge: the default exists once, in the dataclass, and `--help` shows it from there.
    """
    defaults = defaults or {}
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    for name in names or fields:
        field = fields[name]
        default = defaults.get(name, field.default)
        options = {key: value for key, value in field.metadata.items() if key != "help"}
        kind = field.type.replace(" | None", "")
        if kind == "bool":
            options.setdefault("action", argparse.BooleanOptionalAction)
        elif kind in ("int", "float"):
            options["type"] = int if kind == "int" else float
        if "choices" not in options and kind != "bool":
            options.setdefault("metavar", _metavar(name, kind))
        help_text = field.metadata["help"]
        if "default:" not in help_text:
            shown = "off" if default is False else setting_text(default)
            help_text += f" (default: {shown})"
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=help_text.replace("%", "%%"),
            **options,
        )


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
            value = _split(value, float if "float" in field.type else str, field.name)
        values[field.name] = value
    return config_class(**values)


def _split(text: str, convert, name: str) -> tuple:
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
    for field in dataclasses.fields(config_class):
        default = defaults.get(field.name, field.default)
        help_text = field.metadata["help"]
        shown = "off" if default is False else setting_text(default)
        if "default:" in help_text:
            help_text, _, shown = help_text.partition(" (default: ")
            shown = shown.rstrip(")")
        flag = "--" + field.name.replace("_", "-")
        rows.append(f"| `{flag}` | {shown} | {help_text}. |")
    return "\n".join(rows)


def readme_tables() -> str:
    """The README's options tables for `stylize`, as markdown."""
    return "\n\n".join(
        [
            "Settings of the stylization (`StyleConfig`):",
            markdown_options_table(StyleConfig),
            "Outputs (`OutputOptions`; `-o` is `--output`):",
            markdown_options_table(OutputOptions),
        ]
    )


# --- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Returns the `tf-nst` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="tf-nst", description="Neural style transfer with TensorFlow and Keras."
    )
    parser.add_argument("--version", action="version", version=f"tf-nst {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    stylize = commands.add_parser(
        "stylize",
        help="paint a content photo in the style of one or more paintings",
        description="Optimise an image so that its VGG features match CONTENT and its Gram "
        "matrices match the STYLE images. With no images (or --example) it runs on the "
        "bundled example pair.",
    )
    stylize.add_argument("content", nargs="?", metavar="CONTENT", help="content image")
    stylize.add_argument("styles", nargs="*", metavar="STYLE", help="style image(s)")
    stylize.add_argument("--example", action="store_true", help="use the bundled example pair")
    add_fields(stylize.add_argument_group("the optimisation"), StyleConfig)
    outputs = stylize.add_argument_group("outputs")
    outputs.add_argument(
        "-o", "--output", default=argparse.SUPPRESS, help="output image (default: stylized.png)"
    )
    add_fields(
        outputs, OutputOptions, names=[f.name for f in dataclasses.fields(OutputOptions)][1:]
    )
    stylize.add_argument("--debug", action="store_true", help="show tracebacks")

    export = commands.add_parser(
        "export",
        help="export the VGG feature extractor as a SavedModel",
        description="Write the feature extractor as a SavedModel whose serving_default "
        "signature maps `images` (float32 [batch, height, width, 3], RGB in [0, 1]) to one "
        "output per layer.",
    )
    export.add_argument("output_directory", metavar="OUT_DIR", help="SavedModel directory")
    # fp32 by default: an exported model should not depend on the machine that exported it.
    add_fields(export, StyleConfig, names=BACKBONE_FIELDS, defaults={"precision": "fp32"})
    layers = ",".join(dict.fromkeys(StyleConfig().style_layers + StyleConfig().content_layers))
    export.add_argument(
        "--layers", default=layers, help=f"comma-separated layers to export (default: {layers})"
    )
    export.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Runs the `tf-nst` command line and returns its exit status (see the module docstring)."""
    arguments = build_parser().parse_args(argv)
    from tf_nst.run import SecondSignalError

    try:
        if arguments.command == "export":
            return run_export(arguments)
        return run_stylize(arguments)
    except StyleTransferError as error:
        if arguments.debug:
            raise
        _print(f"tf-nst: error: {field_to_flag(one_line(error))}")
        return 2
    except (KeyboardInterrupt, SecondSignalError):
        # A signal while TensorFlow loads, before the run's own handler is installed.
        if arguments.debug:
            raise
        _print("tf-nst: interrupted before the run started; nothing was saved")
        return 130
    except MemoryError:
        if arguments.debug:
            raise
        _print("tf-nst: error: out of memory: lower --size (or --style-scale)")
        return 1
    except Exception as error:  # noqa: BLE001 - the last line of defence against a traceback
        if arguments.debug:
            raise
        _print(
            f"tf-nst: error: unexpected {type(error).__name__}: {one_line(error)} (a bug: run "
            "again with --debug for the traceback and report it)"
        )
        return 1


def _print(line: str, stream=None) -> None:
    """Prints a line to stderr (or `stream`); a closed pipe or terminal loses only the line."""
    stream = stream if stream is not None else sys.stderr
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError, AttributeError):
        # Point the descriptor at /dev/null, so that Python's own flush at exit cannot fail
        # ("Exception ignored ... BrokenPipeError") either; the exit status tells.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def _import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow and probes its devices with its native start-up log hidden.

    TensorFlow writes start-up lines (absl, oneDNN, CUDA probing) straight to file descriptor 2,
    ignoring TF_CPP_MIN_LOG_LEVEL, so they would bury the CLI's one-line messages. They go to a
    temporary file instead, which is shown only if the import fails.
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


# --- stylize ------------------------------------------------------------------------------------


def run_stylize(arguments: argparse.Namespace) -> int:
    """Checks everything a user can get wrong, cheapest first, then runs the stylization."""
    from tf_nst import images, run
    from tf_nst.backbones import validate_layers
    from tf_nst.jobs import StylizeJob, stylize_resume_key
    from tf_nst.memory import check_fits, estimate_run_bytes, format_bytes, load_sides
    from tf_nst.scales import check_image_sizes
    from tf_nst.weights_file import check_weights_file

    config = from_arguments(StyleConfig, arguments)
    options = from_arguments(OutputOptions, arguments)
    content_path, style_paths = _stylize_inputs(arguments)
    config.normalized_style_blend(len(style_paths))
    init_path = None if config.init in INITS else config.init
    if init_path is not None and not os.path.exists(init_path):
        raise StyleTransferError(
            f"`init` {printable(init_path)!r} is neither content, noise, style nor an existing "
            "image file: pass one of those words or the path of an image"
        )
    input_paths = [content_path, *style_paths] + ([init_path] if init_path else [])
    images.check_output_path(options.output, input_paths)
    check_weights_file(config.weights, config.backbone)
    validate_layers(config.backbone, config.content_layers + config.style_layers)
    headers = [images.read_image_info(path) for path in input_paths]
    check_image_sizes(
        config, _shape(headers[0]), [_shape(info) for info in headers[1 : 1 + len(style_paths)]],
        content_path, style_paths,
    )  # fmt: skip
    key = stylize_resume_key(config, content_path, style_paths)
    plan = run.check_outputs(options, key, _intermediates(options, config.steps))
    content_side, style_side = load_sides(config)
    content = images.load_image(content_path, long_side=content_side)
    styles = [images.load_image(path, long_side=style_side) for path in style_paths]
    init_image = images.load_image(init_path, long_side=content_side) if init_path else None

    _import_tensorflow(verbose=arguments.debug)
    from tf_nst.optimize import resolve_precision

    console = run.Console(quiet=options.quiet, time_limit=config.time_limit)
    precision = resolve_precision(config.precision)
    estimate = estimate_run_bytes(
        config, headers[0], headers[1 : 1 + len(style_paths)],
        headers[-1] if init_path else None, precision,
    )  # fmt: skip
    console.note(f"precision {precision}, estimated peak memory {format_bytes(estimate)}")
    check_fits(estimate, config.size)
    with run.SignalHandler() as interrupts:
        try:
            job = StylizeJob(content, styles, config, init_image=init_image)
            if plan.resume_state:
                job.restore(plan.resume_state["checkpoint"])
            outcome = run.run_job(job, plan, options, key, console, interrupts)
        except run.SecondSignalError:
            outcome = run.Outcome(
                interrupts.exit_status,
                "tf-nst: stopped at once by a second signal before the first step; nothing was "
                "saved",
            )
    if outcome.note:
        console.note(outcome.message.removeprefix("tf-nst: "))
    else:
        console.final(outcome.message)
    return outcome.status


def _intermediates(options: OutputOptions, steps: int):
    """The numbered intermediates `--save-every` would write, given the output path."""
    from tf_nst.jobs import intermediate_image_name

    if not options.save_every:
        return lambda output: []
    return lambda output: [
        intermediate_image_name(output, step)
        for step in range(options.save_every, steps + 1, options.save_every)
    ]


def _stylize_inputs(arguments) -> tuple[str, list[str]]:
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


def _shape(info) -> tuple[int, int]:
    return info.height, info.width


# --- export -------------------------------------------------------------------------------------


def run_export(arguments: argparse.Namespace) -> int:
    """Builds the extractor and writes it as a SavedModel; a signal lets it finish first."""
    from tf_nst import run

    config = from_arguments(StyleConfig, arguments, defaults={"precision": "fp32"})
    output = pathlib.Path(os.path.abspath(arguments.output_directory))
    label = printable(arguments.output_directory)
    if os.path.lexists(output):
        raise StyleTransferError(
            f"{label} already exists: choose a new OUT_DIR or remove the old export"
        )
    parent = output.parent
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise StyleTransferError(f"the directory {printable(str(parent))} {what}: create it first")
    if len(os.fsencode(output.name)) > 200:
        raise StyleTransferError(f"OUT_DIR name {label[:40]}... is too long: choose a shorter one")
    _import_tensorflow(verbose=arguments.debug)
    import tensorflow as tf

    from tf_nst.export import export_feature_extractor
    from tf_nst.features import build_feature_extractor, validate_layers
    from tf_nst.optimize import resolve_precision

    layers = validate_layers(config.backbone, _split(arguments.layers, str, "layers"))
    if not layers:
        raise StyleTransferError("--layers is empty: name at least one layer")
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


if __name__ == "__main__":
    sys.exit(main())
