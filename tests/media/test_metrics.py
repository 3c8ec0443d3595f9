"""The media server's ``/metrics``: Prometheus text that ``prometheus_client``'s parser reads, with
requests by route template and status, the disk-thread pool, build info and process metrics."""

from __future__ import annotations

from tests._prometheus import sample, samples


async def test_metrics_count_requests_by_route_template(media):
    assert (await media.client.get("/describe")).status_code == 200
    assert (await media.client.get("/describe/nosuchgroup")).status_code == 404
    r = await media.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "workup_http_requests_total", method="GET", route="/describe", status="200") == 1
    assert sample(text, "workup_http_requests_total", method="GET", route="/describe/<group>", status="404") == 1
    assert sample(text, "workup_http_request_duration_seconds_count",
                  method="GET", route="/describe", status="200") == 1
    assert sample(text, "workup_media_disk_threads") == 8
    assert sample(text, "workup_media_disk_threads_busy") == 0
    assert sample(text, "workup_http_requests_in_flight") == 1   # the scrape itself
    names = {name for name, _, _ in samples(text)}
    assert "process_cpu_seconds_total" in names and "python_info" in names
    build = [labels for name, labels, _ in samples(text) if name == "workup_build_info"]
    assert build and build[0]["role"] == "media"
