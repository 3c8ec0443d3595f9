"""The payments service: wallets, payment requests and paying them, with money that is exact,
never below zero and conserved.

``service`` is what ``workup worker payments`` and ``workup up`` run. Store: PostgreSQL when
``settings.payments_postgres_url`` is set, else SQLite in the data directory; both pass one
contract suite. See ``docs/payments.md``.
"""

from ...runtime.service import Service
from .deps import PaymentsDeps, open_payments_deps

__all__ = ["service", "PaymentsDeps"]

service: Service[PaymentsDeps] = Service("payments", open_deps=open_payments_deps)

# the command modules, whose @service.command decorators fill the table above
from . import commands  # noqa: E402,F401
from .relay import RELAY, purge_idempotency_keys  # noqa: E402

service.background_task(RELAY.run)
service.background_task(purge_idempotency_keys)
