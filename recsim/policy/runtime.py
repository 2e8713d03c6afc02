"""Where and how a policy's torch code runs: the device and the number of intra-op threads."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from recsim.errors import ConfigError


def torch_device(name: str) -> torch.device:
    """`torch.device(name)`; "cuda" without a GPU is a `ConfigError`."""
    if not (name == "cpu" or name.startswith("cuda")):
        raise ConfigError(f"device: {name!r} is not 'cpu' or 'cuda[:n]'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (None: unchanged), restored afterwards.

    The policies' networks are small (64-unit layers); on a busy machine several threads per
    small matrix product cost far more in contention than they gain (measured on 2 shared
    cores: 15.7 ms per 256 x 64 x 200 layer with 2 threads, 0.7 ms with 1).
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
