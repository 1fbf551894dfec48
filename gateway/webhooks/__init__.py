"""Webhooks: ``video.completed`` and ``video.failed`` events, signed per Standard Webhooks."""
