"""tf_nst: neural style transfer (Gatys et al.) for TensorFlow 2 / Keras 3."""
