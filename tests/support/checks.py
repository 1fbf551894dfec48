"""Assertions on the gateway's answers that several test modules make."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import Gateway


def assert_invalid(response: httpx.Response, param: str) -> None:
    """A 400 ``invalid_value`` naming ``param``, in OpenAI's envelope, not worth retrying."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_value", param), error
    assert response.headers["x-should-retry"] == "false"


def samples(gw: Gateway, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` on /metrics."""
    return [(sample.labels, sample.value)
            for family in text_string_to_metric_families(gw.metrics())
            for sample in family.samples if sample.name == name]


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(value for found, value in samples(gw, name)
               if all(found.get(k) == v for k, v in labels.items()))
