import gzip

import pytest

from erasekit.errors import ConfigError, PromptsFileError
from erasekit.evaluate import PromptSetSpec, load_prompt_set, read_user_prompts


def test_user_csv_with_optional_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,evaluation_seed,guidance,artist\na cat,7,5.5,Monet\na dog,8,6,Picasso\n")
    rows = read_user_prompts(path, seeds=(0, 1))
    assert [(r.prompt, r.seeds, r.guidance, r.label) for r in rows] == [
        ("a cat", (7,), 5.5, "Monet"),
        ("a dog", (8,), 6.0, "Picasso"),
    ]
    path.write_text("prompt\na cat\n")
    assert read_user_prompts(path, seeds=(0, 1))[0].seeds == (0, 1)


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,seed\na cat,1\n")
    with pytest.raises(PromptsFileError, match=r"lacks the column\(s\) \['prompt'\]; it has \['text', 'seed'\]"):
        read_user_prompts(path)
    spec = PromptSetSpec(name="s", csv=str(path), prompt_column="text", seed_column="evaluation_seed")
    with pytest.raises(ConfigError, match=r"\['evaluation_seed'\]"):
        load_prompt_set(spec, concept=None)


def test_bad_values_and_files(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,seed\na cat,soon\n")
    with pytest.raises(PromptsFileError, match="'soon', not a seed"):
        read_user_prompts(path)
    with pytest.raises(PromptsFileError, match="not found"):
        read_user_prompts(tmp_path / "none.csv")
    path.write_text("prompt\n")
    with pytest.raises(PromptsFileError, match="no rows"):
        read_user_prompts(path)


def test_group_column_routes_rows_to_prompt_sets(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,group\na,target\nb,specificity\nc,target\n")
    rows = read_user_prompts(path, set_names=("target", "specificity"))
    assert [(r.set, r.index, r.prompt) for r in rows] == [
        ("target", 0, "a"),
        ("specificity", 0, "b"),
        ("target", 1, "c"),
    ]
    with pytest.raises(PromptsFileError, match="group 'target' is not a prompt set"):
        read_user_prompts(path, set_names=("prompts",))


def test_gzipped_csv_match_and_limit(tmp_path):
    path = tmp_path / "p.csv.gz"
    path.write_bytes(gzip.compress(b"prompt,artist\nx,Vincent van Gogh\ny,Monet\nz,Van Gogh\n"))
    spec = PromptSetSpec(name="s", csv=str(path), label_column="artist", match="concept", seeds=(4,))
    assert [r.prompt for r in load_prompt_set(spec, concept="van gogh")] == ["x", "z"]
    others = PromptSetSpec(name="s", csv=str(path), label_column="artist", match="not_concept", limit=1)
    assert [r.prompt for r in load_prompt_set(others, concept="van gogh")] == ["y"]
    with pytest.raises(ConfigError, match="depends on the concept"):
        load_prompt_set(spec, concept=None)
    with pytest.raises(ConfigError, match="no prompts left"):
        load_prompt_set(spec, concept="rembrandt")
