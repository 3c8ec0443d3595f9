"""schemathesis over the gateway's ``/openapi.json``, against the distributed system, anonymous and
with a client's and a freelancer's token (``docs/reliability.md``, figure 4):

    python -m tests.reliability.fuzz_api [--examples 10]

runs ``schemathesis run`` (the test extra installs it) once per identity with the checks
``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_headers_conformance`` and ``response_schema_conformance``, phases coverage and fuzzing,
``--examples`` cases per operation and phase, a fixed ``--seed``; its JSON report per identity is
kept under ``--report-dir``. Passing: no failure of any check and no errored operation, for every
identity. A failure is printed with schemathesis's own reproduction (a curl command).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import msgspec
import trio

from ._api import Api, Tally
from ._system import Servers, distributed

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


class Identity(msgspec.Struct):
    name: str
    generated: int = 0
    failures: list[str] = []          # "<check> on <operation>: <message> | <curl>"
    errored: int = 0
    warnings: list[str] = []
    seconds: float = 0.0


class Figures(msgspec.Struct):
    operations: int = 0
    examples: int = 0
    seed: int = 0
    identities: list[Identity] = []

    @property
    def ok(self) -> bool:
        return all(not i.failures and not i.errored and i.generated for i in self.identities)


async def _tokens(base_url: str) -> dict[str, str]:
    api = Api(base_url, Tally())
    try:
        tag = uuid.uuid4().hex[:12]
        return {"client": (await api.register("CLIENT", f"rel-fz-c-{tag}@example.com"))[0],
                "freelancer": (await api.register("FREELANCER", f"rel-fz-f-{tag}@example.com"))[0]}
    finally:
        await api.aclose()


def schemathesis(base_url: str, name: str, token: str | None, *, examples: int, seed: int, phases: str,
                 report_dir: Path) -> tuple[Identity, int]:
    """One ``schemathesis run``: what it found, and how many operations the schema has."""
    out = report_dir / name
    out.mkdir(parents=True, exist_ok=True)
    argv = [str(SCHEMATHESIS), "run", f"{base_url}/openapi.json", "--checks", ",".join(CHECKS),
            "--phases", phases, "-n", str(examples), "--seed", str(seed), "--workers", "2", "--no-color",
            "--request-timeout", "30", "--report", "json", "--report-json-path", str(out / "report.json"),
            "--generation-database", "none"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    (out / "output.txt").write_text(run.stdout + run.stderr)
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return Identity(name, failures=[f"schemathesis exited {run.returncode} without a report: "
                                        f"{(run.stdout + run.stderr)[-1500:]}"]), 0
    found = Identity(name, generated=report["test_cases"]["generated"], errored=report["operations"]["errored"],
                     seconds=round(report["running_time"], 1),
                     warnings=sorted(f"{k}: {len(v)} operations" for k, v in report.get("warnings", {}).items()
                                     if isinstance(v, list) and v))
    for failure in report.get("failures", []):
        found.failures.append(json.dumps(failure)[:2000])
    for error in report.get("errors", []):
        found.failures.append("error: " + json.dumps(error)[:1000])
    return found, report["operations"]["total"]


def measure(*, examples: int, seed: int, phases: str, identities: tuple[str, ...], report_dir: Path,
            servers: Servers | None = None) -> Figures:
    figures = Figures(examples=examples, seed=seed)
    with distributed(servers or Servers.shared(), "relfuzz") as system:
        tokens: dict[str, str | None] = {"anonymous": None, **trio.run(_tokens, system.base_url)}
        for name in identities:
            found, figures.operations = schemathesis(system.base_url, name, tokens[name], examples=examples,
                                                     seed=seed, phases=phases, report_dir=report_dir)
            figures.identities.append(found)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.fuzz_api", description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=10, help="cases per operation and phase")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--phases", default="coverage,fuzzing")
    p.add_argument("--report-dir", type=Path, default=None, help="default: a new temporary directory")
    a = p.parse_args(argv)
    report_dir = a.report_dir or Path(tempfile.mkdtemp(prefix="workup-fuzz-"))
    figures = measure(examples=a.examples, seed=a.seed, phases=a.phases,
                      identities=("anonymous", "client", "freelancer"), report_dir=report_dir)
    print(json.dumps(msgspec.to_builtins(figures), indent=1))
    print(f"reports: {report_dir}", file=sys.stderr)
    print("OK" if figures.ok else "FAILED", file=sys.stderr)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
