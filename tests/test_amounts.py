"""Amounts and lengths: read as plain ASCII decimals only, and kept within the money bounds.

An amount a careless operator or a hostile client writes must either be the number it looks
like or be refused: never read as another number, never passed into the database past what
its integer columns hold, and never leave a committed write answering 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy.exc import DBAPIError

from gateway.config import ConfigError, Settings, load_settings
from gateway.errors import InvalidRequest
from gateway.ledger.pricing import MAX_MICROS, MAX_USD, parse_usd
from gateway.migrate import alembic_config, upgrade
from gateway.videos.inputs import parse_seconds
from tests.support.checks import assert_invalid
from tests.support.database import execute
from tests.support.servers import Gateway, Simulator, base_config, database_url, upstream

HUGE = "999999999999"  # USD; ten of these overflowed a 64-bit balance
BOUND = f"{MAX_USD:.6f}"
NOT_PLAIN = ["1_000", "\u0663", " 4", "4 ", "04", "1e3", "1E3", "NaN", "nan", "Infinity",
             "-Infinity", "+1", "-1", ".5", "5.", "0x10", "1.0000001", "", "\u0661\u0662",
             "\uff11", "4\n", "1,5"]


# -- the one reading of an amount --------------------------------------------------------------
class TestParseUsd:
    @pytest.mark.parametrize(("text", "amount"), [
        ("0", "0"), ("0.5", "0.5"), ("12.50", "12.50"), ("10", "10"),
        ("0.000001", "0.000001"), ("1000000000", "1000000000"),
        ("999999999.999999", "999999999.999999"),
    ])
    def test_plain_decimals_are_read_as_written(self, text: str, amount: str) -> None:
        assert parse_usd(text) == Decimal(amount)

    @pytest.mark.parametrize("text", NOT_PLAIN, ids=repr)
    def test_anything_else_is_refused_not_read_as_a_number(self, text: str) -> None:
        with pytest.raises(ValueError, match="plain decimal"):
            parse_usd(text)

    @pytest.mark.parametrize(("number", "amount"), [(5, "5"), (1.25, "1.25"), (0, "0"),
                                                     (2.5e-05, None), (1e16, None),
                                                     (0.1 + 0.2, None)])
    def test_json_numbers_go_through_the_same_check(self, number: float,
                                                    amount: str | None) -> None:
        if amount is None:
            with pytest.raises(ValueError, match="plain decimal"):
                parse_usd(number)
        else:
            assert parse_usd(number) == Decimal(amount)

    @pytest.mark.parametrize("value", [True, False, None, [1], {"usd": 1}, Decimal("1E+3")])
    def test_other_types_are_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="plain decimal"):
            parse_usd(value)

    @pytest.mark.parametrize("text", ["1000000000.000001", HUGE, "9" * 30])
    def test_amounts_past_the_bound_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="at most 1000000000 USD"):
            parse_usd(text)

    def test_the_bound_is_far_inside_a_64_bit_integer(self) -> None:
        assert MAX_MICROS == int(MAX_USD * 1_000_000)
        assert 2 * MAX_MICROS < 2**63 // 1000


# -- the one reading of a length ---------------------------------------------------------------
class TestParseSeconds:
    settings = Settings()

    def read(self, value: object) -> int:
        return parse_seconds({"seconds": value}, self.settings, "sora-2")

    @pytest.mark.parametrize(("value", "seconds"), [("4", 4), ("12", 12), (8, 8)])
    def test_offered_lengths_are_read(self, value: object, seconds: int) -> None:
        assert self.read(value) == seconds

    @pytest.mark.parametrize("value", ["04", " 4", "4 ", "\u0664", "\u0661\u0662", "\uff14",
                                       "4.0", "4_0", "+4", "1_2", "", "9" * 5000, 4.0, True,
                                       None], ids=lambda value: repr(value)[:12])
    def test_anything_else_is_refused(self, value: object) -> None:
        with pytest.raises(InvalidRequest) as refused:
            self.read(value)
        assert refused.value.param == "seconds"


# -- prices the config can produce ---------------------------------------------------------
class TestConfigPrices:
    def config(self, tmp_path: Any, **changes: Any) -> Any:
        import yaml

        data = base_config([])
        data["pricing"]["per_second"]["sora-2"]["720x1280"] = changes.get("price", "0.10")
        data["groups"]["resale"]["multiplier"] = changes.get("multiplier", 1.5)
        data["seconds"] = {"default": changes.get("seconds", [4, 8, 12])}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_settings(path)

    def test_a_price_past_the_bound_stops_the_config_naming_the_key(self, tmp_path: Any) -> None:
        # 0.1 USD/s is fine; 100,000,000 USD/s x 12 s x 1.5 is past USD 1e9 for one job.
        assert self.config(tmp_path)
        with pytest.raises(ConfigError, match=r"pricing\.per_second\.sora-2\.720x1280"):
            self.config(tmp_path, price="100000000")

    def test_a_multiplier_or_length_that_makes_a_price_too_big_is_refused(
            self, tmp_path: Any) -> None:
        with pytest.raises(ConfigError, match=r"groups\.resale\.multiplier"):
            self.config(tmp_path, multiplier="1e12")
        with pytest.raises(ConfigError, match=r"pricing\.per_second\.sora-2\.720x1280"):
            self.config(tmp_path, price="10000", seconds=[4, 86400])

    @pytest.mark.parametrize("price", ["-0.10", "NaN"])
    def test_negative_or_not_a_number_prices_are_refused(self, tmp_path: Any,
                                                         price: str) -> None:
        with pytest.raises(ConfigError, match=r"pricing\.per_second\.sora-2\.720x1280"):
            self.config(tmp_path, price=price)

    @pytest.mark.parametrize("seconds", [[-4, 8], [0], [4, 86401]])
    def test_lengths_are_between_one_second_and_a_day(self, tmp_path: Any,
                                                      seconds: list[int]) -> None:
        with pytest.raises(ConfigError, match=r"seconds\.default"):
            self.config(tmp_path, seconds=seconds)


# -- the migration that adds the database's checks -------------------------------------------
class TestBoundsMigration:
    def test_rows_already_past_the_bounds_stop_it_naming_the_table(self,
                                                                   tmp_path: Any) -> None:
        url = database_url(tmp_path)
        command.upgrade(alembic_config(url), "0003")
        execute(url, "INSERT INTO tokens (id, name, \"group\", billing_mode, key_hash, key_hint, "
                     "balance_micros, held_micros, active_jobs, models, disabled, created_at) "
                     f"VALUES ('tok_over', 'over', 'official', 'per_second', 'h', 'k', "
                     f"{2 * MAX_MICROS}, 0, 0, '[]', false, 0)")

        with pytest.raises(RuntimeError, match="table tokens break funds_within_bound"):
            upgrade(url)
        execute(url, f"UPDATE tokens SET balance_micros = {MAX_MICROS}")
        upgrade(url)
        with pytest.raises(DBAPIError):
            execute(url, "UPDATE tokens SET held_micros = 1")
        command.downgrade(alembic_config(url), "0003")
        execute(url, "UPDATE tokens SET held_micros = 1")


# -- over the socket -----------------------------------------------------------------------
def tag() -> str:
    return uuid.uuid4().hex[:10]



def every_admin_route_answers(gw: Gateway) -> None:
    """What broke for everyone once one balance had overflowed."""
    with gw.admin() as admin:
        for path in ("/admin/tokens", "/admin/reconcile", "/admin/usage", "/admin/videos"):
            response = admin.get(path)
            assert response.status_code == 200, (path, response.text)
        assert admin.get("/admin/reconcile").json()["ok"] is True
    # The console signs in by listing the tokens with the admin token (above).
    assert httpx.get(f"{gw.url}/admin/ui").status_code == 200


def names(gw: Gateway) -> list[str]:
    with gw.admin() as admin:
        return [token["name"] for token in admin.get("/admin/tokens").json()["data"]]


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory,
            simulator: Simulator) -> Iterator[Gateway]:
    """A gateway of its own: a broken balance here must not break the shared one."""
    config = base_config([upstream("primary", simulator, ["official", "budget"])])
    gw = Gateway(tmp_path_factory.mktemp("bounded"), config).start()
    yield gw
    gw.stop()


class TestMoneyBounds:
    def test_ten_huge_top_ups_are_refused_and_nothing_breaks(self, bounded: Gateway) -> None:
        token_id, _ = bounded.create_token(balance_usd="0")
        with bounded.admin() as admin:
            answers = [admin.post(f"/admin/tokens/{token_id}/topup",
                                  json={"amount_usd": HUGE}) for _ in range(10)]

        for response in answers:
            assert_invalid(response, "amount_usd")
        assert bounded.token(token_id)["balance_usd"] == "0.000000"
        assert [e["kind"] for e in bounded.ledger(token_id)] == []
        every_admin_route_answers(bounded)
        bounded.assert_reconciles(token_id)

    def test_top_ups_fill_a_token_up_to_the_bound_and_no_further(self,
                                                                   bounded: Gateway) -> None:
        token_id, _ = bounded.create_token(balance_usd="0")
        with bounded.admin() as admin:
            def topup(amount: str) -> httpx.Response:
                return admin.post(f"/admin/tokens/{token_id}/topup",
                                  json={"amount_usd": amount})

            assert topup("400000000").status_code == 200
            assert topup("400000000").status_code == 200
            assert_invalid(topup("400000000"), "amount_usd")
            assert topup("200000000").status_code == 200
            assert_invalid(topup("0.000001"), "amount_usd")

        assert bounded.token(token_id)["balance_usd"] == BOUND
        assert [e["amount_usd"] for e in bounded.ledger(token_id)] == [
            "400000000.000000", "400000000.000000", "200000000.000000"]
        every_admin_route_answers(bounded)
        bounded.assert_reconciles(token_id)

    def test_held_money_counts_towards_the_bound(self, bounded: Gateway) -> None:
        token_id, token = bounded.create_token(balance_usd="999999999.6")
        video = bounded.client(token).videos.create(prompt=f"bounded {tag()} [never]")
        assert (bounded.token(token_id)["balance_usd"],
                bounded.token(token_id)["held_usd"]) == ("999999999.200000", "0.400000")
        with bounded.admin() as admin:
            past = admin.post(f"/admin/tokens/{token_id}/topup", json={"amount_usd": "0.8"})
            assert_invalid(past, "amount_usd")
            assert admin.post(f"/admin/tokens/{token_id}/topup",
                              json={"amount_usd": "0.4"}).status_code == 200

        bounded.client(token).videos.delete(video.id)
        assert bounded.token(token_id)["balance_usd"] == BOUND
        every_admin_route_answers(bounded)
        bounded.assert_reconciles(token_id)

    def test_opening_balance_is_bounded(self, bounded: Gateway) -> None:
        with bounded.admin() as admin:
            too_much = admin.post("/admin/tokens", json={
                "name": "too much", "group": "official", "balance_usd": "1000000000.000001"})
            huge = admin.post("/admin/tokens", json={
                "name": "huge", "group": "official", "balance_usd": HUGE})
        assert_invalid(too_much, "balance_usd")
        assert_invalid(huge, "balance_usd")
        assert {"too much", "huge"}.isdisjoint(names(bounded))
        token_id, _ = bounded.create_token(balance_usd=BOUND)
        assert bounded.token(token_id)["balance_usd"] == BOUND
        every_admin_route_answers(bounded)

    def test_the_command_line_refuses_the_same_amounts(self, bounded: Gateway) -> None:
        token_id, _ = bounded.create_token(balance_usd="1")
        huge = bounded.cli("tokens", "topup", token_id, HUGE)
        underscored = bounded.cli("tokens", "topup", token_id, "1_000")
        opening = bounded.cli("tokens", "create", "--name", "cli huge", "--group", "official",
                      "--balance", HUGE)
        listed = bounded.cli("tokens", "list", "--format", "json")

        for result in (huge, underscored, opening):
            assert result.returncode != 0
            assert "Traceback" not in result.stderr
        assert "at most 1000000000 USD" in huge.stderr
        assert "AMOUNT: Value error, must be a plain decimal amount" in underscored.stderr
        assert "--balance: Value error, must be at most" in opening.stderr
        assert listed.returncode == 0, listed.stderr
        assert "cli huge" not in names(bounded)
        assert bounded.token(token_id)["balance_usd"] == "1.000000"
        bounded.assert_reconciles(token_id)

    @pytest.mark.parametrize("amount", ["1_000", "\u0663", " 4", "1e3", "NaN", "Infinity",
                                        "04.5", True])
    def test_admin_api_refuses_amounts_that_are_not_plain_decimals(
            self, bounded: Gateway, amount: object) -> None:
        token_id, _ = bounded.create_token(balance_usd="2")
        with bounded.admin() as admin:
            topup = admin.post(f"/admin/tokens/{token_id}/topup", json={"amount_usd": amount})
            created = admin.post("/admin/tokens", json={"name": "plain", "group": "official",
                                                        "balance_usd": amount})
        assert_invalid(topup, "amount_usd")
        assert_invalid(created, "balance_usd")
        assert bounded.token(token_id)["balance_usd"] == "2.000000"
        bounded.assert_reconciles(token_id)

    def test_json_numbers_are_still_accepted(self, bounded: Gateway) -> None:
        token_id, _ = bounded.create_token(balance_usd=2)
        with bounded.admin() as admin:
            response = admin.post(f"/admin/tokens/{token_id}/topup", json={"amount_usd": 1.25})
        assert response.status_code == 200, response.text
        assert response.json()["balance_usd"] == "3.250000"
        bounded.assert_reconciles(token_id)

    def test_the_database_itself_refuses_money_past_the_bound(self, bounded: Gateway) -> None:
        token_id, token = bounded.create_token(balance_usd="1")
        video = bounded.client(token).videos.create(prompt=f"checked {tag()} [never]")
        url = bounded.config["database_url"]
        beyond = MAX_MICROS + 1
        statements = [
            f"UPDATE tokens SET balance_micros = {beyond} WHERE id = '{token_id}'",
            f"UPDATE tokens SET held_micros = {beyond} WHERE id = '{token_id}'",
            # What ten huge top-ups did on SQLite: the sum silently became a REAL.
            f"UPDATE tokens SET balance_micros = balance_micros + {2**63 - 1} "
            f"WHERE id = '{token_id}'",
            f"UPDATE jobs SET price_micros = {beyond} WHERE id = '{video.id}'",
            f"UPDATE jobs SET price_micros = -1 WHERE id = '{video.id}'",
            f"UPDATE ledger SET amount_micros = {beyond} WHERE token_id = '{token_id}'",
            f"UPDATE ledger SET amount_micros = -1 WHERE token_id = '{token_id}'",
        ]
        for statement in statements:
            # A CHECK refuses it; PostgreSQL refuses the overflowing sum even before that.
            with pytest.raises(DBAPIError):
                execute(url, statement)
        assert bounded.token(token_id)["balance_usd"] == "0.600000"
        every_admin_route_answers(bounded)
        bounded.assert_reconciles(token_id)


class TestSecondsOverTheSocket:
    @pytest.mark.parametrize("seconds", ["04", " 4", "\u0664", "4.0", "1_2", "\uff14"])
    def test_seconds_that_only_look_like_a_length_are_refused_before_any_charge(
            self, gateway: Gateway, simulator: Simulator, seconds: str) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        headers = {"Authorization": f"Bearer {token}"}
        prompt = f"seconds {tag()} [never]"
        as_form = httpx.post(f"{gateway.url}/v1/videos", headers=headers,
                             files={"prompt": (None, prompt), "seconds": (None, seconds)})
        as_json = httpx.post(f"{gateway.url}/v1/videos", headers=headers,
                             json={"prompt": prompt, "seconds": seconds})

        assert_invalid(as_form, "seconds")
        assert_invalid(as_json, "seconds")
        assert simulator.stats()["creates"] == creates
        assert gateway.token(token_id)["balance_usd"] == "2.000000"
        assert [e["kind"] for e in gateway.ledger(token_id)] == ["topup"]
