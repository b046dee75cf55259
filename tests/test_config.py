from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from erasekit.config import config_dict, make_config
from erasekit.errors import ConfigError


@dataclass(frozen=True)
class Toy:
    lamb: float = 0.5
    epochs: int = 1
    keys: bool = True
    mode: Literal["a", "b"] = "a"
    scale: float | None = None
    words: tuple[str, ...] = ()


def test_strings_from_the_command_line_are_parsed_by_field_type():
    cfg = make_config(Toy, {"lamb": "0.1", "epochs": "3", "keys": "false", "mode": "b", "scale": "none"})
    assert cfg == Toy(0.1, 3, False, "b", None)
    assert make_config(Toy, {"scale": "2"}).scale == 2.0 and config_dict(cfg)["epochs"] == 3
    # a tuple from a comma-separated list (empty: none), or from a Python list
    assert make_config(Toy, {"words": "style, object"}).words == ("style", "object")
    assert make_config(Toy, {"words": ""}).words == () and make_config(Toy, {"words": ["a"]}).words == ("a",)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [({"lam": 1}, "Did you mean 'lamb'"), ({"epochs": "1.5"}, "expects int"), ({"mode": "c"}, "one of 'a', 'b'"),
     ({"keys": "maybe"}, "expects bool"), ({"epochs": True}, "expects int"), ({"words": 3}, "expects tuple"),
     ({"words": [1]}, "words item expects str")],
)  # fmt: skip
def test_bad_values_name_the_field(overrides, words):
    with pytest.raises(ConfigError, match=words):
        make_config(Toy, overrides)


def test_check_count_takes_whole_numbers_from_one():
    from erasekit.config import check_count

    check_count("--n-prompts", 1)
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ConfigError, match="--n-prompts must be a whole number >= 1"):
            check_count("--n-prompts", bad)
