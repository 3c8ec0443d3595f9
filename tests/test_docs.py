"""Nothing lies: every path, module and ``workup`` subcommand that the docs name exists.

Read: ``docs/*.md``, ``README.md``, ``perf/README.md``, the contributing guide at the root once it
exists, and every docstring and comment of ``workup/`` and ``tests/``. Checked:

- a path from the repository root (``workup/runtime/instance.py``, ``tests/blackbox/``,
  ``ops/dev/services``, ``.ci/run``) exists; ``<placeholder>`` and ``*`` match at least one path;
  a path that ``.gitignore`` covers is output (``perf/results/``) and passes;
- a shorter path (``routes/jobs.py``) is the tail of a path in the repository, or exists beside the
  file that names it; a bare file name (``instance.py``) is some file's name; a folder named
  alone (``amqp/_core/``) counts only as a whole code span, since prose has "exchanges/queues/";
- ``path::name`` (a pytest id) names a function or class defined in that file;
- no path leads out of the repository: a sibling folder of the clone, or an absolute path into
  the workspace around it, is true on one machine only (:func:`outside_refs`);
- a dotted name under ``workup`` (``workup.testing.fake_service``) imports, attribute by attribute,
  or is a name the code spells as a string: a logger (``workup.access``) or, under the default
  prefix, a broker object of ``workup/transport/rabbitmq.py`` (``workup.events``);
- ``workup <subcommand> [<subcommand>]`` is a command of the click group (``workup bench rpc``);
- a test named alone (``test_e2e``, ``test_close_racing_deposits_never_strands_money``) is a test
  module or defined under ``tests/`` (or by the example that names it).

Not references: URLs, absolute paths, ``owner/repo:path`` (another project's file), a value given
to an option (``--config groups.toml``) or quoted in an example, a metavariable file name
(``FILE.py``), and a name given as what is gone ("``runtime/instance.py``, not ``_instance.py``",
"ex-``kit.py``"). A failure lists ``file:line: missing <what>``, one a line.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import io
import os
import re
import tokenize
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import click
import msgspec
import pytest

ROOT = Path(__file__).resolve().parent.parent

# First segments that make a path absolute from the repository root.
TOP = frozenset({"workup", "tests", "docs", "ops", "scripts", "perf", "tools", ".ci"})
# Endings that make a token a file name; without one, ``a/b`` is prose ("freeze/start").
FILE_ENDINGS = ("py", "md", "toml", "yml", "yaml", "json", "sh", "go", "xml", "options")

_PLACEHOLDER = re.compile(r"<[^<>\n]*>")
_TOKEN = re.compile(r"[\w./<>*:~$@+-]+")
_FILE = re.compile(r"[\w<>*.-]+\.(?:" + "|".join(FILE_ENDINGS) + r")")
_METAVAR = re.compile(r"[A-Z][A-Z0-9_]*\.py")
_LINE_SUFFIX = re.compile(r"(?::\d+(?:-\d+)?)+$")
_OPTION_BEFORE = re.compile(r"(?:^|[\s\[(`])--?[\w-]+[ =]$")
_MODULE = re.compile(r"(?<![\w./-])workup(?:\.[\w<>*]+)+")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_TEST_NAME = re.compile(r"(?<![\w./:])(test_\w+)(?!\w|\.\w)")
# "`runtime/instance.py`, not `_instance.py`", "ex-`kit.py`": a name given as what is no longer there
_FORMER = re.compile(r"(?:\bnot|\binstead of|\brather than|\bformerly|\bex-|\brenamed from|\bwas|\bwere|\bold)[\s`*(]*$")
_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj):`~?(\.[\w.]+)`")
_SUBCOMMAND = re.compile(r"(?:^|(?<=[\s(`]))workup((?:[ \t]+[a-z][\w-]*)+)")


class Ref(msgspec.Struct, frozen=True):
    """One reference: the file that makes it (root-relative), its line, the text as written."""

    source: str
    line: int
    text: str


class Missing(msgspec.Struct, frozen=True):
    ref: Ref
    what: str

    def __str__(self) -> str:
        return f"{self.ref.source}:{self.ref.line}: missing {self.what}"


Numbered = list[tuple[int, str]]


# -------------------------------------------------------------------------- what is read


def doc_files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("*.md"))
    return files + [p for p in (ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "perf" / "README.md")
                    if p.exists()]


def python_files() -> list[Path]:
    return sorted(p for top in ("workup", "tests") for p in (ROOT / top).rglob("*.py"))


def _docstring_nodes(tree: ast.AST) -> list[ast.Constant]:
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                nodes.append(first.value)
    return nodes


def python_text(source: str) -> Numbered:
    """Every line of every docstring and comment of a Python source, with its line number."""
    lines: Numbered = []
    for node in _docstring_nodes(ast.parse(source)):
        assert isinstance(node.value, str)
        lines += [(node.lineno + i, line) for i, line in enumerate(node.value.split("\n"))]
    lines += [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
              if tok.type == tokenize.COMMENT]
    return lines


def code_spans(numbered: Numbered) -> Numbered:
    """The code spans of each line (Markdown's `x`, reST's ``x``)."""
    return [(n, m.group(1)) for n, line in numbered for m in _CODE_SPAN.finditer(line)]


def markdown_code(text: str) -> Numbered:
    """Code spans, and every line of a fenced or indented block, of a Markdown text."""
    fenced: set[int] = set()
    for block in _FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 1
        fenced.update(range(first, first + block.group(0).count("\n") + 1))
    numbered = list(enumerate(text.split("\n"), start=1))
    blocks = [(n, line) for n, line in numbered if n in fenced or line.startswith("    ")]
    return blocks + code_spans([(n, line) for n, line in numbered if n not in fenced])


# ----------------------------------------------------------------------- the repository


@cache
def repo_paths() -> tuple[frozenset[str], frozenset[str]]:
    """(files, folders) of the repository as root-relative POSIX paths; ignored output left out."""
    files: set[str] = set()
    dirs: set[str] = set()
    for here, subdirs, names in os.walk(ROOT):
        base = Path(here).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else base + "/"
        subdirs[:] = [d for d in subdirs if d != ".git" and not ignored(prefix + d + "/")]
        dirs.update(prefix + d for d in subdirs)
        files.update(prefix + n for n in names if not ignored(prefix + n))
    return frozenset(files), frozenset(dirs)


@cache
def _ignore_patterns() -> tuple[str, ...]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return tuple(p.strip() for p in lines if p.strip() and not p.startswith("#"))


def ignored(rel: str) -> bool:
    """Whether ``.gitignore`` covers a path (enough of git's rules for this repository's file)."""
    parts = rel.rstrip("/").split("/")
    for pattern in _ignore_patterns():
        if pattern.endswith("/"):
            body = pattern.strip("/")
            if "/" in body:
                if (rel.rstrip("/") + "/").startswith(body + "/"):
                    return True
            elif any(fnmatch.fnmatchcase(part, body) for part in parts):
                return True
        elif "/" in pattern.strip("/"):
            if fnmatch.fnmatchcase(rel.rstrip("/"), pattern.strip("/")):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def matches(token: str, source: str) -> list[str]:
    """The repository paths a path token names (``["."]`` for a file outside it that is there, or
    cannot be checked from here, and for ignored output)."""
    files, dirs = repo_paths()
    candidates = dirs if token.endswith("/") else files | dirs
    # "./scripts/test": commands are shown as run from the repository root
    rooted = token.startswith("./")
    body = token.rstrip("/").removeprefix("./")
    pattern = _PLACEHOLDER.sub("*", body)
    if body.startswith("../"):
        resolved = (ROOT / source).parent.joinpath(body).resolve()
        rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else None
        return [rel] if rel in candidates else []
    if rooted or body.split("/")[0] in TOP:
        if ignored(_PLACEHOLDER.sub("x", token.removeprefix("./"))):
            return ["."]
        return sorted(c for c in candidates if fnmatch.fnmatchcase(c, pattern))
    beside = (Path(source).parent / body).as_posix()
    if beside in candidates:
        return [beside]
    return sorted(c for c in candidates if fnmatch.fnmatchcase(c, pattern) or fnmatch.fnmatchcase(c, "*/" + pattern))


@cache
def spelled_names() -> frozenset[str]:
    """Names under ``workup.`` that the code spells as strings (not in docstrings): loggers, and the
    broker objects that an f-string built on the prefix names, with the default prefix and each
    service for any other field."""
    services = sorted(p.parent.name for p in (ROOT / "workup" / "services").glob("*/__init__.py"))
    names: set[str] = set()
    for path in (ROOT / "workup").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = set(map(id, _docstring_nodes(tree)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and re.fullmatch(r"workup(?:\.\w+)+", node.value):
                names.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.FormattedValue) \
                    and ast.unparse(node.values[0].value).endswith("prefix"):
                variants = ["workup"]
                for part in node.values[1:]:
                    options = [part.value] if isinstance(part, ast.Constant) else services
                    variants = [v + str(o) for v in variants for o in options]
                names.update(variants)
    return frozenset(names)


# ------------------------------------------------------------------------- the checks


def path_refs(source: str, numbered: Numbered, spans: Numbered) -> list[Ref]:
    refs = []
    for line, raw in numbered:
        # a placeholder is one word, so "<data dir>/replicas/" stays one token
        text = _PLACEHOLDER.sub(lambda m: m.group(0).replace(" ", "_"), raw)
        for match in _TOKEN.finditer(text):
            token, start, end = match.group(0), match.start(), match.end()
            if "://" in token or "@" in token or token[0] in "/~$<-":
                continue  # a URL, an absolute path, a shell variable, a placeholder root, an option
            if start and end < len(text) and text[start - 1] in "\"'" and text[end] == text[start - 1]:
                continue  # a quoted value in an example
            if _OPTION_BEFORE.search(text[:start]):
                continue  # the value of an option: the user's own file
            if _FORMER.search(text[:start]):
                continue
            token = _LINE_SUFFIX.sub("", token.rstrip(".,:;")).rstrip(".,:;")
            token, _, test_id = token.partition("::")
            if not token or ":" in token:
                continue  # owner/repo:path, host:port
            name = token.rstrip("/").rsplit("/", 1)[-1]
            top = token.removeprefix("./").split("/")[0] in TOP
            if token.endswith("/") and not top and (line, token) not in spans:
                continue  # a folder named alone counts as a whole code span only ("exchanges/queues/")
            if not (top or token.endswith("/") or _FILE.fullmatch(name)):
                continue  # prose ("freeze/start"), an HTTP route, a word
            if token.startswith(".") and not (top or token.startswith(("./", "../"))):
                continue  # a dotfile or dot-folder of a machine (".venv", ".workup")
            if _METAVAR.fullmatch(name):
                continue
            refs.append(Ref(source, line, token + ("::" + test_id if test_id else "")))
    return refs


def check_path(ref: Ref) -> Missing | None:
    token, _, test_id = ref.text.partition("::")
    found = matches(token, ref.source)
    if not found:
        return Missing(ref, token)
    if test_id:
        name = test_id.split("::")[-1].split("[")[0]
        defined = re.compile(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", re.M)
        if not any((ROOT / f).is_file() and defined.search((ROOT / f).read_text()) for f in found):
            return Missing(ref, ref.text)
    return None


def module_refs(source: str, numbered: Numbered) -> list[Ref]:
    return [Ref(source, line, m.group(0).rstrip(".")) for line, text in numbered for m in _MODULE.finditer(text)
            if not _FORMER.search(text[:m.start()])]


def check_module(ref: Ref) -> Missing | None:
    if ref.text in spelled_names():
        return None
    parts = ref.text.split(".")
    wild = next((i for i, p in enumerate(parts) if "<" in p or "*" in p), len(parts))
    known = parts[:wild]
    for i in range(len(known), 1, -1):
        try:
            obj: object = importlib.import_module(".".join(known[:i]))
        except ModuleNotFoundError:
            continue
        for attr in known[i:]:
            if not hasattr(obj, attr):
                return Missing(ref, ".".join(known))
            obj = getattr(obj, attr)
        return None
    return Missing(ref, ref.text)


def command_refs(source: str, code: Numbered) -> list[Ref]:
    return [Ref(source, line, "workup" + m.group(1)) for line, text in code for m in _SUBCOMMAND.finditer(text)]


def check_command(ref: Ref) -> Missing | None:
    from workup.cli import cli

    command: click.Command = cli
    said = ["workup"]
    for word in ref.text.split()[1:]:
        if not isinstance(command, click.Group):
            return None  # the rest are its arguments
        ctx = click.Context(command)
        if word not in command.list_commands(ctx):
            return Missing(ref, "command " + " ".join([*said, word]))
        try:
            sub = command.get_command(ctx, word)
        except click.ClickException:
            return None  # it is listed, but loads only with extras this machine lacks
        if sub is None:
            return Missing(ref, "command " + " ".join([*said, word]))
        command, said = sub, [*said, word]
    return None


def role_refs(source: str, numbered: Numbered) -> list[Ref]:
    """reST roles with a relative target (``:mod:`._resp```) in a module of ``workup/``, made absolute
    from the module's package."""
    if not source.startswith("workup/"):
        return []
    module = source.removesuffix(".py").replace("/", ".")
    package = module.removesuffix(".__init__") if module.endswith(".__init__") else module.rsplit(".", 1)[0]
    refs = []
    for line, text in numbered:
        for match in _ROLE.finditer(text):
            relative = match.group(1)
            base = package.rsplit(".", len(relative) - len(relative.lstrip(".")) - 1)[0]
            refs.append(Ref(source, line, f"{base}.{relative.lstrip('.')}"))
    return refs


@cache
def defined_test_names() -> frozenset[str]:
    """Every test module's name and every function or class defined under ``tests/``."""
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.add(path.stem)
        names.update(re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", path.read_text(), re.M))
    return frozenset(names)


def check_test_names(source: str, numbered: Numbered, text: str) -> list[Missing]:
    """A test named alone (``test_close_racing_deposits_never_strands_money``) exists somewhere
    under ``tests/``, or is defined by the example that names it."""
    own = set(re.findall(r"def\s+(test_\w+)", text))
    return [Missing(Ref(source, line, m.group(1)), "test " + m.group(1))
            for line, part in numbered for m in _TEST_NAME.finditer(part)
            if m.group(1) not in defined_test_names() and m.group(1) not in own]


def _failures(refs: Iterable[Ref], check: Callable[[Ref], Missing | None]) -> list[Missing]:
    return [m for m in map(check, refs) if m is not None]


def sources() -> list[Path]:
    return doc_files() + python_files()


def problems(source: str, text: str) -> list[Missing]:
    """What one doc (``.md``) or Python file, at ``source`` in the repository, names that does not
    exist."""
    if source.endswith(".md"):
        numbered = list(enumerate(text.split("\n"), start=1))
        code = markdown_code(text)
        spans = code_spans(numbered)
    else:
        numbered = python_text(text)
        code = spans = code_spans(numbered)
    return (_failures(path_refs(source, numbered, spans), check_path)
            + _failures(module_refs(source, numbered) + role_refs(source, numbered), check_module)
            + _failures(command_refs(source, code), check_command)
            + check_test_names(source, numbered, text))


# A path into the workspace around the clone (a sibling folder, a machine's /work): true on one
# machine, dead in anyone else's clone. Docs and docstrings name only what the repository holds.
_OUTSIDE = re.compile(r"(?<![\w./-])(?:(?:\.\./)+[\w<>*.-][\w./<>*-]*|/work/[\w./<>*-]*|shared/[\w./<>*-]+)")


def outside_refs(source: str, numbered: Numbered) -> list[Missing]:
    """Every reference of ``source`` to a file outside the repository."""
    found = []
    for line, text in numbered:
        for match in _OUTSIDE.finditer(text):
            token = match.group(0).rstrip(".,:;")
            if token.startswith("../"):
                name = token.rstrip("/").rsplit("/", 1)[-1]
                if not (token.endswith("/") or _FILE.fullmatch(name)):
                    continue  # a made-up name in an example ("../../Etc/Pass Wd")
                if (ROOT / source).parent.joinpath(token).resolve().is_relative_to(ROOT):
                    continue
            found.append(Missing(Ref(source, line, token), f"{token} in the repository (it points outside)"))
    return found


def _numbered(source: str, text: str) -> Numbered:
    return list(enumerate(text.split("\n"), start=1)) if source.endswith(".md") else python_text(text)


def _param(path: Path) -> object:
    rel = path.relative_to(ROOT).as_posix()
    return pytest.param(path, id=rel)


@pytest.mark.parametrize("path", [_param(p) for p in sources()])
def test_everything_named_exists(path: Path) -> None:
    missing = problems(path.relative_to(ROOT).as_posix(), path.read_text())
    assert not missing, "\n".join(map(str, missing))


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in sources():
        rel = path.relative_to(ROOT).as_posix()
        found += outside_refs(rel, _numbered(rel, path.read_text()))
    assert not found, "\n".join(map(str, found))


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_links_only_to_files_in_the_repository() -> None:
    targets = [t.split("#")[0] for t in _LINK.findall((ROOT / "README.md").read_text()) if not t.startswith("#")]
    assert "docs/api.md" in targets
    assert [t for t in targets if "://" in t or not (ROOT / t).resolve().is_relative_to(ROOT)
            or not (ROOT / t).exists()] == []


def test_each_outside_reference_is_named() -> None:
    text = """The contract is `../../shared/API.md` (or shared/reference/peer-rpc.md, /work/shared/DESIGN.md);
`../README.md` and `../workup/` are inside; `../../Etc/Pass Wd` is an example name; ../../elsewhere/x.md.
"""
    assert [str(m) for m in outside_refs("docs/made-up.md", _numbered("docs/made-up.md", text))] == [
        "docs/made-up.md:1: missing ../../shared/API.md in the repository (it points outside)",
        "docs/made-up.md:1: missing shared/reference/peer-rpc.md in the repository (it points outside)",
        "docs/made-up.md:1: missing /work/shared/DESIGN.md in the repository (it points outside)",
        "docs/made-up.md:2: missing ../../elsewhere/x.md in the repository (it points outside)",
    ]
    source = '''"""Routes: ``shared/API.md``."""
x = "../shared/API.md"  # and `/work/shared/API.md`
'''
    assert [str(m) for m in outside_refs("workup/made_up.py", _numbered("workup/made_up.py", source))] == [
        "workup/made_up.py:1: missing shared/API.md in the repository (it points outside)",
        "workup/made_up.py:2: missing /work/shared/API.md in the repository (it points outside)",
    ]


# --------------------------------------------------------------- the checker on made-up text

LIES = """\
The instance is `workup/workers/_serve.py`, signed in `_controlmsg.py`; see tests/contract/ and
`routes/kit.py`, `workup.gateway.kit`, :mod:`workup.runtime.serve`, `workup frobnicate`,
`workup bench nothing`, `tests/blackbox/test_core.py::test_no_such_test`, `docs/nowhere.md`,
test_no_such_thing, `./scripts/nothing`, `.ci/nothing`, `../shared/API.md`, API.md.
"""

TRUTHS = """\
`workup/runtime/instance.py` and `tests/blackbox/`, ops/dev/services, `.ci/run`, `routes/jobs.py`,
`instance.py`, `amqp/_core/`, `workup/services/<svc>/relay.py`, `tests/cache/test_cache_*.py`.
Output: `perf/results/<scenario>-<UTC time>.json`. Not paths: https://example.com/a/b.py, /api/v1/users/me, freeze/start,
exchanges/queues/, `--config groups.toml`, `update-command NAME FILE.py`,
`pgjones/hypercorn:src/hypercorn/typing.py`, `<data dir>/replicas/<name>/`. Names:
`workup.testing.fake_service`, `workup.events` (the exchange), `workup.access` (a logger),
`workup.messages.<name>.<Command>`, `tests/blackbox/test_core.py::test_welcome`, test_e2e,
`test_close_racing_deposits_never_strands_money`, and `test_made_up` of `def test_made_up(): ...`.
Run from the root: `./scripts/test tests/test_docs.py`, `./.venv`, `.workup/`.
Gone: `runtime/instance.py`, not `_instance.py`; **`controller/`, not `control/`**; `routing.py` (ex-`kit.py`).
Commands: `workup up --port 0`, `workup bench rpc`, `workup worker users --processes 2`.
"""


def test_each_lie_is_named() -> None:
    found = sorted(str(m) for m in problems("docs/made-up.md", LIES))
    assert found == sorted([
        "docs/made-up.md:1: missing workup/workers/_serve.py",
        "docs/made-up.md:1: missing _controlmsg.py",
        "docs/made-up.md:1: missing tests/contract/",
        "docs/made-up.md:2: missing routes/kit.py",
        "docs/made-up.md:3: missing tests/blackbox/test_core.py::test_no_such_test",
        "docs/made-up.md:3: missing docs/nowhere.md",
        "docs/made-up.md:2: missing workup.gateway.kit",
        "docs/made-up.md:2: missing workup.runtime.serve",
        "docs/made-up.md:2: missing command workup frobnicate",
        "docs/made-up.md:3: missing command workup bench nothing",
        "docs/made-up.md:4: missing ./scripts/nothing",
        "docs/made-up.md:4: missing .ci/nothing",
        "docs/made-up.md:4: missing ../shared/API.md",
        "docs/made-up.md:4: missing API.md",
        "docs/made-up.md:4: missing test test_no_such_thing",
    ])


def test_no_truth_is_named() -> None:
    assert [str(m) for m in problems("docs/made-up.md", TRUTHS)] == []


def test_python_text_is_docstrings_and_comments() -> None:
    source = '''"""Module: `workup/nowhere.py`."""
x = "workup/nowhere_either.py"  # a comment: `tests/nowhere.py`


def f():
    """Function: :mod:`.nowhere`."""
'''
    assert [str(m) for m in problems("workup/made_up.py", source)] == [
        "workup/made_up.py:1: missing workup/nowhere.py",
        "workup/made_up.py:2: missing tests/nowhere.py",
        "workup/made_up.py:6: missing workup.nowhere",
    ]
