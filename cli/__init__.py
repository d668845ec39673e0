"""genocl's click front end (installed as the ``genocl_cli`` package)."""
