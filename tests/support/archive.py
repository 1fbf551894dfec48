"""The archive as tests see it: a gateway's archive config for either backend, its archive
state as the operator reads it, and the blobs behind it."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_for
from tests.support.s3 import S3Server
from tests.support.servers import SIM_KEY, Gateway, Simulator

# Retries come quickly and the sweeper looks often, so the tests do not wait on defaults.
FAST = {"retry_after_s": 0.2, "retry_max_s": 1.0, "sweep_every_s": 0.5}


def archive_config(backend: str, s3: S3Server | None = None, **extra: Any) -> dict[str, Any]:
    """``archive:`` for ``backend``; on s3 under a prefix of its own, so tests sharing the
    bucket never see each other's objects."""
    config: dict[str, Any] = {"backend": backend, **FAST, **extra}
    if backend == "s3":
        assert s3 is not None
        config["s3"] = {"endpoint_url": s3.endpoint_url, "bucket": s3.bucket,
                        "region": s3.region, "access_key": s3.access_key,
                        "secret_key": s3.secret_key, "prefix": f"t-{uuid.uuid4().hex[:10]}"}
    return config


def admin_view(gw: Gateway, video_id: str) -> dict[str, Any]:
    with gw.admin() as admin:
        response = admin.get(f"/admin/videos/{video_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_archive_state(gw: Gateway, video_id: str, state: str = "stored",
                       timeout: float = 20) -> dict[str, Any]:
    """The video's admin view once its archive state is ``state``."""
    found: dict[str, Any] = wait_for(
        lambda: (view := admin_view(gw, video_id))["archive_state"] == state and view,
        timeout=timeout)
    return found


def upstream_asset(sim: Simulator, upstream_id: str, variant: str) -> bytes:
    """An asset as the upstream serves it (the OpenAI-format simulator's content route)."""
    response = httpx.get(f"{sim.base_url}/videos/{upstream_id}/content",
                         params={"variant": variant},
                         headers={"Authorization": f"Bearer {SIM_KEY}"})
    assert response.status_code == 200, response.text
    return response.content


def forget_upstream(sim: Simulator, upstream_id: str) -> None:
    """The upstream deletes the job: every link to its assets is dead from now on."""
    httpx.delete(f"{sim.base_url}/videos/{upstream_id}",
                 headers={"Authorization": f"Bearer {SIM_KEY}"}).raise_for_status()


def quoted_sha256(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def blob_names(gw: Gateway, s3: S3Server | None) -> list[str]:
    """Every object the gateway's archive holds, as the backend itself lists it."""
    config = gw.config["archive"]
    if config["backend"] == "s3":
        assert s3 is not None
        client = s3.client()
        try:
            listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=config["s3"]["prefix"])
        finally:
            client.close()
        prefix = f"{config['s3']['prefix']}/"
        return sorted(item["Key"].removeprefix(prefix) for item in listed.get("Contents", []))
    # The local store keeps the bytes of key K at <dir>/data/K.
    root = gw.workdir / config.get("dir", "archive") / "data"
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*")
                  if path.is_file())


def remove_blob(gw: Gateway, s3: S3Server | None, key: str) -> None:
    """Deletes one of the archive's blobs behind the gateway's back, as an operator's script
    or a lifecycle rule might: the gateway's records still say it is stored."""
    config = gw.config["archive"]
    if config["backend"] == "s3":
        assert s3 is not None
        client = s3.client()
        try:
            client.delete_object(Bucket=s3.bucket, Key=f"{config['s3']['prefix']}/{key}")
        finally:
            client.close()
        return
    (gw.workdir / config.get("dir", "archive") / "data" / key).unlink()


@dataclass
class Archived:
    gw: Gateway
    sim: Simulator
    s3: S3Server | None

    def token(self, group: str = "official") -> str:
        return self.gw.create_token(group=group)[1]

    def finished(self, prompt: str, token: str | None = None) -> tuple[str, str, str]:
        """A completed video with ``prompt``: its id, its upstream id and the token."""
        token = token or self.token()
        video = self.gw.client(token).videos.create_and_poll(prompt=prompt,
                                                             poll_interval_ms=100)
        assert video.status == "completed"
        return video.id, self.sim.job_for(prompt)[0], token

    def content(self, video_id: str, token: str, variant: str = "video",
                **headers: str) -> httpx.Response:
        return httpx.get(f"{self.gw.url}/v1/videos/{video_id}/content",
                         headers={"Authorization": f"Bearer {token}", **headers},
                         params={"variant": variant})
