"""The archive: the gateway's own copy of every finished video, on disk or in a bucket."""
