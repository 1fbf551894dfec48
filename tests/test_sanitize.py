"""What an upstream says about a failure reaches a client only through one gate.

Unit tests of that gate (gateway.upstreams.sanitize), then a careless upstream end to end: the
simulator quotes its key, address, name and job id in a failed job's error and in a refused
create, and neither the SDK nor a raw client sees any of it, while the operator does.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.migrate import alembic_config
from gateway.upstreams.sanitize import (
    CODES,
    DEFAULT_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_RAW_CHARS,
    UpstreamSecrets,
    public_code,
    public_error,
    public_param,
    scrub,
)
from tests.conftest import wait_for
from tests.support.leaks import LEAKY_WORDS, assert_hidden, upstream_traces
from tests.support.media import mp4
from tests.support.servers import SIM_KEY, Gateway, Simulator, database_url, upstream

KEY = "hunter2hunter2"  # short and plain: only knowing it finds it
# A bare host name, as on a private network: nothing but knowing it tells it from a word.
SECRETS = UpstreamSecrets.of(name="acme-east", base_url="http://gpu-box:9000/v1",
                             keys=[KEY, "AKPAIR01:SKPAIRSECRET"],
                             models=["acme-video-large"])


def scrubbed(message: str, **kwargs: Any) -> str:
    return scrub(message, SECRETS, **kwargs)


class TestSecrets:
    @pytest.mark.parametrize("secret", [
        KEY, "HUNTER2HUNTER2", "SKPAIRSECRET",
        "sk-proj-Ab3dEf6hIj9kLm", "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJBSyJ9.c2lnbmF0dXJl",
        "deadbeefcafebabe00112233", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
        "123e4567-e89b-12d3-a456-426614174000", "nRQxaNYWpDMgcemgbUtbkYvT",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
    ])
    def test_key_like_strings_are_removed(self, secret: str) -> None:
        result = scrubbed(f"request with {secret} refused")
        assert secret.lower() not in result.lower()
        assert result.startswith("request with "), result
        assert result.endswith(" refused"), result

    @pytest.mark.parametrize("quoted", [
        "Authorization: Bearer opaque", "api_key=opaque", "X-Goog-Api-Key: opaque",
        "token: opaque", "secret=opaque", "password='opaque'", "Basic opaque",
    ])
    def test_a_value_named_as_a_credential_is_removed(self, quoted: str) -> None:
        assert "opaque" not in scrubbed(f"denied ({quoted}) today")

    def test_short_upstream_ids_given_are_removed(self) -> None:
        assert scrubbed("task 77-b failed", ids=["77-b"]) == "task [redacted] failed"


class TestAddresses:
    @pytest.mark.parametrize("address", [
        "https://files.acme.example/v1/videos/abc?sig=1", "http://10.1.2.3:8080/x",
        "gpu-box.acme.lan:9000", "gpu-box", "storage.googleapis.com", "10.0.0.5:80",
        "fe80::1ff:fe23:4567:890a", "localhost:9100", "worker-3.internal",
    ])
    def test_urls_hosts_and_ips_are_removed(self, address: str) -> None:
        result = scrubbed(f"could not reach {address} in time")
        assert address not in result
        assert result.startswith("could not reach ["), result
        assert result.endswith("] in time"), result

    def test_the_upstream_base_url_goes_whole(self) -> None:
        assert scrubbed("see http://gpu-box:9000/v1/videos/x") == "see [url]"


class TestNames:
    def test_the_upstream_name_is_removed_in_any_case(self) -> None:
        assert scrubbed("ACME-East is overloaded") == "[provider] is overloaded"

    def test_only_whole_words_of_the_name_go(self) -> None:
        assert scrubbed("acme-eastern stays") == "acme-eastern stays"

    def test_the_vendors_model_names_are_removed(self) -> None:
        assert scrubbed("acme-video-large is busy") == "[model] is busy"


class TestWhatStays:
    @pytest.mark.parametrize("message", [
        "Invalid value for 'seconds': must be 4, 8 or 12.",
        "The image image.png is 1280x720, not 720x1280.",
        "Your prompt was flagged at 12:30:45, e.g. for violence.",
        "Missing required parameter: 'prompt'.",
    ])
    def test_plain_explanations_pass_unchanged(self, message: str) -> None:
        assert scrubbed(message) == message


class TestBounds:
    def test_messages_are_bounded_on_a_word(self) -> None:
        result = scrubbed("word " * 500)
        assert len(result) <= MAX_MESSAGE_CHARS
        assert result.endswith("word…")

    def test_control_characters_are_flattened(self) -> None:
        error = public_error("x", "line one\r\n2024-01-01 INFO forged\x1b[31m", secrets=SECRETS)
        assert error.message == "line one 2024-01-01 INFO forged [31m"

    def test_a_message_left_with_nothing_to_say_is_replaced(self) -> None:
        error = public_error("E_9", f"{KEY} @ gpu-box.acme.lan:9000", secrets=SECRETS)
        assert error.message == DEFAULT_MESSAGES["upstream_failed"]


class TestCodes:
    @pytest.mark.parametrize(("code", "message", "expected"), [
        ("moderation_blocked", "", "moderation_blocked"),
        ("content_policy_violation", "", "moderation_blocked"),
        ("DataInspectionFailed", "", "moderation_blocked"),
        ("InputTextSensitiveContentDetected", "", "moderation_blocked"),
        ("1301", "Trigger the content security policy", "moderation_blocked"),
        ("video_generation_failed", "Blocked by our safety system.", "moderation_blocked"),
        ("invalid_value", "", "invalid_input"),
        ("InvalidParameter.Duration", "", "invalid_input"),
        ("", "Missing required parameter: 'prompt'.", "invalid_input"),
        ("server_error", "invalid worker state", "upstream_failed"),
        ("video_generation_failed", "", "upstream_failed"),
        ("E_WORKER_7731_OOM", "", "upstream_failed"),
        ("", "", "upstream_failed"),
    ])
    def test_vendor_codes_map_onto_our_vocabulary(self, code: str, message: str,
                                                  expected: str) -> None:
        assert public_code(code, message) == expected
        assert public_error(code, message, secrets=SECRETS).code in CODES

    @pytest.mark.parametrize(("param", "expected"), [
        ("prompt", "prompt"), ("seconds", "seconds"), ("input_reference", "input_reference"),
        ("input_reference.image_url", "input_reference"), ("video[id]", "video"),
        ("metadata", "metadata"), ("duration", None), ("worker_pool", None), (None, None),
        ({"nested": 1}, None),
    ])
    def test_only_our_own_field_names_pass_as_param(self, param: object,
                                                    expected: str | None) -> None:
        assert public_param(param) == expected


class TestOperatorCopy:
    def test_keeps_the_upstreams_words_but_not_our_keys(self) -> None:
        error = public_error("E_1", f"acme-east at gpu-box:9000 with {KEY}", "worker",
                             secrets=SECRETS)
        assert error.raw == "E_1: acme-east at gpu-box:9000 with [key] (param: worker)"

    def test_is_bounded(self) -> None:
        error = public_error("E_1", "x " * 5000, secrets=SECRETS)
        assert error.raw is not None
        assert len(error.raw) <= MAX_RAW_CHARS

    def test_is_absent_when_the_upstream_said_nothing(self) -> None:
        assert public_error(None, None, secrets=SECRETS).raw is None


# -- a careless upstream, end to end ---------------------------------------------------------
def leaky_gateway(make_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """A gateway whose only upstream has the name the simulator calls itself."""
    return make_gateway([upstream(sim.name, sim, ["official", "budget"])])


def upstream_id_of(sim: Simulator, prompt: str) -> str:
    return next(job_id for job_id, job in sim.stats()["jobs"].items() if job["prompt"] == prompt)


def admin_item(gw: Gateway, token_id: str) -> dict[str, Any]:
    with gw.admin() as admin:
        items = admin.get("/admin/videos", params={"token_id": token_id}).json()["data"]
    assert len(items) == 1, items
    return items[0]  # type: ignore[no-any-return]


def assert_operator_sees(item: dict[str, Any], sim: Simulator, *words: str) -> None:
    raw = item["upstream_error"]
    for word in (sim.name, f"127.0.0.1:{sim.port}", *words):
        assert word in raw, (word, raw)
    assert SIM_KEY not in raw, raw
    assert "[key]" in raw, raw
    assert_hidden(json.dumps(item["error"]), upstream_traces(sim))


def assert_logs_clean(gw: Gateway) -> None:
    assert_hidden(gw.logs(), [SIM_KEY, *LEAKY_WORDS])


@pytest.mark.parametrize("flavor", ["openai", "compat"])
def test_failed_job_shows_no_upstream_words_to_its_owner(
    make_gateway: Callable[..., Gateway], request: pytest.FixtureRequest, flavor: str,
) -> None:
    sim: Simulator = request.getfixturevalue(
        "simulator" if flavor == "openai" else "compat_simulator")
    gw = leaky_gateway(make_gateway, sim)
    token_id, token = gw.create_token(balance_usd="1")
    client = gw.client(token)
    prompt = f"careless {uuid.uuid4().hex} [fail-leaky] [duration:0.2]"
    video = client.videos.create(prompt=prompt)
    failed = wait_for(lambda: (v := client.videos.retrieve(video.id)).status == "failed" and v)
    upstream_id = upstream_id_of(sim, prompt)

    assert failed.error is not None
    assert failed.error.code == "upstream_failed"
    exposed = [failed.error.message, client.videos.with_raw_response.retrieve(video.id).text,
               client.videos.with_raw_response.list().text,
               json.dumps([v.model_dump() for v in client.videos.list().data])]
    assert_hidden("\n".join(exposed), upstream_traces(sim, upstream_id=upstream_id))
    assert_operator_sees(admin_item(gw, token_id), sim, upstream_id, "E_WORKER_7731_OOM")
    assert gw.token(token_id)["balance_usd"] == "1.000000"
    assert_logs_clean(gw)


def refuse(client: openai.OpenAI, route: str) -> Callable[[], object]:
    """A call on ``route`` that the simulator refuses with its leaky text."""
    prompt = f"careless {uuid.uuid4().hex} [reject-leaky]"
    if route == "remix":
        source = client.videos.create_and_poll(prompt=f"source {uuid.uuid4().hex} [duration:0.2]")
        assert source.status == "completed"
        return lambda: client.videos.remix(source.id, prompt=prompt)
    if route == "character":
        video = ("ada.mp4", io.BytesIO(mp4(4.0)), "video/mp4")
        return lambda: client.videos.create_character(name=prompt, video=video)
    return lambda: client.videos.create(prompt=prompt)


@pytest.mark.parametrize("route", ["create", "remix", "character"])
def test_refusal_shows_no_upstream_words_code_or_param(
    make_gateway: Callable[..., Gateway], simulator: Simulator, route: str,
) -> None:
    gw = leaky_gateway(make_gateway, simulator)
    token_id, token = gw.create_token(balance_usd="1")
    refused = refuse(gw.client(token), route)
    with pytest.raises(openai.BadRequestError) as info:
        refused()

    exc = info.value
    assert (exc.status_code, exc.type, exc.code, exc.param) == (
        400, "invalid_request_error", "moderation_blocked", None)
    exposed = [exc.message, json.dumps(exc.body), exc.response.text,
               "\n".join(f"{k}: {v}" for k, v in exc.response.headers.items())]
    assert_hidden("\n".join(exposed), upstream_traces(simulator))
    assert_logs_clean(gw)
    if route == "character":
        return  # characters are not jobs: nothing is kept of a refused one
    with gw.admin() as admin:
        jobs = admin.get("/admin/videos", params={"token_id": token_id,
                                                  "status": "failed"}).json()["data"]
    assert_operator_sees(jobs[0], simulator, "ContentSafety.Rejected.4471", "worker_pool_gpu07")
    assert jobs[0]["settlement"] == "release"


def test_upstream_out_of_credit_is_not_the_clients_refusal(
    make_gateway: Callable[..., Gateway], simulator: Simulator,
) -> None:
    gw = leaky_gateway(make_gateway, simulator)
    token_id, token = gw.create_token(balance_usd="1")
    with pytest.raises(openai.InternalServerError) as info:
        gw.client(token).videos.create(prompt=f"unpaid {uuid.uuid4().hex} [status:402]")
    assert (info.value.status_code, info.value.code) == (502, "upstream_error")
    assert_hidden(info.value.response.text, upstream_traces(simulator))
    assert gw.token(token_id)["balance_usd"] == "1.000000"


# -- rows written before the gateway sanitized at store time ---------------------------------
def test_migration_moves_old_upstream_words_out_of_the_clients_columns(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    config = alembic_config(url)
    command.upgrade(config, "0003")
    leaky = "key sk-live-0123456789abcdef at http://10.0.0.9/v1"
    asyncio.run(_old_rows(url, leaky))
    command.upgrade(config, "0006")
    rows = asyncio.run(_read(url))
    assert rows["video_leaky"] == ("upstream_failed", DEFAULT_MESSAGES["upstream_failed"],
                                   f"E_9: {leaky}")
    assert rows["video_moderated"] == ("moderation_blocked",
                                       DEFAULT_MESSAGES["moderation_blocked"],
                                       "moderation_blocked: nope")
    assert rows["video_expired"] == ("expired", "Refunded.", None)
    assert rows["video_done"] == (None, None, None)


_JOB = ("INSERT INTO jobs (id, token_id, \"group\", billing_mode, kind, model, size, seconds, "
        "prompt, price_micros, status, progress, error_code, error_message, created_at, "
        "updated_at, polled_at) VALUES (:id, 'tok_1', 'official', 'per_second', 'create', "
        "'sora-2', '720x1280', 4, 'p', 400000, :status, 0, :code, :message, 0, 0, 0)")


async def _old_rows(url: str, leaky: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO tokens (id, name, \"group\", billing_mode, key_hash, key_hint, "
            "balance_micros, held_micros, active_jobs, models, disabled, created_at) VALUES "
            "('tok_1', 't', 'official', 'per_second', 'h', 'sk-…', 0, 0, 0, '[]', false, 0)"))
        for job_id, status, code, message in [
            ("video_leaky", "failed", "E_9", leaky),
            ("video_moderated", "failed", "moderation_blocked", "nope"),
            ("video_expired", "failed", "expired", "Refunded."),
            ("video_done", "completed", None, None),
        ]:
            await conn.execute(text(_JOB), {"id": job_id, "status": status, "code": code,
                                            "message": message})
    await engine.dispose()


async def _read(url: str) -> dict[str, tuple[str | None, ...]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        result = await conn.execute(text(
            "SELECT id, error_code, error_message, upstream_error FROM jobs"))
        rows = {row[0]: tuple(row[1:]) for row in result}
    await engine.dispose()
    return rows
