"""Figure 4 of docs/reliability.md, shorter: schemathesis over ``/openapi.json`` of the real
distributed gateway, anonymous and with a client's token: no server error, every answer conforming
(``python -m tests.reliability.fuzz_api`` is the full run, with a freelancer's token too)."""

from __future__ import annotations

import pytest
import trio

from .fuzz_api import measure


@pytest.mark.timeout(1200)
async def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(tmp_path) -> None:
    f = await trio.to_thread.run_sync(lambda: measure(examples=3, seed=16, phases="fuzzing",
                                                      identities=("anonymous", "client"), report_dir=tmp_path))
    assert f.operations >= 70                         # every route of the schema was tried
    for identity in f.identities:
        assert identity.generated >= f.operations, identity
        assert identity.failures == [] and identity.errored == 0, identity
