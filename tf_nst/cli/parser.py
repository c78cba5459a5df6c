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
import dataclasses
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_nst import __version__  # noqa: E402  (the environment must be set before TensorFlow loads)
from tf_nst.cli.commands import (  # noqa: E402
    ANY_STYLE_ONLY_FIELDS,
    run_apply,
    run_export,
    run_stylize,
    run_train,
)
from tf_nst.cli.options import add_fields  # noqa: E402
from tf_nst.config import (  # noqa: E402
    AnyStyleConfig,
    ApplyConfig,
    OutputOptions,
    StyleConfig,
    TfliteConfig,
    TrainConfig,
    own_fields_first,
    shown_default,
)
from tf_nst.errors import StyleTransferError  # noqa: E402
from tf_nst.run.console import print_line as _print  # noqa: E402
from tf_nst.text import field_to_flag, one_line  # noqa: E402

BACKBONE_FIELDS = ("backbone", "weights", "pooling", "precision")
# Training writes no numbered intermediates and logs its validation pictures at each validation.
TRAIN_OUTPUT_FIELDS = ("logdir", "run_name", "checkpoint_every", "resume", "quiet")


# --- options generated from the config dataclasses -------------------------------------------


def any_style_defaults() -> dict[str, str]:
    """The shown defaults of `train`'s shared flags: both kinds' where they differ."""
    from tf_nst.text import setting_text

    shown = {}
    names = {field.name for field in own_fields_first(AnyStyleConfig)}
    for field in own_fields_first(TrainConfig):
        if field.name not in names or field.name in AnyStyleConfig.UNUSED_FIELDS:
            continue
        per_style = shown_default(TrainConfig, field.name)
        any_style = shown_default(AnyStyleConfig, field.name)
        if per_style != any_style:
            shown[field.name] = f"{setting_text(per_style)}; --paintings: {setting_text(any_style)}"
    return shown


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
    export.add_argument(
        "output_directory",
        metavar="OUT_DIR",
        help="SavedModel directory to write; with --format tflite, the MODEL_DIR to convert",
    )
    export.add_argument(
        "--format",
        choices=("savedmodel", "tflite"),
        default="savedmodel",
        help="savedmodel: the VGG feature extractor; tflite: convert a network from tf-nst train "
        "(MODEL_DIR) to TFLite files in a new folder -o OUT (default: %(default)s)",
    )
    export.add_argument("-o", "--output", metavar="OUT", help="with --format tflite: the folder")
    export.add_argument(
        "--photos", metavar="DIR", help="int8: representative photos (default: the training's)"
    )
    export.add_argument(
        "--paintings",
        metavar="DIR",
        help="int8 of an any-style network: representative paintings (default: the training's)",
    )
    add_fields(export, TfliteConfig)
    # fp32 by default: an exported model should not depend on the machine that exported it.
    add_fields(export, StyleConfig, names=BACKBONE_FIELDS, defaults={"precision": "fp32"})
    layers = ",".join(dict.fromkeys(StyleConfig().style_layers + StyleConfig().content_layers))
    export.add_argument(
        "--layers", default=layers, help=f"comma-separated layers to export (default: {layers})"
    )
    export.add_argument("--debug", action="store_true", help="show tracebacks")

    train = commands.add_parser(
        "train",
        help="train a fast style network on a folder of photos",
        description="Train a feed-forward network (Johnson et al. 2016) to paint any photo in "
        "the style of the STYLE images, and export it as a SavedModel in MODEL_DIR.",
    )
    train.add_argument(
        "styles", nargs="*", metavar="STYLE", help="style image(s), or --paintings DIR"
    )
    train.add_argument(
        "--photos", required=True, metavar="DIR", help="folder of training photos (recursive)"
    )
    train.add_argument(
        "--paintings",
        action="append",
        metavar="DIR",
        help="instead of STYLE images: a folder of paintings (recursive; repeatable) to train an "
        "any-style network (AdaIN) that takes its painting when applied",
    )
    add_fields(train.add_argument_group("the training"), TrainConfig, defaults=any_style_defaults())
    add_fields(
        train.add_argument_group("any-style training (--paintings)"),
        AnyStyleConfig,
        names=ANY_STYLE_ONLY_FIELDS,
    )
    outputs = train.add_argument_group("outputs")
    outputs.add_argument(
        "-o", "--output", required=True, metavar="MODEL_DIR", help="the model folder to create"
    )
    add_fields(outputs, OutputOptions, names=TRAIN_OUTPUT_FIELDS)
    train.add_argument("--debug", action="store_true", help="show tracebacks")

    apply = commands.add_parser(
        "apply",
        help="stylize images with a trained network",
        description="Stylize image files and folders with a network from tf-nst train. OUT is "
        "a file for one input file, else a folder.",
    )
    apply.add_argument("model", metavar="MODEL_DIR", help="a model folder from tf-nst train")
    apply.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    apply.add_argument("-o", "--output", required=True, metavar="OUT", help="output file or folder")
    apply.add_argument(
        "--style",
        dest="styles",
        action="append",
        metavar="PAINTING",
        help="any-style networks: the painting to paint in (repeatable: blended)",
    )
    add_fields(apply, ApplyConfig)
    apply.add_argument("--quiet", action="store_true", help="no progress lines")
    apply.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


# --- main -----------------------------------------------------------------------------------------


def restore_standard_streams() -> None:
    """Points closed descriptors 0, 1 and 2 at /dev/null, and rebuilds `sys.stdin` and the rest.

    A daemon, a cron job or a launcher may start a program with `2>&-` or `>&-`. Python then sets
    `sys.stderr` (or `sys.stdout`) to None, which breaks every write to it; worse, the next file
    the process opens takes the free number, so that whatever writes to "standard error"
    (TensorFlow's C++ log, say) would land in that file, an image or a checkpoint. Run before
    anything opens a file, this gives each closed number a harmless target, so that no file can
    take it, and the run goes on as it does with a closed terminal.
    """
    for number, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(number)
        except OSError:
            # The lowest free number is this one: the lower ones are open, or were just opened.
            target = os.open(os.devnull, os.O_RDWR)
            if target != number:
                os.dup2(target, number)
                os.close(target)
            os.set_inheritable(number, True)  # a standard descriptor, as a child expects it
        if getattr(sys, name) is None:
            stream = open(  # noqa: SIM115 - it lives as long as the process, as sys.stderr does
                number, mode, buffering=1, errors="backslashreplace", closefd=False
            )
            setattr(sys, name, stream)


def main(argv: list[str] | None = None) -> int:
    """Runs the `tf-nst` command line and returns its exit status (see the module docstring)."""
    restore_standard_streams()
    arguments = build_parser().parse_args(argv)
    from tf_nst.run import SecondSignalError

    try:
        return COMMANDS[arguments.command](arguments)
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


# --- stylize ------------------------------------------------------------------------------------


# --- export -------------------------------------------------------------------------------------


# --- train and apply ----------------------------------------------------------------------------


COMMANDS = {
    "stylize": run_stylize,
    "export": run_export,
    "train": run_train,
    "apply": run_apply,
}

if __name__ == "__main__":
    sys.exit(main())
