"""Alembic migrations of the state database (SQLite and PostgreSQL); see docs/ARCHITECTURE.md.

The scripts in ``versions/`` are plain DDL: they import no package, so the kernel runs them
whatever is installed. Every change to a table declared on :data:`aiops.state.metadata`
(in ``aiops/``, ``alerting/tables.py``, ``remediation/tables.py`` or a new package) comes with a
new script here (``script.py.mako`` is its shape; ``down_revision`` names the previous head);
``tests/aiops/test_migrations.py`` fails while the declared tables and the migrated schema
differ, and prints the operations (Alembic's ``compare_metadata``) the new script must run.
"""
