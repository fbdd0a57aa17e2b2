"""``python -m aiops``: the same as the ``aiops`` command."""

from aiops.cli import main

if __name__ == "__main__":
    main()
