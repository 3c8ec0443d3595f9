"""The typed commands and replies of every service, one module per service.

The gateway and other services import these structs (never a service's handlers or stores).
Structs use ``rename="camel"``: Python attributes are snake_case, the wire/JSON names camelCase.
Money is ``decimal.Decimal``; ids are strings.
"""

from ._base import Message

__all__ = ["Message"]
