# xaiq: one image for the CLI, the scheduler and the workers.
# TORCH_VARIANT picks the torch build: cpu (default, small) or a CUDA one for GPU workers,
#   docker build --build-arg TORCH_VARIANT=cu124 -t xaiq:cuda .
# (docker-compose.yml builds both; the CUDA wheels bring their own CUDA runtime, the host
# needs only the NVIDIA driver and the container toolkit).
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
# optional extras of the project, e.g. flower (the compose stack's flower image)
ARG XAIQ_EXTRAS=
ARG TORCH_INDEX=https://download.pytorch.org/whl/${TORCH_VARIANT}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XAIQ_HOME=/data \
    XAIQ_ARTIFACTS=/data/artifacts

WORKDIR /app
COPY requirements.lock ./
# torch and torchvision at the locked versions, the build for this image's device (the CPU
# index serves 2.14.1+cpu, which "==2.14.1" admits); their own dependencies come with the
# project below, at the locked versions too
RUN pip install --no-cache-dir --no-deps --index-url "$TORCH_INDEX" \
    $(grep -E '^(torch|torchvision)==' requirements.lock)
COPY pyproject.toml README.md ./
COPY xaiq ./xaiq
RUN pip install --no-cache-dir -c requirements.lock ".${XAIQ_EXTRAS:+[$XAIQ_EXTRAS]}" && useradd --create-home --uid 1000 xaiq \
    && mkdir -p /data/artifacts && chown -R xaiq /data
USER xaiq
VOLUME ["/data"]
ENTRYPOINT ["xaiq"]
CMD ["--help"]
