# respan-mcp served over streamable HTTP, for a team behind a load balancer.
#   docker build -t respan-mcp .
#   docker run -p 8000:8000 respan-mcp          # each caller sends its own Authorization: Bearer <key>
# tests/packaging/test_container.py lints this file with hadolint and runs its RUN, COPY, ENV, CMD and
# HEALTHCHECK lines in a fresh virtualenv (no docker daemon is needed for that).

# Stage 1: build the wheel from the sources only (no tests, no git history).
FROM python:3.12.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY respan_mcp ./respan_mcp
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# Stage 2: only that wheel and its dependencies, in a virtualenv, run by a user without privileges.
FROM python:3.12.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
COPY --from=builder /wheels /wheels
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install /wheels/*.whl \
    && rm -rf /wheels
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin respan
USER 10001:10001
EXPOSE 8000
# urllib, not curl: the slim image has no curl. Any answer but 200 (or none in 4 s) fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# On SIGTERM the server stops taking new calls and lets those in flight finish (at most 20 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["respan-mcp"]
CMD ["--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000"]
