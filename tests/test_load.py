"""The classroom load test (bench/load_test.py): its report, and that it counts what went wrong as errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.Element_pb2 import Element

from bench.class_scenario import ANSWERS, round_shown
from bench.load_test import check_distribution, check_generation
from bench.streamlit_session import RunResult, note_element
from ui.render import path_html

ROOT = Path(__file__).resolve().parent.parent
LATENCY_KEYS = {"count", "p50_s", "p95_s", "max_s"}


@pytest.mark.slow
@pytest.mark.server
def test_two_students_for_a_few_seconds_get_every_answer_and_the_report_says_so():
    command = [sys.executable, "bench/load_test.py", "--users", "2", "--duration", "3", "--think", "0.5"]
    run = subprocess.run([*command, "--tokens", "2", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["warmup_s"] > 0 and report["machine"]["cpus"] >= 1
    [scenario] = report["scenarios"]
    assert (scenario["users"], scenario["finetune_running"]) == (2, False)
    assert scenario["errors"] == 0, scenario["error_samples"]
    assert set(scenario["latency"]) == LATENCY_KEYS
    distribution, generate = scenario["by_kind"]["distribution"], scenario["by_kind"]["generate"]
    assert distribution["count"] >= 2 and generate["count"] >= 2, "each student opens the page and generates"
    assert scenario["requests"] == distribution["count"] + generate["count"]
    assert 2 <= scenario["opening"]["count"] <= distribution["count"], "each opening is a distribution too"
    assert scenario["opening"]["max_s"] <= distribution["max_s"]
    for latency in (scenario["latency"], distribution, generate):
        assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["max_s"] < 600
    assert scenario["server_rss_peak_mb"] >= scenario["server_rss_start_mb"] > 300, "the model is in memory"


@pytest.mark.slow
@pytest.mark.server
def test_the_class_runs_against_an_openai_compatible_server_with_the_api_flag(llama_server):
    """--api-base-url: every session starts on llama.cpp's server; the steered text grows with each Generate."""
    command = [sys.executable, "bench/load_test.py", "--users", "2", "--duration", "3", "--think", "0.5"]
    command += ["--tokens", "2", "--api-base-url", llama_server, "--json"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["settings"]["api_base_url"] == llama_server and report["settings"]["api_model"]
    [scenario] = report["scenarios"]
    assert scenario["errors"] == 0, scenario["error_samples"]
    assert scenario["by_kind"]["generate"]["count"] >= 2


def test_a_page_without_its_chart_or_with_an_error_box_is_an_error():
    shown = RunResult(0.5, elements=["markdown", "plotly_chart"], query_string="prompt=Hi+there&chat=0")
    assert check_distribution(shown, "Hi there") is None
    assert "chart" in check_distribution(RunResult(0.5, elements=["markdown"], query_string="prompt=Hi"), "Hi")
    assert "prompt" in check_distribution(shown, "Another prompt")

    with_error = RunResult(0.5, elements=["plotly_chart"], query_string="prompt=Hi")
    box = Element()
    box.alert.body, box.alert.format = "The prompt is empty.", Alert.ERROR
    assert note_element(box, with_error) is None, "an error box is not a widget"
    assert check_distribution(with_error, "Hi") == "error box: The prompt is empty."


def test_a_generate_click_that_adds_no_token_is_an_error():
    assert check_generation(RunResult(1.0, query_string="prompt=Hi&path=5%2C6%2C7"), 2) is None
    assert check_generation(RunResult(1.0, query_string="prompt=Hi&path=5%2C6"), 2) == "Generate added no token"
    # The API view keeps no path in the URL: the bold tokens of the steered text it drew count instead.
    drawn = Element()
    drawn.markdown.body = path_html("Hi", [])[:-6] + '<span style="font-weight:600;">!</span></div>'
    api_result = RunResult(1.0, query_string="prompt=Hi")
    note_element(drawn, api_result)
    assert api_result.steered_tokens == 1
    assert check_generation(api_result, 0) is None
    assert check_generation(api_result, 1) == "Generate added no token"


def test_make_run_starts_the_app_with_sleeping_openmp_threads():
    """Spinning OpenMP threads made every answer several times slower on a busy 2-core machine."""
    dry_run = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    [command] = [line for line in dry_run.splitlines() if "streamlit run" in line]
    assert command.startswith("OMP_WAIT_POLICY=PASSIVE ")


@pytest.mark.slow
@pytest.mark.server
def test_a_class_of_three_plays_rounds_and_every_guess_is_stored():
    command = [sys.executable, "bench/load_test.py", "--class-room", "--users", "3", "--duration", "6"]
    command += ["--think", "0.5", "--round-time", "8", "--json"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["scenarios"] == [] and report["settings"]["class_room"]
    [room] = report["class_rooms"]
    assert room["errors"] == 0, room["error_samples"]
    assert room["rounds_revealed"] >= 1 and room["guesses_confirmed"] >= 3
    assert room["guesses_lost"] == 0
    kinds = room["by_kind"]
    assert kinds["join"]["count"] == 3 and kinds["result"]["count"] >= 3, "every phone got its result"
    assert kinds["reveal"]["count"] == room["rounds_revealed"]
    assert room["requests"] == sum(k["count"] for k in kinds.values())
    for latency in (kinds["guess"], kinds["poll"], kinds["reveal"]):
        assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["max_s"] < 600


def test_a_phone_reads_the_words_and_the_polling_the_page_sent():
    page = RunResult(0.1)
    for kind, fill in (
        ("markdown", lambda e: setattr(e.markdown, "body", "### 🙋 Round 2: what comes next?")),
        ("metric", lambda e: (setattr(e.metric, "label", "Answers to round 2"), setattr(e.metric, "body", "7"))),
    ):
        element = Element()
        fill(element)
        assert note_element(element, page) is None, kind
    assert page.texts == ["### 🙋 Round 2: what comes next?", "Answers to round 2: 7"]
    assert round_shown(page) == 2
    assert ANSWERS.search(page.texts[1]).groups() == ("2", "7")
