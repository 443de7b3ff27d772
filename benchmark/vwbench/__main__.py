"""``python -m vwbench``: the ``vwbench`` command."""

from vwbench.cli import main

if __name__ == "__main__":
    main()
