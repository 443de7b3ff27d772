"""``python -m vwbench``: the ``vwbench`` command."""

from vwbench.cli import entry

if __name__ == "__main__":
    entry()
