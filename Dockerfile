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

COPY --chown=user app.py serve.py ./
COPY --chown=user ui/ ui/
COPY --chown=user .streamlit/ .streamlit/
COPY --chown=user models/ models/
COPY --chown=user samples/ samples/

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl --fail http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "serve.py", "--server.port=8501", "--server.address=0.0.0.0"]
