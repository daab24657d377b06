"""``python -m sync`` is the ``relsync`` command."""
from sync.cli import main

main(prog_name="relsync")
