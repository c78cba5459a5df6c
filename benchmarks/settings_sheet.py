#!/usr/bin/env python
"""A contact sheet of quality-grid settings side by side: one row per pair, one column per setting.

Usage:
    python benchmarks/settings_sheet.py RESULTS SHEET.jpg --setting old --setting defaults \
        [--pairs tubingen:shipwreck,golden_gate:woman-with-hat-matisse] [--cell 200]

RESULTS is the `--results` folder of `benchmarks/quality.py`; each `--setting` is one of its
setting names, whose `results.jsonl` and images are read back (nothing is recomputed). The rows are
the pairs every setting has (or `--pairs`, as CONTENT:STYLE names of the grid). Each row is named
by its photo and painting, and under each picture are its median lightness and palette distance
beside the painting's and the photo's, and on portraits the eye leak beside the photo's
(`measures.py`). The inputs are named, not shown: the photos and paintings stay in ../shared, so
a sheet shows only tf_nst's results; ship one only when its paintings are in the public domain.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from PIL import Image, ImageDraw, ImageFont

GAP = 3
LABEL = 16
NAME_WIDTH = 150


def read_rows(results: pathlib.Path, setting: str) -> dict[tuple[str, str], dict]:
    """The cached rows of one setting, by (content, style)."""
    cache = results / setting / "results.jsonl"
    if not cache.exists():
        raise SystemExit(f"{cache} does not exist: run benchmarks/quality.py --setting {setting}")
    rows = {}
    for line in cache.read_text().splitlines():
        row = json.loads(line)
        rows[(row["content_image"], row["style_image"])] = row
    return rows


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("woman-with-hat-matisse", "matisse")


def caption(row: dict) -> str:
    text = (
        f"median L {row['lightness_50']:.0f} (painting {row['painting_lightness_50']:.0f})\n"
        f"palette {row['palette']:.1f} (photo {row['photo_palette']:.1f})"
    )
    if "eye_leak" in row:
        text += f"\neye leak {row['eye_leak']:.2f} (photo {row['photo_eye_leak']:.2f})"
    return text


def sheet(rows_by_setting: dict[str, dict], pairs: list, path: pathlib.Path, cell: int) -> None:
    """Writes the sheet of `pairs` (rows) by settings (columns)."""
    width = round(cell * 4 / 3)
    settings = list(rows_by_setting)
    row_height = cell + 3 * LABEL
    picture = Image.new(
        "RGB",
        (NAME_WIDTH + len(settings) * (width + GAP), LABEL + len(pairs) * (row_height + GAP)),
        "white",
    )
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=11)
    for column, setting in enumerate(settings):
        draw.text((NAME_WIDTH + column * (width + GAP) + 4, 2), setting, fill="black", font=font)
    for index, pair in enumerate(pairs):
        top = LABEL + index * (row_height + GAP)
        draw.text((4, top + cell // 2), f"{short(pair[0])}\n+ {short(pair[1])}", fill="black",
                  font=font)  # fmt: skip
        for column, setting in enumerate(settings):
            row = rows_by_setting[setting][pair]
            image = Image.open(row["image"]).convert("RGB")
            image.thumbnail((width, cell), Image.LANCZOS)
            left = NAME_WIDTH + column * (width + GAP)
            picture.paste(image, (left + (width - image.width) // 2, top))
            draw.text((left + 2, top + cell + 2), caption(row), fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=pathlib.Path)
    parser.add_argument("sheet", type=pathlib.Path)
    parser.add_argument("--setting", action="append", required=True)
    parser.add_argument("--pairs", default=None, help="CONTENT:STYLE,... (default: all shared)")
    parser.add_argument("--cell", type=int, default=200, help="height of a picture")
    arguments = parser.parse_args()
    rows_by_setting = {name: read_rows(arguments.results, name) for name in arguments.setting}
    if arguments.pairs:
        pairs = [tuple(pair.split(":", 1)) for pair in arguments.pairs.split(",")]
    else:
        common = set.intersection(*(set(rows) for rows in rows_by_setting.values()))
        pairs = [pair for pair in next(iter(rows_by_setting.values())) if pair in common]
    missing = [pair for pair in pairs for rows in rows_by_setting.values() if pair not in rows]
    if missing:
        raise SystemExit(f"not run for every setting: {sorted(set(missing))}")
    sheet(rows_by_setting, pairs, arguments.sheet, arguments.cell)
    print(f"wrote {arguments.sheet}: {len(pairs)} pairs x {len(rows_by_setting)} settings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
