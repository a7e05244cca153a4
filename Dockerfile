# The census server with the committed model (artifacts/), as a slim non-root image.
#
#     docker build -t census .
#     docker run --rm -p 8000:8000 census          # then: curl localhost:8000/ready
#     docker run --rm -i census predict < examples/rows.json
#
# BASE is any Debian-like image with Python 3.11 and its venv module (README "Container"
# builds one with debootstrap when Docker Hub is out of reach). Both stages use it, so the
# virtual environment's interpreter is the same in both.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# The dependencies first, at the versions requirements.txt pins (its last line, `.`, is the
# project itself), as wheels only: no compiler is needed, and this layer stays cached
# while only the code changes.
COPY requirements.txt ./
RUN sed '/^\.$/d' requirements.txt > pins.txt \
    && pip install --only-binary=:all: --requirement pins.txt
COPY pyproject.toml README.md ./
COPY src ./src
# The project with --no-deps: nothing but the pins above. Then pip and setuptools leave the
# environment (the server never installs anything), and so do the packages' own test
# suites (about 120 MB that nothing imports).
RUN pip install --no-deps . \
    && pip uninstall --yes pip setuptools \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} +

FROM ${BASE}
ARG VERSION=1.0.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="census" \
      org.opencontainers.image.description="Serves the census income classifier (UCI Adult) over HTTP." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
# A system user that owns no file: the code, the settings and the model are root's and
# only readable; the server writes nothing but temporary files under /tmp.
RUN groupadd --gid 10001 census \
    && useradd --uid 10001 --gid census --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin census
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/census
COPY census.toml ./
COPY artifacts ./artifacts
# Numeric, so an orchestrator can check it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Slim images have no curl: Python asks /ready (200 once the model is loaded and checked).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/ready', timeout=4)"]
# Exec form: census is PID 1 and gets SIGTERM itself; it finishes the requests in flight
# and exits 0. It listens on $PORT (census serve reads it), on every interface.
ENTRYPOINT ["census"]
CMD ["serve", "--host", "0.0.0.0"]
