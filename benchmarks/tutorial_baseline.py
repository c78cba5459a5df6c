"""The benchmark's baseline: the TensorFlow tutorial "Neural style transfer", on VGG16.

https://www.tensorflow.org/tutorials/generative/style_transfer. This module does not import
tf_nst, so that the baseline shares none of tf_nst's losses, step or preprocessing; it takes its
images as float arrays in [0, 1] from the caller.
"""

from __future__ import annotations

import statistics
import time

# The tutorial's objective and optimizer.
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYERS = ("block5_conv2",)
STYLE_WEIGHT = 1e-2
CONTENT_WEIGHT = 1e4
TV_WEIGHT = 30.0
LEARNING_RATE = 0.02
BETA_1 = 0.99
EPSILON = 1e-1
# The losses are reported every len // REPORTED_LOSSES steps: the curve's shape in one JSON line.
REPORTED_LOSSES = 50


class TutorialStyleTransfer:
    """The TensorFlow tutorial "Neural style transfer", re-implemented on VGG16.

    The extractor is the tutorial's `StyleContentModel` (a Keras VGG model cut at the style and
    content layers, `preprocess_input(inputs * 255)`, Gram matrices of the style outputs); the loss
    is its `style_content_loss` plus `total_variation_weight * tf.image.total_variation`; the step
    is its `@tf.function train_step` (GradientTape, `opt.apply_gradients`, clip to [0, 1]). The one
    change: `train_step` returns the loss, so the caller can wait for the step to finish.
    """

    def __init__(self, weights: str, content, style):
        import keras
        import tensorflow as tf

        self.tf = tf
        self.keras = keras
        vgg = keras.applications.VGG16(include_top=False, weights=weights)
        vgg.trainable = False
        outputs = [vgg.get_layer(name).output for name in STYLE_LAYERS + CONTENT_LAYERS]
        self.vgg = keras.Model([vgg.input], outputs)
        self.vgg.trainable = False
        self.content = tf.constant(content[None], tf.float32)
        self.style = tf.constant(style[None], tf.float32)
        self.style_targets = None
        self.content_targets = None
        self.tutorial_objective = tf.function(self.objective)

    @staticmethod
    def gram_matrix(input_tensor):
        import tensorflow as tf

        result = tf.linalg.einsum("bijc,bijd->bcd", input_tensor, input_tensor)
        input_shape = tf.shape(input_tensor)
        num_locations = tf.cast(input_shape[1] * input_shape[2], tf.float32)
        return result / num_locations

    def extractor(self, inputs):
        """The tutorial's `StyleContentModel.call`; inputs are RGB in [0, 1]."""
        inputs = inputs * 255.0
        preprocessed_input = self.keras.applications.vgg16.preprocess_input(inputs)
        outputs = self.vgg(preprocessed_input)
        style_outputs = outputs[: len(STYLE_LAYERS)]
        content_outputs = outputs[len(STYLE_LAYERS) :]
        style_outputs = [self.gram_matrix(style_output) for style_output in style_outputs]
        content_dict = dict(zip(CONTENT_LAYERS, content_outputs, strict=True))
        style_dict = dict(zip(STYLE_LAYERS, style_outputs, strict=True))
        return {"content": content_dict, "style": style_dict}

    def compute_targets(self) -> None:
        """The tutorial's `style_targets` and `content_targets`."""
        self.style_targets = self.extractor(self.style)["style"]
        self.content_targets = self.extractor(self.content)["content"]

    def style_content_loss(self, outputs):
        tf = self.tf
        style_outputs = outputs["style"]
        content_outputs = outputs["content"]
        style_loss = tf.add_n(
            [
                tf.reduce_mean((style_outputs[name] - self.style_targets[name]) ** 2)
                for name in style_outputs
            ]
        )
        style_loss *= STYLE_WEIGHT / len(STYLE_LAYERS)
        content_loss = tf.add_n(
            [
                tf.reduce_mean((content_outputs[name] - self.content_targets[name]) ** 2)
                for name in content_outputs
            ]
        )
        content_loss *= CONTENT_WEIGHT / len(CONTENT_LAYERS)
        return style_loss + content_loss

    def objective(self, image):
        """The tutorial's objective of `image` ([1, h, w, 3] or [h, w, 3]), a scalar."""
        tf = self.tf
        image = tf.convert_to_tensor(image, tf.float32)
        if image.shape.rank == 3:
            image = image[None]
        loss = self.style_content_loss(self.extractor(image))
        loss += TV_WEIGHT * tf.image.total_variation(image)
        return tf.reduce_sum(loss)

    def make_train_step(self):
        """Returns `(image, train_step)` as the tutorial builds them: init = content image."""
        tf = self.tf
        image = tf.Variable(self.content)
        opt = self.keras.optimizers.Adam(
            learning_rate=LEARNING_RATE, beta_1=BETA_1, epsilon=EPSILON
        )

        @tf.function()
        def train_step(image):
            with tf.GradientTape() as tape:
                outputs = self.extractor(image)
                loss = self.style_content_loss(outputs)
                loss += TV_WEIGHT * tf.image.total_variation(image)
            grad = tape.gradient(loss, image)
            opt.apply_gradients([(grad, image)])
            image.assign(tf.clip_by_value(image, clip_value_min=0.0, clip_value_max=1.0))
            return loss

        return image, train_step


def tutorial_objective(model: TutorialStyleTransfer, image) -> float:
    """The tutorial's objective (style + content + total variation) of `image`, in float32."""
    return float(model.tutorial_objective(image))


def run_tutorial(
    weights: str, content, style, steps: int, warmup: int, objective: bool = False
) -> dict:
    """Runs the tutorial's loop for `steps` steps and times every step.

    Returns the median seconds per step after `warmup` steps, the wall time of the whole run
    (targets, tracing and every step) and, with `objective`, the tutorial objective of the final
    image and of the first step.
    """
    model = TutorialStyleTransfer(weights, content, style)
    started = time.perf_counter()
    model.compute_targets()
    image, train_step = model.make_train_step()
    times, losses = [], []
    last = time.perf_counter()
    for _ in range(steps):
        loss = float(train_step(image)[0])
        now = time.perf_counter()
        times.append(now - last)
        losses.append(loss)
        last = now
    total = time.perf_counter() - started
    result = {
        "shape": list(content.shape[:2]),
        "step_times": times,
        "seconds_per_step": statistics.median(times[warmup:]),
        "total_seconds": total,
        "losses": losses[:: max(1, len(losses) // REPORTED_LOSSES)],
    }
    if objective:
        result["objective"] = tutorial_objective(model, image)
        result["initial_objective"] = losses[0]
    return result
