"""The feed-forward path (Johnson et al.): a network trained once per style, applied in one pass.

`transform` is the network, `photos` the photo folder (found, checked, split and decoded without
TensorFlow), `data` the photo pipeline (`tf.data`), `training` the distributed trainer,
`keep_best` the step loop, time limit, keep-best and checkpoint that both trainers share,
`distribute` the strategy choice, `export` the SavedModel, `stylizer` the loaded SavedModel,
`tiling` large images in tiles, `memory` the plan that decides when to tile, `apply` the file
loop, and `job` the training's mapping onto the run machinery (`tf_nst.run`). `any_style` holds
the network trained once on many paintings (AdaIN) that takes its painting when applied.
"""
