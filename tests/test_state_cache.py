from __future__ import annotations

import logging
import os

import pytest
import torch

from erasekit import state_cache
from erasekit.state_cache import encoded_states
from erasekit.text import TextEncoder
from tests.test_text import _count_forwards

TEXTS = ["a cat", "a dog on a mat", ""]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASEKIT_CACHE", str(tmp_path))
    return tmp_path / "text-states"


def test_a_new_process_reads_the_states_back_without_the_encoder(tiny_pipe, folder):
    first = encoded_states(TextEncoder(tiny_pipe), TEXTS)  # a fresh TextEncoder: nothing in memory
    assert len(list(folder.iterdir())) == 1
    calls = _count_forwards(tiny_pipe)
    again = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    assert not calls and torch.equal(again, first)  # to the bit: the same edit either way
    assert torch.equal(first, TextEncoder(tiny_pipe)(TEXTS).states.float())


def test_an_edited_text_encoder_or_other_prompts_get_their_own_file(tiny_pipe, folder):
    encoded_states(TextEncoder(tiny_pipe), TEXTS)
    encoded_states(TextEncoder(tiny_pipe), TEXTS[:2])
    assert len(list(folder.iterdir())) == 2
    with torch.no_grad():
        tiny_pipe.text_encoder.get_input_embeddings().weight[5, 0] += 1.0  # one entry, in place
    calls = _count_forwards(tiny_pipe)
    edited = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    assert calls and len(list(folder.iterdir())) == 3
    assert torch.equal(edited, TextEncoder(tiny_pipe)(TEXTS).states.float())


def test_an_encoder_under_autocast_gets_its_own_file(tiny_pipe, folder):
    full = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    rounded = encoded_states(TextEncoder(tiny_pipe, autocast=torch.bfloat16), TEXTS)
    assert len(list(folder.iterdir())) == 2 and not torch.equal(rounded, full)
    assert torch.equal(encoded_states(TextEncoder(tiny_pipe), TEXTS), full)


def test_an_unreadable_file_is_encoded_again_with_a_warning(tiny_pipe, folder, caplog):
    first = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    (path,) = folder.iterdir()
    path.write_bytes(path.read_bytes()[:100])  # cut short
    with caplog.at_level(logging.WARNING, logger="erasekit.state_cache"):
        again = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    assert torch.equal(again, first) and "unreadable" in caplog.text


def test_off_large_tables_and_custom_encoders_store_nothing(tiny_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("ERASEKIT_CACHE", "off")
    assert state_cache.cache_folder() is None
    encoded_states(TextEncoder(tiny_pipe), TEXTS)
    monkeypatch.setenv("ERASEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(state_cache, "MAX_BYTES", 0)
    encoded_states(TextEncoder(tiny_pipe), TEXTS)
    monkeypatch.setattr(state_cache, "MAX_BYTES", 2**30)
    encoder = TextEncoder(tiny_pipe)
    custom = lambda texts: encoder(texts)  # noqa: E731  (a PromptEncoder that is not a pipeline's TextEncoder)
    encoded_states(custom, TEXTS)
    assert not (tmp_path / "text-states").exists()


def test_the_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("ERASEKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert state_cache.cache_folder() == tmp_path / "erasekit" / "text-states"


def test_a_folder_that_cannot_be_written_warns_and_the_run_goes_on(tiny_pipe, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ERASEKIT_CACHE", str(blocker))
    with caplog.at_level(logging.WARNING, logger="erasekit.state_cache"):
        states = encoded_states(TextEncoder(tiny_pipe), TEXTS)
    assert torch.equal(states, TextEncoder(tiny_pipe)(TEXTS).states.float()) and "ERASEKIT_CACHE" in caplog.text


def test_past_the_budget_the_least_recently_used_tables_go(tiny_pipe, folder, monkeypatch):
    encoder = TextEncoder(tiny_pipe)
    encoded_states(encoder, ["a"])
    (oldest,) = folder.iterdir()
    size = oldest.stat().st_size
    monkeypatch.setattr(state_cache, "MAX_TOTAL_BYTES", 2 * size)
    encoded_states(encoder, ["b"])
    (newer,) = set(folder.iterdir()) - {oldest}
    os.utime(oldest, (1, 1))
    os.utime(newer, (2, 2))
    encoded_states(encoder, ["a"])  # read back: now the newest
    encoded_states(encoder, ["c"])  # a third table: over the budget, so the least recently used goes
    assert oldest.exists() and not newer.exists() and len(list(folder.iterdir())) == 2
