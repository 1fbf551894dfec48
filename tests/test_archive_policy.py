"""The archive's pure decisions, its configuration, and its schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.archive import policy
from gateway.archive.storage import InvalidKey
from gateway.config import ConfigError, load_settings
from gateway.migrate import upgrade
from gateway.models import Base
from gateway.upstreams.outcome import Asset, Completed

DAY = 86400.0


class TestRetries:
    @pytest.mark.parametrize(("attempts", "delay"), [(1, 5), (2, 10), (3, 20), (8, 600),
                                                     (40, 600)])
    def test_each_failure_doubles_the_wait_up_to_the_cap(self, attempts: int,
                                                         delay: float) -> None:
        retry_at = policy.next_attempt(attempts, 1000.0, 1e9, first_s=5, max_s=600)
        assert retry_at == 1000.0 + delay

    def test_a_retry_past_the_deadline_gives_up(self) -> None:
        assert policy.next_attempt(1, 1000.0, 1004.9, first_s=5, max_s=600) is None
        assert policy.next_attempt(1, 1000.0, 1005.0, first_s=5, max_s=600) == 1005.0


class TestDeadline:
    def test_the_earliest_link_expiry_the_upstream_gave(self) -> None:
        outcome = Completed(assets=(Asset("video", "u", 900.0), Asset("thumbnail", "t", 800.0)),
                            expires_at=1000.0)
        assert policy.deadline(outcome, 100.0, DAY) == 800.0

    def test_without_an_expiry_the_configured_limit_after_completion(self) -> None:
        assert policy.deadline(Completed(assets=(Asset("video"),)), 100.0, DAY) == 100.0 + DAY


class TestOffered:
    def test_every_known_variant_with_its_link(self) -> None:
        outcome = Completed(assets=(Asset("video", "https://v"), Asset("thumbnail"),
                                    Asset("poster")))
        assert policy.offered(outcome, None) == {"video": "https://v", "thumbnail": None}

    def test_a_flavor_naming_no_assets_still_has_its_video_kept(self) -> None:
        assert policy.offered(Completed(), "https://known") == {"video": "https://known"}

    def test_a_completion_is_pending_and_due_at_once(self) -> None:
        values = policy.pending(Completed(expires_at=500.0), 100.0, None, DAY)
        assert values == {"archive_state": "pending", "archive_assets": {"video": None},
                          "archive_attempts": 0, "archive_next_at": 100.0,
                          "archive_deadline": 500.0}


class TestKeysAndTypes:
    def test_one_folder_per_video_named_by_variant_and_type(self) -> None:
        assert policy.asset_key("video_abc", "video", "video/mp4") == "video_abc/video.mp4"
        assert policy.asset_key("video_abc", "thumbnail", "image/webp") == (
            "video_abc/thumbnail.webp")
        assert policy.asset_key("video_abc", "video", "video/x-odd") == "video_abc/video.bin"

    def test_a_key_that_could_climb_out_is_refused(self) -> None:
        with pytest.raises(InvalidKey):
            policy.asset_key("../etc", "video", "video/mp4")

    @pytest.mark.parametrize(("given", "kept"), [
        ("video/mp4; codecs=avc1", "video/mp4"), ("application/octet-stream", "video/mp4"),
        (None, "video/mp4"), ("IMAGE/PNG", "image/png"), ("no type\r\nX: 1", "video/mp4"),
    ])
    def test_the_upstreams_type_unless_it_says_nothing_useful(self, given: str | None,
                                                              kept: str) -> None:
        assert policy.media_type(given, "video") == kept


class TestRetention:
    def test_days_after_storing_or_forever(self) -> None:
        assert policy.retain_until(1000.0, 2) == 1000.0 + 2 * DAY
        assert policy.retain_until(1000.0, None) is None

    def test_a_group_overrides_the_archive_and_may_keep_forever(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text("archive: {retention_days: 3}\ngroups:\n"
                        "  plain: {billing_modes: [per_second]}\n"
                        "  brief: {billing_modes: [per_second], retention_days: 0.5}\n"
                        "  keep: {billing_modes: [per_second], retention_days: null}\n")
        settings = load_settings(path)
        assert [settings.retention_days(g) for g in ("plain", "brief", "keep")] == [3, 0.5, None]


class TestDeprecatedContentStore:
    def test_its_dir_and_retention_become_the_archives(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text("content_store: {dir: ./old, retention_s: 172800}\n")
        archive = load_settings(path).archive
        assert (archive.backend, archive.dir, archive.retention_days) == ("local", "./old", 2)

    def test_the_archive_section_wins_when_both_are_given(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text("content_store: {dir: ./old}\narchive: {dir: ./new}\n")
        assert load_settings(path).archive.dir == "./new"

    def test_a_bad_value_in_it_names_the_key(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text("content_store: {retention_s: -1}\n")
        with pytest.raises(ConfigError, match="retention_s"):
            load_settings(path)


def test_the_migrations_build_the_schema_the_models_declare(tmp_path: Path) -> None:
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
