"""Edits, extensions and characters: billed and routed like the SPEC says."""

from __future__ import annotations

import io
import uuid

import httpx
import openai
import pytest

from tests.support.media import image_bytes, mp4
from tests.support.servers import Gateway, Simulator

MP4 = mp4(4.0, padding=2048)


def _completed(gateway: Gateway, token: str) -> str:
    client = gateway.client(token)
    video = client.videos.create_and_poll(prompt=f"source {uuid.uuid4()} [duration:0.3]",
                                          model="sora-2-pro", size="1280x720", seconds="8",
                                          poll_interval_ms=100)
    assert video.status == "completed"
    return video.id


def _upstream_id(simulator: Simulator, prompt: str) -> str:
    return next(uid for uid, job in simulator.stats()["jobs"].items() if job["prompt"] == prompt)


class TestEditsAndExtensions:
    def test_edit_by_id_goes_to_the_source_upstream_and_bills_like_the_source(
            self, gateway: Gateway, simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        source = _completed(gateway, token)
        prompt = f"edit {uuid.uuid4()}"

        response = httpx.post(f"{gateway.url}/v1/videos/edits",
                              headers={"Authorization": f"Bearer {token}"},
                              json={"prompt": prompt, "video": {"id": source},
                                    "seconds": "4"})  # an edit is as long as its source

        assert response.status_code == 200, response.text
        video = response.json()
        assert video["id"].startswith("video_")
        assert (video["model"], video["size"], video["seconds"]) == ("sora-2-pro", "1280x720", "8")
        derived = next(d for d in simulator.stats()["derived"]
                       if d["new_id"] == _upstream_id(simulator, prompt))
        source_prompt = gateway.client(token).videos.retrieve(source).prompt
        assert derived["source_id"] == _upstream_id(simulator, source_prompt)
        assert gateway.token(token_id)["held_usd"] == "2.400000"
        gateway.assert_reconciles(token_id)

    def test_extension_is_billed_by_its_own_seconds(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        source = _completed(gateway, token)

        response = httpx.post(f"{gateway.url}/v1/videos/extensions",
                              headers={"Authorization": f"Bearer {token}"},
                              files={"unused": ("", b"")},
                              data={"prompt": "longer", "seconds": "4", "video[id]": source})

        assert response.status_code == 200, response.text
        assert gateway.token(token_id)["held_usd"] == "1.200000"
        gateway.assert_reconciles(token_id)

    def test_extension_needs_seconds_the_model_offers(self, gateway: Gateway) -> None:
        _, token = gateway.create_token(balance_usd="10")
        source = _completed(gateway, token)
        response = httpx.post(f"{gateway.url}/v1/videos/extensions",
                              headers={"Authorization": f"Bearer {token}"},
                              json={"prompt": "longer", "seconds": "7", "video": {"id": source}})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "seconds"

    def test_edit_of_an_uploaded_video_through_the_sdk(self, gateway: Gateway,
                                                       simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        prompt = f"upload edit {uuid.uuid4()}"

        video = gateway.client(token).videos.edit(
            prompt=prompt, video=("clip.mp4", io.BytesIO(MP4), "video/mp4"))

        assert video.status == "queued"
        derived = next(d for d in simulator.stats()["derived"]
                       if d["new_id"] == _upstream_id(simulator, prompt))
        assert derived["upload_bytes"] == len(MP4)
        assert gateway.token(token_id)["held_usd"] == "0.400000"
        gateway.assert_reconciles(token_id)

    def test_an_uploaded_video_is_billed_by_its_own_length(self, gateway: Gateway,
                                                           simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        clip = mp4(8.0, padding=64 * 1024)
        prompt = f"long upload {uuid.uuid4()}"

        client = gateway.client(token)
        video = client.videos.edit(  # the SDK sends no seconds: "4" by default
            prompt=prompt, video=("clip.mp4", io.BytesIO(clip), "video/mp4"))
        assert client.videos.poll(video.id, poll_interval_ms=100).status == "completed"

        assert video.seconds == "8"
        assert [(entry["kind"], entry["amount_usd"]) for entry in gateway.ledger(token_id)
                if entry["job_id"] == video.id] == [("hold", "0.800000"), ("capture", "0.800000")]
        derived = next(d for d in simulator.stats()["derived"]
                       if d["new_id"] == _upstream_id(simulator, prompt))
        assert derived["upload_bytes"] == len(clip)
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("length", "billed"), [(0.5, "4"), (4.05, "4"), (4.5, "8"),
                                                    (11.9, "12")])
    def test_a_clip_is_billed_as_the_shortest_offered_length_it_fits(
            self, gateway: Gateway, length: float, billed: str) -> None:
        _, token = gateway.create_token(balance_usd="5")
        response = httpx.post(f"{gateway.url}/v1/videos/edits",
                              headers={"Authorization": f"Bearer {token}"},
                              data={"prompt": "fit", "seconds": "4"},
                              files={"video": ("clip.mp4", mp4(length), "video/mp4")})
        assert response.status_code == 200, response.text
        assert response.json()["seconds"] == billed

    def test_a_movie_header_shorter_than_its_track_does_not_lower_the_price(
            self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        gateway.client(token).videos.edit(
            prompt="header lies", video=("clip.mp4", mp4(1.0, track_seconds=12.0), "video/mp4"))
        assert gateway.token(token_id)["held_usd"] == "1.200000"

    def test_an_upload_longer_than_the_model_offers_is_400(self, gateway: Gateway,
                                                           simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        derived = len(simulator.stats()["derived"])
        with pytest.raises(openai.BadRequestError) as refused:
            gateway.client(token).videos.edit(
                prompt="too long", video=("clip.mp4", io.BytesIO(mp4(12.5)), "video/mp4"))
        assert (refused.value.code, refused.value.param) == ("invalid_value", "video")
        assert "12.50 s" in refused.value.message
        assert len(simulator.stats()["derived"]) == derived
        assert gateway.token(token_id)["held_usd"] == "0.000000"
        assert [entry["kind"] for entry in gateway.ledger(token_id)] == ["topup"]

    @pytest.mark.parametrize(("route", "data"), [
        ("edits", {"prompt": "not a video"}),
        ("extensions", {"prompt": "not a video", "seconds": "4"}),
        ("characters", {"name": "Ada"}),
    ])
    @pytest.mark.parametrize("upload", [
        b"just some text, no container at all",
        MP4[:24] + b"\x00" * 4096,  # an ftyp box and nothing a player could play
        image_bytes(64, 64, "PNG"),
    ], ids=["text", "ftyp_only", "png"])
    def test_an_upload_that_is_not_a_video_is_400(self, gateway: Gateway, simulator: Simulator,
                                                  route: str, data: dict[str, str],
                                                  upload: bytes) -> None:
        token_id, token = gateway.create_token(balance_usd="5")
        before = simulator.stats()
        response = httpx.post(f"{gateway.url}/v1/videos/{route}", data=data,
                              headers={"Authorization": f"Bearer {token}"},
                              files={"video": ("clip.mp4", upload, "video/mp4")})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "video"), error
        after = simulator.stats()
        assert (len(after["derived"]), len(after["characters"])) == (
            len(before["derived"]), len(before["characters"]))
        assert [entry["kind"] for entry in gateway.ledger(token_id)] == ["topup"]

    def test_another_tokens_video_cannot_be_edited(self, gateway: Gateway) -> None:
        _, owner = gateway.create_token(balance_usd="10")
        _, other = gateway.create_token(balance_usd="10")
        source = _completed(gateway, owner)
        response = httpx.post(f"{gateway.url}/v1/videos/edits",
                              headers={"Authorization": f"Bearer {other}"},
                              json={"prompt": "steal", "video": {"id": source}})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestCharacters:
    def test_create_and_get_a_character_without_charge(self, gateway: Gateway,
                                                       simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)

        created = client.videos.create_character(
            name="Ada", video=("ada.mp4", io.BytesIO(MP4), "video/mp4"))
        fetched = client.videos.get_character(created.id)

        assert created.id
        assert created.id.startswith("char_")
        assert (fetched.id, fetched.name) == (created.id, "Ada")
        assert not any(created.id in key for key in simulator.stats()["characters"])
        assert gateway.token(token_id)["balance_usd"] == "1.000000"

    def test_a_name_too_long_to_store_is_refused_before_the_upstream_is_asked(
            self, gateway: Gateway, simulator: Simulator) -> None:
        _, token = gateway.create_token()
        before = len(simulator.stats()["characters"])
        with pytest.raises(openai.BadRequestError) as refused:
            gateway.client(token).videos.create_character(
                name="A" * 201, video=("ada.mp4", io.BytesIO(MP4), "video/mp4"))
        assert refused.value.body["param"] == "name"  # type: ignore[index]
        assert len(simulator.stats()["characters"]) == before

    def test_characters_are_private_to_their_token(self, gateway: Gateway) -> None:
        _, owner = gateway.create_token()
        _, other = gateway.create_token()
        created = gateway.client(owner).videos.create_character(
            name="Ada", video=("ada.mp4", io.BytesIO(MP4), "video/mp4"))
        with pytest.raises(openai.NotFoundError):
            gateway.client(other).videos.get_character(created.id)
