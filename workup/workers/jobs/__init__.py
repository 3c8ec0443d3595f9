"""The jobs service: jobs, keyword search and proposals (``docs/jobs-contracts.md``)."""

from . import _accept, _jobs, _proposals  # noqa: F401  (register the commands)
from ._app import JobsDeps, service

__all__ = ["service", "JobsDeps"]
