"""The AdaIN network: a fixed VGG encoder to relu4_1, adaptive instance normalisation, a decoder.

AdaIN (Huang and Belongie 2017) stylizes a photo with any painting in one pass:

    t = AdaIN(f(photo), f(painting)) = sigma(s) * (f(photo) - mu(c)) / sigma(c) + mu(s)
    stylized = g(strength * t + (1 - strength) * f(photo)) + (1 - strength) * (photo - g(f(photo)))

The last term is ours, not the paper's: the decoder's own reconstruction error, faded out as the
strength rises. A decoder trained for a CPU-length run gives back a softened, shifted photo from
the photo's features, so without it `--strength 0` would be that reconstruction, not the photo;
with it strength 0 is exactly the photo and strength 1 is exactly AdaIN, and below 1 the photo's
detail that the decoder loses returns in proportion.

where f is VGG up to relu4_1 (our extractor's `block4_conv1`, whose convolutions carry their
ReLU), mu and sigma are per-channel means and deviations over the locations, and g is a learned
decoder that mirrors f: nearest 2x upsampling in place of pooling, reflection padding, no
normalisation. The style representation of a painting is (mu, sigma) of its relu4_1 features,
`[2 * channels]`: computed once, it stylizes any number of photos, and a blend of paintings is
a weighted mean of their representations (AdaIN is linear in mu and sigma, so this equals
interpolating the AdaIN targets as the paper does).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_nst.features.backbones import BLOCK_DEPTHS
from tf_nst.networks.transform import ReflectionPadding2D
from tf_nst.precision import PRECISION_POLICIES

ENCODER_LAYER = "block4_conv1"
"""relu4_1: the encoder's output and the layer AdaIN works on."""
ADAIN_EPSILON = 1e-5
"""Added to the variance before its square root, so flat regions do not divide by zero."""
VGG_FIRST_BLOCK_FILTERS = 64
DECODER_INPUT_SCALE = 1 / 255
"""The decoder sees its features divided by 255: the encoder takes [0, 1] images times 255 (Caffe's
range), and its ReLU features scale with the pixels, so this gives the decoder the features of
[0, 1] images, on the scale of the [0, 1] images it must return. Unscaled, a fresh decoder's output
starts hundreds of times too large, and its ReLUs die while Adam shrinks it: it then paints black.
"""


def channel_statistics(features: tf.Tensor, epsilon: float = ADAIN_EPSILON):
    """Returns the per-example, per-channel mean and deviation of feature maps.

    Args:
        features: `[batch, height, width, channels]`.
        epsilon: Added to the variance before the square root.

    Returns:
        `(mean, deviation)`, each float32 `[batch, channels]`.
    """
    features = tf.cast(features, tf.float32)
    mean, variance = tf.nn.moments(features, axes=[1, 2])
    return mean, tf.sqrt(variance + epsilon)


def adain(
    content: tf.Tensor,
    style_mean: tf.Tensor,
    style_deviation: tf.Tensor,
    epsilon: float = ADAIN_EPSILON,
) -> tf.Tensor:
    """Adaptive instance normalisation: the content's features with the style's statistics.

    `style_deviation * (content - mean(content)) / deviation(content) + style_mean`, per example
    and channel, with the content's statistics over its locations.

    Args:
        content: Feature maps `[batch, height, width, channels]`.
        style_mean: `[batch or 1, channels]`.
        style_deviation: `[batch or 1, channels]`.
        epsilon: Added to the content's variance.

    Returns:
        float32 `[batch, height, width, channels]`.
    """
    content = tf.cast(content, tf.float32)
    mean, variance = tf.nn.moments(content, axes=[1, 2], keepdims=True)
    # A product with rsqrt, not a quotient: no division for a runtime to check or round to 0.
    normalized = (content - mean) * tf.math.rsqrt(variance + epsilon)
    return normalized * style_deviation[:, None, None, :] + style_mean[:, None, None, :]


def style_representation(features: tf.Tensor) -> tf.Tensor:
    """Returns the style representation of relu4_1 features: means then deviations.

    Returns:
        float32 `[batch, 2 * channels]`.
    """
    mean, deviation = channel_statistics(features)
    return tf.concat([mean, deviation], axis=-1)


def blend_representations(representations: tf.Tensor, weights: Sequence[float]) -> tf.Tensor:
    """Mixes style representations `[styles, 2C]` with weights (normalised to sum to 1).

    Returns:
        `[1, 2C]`.
    """
    weights = tf.constant(weights, tf.float32)
    weights = weights / tf.reduce_sum(weights)
    return tf.reduce_sum(representations * weights[:, None], axis=0, keepdims=True)


def stylized_features(
    content: tf.Tensor, representation: tf.Tensor, strength: tf.Tensor | float = 1.0
) -> tf.Tensor:
    """The decoder's input: `strength * AdaIN(content, style) + (1 - strength) * content`.

    Args:
        content: relu4_1 features of the photos, `[batch, height, width, C]`.
        representation: `[batch or 1, 2C]`, from `style_representation`.
        strength: A scalar from 0 (the photo's own features) to 1 (the AdaIN target).
    """
    content = tf.cast(content, tf.float32)
    mean, deviation = tf.split(representation, 2, axis=-1)
    target = adain(content, mean, deviation)
    strength = tf.cast(strength, tf.float32)
    return strength * target + (1.0 - strength) * content


def with_photo_detail(
    images: tf.Tensor, reconstruction: tf.Tensor, photos: tf.Tensor, strength: tf.Tensor | float
) -> tf.Tensor:
    """`images + (1 - strength) * (photos - reconstruction)`, in float32.

    Args:
        images: The decoder's output for `stylized_features(..., strength)`, `[N, H, W, 3]`.
        reconstruction: The decoder's output for the photos' own features, the same shape.
        photos: The photos the features came from, the same shape.
        strength: A scalar from 0 (the result is `photos`) to 1 (the result is `images`).
    """
    strength = tf.cast(strength, tf.float32)
    images, reconstruction, photos = (
        tf.cast(tensor, tf.float32) for tensor in (images, reconstruction, photos)
    )
    return images + (1.0 - strength) * (photos - reconstruction)


def decoder_filters(block: int, width: int) -> int:
    """Channels of the decoder's `block` (1 at full resolution), VGG's scaled to `width`."""
    return max(1, width * 2 ** (block - 1))


def build_decoder(
    width: int = VGG_FIRST_BLOCK_FILTERS,
    backbone: str = "vgg19",
    precision: str = "fp32",
    channels: int = 512,
) -> keras.Model:
    """Builds the decoder that mirrors VGG from relu4_1 back to RGB.

    For VGG19 and `width` 64 it is AdaIN's decoder: a 3x3 conv to 256 channels, then for blocks 3,
    2, 1: nearest 2x upsampling and the block's convolutions in reverse (the last of each block
    narrowing to the next block's channels), the last one to RGB without activation. Every
    convolution is reflection-padded; there is no normalisation. The input is first scaled by
    `DECODER_INPUT_SCALE`.

    Args:
        width: Channels of the full-resolution block (VGG's 64); blocks 2 and 3 have 2x and 4x.
        backbone: "vgg19" or "vgg16": the encoder to mirror (block 3 has 4 or 3 convolutions).
        precision: Compute precision of the convolutions; the output is float32.
        channels: Channels of the input features: the encoder's relu4_1 (VGG's 512).

    Returns:
        A `keras.Model` from `[batch, h, w, C]` features to `[batch, 8h, 8w, 3]` images,
        unclipped (clip for display; the training loss sees the raw output).
    """
    policy = PRECISION_POLICIES[precision]
    features = keras.Input(shape=(None, None, channels), name="features")
    hidden = keras.layers.Rescaling(DECODER_INPUT_SCALE, name="features_scale", dtype=policy)(
        features
    )

    def convolution(hidden, filters, name, activation="relu"):
        hidden = ReflectionPadding2D(1, name=f"{name}_pad", dtype=policy)(hidden)
        return keras.layers.Conv2D(filters, 3, activation=activation, name=name, dtype=policy)(
            hidden
        )

    hidden = convolution(hidden, decoder_filters(3, width), "block4_deconv1")
    depths = BLOCK_DEPTHS[backbone]
    for block in (3, 2, 1):
        hidden = keras.layers.UpSampling2D(
            2, interpolation="nearest", name=f"block{block}_up", dtype=policy
        )(hidden)
        for index in range(depths[block - 1], 0, -1):
            last = index == 1
            if not last:
                filters = decoder_filters(block, width)
            elif block > 1:
                filters = decoder_filters(block - 1, width)
            else:
                filters = 3
            hidden = convolution(
                hidden,
                filters,
                f"block{block}_deconv{index}",
                activation=None if (last and block == 1) else "relu",
            )
    images = keras.layers.Activation("linear", dtype="float32", name="images")(hidden)
    return keras.Model(features, images, name="adain_decoder")


def clip_images(images: tf.Tensor) -> tf.Tensor:
    """The decoder's output as images: float32 in [0, 1]."""
    return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)


def pad_to_multiple(images: tf.Tensor, multiple: int = 8) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads images at the bottom and right (by reflection) to a multiple of `multiple`.

    The encoder halves the size three times and the decoder doubles it back, so a side that is
    not a multiple of 8 would come back smaller. Returns the padded images and the original
    `[height, width]`, for `crop_to`.
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    pad_height = (multiple - height % multiple) % multiple
    pad_width = (multiple - width % multiple) % multiple
    padded = tf.pad(images, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]], mode="SYMMETRIC")
    return padded, tf.stack([height, width])


def crop_to(images: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Crops padded images back to `size` `[height, width]`."""
    return images[:, : size[0], : size[1], :]
