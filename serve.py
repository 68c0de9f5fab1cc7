"""Patchwise's web server: Streamlit's own server for app.py (st.App) with two ASGI middlewares.

- ui.page_style.PageHead puts the page's style in the HTML head, so it applies before Streamlit draws
  its first (animated) placeholder;
- ui.http_cache.ImmutableResponseCache answers Streamlit's content-hashed page files, which it marks
  immutable, from memory after their first request (keyed by path, never by query string; a byte cap,
  least recently used out first).

    streamlit run serve.py      (or: uvicorn serve:app --host 0.0.0.0 --port 8501)
"""
import streamlit as st
from starlette.middleware import Middleware

from ui import page_style
from ui.http_cache import ImmutableResponseCache

page_style.IN_HEAD = True
app = st.App("app.py", middleware=[Middleware(page_style.PageHead), Middleware(ImmutableResponseCache)])
