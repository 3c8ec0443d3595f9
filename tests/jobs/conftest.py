from ._fixtures import keyspace_prefix  # noqa: F401
