"""AdvUnlearn's retain set: prompts whose predictions the erased text encoder must keep.

The reference draws them from COCO-based prompt lists (``--dataset_retain coco_object``, filtered of
the erased concept). Ours: the last ``retain_pool`` captions of the COCO-10k set erasekit ships
(the evaluation's ``--n-prompts`` takes the first ones), without those that name a concept, plus
the request's preserve set; or the preserve set alone (``retain_set="preserve"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigError
from ...io import prompts_dir, read_csv
from ...text import mentions, refuse_mentions
from .config import AdvUnlearnConfig

COCO = "coco_10k.csv.gz"


def retain_prompts(concepts: Sequence[str], preserve: Sequence[str], cfg: AdvUnlearnConfig) -> list[str]:
    """The retain pool: COCO captions that name no concept (``retain_set="coco"``) and the preserve set.

    Raises:
        ConfigError: a preserve prompt names an erased concept (retaining it would undo the erasure),
            or the pool is empty (``retain_set="preserve"`` without a preserve set).
    """
    refuse_mentions(preserve, concepts, given_as="preserve", why="AdvUnlearn would both erase and retain it")
    pool = list(dict.fromkeys(preserve))
    if cfg.retain_set == "coco":
        captions = [row["prompt"] for row in read_csv(prompts_dir() / COCO, required=["prompt"])]
        captions = captions[len(captions) - cfg.retain_pool :] if cfg.retain_pool else []
        pool += [p for p in captions if not any(mentions(p, c) for c in concepts)]
    if not pool:
        raise ConfigError(
            "AdvUnlearn needs a retain set, but retain_set='preserve' and no preserve set was given: pass "
            "preserve=[...] (CLI: --preserve), or use retain_set='coco'."
        )
    return pool
