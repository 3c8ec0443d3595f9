"""The contracts service: contracts, milestones, terminations (``docs/jobs-contracts.md``)."""

from . import (contracts as _contracts, milestones as _milestones, relay as _relay,
    terminations as _terminations)  # noqa: F401  (register the commands)
from .app import ContractsDeps, service

__all__ = ["service", "ContractsDeps"]
