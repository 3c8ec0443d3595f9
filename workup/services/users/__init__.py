"""The users service: accounts (register, login, close), profiles and freelancer lists.

``service`` is what ``workup worker users`` and ``workup up`` run. Stores: MongoDB (FerretDB) when
``settings.users_mongo_url`` is set, else SQLite in the data directory. See ``docs/users.md``.
"""

from ...runtime.service import Service
from .deps import UsersDeps, open_users_deps

__all__ = ["service", "UsersDeps"]

service: Service[UsersDeps] = Service("users", open_deps=open_users_deps)

# the command modules, whose @service.command decorators fill the table above
from . import commands  # noqa: E402,F401
from .relay import RELAY  # noqa: E402

service.background_task(RELAY.run)
