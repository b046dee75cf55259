"""A generation process killed with SIGKILL midway loses nothing and duplicates nothing on resume."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from erasekit import worlds
from erasekit.evaluate import ImageStore, build_work, generate, load_rows

from .test_runner import GEN, RUN

CHILD = textwrap.dedent(
    """
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from erasekit.edit import Edit
    from erasekit.evaluate import ImageStore, build_work, generate, load_rows, parse_protocol
    from erasekit.worlds.tiny import tiny_pipeline
    from tests.evaluate.conftest import TINY_PRESET
    from tests.evaluate.test_runner import GEN, RUN

    out, edit_path, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from erasekit import worlds
    rows = load_rows(parse_protocol(TINY_PRESET), concept="monet", world=worlds.get("embedded"))
    work = build_work([r for rs in rows.values() for r in rs], needs_originals=lambda name: name == "target")
    done = []

    def die(item):
        done.append(item)
        if len(done) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as `kill -9` or the OOM killer

    generate(tiny_pipeline("sd1"), work, ImageStore(out, RUN), GEN, edit=Edit.load(edit_path), progress=False,
             on_image=die)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_after_sigkill(tiny_pipe, monet_edit, tiny_preset, tmp_path):
    edit_path = monet_edit.save(tmp_path / "monet.safetensors")
    out = tmp_path / "run"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(edit_path), "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],  # the child imports the test preset from tests/
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    rows = load_rows(tiny_preset, concept="monet", world=worlds.get("embedded"))
    work = build_work([r for rs in rows.values() for r in rs], needs_originals=lambda name: name == "target")
    store = ImageStore(out, RUN)
    survivors = sorted(store.images.rglob("*.png"))
    assert len(survivors) == 5
    before = {p: p.stat().st_mtime_ns for p in survivors}
    # what a kill can also leave: a temporary file mid-write, and the last manifest line cut short
    (survivors[0].parent / f".{work[5].key.rsplit('/', 1)[1]}.png.999.tmp").write_bytes(b"\x89PNG half")
    log = next(store.manifest_dir.glob("*.jsonl"))
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # image on disk, its line cut short

    stats = generate(tiny_pipe, work, store, GEN, edit=monet_edit, progress=False)

    assert (stats.made, stats.skipped, stats.repaired) == (len(work) - 5, 5, 1)
    assert {p: p.stat().st_mtime_ns for p in survivors} == before  # finished images were not made again
    assert sorted(p.relative_to(store.images).as_posix() for p in store.images.rglob("*.png")) == sorted(
        f"{item.key}.png" for item in work
    )
    keys = [line["key"] for line in store.manifest_lines()]
    assert sorted(keys) == sorted(item.key for item in work)  # each image logged exactly once
    assert not list(out.rglob("*.tmp"))
