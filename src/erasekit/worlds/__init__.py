"""Self-contained text-to-image worlds that ship with erasekit.

A world bundles a procedural captioned-image generator, a small text-to-image model trained on it and a
judge classifier, so that erasure can be seen, attacked and scored offline on a CPU.
"""

from __future__ import annotations
