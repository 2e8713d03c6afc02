"""Import deepctr-torch without its import-time side effects.

`deepctr_torch/__init__.py` (0.3.0) calls `deepctr_torch.utils.check_version`, which starts a
thread that asks the package index for the latest release over the network and, without network,
prints "Please check the latest version manually ..." on stdout at an unpredictable moment. recsim
makes no network call and prints nothing at import, so before the package is first imported this
module registers a stand-in `deepctr_torch.utils` in `sys.modules` whose `check_version` does
nothing. That module holds nothing but `check_version` in 0.3.0, so nothing else is lost, and
`requests` is never imported.

If deepctr-torch was already imported by someone else, the check has already run and this module
only re-exports what recsim uses.

deepctr's `BaseModel.__init__` also calls `torch.manual_seed` (global seeding); `recsim.user_model.model`
builds its models inside `torch.random.fork_rng` so the caller's global RNG state is untouched.
"""
from __future__ import annotations

import sys
import types

_UTILS = "deepctr_torch.utils"


def _install_quiet_utils() -> None:
    if "deepctr_torch" in sys.modules or _UTILS in sys.modules:
        return
    stub = types.ModuleType(_UTILS, "recsim stand-in for deepctr_torch.utils: the online version check is disabled.")

    def check_version(version: str) -> None:
        """Do nothing: recsim never contacts the package index."""

    stub.__dict__["check_version"] = check_version  # a ModuleType's attributes are its __dict__
    sys.modules[_UTILS] = stub


_install_quiet_utils()

from deepctr_torch.inputs import DenseFeat, SparseFeat, build_input_features  # noqa: E402
from deepctr_torch.models import DeepFM  # noqa: E402

__all__ = ["DeepFM", "DenseFeat", "SparseFeat", "build_input_features"]
