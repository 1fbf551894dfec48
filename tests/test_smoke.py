from __future__ import annotations

from tests.support.servers import Gateway


def test_create_poll_download_captures_the_hold(gateway: Gateway) -> None:
    token_id, token = gateway.create_token(balance_usd="2")
    client = gateway.client(token)

    video = client.videos.create_and_poll(prompt="a lighthouse [duration:0.5]",
                                          poll_interval_ms=100)

    assert video.status == "completed"
    assert video.id.startswith("video_")
    content = client.videos.download_content(video.id)
    assert content.content[4:8] == b"ftyp"
    state = gateway.token(token_id)
    assert (state["balance_usd"], state["held_usd"]) == ("1.600000", "0.000000")
    assert [e["kind"] for e in gateway.ledger(token_id)] == ["topup", "hold", "capture"]
    gateway.assert_reconciles(token_id)
