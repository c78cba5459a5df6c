"""Prints the README's options tables, generated from the config dataclasses.

`python scripts/options_table.py` prints the tables that README.md must contain verbatim
(tests/test_cli_options.py checks it), so `--help`, the README and the defaults cannot disagree.
"""

from tf_nst.cli.options import readme_tables

if __name__ == "__main__":
    print(readme_tables())
