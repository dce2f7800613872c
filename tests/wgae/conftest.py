"""wgae test set-up: one torch thread (tiny sparse ops spin under OpenMP on a shared CPU), shared small networks."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def small_net():
    from tenfold.wgae.gpgbn import sample

    return sample(120, 50, (6, 2), doc_length=40.0, mean_degree=8.0, seed=3)
