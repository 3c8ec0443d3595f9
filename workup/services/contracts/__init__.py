"""The contracts service: contracts, milestones, terminations (``docs/jobs-contracts.md``)."""

from ...runtime.service import Service
from .deps import ContractsDeps, open_contracts_deps

__all__ = ["service", "ContractsDeps"]

service: Service[ContractsDeps] = Service("contracts", open_deps=open_contracts_deps)

# the command modules, whose @service.command decorators fill the table above (and the relay's
# background task)
from . import contracts, milestones, relay, terminations  # noqa: E402,F401
