"""The services: one package each (``users``, ``jobs``, ``contracts``, ``payments``, and ``echo``
for benchmarks and runtime tests). Each exposes ``service``, a :class:`workup.runtime.Service`;
``workup.runtime.load_service(name)`` finds it by name."""
