"""Alembic migrations of the state database (SQLite and PostgreSQL); see docs/ARCHITECTURE.md.

The scripts in ``versions/`` are plain DDL: they import no package, so the kernel runs them
whatever is installed. Every change to a table declared on :data:`aiops.state.metadata`
(in ``aiops/``, ``alerting/tables.py``, ``remediation/tables.py`` or a new package) comes with a
new script here; ``tests/aiops/test_migrations.py`` fails while the declared tables and the
migrated schema differ. Write one with ``python -m aiops.migrations revision -m "what changed"``
(autogenerate against a database at head) and review it.
"""
