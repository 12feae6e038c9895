FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CHATFLOW_DATA_DIR=/data

RUN useradd --create-home --uid 10001 chatflow \
    && mkdir -p /data && chown chatflow:chatflow /data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY src ./src
RUN pip install .

USER chatflow
VOLUME ["/data"]
EXPOSE 5050

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5050/api/v1/health', timeout=4).status == 200 else 1)"]

CMD ["chatflow", "serve", "--host", "0.0.0.0"]
