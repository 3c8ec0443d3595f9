"""The jobs service: jobs, keyword search and proposals (``docs/jobs-contracts.md``)."""

from . import accept as _accept, jobs as _jobs, proposals as _proposals  # noqa: F401  (register the commands)
from .app import JobsDeps, service

__all__ = ["service", "JobsDeps"]
