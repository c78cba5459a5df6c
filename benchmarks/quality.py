#!/usr/bin/env python
"""The quality grid: settings run on many contents x styles, measured and shown.

Usage:
    python benchmarks/quality.py --setting defaults --setting old --size 256
    python benchmarks/quality.py --setting 'lighter={"style_weight": 10}' --quick

Each setting is the default `StyleConfig` with changes: `defaults` (the current defaults), `old`
(the defaults before issue 10, kept here so the comparison can be rerun), or `NAME=JSON` with
`StyleConfig` fields (lists become tuples). Every pair of every setting is stylized with the shared
VGG16 and measured by `Measurer.measure` (README.md, "Defaults on many paintings", explains every
column).
The results are cached as `RESULTS/NAME/results.jsonl` plus one PNG per pair, so an interrupted
grid resumes where it stopped, and a contact sheet per setting is written (contents as rows,
styles as columns) as `SHEETS/quality_NAME.jpg`.

The measures use layers no setting of the grid optimises (`HELD_OUT_*`), so that tuning on the
grid cannot simply fit the measure. The ones the three quality benchmarks share come from
`measures.py`: the held-out style error at the working size and at 1/2 and 1/4 of it
(`style_held_out`, `style_2`, `style_4`, with the photo's own as `photo_style_S` in the results),
the palette distance in Lab to the painting (`palette`, the photo's `photo_palette`), the Lab
lightness percentiles (`lightness`, `painting_lightness`) and, on the portraits of
`portraits.json`, the per-eye leak (`eye_leak`, the photo's `photo_eye_leak`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tests/test_defaults.py loads this file by its path: the harness beside it must be importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import measures  # noqa: E402
import numpy as np  # noqa: E402
from harness import REPOSITORY, SHARED, WEIGHTS, markdown_table, table_row  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

sys.path.insert(0, str(REPOSITORY))

from tf_nst.config import StyleConfig  # noqa: E402
from tf_nst.features.extractor import build_feature_extractor  # noqa: E402
from tf_nst.image import colors, decoding  # noqa: E402
from tf_nst.image.decoding import resize, resize_to_long_side  # noqa: E402
from tf_nst.optimize.optimization import Optimization  # noqa: E402

CONTENTS = (
    "tubingen",
    "golden_gate",
    "hoovertowernight",
    "chicago",
    "photos/sunhays80_img_005",
    "photos/sunhays80_img_015",
)
STYLES = (
    "starry_night",
    "shipwreck",
    "woman-with-hat-matisse",
    "escher_sphere",
    "wave",
    "udnie",
)
# The defaults before issue 10, tuned on Tübingen + The Starry Night alone.
OLD_DEFAULTS = {
    "style_weight": 20.0,
    "content_layers": ("block4_conv2",),
    "style_layers": (
        "block1_conv1",
        "block2_conv1",
        "block3_conv1",
        "block4_conv1",
        "block5_conv1",
    ),
    "style_layer_weights": None,
}
# tf_nst's own errors are read on the layers every setting compared here optimises, with equal
# weights, so that all settings are measured on the same scale.
OWN_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
OWN_CONTENT_LAYER = "block4_conv2"
# Layers that no setting compared here optimises: the second (or third) convolution of a block.
# Blocks 1-3 hold the brushwork and the palette; block 4's last layer and block 5 (which the old
# defaults optimised) hold larger, object-like structure, reported apart as "style_deep".
HELD_OUT_STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3")
DEEP_STYLE_LAYERS = ("block4_conv3", "block5_conv1")
HELD_OUT_CONTENT_LAYERS = ("block3_conv3", "block4_conv3")
# The deep layer of the leak measure: object parts (eyes, faces, boats) live here.
LEAK_LAYER = "block5_conv3"
TONE_PERCENTILES = (5, 50, 95)
MEASURE_LAYERS = tuple(
    dict.fromkeys(
        OWN_STYLE_LAYERS
        + (OWN_CONTENT_LAYER,)
        + HELD_OUT_STYLE_LAYERS
        + DEEP_STYLE_LAYERS
        + HELD_OUT_CONTENT_LAYERS
        + (LEAK_LAYER, measures.EYE_LAYER)
    )
)
COLUMNS = (
    "style",
    "content",
    "outlines",
    "style_held_out",
    "style_2",
    "style_4",
    "style_deep",
    "content_held_out",
    "leak",
    "eye_leak",
    "photo_eye_leak",
    "palette",
    "photo_palette",
    "lightness",
    "painting_lightness",
    "tone_to_style",
    "tone_to_content",
    "range_ratio",
    "seconds",
)
# Columns that show the three lightness percentiles (`measures.LIGHTNESS_PERCENTILES`) at once.
LIGHTNESS_COLUMNS = ("lightness", "painting_lightness")


def parse_setting(text: str) -> tuple[str, dict]:
    """Returns (name, StyleConfig changes) of a `--setting` argument."""
    if text == "defaults":
        return text, {}
    if text == "old":
        return text, dict(OLD_DEFAULTS)
    name, separator, changes = text.partition("=")
    if not separator:
        raise SystemExit(f"--setting {text!r}: use defaults, old or NAME=JSON")
    values = json.loads(changes)
    return name, {
        key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
    }


def luminance_percentiles(image: np.ndarray) -> np.ndarray:
    """Returns the 5th, 50th and 95th percentiles of the luminance of an RGB image in [0, 1]."""
    return np.percentile(colors.luminance(np.clip(image, 0, 1)), TONE_PERCENTILES)


def tone_distance(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the luminance percentiles of two images, in [0, 1].

    Against the style: 0 when the result has the painting's dark end, middle tone and bright end;
    a pale, washed-out result has its percentiles above the painting's.
    """
    return float(np.abs(luminance_percentiles(image) - luminance_percentiles(reference)).mean())


def range_ratio(image: np.ndarray, reference: np.ndarray) -> float:
    """The tonal spread (95th - 5th luminance percentile) of `image` over `reference`'s."""
    first, second = luminance_percentiles(image), luminance_percentiles(reference)
    return float((first[-1] - first[0]) / max(1e-6, second[-1] - second[0]))


def deep_match(output_features: np.ndarray, style_features: np.ndarray) -> float:
    """Mean over output locations of the best cosine similarity to any style location.

    High when the output's deep features are copies of parts of the painting (its faces, eyes,
    boats), which is what leaking objects means. A close match of the painting's texture raises
    it too, so it compares settings on the same pair rather than meaning much alone; the leak
    test (tests/test_defaults.py) measures against a known object instead.
    """
    output_flat = output_features.reshape(-1, output_features.shape[-1]).astype(np.float64)
    style_flat = style_features.reshape(-1, style_features.shape[-1]).astype(np.float64)
    output_flat /= np.linalg.norm(output_flat, axis=1, keepdims=True) + 1e-9
    style_flat /= np.linalg.norm(style_flat, axis=1, keepdims=True) + 1e-9
    return float((output_flat @ style_flat.T).max(axis=1).mean())


class Measurer:
    """Measures outputs against their content and style, in float32, on fixed layers."""

    def __init__(self, weights: str):
        self.extractor = build_feature_extractor(MEASURE_LAYERS, "vgg16", weights, "max", "fp32")

    def features(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return measures.features_of(self.extractor, image)

    def measure(self, output, content, style, style_side: int, eyes=None) -> dict[str, float]:
        """Returns the grid's columns for one output.

        `content` is taken at the output's size and `style` at `style_side` (the working size of
        its last scale), as the run saw them. `eyes` are the painting's eye boxes
        (`measures.eye_boxes`) when it is a portrait: then `eye_leak` is measured too.
        """
        height, width = output.shape[:2]
        content = resize(np.asarray(content, np.float32), height, width)
        style = resize_to_long_side(np.asarray(style, np.float32), style_side)
        out, con, sty = map(self.features, (output, content, style))
        sizes = measures.style_at_sizes(
            self.extractor, output, content, style, HELD_OUT_STYLE_LAYERS, style_side
        )
        row = {
            "style": measures.style_error(out, sty, OWN_STYLE_LAYERS),
            "content": measures.content_error(out, con, (OWN_CONTENT_LAYER,)),
            "outlines": measures.outline_recall(output, content),
            "style_held_out": sizes["style_1"],
            **sizes,
            "style_deep": measures.style_error(out, sty, DEEP_STYLE_LAYERS),
            "content_held_out": measures.content_error(out, con, HELD_OUT_CONTENT_LAYERS),
            "leak": deep_match(np.asarray(out[LEAK_LAYER][0]), np.asarray(sty[LEAK_LAYER][0])),
            **measures.palette_measures(output, content, style),
            "tone_to_style": tone_distance(output, style),
            "tone_to_content": tone_distance(output, content),
            "range_ratio": range_ratio(output, style),
        }
        if eyes:
            row.update(measures.eye_leak(self.extractor, output, content, style, eyes, style_side))
        return row


def image_path(name: str) -> pathlib.Path:
    folder = SHARED if "/" in name else SHARED / "images"
    return folder / f"{name}.jpg"


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("woman-with-hat-matisse", "matisse")


def run_setting(name, changes, arguments, measurer, loaded) -> list[dict]:
    """Runs (or reads back) every pair of one setting; returns the rows in grid order."""
    folder = pathlib.Path(arguments.results) / name
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "results.jsonl"
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            done[(row["content_image"], row["style_image"], row["size"], row["steps"])] = row
    config = StyleConfig(
        backbone="vgg16",
        weights=arguments.weights,
        size=arguments.size,
        steps=arguments.steps,
        seed=0,
    ).replace(**changes)
    rows = []
    for content_name in arguments.contents:
        for style_name in arguments.styles:
            key = (content_name, style_name, arguments.size, arguments.steps)
            if key in done:
                row = done[key]
                if arguments.remeasure:
                    output = np.asarray(Image.open(row["image"]).convert("RGB"), np.float32) / 255
                    style_side = round(row.get("style_side", arguments.size))
                    row.update(
                        measurer.measure(
                            output,
                            loaded[content_name],
                            loaded[style_name],
                            style_side,
                            measures.eye_boxes(style_name),
                        )
                    )
                rows.append(row)
                continue
            if arguments.cached_only:
                continue
            content, style = loaded[content_name], loaded[style_name]
            optimization = Optimization(content, [style], config)
            started = time.perf_counter()
            for _ in optimization.steps():
                pass
            seconds = time.perf_counter() - started
            output = optimization.final_image()
            style_side = round(optimization.scales[-1].long_side * config.style_scale)
            row = {
                "setting": name,
                "content_image": content_name,
                "style_image": style_name,
                "size": arguments.size,
                "steps": arguments.steps,
                "style_side": style_side,
                **measurer.measure(
                    output, content, style, style_side, measures.eye_boxes(style_name)
                ),
                "seconds": seconds,
            }
            picture = folder / f"{short(content_name)}__{short(style_name)}_{arguments.size}.png"
            Image.fromarray(decoding.to_uint8(output)).save(picture)
            row["image"] = str(picture)
            with cache.open("a") as stream:
                stream.write(json.dumps(row) + "\n")
            print(table_row(table_cells(row)), flush=True)
            rows.append(row)
    return rows


TABLE_HEADERS = ("setting", "content", "style", *COLUMNS)


def column_value(row: dict, column: str):
    """A row's value of a column: a number, the three lightness percentiles, or None if absent.

    Absent: `eye_leak` of a painting that is not a portrait, or a column a cached row was
    measured before (`--remeasure` fills it in).
    """
    if column in LIGHTNESS_COLUMNS:
        values = tuple(row.get(f"{column}_{p}") for p in measures.LIGHTNESS_PERCENTILES)
        return None if None in values else values
    return row.get(column)


def cell(value, column: str) -> str:
    """A column's value as a table cell: "–" when absent, lightness as "p5/p50/p95"."""
    if value is None:
        return "–"
    if isinstance(value, tuple):
        return "/".join(f"{part:.0f}" for part in value)
    return f"{value:.0f}" if column == "seconds" else f"{value:.3f}"


def mean_value(values: list):
    """The mean of the values present (element by element for lightness), or None if none is."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    if isinstance(values[0], tuple):
        return tuple(statistics.fmean(parts) for parts in zip(*values, strict=True))
    return statistics.fmean(values)


def table_cells(row: dict) -> list[str]:
    """One result's cells: its setting and pair, then every column (seconds as a whole number)."""
    return [
        row["setting"],
        short(row["content_image"]),
        short(row["style_image"]),
        *(cell(column_value(row, column), column) for column in COLUMNS),
    ]


def table(rows: list[dict]) -> str:
    """Returns the markdown table of the rows."""
    return "\n".join(markdown_table(TABLE_HEADERS, [table_cells(row) for row in rows]))


def summary(rows_per_setting: dict[str, list[dict]]) -> str:
    """Returns one line per setting: the mean of every column, the worst leaks and contrast."""
    worst = ("leak", "eye_leak", "tone_to_style")
    headers = [
        "setting",
        "pairs",
        *(f"mean {column}" for column in COLUMNS),
        *(f"max {column}" for column in worst),
    ]
    table_rows = []
    for name, rows in rows_per_setting.items():
        if not rows:
            continue
        maxima = [[row[column] for row in rows if row.get(column) is not None] for column in worst]
        table_rows.append(
            [
                name,
                str(len(rows)),
                *(
                    cell(mean_value([column_value(row, column) for row in rows]), column)
                    for column in COLUMNS
                ),
                *(cell(max(values) if values else None, "") for values in maxima),
            ]
        )
    return "\n".join(markdown_table(headers, table_rows))


def comparison(before: list[dict], after: list[dict]) -> str:
    """Returns a table of the pairs both settings ran: each column as "before → after"."""
    columns = [column for column in COLUMNS if column != "seconds"]
    after_by_pair = {(row["content_image"], row["style_image"]): row for row in after}
    table_rows = []
    for row in before:
        other = after_by_pair.get((row["content_image"], row["style_image"]))
        if other is None:
            continue
        values = [
            f"{cell(column_value(row, column), column)} → "
            f"{cell(column_value(other, column), column)}"
            for column in columns
        ]
        table_rows.append([short(row["content_image"]), short(row["style_image"]), *values])
    return "\n".join(markdown_table(["content", "style", *columns], table_rows))


def contact_sheet(rows: list[dict], title: str, path: pathlib.Path, cell: int) -> None:
    """Writes the sheet: a header row naming the styles, then one row per content, its name first.

    The inputs are named, not shown: the photos and paintings stay in ../shared (some are not in
    the public domain), so a committed sheet holds only tf_nst's results.
    """
    contents = list(dict.fromkeys(row["content_image"] for row in rows))
    styles = list(dict.fromkeys(row["style_image"] for row in rows))
    width = round(cell * 4 / 3)
    gap, label = 3, 16
    sheet = Image.new(
        "RGB",
        ((len(styles) + 1) * (width + gap), label + (len(contents) + 1) * (cell + gap)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    draw.text((4, 2), title, fill="black", font=font)

    def paste(image, column, row_index):
        picture = (
            Image.fromarray(decoding.to_uint8(image)) if isinstance(image, np.ndarray) else image
        )
        picture = picture.copy()
        picture.thumbnail((width, cell), Image.LANCZOS)
        left = column * (width + gap) + (width - picture.width) // 2
        top = label + row_index * (cell + gap) + (cell - picture.height) // 2
        sheet.paste(picture, (left, top))

    def name(text, column, row_index):
        left = column * (width + gap) + 4
        top = label + row_index * (cell + gap) + cell // 2 - 6
        draw.text((left, top), pathlib.Path(text).stem, fill="black", font=font)

    for column, style in enumerate(styles, start=1):
        name(style, column, 0)
    by_pair = {(row["content_image"], row["style_image"]): row for row in rows}
    for row_index, content in enumerate(contents, start=1):
        name(content, 0, row_index)
        for column, style in enumerate(styles, start=1):
            if (content, style) in by_pair:
                paste(Image.open(by_pair[(content, style)]["image"]), column, row_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=82, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setting",
        action="append",
        help="defaults, old, or NAME=JSON of StyleConfig changes; repeatable (default: defaults)",
    )
    parser.add_argument("--size", type=int, default=256, help="256 to tune, 512 for figures")
    parser.add_argument("--steps", type=int, default=StyleConfig().steps)
    parser.add_argument("--contents", default=",".join(CONTENTS), help="comma-separated names")
    parser.add_argument("--styles", default=",".join(STYLES), help="comma-separated names")
    parser.add_argument("--weights", default=str(WEIGHTS), help="VGG16, Keras layout")
    parser.add_argument("--results", default="quality_results", help="cache folder")
    parser.add_argument("--sheets", default=None, help="folder of the contact sheets")
    parser.add_argument("--cell", type=int, default=120, help="height of a contact sheet cell")
    parser.add_argument(
        "--remeasure", action="store_true", help="measure cached results again from their images"
    )
    parser.add_argument(
        "--cached-only", action="store_true", help="report cached results, run nothing new"
    )
    parser.add_argument("--quick", action="store_true", help="96 px, 30 steps, 2x2 pairs")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.size, arguments.steps = 96, 30
        arguments.contents, arguments.styles = "tubingen,golden_gate", "starry_night,wave"
    arguments.contents = arguments.contents.split(",")
    arguments.styles = arguments.styles.split(",")
    if not pathlib.Path(arguments.weights).is_file():
        print(f"no weights file at {arguments.weights}: pass --weights", file=sys.stderr)
        return 2
    settings = dict(map(parse_setting, arguments.setting or ["defaults"]))
    loaded = {name: decoding.load_image(image_path(name)) for name in arguments.contents}
    loaded.update({name: decoding.load_image(image_path(name)) for name in arguments.styles})
    measurer = Measurer(arguments.weights)
    print(f"# Quality grid, {arguments.size} px, {arguments.steps} steps\n", flush=True)
    print(table_row(TABLE_HEADERS), flush=True)
    results = {}
    for name, changes in settings.items():
        started = time.perf_counter()
        results[name] = run_setting(name, changes, arguments, measurer, loaded)
        print(f"\nsetting {name}: {time.perf_counter() - started:.0f} s\n", flush=True)
        if arguments.sheets:
            contact_sheet(
                results[name],
                f"{name}: {arguments.size} px, {arguments.steps} steps",
                pathlib.Path(arguments.sheets) / f"quality_{name}.jpg",
                arguments.cell,
            )
    for name, rows in results.items():
        print(f"\n## {name}\n\n{table(rows)}")
    print(f"\n## Summary\n\n{summary(results)}")
    names = list(results)
    if len(names) == 2:
        print(f"\n## {names[0]} → {names[1]}\n\n{comparison(*results.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
