"""Evaluation: protocols (YAML protocols of the papers), a resumable sharded runner, scoring and reports.

from erasekit.evaluate import evaluate
result = evaluate("embedded-style", model="embedded", edit="vangogh.safetensors", out="out/eval")
result["metrics"]["efficacy"]["judge_detect_rate_target"]
"""

from __future__ import annotations

from .evaluation import evaluate, generate_images, load_rows, resolve_concept, user_protocol
from .prompt_sets import PromptRow, load_prompt_set, read_user_prompts
from .protocols import (
    DerivedSpec,
    EvalProtocol,
    Generation,
    MetricSpec,
    PromptSetSpec,
    available_protocols,
    load_protocol,
    parse_protocol,
)
from .report import AttackExample, AttackRecord, AttackTarget, check_attacks, load_attack_record, write_html, write_json
from .runner import GenerateStats, GenerationError, generate, launched_shard, run_shards, wait_for_items
from .scoring import score
from .store import ImageStore
from .work import Shard, WorkItem, build_work

__all__ = [
    "AttackExample",
    "AttackRecord",
    "AttackTarget",
    "DerivedSpec",
    "EvalProtocol",
    "GenerateStats",
    "Generation",
    "GenerationError",
    "ImageStore",
    "MetricSpec",
    "PromptRow",
    "PromptSetSpec",
    "Shard",
    "WorkItem",
    "available_protocols",
    "build_work",
    "check_attacks",
    "evaluate",
    "generate",
    "generate_images",
    "launched_shard",
    "load_attack_record",
    "load_prompt_set",
    "load_protocol",
    "load_rows",
    "parse_protocol",
    "read_user_prompts",
    "resolve_concept",
    "run_shards",
    "score",
    "user_protocol",
    "wait_for_items",
    "write_html",
    "write_json",
]
