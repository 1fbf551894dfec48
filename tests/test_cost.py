"""What each upstream charges the operator, recorded beside the customer's charge."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.servers import Gateway, Simulator, upstream


def test_usage_shows_cost_and_margin_by_upstream(make_gateway: Callable[..., Gateway],
                                                 simulator: Simulator) -> None:
    cost = {"per_second": {"sora-2": {"720p": "0.06"}}}
    gw = make_gateway([upstream("costed", simulator, ["official"], cost=cost),
                       upstream("uncosted", simulator, ["budget"])])
    _, official = gw.create_token(group="official")
    _, budget = gw.create_token(group="budget")
    for token in (official, budget):
        video = gw.client(token).videos.create_and_poll(prompt="cost [duration:0.2]",
                                                        seconds="8")
        assert video.status == "completed"

    with gw.admin() as admin:
        usage = admin.get("/admin/usage", params={"group_by": "upstream"}).json()
        me = gw.client(official).get("/me", cast_to=object)
    rows = {row["key"]: row for row in usage["data"]}
    # 0.10 USD/s charged, 0.06 USD/s paid to the upstream, for 8 s.
    assert (rows["costed"]["charged_usd"], rows["costed"]["cost_usd"],
            rows["costed"]["margin_usd"]) == ("0.800000", "0.480000", "0.320000")
    assert (rows["uncosted"]["cost_usd"], rows["uncosted"]["margin_usd"]) == ("0.000000",
                                                                              "0.000000")
    assert usage["total"]["cost_usd"] == "0.480000"
    # A token holder sees what it was charged, never what the operator pays.
    assert "cost_usd" not in str(me)
    assert "margin" not in str(me)
