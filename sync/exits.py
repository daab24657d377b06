"""The exit codes every command uses (the README's table is tested against these).

A module of its own, with no imports, so the command line can name them without loading the engine.
"""

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_LOCKED, EXIT_INTERRUPTED, EXIT_NOT_FOUND = 0, 1, 2, 3, 4, 5
