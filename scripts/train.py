"""The training script: `python scripts/train.py CONTENT STYLE -o OUT.png [options]`.

A thin wrapper over `tf-nst stylize`; it takes exactly the same arguments (see `--help`).
"""

import sys

from tf_nst.cli import main

if __name__ == "__main__":
    sys.exit(main(["stylize", *sys.argv[1:]]))
