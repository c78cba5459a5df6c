"""What the backbone sees: its layer specification, the VGG feature extractor, weights files.

`backbones` (the layer names, depths and size floor) and `weights_file` need no TensorFlow;
`extractor` builds the Keras model, `targets` turns style images into Gram targets, and `export`
writes the extractor as a SavedModel.
"""
