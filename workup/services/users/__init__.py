"""The users service: accounts (register, login, close), profiles and freelancer lists.

``service`` is what ``workup worker users`` and ``workup up`` run. Stores: MongoDB (FerretDB) when
``settings.users_mongo_url`` is set, else SQLite in the data directory. See ``docs/users.md``.
"""

from ...runtime.service import Service
from .commands import register as _register_commands
from .deps import UsersDeps, open_users_deps
from .relay import RELAY

__all__ = ["service", "UsersDeps"]

service: Service[UsersDeps] = Service("users", open_deps=open_users_deps)
_register_commands(service)
service.background_task(RELAY.run)
