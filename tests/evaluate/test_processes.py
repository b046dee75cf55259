"""``--num-processes``: spawned workers each make their shard of one work list, into one folder."""

import json

import pytest

from erasekit.evaluate import evaluate


@pytest.mark.slow
def test_two_spawned_workers_make_every_image_once(monet_edit, tmp_path):
    """Spawns 2 Python processes (about 20 s on 2 cores): deselected by default, `pytest -m slow` runs it."""
    edit_path = monet_edit.save(tmp_path / "monet.safetensors")
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,seed\n" + "".join(f"prompt {i},{i}\n" for i in range(5)))
    result = evaluate(
        None,
        model="tiny-sd1",
        world="embedded",
        out=tmp_path / "run",
        edit=edit_path,
        prompts_csv=csv,
        num_processes=2,
        progress=False,
    )
    assert result["n_images"] == 5
    logs = sorted((tmp_path / "run" / "manifest").glob("*.jsonl"))
    assert [p.name for p in logs] == ["shard-0.jsonl", "shard-1.jsonl"]
    keys = [json.loads(line)["key"] for p in logs for line in p.read_text().splitlines()]
    assert sorted(keys) == [f"edited/prompts/{i:05d}_s{i}" for i in range(5)]
