from tests.jobs._fixtures import keyspace_prefix  # noqa: F401
