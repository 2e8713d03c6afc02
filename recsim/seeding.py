"""Randomness from an explicit seed, split with `numpy.random.SeedSequence`; never global seeding."""
from __future__ import annotations

import numpy as np


def child_seeds(seed: int, n: int) -> list[int]:
    """`n` independent 32-bit seeds derived from `seed` (for torch, faiss or members of an ensemble)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def child_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """`n` independent generators derived from `seed`."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
