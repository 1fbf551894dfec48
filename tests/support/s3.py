"""A real S3-compatible server for the tests: Ceph's RADOS Gateway on a one-node cluster.

Emulators answer a tampered signature with 200; this server checks signatures the way a
production store does. ``ceph-rgw.sh`` beside this file starts and stops it on free loopback
ports. ``GATEWAY_TEST_S3_URL=http://ACCESS:SECRET@host:port`` points the tests at a server
already running instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.session
import pytest
from botocore.config import Config

from gateway.archive.config import S3Config
from tests.support.servers import free_port

SCRIPT = Path(__file__).with_name("ceph-rgw.sh")
INSTALL = "apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"

    def config(self, prefix: str = "") -> S3Config:
        return S3Config(endpoint_url=self.endpoint_url, bucket=self.bucket, region=self.region,
                        access_key=self.access_key, secret_key=self.secret_key, prefix=prefix)

    def client(self) -> Any:
        """A plain synchronous client, for a test to look at the bucket behind the store."""
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def with_bucket(self) -> S3Server:
        """This server with a fresh bucket of its own created on it."""
        server = S3Server(self.endpoint_url, self.access_key, self.secret_key,
                          f"gateway-test-{uuid.uuid4().hex[:12]}", self.region)
        client = server.client()
        try:
            client.create_bucket(Bucket=server.bucket)
        finally:
            client.close()
        return server

    def drop_bucket(self) -> None:
        """Empties and removes the bucket: what a run leaves on a server it did not start."""
        client = self.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=self.bucket, Key=item["Key"])
            uploads = client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
            for upload in uploads:
                client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                              UploadId=upload["UploadId"])
            client.delete_bucket(Bucket=self.bucket)
        finally:
            client.close()


def _from_url(url: str) -> S3Server:
    parts = urlsplit(url)
    if not (parts.username and parts.password and parts.hostname):
        raise ValueError("GATEWAY_TEST_S3_URL must be http://ACCESS:SECRET@host:port")
    endpoint = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return S3Server(endpoint, unquote(parts.username), unquote(parts.password), bucket="")


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """The server named by GATEWAY_TEST_S3_URL, or a cluster of our own for as long as the
    block runs (about 15 s to start)."""
    if url := os.environ.get("GATEWAY_TEST_S3_URL"):
        server = _from_url(url).with_bucket()
        try:
            yield server
        finally:
            server.drop_bucket()
        return
    # A short path: Ceph's admin sockets live under it, and a socket path has 107 bytes.
    workdir = tempfile.mkdtemp(prefix="gw-ceph-")
    port = free_port()
    env = {**os.environ, "CEPH_DIR": workdir, "RGW_PORT": str(port),
           "MON_PORT": str(free_port()), "MON_V1_PORT": str(free_port()),
           "S3_ACCESS": "gateway-test", "S3_SECRET": uuid.uuid4().hex}
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True,
                                 text=True, timeout=240, check=False)
        if started.returncode != 0:
            raise RuntimeError(f"the S3 server did not start:\n{started.stderr[-3000:]}")
        server = S3Server(f"http://127.0.0.1:{port}", env["S3_ACCESS"], env["S3_SECRET"], "")
        yield server.with_bucket()
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def radosgw_missing() -> str | None:
    if os.environ.get("GATEWAY_TEST_S3_URL") or shutil.which("radosgw"):
        return None
    return f"radosgw is not installed ({INSTALL}), nor GATEWAY_TEST_S3_URL set"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server and a bucket on it, for the whole run.

    Without radosgw the tests that need it skip, except on CI, where they fail: CI installs it.
    """
    if reason := radosgw_missing():
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with running_s3_server() as server:
        yield server
