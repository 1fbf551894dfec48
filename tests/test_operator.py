"""Operator surfaces: CLI, usage and reconciliation reports, self-service, health, logs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.support.checks import assert_invalid
from tests.support.servers import ADMIN_TOKEN, SIM_KEY, Gateway, Simulator, upstream


def _completed_and_failed(gateway: Gateway) -> tuple[str, str]:
    token_id, token = gateway.create_token(balance_usd="5")
    client = gateway.client(token)
    tag = uuid.uuid4().hex[:8]
    client.videos.create_and_poll(prompt=f"ok {tag} [duration:0.3]", poll_interval_ms=100)
    failed = client.videos.create_and_poll(prompt=f"bad {tag} [fail] [duration:0.3]",
                                           poll_interval_ms=100)
    assert failed.status == "failed"
    return token_id, token


class TestCli:
    def test_token_lifecycle_from_the_command_line(self, gateway: Gateway) -> None:
        created = gateway.cli("tokens", "create", "--name", "cli-made", "--group", "budget",
                      "--billing-mode", "per_call", "--balance", "2.5")
        assert created.returncode == 0, created.stderr
        plaintext = next(word for word in created.stdout.split() if word.startswith("sk-"))
        listed = json.loads(gateway.cli("tokens", "list", "--format", "json").stdout)
        token = next(t for t in listed if t["name"] == "cli-made")
        assert (token["group"], token["billing_mode"], token["balance_usd"]) == (
            "budget", "per_call", "2.500000")
        assert plaintext not in gateway.cli("tokens", "list", "--format", "json").stdout

        assert gateway.cli("tokens", "topup", token["id"], "1.25").returncode == 0
        assert gateway.token(token["id"])["balance_usd"] == "3.750000"
        video = gateway.client(plaintext).videos.create(prompt="cli [never]")
        assert video.status in ("queued", "in_progress")

        assert gateway.cli("tokens", "revoke", token["id"]).returncode == 0
        response = httpx.get(f"{gateway.url}/v1/videos",
                             headers={"Authorization": f"Bearer {plaintext}"})
        assert response.status_code == 401
        gateway.assert_reconciles(token["id"])

    def test_clear_errors_for_unknown_ids_and_bad_amounts(self, gateway: Gateway) -> None:
        unknown = gateway.cli("tokens", "show", "tok_" + "0" * 24)
        bad_amount = gateway.cli("tokens", "topup", "tok_" + "0" * 24, "lots")
        bad_group = gateway.cli("usage", "--group-by", "planet")

        assert unknown.returncode != 0
        assert "No token with id" in unknown.stderr
        assert bad_amount.returncode != 0
        assert "decimal amount" in bad_amount.stderr
        assert bad_group.returncode != 0
        assert "--group-by" in bad_group.stderr
        for result in (unknown, bad_amount, bad_group):
            assert "Traceback" not in result.stderr

    def test_usage_and_jobs_commands_report_real_traffic(self, gateway: Gateway) -> None:
        token_id, _ = _completed_and_failed(gateway)

        usage = json.loads(gateway.cli("usage", "--group-by", "token", "--format",
                               "json").stdout)
        jobs = json.loads(gateway.cli("jobs", "list", "--token-id", token_id, "--format",
                              "json").stdout)
        rows = list(csv.DictReader(io.StringIO(gateway.cli("usage", "--group-by", "model",
                                                   "--format", "csv").stdout)))

        row = next(r for r in usage["data"] if r["key"] == token_id)
        assert (row["jobs"], row["completed"], row["failed"], row["seconds"]) == (2, 1, 1, 4)
        assert (row["charged_usd"], row["refunded_usd"]) == ("0.400000", "0.400000")
        assert sorted(j["settlement"] for j in jobs) == ["capture", "refund"]
        assert any(r["model"] == "sora-2" for r in rows)
        shown = gateway.cli("jobs", "show", jobs[0]["id"])
        assert "hold" in shown.stdout

    def test_unmigrated_database_is_refused_with_a_hint(self, gateway: Gateway,
                                                        tmp_path: Path) -> None:
        config = {**gateway.config, "database_url": f"sqlite+aiosqlite:///{tmp_path}/new.db"}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        before = subprocess.run([sys.executable, "-m", "gateway.cli", "tokens", "list",
                                 "--config", str(path)], capture_output=True, text=True)
        migrated = subprocess.run([sys.executable, "-m", "gateway.cli", "migrate",
                                   "--config", str(path)], capture_output=True, text=True)
        after = subprocess.run([sys.executable, "-m", "gateway.cli", "tokens", "list",
                                "--config", str(path)], capture_output=True, text=True)

        assert before.returncode != 0
        assert "gateway migrate" in before.stderr
        assert migrated.returncode == 0, migrated.stderr
        assert after.returncode == 0, after.stderr

    def test_config_error_stops_serve_naming_the_key(self, gateway: Gateway,
                                                     tmp_path: Path) -> None:
        config = {**gateway.config}
        config["upstreams"] = [{**config["upstreams"][0], "groups": ["no-such-group"]}]
        config["jobs"] = {**config["jobs"], "poll_interval_s": -1}
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(config))

        result = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config",
                                 str(path)], capture_output=True, text=True, timeout=60)

        assert result.returncode == 2
        assert "jobs.poll_interval_s" in result.stderr


class TestBillingModeOfTheGroup:
    """A token its group cannot bill is refused when issued or changed, not at every create."""

    def test_admin_api_refuses_a_billing_mode_the_group_forbids(self, gateway: Gateway) -> None:
        name = f"forbidden {uuid.uuid4().hex[:8]}"
        with gateway.admin() as admin:
            created = admin.post("/admin/tokens", json={
                "name": name, "group": "official", "billing_mode": "per_call"})
            listed = admin.get("/admin/tokens").json()["data"]

        assert_invalid(created, "billing_mode")
        assert "official" in created.json()["error"]["message"]
        assert name not in [t["name"] for t in listed]

    def test_admin_api_refuses_changes_that_leave_a_forbidden_pair(self,
                                                                   gateway: Gateway) -> None:
        per_second, _ = gateway.create_token(group="official", billing_mode="per_second")
        per_call, _ = gateway.create_token(group="budget", billing_mode="per_call")
        with gateway.admin() as admin:
            mode = admin.patch(f"/admin/tokens/{per_second}", json={"billing_mode": "per_call"})
            group = admin.patch(f"/admin/tokens/{per_call}", json={"group": "official"})
            both = admin.patch(f"/admin/tokens/{per_second}", json={
                "group": "official", "billing_mode": "per_call"})
            allowed = admin.patch(f"/admin/tokens/{per_second}", json={
                "group": "budget", "billing_mode": "per_call"})

        assert_invalid(mode, "billing_mode")
        assert_invalid(group, "group")
        assert_invalid(both, "billing_mode")
        assert gateway.token(per_call)["group"] == "budget"
        assert allowed.status_code == 200, allowed.text
        assert (allowed.json()["group"], allowed.json()["billing_mode"]) == ("budget",
                                                                              "per_call")

    def test_command_line_refuses_it_too(self, gateway: Gateway) -> None:
        name = f"cli forbidden {uuid.uuid4().hex[:8]}"
        created = gateway.cli("tokens", "create", "--name", name, "--group", "official",
                      "--billing-mode", "per_call")
        token_id, _ = gateway.create_token(group="official")
        updated = gateway.cli("tokens", "update", token_id, "--billing-mode", "per_call")

        for result in (created, updated):
            assert result.returncode != 0
            assert "per_call" in result.stderr
            assert "Traceback" not in result.stderr
        listed = json.loads(gateway.cli("tokens", "list", "--format", "json").stdout)
        assert name not in [t["name"] for t in listed]
        assert gateway.token(token_id)["billing_mode"] == "per_second"


class TestReports:
    def test_usage_api_groups_and_formats(self, gateway: Gateway) -> None:
        token_id, _ = _completed_and_failed(gateway)
        with gateway.admin() as admin:
            by_token = admin.get("/admin/usage", params={"group_by": "token",
                                                         "token_id": token_id}).json()
            by_day = admin.get("/admin/usage", params={"group_by": "day"}).json()
            as_csv = admin.get("/admin/usage", params={"group_by": "upstream",
                                                       "format": "csv"})
            empty = admin.get("/admin/usage", params={"from": "2000-01-01",
                                                      "to": "2000-01-02"}).json()
            bad = admin.get("/admin/usage", params={"group_by": "planet"})

        assert by_token["data"][0]["charged_usd"] == "0.400000"
        assert by_token["total"]["refunded_usd"] == "0.400000"
        assert by_day["data"][0]["key"].count("-") == 2
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.text.splitlines()[0].startswith("upstream,name,jobs,completed")
        assert empty["data"] == []
        assert bad.status_code == 400

    def test_reconcile_proves_the_books(self, gateway: Gateway) -> None:
        token_id, _ = _completed_and_failed(gateway)
        with gateway.admin() as admin:
            report = admin.get("/admin/reconcile").json()
        row = next(t for t in report["tokens"] if t["token_id"] == token_id)
        assert row["ok"] is True
        assert (row["topups_usd"], row["charged_usd"], row["balance_usd"]) == (
            "5.000000", "0.400000", "4.600000")


class TestSelfService:
    def test_me_and_billing_routes_show_the_tokens_own_money(self, gateway: Gateway) -> None:
        token_id, token = _completed_and_failed(gateway)
        headers = {"Authorization": f"Bearer {token}"}
        gateway.client(token).videos.create(prompt="held [never]")

        me = httpx.get(f"{gateway.url}/v1/me", headers=headers).json()
        subscription = httpx.get(f"{gateway.url}/v1/dashboard/billing/subscription",
                                 headers=headers).json()
        usage = httpx.get(f"{gateway.url}/v1/dashboard/billing/usage", headers=headers).json()

        assert (me["id"], me["balance_usd"], me["held_usd"]) == (token_id, "4.200000",
                                                                  "0.400000")
        assert me["usage_this_month"]["charged_usd"] == "0.400000"
        assert subscription["hard_limit_usd"] == 5.0
        assert usage["total_usage"] == 40.0  # US cents
        assert "key_hash" not in json.dumps(me)


class TestHealthAndLogs:
    def test_readyz_metrics_and_request_ids(self, gateway: Gateway) -> None:
        ready = httpx.get(f"{gateway.url}/readyz")
        metrics = gateway.metrics()

        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "migrations": True,
                                          "upstreams": True}
        for name in ("gateway_requests_total", "gateway_upstream_request_duration_seconds",
                     "gateway_jobs", "gateway_money_held_usd", "gateway_settlements_total",
                     "gateway_reconciler_lag_seconds"):
            assert name in metrics

    def test_no_secret_ever_reaches_a_log_line(self, gateway: Gateway,
                                               simulator: Simulator) -> None:
        _, token = _completed_and_failed(gateway)
        httpx.get(f"{gateway.url}/v1/videos", headers={"Authorization": f"Bearer {token}x"})
        httpx.get(f"{gateway.url}/admin/tokens",
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        with pytest.raises(openai.APIStatusError):  # an upstream error quoting its key
            gateway.client(token).videos.create(prompt="leak? [status:500]")
        logs = gateway.logs()

        lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        assert lines
        assert all("request_id" in line for line in lines)
        for secret in (token, ADMIN_TOKEN, SIM_KEY, "sk-upstream-secret"):
            assert secret not in logs
        assert "job ended" in logs


class TestMetricsAccess:
    """/metrics names upstreams and sums money: only the operator's scraper reads it."""

    def _refused(self, response: httpx.Response) -> None:
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error", "invalid_api_key", None)
        assert "gateway_" not in response.text

    def test_metrics_need_the_admin_token(self, gateway: Gateway) -> None:
        _, token = gateway.create_token()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token}"},
                        {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            self._refused(httpx.get(f"{gateway.url}/metrics", headers=headers))
        assert "gateway_requests_total" in gateway.metrics(ADMIN_TOKEN)

    def test_a_metrics_token_reads_metrics_and_nothing_else(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
        gw = make_gateway([upstream("primary", simulator, ["official"])],
                          metrics_token="prometheus-scrape-secret")
        assert "gateway_money_held_usd" in gw.metrics("prometheus-scrape-secret")
        assert "gateway_money_held_usd" in gw.metrics(ADMIN_TOKEN)
        self._refused(httpx.get(f"{gw.url}/metrics"))
        admin = httpx.get(f"{gw.url}/admin/tokens",
                          headers={"Authorization": "Bearer prometheus-scrape-secret"})
        assert admin.status_code == 401, admin.text

    def test_public_metrics_are_open_when_the_operator_says_so(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
        gw = make_gateway([upstream("primary", simulator, ["official"])],
                          metrics={"public": True})
        response = httpx.get(f"{gw.url}/metrics")
        assert response.status_code == 200, response.text
        assert "gateway_requests_total" in response.text


def test_operator_commands_build_no_upstream_client(gateway: Gateway) -> None:
    """A top-up (or any operator command) touches the database only: the process that runs
    it never imports the upstream pool, let alone opens a connection to a provider."""
    token_id, _ = gateway.create_token(balance_usd="1")
    probe = (
        "import sys\n"
        "from gateway.cli import app\n"
        f"app(['tokens', 'topup', {token_id!r}, '2', '--config', {str(gateway.config_path)!r}],"
        " standalone_mode=False)\n"
        "loaded = [m for m in ('gateway.upstreams.pool', 'gateway.upstreams.transport',"
        " 'gateway.jobs.tracker', 'gateway.app') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=gateway.workdir)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout
    assert gateway.token(token_id)["balance_usd"] == "3.000000"
