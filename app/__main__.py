"""``python -m app``: the same as the ``aiops`` command."""

from app.cli import main

if __name__ == "__main__":
    main()
