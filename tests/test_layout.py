"""The product's shape: core never imports streamlit, and the CLI answers in its documented shape."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_core_source_never_imports_streamlit():
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("place", "forbidden"),
    [
        ("core/pretrain", "core.finetune"),  # siblings share core.jobs, not each other's modules
        ("core/compare.py", "core.finetune"),
        ("core/jobs", "core.finetune"),  # the shared machinery knows no job kind
        ("core/jobs", "core.pretrain"),
        ("core/prompts.py", "core.finetune"),
        ("core/datasets.py", "core.finetune"),
        ("core", "ui"),  # arrows point down
        ("ui", "pages"),
    ],
)
def test_no_module_reaches_sideways_or_up(place, forbidden):
    target = ROOT / place
    files = [target] if target.is_file() else list(target.rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported_modules(path)
        if name == forbidden or name.startswith(forbidden + ".")
    ]
    assert offenders == []


def test_pages_export_csv_only_through_the_formula_safe_writer():
    offenders = [p.name for p in (ROOT / "pages").glob("*.py") if ".to_csv(" in p.read_text()]
    assert offenders == []


def test_every_page_asks_for_the_router_before_anything_heavy():
    """First the router check, then the imports: a bare run of a page must end at once (ui/router.py)."""
    for page in (ROOT / "pages").glob("*.py"):
        body = ast.parse(page.read_text()).body
        statements = [
            ast.unparse(n)
            for n in body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))  # the docstring
            and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
        ]
        assert statements[:2] == ["from ui.router import require_router", "require_router()"], page.name


def test_importing_all_of_core_loads_no_streamlit():
    modules = sorted(
        "core." + ".".join(p.relative_to(ROOT / "core").with_suffix("").parts)
        for p in (ROOT / "core").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\nprint('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_next_token_json_shape():
    out = run_cli("next-token", "--prompt", "The capital of France is", "--top-k", "10", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["model"] == "SmolLM2-135M-Instruct"
    assert len(result["tokens"]) == 10
    assert set(result["tokens"][0]) >= {"token", "id", "prob", "logprob"}
    assert result["tokens"][0]["token"] == " Paris"
    probs = [t["prob"] for t in result["tokens"]]
    assert probs == sorted(probs, reverse=True)
    assert result["entropy"] > 0


def test_cli_score_and_generate_json_shape():
    out = run_cli("score", "--text", "The capital of France is Paris.", "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert score["tokens"][0]["prob"] is None and score["tokens"][0]["rank"] is None
    assert all(t["rank"] >= 1 for t in score["tokens"][1:])
    assert score["perplexity"] > 1

    out = run_cli("generate", "--prompt", "Once upon a time", "--max-new-tokens", "5", "--seed", "1", "--json")
    assert out.returncode == 0, out.stderr
    gen = json.loads(out.stdout)
    assert 1 <= len(gen["tokens"]) <= 5
    assert all(len(t["alternatives"]) == 20 for t in gen["tokens"])


def test_cli_reports_bad_input_as_one_sentence_without_traceback():
    out = run_cli("next-token", "--prompt", "   ")
    assert out.returncode == 2
    assert out.stderr.startswith("error: The prompt is empty")
    assert "Traceback" not in out.stderr

    out = run_cli("generate", "--prompt", "Hi", "--temperature", "-1")
    assert out.returncode == 2 and "Temperature must be between 0" in out.stderr
    assert "Traceback" not in out.stderr

    out = run_cli("next-token", "--prompt", "Hi", "--model", "no-such-org/no-such-model")
    assert out.returncode == 2 and "no-such-org/no-such-model" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_table_output_shows_visible_whitespace():
    out = run_cli("next-token", "--prompt", "The capital of France is", "--top-k", "3")
    assert out.returncode == 0, out.stderr
    assert "␣Paris" in out.stdout


@pytest.mark.slow
def test_bench_reports_ratios_against_baselines_from_the_same_run():
    # --skip-engines: the engines against llama.cpp have their own tiny run in tests/test_llamacpp.py
    out = run_cli(
        "bench",
        "--json",
        "--repeats",
        "1",
        "--new-tokens",
        "4",
        "--skip-cold",
        "--skip-engines",
        "--batch-sizes",
        "1",
        "2",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("next_token_latency_ratio", "generate_tokens_per_s", "generate_tokens_per_s_ratio", "peak_rss_mb"):
        assert result[key] > 0, key
    assert result["next_token_latency_ratio"] == result["next_token_s"] / result["raw_forward_s"]
    batched = {key: value for key, value in result.items() if key.startswith(("next_token_x2_", "streams_x2_"))}
    assert batched and all(value > 0 for value in batched.values()), "N = 2 measured, against one at a time"
