"""CLI commands whose implementation lives outside ``cli.py`` (one module per area); ``cli.py``
registers them."""
