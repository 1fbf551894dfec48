"""What an operator sees of a test gateway: its metrics and its JSON log lines."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.support.servers import Gateway


def samples(gw: Gateway, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` on /metrics."""
    return [(sample.labels, sample.value)
            for family in text_string_to_metric_families(gw.metrics())
            for sample in family.samples if sample.name == name]


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(value for found, value in samples(gw, name)
               if all(found.get(k) == v for k, v in labels.items()))


def records(gw: Gateway) -> list[dict[str, Any]]:
    """The gateway's JSON log lines (uvicorn's plain lines are skipped)."""
    found = []
    for line in gw.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def logged(gw: Gateway, msg: str, **fields: Any) -> list[dict[str, Any]]:
    return [record for record in records(gw)
            if record.get("msg") == msg and all(record.get(k) == v for k, v in fields.items())]


def wait_logged(gw: Gateway, msg: str, **fields: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = wait_for(lambda: logged(gw, msg, **fields), timeout=10)
    return found


