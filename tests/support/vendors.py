"""Clients of the native vendors' protocols (credentials, inputs, one driver per vendor), for
tests that talk to the vendor simulators directly."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from PIL import Image

from tests.support.servers import Simulator


def kling_jwt(access_key: str, secret_key: str, *, expires_in: float = 1800,
              not_before: float = -5) -> str:
    """A Kling API token as its docs mint it: HS256 over {iss, exp, nbf}, relative to now."""
    now = time.time()
    claims = {"iss": access_key, "exp": int(now + expires_in), "nbf": int(now + not_before)}
    return jwt.encode(claims, secret_key, algorithm="HS256", headers={"typ": "JWT"})


def png_base64() -> str:
    """A small real PNG, base64-encoded without any prefix."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 120, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def png_data_url() -> str:
    return "data:image/png;base64," + png_base64()


KEY = "sk-vendor-test"
KLING_AK, KLING_SK = "ak-vendor-test", "sk-vendor-test-secret-of-32-bytes"
SIZE = 4096  # bytes of every test video, via the [size:N] directive
ARK_TASKS = "/contents/generations/tasks"
WAN_CREATE = "/services/aigc/video-generation/video-synthesis"
VEO = "veo-3.1-generate-preview"


class Driver:
    """One vendor's protocol: create a job, poll it, find its video; subclasses fill it in."""

    done: str  # the vendor's success word

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.base_url, headers=self.auth(), timeout=10)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        raise NotImplementedError

    def job_id(self, created: httpx.Response) -> str:
        raise NotImplementedError

    def poll(self, job_id: str) -> httpx.Response:
        raise NotImplementedError

    def status(self, polled: dict[str, Any]) -> str:
        raise NotImplementedError

    def video_url(self, polled: dict[str, Any]) -> str:
        raise NotImplementedError

    def start(self, prompt: str, image: bool = False, **fields: Any) -> str:
        created = self.create(f"{prompt} [size:{SIZE}]", image, **fields)
        assert created.status_code == 200, created.text
        return self.job_id(created)

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None,
             timeout: float = 5.0) -> dict[str, Any]:
        """Poll until ``until`` (default: a terminal status) holds; the last poll's body."""
        deadline = time.monotonic() + timeout
        while True:
            polled = self.poll(job_id)
            assert polled.status_code == 200, polled.text
            body: dict[str, Any] = polled.json()
            if (until or self.finished)(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)

    def finished(self, body: dict[str, Any]) -> bool:
        return self.status(body) in (self.done, self.failed_word)

    failed_word = "failed"

    def download(self, url: str, **headers: str) -> httpx.Response:
        return httpx.get(url, headers=headers, follow_redirects=True, timeout=10)


class Ark(Driver):
    done = "succeeded"

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        if image:
            content.append({"type": "image_url", "image_url": {"url": png_data_url()}})
        body = {"model": "doubao-seedance-1-0-pro-250528", "content": content, **fields}
        return self.http.post(ARK_TASKS, json=body)

    def job_id(self, created: httpx.Response) -> str:
        return str(created.json()["id"])

    def poll(self, job_id: str) -> httpx.Response:
        return self.http.get(f"{ARK_TASKS}/{job_id}")

    def status(self, polled: dict[str, Any]) -> str:
        return str(polled["status"])

    def video_url(self, polled: dict[str, Any]) -> str:
        return str(polled["content"]["video_url"])


class DashScope(Driver):
    done, failed_word = "SUCCEEDED", "FAILED"

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        given: dict[str, Any] = {"prompt": prompt}
        if image:
            given["img_url"] = png_data_url()
        model = "wan2.5-i2v-preview" if image else "wan2.5-t2v-preview"
        params = {"resolution": "720P"} if image else {"size": "1280*720"}
        body = {"model": model, "input": given, "parameters": {**params, **fields}}
        return self.http.post(WAN_CREATE, json=body, headers={"X-DashScope-Async": "enable"})

    def job_id(self, created: httpx.Response) -> str:
        return str(created.json()["output"]["task_id"])

    def poll(self, job_id: str) -> httpx.Response:
        return self.http.get(f"/tasks/{job_id}")

    def status(self, polled: dict[str, Any]) -> str:
        return str(polled["output"]["task_status"])

    def video_url(self, polled: dict[str, Any]) -> str:
        return str(polled["output"]["video_url"])


class Kling(Driver):
    done = "succeed"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {kling_jwt(KLING_AK, KLING_SK)}"}

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        body: dict[str, Any] = {"model_name": "kling-v2-1-master", "prompt": prompt, **fields}
        if image:
            body["image"] = png_base64()
        return self.http.post("/videos/image2video" if image else "/videos/text2video", json=body)

    def job_id(self, created: httpx.Response) -> str:
        assert created.json()["code"] == 0
        return str(created.json()["data"]["task_id"])

    def poll(self, job_id: str) -> httpx.Response:
        kind = self.sim.job(job_id)["kind"]
        return self.http.get(f"/videos/{kind}/{job_id}")

    def status(self, polled: dict[str, Any]) -> str:
        return str(polled["data"]["task_status"])

    def video_url(self, polled: dict[str, Any]) -> str:
        return str(polled["data"]["task_result"]["videos"][0]["url"])


class Gemini(Driver):
    done, failed_word = "done", "error"

    def auth(self) -> dict[str, str]:
        return {"x-goog-api-key": KEY}

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        instance: dict[str, Any] = {"prompt": prompt}
        if image:
            instance["image"] = {"bytesBase64Encoded": png_base64(), "mimeType": "image/png"}
        body = {"instances": [instance], "parameters": {"aspectRatio": "16:9", **fields}}
        return self.http.post(f"/models/{VEO}:predictLongRunning", json=body)

    def job_id(self, created: httpx.Response) -> str:
        return str(created.json()["name"])

    def poll(self, job_id: str) -> httpx.Response:
        return self.http.get(f"/{job_id}")

    def status(self, polled: dict[str, Any]) -> str:
        if not polled.get("done"):
            return "running"
        return "error" if "error" in polled else "done"

    def video_url(self, polled: dict[str, Any]) -> str:
        samples = polled["response"]["generateVideoResponse"]["generatedSamples"]
        return str(samples[0]["video"]["uri"])

    def download(self, url: str, **headers: str) -> httpx.Response:
        return super().download(url, **{"x-goog-api-key": KEY, **headers})


class MiniMax(Driver):
    done, failed_word = "Success", "Fail"

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        body: dict[str, Any] = {"model": "I2V-01" if image else "MiniMax-Hailuo-2.3",
                                "prompt": prompt, **fields}
        if image:
            body["first_frame_image"] = png_data_url()
        return self.http.post("/video_generation", json=body)

    def job_id(self, created: httpx.Response) -> str:
        assert created.json()["base_resp"]["status_code"] == 0, created.text
        return str(created.json()["task_id"])

    def poll(self, job_id: str) -> httpx.Response:
        return self.http.get("/query/video_generation", params={"task_id": job_id})

    def status(self, polled: dict[str, Any]) -> str:
        return str(polled["status"])

    def video_url(self, polled: dict[str, Any]) -> str:
        found = self.http.get("/files/retrieve", params={"file_id": polled["file_id"]}).json()
        assert found["file"]["file_id"] == int(polled["file_id"])
        return str(found["file"]["download_url"])


class Vidu(Driver):
    done = "success"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {KEY}"}

    def create(self, prompt: str, image: bool = False, **fields: Any) -> httpx.Response:
        if image:
            body = {"model": "viduq2", "images": [png_data_url()], "prompt": prompt, **fields}
            return self.http.post("/img2video", json=body)
        return self.http.post("/text2video", json={"model": "viduq1", "prompt": prompt, **fields})

    def job_id(self, created: httpx.Response) -> str:
        return str(created.json()["task_id"])

    def poll(self, job_id: str) -> httpx.Response:
        return self.http.get(f"/tasks/{job_id}/creations")

    def status(self, polled: dict[str, Any]) -> str:
        return str(polled["state"])

    def video_url(self, polled: dict[str, Any]) -> str:
        return str(polled["creations"][0]["url"])


DRIVERS: dict[str, type[Driver]] = {"ark": Ark, "dashscope": DashScope, "kling": Kling,
                                    "gemini": Gemini, "minimax": MiniMax, "vidu": Vidu}
