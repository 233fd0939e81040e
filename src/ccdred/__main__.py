"""``python -m ccdred`` runs the command-line tool."""

from .cli import main

main()
