"""Attack results in an evaluation: read back from ``erasekit attack -o`` folders, checked against the
evaluated edit and concept, and added to the ASR group as ``asr.asr_<name>``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from erasekit.errors import ConfigError


@dataclass(frozen=True)
class AttackExample:
    """One attacked prompt: what the attack found, the image it made, whether the judge saw the concept."""

    prompt: str
    image: Image.Image
    success: bool
    found: str = ""


@dataclass(frozen=True)
class AttackTarget:
    """What an attack attacked: a concept, and an edit (``Edit.summary(brief=True)``; None: the bare model)."""

    concept: str
    edit: Mapping[str, Any] | None


@dataclass(frozen=True)
class AttackRecord:
    """An attack's outcome for the report: its ASR (UnlearnDiff's definition) and some examples.

    ``target``: what it attacked, checked against the evaluated edit and concept (None: not recorded, not
    checked); ``source``: where it was read from, for messages; ``quick``: run at the reduced ``--quick`` budget,
    not at the paper's strength (the evaluation's metrics and report say so).
    """

    name: str
    asr: float
    examples: Sequence[AttackExample] = field(default_factory=tuple)
    params: Mapping[str, Any] = field(default_factory=dict)
    target: AttackTarget | None = None
    source: str = ""
    quick: bool = False


def load_attack_record(folder: str | os.PathLike[str], *, n_examples: int = 12) -> AttackRecord:
    """Returns the outcome of ``erasekit attack ... -o FOLDER`` (its ``result.json`` and images) for the report.

    Examples are the first ``n_examples`` prompts: the attack's image where the prompt was attacked, the
    un-attacked image where the edited model already showed the concept.

    Raises:
        ConfigError: ``folder`` holds no attack result, or one this erasekit cannot read.
    """
    folder = Path(folder)
    try:
        data = json.loads((folder / "result.json").read_text())
        examples = []
        for i, case in enumerate(data["cases"][:n_examples]):
            path = folder / ("attack" if case["attacked"] else "pre") / f"{i:04d}.png"
            if path.is_file():
                with Image.open(path) as image:
                    found = case.get("adversarial_prompt") or ("" if case["attacked"] else "shown before any attack")
                    examples.append(AttackExample(case["prompt"], image.convert("RGB"), bool(case["success"]), found))
        params = {k: data.get(k) for k in ("concept", "n", "pre_asr", "seed", "config")}
        info = data.get("info") or {}
        edit = data["edit"] if "edit" in data else info["edit"] if "edit" in info else _UNKNOWN
        target = None if edit is _UNKNOWN else AttackTarget(str(data["concept"]), edit)
        name, asr, quick = str(data["attack"]), float(data["asr"]), bool(data.get("quick", False))
        return AttackRecord(name, asr, tuple(examples), params, target, str(folder), quick)
    except FileNotFoundError as err:
        raise ConfigError(
            f"{folder} holds no attack result ({err.filename} missing): run `erasekit attack ... -o {folder}`."
        ) from err
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(
            f"{folder}/result.json is not an erasekit attack result ({type(err).__name__}: {err})."
        ) from err


_UNKNOWN = object()


def check_attacks(attacks: Sequence[AttackRecord], edit: Mapping[str, Any] | None, concept: str | None) -> None:
    """Refuses attack results that are not of this evaluation, or two of one attack.

    Args:
        attacks: the attack results to add to the ASR group.
        edit: the evaluated edit's ``summary(brief=True)``; None: the model as it is.
        concept: the evaluated concept.

    Raises:
        ConfigError: an attack of another edit (id or base fingerprint), of no edit while an edit is
            evaluated (or the reverse), of another concept, or two results of one attack.
    """
    seen: dict[str, AttackRecord] = {}
    for record in attacks:
        where = record.source or f"the {record.name} result"
        if record.name in seen:
            first = seen[record.name].source or "the first"
            raise ConfigError(
                f"two results of the attack {record.name!r} ({first} and {where}): the ASR group has one number "
                "per attack. Pass one result per attack."
            )
        seen[record.name] = record
        target = record.target
        if target is None:
            continue
        if concept is not None and target.concept.casefold().strip() != concept.casefold().strip():
            raise ConfigError(
                f"{where} attacked the concept {target.concept!r}, but this evaluation is of {concept!r}: pass an "
                f"attack of {concept!r}, or evaluate --concept {target.concept!r}."
            )
        if (target.edit is None) != (edit is None):
            what = "the model without an edit" if target.edit is None else f"the edit {_name(target.edit)}"
            evaluated = "the model without an edit" if edit is None else f"the edit {_name(edit)}"
            raise ConfigError(
                f"{where} attacked {what}, but this evaluation is of {evaluated}: its ASR says nothing about it. "
                "Attack the evaluated edit (erasekit attack ... --edit FILE) and pass that folder."
            )
        if edit is not None and target.edit is not None:
            for key in ("id", "fingerprint"):
                if target.edit.get(key) != edit.get(key):
                    part = "edit id" if key == "id" else "base-model fingerprint"
                    raise ConfigError(
                        f"{where} attacked another edit ({_name(target.edit)}) than the evaluated one "
                        f"({_name(edit)}): the {part} differs. Attack the evaluated edit and pass that folder."
                    )


def _name(edit: Mapping[str, Any]) -> str:
    concepts = ", ".join(map(str, edit.get("concepts") or [])) or "?"
    return f"{edit.get('method')} of {concepts}, id {edit.get('id')}, base {edit.get('fingerprint')}"


def with_attacks(result: dict[str, Any], attacks: Sequence[AttackRecord]) -> dict[str, Any]:
    """Returns ``result`` with ``metrics.asr.asr_<name>`` set for every attack, and ``"quick": true`` with the names
    in ``quick_attacks`` where any ran at the ``--quick`` budget."""
    for record in attacks:
        result["metrics"]["asr"][f"asr_{record.name}"] = record.asr
    quick = [record.name for record in attacks if record.quick]
    if quick:
        result |= {"quick": True, "quick_attacks": quick}
    return result
