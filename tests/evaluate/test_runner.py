import json

import numpy as np
import pytest

from erasekit import worlds
from erasekit.errors import ConfigError, OutputExistsError
from erasekit.evaluate import (
    Generation,
    GenerationError,
    ImageStore,
    Shard,
    build_work,
    generate,
    launched_shard,
    load_rows,
    wait_for_items,
)
from erasekit.evaluate.runner import _batches

GEN = Generation(steps=2, guidance=2.0, batch_size=3)
RUN = {"model": "tiny-sd1", "steps": 2}


@pytest.fixture
def work(tiny_preset):
    rows = load_rows(tiny_preset, concept="monet", world=worlds.get("embedded"))
    all_rows = [r for set_rows in rows.values() for r in set_rows]
    return build_work(all_rows, needs_originals=lambda name: name == "target")


def _pixels(store, item):
    return np.asarray(store.load(item), dtype=np.int16)


def test_one_file_per_prompt_and_seed_under_a_deterministic_name(tiny_pipe, monet_edit, work, tmp_path):
    assert len(work) == 3 * 2 + 2 + 3 + 3 * 2  # edited target×2 seeds, generality, specificity, original target
    store = ImageStore(tmp_path, RUN)
    stats = generate(tiny_pipe, work, store, GEN, edit=monet_edit, progress=False)
    assert (stats.made, stats.skipped) == (len(work), 0)
    files = sorted(p.relative_to(store.images).as_posix() for p in store.images.rglob("*.png"))
    assert files == sorted(f"{item.key}.png" for item in work)
    assert "edited/target/00001_s1.png" in files and "original/target/00002_s0.png" in files
    lines = store.manifest_lines()
    assert sorted(line["key"] for line in lines) == sorted(item.key for item in work)
    assert not list(tmp_path.rglob("*.tmp"))
    # the edit was applied for edited images only, and removed afterwards
    edited, original = work[0], next(i for i in work if i.variant == "original")
    assert edited.row == original.row and edited.seed == original.seed
    assert np.abs(_pixels(store, edited) - _pixels(store, original)).max() > 0
    assert not getattr(tiny_pipe.unet, "_erasekit_applied", [])


def test_resume_after_a_crash_redoes_nothing_and_duplicates_nothing(tiny_pipe, monet_edit, work, tmp_path):
    store = ImageStore(tmp_path, RUN)

    def crash_after_four(item, seen=[]):  # noqa: B006
        seen.append(item)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tiny_pipe, work, store, GEN, edit=monet_edit, progress=False, on_image=crash_after_four)
    first = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.images.rglob("*.png")}
    assert len(first) == 4 and not getattr(tiny_pipe.unet, "_erasekit_applied", [])
    stats = generate(tiny_pipe, work, store, GEN, edit=monet_edit, progress=False)
    assert (stats.made, stats.skipped, stats.repaired) == (len(work) - 4, 4, 0)
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == before for p, before in first.items())
    keys = [line["key"] for line in store.manifest_lines()]
    assert len(keys) == len(set(keys)) == len(work)
    assert generate(tiny_pipe, work, store, GEN, edit=monet_edit, progress=False).made == 0


def test_shards_partition_the_work_and_images_do_not_depend_on_batching(tiny_pipe, monet_edit, work, tmp_path):
    sharded = ImageStore(tmp_path / "sharded", RUN)
    for index in (1, 0):
        generate(tiny_pipe, work, sharded, GEN, edit=monet_edit, shard=Shard(index, 2), progress=False)
    lines = sharded.manifest_lines()
    assert sorted(line["key"] for line in lines) == sorted(item.key for item in work)
    assert {line["shard"] for line in lines if line["key"] == work[1].key} == {1}
    single = ImageStore(tmp_path / "single", RUN)
    one_by_one = Generation(steps=2, guidance=2.0, batch_size=1)
    generate(tiny_pipe, work[:4], single, one_by_one, edit=monet_edit, progress=False)
    for item in work[:4]:  # same seed, same image, whatever the batch or shard (PNG rounding aside)
        assert np.abs(_pixels(single, item) - _pixels(sharded, item)).max() <= 1


def test_batches_share_a_guidance_scale(work):
    import dataclasses

    mixed = [dataclasses.replace(w, row=dataclasses.replace(w.row, guidance=g)) for w, g in zip(work, [7, 7, 5, 5, 5])]
    assert [len(b) for b in _batches(mixed, 2)] == [2, 2, 1]


def test_a_folder_of_another_run_is_refused_then_overwritten(tiny_pipe, work, tmp_path):
    store = ImageStore(tmp_path, RUN)
    generate(tiny_pipe, work[:2], store, GEN, progress=False)
    with pytest.raises(OutputExistsError, match=r"differs in \['steps'\].*--overwrite"):
        ImageStore(tmp_path, {**RUN, "steps": 3})
    fresh = ImageStore(tmp_path, {**RUN, "steps": 3}, overwrite=True)
    assert not list(fresh.images.rglob("*.png")) and fresh.manifest_lines() == []
    assert json.loads((tmp_path / "run.json").read_text())["steps"] == 3
    assert ImageStore(tmp_path, {**RUN, "steps": 3}).manifest() == {}  # same run: accepted


@pytest.mark.parametrize(
    "env, shard",
    [
        ({}, None),
        ({"RANK": "1", "WORLD_SIZE": "3"}, Shard(1, 3)),  # accelerate launch / torchrun
        ({"PMI_RANK": "0", "PMI_SIZE": "2"}, Shard(0, 2)),  # accelerate's multi-CPU launch via mpirun
        ({"RANK": "0", "WORLD_SIZE": "1"}, None),
    ],
)
def test_launched_shard_reads_the_launcher_environment(env, shard, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launched_shard() == shard


def test_the_first_launched_process_waits_for_the_others_images(tiny_pipe, work, tmp_path):
    store = ImageStore(tmp_path, RUN)
    generate(tiny_pipe, work[:2], store, GEN, progress=False)
    wait_for_items(store, work[:2], poll_s=0.01)  # all there: returns at once
    with pytest.raises(GenerationError, match=r"2 image\(s\) still missing .* another process"):
        wait_for_items(store, work[:4], poll_s=0.01, stall_s=0.05)


def test_settings_the_pipeline_cannot_take_are_refused_before_generating(work, tmp_path):
    class FixedSizePipeline:  # the embedded pipeline's signature: no height or width
        def __call__(self, prompt, num_inference_steps=12, guidance_scale=4.0, generator=None):
            raise AssertionError("must not be called")

        def set_progress_bar_config(self, **kwargs):
            pass

    sized = Generation(steps=2, height=512, width=512)
    with pytest.raises(ConfigError, match=r"sets \['height', 'width'\] but FixedSizePipeline"):
        generate(FixedSizePipeline(), work, ImageStore(tmp_path, RUN), sized, progress=False)


def test_progress_is_one_rich_bar_not_tqdm(tiny_pipe, work, tmp_path, capsys):
    import ast
    from pathlib import Path

    import erasekit.evaluate.runner as runner_module

    generate(tiny_pipe, work[:3], ImageStore(tmp_path, RUN), GEN, progress=True)
    err = capsys.readouterr().err
    assert "generate" in err and "3/3 img" in err and "img/s" not in err  # rich's columns, not tqdm's
    tree = ast.parse(Path(runner_module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(name.startswith("tqdm") for name in imported) and "rich.progress" in imported
