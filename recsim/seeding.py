"""Randomness from an explicit seed, split with `numpy.random.SeedSequence`.

Global generators are seeded only inside `seeded_scope`, for third-party code that reads them,
and restored when it exits.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


def child_seeds(seed: int, n: int) -> list[int]:
    """`n` independent 32-bit seeds derived from `seed` (for torch, faiss or members of an ensemble)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def child_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """`n` independent generators derived from `seed`."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


@contextlib.contextmanager
def seeded_scope(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch's generators and numpy's legacy global generator inside the block only.

    For libraries that draw from global generators (tianshou: minibatch orders and buffer samples
    from `np.random`, actions from torch): both are seeded from `seed` on entry and restored on
    exit, so nothing outside the block sees a changed global state. `device` "cuda[:n]" also
    forks that GPU's generator.
    """
    import torch

    devices = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(numpy_state)
