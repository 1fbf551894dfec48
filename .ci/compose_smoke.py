"""One video through a running compose stack, as a customer and an operator see it.

Usage: python3 .ci/compose_smoke.py BASE_URL ADMIN_TOKEN
"""

from __future__ import annotations

import sys

import httpx
from openai import OpenAI


def main(base_url: str, admin_token: str) -> None:
    admin = httpx.Client(base_url=base_url, timeout=30,
                         headers={"Authorization": f"Bearer {admin_token}"})
    created = admin.post("/admin/tokens", json={"name": "compose-check", "group": "official",
                                                "billing_mode": "per_second",
                                                "balance_usd": "10"})
    created.raise_for_status()
    token = created.json()

    client = OpenAI(base_url=f"{base_url}/v1", api_key=token["token"], max_retries=2)
    video = client.videos.create_and_poll(prompt="A lighthouse at dawn", model="sora-2",
                                          seconds="4", poll_interval_ms=500)
    assert video.status == "completed", video
    content = client.videos.download_content(video.id).read()
    assert content[4:8] == b"ftyp", content[:16]

    after = admin.get(f"/admin/tokens/{token['id']}").json()
    assert after["balance_usd"] == "9.600000", after
    report = admin.get("/admin/reconcile").json()
    assert all(row["ok"] for row in report["tokens"]), report
    client.close()
    admin.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
