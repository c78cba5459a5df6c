"""Generate the example images shipped in tf_nst/examples/ (our own procedural art, CC0).

    python scripts/make_examples.py

writes tf_nst/examples/content.png (a village landscape "photo") and tf_nst/examples/style.png (a
swirling brush-stroke "painting"). Both are drawn from scratch with numpy and Pillow from fixed
seeds, so rerunning the script reproduces them; no image is downloaded or copied.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent.parent / "tf_nst" / "examples"

CONTENT_SIZE = (384, 288)  # width, height
STYLE_SIZE = (320, 320)
# Shapes are drawn this many times larger and downsampled, which anti-aliases their edges.
SUPERSAMPLE = 3

CONTENT_SEED = 20160501
STYLE_SEED = 18890618


# --- shared helpers ----------------------------------------------------------------------------


def smooth_noise(rng, height, width, cell_height, cell_width=None):
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    cell_width = cell_width or cell_height
    grid = rng.random(
        (max(2, math.ceil(height / cell_height) + 2), max(2, math.ceil(width / cell_width) + 2))
    ).astype(np.float32)
    image = Image.fromarray(grid, mode="F")
    large = image.resize(
        (round(grid.shape[1] * cell_width), round(grid.shape[0] * cell_height)), Image.BICUBIC
    )
    return np.clip(np.asarray(large)[:height, :width], 0.0, 1.0)


def fractal_noise(rng, height, width, cell, octaves=4, aspect=1.0):
    """Sum of value-noise octaves, normalised to [0, 1]; aspect > 1 stretches it horizontally."""
    total = np.zeros((height, width), dtype=np.float32)
    amplitude, weight = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * smooth_noise(rng, height, width, cell, cell * aspect)
        weight += amplitude
        amplitude *= 0.5
        cell = max(1.0, cell / 2)
    total /= weight
    return (total - total.min()) / (total.max() - total.min() + 1e-9)


def polygon_mask(size, polygons, scale):
    """Float mask of filled polygons; points are (x, y) in output pixels, `size` supersampled."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for points in polygons:
        draw.polygon([(float(x) * scale, float(y) * scale) for x, y in points], fill=255)
    return np.asarray(mask, dtype=np.float32) / 255.0


def rectangle_mask(size, boxes, scale):
    """Float mask of filled (left, top, right, bottom) rectangles given in output pixels."""
    corners = [
        [(left, top), (right, top), (right, bottom), (left, bottom)]
        for left, top, right, bottom in boxes
    ]
    return polygon_mask(size, corners, scale)


def ellipse_mask(size, boxes, scale):
    """Float mask of filled ellipses inscribed in (left, top, right, bottom) output-pixel boxes."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for box in boxes:
        draw.ellipse([float(value) * scale for value in box], fill=255)
    return np.asarray(mask, dtype=np.float32) / 255.0


def paint(canvas, mask, color):
    """Alpha-blend `color` (RGB triple or HxWx3 array) onto `canvas` through `mask`."""
    alpha = mask[..., np.newaxis]
    canvas *= 1.0 - alpha
    canvas += alpha * np.asarray(color, dtype=np.float32)


def to_image(canvas, size):
    """Downsample a supersampled float canvas to an 8-bit image of `size`."""
    image = Image.fromarray((np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return image.resize(size, Image.LANCZOS)


# --- content: a village by a river -------------------------------------------------------------


def make_content(rng):
    width, height = CONTENT_SIZE
    scale = SUPERSAMPLE
    big_width, big_height = width * scale, height * scale
    size = (big_width, big_height)
    ys, xs = np.mgrid[0:big_height, 0:big_width].astype(np.float32) / scale
    canvas = np.zeros((big_height, big_width, 3), dtype=np.float32)
    bank_y = 200.0  # the river's far bank, in output pixels

    # Sky: deep blue overhead to a warm haze at the horizon.
    t = np.clip(ys / 170.0, 0.0, 1.0)[..., np.newaxis] ** 1.3
    canvas[:] = (1 - t) * np.array([0.22, 0.42, 0.76]) + t * np.array([0.95, 0.86, 0.70])

    # Sun with a soft glow, low on the right.
    sun_x, sun_y, sun_radius = 300.0, 62.0, 17.0
    distance = np.hypot(xs - sun_x, ys - sun_y)
    glow = np.exp(-((distance / 70.0) ** 2))[..., np.newaxis]
    canvas += glow * np.array([0.30, 0.20, 0.05])
    paint(canvas, np.clip(sun_radius + 0.5 - distance, 0.0, 1.0), (1.0, 0.96, 0.80))

    # Clouds: stretched fractal noise, thresholded softly, only in the upper sky.
    clouds = fractal_noise(rng, big_height, big_width, 40 * scale, octaves=5, aspect=3.0)
    cloud_alpha = np.clip((clouds - 0.55) * 3.0, 0.0, 0.85) * np.clip(1.2 - ys / 110.0, 0.0, 1.0)
    shade = np.clip((clouds - 0.55) * 2.0, 0.0, 1.0)[..., np.newaxis]
    cloud_color = (1 - shade) * np.array([0.80, 0.80, 0.86]) + shade * np.array([1.0, 0.98, 0.95])
    paint(canvas, cloud_alpha, cloud_color)

    columns = np.arange(big_width, dtype=np.float32) / scale

    def ridge(base, waves, roughness):
        line = np.full_like(columns, base)
        for amplitude, period, phase in waves:
            line += amplitude * np.sin(columns / period + phase)
        line += roughness * (smooth_noise(rng, 1, big_width, 1, 12 * scale)[0] - 0.5)
        return line

    def hill_mask(line):
        return np.clip(ys - line[np.newaxis, :] + 0.5, 0.0, 1.0)

    # Far hills: hazy blue-grey.
    far = ridge(128.0, [(10, 45, 1.0), (6, 19, 0.3)], 6)
    haze = fractal_noise(rng, big_height, big_width, 30 * scale)[..., np.newaxis]
    paint(canvas, hill_mask(far), np.array([0.50, 0.58, 0.66]) + 0.06 * (haze - 0.5))

    # Middle hills: green, lit from the sun's side, with woodland blotches.
    middle = ridge(152.0, [(14, 62, 2.0), (5, 27, 0.7)], 5)
    woods = fractal_noise(rng, big_height, big_width, 10 * scale)[..., np.newaxis]
    light = np.clip(0.85 + (xs / width)[..., np.newaxis] * 0.25, 0.0, 1.2)
    middle_color = (np.array([0.30, 0.48, 0.24]) + 0.18 * (woods - 0.5)) * light
    middle_color = np.where(woods > 0.68, middle_color * 0.65, middle_color)
    paint(canvas, hill_mask(middle), middle_color)

    # Near fields: brighter green with furrow stripes and fine grass texture.
    near = ridge(176.0, [(6, 38, 0.4), (3, 15, 1.1)], 3)
    grass = fractal_noise(rng, big_height, big_width, 3 * scale, octaves=3)[..., np.newaxis]
    furrows = 0.5 + 0.5 * np.sin((xs * 0.9 + ys * 2.2) / 2.2)[..., np.newaxis]
    field_color = np.array([0.46, 0.64, 0.27]) * (0.88 + 0.12 * furrows) + 0.12 * (grass - 0.5)
    field_color = np.where(
        ((xs > 40) & (xs < 120))[..., np.newaxis], field_color * [1.25, 1.1, 0.55], field_color
    )
    paint(canvas, hill_mask(near), field_color)

    def polygon(*points):
        return polygon_mask(size, [points], scale)

    def rectangles(*boxes):
        return rectangle_mask(size, boxes, scale)

    def ellipse(left, top, right, bottom):
        return ellipse_mask(size, [(left, top, right, bottom)], scale)

    def trees(specs, dark=0.0):
        for center_x, base_y, radius in specs:
            paint(
                canvas,
                rectangles((center_x - 1.2, base_y - radius, center_x + 1.2, base_y)),
                (0.28, 0.20, 0.12),
            )
            crown_y = base_y - radius * 1.6
            crown = ellipse(
                center_x - radius, crown_y - radius * 1.1, center_x + radius, crown_y + radius * 1.1
            )
            leaves = fractal_noise(rng, big_height, big_width, 2.5 * scale, octaves=2)
            # Lighter on the side facing the sun.
            lit = np.clip((xs - center_x) / radius, -1, 1) * 0.08
            color = (
                np.array([0.16, 0.32, 0.12]) * (1 - dark)
                + (0.14 * (leaves - 0.5) + lit)[..., np.newaxis]
            )
            paint(canvas, crown, color)

    trees([(24, 196, 9), (150, 190, 7), (342, 195, 10), (372, 197, 8)], dark=0.2)

    # Houses: (left x, width, wall height, roof height, wall colour, roof colour, gable front).
    houses = [
        (40, 34, 22, 16, (0.93, 0.88, 0.76), (0.62, 0.20, 0.14), True),
        (80, 46, 20, 12, (0.85, 0.62, 0.45), (0.35, 0.25, 0.22), False),
        (132, 28, 24, 18, (0.96, 0.94, 0.90), (0.55, 0.18, 0.12), True),
        (270, 40, 21, 14, (0.90, 0.80, 0.55), (0.50, 0.22, 0.16), False),
        (314, 26, 18, 15, (0.80, 0.82, 0.85), (0.30, 0.30, 0.36), True),
    ]
    ground = bank_y - 3.0
    wall_texture = fractal_noise(rng, big_height, big_width, 2 * scale, octaves=2)[..., np.newaxis]

    def windows(left, right, top, bottom, count, lit_index=-1):
        gap = (right - left) / count
        for index in range(count):
            center = left + gap * (index + 0.5)
            paint(
                canvas,
                rectangles((center - 3.2, top - 0.8, center + 3.2, bottom + 0.8)),
                (0.95, 0.95, 0.92),
            )
            glass = (0.95, 0.80, 0.40) if index == lit_index else (0.16, 0.22, 0.30)
            paint(canvas, rectangles((center - 2.4, top, center + 2.4, bottom)), glass)
            paint(canvas, rectangles((center - 0.35, top, center + 0.35, bottom)), (0.9, 0.9, 0.88))

    for number, (left, house_width, wall_height, roof_height, wall, roof, gable) in enumerate(
        houses
    ):
        right, top = left + house_width, ground - wall_height
        paint(
            canvas,
            rectangles((left, top, right, ground)),
            np.array(wall) * (0.92 + 0.12 * wall_texture),
        )
        # A shaded strip on the side away from the sun gives the boxes some depth.
        paint(canvas, rectangles((left, top, left + 4, ground)) * 0.35, (0, 0, 0))
        chimney_x = left + house_width * 0.7
        paint(
            canvas,
            rectangles((chimney_x, top - roof_height * 0.9, chimney_x + 4, top)),
            (0.45, 0.25, 0.20),
        )
        if gable:
            roof_mask = polygon(
                (left - 3, top), ((left + right) / 2, top - roof_height), (right + 3, top)
            )
        else:
            roof_mask = polygon(
                (left - 3, top),
                (left + 6, top - roof_height),
                (right - 6, top - roof_height),
                (right + 3, top),
            )
        paint(canvas, roof_mask, np.array(roof) * (0.85 + 0.25 * wall_texture))
        paint(canvas, rectangles((left - 3, top, right + 3, top + 1.2)), (0.2, 0.12, 0.1))
        door_x = left + house_width * (0.25 if number % 2 else 0.5)
        paint(canvas, rectangles((door_x - 3, ground - 11, door_x + 3, ground)), (0.35, 0.20, 0.12))
        windows(
            left + 2, right - 2, top + 4, top + 10, max(2, house_width // 13), lit_index=number % 3
        )

    # Church: a nave with a tall tower and spire, the landmark a content loss should keep.
    nave_left, nave_right, nave_top = 200.0, 258.0, ground - 28
    stone = np.array([0.78, 0.74, 0.66]) * (0.88 + 0.2 * wall_texture)
    paint(canvas, rectangles((nave_left, nave_top, nave_right, ground)), stone)
    nave_roof = polygon(
        (nave_left - 2, nave_top),
        (nave_left + 8, nave_top - 14),
        (nave_right - 4, nave_top - 14),
        (nave_right + 2, nave_top),
    )
    paint(canvas, nave_roof, np.array([0.30, 0.32, 0.38]) * (0.85 + 0.25 * wall_texture))
    for window_x in (222.0, 236.0, 250.0):
        arch = np.maximum(
            ellipse(window_x - 3, nave_top + 5, window_x + 3, nave_top + 11),
            rectangles((window_x - 3, nave_top + 8, window_x + 3, nave_top + 19)),
        )
        paint(canvas, arch, (0.18, 0.20, 0.32))
    tower_left, tower_right, tower_top = 202.0, 218.0, ground - 62
    middle_x = (tower_left + tower_right) / 2
    paint(canvas, rectangles((tower_left, tower_top, tower_right, ground)), stone * 1.04)
    paint(canvas, rectangles((tower_left, tower_top, tower_left + 3, ground)) * 0.3, (0, 0, 0))
    spire_tip = tower_top - 52
    spire = polygon(
        (tower_left - 2, tower_top), (middle_x, spire_tip), (tower_right + 2, tower_top)
    )
    paint(canvas, spire, np.array([0.26, 0.30, 0.34]) * (0.85 + 0.3 * wall_texture))
    cross = rectangles(
        (middle_x - 0.6, spire_tip - 9, middle_x + 0.6, spire_tip),
        (middle_x - 3, spire_tip - 6.5, middle_x + 3, spire_tip - 5.3),
    )
    paint(canvas, cross, (0.25, 0.2, 0.1))
    paint(
        canvas,
        ellipse(middle_x - 4, tower_top + 6, middle_x + 4, tower_top + 14),
        (0.95, 0.92, 0.80),
    )
    clock_hands = rectangles(
        (middle_x - 0.5, tower_top + 7, middle_x + 0.5, tower_top + 10),
        (middle_x - 0.5, tower_top + 9.5, middle_x + 3, tower_top + 10.5),
    )
    paint(canvas, clock_hands, (0.1, 0.1, 0.1))
    belfry = np.maximum(
        ellipse(middle_x - 2.5, tower_top + 20, middle_x + 2.5, tower_top + 26),
        rectangles((middle_x - 2.5, tower_top + 23, middle_x + 2.5, tower_top + 32)),
    )
    paint(canvas, belfry, (0.12, 0.12, 0.16))
    paint(
        canvas,
        rectangles((middle_x - 3.5, ground - 13, middle_x + 3.5, ground)),
        (0.30, 0.18, 0.10),
    )

    trees([(120, 199, 6), (190, 199, 6), (265, 199, 5), (64, 199, 5)])

    # The far bank: a strip of darker earth and reeds where the land meets the water.
    bank_line = bank_y + 1.2 * np.sin(columns / 9.0) + 0.8 * np.sin(columns / 3.7)
    bank = np.clip(ys - (bank_line[np.newaxis, :] - 3.5) + 0.5, 0.0, 1.0)
    paint(canvas, bank, np.array([0.30, 0.32, 0.16]) + 0.1 * (grass - 0.5))

    # River: the scene above the bank mirrored, broken up by ripples, darkened and tinted blue.
    bank_row = int(bank_y * scale)
    depth = big_height - bank_row
    mirrored = canvas[bank_row - 1 - np.arange(depth)].copy()
    # Ripples are long and thin, and grow towards the viewer.
    streaks = fractal_noise(rng, depth, big_width, 3 * scale, octaves=3, aspect=8.0)
    growth = (0.6 + np.arange(depth, dtype=np.float32) / (25.0 * scale))[:, np.newaxis]
    shift = np.round((streaks - 0.5) * 6.0 * scale * growth).astype(int)
    source_columns = np.clip(np.arange(big_width)[np.newaxis, :] + shift, 0, big_width - 1)
    mirrored = np.take_along_axis(mirrored, source_columns[..., np.newaxis], axis=1)
    water = mirrored * 0.55 + np.array([0.03, 0.09, 0.16])
    highlights = np.clip(streaks - 0.62, 0.0, 1.0)[..., np.newaxis] * 1.4
    lows = np.clip(0.38 - streaks, 0.0, 1.0)[..., np.newaxis] * 0.8
    water = water + highlights * np.array([0.55, 0.60, 0.62]) - lows * 0.35 * water
    canvas[bank_row:] = water
    paint(
        canvas,
        np.clip(ys - (bank_line[np.newaxis, :] - 3.5) + 0.5, 0, 1)
        * np.clip(bank_line[np.newaxis, :] + 0.6 - ys, 0, 1),
        (0.18, 0.2, 0.1),
    )

    # Near bank in the bottom-left corner, with reeds, gives the picture a foreground.
    def near_bank_top(x):
        return 300.0 - 60.0 * np.exp(-x / 70.0)

    near_bank = np.clip(ys - near_bank_top(xs) + 0.5, 0.0, 1.0)
    paint(canvas, near_bank, np.array([0.26, 0.36, 0.14]) + 0.15 * (grass - 0.5))
    reeds = Image.new("L", size, 0)
    reed_draw = ImageDraw.Draw(reeds)
    for _ in range(70):
        base_x = rng.uniform(0, 95)
        base_y = near_bank_top(base_x) + 6
        reed_height = rng.uniform(18, 48) * (1.2 - base_x / 120)
        lean = rng.uniform(-6, 10)
        reed_draw.line(
            [
                (base_x * scale, base_y * scale),
                ((base_x + lean * 0.4) * scale, (base_y - reed_height * 0.6) * scale),
                ((base_x + lean) * scale, (base_y - reed_height) * scale),
            ],
            fill=255,
            width=round(1.3 * scale),
            joint="curve",
        )
    reed_shade = fractal_noise(rng, big_height, big_width, 4 * scale, octaves=2)[..., np.newaxis]
    paint(
        canvas,
        np.asarray(reeds, dtype=np.float32) / 255.0,
        np.array([0.30, 0.40, 0.14]) + 0.25 * (reed_shade - 0.5),
    )

    image = to_image(canvas, CONTENT_SIZE)

    # Photographic touches at the output size: mild vignette and sensor grain.
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    out_ys, out_xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((out_xs - width / 2) / width, (out_ys - height / 2) / height)
    pixels *= (1.0 - 0.35 * radius**2)[..., np.newaxis]
    pixels += rng.normal(0.0, 0.012, pixels.shape).astype(np.float32)
    return Image.fromarray((np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


# --- style: a swirling brush-stroke painting ---------------------------------------------------

PALETTE = {
    "navy": (0.04, 0.07, 0.22),
    "deep_blue": (0.07, 0.14, 0.42),
    "ultramarine": (0.12, 0.24, 0.64),
    "cobalt": (0.22, 0.42, 0.80),
    "pale_blue": (0.58, 0.74, 0.92),
    "teal": (0.10, 0.52, 0.54),
    "yellow": (0.98, 0.82, 0.16),
    "pale_yellow": (1.00, 0.95, 0.62),
    "orange": (0.94, 0.50, 0.10),
}

# Vortices: centre x, centre y, circulation, core radius, inward pull, glowing core radius.
VORTICES = [
    (150.0, 112.0, 1.0, 14.0, 0.25, 40.0),
    (250.0, 205.0, -0.8, 12.0, 0.2, 26.0),
    (262.0, 56.0, 0.6, 10.0, 0.15, 22.0),
    (58.0, 60.0, -0.5, 9.0, 0.1, 0.0),
    (66.0, 200.0, 0.7, 10.0, 0.2, 0.0),
]
HORIZON = 262.0  # below it, dark rolling hills


def flow(points):
    """Unit flow direction at (N, 2) points: point vortices plus a wavy westerly drift."""
    x, y = points[:, 0], points[:, 1]
    velocity_x = 0.9 + 0.2 * np.sin(y / 13.0)
    velocity_y = 0.35 * np.sin(x / 37.0 + y / 29.0)
    for center_x, center_y, circulation, core, pull, _ in VORTICES:
        dx, dy = x - center_x, y - center_y
        # Decays a little slower than a point vortex (exponent 0.8, not 1), so swirls reach further.
        falloff = 1500.0 / (dx * dx + dy * dy + core * core) ** 0.8
        velocity_x += falloff * (-circulation * dy - pull * dx)
        velocity_y += falloff * (circulation * dx - pull * dy)
    # The hills are painted in long horizontal sweeps.
    hills = np.clip((y - HORIZON + 10) / 20.0, 0.0, 1.0)
    velocity_x = velocity_x * (1 - hills) + hills * 1.0
    velocity_y = velocity_y * (1 - hills) + hills * 0.25 * np.cos(x / 25.0)
    norm = np.hypot(velocity_x, velocity_y) + 1e-6
    return np.stack([velocity_x / norm, velocity_y / norm], axis=1)


def palette_color(rng, points):
    """Pick a palette colour for each (N, 2) point from what part of the painting it is in."""
    x, y = points[:, 0], points[:, 1]
    names = np.empty(len(points), dtype=object)
    # Sky: blues banded along the swirls, with teal and pale streaks.
    phase = np.zeros(len(points))
    for center_x, center_y, circulation, core, _, _ in VORTICES:
        phase += (
            np.sign(circulation) * 0.5 * np.log((x - center_x) ** 2 + (y - center_y) ** 2 + core**2)
        )
    band = np.sin(phase * 3.0 + y / 18.0) + 0.6 * rng.standard_normal(len(points))
    names[:] = "ultramarine"
    names[band > 0.5] = "cobalt"
    names[band > 1.3] = "pale_blue"
    names[band < -0.6] = "deep_blue"
    names[(band > 0.9) & (band < 1.1)] = "teal"
    names[rng.random(len(points)) < 0.05] = "teal"
    # Glowing vortex cores: yellow rings with orange and pale-yellow strokes.
    for center_x, center_y, _, _, _, glow in VORTICES:
        if glow <= 0:
            continue
        distance = np.hypot(x - center_x, y - center_y)
        inside = distance < glow * (0.85 + 0.3 * rng.random(len(points)))
        rings = np.sin(distance / 4.0)
        names[inside] = np.where(rings[inside] > -0.2, "yellow", "pale_yellow")
        names[inside & (rng.random(len(points)) < 0.18)] = "orange"
        names[distance < glow * 0.35] = "pale_yellow"
        halo = (distance >= glow * 1.0) & (distance < glow * 1.35) & (rng.random(len(points)) < 0.5)
        names[halo] = "teal"
    # Hills: navy and deep teal with a few orange lights (a village in the dark).
    ground = y > HORIZON + 6.0 * np.sin(x / 30.0) + 4.0 * np.sin(x / 11.0)
    hill_band = np.sin(y / 5.0 + np.sin(x / 20.0)) + 0.5 * rng.standard_normal(len(points))
    names[ground] = np.where(hill_band[ground] > 0.3, "teal", "navy")
    names[ground & (hill_band > 1.4)] = "deep_blue"
    names[ground & (rng.random(len(points)) < 0.03)] = "orange"
    colors = np.array([PALETTE[name] for name in names], dtype=np.float32)
    # Paint is never perfectly mixed: jitter each stroke's brightness and hue a little.
    colors *= 1.0 + 0.10 * rng.standard_normal((len(points), 1))
    colors += 0.03 * rng.standard_normal(colors.shape)
    return np.clip(colors, 0.0, 1.0)


def trace_strokes(rng, count, length, size):
    """Trace `count` streamlines of `flow`, each about `length` px long, centred on random seeds."""
    seeds = rng.random((count, 2)) * [size[0], size[1]]
    steps = max(2, int(length / 2))
    step_length = (length / (2 * steps)) * (0.7 + 0.6 * rng.random((count, 1)))
    forward, backward = [seeds], []
    position = seeds.copy()
    for _ in range(steps):
        position = position + flow(position) * step_length
        forward.append(position)
    position = seeds.copy()
    for _ in range(steps):
        position = position - flow(position) * step_length
        backward.append(position)
    return seeds, np.stack(backward[::-1] + forward, axis=1)  # (count, points, 2)


def offset_polyline(points, distance):
    """Shift a polyline sideways by `distance` along its normals."""
    tangent = np.gradient(points, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return points + normal * distance


def draw_strokes(rng, draw, count, length, width, scale):
    """Draw `count` strokes of `length` px along the flow, `width` a (min, max) range in px."""
    seeds, paths = trace_strokes(rng, count, length, STYLE_SIZE)
    colors = palette_color(rng, seeds)
    widths = width[0] + (width[1] - width[0]) * rng.random(count)
    for path, color, stroke_width in zip(paths, colors, widths, strict=True):
        body = path * scale
        pixel_width = stroke_width * scale
        draw.line(
            [tuple(p) for p in body], fill=_rgb(color), width=round(pixel_width), joint="curve"
        )
        # Pillow ends lines square; round caps look like a loaded brush touching down.
        for end in (body[0], body[-1]):
            radius = pixel_width / 2.2
            draw.ellipse(
                [end[0] - radius, end[1] - radius, end[0] + radius, end[1] + radius],
                fill=_rgb(color),
            )
        # Bristle marks: thin lighter and darker lines running along the stroke.
        for offset in np.linspace(-0.35, 0.35, 4) * pixel_width:
            tone = 1.0 + rng.choice([-0.22, -0.12, 0.12, 0.2])
            trimmed = offset_polyline(body, offset)[1:-1] if len(body) > 3 else body
            draw.line(
                [tuple(p) for p in trimmed],
                fill=_rgb(np.clip(color * tone, 0, 1)),
                width=max(1, round(scale * 0.8)),
                joint="curve",
            )


def _rgb(color):
    return tuple(int(round(float(channel) * 255)) for channel in color)


def make_style(rng):
    width, height = STYLE_SIZE
    scale = SUPERSAMPLE
    # Underpainting: the palette field at low resolution, blurred, so no bare canvas shows.
    coarse = 64
    grid_y, grid_x = np.mgrid[0:coarse, 0:coarse].astype(np.float32)
    points = np.stack(
        [(grid_x.ravel() + 0.5) * width / coarse, (grid_y.ravel() + 0.5) * height / coarse], axis=1
    )
    under = palette_color(rng, points).reshape(coarse, coarse, 3)
    underpainting = (
        Image.fromarray((under * 255).astype(np.uint8))
        .resize((width * scale, height * scale), Image.BILINEAR)
        .filter(ImageFilter.GaussianBlur(4 * scale))
    )
    draw = ImageDraw.Draw(underpainting)
    # Broad strokes first, then ever finer ones on top, as a painter would.
    draw_strokes(rng, draw, count=1400, length=26, width=(8.0, 11.0), scale=scale)
    draw_strokes(rng, draw, count=3200, length=18, width=(5.0, 7.5), scale=scale)
    draw_strokes(rng, draw, count=4200, length=12, width=(3.0, 5.0), scale=scale)
    image = underpainting.resize(STYLE_SIZE, Image.LANCZOS)

    # Canvas weave showing faintly through the paint.
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    weave = 0.5 + 0.25 * (np.sin(xs * 2.1) + np.sin(ys * 2.1))
    pixels *= (0.96 + 0.05 * weave)[..., np.newaxis]
    return Image.fromarray((np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def main():
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    outputs = {
        "content.png": make_content(np.random.default_rng(CONTENT_SEED)),
        "style.png": make_style(np.random.default_rng(STYLE_SEED)),
    }
    for name, image in outputs.items():
        path = EXAMPLES_DIR / name
        image.save(path, optimize=True)
        print(
            f"wrote {path} ({image.size[0]}x{image.size[1]}, {path.stat().st_size / 1024:.0f} KB)"
        )


if __name__ == "__main__":
    main()
