"""The archive's decisions, as pure functions: what to keep, under which key, until when, and
when a failed copy is tried again or given up."""

from __future__ import annotations

from gateway.archive.storage import check_content_type, check_key
from gateway.upstreams.outcome import Completed

DAY_S = 86400.0
# Assets the archive keeps, with the type each is served as when the upstream gives none.
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
# The video is the product: without it the copy failed. The pictures are kept when offered.
REQUIRED = "video"
_GENERIC_TYPES = {"", "application/octet-stream", "application/binary", "binary/octet-stream"}
_EXTENSIONS = {"video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
               "image/webp": "webp", "image/jpeg": "jpg", "image/png": "png"}


def offered(outcome: Completed, content_url: str | None) -> dict[str, str | None]:
    """Variant -> download URL (None: through the flavor's content route) of what to keep."""
    assets: dict[str, str | None] = {asset.variant: asset.url for asset in outcome.assets
                                     if asset.variant in VARIANTS}
    # A flavor that names no assets still serves its video through its content route.
    assets.setdefault(REQUIRED, content_url)
    return assets


def pending(outcome: Completed, completed_at: float, content_url: str | None,
            give_up_after_s: float) -> dict[str, object]:
    """The archive columns a job completes with: due a first copy at once."""
    return {"archive_state": "pending", "archive_assets": offered(outcome, content_url),
            "archive_attempts": 0, "archive_next_at": completed_at,
            "archive_deadline": deadline(outcome, completed_at, give_up_after_s)}


def deadline(outcome: Completed, completed_at: float, give_up_after_s: float) -> float:
    """When the upstream's links die: the earliest expiry it gave, else our own limit."""
    expiries = [at for at in (outcome.expires_at,
                              *(asset.expires_at for asset in outcome.assets)) if at]
    return min(expiries) if expiries else completed_at + give_up_after_s


def next_attempt(attempts: int, at: float, until: float, *, first_s: float,
                 max_s: float) -> float | None:
    """When to try again after ``attempts`` failed tries (at least 1), or None once that
    would be past ``until``: the copy has failed for good."""
    delay = min(first_s * 2 ** max(attempts - 1, 0), max_s)
    retry_at = at + delay
    return None if retry_at > until else retry_at


def retain_until(stored_at: float, days: float | None) -> float | None:
    """The end of a stored video's retention (None: kept forever)."""
    return None if days is None else stored_at + days * DAY_S


def media_type(given: str | None, variant: str) -> str:
    """The type an asset is kept and served as: the upstream's, unless it said nothing useful."""
    bare = (given or "").split(";")[0].strip().lower()
    if bare in _GENERIC_TYPES:
        return VARIANTS[variant]
    try:
        return check_content_type(bare)
    except ValueError:  # not a type a header may carry: ours, not the upstream's word
        return VARIANTS[variant]


def asset_key(job_id: str, variant: str, content_type: str) -> str:
    """``<job id>/<variant>.<ext>``: one folder per video, named so a person browsing the
    bucket knows what each object is."""
    return check_key(f"{job_id}/{variant}.{_EXTENSIONS.get(content_type, 'bin')}")
