"""The gateway's ``/metrics`` as Prometheus reads it (``prometheus_client.parser``): every family
parses, build info and the process metrics are there, the in-flight gauge counts the scrape itself,
and two gateways in one process keep their own counts."""

from __future__ import annotations

from tests._prometheus import sample, samples

from ._serve import make_app, served


async def test_metrics_parse_with_build_info_and_process_metrics():
    async with served(make_app()) as (client, _):
        await client.get("/health")
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    names = {name for name, _, _ in samples(text)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
            "python_info", "workup_websocket_connections"} <= names
    build = [labels for name, labels, _ in samples(text) if name == "workup_build_info"]
    assert build and build[0]["role"] == "gateway" and build[0]["version"]
    assert sample(text, "workup_http_requests_in_flight") == 1   # the scrape itself
    assert sample(text, "workup_http_requests_total", method="GET", route="/health", status="200") == 1


async def test_two_gateways_keep_their_own_counts():
    async with served(make_app()) as (a, _), served(make_app()) as (b, _):
        await a.get("/health")
        await a.get("/health")
        text_a, text_b = (await a.get("/metrics")).text, (await b.get("/metrics")).text
    assert sample(text_a, "workup_http_requests_total", method="GET", route="/health", status="200") == 2
    assert sample(text_b, "workup_http_requests_total", method="GET", route="/health", status="200") is None
