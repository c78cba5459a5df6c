"""`python -m tf_nst.cli`: the same as `tf-nst`."""

import sys

from tf_nst.cli import main

sys.exit(main())
