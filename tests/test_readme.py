"""The README's library examples run as written, from a folder outside the repository."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_readme_python_blocks_run_from_another_folder(tmp_path):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks)
    for folder in ("samples/", "models/"):  # the files the examples name, wherever the checkout is
        code = code.replace(f'"{folder}', f'"{ROOT / folder}/')
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "confidence" in out.stdout  # the DataFrame's columns were printed
