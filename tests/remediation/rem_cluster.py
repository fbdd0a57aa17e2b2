"""Real parts for the fault tests: a private redis-server, real ``aiops worker`` processes, configs.

Each test module starts its OWN redis-server on a free port (never the shared 6379) and stops it
in teardown; workers are ``python -m app worker`` subprocesses in their own process group so a
test can SIGKILL one whole worker, as a crashed node would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, free_port, wait_port


class RedisServer:
    """``redis-server --port P --save '' --appendonly no|yes`` in ``workdir``."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 20)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: with appendonly the AOF is flushed before exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def write_config(path: Path, *, tmp: Path, broker_url: str | None, kubeconfig: Path | None,
                 state_url: str | None = None, store_extra: dict[str, Any] | None = None, **remediation: Any) -> Path:
    """An aiops.yaml for the agent side (the test) and the workers (``store_extra``: more store keys)."""
    rem: dict[str, Any] = {
        "visibility_timeout_s": 5, "run_lease_s": 3, "request_timeout_s": 2, "max_retries": 3, "retry_backoff_s": 0.2,
        "retry_backoff_max_s": 1, "sweep_interval_s": 0.2, "queue": f"aiops-test-{os.getpid()}-{free_port()}",
        **remediation,
    }
    if broker_url is not None:
        rem["broker_url"] = broker_url
    if kubeconfig is not None:
        rem["kubeconfig"] = str(kubeconfig)
    store: dict[str, Any] = {"path": str(tmp / "ts.db")}
    store["state_url"] = state_url or f"sqlite:///{tmp / 'state.db'}"
    store.update(store_extra or {})
    cfg = {"store": store, "remediation": rem, "agent": {"log_level": "INFO"}}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


class Worker:
    """One ``python -m app worker`` process (solo pool: one action at a time, one process to kill)."""

    def __init__(self, config: Path, name: str, logdir: Path, pool: str = "solo", concurrency: int = 1) -> None:
        self.config = config
        self.name = name
        self.log = logdir / f"worker-{name}.log"
        self.pool = pool
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> Worker:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env = {k: v for k, v in env.items() if not (k.startswith("AIOPS_") and not k.startswith("AIOPS_TEST_"))}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "worker", "--config", str(self.config), "--pool", self.pool,
                 "--concurrency", str(self.concurrency), "--hostname", f"{self.name}@test"],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if " ready." in text or '"ready"' in text or "ready.\"" in text:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name} not ready after {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (its process group), as a crashed node."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
