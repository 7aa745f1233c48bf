# Nightdesk: one image for the API (embedded workers) and for scale-out workers/senders.
#   docker build -t nightdesk .
#   docker run -p 8000:8000 -v nightdesk-var:/app/var nightdesk                 # embedded defaults + demo
#   docker run -e DATABASE_URL=postgresql+asyncpg://... -e REDIS_URL=redis://... nightdesk nightdesk worker
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    NIGHTDESK_VAR_DIR=/app/var NIGHTDESK_HOST=0.0.0.0 NIGHTDESK_PORT=8000

WORKDIR /app
# CPU-only torch first, or sentence-transformers pulls the CUDA build (gigabytes).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY nlu ./nlu
COPY knowledge_base ./knowledge_base
COPY handoff ./handoff
COPY actions ./actions
RUN pip install .

COPY examples ./examples
# Train the demo bot at build time so containers start fast (the model is data, not code).
RUN nightdesk train --project examples/demo-store

RUN useradd --system --uid 10001 nightdesk && mkdir -p /app/var && chown -R nightdesk /app/var /app/examples
USER nightdesk
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health').status == 200 else 1)"
CMD ["nightdesk", "run", "--project", "examples/demo-store", "--demo", "--no-train"]
