"""``python -m genocl_cli`` runs the ``genocl`` command."""

from genocl_cli.main import main

main()
