"""The jobs service: jobs, keyword search and proposals (``docs/jobs-contracts.md``)."""

from ...runtime.service import Service
from .deps import JobsDeps, open_jobs_deps

__all__ = ["service", "JobsDeps"]

service: Service[JobsDeps] = Service("jobs", open_deps=open_jobs_deps)

# the command modules, whose @service.command decorators fill the table above
from . import accept, jobs, proposals  # noqa: E402,F401
