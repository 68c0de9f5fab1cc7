# Hugging Face Docker Space (and any Docker host) for the Patchwise Streamlit app.
FROM python:3.11-slim

# CPU-only torch wheels (the PyPI default is a multi-GB CUDA build); nothing is fetched at run time.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    YOLO_OFFLINE=1 \
    ULTRALYTICS_SAFE_LOAD=1

# libgl1/libglib2.0-0: OpenCV (pulled in by Ultralytics) needs them; curl: the health check.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH
WORKDIR /home/user/app

# requirements.txt installs the library itself (editable), so its package files come first.
COPY --chown=user requirements.txt pyproject.toml README.md ./
COPY --chown=user tiling/ tiling/
RUN pip install --user -r requirements.txt

# Official COCO checkpoints, fetched once at build time (a Space build has internet; the app stays offline)
# and checked against the SHA-256 values pinned in the repository: a mismatch fails the build.
ENV PATCHWISE_WEIGHTS_DIR=/home/user/weights PATCHWISE_CACHE=/home/user/.cache/patchwise
RUN mkdir -p "$PATCHWISE_WEIGHTS_DIR" && cd "$PATCHWISE_WEIGHTS_DIR" \
    && for name in $(awk '{print $2}' /home/user/app/tiling/models/official-weights.sha256); do \
         curl -fsSL -o "$name" "https://github.com/ultralytics/assets/releases/download/v8.4.0/$name"; done \
    && sha256sum -c /home/user/app/tiling/models/official-weights.sha256

COPY --chown=user app.py serve.py ./
COPY --chown=user ui/ ui/
COPY --chown=user .streamlit/ .streamlit/
COPY --chown=user models/ models/
COPY --chown=user samples/ samples/

# Every model the page offers, opened through the same safe loading and exported for this CPU now, so
# the first visitor does not wait for it.
RUN python -c "import tiling; from tiling.models.official import read_pins; \
[tiling.load_model(m) for m in ('models/synth-yolo11n-det.pt', 'models/synth-yolo11n-seg.pt', *read_pins())]"

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl --fail http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "serve.py", "--server.port=8501", "--server.address=0.0.0.0"]
