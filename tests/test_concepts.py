from __future__ import annotations

import pytest

from erasekit.concepts import erase_rows, keep_rows
from erasekit.errors import ConfigError
from erasekit.text import TextEncoder


def test_span_rows_run_from_the_last_word_to_the_end(tiny_pipe):
    enc = TextEncoder(tiny_pipe)
    L = enc.max_length
    i = len(tiny_pipe.tokenizer("van gogh", add_special_tokens=False).input_ids)  # the last word's position
    pairs = erase_rows(enc, ["van gogh"], [" "])  # the guide " " has no word: it starts at 0
    assert pairs.C.shape[0] == L - i and pairs.G.shape == pairs.C.shape
    assert pairs.C.equal(enc(["van gogh"]).states[0, i:])
    assert erase_rows(enc, ["van gogh"], [" "], tokens="last").C.shape[0] == 1


def test_skip_bos_never_pairs_with_the_start_state(tiny_pipe):
    enc = TextEncoder(tiny_pipe)
    ref, clean = erase_rows(enc, ["dog"], [" "]), erase_rows(enc, ["dog"], [" "], alignment="skip_bos")
    start = enc([" "]).states[0, 0]
    assert ref.G[0].equal(start) and not clean.G[0].equal(start)


def test_keep_rows_and_mismatched_guides(tiny_pipe):
    enc = TextEncoder(tiny_pipe)
    assert keep_rows(enc, ["", "monet"]).shape == (2 * enc.max_length, 32)
    assert keep_rows(enc, []).numel() == 0
    with pytest.raises(ConfigError, match="2 concepts but 1 guides"):
        erase_rows(enc, ["a", "b"], [" "])
