"""`python -m tf_nst`: the same as the `tf-nst` command."""

import sys

from tf_nst.cli import main

sys.exit(main())
