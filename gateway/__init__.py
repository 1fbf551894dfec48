"""Video Gateway: an OpenAI-compatible forwarding gateway for asynchronous video generation."""

__version__ = "0.1.0"
