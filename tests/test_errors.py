"""The SPEC §2 error table, as the OpenAI SDK and raw HTTP clients see it.

Every refusal is checked three ways: the SDK raises the matching exception class, the raw body is
OpenAI's envelope with the exact type/code/param plus the agreed headers, and nothing reached an
upstream or moved money. No error may reveal an upstream's name, URL, key or internal detail.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Protocol

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import wait_for
from tests.support.servers import ADMIN_TOKEN, SIM_KEY, Gateway, Simulator, upstream

SECRET = "sk-upstream-secret"
UNFINISHED = ("queued", "in_progress")
REQUEST_FIELDS = {"message", "type", "param", "code"}
Variant = Literal["video", "thumbnail", "spritesheet"]


# -- images and bodies -----------------------------------------------------------------------
def unique(prompt: str) -> str:
    return f"{prompt} {uuid.uuid4().hex}"


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    options = {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noisy_png(width: int, height: int, noisy_fraction: float) -> bytes:
    """A PNG made large on purpose: random rows do not compress."""
    image = Image.new("RGB", (width, height), (10, 20, 30))
    rows = int(height * noisy_fraction)
    image.paste(Image.frombytes("RGB", (width, rows), os.urandom(width * rows * 3)), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def chunked_multipart(boundary: str, prompt: str, payload_size: int) -> Iterator[bytes]:
    """A multipart create streamed piece by piece, so httpx sends it without Content-Length."""
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'
           f"{prompt}\r\n").encode()
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="input_reference"; '
           'filename="big.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    chunk = b"\x00" * (64 * 1024)
    for _ in range(payload_size // len(chunk)):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def retry_after(headers: Mapping[str, str]) -> int:
    value = headers.get("retry-after")
    assert value is not None, f"no Retry-After in {dict(headers)}"
    assert value.isdigit(), value
    return int(value)


# -- talking to the gateway and simulators ---------------------------------------------------
class Api:
    """Admin, simulator and raw calls over one keep-alive client (loopback only, no TLS)."""

    def __init__(self, gateway: Gateway, simulator: Simulator, compat: Simulator) -> None:
        self.gateway = gateway
        self.sims = (simulator, compat)
        self.http = httpx.Client(verify=False, timeout=30)
        self.clients: list[openai.OpenAI] = []

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.http.close()

    # admin
    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return self.http.request(method, self.gateway.url + path, headers=headers, **kwargs)

    def create_token(self, **spec: Any) -> tuple[str, str]:
        body = {"name": "errors", "group": "official", "billing_mode": "per_second",
                "balance_usd": "5", **spec}
        response = self.admin("POST", "/admin/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["token"]

    def money(self, token_id: str) -> tuple[str, str]:
        response = self.admin("GET", f"/admin/tokens/{token_id}")
        assert response.status_code == 200, response.text
        return response.json()["balance_usd"], response.json()["held_usd"]

    def kinds(self, token_id: str) -> list[str]:
        response = self.admin("GET", f"/admin/tokens/{token_id}/ledger",
                               params={"limit": 1000})
        assert response.status_code == 200, response.text
        return [entry["kind"] for entry in response.json()["data"]]

    # simulators
    def stats(self, sim: Simulator) -> dict[str, Any]:
        return self.http.get(f"{sim.url}/_sim/stats").json()  # type: ignore[no-any-return]

    def creates(self, sim: Simulator) -> int:
        return int(self.stats(sim)["creates"])

    def upstream_jobs(self, sim: Simulator, prompt: str) -> list[dict[str, Any]]:
        return [job for job in self.stats(sim)["jobs"].values() if job["prompt"] == prompt]

    def upstream_job(self, sim: Simulator, prompt: str) -> dict[str, Any]:
        jobs = self.upstream_jobs(sim, prompt)
        assert len(jobs) == 1, f"expected one upstream job for {prompt!r}, got {len(jobs)}"
        return jobs[0]

    # clients
    def client(self, token: str, *, max_retries: int = 0,
               sent: list[str] | None = None) -> openai.OpenAI:
        """The SDK as users run it; ``sent`` records every HTTP request (retries included)."""
        hooks: dict[str, list[Callable[[Any], None]]] = {}
        if sent is not None:
            hooks["request"] = [lambda request: sent.append(
                f"{request.method} {request.url.path}")]
        http = openai.DefaultHttpxClient(verify=False, event_hooks=hooks)
        client = self.gateway.client(token, max_retries=max_retries, http_client=http)
        self.clients.append(client)
        return client

    def call(self, token: str | None, method: str, path: str,
             headers: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
        sent.update(headers or {})
        return self.http.request(method, self.gateway.url + path, headers=sent, **kwargs)

    def untouched(self, token_id: str | None = None) -> Untouched:
        return Untouched(self, token_id)


class Untouched:
    """Asserts that the refused requests inside the block reached no upstream, moved no money."""

    def __init__(self, api: Api, token_id: str | None) -> None:
        self.api = api
        self.token_id = token_id

    def snapshot(self) -> tuple[Any, ...]:
        upstream = tuple((stats["creates"], len(stats["remixes"]))
                         for stats in map(self.api.stats, self.api.sims))
        if self.token_id is None:
            return upstream
        return upstream, self.api.money(self.token_id), self.api.kinds(self.token_id)

    def __enter__(self) -> Untouched:
        self.before = self.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert self.snapshot() == self.before, "a refused request had an effect"


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class ErrorCheck:
    """Checks one error: status, exact envelope, headers, and that nothing upstream leaked."""

    def __init__(self, forbidden: tuple[str, ...]) -> None:
        self.forbidden = forbidden

    def raw(self, response: _Response, status: int, type_: str, code: str | None,
            param: str | None = None, *, should_retry: str | None = "false",
            message: str | None = None) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        assert set(error) == REQUEST_FIELDS, error
        assert (error["type"], error["code"], error["param"]) == (type_, code, param), error
        assert isinstance(error["message"], str)
        assert error["message"].strip()
        if message is not None:
            assert error["message"] == message
        assert response.headers.get("content-type", "").startswith("application/json")
        assert response.headers.get("x-request-id"), dict(response.headers)
        if should_retry is not None:
            assert response.headers.get("x-should-retry") == should_retry, dict(response.headers)
        self.no_leak(response)
        return error

    def sdk(self, exc: BaseException, cls: type[openai.APIStatusError], status: int, type_: str,
            code: str | None, param: str | None = None, *, should_retry: str | None = "false",
            message: str | None = None) -> dict[str, Any]:
        assert type(exc) is cls, f"{type(exc).__name__} is not {cls.__name__}: {exc}"
        assert isinstance(exc, openai.APIStatusError)
        assert exc.status_code == status
        assert (exc.type, exc.code, exc.param) == (type_, code, param)
        assert exc.request_id is not None
        assert exc.request_id == exc.response.headers.get("x-request-id")
        return self.raw(exc.response, status, type_, code, param, should_retry=should_retry,
                        message=message)

    def no_leak(self, response: _Response) -> None:
        exposed = response.text + "\n" + "\n".join(
            f"{name}: {value}" for name, value in response.headers.items())
        for secret in self.forbidden:
            assert secret.lower() not in exposed.lower(), f"{secret!r} leaked: {exposed}"


@pytest.fixture(scope="module")
def api(gateway: Gateway, simulator: Simulator, compat_simulator: Simulator) -> Iterator[Api]:
    helper = Api(gateway, simulator, compat_simulator)
    yield helper
    helper.close()


@pytest.fixture(scope="module")
def check(simulator: Simulator, compat_simulator: Simulator) -> ErrorCheck:
    forbidden = [SECRET, SIM_KEY, "primary", "reseller", "sim_",
                 "127.0.0.1", "localhost"]
    for sim in (simulator, compat_simulator):
        forbidden += [sim.url, f":{sim.port}"]
    return ErrorCheck(tuple(forbidden))


# -- 401 -------------------------------------------------------------------------------------
class TestAuthentication:
    def test_missing_or_malformed_authorization_is_401(self, api: Api,
                                                       check: ErrorCheck) -> None:
        routes = [("POST", "/v1/videos"), ("GET", "/v1/videos"), ("GET", "/v1/videos/video_x"),
                  ("GET", "/v1/videos/video_x/content"), ("DELETE", "/v1/videos/video_x"),
                  ("POST", "/v1/videos/video_x/remix"), ("GET", "/v1/me")]
        with api.untouched():
            for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                            {"Authorization": "sk-no-scheme"}):
                for method, path in routes:
                    body = {"prompt": unique("no token")} if method == "POST" else None
                    response = api.call(None, method, path, headers=headers, json=body)
                    check.raw(response, 401, "invalid_request_error", "invalid_api_key")

    def test_unknown_token_is_401_for_every_video_call(self, api: Api,
                                                       check: ErrorCheck) -> None:
        client = api.client("sk-" + uuid.uuid4().hex + uuid.uuid4().hex)
        calls: list[Callable[[], object]] = [
            lambda: client.videos.create(prompt=unique("unknown token")),
            lambda: client.videos.list(),
            lambda: client.videos.retrieve("video_abc"),
            lambda: client.videos.download_content("video_abc"),
            lambda: client.videos.delete("video_abc"),
            lambda: client.videos.remix("video_abc", prompt="again"),
        ]
        with api.untouched():
            for call in calls:
                with pytest.raises(openai.AuthenticationError) as info:
                    call()
                check.sdk(info.value, openai.AuthenticationError, 401,
                          "invalid_request_error", "invalid_api_key")

    def test_revoked_token_is_401(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="2")
        client = api.client(token)
        assert client.videos.list().data == []
        revoked = api.admin("DELETE", f"/admin/tokens/{token_id}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] is True
        with api.untouched(token_id):
            for call in (lambda: client.videos.list(),
                         lambda: client.videos.create(prompt=unique("revoked"))):
                with pytest.raises(openai.AuthenticationError) as info:
                    call()
                check.sdk(info.value, openai.AuthenticationError, 401,
                          "invalid_request_error", "invalid_api_key")
        assert api.money(token_id) == ("2.000000", "0.000000")

    def test_token_created_already_expired_is_401(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="2", expires_at=time.time() - 60)
        with api.untouched(token_id), pytest.raises(openai.AuthenticationError) as info:
            api.client(token).videos.create(prompt=unique("expired"))
        check.sdk(info.value, openai.AuthenticationError, 401, "invalid_request_error",
                  "invalid_api_key")

    def test_token_whose_expiry_has_passed_is_401(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="2", expires_at=time.time() + 3600)
        client = api.client(token)
        assert client.videos.list().data == []
        changed = api.admin("PATCH", f"/admin/tokens/{token_id}",
                            json={"expires_at": time.time() - 1})
        assert changed.status_code == 200, changed.text
        with api.untouched(token_id):
            for call in (lambda: client.videos.list(),
                         lambda: client.videos.create(prompt=unique("lapsed"))):
                with pytest.raises(openai.AuthenticationError) as info:
                    call()
                check.sdk(info.value, openai.AuthenticationError, 401,
                          "invalid_request_error", "invalid_api_key")

    def test_disabled_token_is_401_until_reenabled(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="2")
        client = api.client(token)
        disabled = api.admin("PATCH", f"/admin/tokens/{token_id}", json={"disabled": True})
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["disabled"] is True
        with api.untouched(token_id):
            for call in (lambda: client.videos.list(),
                         lambda: client.videos.create(prompt=unique("disabled"))):
                with pytest.raises(openai.AuthenticationError) as info:
                    call()
                check.sdk(info.value, openai.AuthenticationError, 401,
                          "invalid_request_error", "invalid_api_key")
        enabled = api.admin("PATCH", f"/admin/tokens/{token_id}", json={"disabled": False})
        assert enabled.status_code == 200, enabled.text
        assert client.videos.list().data == []

    def test_admin_token_is_not_a_gateway_token(self, api: Api, check: ErrorCheck) -> None:
        client = api.client(ADMIN_TOKEN)
        with api.untouched():
            for call in (lambda: client.videos.list(),
                         lambda: client.videos.create(prompt=unique("admin as user"))):
                with pytest.raises(openai.AuthenticationError) as info:
                    call()
                check.sdk(info.value, openai.AuthenticationError, 401,
                          "invalid_request_error", "invalid_api_key")
            response = api.call(ADMIN_TOKEN, "GET", "/v1/me")
            check.raw(response, 401, "invalid_request_error", "invalid_api_key")

    def test_gateway_token_never_opens_admin_routes(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="2")
        new_token = {"name": "x", "group": "official", "billing_mode": "per_second",
                     "balance_usd": "5"}
        attempts = [
            api.call(token, "GET", "/admin/tokens"),
            api.call(token, "GET", f"/admin/tokens/{token_id}"),
            api.call(token, "POST", f"/admin/tokens/{token_id}/topup",
                     json={"amount_usd": "100"}),
            api.call(token, "POST", "/admin/tokens", json=new_token),
            api.call(token, "PATCH", f"/admin/tokens/{token_id}", json={"rpm": 1000}),
            api.call(token, "DELETE", f"/admin/tokens/{token_id}"),
            api.call(token, "GET", f"/admin/tokens/{token_id}/ledger"),
        ]
        for response in attempts:
            check.raw(response, 401, "invalid_request_error", "invalid_api_key")
        assert api.money(token_id) == ("2.000000", "0.000000")
        assert api.kinds(token_id) == ["topup"]
        assert api.client(token).videos.list().data == []


# -- 403 -------------------------------------------------------------------------------------
class TestPermissions:
    def test_model_outside_token_allow_list_is_403(self, api: Api, gateway: Gateway,
                                                   check: ErrorCheck) -> None:
        token_id, token = api.create_token(models=["sora-2"])
        client = api.client(token)
        with api.untouched(token_id), pytest.raises(openai.PermissionDeniedError) as info:
            client.videos.create(prompt=unique("pro please"), model="sora-2-pro")
        check.sdk(info.value, openai.PermissionDeniedError, 403, "permission_error",
                  "model_not_allowed", "model")
        video = client.videos.create(prompt=unique("allowed model [never]"), model="sora-2")
        assert video.model == "sora-2"
        assert api.money(token_id) == ("4.600000", "0.400000")
        client.videos.delete(video.id)
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        gateway.assert_reconciles(token_id)

    def test_model_outside_group_allow_list_is_403(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(group="restricted")
        with api.untouched(token_id), pytest.raises(openai.PermissionDeniedError) as info:
            api.client(token).videos.create(prompt=unique("restricted pro"), model="sora-2-pro")
        check.sdk(info.value, openai.PermissionDeniedError, 403, "permission_error",
                  "model_not_allowed", "model")

    def test_token_allow_list_cannot_widen_the_group_allow_list(self, api: Api,
                                                                check: ErrorCheck) -> None:
        token_id, token = api.create_token(group="restricted", models=["sora-2-pro"])
        with api.untouched(token_id), pytest.raises(openai.PermissionDeniedError) as info:
            api.client(token).videos.create(prompt=unique("widen"), model="sora-2-pro")
        check.sdk(info.value, openai.PermissionDeniedError, 403, "permission_error",
                  "model_not_allowed", "model")

    def test_token_whose_group_stopped_offering_its_billing_mode_is_403(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator,
            compat_simulator: Simulator, check: ErrorCheck) -> None:
        """Tokens are refused a forbidden billing mode at issue; a config change can still
        take the mode away from tokens already issued."""
        gw = make_gateway([upstream("primary", simulator, ["official"])])
        gw.config["groups"]["official"]["billing_modes"] = ["per_second", "per_call"]
        gw.stop()
        gw.start()
        api = Api(gw, simulator, compat_simulator)
        try:
            token_id, token = api.create_token(group="official", billing_mode="per_call")
            gw.config["groups"]["official"]["billing_modes"] = ["per_second"]
            gw.stop()
            gw.start()
            with api.untouched(token_id):
                with pytest.raises(openai.PermissionDeniedError) as info:
                    api.client(token).videos.create(prompt=unique("per call official"))
                check.sdk(info.value, openai.PermissionDeniedError, 403, "permission_error",
                          "billing_mode_not_allowed")
                response = api.call(token, "POST", "/v1/videos",
                                    json={"prompt": unique("json per call"), "seconds": 4})
                check.raw(response, 403, "permission_error", "billing_mode_not_allowed")
        finally:
            api.close()


# -- 400: fields -----------------------------------------------------------------------------
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown_model", {"model": "sora-3"}, "model"),
    ("size_not_offered", {"size": "1024x1792"}, "size"),
    ("size_garbage", {"size": "big"}, "size"),
    ("seconds_not_offered", {"seconds": "5"}, "seconds"),
    ("seconds_not_a_number", {"seconds": "four"}, "seconds"),
    ("seconds_zero", {"seconds": "0"}, "seconds"),
    ("empty_prompt", {"prompt": ""}, "prompt"),
    ("blank_prompt", {"prompt": "   "}, "prompt"),
]
JSON_ONLY_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("seconds_int_not_offered", {"seconds": 5}, "seconds"),
    ("seconds_float", {"seconds": 4.5}, "seconds"),
    ("seconds_bool", {"seconds": True}, "seconds"),
    ("prompt_null", {"prompt": None}, "prompt"),
    ("prompt_number", {"prompt": 42.5}, "prompt"),
    ("model_list", {"model": ["sora-2"]}, "model"),
    ("size_object", {"size": {"w": 720}}, "size"),
]
BAD_METADATA = ["{not json", "[1, 2]", '"text"', "42"]


class TestFieldValidation:
    @pytest.mark.parametrize(("fields", "param"), [case[1:] for case in BAD_FIELDS],
                             ids=[case[0] for case in BAD_FIELDS])
    def test_bad_field_via_sdk_multipart_is_400(self, api: Api, check: ErrorCheck,
                                                fields: dict[str, Any], param: str) -> None:
        token_id, token = api.create_token()
        kwargs: dict[str, Any] = {"prompt": unique("bad field [duration:0.3]"), **fields}
        with api.untouched(token_id), pytest.raises(openai.BadRequestError) as info:
            api.client(token).videos.create(**kwargs)
        check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                  "invalid_value", param)

    @pytest.mark.parametrize(("fields", "param"),
                             [case[1:] for case in BAD_FIELDS + JSON_ONLY_FIELDS],
                             ids=[case[0] for case in BAD_FIELDS + JSON_ONLY_FIELDS])
    def test_bad_field_via_json_is_400(self, api: Api, check: ErrorCheck,
                                       fields: dict[str, Any], param: str) -> None:
        token_id, token = api.create_token()
        body = {"prompt": unique("bad json field [duration:0.3]"), **fields}
        with api.untouched(token_id):
            response = api.call(token, "POST", "/v1/videos", json=body)
        check.raw(response, 400, "invalid_request_error", "invalid_value", param)

    def test_missing_prompt_is_400_in_both_encodings(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        with api.untouched(token_id):
            as_json = api.call(token, "POST", "/v1/videos", json={"model": "sora-2"})
            as_form = api.call(token, "POST", "/v1/videos", files={"model": (None, "sora-2")})
        for response in (as_json, as_form):
            check.raw(response, 400, "invalid_request_error", "invalid_value", "prompt")

    @pytest.mark.parametrize("metadata", BAD_METADATA)
    def test_malformed_metadata_is_400_in_both_encodings(self, api: Api, check: ErrorCheck,
                                                         metadata: str) -> None:
        token_id, token = api.create_token()
        with api.untouched(token_id):
            with pytest.raises(openai.BadRequestError) as info:
                api.client(token).videos.create(prompt=unique("bad metadata"),
                                                extra_body={"metadata": metadata})
            check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                      "invalid_value", "metadata")
            decoded = json.loads(metadata) if metadata != "{not json" else 17
            for value in (metadata, decoded):
                response = api.call(token, "POST", "/v1/videos",
                                    json={"prompt": unique("bad metadata"), "metadata": value})
                check.raw(response, 400, "invalid_request_error", "invalid_value", "metadata")

    def test_valid_metadata_is_passed_through(self, api: Api, gateway: Gateway,
                                              simulator: Simulator) -> None:
        token_id, token = api.create_token()
        sdk_prompt = unique("sdk metadata [never]")
        api.client(token).videos.create(prompt=sdk_prompt,
                                        extra_body={"metadata": '{"order": "A-1"}'})
        json_prompt = unique("json metadata [never]")
        response = api.call(token, "POST", "/v1/videos",
                            json={"prompt": json_prompt, "metadata": {"order": "B-2"}})
        assert response.status_code == 200, response.text
        for prompt, order in ((sdk_prompt, "A-1"), (json_prompt, "B-2")):
            metadata = api.upstream_job(simulator, prompt)["metadata"]
            assert json.loads(metadata) == {"order": order}
        assert api.money(token_id) == ("4.200000", "0.800000")
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize("seconds", ["8", 8], ids=["string", "integer"])
    def test_seconds_accepted_as_string_or_integer_in_json(
        self, api: Api, gateway: Gateway, simulator: Simulator, seconds: str | int,
    ) -> None:
        token_id, token = api.create_token()
        prompt = unique("json seconds [never]")
        response = api.call(token, "POST", "/v1/videos",
                            json={"prompt": prompt, "seconds": seconds})
        assert response.status_code == 200, response.text
        assert response.json()["seconds"] == "8"
        assert api.upstream_job(simulator, prompt)["seconds"] == "8"
        assert api.money(token_id) == ("4.200000", "0.800000")
        assert api.kinds(token_id) == ["topup", "hold"]
        gateway.assert_reconciles(token_id)

    def test_offered_model_size_and_seconds_are_accepted(
        self, api: Api, gateway: Gateway, simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token(balance_usd="10")
        prompt = unique("pro landscape [never]")
        video = api.client(token).videos.create(prompt=prompt, model="sora-2-pro",
                                                seconds="12", size="1792x1024")
        assert (video.model, video.seconds, video.size) == ("sora-2-pro", "12", "1792x1024")
        upstream_job = api.upstream_job(simulator, prompt)
        assert (upstream_job["size"], upstream_job["seconds"]) == ("1792x1024", "12")
        assert api.money(token_id) == ("4.000000", "6.000000")
        gateway.assert_reconciles(token_id)

    def test_unreadable_body_is_400(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        with api.untouched(token_id):
            responses = [
                api.call(token, "POST", "/v1/videos", content=b"prompt=hi",
                         headers={"content-type": "text/plain"}),
                api.call(token, "POST", "/v1/videos", content=b'{"prompt": ',
                         headers={"content-type": "application/json"}),
                api.call(token, "POST", "/v1/videos", json=["prompt"]),
            ]
        for response in responses:
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            check.raw(response, 400, "invalid_request_error", error["code"], error["param"])


# -- 400: input_reference --------------------------------------------------------------------
class TestInputReference:
    @pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                               ("WEBP", "image/webp")])
    def test_image_of_exact_size_is_accepted(self, api: Api, gateway: Gateway,
                                             simulator: Simulator, fmt: str, mime: str) -> None:
        token_id, token = api.create_token()
        data = image_bytes(720, 1280, fmt)
        prompt = unique(f"{fmt} reference [never]")
        video = api.client(token).videos.create(
            prompt=prompt, input_reference=(f"ref.{fmt.lower()}", data, mime))
        assert video.status in UNFINISHED
        upstream_job = api.upstream_job(simulator, prompt)
        assert upstream_job["has_input_reference"] is True
        assert upstream_job["input_reference_bytes"] == len(data)
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)

    def test_landscape_image_matches_landscape_size(self, api: Api, gateway: Gateway,
                                                    simulator: Simulator) -> None:
        token_id, token = api.create_token()
        data = image_bytes(1280, 720, "JPEG")
        prompt = unique("landscape reference [never]")
        api.client(token).videos.create(prompt=prompt, size="1280x720",
                                        input_reference=("ref.jpg", data, "image/jpeg"))
        assert api.upstream_job(simulator, prompt)["input_reference_bytes"] == len(data)
        gateway.assert_reconciles(token_id)

    def test_octet_stream_image_is_sniffed_and_accepted(self, api: Api, gateway: Gateway,
                                                        simulator: Simulator) -> None:
        token_id, token = api.create_token()
        data = image_bytes(720, 1280, "WEBP")
        prompt = unique("octet reference [never]")
        api.client(token).videos.create(
            prompt=prompt, input_reference=("upload.bin", data, "application/octet-stream"))
        assert api.upstream_job(simulator, prompt)["input_reference_bytes"] == len(data)
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("width", "height", "fmt"), [
        (1280, 720, "PNG"), (720, 1281, "PNG"), (719, 1280, "JPEG"), (64, 36, "WEBP"),
        (1024, 1792, "PNG"),
    ])
    def test_image_of_wrong_pixel_size_is_400(self, api: Api, check: ErrorCheck, width: int,
                                              height: int, fmt: str) -> None:
        token_id, token = api.create_token()
        data = image_bytes(width, height, fmt)
        with api.untouched(token_id), pytest.raises(openai.BadRequestError) as info:
            api.client(token).videos.create(prompt=unique("wrong size"),
                                            input_reference=("ref", data, "image/png"))
        check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                  "invalid_value", "input_reference")

    @pytest.mark.parametrize(("data", "mime"), [
        (b"this is not an image at all", "text/plain"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
        (b"%PDF-1.7\n" + b"0" * 128, "application/pdf"),
        (b"", "image/png"),
    ], ids=["text", "truncated_png", "pdf", "empty"])
    def test_file_that_is_not_an_image_is_400(self, api: Api, check: ErrorCheck, data: bytes,
                                              mime: str) -> None:
        token_id, token = api.create_token()
        with api.untouched(token_id), pytest.raises(openai.BadRequestError) as info:
            api.client(token).videos.create(prompt=unique("not an image"),
                                            input_reference=("ref.png", data, mime))
        check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                  "invalid_value", "input_reference")

    @pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
    def test_image_format_outside_jpeg_png_webp_is_400(self, api: Api, check: ErrorCheck,
                                                       fmt: str) -> None:
        token_id, token = api.create_token()
        data = image_bytes(720, 1280, fmt)
        with api.untouched(token_id), pytest.raises(openai.BadRequestError) as info:
            api.client(token).videos.create(
                prompt=unique("odd format"),
                input_reference=("ref", data, f"image/{fmt.lower()}"))
        check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                  "invalid_value", "input_reference")

    def test_json_data_url_reference_is_checked_and_forwarded(
        self, api: Api, gateway: Gateway, simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token()
        data = image_bytes(720, 1280, "PNG")
        prompt = unique("data url reference [never]")
        response = api.call(token, "POST", "/v1/videos", json={
            "prompt": prompt, "input_reference": {"image_url": data_url(data)}})
        assert response.status_code == 200, response.text
        assert response.json()["id"].startswith("video_")
        upstream_job = api.upstream_job(simulator, prompt)
        assert upstream_job["has_input_reference"] is True
        assert upstream_job["input_reference_bytes"] == len(data)
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize("reference", [
        {"image_url": data_url(image_bytes(1280, 720, "PNG"))},
        {"image_url": data_url(image_bytes(720, 1280, "GIF"), "image/gif")},
        {"image_url": data_url(b"plain text", "text/plain")},
        {"image_url": "data:image/png;base64,@@@not-base64@@@"},
        {"image_url": "ftp://example.com/a.png"},
        {"file_id": ""},
        {"something": "else"},
        "just a string",
        42,
    ], ids=["wrong_size", "gif", "not_image", "bad_base64", "bad_scheme", "empty_file_id",
            "unknown_key", "string", "number"])
    def test_bad_json_reference_is_400(self, api: Api, check: ErrorCheck,
                                       reference: Any) -> None:
        token_id, token = api.create_token()
        with api.untouched(token_id):
            response = api.call(token, "POST", "/v1/videos", json={
                "prompt": unique("bad json reference"), "input_reference": reference})
        check.raw(response, 400, "invalid_request_error", "invalid_value", "input_reference")

    def test_multipart_nested_reference_fields_are_checked(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
    ) -> None:
        """``input_reference[image_url]`` / ``[file_id]`` parts, as form encoders send them."""
        token_id, token = api.create_token()
        good = image_bytes(720, 1280, "JPEG")
        image_prompt = unique("nested data url [never]")
        file_prompt = unique("nested file id [never]")
        for prompt, key, value in ((image_prompt, "image_url", data_url(good, "image/jpeg")),
                                   (file_prompt, "file_id", "file_123")):
            response = api.call(token, "POST", "/v1/videos", files={
                "prompt": (None, prompt), f"input_reference[{key}]": (None, value)})
            assert response.status_code == 200, response.text
        assert api.upstream_job(simulator, image_prompt)["input_reference_bytes"] == len(good)
        assert api.upstream_job(simulator, file_prompt)["input_reference_json"] == {
            "file_id": "file_123"}
        wrong = data_url(image_bytes(720, 720, "PNG"))
        with api.untouched(token_id):
            response = api.call(token, "POST", "/v1/videos", files={
                "prompt": (None, unique("nested wrong size")),
                "input_reference[image_url]": (None, wrong)})
        check.raw(response, 400, "invalid_request_error", "invalid_value", "input_reference")
        assert api.money(token_id) == ("4.200000", "0.800000")
        gateway.assert_reconciles(token_id)

    def test_json_file_id_reference_is_passed_through(self, api: Api, gateway: Gateway,
                                                      simulator: Simulator) -> None:
        token_id, token = api.create_token()
        prompt = unique("file id reference [never]")
        response = api.call(token, "POST", "/v1/videos", json={
            "prompt": prompt, "seconds": 4, "input_reference": {"file_id": "file_123"}})
        assert response.status_code == 200, response.text
        upstream_job = api.upstream_job(simulator, prompt)
        assert upstream_job["input_reference_json"] == {"file_id": "file_123"}
        assert upstream_job["has_input_reference"] is True
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)


# -- 409 -------------------------------------------------------------------------------------
class TestNotReady:
    def test_content_of_unfinished_video_is_409_without_sdk_retries(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token()
        sent: list[str] = []
        client = api.client(token, max_retries=2, sent=sent)
        video = client.videos.create(prompt=unique("slow one [never]"))
        assert video.status in UNFINISHED
        content_before = api.stats(simulator)["content_requests"]
        variants: tuple[Variant, ...] = ("video", "thumbnail", "spritesheet")
        for variant in variants:
            sent.clear()
            started = time.monotonic()
            with pytest.raises(openai.ConflictError) as info:
                client.videos.download_content(video.id, variant=variant)
            assert time.monotonic() - started < 0.4, "the SDK waited to retry"
            assert sent == [f"GET /v1/videos/{video.id}/content"], "the SDK retried"
            check.sdk(info.value, openai.ConflictError, 409, "invalid_request_error",
                      "video_not_ready")
        assert api.stats(simulator)["content_requests"] == content_before
        assert api.money(token_id) == ("4.600000", "0.400000")
        assert client.videos.delete(video.id).deleted is True
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        assert api.kinds(token_id) == ["topup", "hold", "refund"]
        gateway.assert_reconciles(token_id)

    def test_content_of_long_running_video_is_409_via_raw_http(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
    ) -> None:
        token_id, token = api.create_token()
        created = api.call(token, "POST", "/v1/videos",
                           json={"prompt": unique("queued [duration:60]")})
        assert created.status_code == 200, created.text
        video_id = created.json()["id"]
        response = api.call(token, "GET", f"/v1/videos/{video_id}/content",
                            headers={"Accept": "application/binary"})
        check.raw(response, 409, "invalid_request_error", "video_not_ready")
        assert api.call(token, "DELETE", f"/v1/videos/{video_id}").status_code == 200
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        gateway.assert_reconciles(token_id)


# -- 413 -------------------------------------------------------------------------------------
class TestUploadLimit:
    def test_upload_above_limit_is_413_via_sdk(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        data = noisy_png(720, 1280, 1.0)
        assert len(data) > 2 * 1024 * 1024 + 64 * 1024
        with api.untouched(token_id), pytest.raises(openai.APIStatusError) as info:
            api.client(token).videos.create(prompt=unique("huge"),
                                            input_reference=("big.png", data, "image/png"))
        check.sdk(info.value, openai.APIStatusError, 413, "invalid_request_error",
                  "request_too_large")

    def test_chunked_upload_above_limit_is_413(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        boundary = uuid.uuid4().hex
        with api.untouched(token_id):
            response = api.call(
                token, "POST", "/v1/videos",
                content=chunked_multipart(boundary, unique("chunked huge"), 4 * 1024 * 1024),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        check.raw(response, 413, "invalid_request_error", "request_too_large")

    def test_json_body_above_limit_is_413(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        reference = {"image_url": data_url(noisy_png(720, 1280, 1.0))}
        with api.untouched(token_id):
            response = api.call(token, "POST", "/v1/videos", json={
                "prompt": unique("huge json"), "input_reference": reference})
        check.raw(response, 413, "invalid_request_error", "request_too_large")

    def test_upload_below_limit_is_accepted(self, api: Api, gateway: Gateway,
                                            simulator: Simulator) -> None:
        token_id, token = api.create_token()
        data = noisy_png(720, 1280, 0.55)
        assert 1024 * 1024 < len(data) < 2 * 1024 * 1024
        prompt = unique("large but allowed [never]")
        video = api.client(token).videos.create(
            prompt=prompt, input_reference=("big.png", data, "image/png"))
        assert video.status in UNFINISHED
        assert api.upstream_job(simulator, prompt)["input_reference_bytes"] == len(data)
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)


    def test_multipart_data_url_below_limit_is_accepted(self, api: Api, gateway: Gateway,
                                                        simulator: Simulator) -> None:
        """A 1.1 MB text part is well under the 2 MB upload limit."""
        token_id, token = api.create_token()
        data = noisy_png(720, 1280, 0.3)
        reference = data_url(data)
        assert 1024 * 1024 < len(reference) < 2 * 1024 * 1024 - 64 * 1024
        prompt = unique("big nested data url [never]")
        response = api.call(token, "POST", "/v1/videos", files={
            "prompt": (None, prompt), "input_reference[image_url]": (None, reference)})
        assert response.status_code == 200, response.text
        assert api.upstream_job(simulator, prompt)["input_reference_bytes"] == len(data)
        assert api.money(token_id) == ("4.600000", "0.400000")
        gateway.assert_reconciles(token_id)


# -- 429 -------------------------------------------------------------------------------------
class TestQuota:
    def test_balance_below_price_is_429_insufficient_quota(self, api: Api,
                                                           check: ErrorCheck) -> None:
        token_id, token = api.create_token(balance_usd="0.39")
        with api.untouched(token_id), pytest.raises(openai.RateLimitError) as info:
            api.client(token).videos.create(prompt=unique("too poor"))
        check.sdk(info.value, openai.RateLimitError, 429, "insufficient_quota",
                  "insufficient_quota")
        assert retry_after(info.value.response.headers) >= 1
        assert api.money(token_id) == ("0.390000", "0.000000")

    def test_per_call_balance_below_price_is_429(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token(group="budget", billing_mode="per_call",
                                           balance_usd="0.149999")
        with api.untouched(token_id):
            response = api.call(token, "POST", "/v1/videos",
                                json={"prompt": unique("per call poor"), "seconds": "12"})
        check.raw(response, 429, "insufficient_quota", "insufficient_quota")

    def test_exact_balance_is_enough(self, api: Api, gateway: Gateway) -> None:
        token_id, token = api.create_token(balance_usd="0.4")
        video = api.client(token).videos.create(prompt=unique("exact [never]"))
        assert video.status in UNFINISHED
        assert api.money(token_id) == ("0.000000", "0.400000")
        gateway.assert_reconciles(token_id)

    def test_remix_beyond_balance_is_429_and_never_sent(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token(balance_usd="0.45")
        client = api.client(token)
        video = client.videos.create_and_poll(prompt=unique("remix source [duration:0.3]"),
                                              poll_interval_ms=100)
        assert video.status == "completed"
        assert api.money(token_id) == ("0.050000", "0.000000")
        with api.untouched(token_id), pytest.raises(openai.RateLimitError) as info:
            client.videos.remix(video.id, prompt=unique("remix it"))
        check.sdk(info.value, openai.RateLimitError, 429, "insufficient_quota",
                  "insufficient_quota")
        assert api.kinds(token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_sdk_with_retries_does_not_retry_insufficient_quota(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
    ) -> None:
        token_id, token = api.create_token(balance_usd="0.1")
        sent: list[str] = []
        client = api.client(token, max_retries=2, sent=sent)
        started = time.monotonic()
        with api.untouched(token_id), pytest.raises(openai.RateLimitError) as info:
            client.videos.create(prompt=unique("retry me not"))
        assert time.monotonic() - started < 0.4, "the SDK waited to retry"
        assert sent == ["POST /v1/videos"]
        check.sdk(info.value, openai.RateLimitError, 429, "insufficient_quota",
                  "insufficient_quota")
        gateway.assert_reconciles(token_id)


class TestRateLimits:
    def test_third_create_within_a_minute_is_429_for_rpm_2(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
    ) -> None:
        token_id, token = api.create_token(rpm=2)
        client = api.client(token)
        first = client.videos.create(prompt=unique("rpm one [never]"))
        second = client.videos.create(prompt=unique("rpm two [never]"))
        assert api.money(token_id) == ("4.200000", "0.800000")
        with api.untouched(token_id), pytest.raises(openai.RateLimitError) as info:
            client.videos.create(prompt=unique("rpm three"))
        check.sdk(info.value, openai.RateLimitError, 429, "rate_limit_error",
                  "rate_limit_exceeded", should_retry=None)
        assert 1 <= retry_after(info.value.response.headers) <= 60
        for video in (first, second):
            client.videos.delete(video.id)
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        assert api.kinds(token_id) == ["topup", "hold", "hold", "refund", "refund"]
        gateway.assert_reconciles(token_id)

    def test_rpm_limit_also_applies_to_json_creates(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
    ) -> None:
        token_id, token = api.create_token(rpm=1)
        first = api.call(token, "POST", "/v1/videos", json={"prompt": unique("rpm [never]")})
        assert first.status_code == 200, first.text
        with api.untouched(token_id):
            second = api.call(token, "POST", "/v1/videos",
                              json={"prompt": unique("rpm json second")})
        check.raw(second, 429, "rate_limit_error", "rate_limit_exceeded", should_retry=None)
        assert 1 <= retry_after(second.headers) <= 60
        gateway.assert_reconciles(token_id)

    def test_second_create_while_first_runs_is_429_for_one_concurrent_job(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
    ) -> None:
        token_id, token = api.create_token(max_concurrent_jobs=1)
        client = api.client(token)
        first = client.videos.create(prompt=unique("long one [never]"))
        assert api.money(token_id) == ("4.600000", "0.400000")
        with api.untouched(token_id), pytest.raises(openai.RateLimitError) as info:
            client.videos.create(prompt=unique("second concurrent"))
        check.sdk(info.value, openai.RateLimitError, 429, "rate_limit_error",
                  "rate_limit_exceeded", should_retry=None)
        assert retry_after(info.value.response.headers) >= 1
        client.videos.delete(first.id)
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        second = client.videos.create(prompt=unique("after the slot freed [never]"))
        assert second.status in UNFINISHED
        assert api.kinds(token_id) == ["topup", "hold", "refund", "hold"]
        gateway.assert_reconciles(token_id)

    def test_finished_job_frees_the_concurrency_slot(self, api: Api, gateway: Gateway) -> None:
        token_id, token = api.create_token(max_concurrent_jobs=1)
        client = api.client(token)
        first = client.videos.create_and_poll(prompt=unique("quick [duration:0.3]"),
                                              poll_interval_ms=100)
        assert first.status == "completed"
        second = client.videos.create(prompt=unique("next [never]"))
        assert second.status in UNFINISHED
        assert api.kinds(token_id) == ["topup", "hold", "capture", "hold"]
        gateway.assert_reconciles(token_id)


# -- 404 -------------------------------------------------------------------------------------
class TestNotFound:
    def test_unknown_video_id_is_404_everywhere(self, api: Api, check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        sent: list[str] = []
        client = api.client(token, max_retries=2, sent=sent)
        missing = "video_" + uuid.uuid4().hex
        calls: list[Callable[[], object]] = [
            lambda: client.videos.retrieve(missing),
            lambda: client.videos.download_content(missing),
            lambda: client.videos.delete(missing),
            lambda: client.videos.remix(missing, prompt=unique("remix nothing")),
            lambda: client.videos.retrieve("not-even-a-video-id"),
        ]
        with api.untouched(token_id):
            for call in calls:
                sent.clear()
                with pytest.raises(openai.NotFoundError) as info:
                    call()
                assert len(sent) == 1, f"the SDK retried: {sent}"
                check.sdk(info.value, openai.NotFoundError, 404, "invalid_request_error",
                          "not_found", "video_id")

    def test_another_tokens_video_is_404(self, api: Api, gateway: Gateway, check: ErrorCheck,
                                         simulator: Simulator) -> None:
        owner_id, owner_token = api.create_token()
        other_id, other_token = api.create_token()
        owner, other = api.client(owner_token), api.client(other_token)
        video = owner.videos.create_and_poll(prompt=unique("mine [duration:0.3]"),
                                             poll_interval_ms=100)
        assert video.status == "completed"
        deletes_before = len(api.stats(simulator)["deletes"])
        calls: list[Callable[[], object]] = [
            lambda: other.videos.retrieve(video.id),
            lambda: other.videos.download_content(video.id),
            lambda: other.videos.download_content(video.id, variant="thumbnail"),
            lambda: other.videos.delete(video.id),
            lambda: other.videos.remix(video.id, prompt=unique("steal [duration:0.3]")),
        ]
        with api.untouched(other_id):
            for call in calls:
                with pytest.raises(openai.NotFoundError) as info:
                    call()
                check.sdk(info.value, openai.NotFoundError, 404, "invalid_request_error",
                          "not_found", "video_id")
            listed = api.call(other_token, "GET", "/v1/videos", params={"after": video.id})
            check.raw(listed, 404, "invalid_request_error", "not_found", "after")
        assert other.videos.list().data == []
        assert len(api.stats(simulator)["deletes"]) == deletes_before
        assert owner.videos.retrieve(video.id).status == "completed"
        assert owner.videos.download_content(video.id).content[4:8] == b"ftyp"
        assert api.money(owner_id) == ("4.600000", "0.000000")
        gateway.assert_reconciles(owner_id)

    def test_deleted_video_is_404_afterwards(self, api: Api, gateway: Gateway,
                                             check: ErrorCheck) -> None:
        token_id, token = api.create_token()
        client = api.client(token)
        video = client.videos.create(prompt=unique("short-lived [never]"))
        assert client.videos.delete(video.id).deleted is True
        for call in (lambda: client.videos.retrieve(video.id),
                     lambda: client.videos.download_content(video.id),
                     lambda: client.videos.delete(video.id),
                     lambda: client.videos.remix(video.id, prompt="again")):
            with pytest.raises(openai.NotFoundError) as info:
                call()
            check.sdk(info.value, openai.NotFoundError, 404, "invalid_request_error",
                      "not_found", "video_id")
        wait_for(lambda: api.money(token_id) == ("5.000000", "0.000000"), 10)
        gateway.assert_reconciles(token_id)

    def test_unknown_route_is_404_with_envelope(self, api: Api, check: ErrorCheck) -> None:
        _, token = api.create_token()
        for token_or_none in (token, None):
            for path in ("/v1/nothing-here", "/v2/videos", "/"):
                response = api.call(token_or_none, "GET", path)
                check.raw(response, 404, "invalid_request_error", "not_found")


# -- 5xx and upstream refusals ---------------------------------------------------------------
class TestUpstreamFailures:
    def test_group_without_upstream_is_503_no_upstream(self, api: Api,
                                                       check: ErrorCheck) -> None:
        token_id, token = api.create_token(group="nobody")
        with api.untouched(token_id), pytest.raises(openai.InternalServerError) as info:
            api.client(token).videos.create(prompt=unique("nobody home"))
        check.sdk(info.value, openai.InternalServerError, 503, "server_error", "no_upstream",
                  should_retry=None)
        assert api.kinds(token_id) == ["topup"]

    @pytest.mark.parametrize("upstream_status", [500, 503, 429])
    def test_every_upstream_failing_is_502_and_nothing_charged(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
        upstream_status: int,
    ) -> None:
        token_id, token = api.create_token()
        client = api.client(token)
        prompt = unique(f"doomed [status:{upstream_status}]")
        creates = api.creates(simulator)
        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=prompt)
        check.sdk(info.value, openai.InternalServerError, 502, "server_error",
                  "upstream_error", should_retry=None)
        assert api.creates(simulator) == creates + 1
        assert api.upstream_jobs(simulator, prompt) == []
        assert api.money(token_id) == ("5.000000", "0.000000")
        assert api.kinds(token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        gateway.assert_reconciles(token_id)

    def test_reseller_failing_is_502_without_naming_it(
        self, api: Api, gateway: Gateway, check: ErrorCheck, compat_simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token(group="resale")
        creates = api.creates(compat_simulator)
        with pytest.raises(openai.InternalServerError) as info:
            api.client(token).videos.create(prompt=unique("resale doomed [status:500]"))
        check.sdk(info.value, openai.InternalServerError, 502, "server_error",
                  "upstream_error", should_retry=None)
        assert api.creates(compat_simulator) == creates + 1
        assert api.money(token_id) == ("5.000000", "0.000000")
        assert api.kinds(token_id) == ["topup", "hold", "release"]
        gateway.assert_reconciles(token_id)

    def test_sdk_retries_of_upstream_error_never_charge(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
    ) -> None:
        token_id, token = api.create_token()
        sent: list[str] = []
        client = api.client(token, max_retries=2, sent=sent)
        creates = api.creates(simulator)
        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=unique("retried doom [status:500]"))
        check.sdk(info.value, openai.InternalServerError, 502, "server_error",
                  "upstream_error", should_retry=None)
        assert sent == ["POST /v1/videos"] * 3
        assert api.creates(simulator) == creates + 3
        assert api.money(token_id) == ("5.000000", "0.000000")
        assert api.kinds(token_id) == ["topup"] + ["hold", "release"] * 3
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize("flavor", ["openai", "compat"])
    def test_upstream_moderation_refusal_passes_through_as_400(
        self, api: Api, gateway: Gateway, check: ErrorCheck, simulator: Simulator,
        compat_simulator: Simulator, flavor: str,
    ) -> None:
        group, sim = ("official", simulator) if flavor == "openai" else (
            "resale", compat_simulator)
        token_id, token = api.create_token(group=group)
        sent: list[str] = []
        client = api.client(token, max_retries=2, sent=sent)
        creates = api.creates(sim)
        with pytest.raises(openai.BadRequestError) as info:
            client.videos.create(prompt=unique("forbidden scene [reject]"))
        check.sdk(info.value, openai.BadRequestError, 400, "invalid_request_error",
                  "moderation_blocked", "prompt",
                  message="Your request was blocked by our moderation system.")
        assert sent == ["POST /v1/videos"]
        assert api.creates(sim) == creates + 1
        assert api.money(token_id) == ("5.000000", "0.000000")
        assert api.kinds(token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("upstream_status", "cls"), [
        (400, openai.BadRequestError), (422, openai.UnprocessableEntityError),
    ])
    def test_upstream_4xx_is_passed_through_sanitized(
        self, api: Api, gateway: Gateway, check: ErrorCheck,
        upstream_status: int, cls: type[openai.APIStatusError],
    ) -> None:
        token_id, token = api.create_token()
        with pytest.raises(cls) as info:
            api.client(token).videos.create(
                prompt=unique(f"upstream says no [status:{upstream_status}]"))
        exc = info.value
        assert exc.status_code == upstream_status
        error = exc.response.json()["error"]
        assert set(error) == REQUEST_FIELDS
        assert error["message"].startswith("The server had an error processing the request")
        check.no_leak(exc.response)
        assert exc.response.headers.get("x-request-id")
        assert exc.response.headers.get("x-should-retry") == "false"
        assert api.money(token_id) == ("5.000000", "0.000000")
        assert api.kinds(token_id) == ["topup", "hold", "release"]
        gateway.assert_reconciles(token_id)


# -- headers ---------------------------------------------------------------------------------
class TestHeaders:
    def test_every_success_response_carries_a_unique_request_id(
        self, api: Api, gateway: Gateway,
    ) -> None:
        token_id, token = api.create_token()
        client = api.client(token)
        created = client.videos.with_raw_response.create(prompt=unique("ids [duration:0.3]"))
        video = created.parse()
        responses: list[_Response] = [created]
        retrieved = client.videos.with_raw_response.retrieve(video.id)
        assert retrieved.headers["openai-poll-after-ms"] == "100"
        responses.append(retrieved)
        wait_for(lambda: client.videos.retrieve(video.id).status == "completed", 10)
        responses.append(client.videos.with_raw_response.list())
        responses.append(client.videos.with_raw_response.download_content(video.id))
        responses.append(client.videos.with_raw_response.delete(video.id))
        responses += [api.call(None, "GET", path) for path in ("/healthz", "/readyz")]
        responses.append(api.admin("GET", f"/admin/tokens/{token_id}"))
        assert [response.status_code for response in responses] == [200] * len(responses)
        ids = [response.headers.get("x-request-id") for response in responses]
        assert all(ids), ids
        assert len(set(ids)) == len(ids), "request ids must be unique"
        gateway.assert_reconciles(token_id)

    def test_create_and_retrieve_pace_pollers(self, api: Api, gateway: Gateway) -> None:
        token_id, token = api.create_token()
        created = api.call(token, "POST", "/v1/videos",
                           json={"prompt": unique("paced [never]")})
        assert created.status_code == 200, created.text
        assert created.headers["openai-poll-after-ms"] == "100"
        retrieved = api.call(token, "GET", f"/v1/videos/{created.json()['id']}")
        assert retrieved.status_code == 200
        assert retrieved.headers["openai-poll-after-ms"] == "100"
        assert retrieved.headers["x-request-id"] != created.headers["x-request-id"]
        gateway.assert_reconciles(token_id)
