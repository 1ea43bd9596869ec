# syntax=docker/dockerfile:1
# Production image: external PostgreSQL, ClickHouse and Redis via APP_*_URL (see docker-compose.yml).
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml ./
COPY app ./app
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 tally
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
# No demo events: a production first start must not write made-up events into the real ClickHouse.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    APP_DATA_DIR=/srv/data \
    APP_ENV=production \
    APP_DEMO_EVENTS=0
RUN mkdir -p /srv/data && chown tally:tally /srv/data
USER tally
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/_health', timeout=2).status == 200 else 1)"
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
