#!/usr/bin/env python
"""Quality and speed of an any-style (AdaIN) network on paintings and photos it never saw.

Usage:
    python benchmarks/any_style_quality.py MODEL_DIR [--photos 3] [--size 256]
        [--optimization 2] [--tflite] [--sheet docs/images/any_style_sheet.jpg]

MODEL_DIR is a network from `tf-nst train --paintings`. The pairs are its held-out photos (from
its metadata, never trained on) x its held-out public-domain paintings (MANIFEST.tsv says "yes")
plus public-domain paintings of ../shared/images that were never in --paintings. Every figure is
one of the shared measures (`measures.py`, through `train_quality.Evaluator`: content at
block4_conv2, style over the four default Gram layers, "normalized", VGG16):

* content: the output's content error against the photo; the issue's goal is within 1.3 times
  the optimisation's on the same pairs;
* style at 1, 1/2 and 1/4 of the working size (output and painting both reduced): a Gram error
  at the working size alone rewards a fine texture; the reduced sizes reward strokes at the
  painting's scale. "ratio" is the output's over the photo's own (goal: at most 1/2);
* palette: the sliced Wasserstein distance between the output's and the painting's colours in
  CIE Lab, in Lab units (0 = the painting's palette), beside the photo's own; and the median Lab
  lightness on 0-255, beside the painting's;
* strength sweep: content and style at strengths 0, 0.25, 0.5, 0.75, 1;
* blend: a half-and-half blend of two paintings, its style error to each beside each alone;
* speed: ms per 512 px image of the whole network, of the style representation alone, of
  stylizing with a cached representation, and of a per-style network (width 32, the default).

`--optimization N` also runs `tf-nst stylize`'s defaults on the first N pairs. `--tflite` converts
the network (none, fp16, int8) and reports sizes and interpreter latencies. Results go to
RESULTS/any_style.json and are printed as markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from harness import REPOSITORY, SHARED, WEIGHTS, markdown_table  # noqa: E402
from measures import SCALES  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

sys.path.insert(0, str(REPOSITORY))

RESULTS = pathlib.Path(os.environ.get("TF_NST_QUALITY_DIR", "/tmp/tf_nst_quality"))
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Public-domain paintings of ../shared/images (Van Gogh, Hokusai, Turner): never in --paintings.
EXTRA_PAINTINGS = ("starry_night.jpg", "wave.jpg", "shipwreck.jpg")
STYLE_LONG_SIDE = 512
SPEED_SIDE = 512


def public_domain(names) -> list[str]:
    """The names that MANIFEST.tsv marks public domain."""
    manifest = SHARED / "paintings" / "MANIFEST.tsv"
    with open(manifest, encoding="utf-8") as file:
        rows = {row["file"]: row for row in csv.DictReader(file, delimiter="\t")}
    return [
        name
        for name in names
        if rows.get(name, {}).get("public_domain_guess", "").startswith("yes")
    ]


def mean_rows(rows):
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def timed(function, repeats=3) -> float:
    """Milliseconds of the fastest of `repeats` calls, after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def speed(network, photo, painting, work) -> dict[str, float]:
    """Milliseconds per 512 px image, at fp32 and (where the export and CPU have it) bf16."""
    import keras
    import tensorflow as tf

    from tf_nst.image.decoding import resize
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.stylizer import load_stylizer
    from tf_nst.networks.transform import build_transform_network
    from tf_nst.precision import preferred_precision

    photo = resize(photo, SPEED_SIDE, SPEED_SIDE)[None]
    painting = resize(painting, SPEED_SIDE, SPEED_SIDE)[None]
    keras.utils.set_random_seed(0)
    per_style_path = work / "per_style"
    export_stylizer(build_transform_network(32), per_style_path, {}, ("fp32", "bf16"))
    photo_tensor = tf.constant(photo)
    precisions = ["fp32"]
    if preferred_precision() == "bf16" and "bf16" in network.metadata.get("precisions", []):
        precisions.append("bf16")
    figures = {}
    for precision in precisions:
        any_style = network.with_precision(precision)
        per_style = load_stylizer(per_style_path, precision=precision)
        representation = any_style.style_representation(painting)
        figures |= {
            f"any-style network (photo + painting), {precision}": timed(
                lambda n=any_style: n(photo, painting).numpy()
            ),
            f"style representation alone, {precision}": timed(
                lambda n=any_style: n.style_representation(painting).numpy()
            ),
            f"stylize with a cached representation, {precision}": timed(
                lambda n=any_style, r=representation: n.stylize_with_representation(
                    photo, r
                ).numpy()
            ),
            f"per-style network (width 32), {precision}": timed(
                lambda n=per_style: n(photo_tensor).numpy()
            ),
        }
    return figures


def tflite_figures(model, photos, paintings, work) -> list[list]:
    from tf_nst.image.decoding import resize
    from tf_nst.networks.any_style.export import (
        TFLITE_PHOTO_SIDE,
        TFLITE_STYLE_SIDE,
        export_tflite,
        run_tflite,
        tflite_interpreter,
    )
    from tf_nst.networks.stylizer import load_stylizer

    rows = []
    photo = resize(photos[0], TFLITE_PHOTO_SIDE, TFLITE_PHOTO_SIDE)[None]
    style = resize(paintings[0], TFLITE_STYLE_SIDE, TFLITE_STYLE_SIDE)[None]
    network = load_stylizer(model)
    expected = network(photo, style, 1.0).numpy()
    for quantize in ("none", "fp16", "int8"):
        output = work / f"tflite_{quantize}"
        description = export_tflite(model, output, quantize, photos, paintings)
        representation_interpreter = tflite_interpreter(output / "style_representation.tflite")
        transfer_interpreter = tflite_interpreter(output / "stylize_with_representation.tflite")
        representation = run_tflite(representation_interpreter, {"styles": style})
        inputs = {"photos": photo, "representation": representation, "strength": 1.0}
        files = description["files"]

        def represent(interpreter=representation_interpreter):
            return run_tflite(interpreter, {"styles": style})

        def transfer(interpreter=transfer_interpreter, inputs=inputs):
            return run_tflite(interpreter, inputs)

        try:
            difference = float(np.abs(transfer() - expected).mean())
        except RuntimeError as error:  # int8 can divide by a deviation quantised to 0
            rows.append([quantize, f"fails: {str(error).splitlines()[0][:80]}", "", "", "", ""])
            continue
        rows.append(
            [
                quantize,
                f"{difference:.4f}",
                f"{files['style_representation.tflite']['bytes'] / 1e6:.1f}",
                f"{timed(represent):.0f}",
                f"{files['stylize_with_representation.tflite']['bytes'] / 1e6:.1f}",
                f"{timed(transfer):.0f}",
            ]
        )
    return rows


def contact_sheet(photos, paintings, outputs, path: pathlib.Path, cell: int = 160) -> None:
    """Photos as rows (named only), public-domain paintings as columns (shown), outputs."""
    gap, label = 3, 16
    sheet = Image.new(
        "RGB",
        ((len(paintings) + 1) * (cell + gap), label + (len(photos) + 1) * (cell + gap)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    draw.text(
        (4, 2),
        "tf_nst any-style (AdaIN), held-out photos x unseen paintings",
        fill="black",
        font=font,
    )

    def paste(image, column, row):
        picture = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
        picture.thumbnail((cell, cell), Image.LANCZOS)
        left = column * (cell + gap) + (cell - picture.width) // 2
        top = label + row * (cell + gap) + (cell - picture.height) // 2
        sheet.paste(picture, (left, top))

    for column, (name, painting) in enumerate(paintings, start=1):
        paste(painting, column, 0)
        draw.text(
            (column * (cell + gap) + 2, label + cell - 12), name[:26], fill="white", font=font
        )
    for row, (name, _) in enumerate(photos, start=1):
        draw.text((4, label + row * (cell + gap) + cell // 2), name[:24], fill="black", font=font)
        for column in range(1, len(paintings) + 1):
            paste(outputs[(row - 1, column - 1)], column, row)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=80, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--photos", type=int, default=3, help="held-out photos used")
    parser.add_argument("--size", type=int, default=256, help="working long side")
    parser.add_argument("--optimization", type=int, default=0, help="pairs for the baseline")
    parser.add_argument("--tflite", action="store_true")
    parser.add_argument("--sheet", default=None)
    arguments = parser.parse_args()

    from tf_nst.image.decoding import load_image, resize_to_long_side
    from tf_nst.networks.stylizer import load_stylizer

    network = load_stylizer(arguments.model)
    training = network.metadata["training"]
    photo_folder = pathlib.Path(training["photos"][0])
    painting_folder = pathlib.Path(training["paintings"][0])
    photo_names = training["held_out_photos"][: arguments.photos]
    painting_names = public_domain(training["held_out_paintings"])
    photos = [
        (name, load_image(photo_folder / name, long_side=arguments.size)) for name in photo_names
    ]
    paintings = [
        (name, load_image(painting_folder / name, long_side=STYLE_LONG_SIDE))
        for name in painting_names
    ] + [
        (name, load_image(SHARED / "images" / name, long_side=STYLE_LONG_SIDE))
        for name in EXTRA_PAINTINGS
    ]
    print(
        f"{len(photos)} held-out photos x {len(paintings)} unseen public-domain paintings: "
        f"{[name for name, _ in paintings]}",
        flush=True,
    )
    from train_quality import Evaluator

    measure = Evaluator().measure
    results = {"pairs": [], "strength": {}, "settings": vars(arguments), "model": training}

    outputs = {}
    sweep = {strength: [] for strength in STRENGTHS}
    for photo_index, (photo_name, photo) in enumerate(photos):
        for painting_index, (painting_name, painting) in enumerate(paintings):
            representation = network.style_representation(painting)
            for strength in STRENGTHS:
                output = network.stylize_with_representation(photo, representation, strength)
                output = output.numpy()[0]
                row = measure(photo, output, painting)
                sweep[strength].append(row)
                if strength == 1.0:
                    outputs[(photo_index, painting_index)] = output
                    results["pairs"].append({"photo": photo_name, "painting": painting_name, **row})
    results["strength"] = {str(strength): mean_rows(rows) for strength, rows in sweep.items()}
    network_mean = results["strength"]["1.0"]

    # A blend of the first two paintings, half and half, against each alone.
    blend_rows = []
    (name_a, painting_a), (name_b, painting_b) = paintings[:2]
    for _, photo in photos:
        blended = network(photo, [painting_a, painting_b], 1.0, [1.0, 1.0]).numpy()[0]
        alone_a = network(photo, painting_a).numpy()[0]
        alone_b = network(photo, painting_b).numpy()[0]
        blend_rows.append(
            {
                f"{label}_to_{target}": measure(photo, image, painting)["style_1"]
                for label, image in (("a", alone_a), ("blend", blended), ("b", alone_b))
                for target, painting in (("a", painting_a), ("b", painting_b))
            }
        )
    results["blend"] = {"a": name_a, "b": name_b, **mean_rows(blend_rows)}

    # The optimisation's defaults on the first pairs.
    if arguments.optimization:
        from tf_nst.config import StyleConfig
        from tf_nst.optimize.optimization import Optimization

        config = StyleConfig(size=arguments.size, backbone="vgg16", weights=str(WEIGHTS))
        optimization_rows, network_rows = [], []
        pairs = [(p, q) for p in range(len(photos)) for q in range(len(paintings))]
        for photo_index, painting_index in pairs[: arguments.optimization]:
            photo, painting = photos[photo_index][1], paintings[painting_index][1]
            started = time.perf_counter()
            run = Optimization(photo, [resize_to_long_side(painting, arguments.size)], config)
            for _ in run.steps():
                pass
            seconds = time.perf_counter() - started
            output = np.asarray(run.final_image())
            optimization_rows.append({**measure(photo, output, painting), "seconds": seconds})
            network_rows.append(measure(photo, outputs[(photo_index, painting_index)], painting))
        results["optimization"] = mean_rows(optimization_rows)
        results["network_on_optimization_pairs"] = mean_rows(network_rows)

    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        speed_photo = load_image(photo_folder / photo_names[0])
        results["speed_ms"] = speed(network, speed_photo, paintings[0][1], work)
        # Saved before the TFLite stage: a failed conversion or invocation loses nothing else.
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "any_style.json").write_text(json.dumps(results, indent=2, default=str))
        if arguments.sheet:
            contact_sheet(photos, paintings, outputs, pathlib.Path(arguments.sheet))
        if arguments.tflite:
            calibration = [photo for _, photo in photos]
            results["tflite"] = tflite_figures(
                arguments.model, calibration, [painting for _, painting in paintings], work
            )

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "any_style.json").write_text(json.dumps(results, indent=2, default=str))

    def figures(row):
        return [
            f"{row['content']:.3f}",
            *(
                f"{row[f'style_{s}']:.3f} ({row[f'style_{s}'] / row[f'photo_style_{s}']:.2f})"
                for s in SCALES
            ),
            f"{row['palette']:.1f} ({row['photo_palette']:.1f})",
            f"{row['lightness_50']:.0f} ({row['painting_lightness_50']:.0f})",
        ]

    headers = [
        "",
        "content",
        "style 1 (ratio)",
        "style 1/2 (ratio)",
        "style 1/4 (ratio)",
        "palette, Lab (photo's)",
        "lightness 50 (painting's)",
    ]
    rows = [["any-style network, all pairs", *figures(network_mean)]]
    if "optimization" in results:
        rows.append(
            [
                "any-style network, baseline pairs",
                *figures(results["network_on_optimization_pairs"]),
            ]
        )
        rows.append(
            [
                f"optimisation defaults ({results['optimization']['seconds']:.0f} s each)",
                *figures(results["optimization"]),
            ]
        )
    print("\n".join(markdown_table(headers, rows)))
    print()
    print(
        "\n".join(
            markdown_table(
                ["strength", "content", "style 1", "style 1/2", "style 1/4", "palette"],
                [
                    [
                        f"{float(s):g}",
                        f"{r['content']:.3f}",
                        f"{r['style_1']:.3f}",
                        f"{r['style_2']:.3f}",
                        f"{r['style_4']:.3f}",
                        f"{r['palette']:.1f}",
                    ]
                    for s, r in results["strength"].items()
                ],
            )
        )
    )
    print()
    blend = results["blend"]
    print(
        "\n".join(
            markdown_table(
                ["output", f"style error to {blend['a']}", f"style error to {blend['b']}"],
                [
                    [label, f"{blend[f'{key}_to_a']:.3f}", f"{blend[f'{key}_to_b']:.3f}"]
                    for label, key in ((blend["a"], "a"), ("blend 1:1", "blend"), (blend["b"], "b"))
                ],
            )
        )
    )
    print()
    print(
        "\n".join(
            markdown_table(
                ["at 512 x 512 px", "ms"],
                [[name, f"{value:.0f}"] for name, value in results["speed_ms"].items()],
            )
        )
    )
    if "tflite" in results:
        print()
        print(
            "\n".join(
                markdown_table(
                    [
                        "quantize",
                        "output error (mean, [0, 1])",
                        "representation MB",
                        "representation ms",
                        "transfer MB",
                        "transfer ms",
                    ],
                    results["tflite"],
                )
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
