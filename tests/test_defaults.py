"""The defaults hold beyond Tübingen + The Starry Night (issue 10).

Two real-weight checks of the default result at 128 px, 100 steps (the size and steps of the
tuning grid, benchmarks/quality.py), with the shared VGG16:

* No leaking: a painting with a face must lend the photo its texture, not the face.
* Contrast, tone and palette: a dark painting must darken a bright photo, not leave it pale, and
  lend it its colours.

The measures are the grid's own (`benchmarks/quality.py`), on layers the defaults do not optimise.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tf_nst.config import StyleConfig
from tf_nst.features.extractor import build_feature_extractor
from tf_nst.image import decoding
from tf_nst.image.decoding import resize
from tf_nst.losses import gram_matrix, style_layer_loss
from tf_nst.optimize.optimization import Optimization

pytestmark = [pytest.mark.real_weights, pytest.mark.slow]

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
# Object parts (eyes, a face) are what VGG16's last block detects; no default optimises it.
OBJECT_LAYER = "block5_conv3"
TEXTURE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")
FACE_CENTRE, FACE_RADII = (48, 64), (38, 30)  # (row, column) and (vertical, horizontal) radii


def _load_quality_module():
    spec = importlib.util.spec_from_file_location(
        "quality_grid", REPOSITORY / "benchmarks" / "quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quality = _load_quality_module()
measures = quality.measures  # benchmarks/measures.py, which the grid imports


def brushwork(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A painterly texture: crossing colour bands of random direction and frequency."""
    generator = np.random.default_rng(seed)
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    texture = np.zeros((height, width, 3), np.float32)
    for _ in range(12):
        angle = generator.uniform(0, np.pi)
        frequency = generator.uniform(0.15, 0.5)
        phase = generator.uniform(0, 2 * np.pi)
        band = np.sin(frequency * (np.cos(angle) * columns + np.sin(angle) * rows) + phase)
        texture += band[..., None] * generator.uniform(-0.08, 0.08, 3).astype(np.float32)
    return np.clip(texture + np.array([0.35, 0.5, 0.45], np.float32), 0, 1)


def synthetic_portrait(height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Returns a portrait painting (a face on brushwork) and the boolean mask of the face.

    The face is a distinct object: an outlined oval with two eyes, a nose and a mouth, over a
    third of the picture, as a sitter's face is in a portrait.
    """
    picture = Image.fromarray(decoding.to_uint8(brushwork(height, width)))
    draw = ImageDraw.Draw(picture)
    (row, column), (radius_y, radius_x) = FACE_CENTRE, FACE_RADII
    draw.ellipse(
        [column - radius_x, row - radius_y, column + radius_x, row + radius_y],
        fill=(235, 200, 170),
        outline=(20, 20, 20),
        width=3,
    )
    for eye in (column - 13, column + 13):
        draw.ellipse(
            [eye - 9, row - 16, eye + 9, row - 4], fill=(250, 250, 250), outline=0, width=2
        )
        draw.ellipse([eye - 4, row - 14, eye + 4, row - 6], fill=(20, 20, 20))
    draw.line([column, row - 4, column - 4, row + 10, column + 2, row + 12], fill=(60, 30, 20))
    draw.arc([column - 14, row + 10, column + 14, row + 26], 20, 160, fill=(150, 20, 20), width=3)
    rows, columns = np.mgrid[:height, :width]
    mask = ((rows - row) / radius_y) ** 2 + ((columns - column) / radius_x) ** 2 <= 1
    return np.asarray(picture, np.float32) / 255, mask


def object_match(features: np.ndarray, object_features: np.ndarray) -> float:
    """The best cosine similarity of any location of `features` to any object location.

    Near 1 when some part of the image is a copy of a part of the object, as VGG's object layer
    sees it; a photo that does not contain the object stays far below.
    """
    first = features.reshape(-1, features.shape[-1]).astype(np.float64)
    second = object_features.reshape(-1, object_features.shape[-1]).astype(np.float64)
    first /= np.linalg.norm(first, axis=1, keepdims=True) + 1e-9
    second /= np.linalg.norm(second, axis=1, keepdims=True) + 1e-9
    return float((first @ second.T).max())


@pytest.fixture(scope="module")
def measuring_network(vgg16_weights):
    return build_feature_extractor(
        (*TEXTURE_LAYERS, OBJECT_LAYER), "vgg16", str(vgg16_weights), "max", "fp32"
    )


@pytest.fixture(scope="module")
def golden_gate(shared_images):
    return decoding.load_image(shared_images / "golden_gate.jpg")


def _default_result(content, style, vgg16_weights) -> np.ndarray:
    config = StyleConfig(backbone="vgg16", weights=str(vgg16_weights), size=128, steps=100, seed=0)
    optimization = Optimization(content, [style], config)
    for _ in optimization.steps():
        pass
    return optimization.final_image()


def _features(network, image):
    return {name: np.asarray(value[0]) for name, value in network(image[None]).items()}


def test_the_default_result_does_not_copy_the_paintings_face(
    golden_gate, vgg16_weights, measuring_network
):
    """Measured at 128 px, 100 steps on the Golden Gate: the best match of the result to a part
    of the face is 0.82 with the old defaults (block5_conv1 in the style layers, which asks for
    the face's parts), 0.41 with the new ones; the photo alone scores 0.17. The bound, 0.7, sits
    between. So that a result that ignores the painting cannot pass, the result must also have
    taken its brushwork: its style error on blocks 1 to 3 below half the photo's."""
    style, face = synthetic_portrait()
    output = _default_result(golden_gate, style, vgg16_weights)
    photo = resize(np.asarray(golden_gate, np.float32), *output.shape[:2])
    painting, result, original = (
        _features(measuring_network, image) for image in (style, output, photo)
    )
    object_features = painting[OBJECT_LAYER]
    face_cells = (
        resize(
            np.asarray(face[..., None].astype(np.float32), np.float32), *object_features.shape[:2]
        )[..., 0]
        > 0.5
    )
    face_features = object_features[face_cells]
    leak = object_match(result[OBJECT_LAYER], face_features)
    baseline = object_match(original[OBJECT_LAYER], face_features)
    print(f"face match: result {leak:.3f}, photo {baseline:.3f}")
    assert baseline < 0.4, baseline  # the measure does not see a face in the bare photo
    assert leak < 0.7, f"the result copies parts of the face: match {leak:.2f}"

    def texture_error(features):
        return np.mean(
            [
                float(
                    style_layer_loss(
                        gram_matrix(features[name][None]),
                        gram_matrix(painting[name][None]),
                        "normalized",
                    )[0]
                )
                for name in TEXTURE_LAYERS
            ]
        )

    assert texture_error(result) < 0.5 * texture_error(original)


def test_a_dark_painting_darkens_a_bright_photo(golden_gate, shared_images, vgg16_weights):
    """Tonal range by luminance percentiles (5th, 50th, 95th): Turner's "The Shipwreck" is dark
    (0.06, 0.31, 0.68), the Golden Gate at 128 px bright (0.15, 0.47, 0.94). Measured at 128 px,
    100 steps, the old defaults gave (0.14, 0.48, 0.91): the photo's bright sky kept, a pale
    picture where the painting is dark (the bright end moved 8% of the way to the painting's);
    the new defaults give (0.09, 0.48, 0.85), 34% of the way. The result must not lift the dark
    end above both images' (0.02 of room), must bring the bright end at least a fifth of the way
    from the photo's to the painting's, and must keep at least 0.8 of the painting's spread."""
    shipwreck = decoding.load_image(shared_images / "shipwreck.jpg")
    output = _default_result(golden_gate, shipwreck, vgg16_weights)
    photo = resize(np.asarray(golden_gate, np.float32), *output.shape[:2])
    result, painting, original = map(quality.luminance_percentiles, (output, shipwreck, photo))
    report = f"result {result}, painting {painting}, photo {original}"
    print(report)
    assert result[0] <= max(painting[0], original[0]) + 0.02, report
    assert (original[2] - result[2]) > (original[2] - painting[2]) / 5, report
    assert quality.range_ratio(output, shipwreck) > 0.8, report
    # Issue 15: the middle tones and the palette follow the painting too. Measured here, the
    # median Lab lightness (0-255) went from the photo's 131 to 135 with `--init content` (away
    # from the painting's 91) and to 85 with the default `recolored`; the palette distance to the
    # painting was 10.1 and is 2.0, against the photo's own 14.5.
    palette = measures.palette_measures(output, photo, shipwreck)
    report = f"{report}, palette {palette}"
    photo_median, painting_median = palette["photo_lightness_50"], palette["painting_lightness_50"]
    moved = (photo_median - palette["lightness_50"]) / (photo_median - painting_median)
    assert moved > 0.5, report
    assert palette["palette"] < 0.4 * palette["photo_palette"], report


def test_the_default_result_copies_no_eye_of_a_real_portrait(
    golden_gate, shared_images, vgg16_weights
):
    """Issue 15: Matisse's Woman with a Hat on the Golden Gate, at 128 px and 100 steps. The
    per-eye leak (`benchmarks/measures.py`: the best match of each of the painting's eyes, in
    VGG16's block4_conv3 features, over the result) measured 0.65 with block 4 weighted as blocks
    1-3, 0.41 with the default layer weights (in fp32 and in bf16); the bare photo scores 0.26.
    The bound, 0.5, sits between. So that a result that ignores the painting cannot pass, its
    held-out style error must also be below a fifth of the photo's (measured 0.04 against 0.42)."""
    name = "woman-with-hat-matisse"
    matisse = decoding.load_image(shared_images / f"{name}.jpg")
    output = _default_result(golden_gate, matisse, vgg16_weights)
    row = quality.Measurer(str(vgg16_weights)).measure(
        output, golden_gate, matisse, max(output.shape[:2]), measures.eye_boxes(name)
    )
    report = {key: row[key] for key in ("eye_leak", "photo_eye_leak", "style_1", "photo_style_1")}
    print(report)
    assert row["photo_eye_leak"] < 0.35, report  # the measure sees no eye in the bare photo
    assert row["eye_leak"] < 0.5, f"the result copies an eye of the painting: {report}"
    assert row["style_1"] < 0.2 * row["photo_style_1"], report
