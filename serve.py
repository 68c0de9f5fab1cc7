"""Patchwise's web server: Streamlit serving app.py, with the page's style in the HTML head, its boot
script started at the load event, and Streamlit's hashed page files answered from memory.

    streamlit run serve.py      (or: uvicorn serve:app --host 0.0.0.0 --port 8501)
"""
import streamlit as st
from starlette.middleware import Middleware

from ui import page_style
from ui.static_cache import StaticCache

page_style.IN_HEAD = True
app = st.App("app.py", middleware=[Middleware(page_style.PageHead), Middleware(StaticCache)])
