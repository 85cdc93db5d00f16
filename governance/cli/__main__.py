"""``python -m governance.cli``: the ``govern`` command (the reliability drills run it so)."""

from governance.cli import main

main()
