"""Serve the dashboard: ``streamlit run dashboard/app.py`` as a child that dies with us.

``aiops dashboard`` calls :func:`serve`. SIGTERM and SIGINT are forwarded to Streamlit, and we
return when it exits, so stopping the command never leaves a Streamlit process holding the port.
"""

from __future__ import annotations

import signal
import subprocess  # nosec B404 - runs streamlit, argv built here
import sys
from pathlib import Path
from types import FrameType

__all__ = ["serve", "streamlit_args"]

APP = Path(__file__).with_name("app.py")


def streamlit_args(host: str, port: int, config: Path | None) -> list[str]:
    """The Streamlit command line for the dashboard."""
    args = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer", "--"]
    if config is not None:
        args += ["--config", str(config.resolve())]
    return args


def serve(host: str, port: int, config: Path | None = None, stop_timeout_s: float = 10.0) -> int:
    """Run Streamlit until it exits; forward SIGTERM/SIGINT to it.

    Returns:
        Its exit status (128 + signal number when a signal ended it, as a shell reports).
    """
    proc = subprocess.Popen(streamlit_args(host, port, config))  # nosec B603 - our own argv, no shell

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # we are leaving for another reason (an exception): take it with us
            proc.terminate()
            try:
                proc.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 128 - code if code < 0 else code
