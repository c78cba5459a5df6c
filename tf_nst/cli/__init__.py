"""The `tf-nst` command line: a thin layer over the library.

`parser` builds the argument parser from the config dataclasses (`options`) and maps exceptions to
exit statuses; `commands` runs the checks that need no TensorFlow, then calls the library. Nothing
here imports TensorFlow until a command needs it.
"""

from tf_nst.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
