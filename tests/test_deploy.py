"""The README's commands, the Dockerfile and CI agree, and everything the image copies exists."""
import re
import shlex

from conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def bash_blocks(text):
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_readme_front_matter_for_a_docker_space():
    assert README.startswith("---\n")
    front = README.split("---\n")[1]
    fields = dict(line.split(":", 1) for line in front.splitlines() if ":" in line and not line.startswith(" "))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["sdk"] == "docker" and fields["app_port"] == "8501"
    for key in ("title", "emoji", "license", "short_description", "tags"):
        assert key in fields
    assert fields["license"] == "agpl-3.0"


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    run_cmd, test_cmd = bash_blocks(README)[:2]
    # The CPU build of torch by default (as the Dockerfile's PIP_EXTRA_INDEX_URL): no CUDA wheels on a CPU.
    assert run_cmd == ("pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt "
                       "&& streamlit run serve.py")
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert test_cmd == "pip install -r requirements-dev.txt && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_dockerfile_installs_and_starts_as_the_readme_says():
    assert re.search(r"^RUN pip install (--user )?-r requirements.txt$", DOCKERFILE, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1)
    argv = [a.strip().strip('"') for a in cmd.strip("[]").split(",")]
    assert argv[:3] == ["streamlit", "run", "serve.py"]
    assert "--server.port=8501" in argv and "--server.address=0.0.0.0" in argv
    assert "EXPOSE 8501" in DOCKERFILE and "/_stcore/health" in DOCKERFILE
    assert re.search(r"useradd .*-u 1000", DOCKERFILE) and re.search(r"^USER user$", DOCKERFILE, re.M)


def test_every_copied_path_exists_and_the_app_needs_nothing_else():
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY"):
            parts = [p for p in shlex.split(line)[1:] if not p.startswith("--")]
            sources += parts[:-1]
    for src in sources:
        assert (ROOT / src).exists(), src
    copied = {s.rstrip("/") for s in sources}
    assert {"app.py", "serve.py", "ui", "tiling", ".streamlit", "models", "samples", "requirements.txt"} <= copied


def test_streamlit_config_allows_uploads_in_an_iframe():
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "enableXsrfProtection = false" in config and 'fileWatcherType = "none"' in config
    assert "headless = true" in config and "maxUploadSize" in config


def test_streamlit_config_leaves_out_the_running_icon():
    """Even hidden by CSS, the top bar's running icon re-renders every 0.2 s of every page waiting for its
    turn (bench/README.md), so the config leaves it out. Streamlit must know the option, or the line would
    do nothing."""
    import tomllib

    from streamlit import config as st_config

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["ui"]["hideTopBar"] is True
    assert "ui.hideTopBar" in st_config._config_options_template


def test_the_readme_start_command_serves_the_app_without_reaching_the_network(tmp_path):
    """`streamlit run serve.py` as the README gives it: healthy, Streamlit's page with the page's style in
    its head and nothing else changed, its scripts cacheable, and no public-IP lookup at start-up."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    import streamlit

    from ui.page_style import HEAD_TAGS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            healthy = False
            for _ in range(120):
                try:
                    healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok"
                    break
                except OSError:
                    time.sleep(0.5)
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
            # ImmutableResponseCache keeps only what Streamlit marks immutable: check this Streamlit still does.
            script = re.search(r'src="\./(static/js/[^"]+\.js)"', page).group(1)
            answers = [urllib.request.urlopen(f"http://127.0.0.1:{port}/{script}", timeout=10) for _ in range(2)]
            bodies = [a.read() for a in answers]
            cache_control = answers[0].headers["cache-control"]
            for _ in range(40):  # the start-up banner (where a lookup would show) follows the health check
                if "URL:" in log.read_text():
                    break
                time.sleep(0.25)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    text = log.read_text()
    assert healthy, text
    assert "External URL" not in text and "external IP" not in text, text
    streamlits_page = (Path(streamlit.__file__).parent / "static" / "index.html").read_text()
    assert page == streamlits_page.replace("</head>", HEAD_TAGS.decode() + "</head>")
    assert "immutable" in cache_control and bodies[0] == bodies[1] and len(bodies[0]) > 1000


def test_requirements_pin_the_torch_builds_on_disk():
    import tomllib

    req = (ROOT / "requirements.txt").read_text()
    assert "torch==2.14.1" in req and "torchvision==0.29.1" in req and "-e .[app]" in req.splitlines()
    app = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["app"]
    assert any(dep.startswith("streamlit") for dep in app)


def test_the_web_server_gets_the_c_http_parser_and_event_loop():
    """requirements.txt installs what uvicorn picks by itself: without them Streamlit serves its ~110
    page files per visitor through the pure-Python parser and asyncio loop."""
    import sys

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = uvicorn.Config(lambda scope, receive, send: None)
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    if sys.platform != "win32":
        import uvloop

        assert config.get_loop_factory() is uvloop.new_event_loop


def test_readme_images_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images
    for path in images:
        assert (ROOT / path).is_file(), path
