"""The operator console at /admin/ui: its assets, its admin content route, and a real browser.

The browser tests drive Debian's Chromium through Playwright against the shared gateway; they
skip only when Chromium or the Playwright package is not installed on the machine.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gateway.simulator import expected_content
from tests.conftest import wait_for
from tests.support.browser import chromium
from tests.support.servers import ADMIN_TOKEN, Gateway, Simulator

try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests skip (tests.support.browser)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

CONTENT_SIZE = 4096
WEBHOOK_URL = "https://93.184.215.14/hooks"
ASSET_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def upstream_id_for(simulator: Simulator, prompt: str) -> str:
    matches = [job_id for job_id, job in simulator.stats()["jobs"].items()
               if job["prompt"] == prompt]
    assert len(matches) == 1, matches
    return matches[0]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


# -- the page and its assets, over plain HTTP ------------------------------------------------


class TestConsoleAssets:
    @pytest.mark.parametrize("path", ["/admin/ui", "/admin/ui/"])
    def test_page_loads_without_credentials(self, gateway: Gateway, path: str) -> None:
        response = httpx.get(gateway.url + path)

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "<title>Video Gateway console</title>" in response.text
        assert 'src="/admin/ui/static/console.js"' in response.text
        assert 'href="/admin/ui/static/console.css"' in response.text
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"

    def test_page_references_no_outside_resources(self, gateway: Gateway) -> None:
        for name in ASSET_TYPES:
            text = httpx.get(f"{gateway.url}/admin/ui/static/{name}").text
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text.replace(
                "http://www.w3.org/2000/svg", "")), name

    @pytest.mark.parametrize(("name", "content_type"), list(ASSET_TYPES.items()))
    def test_static_files_are_served_with_their_content_types(
            self, gateway: Gateway, name: str, content_type: str) -> None:
        response = httpx.get(f"{gateway.url}/admin/ui/static/{name}")

        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        source = Path(__file__).parents[1] / "gateway" / "console" / "static" / name
        assert response.content == source.read_bytes()

    @pytest.mark.parametrize("name", ["app.py", "secrets.txt", "..%2Fendpoints.py",
                                      "console.js.map"])
    def test_names_outside_the_whitelist_are_not_found(self, gateway: Gateway,
                                                       name: str) -> None:
        response = httpx.get(f"{gateway.url}/admin/ui/static/{name}")

        assert_error(response, 404, "not_found")


# -- the admin content route the previews use ------------------------------------------------


class TestAdminContentRoute:
    def test_needs_the_admin_token(self, gateway: Gateway) -> None:
        _, token = gateway.create_token(balance_usd="1")
        video = gateway.client(token).videos.create_and_poll(
            prompt=f"auth {uuid.uuid4()} [duration:0.3] [size:{CONTENT_SIZE}]",
            poll_interval_ms=100)
        assert video.status == "completed"
        url = f"{gateway.url}/admin/videos/{video.id}/content"

        for headers in ({}, {"Authorization": f"Bearer {token}"},
                        {"Authorization": "Bearer admin-wrong"}):
            response = httpx.get(url, headers=headers)
            assert_error(response, 401, "invalid_api_key")
            assert response.json()["error"]["type"] == "invalid_request_error"

    def test_streams_the_same_bytes_as_the_public_route(
            self, gateway: Gateway, simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        prompt = f"same bytes {uuid.uuid4()} [duration:0.3] [size:{CONTENT_SIZE}]"
        video = gateway.client(token).videos.create_and_poll(prompt=prompt, poll_interval_ms=100)
        assert video.status == "completed"
        expected = expected_content(upstream_id_for(simulator, prompt), CONTENT_SIZE)

        with gateway.admin() as admin:
            whole = admin.get(f"/admin/videos/{video.id}/content")
            ranged = admin.get(f"/admin/videos/{video.id}/content",
                               params={"variant": "video"}, headers={"Range": "bytes=100-199"})
            bad_variant = admin.get(f"/admin/videos/{video.id}/content",
                                    params={"variant": "poster"})
        public = gateway.client(token).videos.download_content(video.id)

        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.content == expected == public.content
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 100-199/{CONTENT_SIZE}"
        assert ranged.content == expected[100:200]
        assert_error(bad_variant, 400, "invalid_value")
        state = gateway.token(token_id)
        assert (state["balance_usd"], state["held_usd"]) == ("0.600000", "0.000000")
        gateway.assert_reconciles(token_id)

    def test_unfinished_and_failed_videos_are_not_ready(
            self, gateway: Gateway, simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        pending_prompt = f"pending {uuid.uuid4()} [never]"
        pending = client.videos.create(prompt=pending_prompt)
        failed = client.videos.create_and_poll(prompt=f"broken {uuid.uuid4()} [duration:0.3] "
                                               "[fail]", poll_interval_ms=100)
        assert failed.status == "failed"

        with gateway.admin() as admin:
            for video_id in (pending.id, failed.id):
                error = assert_error(admin.get(f"/admin/videos/{video_id}/content"), 409,
                                     "video_not_ready")
                assert error["type"] == "invalid_request_error"
            unknown = admin.get("/admin/videos/video_doesnotexist/content")
        assert_error(unknown, 404, "not_found")

        simulator.finish(upstream_id_for(simulator, pending_prompt), "failed")
        wait_for(lambda: client.videos.retrieve(pending.id).status == "failed")
        state = gateway.token(token_id)
        assert (state["balance_usd"], state["held_usd"]) == ("1.000000", "0.000000")
        gateway.assert_reconciles(token_id)


# -- the console in a real browser -----------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """A token with one completed and one failed job, made through the SDK."""

    token_id: str
    token_name: str
    completed_id: str
    completed_upstream_id: str
    failed_id: str
    day: str


@pytest.fixture(scope="module")
def traffic(gateway: Gateway, simulator: Simulator) -> Traffic:
    name = f"console-{uuid.uuid4().hex[:8]}"
    token_id, token = gateway.create_token(name=name, balance_usd="2")
    client = gateway.client(token)
    prompt = f"console preview {uuid.uuid4()} [duration:0.3] [size:{CONTENT_SIZE}]"
    completed = client.videos.create_and_poll(prompt=prompt, poll_interval_ms=100)
    failed = client.videos.create_and_poll(prompt=f"console failure {uuid.uuid4()} "
                                           "[duration:0.3] [fail]", poll_interval_ms=100)
    assert (completed.status, failed.status) == ("completed", "failed")
    state = gateway.token(token_id)
    assert (state["balance_usd"], state["held_usd"]) == ("1.600000", "0.000000")
    day = datetime.fromtimestamp(completed.created_at, UTC).strftime("%Y-%m-%d")
    return Traffic(token_id=token_id, token_name=name, completed_id=completed.id,
                   completed_upstream_id=upstream_id_for(simulator, prompt),
                   failed_id=failed.id, day=day)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@contextmanager
def console_tab(browser: Browser, gateway: Gateway, width: int = 1400) -> Iterator[Page]:
    """A fresh tab (own session storage) on the console; fails on script or CSP errors."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    tab.on("console", on_console)
    tab.goto(f"{gateway.url}/admin/ui")
    yield tab
    context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Page]:
    with console_tab(browser, gateway) as tab:
        yield tab


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.fill("#admin-token", token)
    page.click("#signin-form button[type=submit]")


def signed_in(page: Page) -> None:
    sign_in(page)
    expect(page.locator("#tokens-view")).to_be_visible()


class TestConsoleSignIn:
    def test_wrong_admin_token_shows_the_api_error(self, page: Page, gateway: Gateway) -> None:
        api_message = httpx.get(f"{gateway.url}/admin/tokens",
                                headers={"Authorization": "Bearer admin-wrong"}
                                ).json()["error"]["message"]

        sign_in(page, "admin-wrong")

        expect(page.locator("#signin-error")).to_have_text(api_message)
        expect(page.locator("#signin-view")).to_be_visible()
        expect(page.locator("#tabs")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0

    def test_admin_token_signs_in_survives_reload_and_signs_out(self, page: Page) -> None:
        signed_in(page)
        expect(page.locator("#signin-error")).to_be_hidden()
        assert page.evaluate("Object.values(sessionStorage)") == [ADMIN_TOKEN]

        page.reload()
        expect(page.locator("#tokens-view")).to_be_visible()
        expect(page.locator("#signin-view")).to_be_hidden()

        page.click("#sign-out")
        expect(page.locator("#signin-view")).to_be_visible()
        expect(page.locator("#tokens-view")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0


class TestConsoleTokens:
    def test_create_shows_plaintext_once_then_top_up_and_revoke(
            self, page: Page, gateway: Gateway) -> None:
        signed_in(page)
        name = f"ui-{uuid.uuid4().hex[:8]}"
        form = page.locator("#create-form")
        form.locator("[name=name]").fill(name)
        form.locator("[name=group]").fill("official")
        form.locator("[name=billing_mode]").select_option("per_second")
        form.locator("[name=balance_usd]").fill("1.5")
        form.locator("button[type=submit]").click()

        secret = page.locator("#new-token-value")
        expect(page.locator("#new-token")).to_be_visible()
        expect(secret).to_have_text(re.compile(r"^sk-\S{20,}$"))
        plaintext = secret.inner_text()
        row = page.locator("#tokens-table tbody tr", has_text=name)
        expect(row).to_have_count(1)
        token_id = row.get_attribute("data-token-id")
        assert token_id is not None
        expect(row.locator(".balance")).to_have_text("1.500000")
        expect(row.locator(".state")).to_have_text("active")
        me = httpx.get(f"{gateway.url}/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
        assert me.status_code == 200
        assert (me.json()["id"], me.json()["name"]) == (token_id, name)
        assert gateway.token(token_id)["balance_usd"] == "1.500000"

        page.click("#dismiss-token")
        expect(page.locator("#new-token")).to_be_hidden()
        assert plaintext not in page.content()

        expect(row.locator(".webhook")).to_have_text("\u2013")  # the console's "none"
        # A public address needs no DNS, and this token makes no job: nothing is sent to it.
        with gateway.admin() as admin:
            admin.patch(f"/admin/tokens/{token_id}", json={"webhook_url": WEBHOOK_URL})
        row.locator("[name=amount_usd]").fill("2.25")
        row.locator("[name=note]").fill("console top-up")
        row.get_by_role("button", name="Top up").click()
        expect(row.locator(".balance")).to_have_text("3.750000")
        expect(row.locator(".webhook")).to_have_text(WEBHOOK_URL)
        assert gateway.token(token_id)["balance_usd"] == "3.750000"
        ledger = gateway.ledger(token_id)
        assert [(e["kind"], e["amount_usd"]) for e in ledger] == [
            ("topup", "1.500000"), ("topup", "2.250000")]
        assert ledger[1]["note"] == "console top-up"

        questions: list[str] = []

        def answer(dialog: Dialog, accept: bool) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, accept=False))
        row.get_by_role("button", name="Revoke").click()
        expect(row.locator(".state")).to_have_text("active")
        assert len(questions) == 1
        assert gateway.token(token_id)["revoked"] is False

        page.once("dialog", lambda dialog: answer(dialog, accept=True))
        row.get_by_role("button", name="Revoke").click()
        expect(row.locator(".state")).to_have_text("revoked")
        assert len(questions) == 2
        assert all(f"Revoke token {name} ({token_id})?" in q for q in questions), questions
        expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
        assert gateway.token(token_id)["revoked"] is True
        me = httpx.get(f"{gateway.url}/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
        assert_error(me, 401, "invalid_api_key")
        gateway.assert_reconciles(token_id)

    def test_api_rejection_shows_in_the_notice(self, page: Page, gateway: Gateway) -> None:
        signed_in(page)
        name = f"ui-bad-{uuid.uuid4().hex[:8]}"
        form = page.locator("#create-form")
        form.locator("[name=name]").fill(name)
        form.locator("[name=group]").fill("no-such-group")
        form.locator("button[type=submit]").click()

        expect(page.locator("#notice")).to_contain_text("Unknown group 'no-such-group'")
        expect(page.locator("#new-token")).to_be_hidden()
        expect(page.locator("#tokens-table tbody tr", has_text=name)).to_have_count(0)
        with gateway.admin() as admin:
            names = [token["name"] for token in admin.get("/admin/tokens").json()["data"]]
        assert name not in names


class TestConsoleJobs:
    def test_filters_list_the_tokens_jobs_and_preview_plays_the_content(
            self, page: Page, traffic: Traffic) -> None:
        signed_in(page)
        page.click("[data-tab=jobs]")
        page.fill("#jobs-filter [name=token_id]", traffic.token_id)
        page.click("#jobs-filter button[type=submit]")

        rows = page.locator("#jobs-table tbody tr")
        expect(rows).to_have_count(2)
        completed = page.locator(f"tr[data-video-id='{traffic.completed_id}']")
        failed = page.locator(f"tr[data-video-id='{traffic.failed_id}']")
        expect(completed.locator(".status")).to_have_text("completed")
        expect(failed.locator(".status")).to_have_text("failed")
        expect(failed).to_contain_text("upstream_failed")
        expect(failed).to_contain_text("refund")
        expect(failed.get_by_role("button", name="Preview")).to_have_count(0)
        expect(completed).to_contain_text("capture")
        expect(completed).to_contain_text("0.400000")

        page.select_option("#jobs-filter [name=status]", "failed")
        page.click("#jobs-filter button[type=submit]")
        expect(rows).to_have_count(1)
        expect(failed).to_have_count(1)

        page.select_option("#jobs-filter [name=status]", "completed")
        page.click("#jobs-filter button[type=submit]")
        expect(rows).to_have_count(1)
        completed.get_by_role("button", name="Preview").click()

        video = page.locator(f"video[data-video-id='{traffic.completed_id}']")
        expect(video).to_have_attribute("src", re.compile(r"^blob:"))
        played = page.evaluate(
            """async (selector) => {
                const source = document.querySelector(selector).src;
                const buffer = await (await fetch(source)).arrayBuffer();
                return Array.from(new Uint8Array(buffer));
            }""", f"video[data-video-id='{traffic.completed_id}']")
        assert bytes(played) == expected_content(traffic.completed_upstream_id, CONTENT_SIZE)


class TestConsoleLayout:
    # The narrowest common laptop window; every column, the preview button included, must be
    # on screen without scrolling sideways.
    WIDTH = 1280

    def test_jobs_table_fits_the_window_with_long_prompts_and_errors(
            self, browser: Browser, gateway: Gateway, tmp_path: Path) -> None:
        token_id, token = gateway.create_token(name=f"layout-{uuid.uuid4().hex[:8]}")
        client = gateway.client(token)
        unbroken = "https://example.com/" + "x" * 150  # no space to break at
        client.videos.create_and_poll(prompt=f"{'A lighthouse at dawn, ' * 40}{unbroken} "
                                             "[duration:0.3]", poll_interval_ms=100)
        client.videos.create_and_poll(prompt="fails [duration:0.3] [fail]", poll_interval_ms=100)

        with console_tab(browser, gateway, width=self.WIDTH) as tab:
            signed_in(tab)
            tab.click("[data-tab=jobs]")
            tab.fill("#jobs-filter [name=token_id]", token_id)
            tab.click("#jobs-filter button[type=submit]")
            expect(tab.locator("#jobs-table tbody tr")).to_have_count(2)
            tab.screenshot(path=str(tmp_path / "jobs-1280.png"), full_page=True)
            layout = tab.evaluate("""() => {
                const table = document.querySelector("#jobs-table");
                const box = (e) => e.getBoundingClientRect();
                return {
                    viewport: window.innerWidth,
                    page: document.documentElement.scrollWidth,
                    rights: [...table.rows].map((row) => box(row.lastElementChild).right),
                    prompts: [...table.querySelectorAll("td.detail")].map((td) => box(td)),
                    rows: [...table.tBodies[0].rows].map((row) => box(row).height),
                };
            }""")
            preview = tab.get_by_role("button", name="Preview")
            expect(preview).to_be_in_viewport()

        assert layout["page"] <= layout["viewport"], layout
        assert max(layout["rights"]) <= layout["viewport"], layout
        for prompt in layout["prompts"]:
            assert prompt["right"] <= layout["viewport"]
            assert prompt["width"] >= 200, "the prompt column is squeezed to nothing"
        assert max(layout["rows"]) < 120, "a long prompt is clamped, not shown whole"


class TestConsoleUsage:
    def test_chart_and_table_show_the_charged_amounts(
            self, page: Page, gateway: Gateway, traffic: Traffic) -> None:
        signed_in(page)
        page.click("[data-tab=usage]")
        page.fill("#usage-form [name=from]", traffic.day)
        page.fill("#usage-form [name=to]", traffic.day)
        page.select_option("#usage-form [name=group_by]", "token")
        page.click("#usage-form button[type=submit]")

        row = page.locator(f"#usage-table tbody tr[data-key='{traffic.token_id}']")
        expect(row).to_have_count(1)
        cells = row.locator("td")
        # cost and margin are 0: the test upstream has no cost table
        expect(cells).to_have_text([traffic.token_id, traffic.token_name, "2", "1", "1", "4",
                                    "0.400000", "0.400000", "0.000000", "0.000000", "0.000000"])
        expect(page.locator("#usage-key")).to_have_text("token")

        day_bar = page.locator(f"#chart-day svg rect.bar[data-label='{traffic.day}']")
        expect(day_bar).to_have_count(1)
        expect(page.locator("#chart-day svg rect.bar")).to_have_count(1)
        assert Decimal(day_bar.get_attribute("data-value") or "0") >= Decimal("0.4")
        assert float(day_bar.get_attribute("height") or "0") > 0
        model_bar = page.locator("#chart-model svg rect.bar[data-label='sora-2']")
        expect(model_bar).to_have_count(1)
        assert Decimal(model_bar.get_attribute("data-value") or "0") >= Decimal("0.4")
        bars = page.locator("#chart-model svg rect.bar")
        heights = [float(bars.nth(i).get_attribute("height") or "0") for i in range(bars.count())]
        assert max(heights) == 160  # the largest bar fills the plot
        next_day = datetime.strptime(traffic.day, "%Y-%m-%d") + timedelta(days=1)
        with gateway.admin() as admin:
            by_model = admin.get("/admin/usage", params={
                "group_by": "model", "from": traffic.day,
                "to": next_day.strftime("%Y-%m-%d")}).json()
        labels = [bars.nth(i).get_attribute("data-label") for i in range(bars.count())]
        assert labels == [row["key"] for row in by_model["data"]]

        page.select_option("#usage-form [name=group_by]", "model")
        page.click("#usage-form button[type=submit]")
        expect(page.locator("#usage-key")).to_have_text("model")
        expect(page.locator("#usage-table tbody tr[data-key='sora-2']")).to_have_count(1)

        page.fill("#usage-form [name=from]", next_day.strftime("%Y-%m-%d"))
        page.fill("#usage-form [name=to]", next_day.strftime("%Y-%m-%d"))
        page.click("#usage-form button[type=submit]")
        expect(page.locator("#usage-table tbody tr")).to_have_count(0)
        expect(page.locator("#chart-day .empty")).to_have_text("No jobs in this range.")
        expect(page.locator("#chart-day svg")).to_have_count(0)
        gateway.assert_reconciles(traffic.token_id)
