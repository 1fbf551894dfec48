"""The native vendor flavors end to end: the unchanged openai SDK against the gateway, each
vendor's simulator behind it, money held and settled on what was rendered."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pytest

from gateway.simulator import expected_content
from tests.conftest import wait_for
from tests.support.media import image_bytes
from tests.support.servers import Gateway, Simulator, base_config

KLING_KEY = "ak-gateway-test:sk-gateway-test-secret-of-32-bytes-long"
SIZE = 4096  # bytes of every test video ([size:N])


@dataclass(frozen=True)
class Vendor:
    flavor: str
    model: str
    seconds: tuple[int, ...]
    rate: str  # USD per second at the size the tests ask for
    # Whether the vendor reports the duration it rendered (settle on what was made).
    reports_seconds: bool = True
    size: str = "1280x720"


VENDORS = {
    "ark": Vendor("ark", "seedance-1-0-pro", (5, 10), "0.07"),
    "dashscope": Vendor("dashscope", "wan2.5-t2v-preview", (5, 10), "0.13"),
    "kling": Vendor("kling", "kling-v2-1", (5, 10), "0.075"),
    "gemini": Vendor("gemini", "veo-3.1-generate-preview", (4, 6, 8), "0.26",
                     reports_seconds=False),
    "minimax": Vendor("minimax", "MiniMax-Hailuo-02", (6, 10), "0.065", reports_seconds=False,
                      size="768p"),
    "vidu": Vendor("vidu", "viduq2", (5, 8), "0.11"),
}


WAN_I2V = Vendor("dashscope", "wan2.5-i2v-preview", (5, 10), "0.13")


def key_of(flavor: str) -> str:
    return KLING_KEY if flavor == "kling" else "sk-vendor-" + flavor


@pytest.fixture(scope="module")
def vendor_sims() -> Iterator[dict[str, Simulator]]:
    sims = {name: Simulator(flavor=name, duration_s=0.6, api_key=key_of(name)).spawn()
            for name in VENDORS}
    for sim in sims.values():
        sim.ready()
    yield sims
    for sim in sims.values():
        sim.stop()


def vendor_config(sims: dict[str, Simulator], **overrides: Any) -> dict[str, Any]:
    upstreams = [{"name": f"{name}-upstream", "base_url": sim.base_url, "api_key": key_of(name),
                  "flavor": name, "groups": ["budget"],
                  "models": [VENDORS[name].model] + ([WAN_I2V.model] if name == "dashscope"
                                                     else []),
                  "timeout_s": 5} for name, sim in sims.items()]
    config = base_config(upstreams, **overrides)
    for vendor in (*VENDORS.values(), WAN_I2V):
        tier = "768p" if vendor.size == "768p" else "720p"
        config["pricing"]["per_second"][vendor.model] = {tier: vendor.rate,
                                                         "1080p": str(Decimal(vendor.rate) * 2)}
        config.setdefault("seconds", {"default": [4, 8, 12]})[vendor.model] = list(
            vendor.seconds)
    config["pricing"]["audio_per_second"] = {VENDORS["gemini"].model: "0.20"}
    return config


@pytest.fixture(scope="module")
def vendor_gateway(tmp_path_factory: pytest.TempPathFactory,
                   vendor_sims: dict[str, Simulator]) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("vendors"), vendor_config(vendor_sims)).start()
    yield gw
    gw.stop()


def prompt(text: str) -> str:
    return f"{text} {uuid.uuid4().hex} [size:{SIZE}]"


def usd(value: str) -> Decimal:
    return Decimal(value)


@pytest.mark.parametrize("name", list(VENDORS))
def test_create_poll_download_and_the_money(vendor_gateway: Gateway,
                                            vendor_sims: dict[str, Simulator],
                                            name: str) -> None:
    vendor, sim = VENDORS[name], vendor_sims[name]
    token_id, token = vendor_gateway.create_token(group="budget", balance_usd="10")
    client = vendor_gateway.client(token)
    asked = prompt("a lighthouse")
    video = client.videos.create(prompt=asked, model=vendor.model, size=vendor.size)
    held = usd(vendor.rate) * vendor.seconds[0]
    assert usd(vendor_gateway.token(token_id)["held_usd"]) == held
    done = client.videos.poll(video.id, poll_interval_ms=100)
    assert done.status == "completed", done.error
    assert done.seconds == str(vendor.seconds[0])  # the shortest length, sent explicitly
    upstream_id, job = sim.job_for(asked)
    assert int(job["seconds"]) == vendor.seconds[0]
    body = client.videos.download_content(done.id).read()
    assert body == expected_content(upstream_id, SIZE)
    ranged = client.videos.with_raw_response.download_content(
        done.id, extra_headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == expected_content(upstream_id, SIZE)[10:20]
    # The vendor's ids, names and URLs never reach the client.
    for seen in (video.model_dump_json(), done.model_dump_json()):
        assert upstream_id not in seen
        assert sim.base_url not in seen
    money = vendor_gateway.token(token_id)
    assert (usd(money["balance_usd"]), usd(money["held_usd"])) == (10 - held, 0)
    vendor_gateway.assert_reconciles(token_id)


@pytest.mark.parametrize("name", list(VENDORS))
def test_image_to_video(vendor_gateway: Gateway, vendor_sims: dict[str, Simulator],
                        name: str) -> None:
    vendor = WAN_I2V if name == "dashscope" else VENDORS[name]  # Wan's t2v takes no image
    _, token = vendor_gateway.create_token(group="budget")
    client = vendor_gateway.client(token)
    asked = prompt("from a picture")
    image = ("ref.png", io.BytesIO(image_bytes(1280, 720)), "image/png")
    if vendor.size == "768p":
        image = ("ref.png", io.BytesIO(image_bytes(1366, 768)), "image/png")
    done = client.videos.create_and_poll(prompt=asked, model=vendor.model, size=vendor.size,
                                         input_reference=image, poll_interval_ms=100)
    assert done.status == "completed", done.error
    assert vendor_sims[name].job_for(asked)[1]["has_input_reference"] is True


@pytest.mark.parametrize("name", list(VENDORS))
def test_vendor_failure_is_refunded_without_a_client_poll(
        vendor_gateway: Gateway, vendor_sims: dict[str, Simulator], name: str) -> None:
    vendor = VENDORS[name]
    token_id, token = vendor_gateway.create_token(group="budget", balance_usd="5")
    client = vendor_gateway.client(token)
    client.videos.create(prompt=prompt("doomed [fail]"), model=vendor.model, size=vendor.size)
    # Only the reconciler polls: the refund arrives with no client asking.
    wait_for(lambda: vendor_gateway.token(token_id)["held_usd"] == "0.000000", timeout=20)
    assert vendor_gateway.token(token_id)["balance_usd"] == "5.000000"
    assert [e["kind"] for e in vendor_gateway.ledger(token_id)] == ["topup", "hold", "refund"]


@pytest.mark.parametrize("name", ["ark", "dashscope", "kling", "vidu"])
def test_settles_on_what_was_rendered(vendor_gateway: Gateway,
                                      vendor_sims: dict[str, Simulator], name: str) -> None:
    vendor = VENDORS[name]
    shorter = vendor.seconds[0] - 1
    token_id, token = vendor_gateway.create_token(group="budget", balance_usd="5")
    client = vendor_gateway.client(token)
    done = client.videos.create_and_poll(
        prompt=prompt(f"short [render-seconds:{shorter}]"), model=vendor.model,
        seconds=str(vendor.seconds[-1]), size="1280x720", poll_interval_ms=100)
    assert done.status == "completed"
    entries = {e["kind"]: e["amount_usd"] for e in vendor_gateway.ledger(token_id)}
    assert usd(entries["hold"]) == usd(vendor.rate) * vendor.seconds[-1]
    assert usd(entries["capture"]) == usd(vendor.rate) * shorter
    assert usd(entries["refund"]) == usd(entries["hold"]) - usd(entries["capture"])
    vendor_gateway.assert_reconciles(token_id)


def test_unknown_status_word_keeps_it_running(vendor_gateway: Gateway,
                                              vendor_sims: dict[str, Simulator]) -> None:
    _, token = vendor_gateway.create_token(group="budget")
    client = vendor_gateway.client(token)
    video = client.videos.create(prompt=prompt("odd [unknown-status] [never]"),
                                 model=VENDORS["ark"].model)
    wait_for(lambda: client.videos.retrieve(video.id).status == "in_progress", timeout=10)


def test_metadata_is_passed_on_and_priced_fields_refused(
        vendor_gateway: Gateway, vendor_sims: dict[str, Simulator]) -> None:
    token_id, token = vendor_gateway.create_token(group="budget")
    client = vendor_gateway.client(token)
    asked = prompt("with a seed")
    client.videos.create_and_poll(prompt=asked, model=VENDORS["ark"].model,
                                  extra_body={"metadata": '{"seed": 42, "watermark": false}'},
                                  poll_interval_ms=100)
    request = vendor_sims["ark"].job_for(asked)[1]["request"]
    assert (request.get("seed"), request.get("watermark")) == (42, False)
    for priced in ('{"duration": 10}', '{"resolution": "1080p"}', '{"ratio": "21:9"}'):
        with pytest.raises(openai.BadRequestError) as info:
            client.videos.create(prompt=prompt("pricier"), model=VENDORS["ark"].model,
                                 extra_body={"metadata": priced})
        assert info.value.param == "metadata"
    assert [e["kind"] for e in vendor_gateway.ledger(token_id)] == ["topup", "hold", "capture"]


def test_what_a_vendor_cannot_do_is_refused_before_any_hold(
        vendor_gateway: Gateway, vendor_sims: dict[str, Simulator]) -> None:
    token_id, token = vendor_gateway.create_token(group="budget")
    client = vendor_gateway.client(token)
    done = client.videos.create_and_poll(prompt=prompt("source"), model=VENDORS["ark"].model,
                                         poll_interval_ms=100)
    before = vendor_gateway.ledger(token_id)
    with pytest.raises(openai.BadRequestError):
        client.videos.remix(done.id, prompt="again")
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt=prompt("loud"), model=VENDORS["ark"].model,
                             extra_body={"metadata": '{"audio": true}'})
    assert info.value.param == "metadata"
    assert vendor_gateway.ledger(token_id) == before


def test_veo_sound_is_priced(vendor_gateway: Gateway,
                             vendor_sims: dict[str, Simulator]) -> None:
    vendor = VENDORS["gemini"]
    token_id, token = vendor_gateway.create_token(group="budget")
    client = vendor_gateway.client(token)
    done = client.videos.create_and_poll(prompt=prompt("with sound"), model=vendor.model,
                                         seconds="8", extra_body={"metadata": '{"audio": true}'},
                                         poll_interval_ms=100)
    assert done.status == "completed"
    hold = next(e for e in vendor_gateway.ledger(token_id) if e["kind"] == "hold")
    assert usd(hold["amount_usd"]) == (usd(vendor.rate) + usd("0.20")) * 8


def test_a_restart_mid_job_settles_it(tmp_path_factory: pytest.TempPathFactory,
                                      vendor_sims: dict[str, Simulator]) -> None:
    gw = Gateway(tmp_path_factory.mktemp("restart"), vendor_config(vendor_sims)).start()
    try:
        token_id, token = gw.create_token(group="budget")
        video = gw.client(token).videos.create(prompt=prompt("across a restart [duration:2]"),
                                                model=VENDORS["kling"].model)
        gw.kill()
        gw.start()
        done = gw.client(token).videos.poll(video.id, poll_interval_ms=100)
        assert done.status == "completed"
        gw.assert_reconciles(token_id)
    finally:
        gw.stop()
