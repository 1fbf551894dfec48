FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
# /data/archive exists in the image so a named volume mounted there starts out owned by the
# gateway user (compose shares one between the replicas).
RUN pip install . && useradd --create-home --uid 10001 gateway && mkdir -p /data/archive \
    && chown -R gateway /data

USER gateway
WORKDIR /data
EXPOSE 8000
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1

ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/config.yaml"]
