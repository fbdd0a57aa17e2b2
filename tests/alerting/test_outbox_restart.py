"""An agent killed with messages queued (one mid-send): a new Outbox on the same SQLite file sends each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from notif_support import RecordingServer, Reply, group_keys, make_outbox, sample_notification

from aiops.state import StateDB

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from notif_support import make_outbox, sample_notification
    from aiops.state import StateDB
    from aiops.logs import configure_logging

    configure_logging("INFO", stream=sys.stderr)

    class Srv:  # make_outbox only needs .url
        url = {url!r}

    db = StateDB({db_url!r}); db.create_all()
    box = make_outbox(db, {{"ops": Srv()}}, timeout_s=60, lease_s=3.0)
    box.start()
    for i in range(10):
        box.enqueue(sample_notification(group=f"g{{i}}"))
    print("enqueued", flush=True)
    time.sleep(120)
""")


def test_killed_agent_messages_are_sent_once_after_restart(tmp_path: Path) -> None:
    srv = RecordingServer()
    stuck = threading.Event()
    release = threading.Event()

    def phase1(req):  # type: ignore[no-untyped-def]
        stuck.set()
        release.wait(30)  # the first send hangs until the agent is dead
        return Reply(500, b"too late", record=False)

    srv.behave = phase1
    db_url = f"sqlite:///{tmp_path / 'state.db'}"
    script = CHILD.format(tests=str(Path(__file__).parent), url=srv.url, db_url=db_url)
    errors = (tmp_path / "child.log").open("w")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=errors,
                             text=True, env={**os.environ})
    db = None
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "enqueued", (tmp_path / "child.log").read_text()
        assert stuck.wait(20), "the child never tried to send"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        release.set()

        db = StateDB(db_url)
        before = {r: c for r, c in db.engine.connect().exec_driver_sql(
            "select status, count(*) from outbox group by status").all()}
        assert before == {"sending": 1, "queued": 9}, before  # one leased by the dead agent, nine waiting

        srv.behave = lambda req: Reply()
        box = make_outbox(db, {"ops": srv}, lease_s=3.0)
        box.start()
        try:
            assert box.drain(30), box.counts()
            time.sleep(0.5)  # room for a (wrong) duplicate to show up
        finally:
            box.stop()
        keys = group_keys(srv.ok())
        assert sorted(keys) == sorted(sample_notification(group=f"g{i}").group_key for i in range(10))
        assert len(set(keys)) == 10  # each exactly once
        assert box.counts() == {"sent": 10}
        assert box.row(1)["attempts"] == 2  # the dead agent's attempt, then ours once its lease expired
        assert keys[-1] == sample_notification(group="g0").group_key  # the dead agent's row came back last
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout:
            child.stdout.close()
        errors.close()
        if db is not None:
            db.dispose()
        srv.stop()
