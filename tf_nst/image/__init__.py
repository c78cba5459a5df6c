"""Images in and out: decoding, atomic writing and colour.

`decoding` reads images bounded, oriented and reduced while decoding; `writing` writes them
atomically; `colors` transfers colour. Nothing here imports TensorFlow.
"""
