"""Evaluation modes of the published protocol (docs/protocol.md, "Modes").

- **FB**: repeats allowed, quit rule on, episodes of at most `max_turn` steps.
- **NX_0**: items already recommended in the episode are masked, quit rule on.
- **NX_k** (k >= 1, published k = 10): masked, quit rule off, exactly k steps.

The mask is part of the observation (`mask`, True = allowed) so a policy can mask its logits;
in FB it is all True.
"""
from __future__ import annotations

import dataclasses
import re

from recsim.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Mode:
    """One evaluation mode.

    Attributes:
        name: "FB", "NX_0" or "NX_<k>".
        mask_recommended: mask items already recommended in the episode.
        quit_enabled: apply the quit rule.
        fixed_length: k for NX_k (episodes last exactly k steps), None otherwise.
    """

    name: str
    mask_recommended: bool
    quit_enabled: bool
    fixed_length: int | None = None

    def episode_limit(self, max_turn: int) -> int:
        """The truncation length under this mode: k for NX_k, else `max_turn`."""
        return self.fixed_length if self.fixed_length is not None else max_turn


FB = Mode("FB", mask_recommended=False, quit_enabled=True)
NX_0 = Mode("NX_0", mask_recommended=True, quit_enabled=True)

_NX = re.compile(r"^NX_(\d+)$")


def parse_mode(name: str) -> Mode:
    """`Mode` from its name: "FB", "NX_0", "NX_10", ... (case-insensitive)."""
    upper = str(name).strip().upper()
    if upper == "FB":
        return FB
    match = _NX.match(upper)
    if match is None:
        raise ConfigError(f"mode: unknown {name!r}; choose FB, NX_0 or NX_<k>")
    k = int(match.group(1))
    if k == 0:
        return NX_0
    return Mode(f"NX_{k}", mask_recommended=True, quit_enabled=False, fixed_length=k)
