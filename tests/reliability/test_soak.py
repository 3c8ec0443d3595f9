"""Figure 5 of docs/reliability.md, shorter: the saturation search (a p99 bound of 3 s) and a 30 s
soak at half of it (not 80 %: on the suite's shared machine the load changes between the search and
the soak, and 80 % of a quiet moment's saturation then errs, as the figure shows) on the distributed
split topology (``python -m tests.reliability.soak`` is the 10-minute run)."""

from __future__ import annotations

import pytest
import trio

from .soak import measure


@pytest.mark.timeout(900)
async def test_a_short_soak_has_no_error_and_flat_memory(tmp_path) -> None:
    f = await trio.to_thread.run_sync(lambda: measure(soak=30, duration=3, out=tmp_path, p99_bound=3000, share=0.5))
    assert f.saturation_rate > 0 and f.requests > 0, f
    assert f.errors == 0, f.failures
    assert len(f.rss_growth) >= 5, f.rss_growth       # the gateway and every worker process were sampled
    assert f.ok, f.failures
