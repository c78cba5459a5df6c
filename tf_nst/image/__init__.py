"""Images in and out: bounded, oriented decoding (`decoding`), atomic writing (`writing`) and
colour transfer (`colors`). Nothing here imports TensorFlow.
"""
