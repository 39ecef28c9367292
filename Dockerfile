# xaiq: one image for the CLI, the scheduler and the workers.
# CPU build by default; for GPU workers build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XAIQ_HOME=/data \
    XAIQ_ARTIFACTS=/data/artifacts

WORKDIR /app
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch torchvision
COPY pyproject.toml README.md ./
COPY xaiq ./xaiq
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 xaiq \
    && mkdir -p /data/artifacts && chown -R xaiq /data
USER xaiq
VOLUME ["/data"]
ENTRYPOINT ["xaiq"]
CMD ["--help"]
