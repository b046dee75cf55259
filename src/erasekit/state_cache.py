"""Token states of fixed prompt sets, kept on disk between processes.

Some methods encode the same large, concept-free prompt set on every call (ACE's thousands of neutral captions:
~8 s of MiniLM on two cores, against the ~5 s of the erasure itself). Within a process a method keeps them in
memory; :func:`encoded_states` also keeps them in a file, so the next process reads them back instead of paying the
text encoder again (the CLI starts a process per command).

A file is found by a hash of everything the states depend on: the prompts, each tokenizer (its serialised form:
vocabulary, normaliser, special tokens) and its context length, each text encoder's class and every parameter and
buffer (name, dtype, shape, bytes), and the dtype its forward runs in under autocast
(:meth:`~erasekit.text.TextEncoder.in_precision`). Any edit of the text encoder, applied in place or loaded, makes a
new file: stale states are never read. The states are stored in float32 as computed, so a run that reads them gives
the same edit to the bit as one that encodes them.

Where: ``$ERASEKIT_CACHE/text-states`` (default ``$XDG_CACHE_HOME/erasekit`` or ``~/.cache/erasekit``);
``ERASEKIT_CACHE=off`` keeps nothing on disk. Tables over :data:`MAX_BYTES` are not written (SD's 77 × 768 states of
~2,500 captions are ~600 MB, and its GPU encodes them in seconds). The folder holds at most :data:`MAX_TOTAL_BYTES`:
past it the tables used least recently are deleted (ACE's captions depend on the training seed, so a five-seed
comparison stores five ~95 MB tables for the embedded world). ``erasekit cache`` lists them, ``--clear`` deletes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .io import atomic_write
from .text import PromptEncoder, TextEncoder

logger = logging.getLogger(__name__)

MAX_BYTES = 256 * 2**20  # the largest table written to disk
MAX_TOTAL_BYTES = 2**30  # the folder's budget: past it the least recently used tables go (ACE's: one per seed)
FORMAT = "erasekit-text-states-1"  # bump when what a file holds changes


def cache_folder() -> Path | None:
    """The folder of the stored tables, or None when ``ERASEKIT_CACHE=off`` (module docstring)."""
    root = os.environ.get("ERASEKIT_CACHE")
    if root is not None and root.strip().lower() == "off":
        return None
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "erasekit")
    return Path(root).expanduser() / "text-states"


def stored() -> list[tuple[Path, int]]:
    """``(table, bytes)`` of every stored table, the least recently used first (none when ``ERASEKIT_CACHE=off``).
    Another process may be deleting them: one already gone is left out."""
    folder = cache_folder()
    if folder is None:
        return []
    tables = []
    for table in folder.glob("*.safetensors"):
        try:
            stat = table.stat()
        except FileNotFoundError:
            continue
        tables.append((stat.st_mtime, table, stat.st_size))
    return [(table, size) for _, table, size in sorted(tables)]


def clear() -> int:
    """Delete every stored table; returns the bytes freed. The next process encodes its prompt sets again."""
    tables = stored()
    for table, _ in tables:
        table.unlink(missing_ok=True)
    return sum(size for _, size in tables)


def encoded_states(encoder: PromptEncoder, texts: Sequence[str]) -> Tensor:
    """``[B, L, d]`` float32 states of ``texts``, as ``encoder(texts).states``, read from the disk cache when a
    process stored them before, else encoded and stored (module docstring). An encoder other than a pipeline's
    :class:`~erasekit.text.TextEncoder` cannot be hashed, and is called every time."""
    folder = cache_folder()
    if folder is None or not isinstance(encoder, TextEncoder) or _table_bytes(encoder, texts) > MAX_BYTES:
        return encoder(texts).states.float()
    path = folder / f"{_key(encoder, texts)}.safetensors"
    if path.is_file():
        try:
            states = load_file(str(path))["states"]
            os.utime(path)  # the newest use: what the folder's budget evicts last
            return states
        except (SafetensorError, KeyError, OSError) as err:  # a file cut short outside erasekit: encode again
            logger.warning("Encoding the prompts again: the stored states at %s are unreadable (%s).", path, err)
    states = encoder(texts).states.float()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file({"states": states.contiguous()}, str(tmp)))
        _evict(keep=path)
        logger.info("encoded %d fixed prompts once; later processes read them from %s", len(texts), path)
    except OSError as err:  # a read-only home: the run goes on, and the next one encodes again
        logger.warning(
            "Could not store encoded prompts in %s (%s): set ERASEKIT_CACHE to a writable folder.", folder, err
        )
    return states


def _table_bytes(encoder: TextEncoder, texts: Sequence[str]) -> int:
    """The bytes of ``texts``' float32 states ``[B, L, Σ hidden]``, from the encoders' configs (before any hashing: a
    table too large to store is not looked up); 0 where a config gives no width."""
    widths = [getattr(getattr(model, "config", None), "hidden_size", 0) for _, model in encoder.pairs]
    return len(texts) * encoder.max_length * sum(widths) * 4


def _evict(keep: Path) -> None:
    """Delete the least recently used tables until the folder holds at most :data:`MAX_TOTAL_BYTES` (``keep`` stays)."""
    tables = stored()
    total = sum(size for _, size in tables)
    for table, size in tables:
        if total <= MAX_TOTAL_BYTES:
            break
        if table != keep:
            total -= size
            table.unlink(missing_ok=True)


@torch.no_grad()
def _key(encoder: TextEncoder, texts: Sequence[str]) -> str:
    """sha256 (hex) of the prompts, the tokenizers and the text encoders' weights (module docstring)."""
    h = hashlib.sha256(FORMAT.encode())
    h.update(json.dumps(list(texts)).encode())
    if encoder.autocast is not None:  # a float32 encoder's tables keep the names they had before this option
        h.update(f"autocast {encoder.autocast}".encode())
    for tokenizer, model in encoder.pairs:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:  # without the padding and truncation a call sets: they change with every call
            serialised = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        else:
            serialised = sorted(tokenizer.get_vocab().items())
        h.update(json.dumps(serialised, sort_keys=True).encode())
        h.update(f"{type(tokenizer).__name__} {encoder.max_length} {type(model).__name__}".encode())
        for name, value in sorted(model.state_dict().items()):
            h.update(f"{name} {value.dtype} {tuple(value.shape)}".encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]
