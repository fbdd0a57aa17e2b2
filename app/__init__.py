"""The application: the agent, its wiring, the ``aiops`` CLI, the demo and the fakes it runs.

This is the top layer, the only one that imports every package: ``aiops`` (the ground floor),
``collectors``, ``detectors``, ``alerting``, ``remediation`` and ``dashboard``. Nothing below
imports it (the import-linter contracts in ``pyproject.toml`` check that).
"""
