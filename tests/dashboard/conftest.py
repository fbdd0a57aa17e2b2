"""The dashboard tests leave no Streamlit process behind (``aiops dashboard`` used to leak one per run)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest


def _streamlit_children() -> list[psutil.Process]:
    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "streamlit" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture(scope="package", autouse=True)
def no_streamlit_left_behind() -> Iterator[None]:
    yield
    gone, alive = psutil.wait_procs(_streamlit_children(), timeout=10)
    assert not alive, f"the dashboard tests left Streamlit running: {[p.pid for p in alive]}"
