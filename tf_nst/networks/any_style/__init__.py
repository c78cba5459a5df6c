"""The any-style path (AdaIN, Huang and Belongie 2017): one network for any painting.

`adain` is the network (the AdaIN operation, the style representation, strength and blends, the
decoder), `data` the paintings' pipeline beside the photos', `training` the distributed trainer,
`job` its mapping onto the run machinery, `export` the SavedModel and TFLite files, and
`stylizer` the loaded SavedModel.
"""
