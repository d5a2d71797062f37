"""``python -m pyaya``: the same as the ``pyaya`` command."""

from pyaya.cli import main

main()
