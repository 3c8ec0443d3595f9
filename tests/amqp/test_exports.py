"""The package's faces, checked the way trio checks its own
(``python-trio/trio:src/trio/_tests/test_exports.py``): every public name of the sans-IO core is
exported by exactly one face, the faces do not overlap, nothing outside ``workup/amqp`` (and its
mirror ``tests/amqp``) imports a private ``workup.amqp._*`` module, and the core imports without
trio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import workup.amqp as amqp
import workup.amqp._core as core
import workup.amqp.lowlevel as lowlevel

ROOT = Path(__file__).resolve().parents[2]
FACES = (amqp, lowlevel)


def test_faces_export_what_they_name() -> None:
    for face in FACES:
        assert len(face.__all__) == len(set(face.__all__)), face.__name__
        for name in face.__all__:
            assert hasattr(face, name), f"{face.__name__}.{name}"


def test_core_is_exported_by_exactly_one_face() -> None:
    for name in core.__all__:
        faces = [face.__name__ for face in FACES if name in face.__all__]
        assert len(faces) == 1, f"{name} is exported by {faces or 'no face'}"
        assert getattr(sys.modules[faces[0]], name) is getattr(core, name)


def test_faces_do_not_overlap() -> None:
    assert not set(amqp.__all__) & set(lowlevel.__all__)


def _private_amqp_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:  # relative: resolve against the importing module's package
                package = path.relative_to(ROOT).with_suffix("").parts[:-1]
                base = ".".join(package[:len(package) - node.level + 1])
                names = [f"{base}.{node.module}"] + [f"{base}.{node.module}.{a.name}"
                                                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["workup", "amqp"] and len(parts) > 2 and parts[2].startswith("_"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
                break
    return found


def test_nothing_outside_the_package_imports_its_private_modules() -> None:
    own = (ROOT / "workup" / "amqp", ROOT / "tests" / "amqp")  # the package and its own tests
    offenders = []
    for top in ("workup", "tests"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if not any(path.is_relative_to(d) for d in own):
                offenders += _private_amqp_imports(path)
    assert offenders == []


_NO_TRIO = """
import importlib.abc, sys, types
from pathlib import Path

class BlockTrio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "trio" or name.startswith("trio."):
            raise ImportError("trio is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTrio())
import workup
# the shell's __init__ imports trio; stand in an empty package so only _core runs
shell = types.ModuleType("workup.amqp")
shell.__path__ = [str(Path(workup.__file__).parent / "amqp")]
sys.modules["workup.amqp"] = shell
from workup.amqp import _core

core = _core.ConnectionCore(_core.ConnectionParams())
core.start()
assert core.data_to_send() == b"AMQP\\x00\\x00\\x09\\x01"
assert core.receive_data(b"\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\xce") == []  # a heartbeat
assert not any(m == "trio" or m.startswith("trio.") for m in sys.modules)
print("ok")
"""


def test_core_imports_without_trio() -> None:
    done = subprocess.run([sys.executable, "-c", _NO_TRIO], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
