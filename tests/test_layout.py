"""The layout's rules (docs/architecture.md "Rules"), checked on the source so that they stay true:
private modules stay private to their package, and each cross-cutting mechanism exists once."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workup"


@cache
def modules() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of the package: dotted name -> (path, parsed source)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = (path, ast.parse(path.read_text(), str(path)))
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported(name: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in module ``name``, ``from x import y`` counted
    as ``x.y`` when ``x.y`` is a module."""
    path, tree = modules()[name]
    package = _package_of(name, path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names if f"{target}.{a.name}" in modules()]
    return out


def test_no_module_imports_another_packages_private_module():
    offences = []
    for name, (path, _) in modules().items():
        package = _package_of(name, path)
        for line, target in imported(name):
            if not target.startswith("workup."):
                continue
            parts = target.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])          # the package the private module belongs to
                    if not (package == owner or package.startswith(owner + ".")):
                        offences.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
                    break
    assert offences == []


def definitions(kind: type, name: str) -> list[str]:
    """Where a class or function called ``name`` is defined in the package."""
    return [f"{path.relative_to(ROOT)}:{node.lineno}"
            for path, tree in modules().values() for node in ast.walk(tree)
            if isinstance(node, kind) and node.name == name]


FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


@pytest.mark.parametrize(("kind", "name", "home"), [
    (ast.ClassDef, "Route", "workup/gateway/routing.py"),        # the one gateway route type
    (FUNCS, "mount", "workup/gateway/routing.py"),                # the one way to mount routes
    (FUNCS, "path_id", "workup/gateway/routing.py"),              # the one path-id rule
    (FUNCS, "next_step", "workup/runtime/outbox.py"),             # the one retry/dead-letter policy
    (FUNCS, "fill_soon", "workup/runtime/readcache.py"),          # the one read-cache helper
    (FUNCS, "derived_id", "workup/ids.py"),                       # the one ids module
    (FUNCS, "rfc3339", "workup/ids.py"),
    (FUNCS, "new_id", "workup/ids.py"),
    (FUNCS, "to_headers", "workup/transport/envelope.py"),        # the one envelope codec
])
def test_each_mechanism_is_defined_once(kind, name, home):
    assert [d.rpartition(":")[0] for d in definitions(kind, name)] == [home]


def test_one_relay_loop():
    loops = [f"{path.relative_to(ROOT)}" for path, tree in modules().values() for node in ast.walk(tree)
             if isinstance(node, ast.ClassDef) and node.name == "Relay"
             and any(isinstance(f, ast.AsyncFunctionDef) and f.name == "run" for f in node.body)]
    assert loops == ["workup/runtime/outbox.py"]


@pytest.mark.parametrize("gone", ["relay_once", "run_relay", "relay_events", "relay_outbox", "deps_opener"])
def test_the_old_per_service_shapes_are_gone(gone):
    assert definitions(FUNCS, gone) == []


def test_services_register_commands_only_with_the_decorator():
    # no register() tables or closures, no hand calls into the command table
    in_services = [d for d in definitions(FUNCS, "register") if d.startswith("workup/services/")]
    adds = [f"{path.relative_to(ROOT)}:{node.lineno}" for path, tree in modules().values()
            if "services" in path.parts for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in ("add_command", "commands")]
    assert in_services == [] and adds == []


def assignments(name: str) -> list[str]:
    return [str(path.relative_to(ROOT)) for path, tree in modules().values() for node in ast.walk(tree)
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id == name
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))]


def test_one_control_table_and_no_command_names_elsewhere():
    assert assignments("CONTROL") == ["workup/runtime/control.py"]
    # a control command's name written out in code elsewhere would be a second vocabulary
    elsewhere = [f"{path.relative_to(ROOT)}:{node.lineno}"
                 for path, tree in modules().values() if path.name != "control.py" or path.parent.name != "runtime"
                 for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and node.value in ("set-max-threads", "set-max-db-connections",
                                                                      "update-command", "set-logging-level")]
    assert elsewhere == []


def test_every_service_declares_itself_once_in_its_package_face():
    services = sorted(p.parent.name for p in (PACKAGE / "services").glob("*/__init__.py"))
    declared = sorted(path.parent.name for path, tree in modules().values()
                      if "services" in path.parts for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Service")
    assert declared == services
    faces = [str(path.relative_to(ROOT)) for path, tree in modules().values()
             if "services" in path.parts for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Service"]
    assert all(f.endswith("__init__.py") for f in faces), faces


def test_cache_keys_are_built_only_by_the_messages_key_functions():
    callers = sorted({str(path.relative_to(ROOT)) for path, tree in modules().values() for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "cache_key"})
    # each service's entities in its message module; the gateway's own entity (the abuse limits'
    # counters) in its throttle rules
    assert all(c.startswith(("workup/messages/", "workup/cache/")) or c == "workup/gateway/throttle.py"
               for c in callers), callers
