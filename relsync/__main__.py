"""``python -m relsync`` is the ``relsync`` command."""
from relsync.cli import main

main(prog_name="relsync")
