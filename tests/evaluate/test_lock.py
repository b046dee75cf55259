"""One run at a time in a folder: a second is refused, naming the first; a dead run's lock is taken over."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from erasekit.errors import OutputError
from erasekit.evaluate import evaluate
from erasekit.evaluate.folder import LOCK_FILE, RunLock

HOLD = "import sys, time; from erasekit.evaluate.folder import RunLock\nwith RunLock(sys.argv[1]):\n" \
       "    print('held', flush=True); time.sleep(120)"  # fmt: skip


def _csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,seed\na red car,0\na dog,1\n")
    return csv


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_second_run_is_refused_then_a_killed_runs_lock_is_taken_over(tiny_pipe, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process is using the folder
        pid = json.loads((out / LOCK_FILE).read_text())["pid"]
        with pytest.raises(OutputError, match=rf"in use by another erasekit run \(pid {pid} on host .*delete .*lock"):
            evaluate(None, model="tiny-sd1", out=out, prompts_csv=_csv(tmp_path), pipe=tiny_pipe, progress=False)
        assert not (out / "images").exists() and (out / LOCK_FILE).is_file()
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9: its lock file stays behind
        holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == pid
    result = evaluate(None, model="tiny-sd1", out=out, prompts_csv=_csv(tmp_path), pipe=tiny_pipe, progress=False)
    assert result["n_images"] == 2 and len((out / "manifest" / "shard-0.jsonl").read_text().splitlines()) == 2
    assert not (out / LOCK_FILE).exists()  # removed on exit


def test_the_lock_is_reentrant_removed_on_ctrl_c_and_leaves_no_empty_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        with RunLock(out), RunLock(out):  # evaluate holds it around generate_images, which takes it too
            assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
            raise KeyboardInterrupt
    assert not out.exists()  # the lock made the folder and nothing else was written in it
    out.mkdir()
    (out / LOCK_FILE).write_text("")  # a lock being written right now by another process
    with pytest.raises(OutputError, match="a process starting now"):
        RunLock(out).__enter__()
    old = time.time() - 60
    os.utime(out / LOCK_FILE, (old, old))  # ... or left empty by a process killed a minute ago
    with RunLock(out):
        pass
    assert not (out / LOCK_FILE).exists() and out.is_dir()
