"""The payments service: wallets, payment requests and paying them, with money that is exact,
never below zero and conserved.

``service`` is what ``workup worker payments`` and ``workup up`` run. Store: PostgreSQL when
``settings.payments_postgres_url`` is set, else SQLite in the data directory; both pass one
contract suite. See ``docs/payments.md``.
"""

from ...runtime.service import Service
from .commands import register as _register_commands
from .deps import PaymentsDeps, open_payments_deps
from .relay import RELAY, purge_idempotency_keys

__all__ = ["service", "PaymentsDeps"]

service: Service[PaymentsDeps] = Service("payments", open_deps=open_payments_deps)
_register_commands(service)
service.background_task(RELAY.run)
service.background_task(purge_idempotency_keys)
