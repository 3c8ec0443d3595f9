"""Reading Prometheus text the way Prometheus does (``prometheus_client.parser``), for the tests
of every role's ``/metrics``: a sample is found by its name and labels, not by its line's text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["samples", "sample"]


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample in ``text``: (name, labels, value). Parsing fails on malformed text."""
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None when there is none."""
    for got, got_labels, value in samples(text):
        if got == name and got_labels == labels:
            return value
    return None
