# One image for every RadLoop process (API, worker, DICOM and HL7 listeners); docker-compose.yml
# picks the command. The default command migrates the database, then serves the API.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --home-dir /app radloop \
    && mkdir -p /data && chown radloop /data
USER radloop

ENV RADLOOP_MODE=production \
    RADLOOP_DATA_DIR=/data \
    RADLOOP_API_HOST=0.0.0.0 \
    RADLOOP_API_PORT=8000
EXPOSE 8000 11112 2575

CMD ["sh", "-c", "python -m core.migrate && exec python -m uvicorn api.main:app --host 0.0.0.0 --port 8000 --loop uvloop --http httptools"]
