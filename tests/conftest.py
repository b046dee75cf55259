from __future__ import annotations

import pytest
import torch

from erasekit.worlds.tiny import tiny_pipeline


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # tests are tiny; one thread keeps them fast and deterministic beside other work


@pytest.fixture(autouse=True, scope="session")
def _disk_cache(tmp_path_factory):
    """Encoded prompt sets stored for the session's tests (and the CLI processes they start), not in the home
    folder (erasekit.state_cache)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ERASEKIT_CACHE", str(tmp_path_factory.mktemp("erasekit-cache")))
        yield


@pytest.fixture
def tiny_pipe():
    """A fresh tiny random SD 1.x pipeline (32-d text, 14 K/V targets)."""
    return tiny_pipeline("sd1")


@pytest.fixture(params=["sd1", "sd2", "sdxl"])
def any_pipe(request):
    return tiny_pipeline(request.param)
