"""The progress callback of long library loops: ``progress(done, total)``.

Library code never draws bars: a loop that takes long (ESD's iterations, ACE's rounds, an attack's
steps) calls ``progress`` when given one; the command line and the evaluation runner turn the
calls into bars.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
