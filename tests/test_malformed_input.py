"""Hostile bodies and images: refused with 400 before any hold, and never a 500 or a traceback.

An image is decoded whole (its declared pixel count bounded first), so a header that promises
more pixels than memory holds, or a right-sized header over data that is not an image, is
refused like any other bad ``input_reference``. JSON is bounded in depth wherever it is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from tests.support.media import bomb_png, data_url, garbage_png, image_bytes
from tests.support.servers import ADMIN_TOKEN, Gateway, Simulator


def deep_json(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


@contextmanager
def refused_cleanly(gateway: Gateway, simulator: Simulator, token_id: str) -> Iterator[None]:
    """Nothing inside reached the upstream, held money or wrote a traceback or warning."""
    creates, logged = simulator.stats()["creates"], len(gateway.logs())
    yield
    assert simulator.stats()["creates"] == creates
    assert [entry["kind"] for entry in gateway.ledger(token_id)] == ["topup"]
    assert gateway.token(token_id)["held_usd"] == "0.000000"
    written = gateway.logs()[logged:]
    assert "Traceback" not in written, written
    assert "internal error" not in written, written
    assert "Warning" not in written, written


def assert_invalid(response: httpx.Response, param: str | None, *words: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_value", param), error
    for word in words:
        assert word in error["message"], error


def post(gateway: Gateway, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/videos", headers={"Authorization": f"Bearer {token}"},
                      timeout=30, **kwargs)


class TestHostileImages:
    # 30000x30000 is past Pillow's own hard limit; 10000x10000 only past its warning.
    @pytest.mark.parametrize("side", [30000, 10000])
    def test_a_decompression_bomb_upload_is_400(self, gateway: Gateway, simulator: Simulator,
                                                side: int) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        with refused_cleanly(gateway, simulator, token_id), pytest.raises(
                openai.BadRequestError) as refused:
            gateway.client(token).videos.create(
                prompt="bomb", input_reference=("bomb.png", bomb_png(side, side), "image/png"))
        assert_invalid(refused.value.response, "input_reference", "pixels")

    def test_a_decompression_bomb_data_url_is_400(self, gateway: Gateway,
                                                  simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        with refused_cleanly(gateway, simulator, token_id):
            response = post(gateway, token, json={
                "prompt": "bomb", "input_reference": {"image_url": data_url(bomb_png())}})
        assert_invalid(response, "input_reference", "pixels")

    def test_a_right_sized_header_over_garbage_is_400(self, gateway: Gateway,
                                                      simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        with refused_cleanly(gateway, simulator, token_id):
            uploaded = post(gateway, token, files={
                "prompt": (None, "garbage"),
                "input_reference": ("ref.png", garbage_png(720, 1280), "image/png")})
            inline = post(gateway, token, json={
                "prompt": "garbage",
                "input_reference": {"image_url": data_url(garbage_png(720, 1280))}})
        assert_invalid(uploaded, "input_reference", "not a complete")
        assert_invalid(inline, "input_reference", "not a complete")

    @pytest.mark.parametrize("cut", [0.5, 0.9])
    def test_a_truncated_image_is_400(self, gateway: Gateway, simulator: Simulator,
                                      cut: float) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        whole = image_bytes(720, 1280, "JPEG")
        with refused_cleanly(gateway, simulator, token_id):
            response = post(gateway, token, files={
                "prompt": (None, "cut"),
                "input_reference": ("ref.jpg", whole[:int(len(whole) * cut)], "image/jpeg")})
        assert_invalid(response, "input_reference")


class TestDeepJson:
    @pytest.mark.parametrize("body", [
        "[" * 50_000 + "]" * 50_000,
        '{"prompt": "deep", "metadata": ' + deep_json(50_000) + "}",
        '{"prompt": "deep", "metadata": ' + deep_json(40) + "}",
    ], ids=["array_50000", "object_50000", "object_40"])
    def test_a_deeply_nested_body_is_400(self, gateway: Gateway, simulator: Simulator,
                                         body: str) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        with refused_cleanly(gateway, simulator, token_id):
            responses = [httpx.post(f"{gateway.url}/v1/videos{path}", content=body, timeout=30,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/json"})
                         for path in ("", "/edits", "/extensions", "/video_x/remix")]
        for response in responses:
            assert_invalid(response, None, "malformed JSON", "deep")

    @pytest.mark.parametrize("depth", [50_000, 40])
    def test_deeply_nested_metadata_text_is_400(self, gateway: Gateway, simulator: Simulator,
                                                depth: int) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        with refused_cleanly(gateway, simulator, token_id):
            response = post(gateway, token, files={"prompt": (None, "deep"),
                                                   "metadata": (None, deep_json(depth))})
        assert_invalid(response, "metadata", "malformed JSON", "deep")

    def test_metadata_nested_a_few_levels_is_still_accepted(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        response = post(gateway, token, json={"prompt": "shallow [never]",
                                              "metadata": {"a": {"b": {"c": [1, [2]]}}}})
        assert response.status_code == 200, response.text
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("body", "words"), [
        ("[" * 50_000 + "]" * 50_000, ("malformed JSON", "deep")),
        ('{"name": ', ("malformed JSON",)),
    ], ids=["deep", "cut_short"])
    def test_a_malformed_admin_body_is_400(self, gateway: Gateway, body: str,
                                           words: tuple[str, ...]) -> None:
        logged = len(gateway.logs())
        for method, path in (("POST", "/admin/tokens"), ("PATCH", "/admin/tokens/tok_x"),
                             ("POST", "/admin/tokens/tok_x/topup")):
            response = httpx.request(method, f"{gateway.url}{path}", content=body, timeout=30,
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
            assert_invalid(response, None, *words)
        assert "Traceback" not in gateway.logs()[logged:]
