# The image of one Python service: chat, retrieval, profile or summary. Build from the
# repository root, naming the service and its port:
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=chat --build-arg PORT=8101 .
# docker-compose.yml passes both per service; on Railway each service sets SERVICE and PORT as
# service variables (Railway hands them to the build as these arguments).
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Dependencies first (cached while only our code changes). uv needs every member's
# pyproject.toml to read the workspace lock, whichever service it installs.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/chat/pyproject.toml services/chat/
COPY services/retrieval/pyproject.toml services/retrieval/
COPY services/profile/pyproject.toml services/profile/
COPY services/summary/pyproject.toml services/summary/
COPY tools/dev/pyproject.toml tools/dev/
# Declared after the steps above, so they are one cache shared by the four images.
ARG SERVICE
RUN test -n "$SERVICE" || { echo "build argument SERVICE is required" >&2; exit 1; }
RUN uv sync --frozen --no-dev --package lectern-${SERVICE} --no-install-workspace
COPY libs/common libs/common
COPY services/${SERVICE} services/${SERVICE}
RUN uv sync --frozen --no-dev --package lectern-${SERVICE} --no-editable

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 lectern \
    && mkdir -p /tmp/prometheus && chown lectern /tmp/prometheus
ARG SERVICE
ARG PORT
RUN test -n "$PORT" || { echo "build argument PORT is required" >&2; exit 1; }
# Retrieval with Qdrant on disk (no QDRANT_URL) must run one worker: build it with WORKERS=1.
ARG WORKERS=2
COPY --from=build /app/.venv /app/.venv
COPY deploy/serve.sh /app/serve.sh
# The reader page that chat serves (a few kB; the one image shape is worth more than leaving
# the files out of the other three).
COPY web /app/web
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 LECTERN_ENV=production \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    LECTERN_SERVICE=${SERVICE} PORT=${PORT} WEB_CONCURRENCY=${WORKERS} CHAT_WEB_DIR=/app/web
USER lectern
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=2)"
CMD ["/app/serve.sh"]
