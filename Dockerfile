# The bridge receiver (`otel-bridge serve`) for docker-compose.yml: OTLP in, W&B Weave + Models out.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY otel_bridge ./otel_bridge
RUN pip install . \
 && useradd --system --uid 10001 --create-home bridge

USER bridge
WORKDIR /home/bridge
EXPOSE 4320
ENTRYPOINT ["otel-bridge"]
# Binding a non-loopback address requires INSPECT_OTEL_RECEIVER_TOKEN (the receiver refuses otherwise).
CMD ["serve", "--host", "0.0.0.0", "--port", "4320"]
