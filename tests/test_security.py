"""What keeps a classroom server safe: where it listens, what it accepts, and what it never loads.

See docs/security.md for the whole list and how each item is enforced.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import psutil
import pytest

from core.datasets import MAX_UPLOAD_BYTES
from tests.conftest import ROOT
from tests.servers import free_port, serving

CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
SKIPPED_DIRS = {".venv", "data", "test-artifacts", "node_modules"}
# Code that would run a model's own Python code, or unpickle a file (which can run anything).
FORBIDDEN = {
    "trust_remote_code on": re.compile(r"trust_remote_code\s*=\s*True"),
    "a non-safetensors model load": re.compile(r"use_safetensors\s*=\s*False"),
    "a non-safetensors save": re.compile(r"safe_serialization\s*=\s*False"),
    "torch.load without weights_only=True": re.compile(r"\btorch\.load\((?![^\n]*weights_only\s*=\s*True)"),
    "pickle loading": re.compile(r"\b(c?pickle|joblib|dill|cloudpickle)\.loads?\("),
    "numpy pickle loading": re.compile(r"allow_pickle\s*=\s*True"),
}


def non_loopback_ipv4() -> list[str]:
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def python_files() -> list[Path]:
    """Every Python file of the project but this one, whose examples below show what is forbidden."""
    return [
        p
        for p in ROOT.rglob("*.py")
        if not any(part in SKIPPED_DIRS or part.startswith(".") for part in p.relative_to(ROOT).parts[:-1])
        and p != Path(__file__).resolve()
    ]


@pytest.mark.server
def test_the_app_served_with_the_repository_config_listens_on_loopback_only(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    log = tmp_path / "server.log"
    with serving(command, f"http://127.0.0.1:{port}/_stcore/health", log, timeout=60, cwd=ROOT) as process:
        server = psutil.Process(process.pid)  # this test's own server, not another test's
        listening = [c.laddr for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening, "the server listens somewhere"
        assert {(a.ip, a.port) for a in listening} == {("127.0.0.1", port)}
        for address in non_loopback_ipv4():
            with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port), timeout=5):
                pass


def test_make_run_host_switches_the_address_for_a_classroom_network():
    dry_run = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0", "PORT=8600"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    [command] = [line for line in dry_run.stdout.splitlines() if "streamlit run" in line]
    args = shlex.split(command)
    assert args[args.index("--server.address") + 1] == "0.0.0.0"
    assert args[args.index("--server.port") + 1] == "8600"
    default = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--server.address 127.0.0.1" in default, "without HOST= it stays on this machine"


FAKE_STREAMLIT = """#!/bin/sh
echo "app started with secret=[$LLM_LAB_TEACHER_SECRET] args=[$*]"
"""


def make_run(tmp_path: Path, *args: str, secret: str | None = None) -> str:
    """What `make run ARGS` prints, with a stand-in for streamlit that prints the secret it was given."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "python").unlink(missing_ok=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "streamlit").write_text(FAKE_STREAMLIT)
    (venv / "bin" / "streamlit").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "LLM_LAB_TEACHER_SECRET"}
    if secret is not None:
        env["LLM_LAB_TEACHER_SECRET"] = secret
    command = ["make", "--no-print-directory", "run", f"VENV={venv}", "STAMP=", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout


def test_make_run_on_a_network_prints_a_teacher_secret_and_gives_it_to_the_app(tmp_path):
    first = make_run(tmp_path, "HOST=0.0.0.0")
    [secret] = re.findall(r"^Teacher secret: (\S+)$", first, flags=re.MULTILINE)
    assert len(secret) >= 16 and "Teacher box" in first
    assert f"app started with secret=[{secret}]" in first and "--server.address 0.0.0.0" in first
    [again] = re.findall(r"^Teacher secret: (\S+)$", make_run(tmp_path, "HOST=0.0.0.0"), flags=re.MULTILINE)
    assert again != secret, "drawn afresh, not a fixed default"
    chosen = make_run(tmp_path, "HOST=0.0.0.0", secret="the-teacher-s-own")
    assert "Teacher secret:" not in chosen and "secret=[the-teacher-s-own]" in chosen, "one set at start is kept"
    local = make_run(tmp_path)
    assert "Teacher secret:" not in local and "secret=[]" in local, "on 127.0.0.1 nobody else can reach it"
    assert "--server.address 127.0.0.1" in local


def test_uploads_are_limited_in_core_and_by_a_higher_backstop_in_the_server():
    server = CONFIG["server"]
    # core's limit is the one people meet (with its sentence); Streamlit's, higher, only stops a flood.
    assert MAX_UPLOAD_BYTES < server["maxUploadSize"] * 1024 * 1024 <= 10 * MAX_UPLOAD_BYTES
    assert server["address"] == "127.0.0.1"
    assert server.get("enableXsrfProtection", True) and server.get("enableCORS", True), "keep Streamlit's defaults"
    assert CONFIG["browser"]["gatherUsageStats"] is False, "nothing is sent out of the classroom"


def test_no_code_runs_a_models_own_code_or_unpickles_a_file():
    files = python_files()
    assert ROOT / "core" / "models.py" in files and len(files) > 20
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {what}"
        for path in files
        for text in [path.read_text(encoding="utf-8")]
        for what, pattern in FORBIDDEN.items()
        for match in pattern.finditer(text)
    ]
    assert found == []
    loader = (ROOT / "core" / "models.py").read_text()
    assert "trust_remote_code=False" in loader and "use_safetensors=True" in loader, "said explicitly"


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("model = AutoModel.from_pretrained(name, trust_remote_code = True)", "trust_remote_code on"),
        ("state = torch.load(path)", "torch.load without weights_only=True"),
        ("state = torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
        ("rows = pickle.load(f)", "pickle loading"),
    ],
)
def test_the_scan_would_catch_each_forbidden_call(line, what):
    assert FORBIDDEN[what].search(line)
    assert not FORBIDDEN["torch.load without weights_only=True"].search("torch.load(path, weights_only=True)")
