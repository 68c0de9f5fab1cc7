"""Patchwise's web server: Streamlit serving app.py, with the page's style in the HTML head.

    streamlit run serve.py      (or: uvicorn serve:app --host 0.0.0.0 --port 8501)
"""
import streamlit as st
from starlette.middleware import Middleware

from ui import page_style

page_style.IN_HEAD = True
app = st.App("app.py", middleware=[Middleware(page_style.HeadStyle)])
