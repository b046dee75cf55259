"""The resume check every LoRA trainer shares (their run is ``methods/esd/run.py``'s): a run resumed from a
checkpoint ends bit for bit as the uninterrupted one."""

from __future__ import annotations

import torch

from erasekit.methods.esd import Checkpoints


def resumed_states(train, request, cfg, every: int) -> list:
    """The states ``train(request, cfg)`` hands out every ``every`` iterations, once a run resumed from the
    first is asserted to end as the uninterrupted one: the same ``info`` (losses included) and updates."""
    states = []
    whole = train(request, cfg, checkpoints=Checkpoints(save=states.append, every=every))
    resumed = train(request, cfg, checkpoints=Checkpoints(resume=states[0]))
    assert resumed.info == whole.info and resumed.id == whole.id
    assert all(torch.equal(whole.updates[n][i], resumed.updates[n][i]) for n in whole.updates for i in (0, 1))
    return states
