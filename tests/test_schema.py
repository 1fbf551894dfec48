"""Schemathesis against the gateway's own OpenAPI document (``/openapi.json``).

Every documented operation is called with generated valid and invalid input: the public ``/v1``
operations with a gateway token, the ``/admin`` operations and metrics with the admin token
and the health routes with none. Each response must not be a server error, must match the schema
the gateway publishes for its status, and, when it is an error, must be the SPEC's error
envelope with a request id. Path parameters are drawn partly from real ids (the caller's own
videos in every state, another token's video, issued tokens) and token bodies partly name a
configured group, so the generated requests reach the database and not only the validators.

The content operations (``GET /v1/videos/{video_id}/content`` and its admin twin) stream binary
assets; their 200 response documents no body schema, so only the server-error and envelope
checks apply to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.schemas import BaseSchema

from tests.conftest import wait_for
from tests.support.servers import ADMIN_TOKEN, Gateway, Simulator, base_config, upstream

ENVELOPE_FIELDS = {"message", "type", "param", "code"}
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect"}
CONTENT_PATHS = {"/v1/videos/{video_id}/content", "/admin/videos/{video_id}/content"}
EXAMPLES = settings(max_examples=20, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class Target:
    """A dedicated gateway with a caller, its videos in every state and tokens to administer."""

    gw: Gateway
    token: str
    own_videos: tuple[str, ...]  # completed, failed, running
    disposable_videos: tuple[str, ...]  # the caller's, for generated deletes
    foreign_video: str  # another token's
    admin_tokens: tuple[str, ...]  # ids generated admin calls may change or revoke


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Target]:
    config = base_config([upstream("primary", simulator, ["official", "budget"])])
    gw = Gateway(tmp_path_factory.mktemp("schema"), config).start()
    try:
        _, token = gw.create_token(name="schema caller", balance_usd="100")
        _, other = gw.create_token(name="schema neighbour", balance_usd="5")
        admin_tokens = tuple(gw.create_token(name=f"schema admin {n}", balance_usd="1")[0]
                             for n in range(2))
        client, neighbour = gw.client(token), gw.client(other)
        tag = uuid.uuid4().hex[:8]
        done = client.videos.create(prompt=f"schema done {tag} [duration:0.3]")
        failed = client.videos.create(prompt=f"schema failed {tag} [fail] [duration:0.3]")
        running = client.videos.create(prompt=f"schema running {tag} [never]")
        disposable = tuple(client.videos.create(prompt=f"schema spare {n} {tag} [duration:0.3]").id
                           for n in range(3))
        foreign = neighbour.videos.create(prompt=f"schema foreign {tag} [duration:0.3]")
        for video_id, status in ((done.id, "completed"), (failed.id, "failed")):
            wait_for(lambda v=video_id, s=status: client.videos.retrieve(v).status == s, 10)
        yield Target(gw, token, (done.id, failed.id, running.id), disposable, foreign.id,
                     admin_tokens)
    finally:
        gw.stop()


def _header(response: Response, name: str) -> str | None:
    values: Any = response.headers.get(name) or response.headers.get(name.title())
    if isinstance(values, list):
        return values[0] if values else None
    return values  # type: ignore[no-any-return]


def error_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error is OpenAI's envelope with exactly its four fields, and a request id."""
    if response.status_code < 400:
        return None
    assert _header(response, "x-request-id"), f"{case.operation.label}: no x-request-id"
    if case.method.upper() == "HEAD":
        return None  # no body, by HTTP: the same request's GET carries the envelope
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ENVELOPE_FIELDS, body
    assert isinstance(body["error"]["message"], str), body
    assert body["error"]["message"], body
    assert isinstance(body["error"]["type"], str), body
    return None


def checks_for(case: Case) -> list[Any]:
    if case.operation.path in CONTENT_PATHS:
        return [not_a_server_error, error_envelope]
    return [not_a_server_error, response_schema_conformance, error_envelope]


def _known_ids(target: Target) -> dict[tuple[str, str], list[str]]:
    """Real values for path parameters, per (method, parameter)."""
    readable = [*target.own_videos, target.foreign_video]
    return {
        ("GET", "video_id"): readable,
        ("POST", "video_id"): readable,
        ("DELETE", "video_id"): [*target.disposable_videos, target.foreign_video],
        ("GET", "token_id"): list(target.admin_tokens),
        ("PATCH", "token_id"): list(target.admin_tokens),
        ("POST", "token_id"): list(target.admin_tokens),
        ("DELETE", "token_id"): list(target.admin_tokens),
    }


def load_schema(target: Target, path_regex: str) -> BaseSchema:
    """The gateway's own schema, with generation steered towards real ids and groups."""
    schema = schemathesis.openapi.from_url(f"{target.gw.url}/openapi.json")
    known = _known_ids(target)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        method = context.operation.method.upper()
        choices: list[st.SearchStrategy[dict[str, Any]]] = [st.just(path_parameters)]
        for name in path_parameters:
            values = known.get((method, name))
            if values:
                choices.append(st.sampled_from(values).map(
                    lambda value, n=name: {**path_parameters, n: value}))
        return st.one_of(*choices)

    @schema.hook
    def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
        # Framing headers belong to the HTTP client: a generated Content-Length breaks the
        # request before it reaches the gateway (the server answers a bare 400 by itself).
        if not headers:
            return headers
        return {name: value for name, value in headers.items()
                if name.lower() not in FRAMING_HEADERS}

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        if not isinstance(body, dict) or ("group" not in body and "name" not in body):
            return st.just(body)
        return st.sampled_from([body, {**body, "group": "official"}])

    return schema.include(path_regex=path_regex)


@pytest.fixture(scope="module")
def public_schema(target: Target) -> BaseSchema:
    return load_schema(target, r"^/v1/")


@pytest.fixture(scope="module")
def admin_schema(target: Target) -> BaseSchema:
    return load_schema(target, r"^/admin/")


@pytest.fixture(scope="module")
def ops_schema(target: Target) -> BaseSchema:
    return load_schema(target, r"^/(healthz|readyz|metrics)$")


public_api = schemathesis.pytest.from_fixture("public_schema")
admin_api = schemathesis.pytest.from_fixture("admin_schema")
ops_api = schemathesis.pytest.from_fixture("ops_schema")


class TestPublicApiSchema:
    @public_api.parametrize()
    @EXAMPLES
    def test_public_operations_answer_within_their_schema(
        self, case: Case, target: Target
    ) -> None:
        headers = {"Authorization": f"Bearer {target.token}"}
        response = case.call(headers=headers, timeout=30)
        case.validate_response(response, checks=checks_for(case), headers=headers)


class TestAdminApiSchema:
    @admin_api.parametrize()
    @EXAMPLES
    def test_admin_operations_answer_within_their_schema(
        self, case: Case, target: Target
    ) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = case.call(headers=headers, timeout=30)
        case.validate_response(response, checks=checks_for(case), headers=headers)


class TestOperatorRoutesSchema:
    @ops_api.parametrize()
    @EXAMPLES
    def test_health_and_metrics_answer_within_their_schema(
        self, case: Case, target: Target
    ) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # /metrics wants it
        response = case.call(headers=headers, timeout=30)
        case.validate_response(response, checks=checks_for(case), headers=headers)


class TestTheDocument:
    """What a client generator reads from /openapi.json."""

    def test_writes_describe_their_bodies_as_the_sdk_sends_them(self, target: Target) -> None:
        doc = httpx.get(f"{target.gw.url}/openapi.json", timeout=10).json()
        for path in ("/v1/videos", "/v1/videos/edits", "/v1/videos/extensions",
                     "/v1/videos/{video_id}/remix"):
            content = doc["paths"][path]["post"]["requestBody"]["content"]
            assert set(content) == {"multipart/form-data", "application/json"}, path
            assert content["multipart/form-data"]["schema"]["required"] == ["prompt"], path
        create = doc["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
        image = create["multipart/form-data"]["schema"]["properties"]["input_reference"]
        assert image["format"] == "binary"

    def test_failures_are_documented_as_the_error_envelope_never_as_422(
            self, target: Target) -> None:
        doc = httpx.get(f"{target.gw.url}/openapi.json", timeout=10).json()
        envelope = {"$ref": "#/components/schemas/ErrorResponse"}
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                assert "422" not in responses, (method, path)
                if path.startswith(("/v1/", "/admin/")):
                    for status in ("4XX", "5XX"):
                        schema = responses[status]["content"]["application/json"]["schema"]
                        assert schema == envelope, (method, path, status)
        error = doc["components"]["schemas"]["ErrorObject"]
        assert set(error["properties"]) == ENVELOPE_FIELDS


class TestSchemaFindings:
    """Inputs the schema declares valid that fuzzing showed to crash the gateway, pinned down."""

    @pytest.mark.parametrize("field", ["name", "group", "billing_mode", "disabled"])
    def test_patch_with_an_explicit_null_is_refused_or_ignored_never_a_500(
        self, target: Target, field: str
    ) -> None:
        # The schema types every TokenUpdate field as "<type> or null".
        token_id, _ = target.gw.create_token(name="nullable", balance_usd="1")
        before = target.gw.token(token_id)
        with target.gw.admin() as admin:
            response = admin.patch(f"/admin/tokens/{token_id}", json={field: None})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            error = response.json()["error"]
            assert (error["type"], error["code"], error["param"]) == (
                "invalid_request_error", "invalid_value", field), error
        assert target.gw.token(token_id) == before

    @pytest.mark.parametrize("field", ["rpm", "max_concurrent_jobs"])
    @pytest.mark.parametrize("value", [2**31, 2**63])
    def test_token_limits_beyond_what_is_stored_are_refused_never_a_500(
        self, target: Target, field: str, value: int
    ) -> None:
        # The schema gives these integers a minimum of 1 and no maximum.
        body = {"name": "big limit", "group": "official", field: value}
        with target.gw.admin() as admin:
            created = admin.post("/admin/tokens", json=body)
            assert created.status_code in (201, 400), created.text
            if created.status_code == 201:
                assert created.json()[field] == value
            else:
                error = created.json()["error"]
                assert (error["code"], error["param"]) == ("invalid_value", field), error
            token_id, _ = target.gw.create_token(name="patched limit")
            patched = admin.patch(f"/admin/tokens/{token_id}", json={field: value})
            assert patched.status_code in (200, 400), patched.text
            if patched.status_code == 200:
                assert patched.json()[field] == value
            else:
                error = patched.json()["error"]
                assert (error["code"], error["param"]) == ("invalid_value", field), error

    @pytest.mark.parametrize("after", [2**63, -(2**63) - 1, 10**30])
    def test_ledger_cursor_beyond_64_bits_is_refused_or_empty_never_a_500(
        self, target: Target, after: int
    ) -> None:
        token_id = target.admin_tokens[0]
        with target.gw.admin() as admin:
            response = admin.get(f"/admin/tokens/{token_id}/ledger", params={"after": after})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("invalid_value", "after"), error
        elif after > 0:
            assert response.json()["data"] == []
