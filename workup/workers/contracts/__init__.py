"""The contracts service: contracts, milestones, terminations (``docs/jobs-contracts.md``)."""

from . import _contracts, _milestones, _relay, _terminations  # noqa: F401  (register the commands)
from ._app import ContractsDeps, service

__all__ = ["service", "ContractsDeps"]
