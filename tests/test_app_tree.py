"""The generation tree page in AppTest: it draws what core.tree computes; its link holds the view, a bad one falls back.

Every tree here is small (depth 3, a few beams or samples) so the file stays
cheap on a shared CPU; the page memoises what it grows, so the tests that
open the same view share one search.
"""

import json
import math
from urllib.parse import parse_qs

import plotly.graph_objects as go
import pytest

from core.distributions import SamplingSettings
from core.finetune.adapters import resolve_adapter
from core.tokens import display_token
from core.tree import beam_search, expand, sample_tree
from tests.adapters import saved_adapter_job
from tests.test_app import open_page
from ui.tree_charts import PALETTE
from ui.tree_view import TreeSettings, from_query, node_name, to_query

BEST, SAMPLED = PALETTE[False][0], PALETTE[False][2]
PROMPT = "Once upon a time"  # width 2, depth 3: beam search's best (", I was") is not greedy's (", the city")


def url(at, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def tree(at, index: int = 0) -> dict:
    """The plotly spec of the page's tree (``index`` 1: the tuned model's)."""
    found = [c for c in at.get("plotly_chart") if f"tr_chart_{index}_" in c.proto.id]
    assert found, "no tree on the page"
    return json.loads(found[0].proto.spec)


def trace(spec: dict, mode: str) -> dict:
    return next(d for d in spec["data"] if d["mode"] == mode)


def nodes(spec: dict) -> dict[str, str]:
    """Each node's name (its path, as a click reports it) and its label."""
    points = trace(spec, "markers+text")
    return dict(zip(points["customdata"], points["text"], strict=True))


def widths(spec: dict, colour: str) -> set[float]:
    """The widths of the edges drawn in ``colour``."""
    return {d["line"]["width"] for d in spec["data"] if d["mode"] == "lines" and d["line"]["color"] == colour}


# --- the link, without a page ------------------------------------------------------------------------


def test_a_link_round_trips_and_carries_only_what_its_mode_reads():
    settings = TreeSettings(prompt="Hi", mode="samples", samples=9, temperature=0.7, top_k=5, seed=10**6, node=(5, 6))
    query = to_query(settings)
    assert "w" not in query and query["n"] == "9" and query["seed"] == "1000000" and query["node"] == "5,6"
    assert from_query(query) == (settings, [])
    assert from_query(to_query(TreeSettings(node=()))) == (TreeSettings(node=()), [])  # the prompt itself, opened


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ({"w": "40"}, "The beam width must be between 1 and 16; got 40. Using 3 instead."),  # core's sentence
        ({"n": "0"}, "The number of samples must be between 1 and 64; got 0. Using 16 instead."),
        ({"lp": "nan"}, "The length penalty must be between 0 and 2; got nan. Using 0 instead."),
        ({"d": "x"}, "The link's depth 'x' is not a whole number. Using 4 instead."),
        ({"t": "9"}, "The link's temperature 9 is outside this page's range (0 to 3). Using 1 instead."),
        ({"p": "0"}, "top-p must be above 0 and at most 1; got 0.0. Using 1 instead."),
        ({"mode": "forest"}, "The link's mode 'forest' is not one of branches, beams, samples. Showing branches."),
        ({"node": "1,a"}, "The link's node '1,a' is not a list of token ids. The tree opens from the prompt."),
    ],
)
def test_each_bad_value_of_a_link_is_named_and_falls_back(query, sentence):
    settings, warnings = from_query({"prompt": "Hi", **query})
    assert warnings == [sentence]
    assert settings == TreeSettings(prompt="Hi")


# --- the page ------------------------------------------------------------------------------------------


def test_the_branches_view_marks_greedy_and_lists_the_prompts_children(lm):
    at = open_page("pages/tree.py", {"prompt": PROMPT, "d": "3", "kids": "3"})
    assert not at.warning and not at.error
    spec = tree(at)
    greedy = beam_search(lm, PROMPT, 1, 3).greedy
    first = expand(lm, PROMPT, [], 3).children
    expected = {"root"} | {node_name(greedy.ids[:i]) for i in (1, 2, 3)} | {str(c.id) for c in first}
    assert set(nodes(spec)) == expected
    top = first[0]
    assert nodes(spec)[str(top.id)] == f"{display_token(top.token)}<br>{top.prob:.0%}"
    dashed = next(d for d in spec["data"] if d["mode"] == "lines" and d["line"]["dash"] == "dash")
    assert len([x for x in dashed["x"] if x is not None]) == 2 * 3  # greedy's three edges, marked
    assert trace(spec, "text")["text"] == [f"greedy  {greedy.logprob:.2f}"]
    assert url(at, "mode") == "branches" and url(at, "d") == "3"
    go.Figure(spec)  # what the page built without validation, plotly accepts


def test_beam_search_is_drawn_best_first_beside_greedy(lm):
    at = open_page("pages/tree.py", {"prompt": PROMPT, "d": "3"})
    at.radio(key="tr_mode").set_value("beams").run()
    at.slider(key="tr_width").set_value(2).run()
    assert not at.exception
    search = beam_search(lm, PROMPT, 2, 3)
    assert search.differs_from_greedy
    best, second = search.beams
    spec = tree(at)
    assert trace(spec, "text")["text"] == [
        f"#1  {best.logprob:.2f}",
        f"#2  {second.logprob:.2f}",
        f"greedy  {search.greedy.logprob:.2f}",
    ]
    assert {node_name(best.ids), node_name(second.ids), node_name(search.greedy.ids)} <= set(nodes(spec))
    assert widths(spec, BEST) == {4.5}  # the best beam's thick edges
    table = at.dataframe[0].value
    assert list(table["rank"]) == ["1", "2", "greedy"]
    assert list(table["Σ log p"]) == [round(b.logprob, 3) for b in (best, second, search.greedy)]
    assert any("differs from greedy's" in i.value for i in at.info)
    assert url(at, "mode") == "beams" and url(at, "w") == "2"


def test_samples_show_their_counts_beside_the_models_probabilities(lm):
    query = {"prompt": PROMPT, "mode": "samples", "n": "6", "d": "3", "seed": "4"}
    at = open_page("pages/tree.py", query)
    assert not at.exception and not at.error
    sampled = sample_tree(lm, PROMPT, 6, 3, SamplingSettings(), seed=4)
    spec = tree(at)
    labels = nodes(spec)
    shown = 0
    for child in sampled.root.children:
        assert f"{child.count}× · p " in labels[str(child.id)]
        shown += child.count
    assert shown == 6
    every_count = set()
    stack = list(sampled.root.children)
    while stack:
        node = stack.pop()
        every_count.add(node.count)
        stack.extend(node.children)
    assert widths(spec, SAMPLED) == {round(1.5 + 12 * c / 6, 1) for c in every_count}  # edge width by count
    shares = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "tr_chart" not in c.proto.id)
    taken, model = shares["data"]
    first = sampled.root.children
    assert taken["x"][: len(first)] == pytest.approx([c.frequency for c in first])
    assert model["x"][: len(first)] == pytest.approx([c.prob for c in first])
    assert math.isclose(sum(taken["x"]), 1.0)
    for figure in (spec, shares):
        go.Figure(figure)  # what the page built without validation, plotly accepts


def test_a_bad_link_falls_back_with_warnings_and_still_draws():
    query = {"prompt": PROMPT, "mode": "forest", "w": "40", "d": "x", "node": "99999999"}
    at = open_page("pages/tree.py", query)
    assert not at.exception and not at.error
    said = [w.value for w in at.warning]
    assert "The link's mode 'forest' is not one of branches, beams, samples. Showing branches." in said
    assert "The beam width must be between 1 and 16; got 40. Using 3 instead." in said
    assert "The link's depth 'x' is not a whole number. Using 4 instead." in said
    assert any(w.startswith("The link's node ids include the id 99999999, which is not a token of") for w in said)
    assert "root" in nodes(tree(at))
    assert url(at, "mode") == "branches" and url(at, "d") == "4" and url(at, "node") is None


def test_opening_a_node_lists_its_children_and_continues_in_the_explorer(lm):
    at = open_page("pages/tree.py", {"prompt": PROMPT, "mode": "beams", "w": "2", "d": "3", "kids": "3"})
    target = beam_search(lm, PROMPT, 2, 3).beams[0].ids[:2]
    at.selectbox(key="tr_pick").set_value(node_name(target)).run()  # what a click on the node does
    assert not at.exception
    assert url(at, "node") == node_name(target)
    shown = set(nodes(tree(at)))
    for prefix in ((), target[:1], target):  # the node and every node above it list their children
        for child in expand(lm, PROMPT, prefix, 3).children:
            assert node_name((*prefix, child.id)) in shown
    points = trace(tree(at), "markers+text")
    assert points["marker"]["line"]["width"][points["customdata"].index(node_name(target))] == 3

    link = next(el.proto for el in at.get("page_link") if el.proto.label == "Continue from here in the explorer")
    query = {k: v[0] for k, v in parse_qs(link.query_string).items()}
    assert query["prompt"] == PROMPT and query["path"] == ",".join(map(str, target))
    explorer = open_page("pages/explorer.py", query)
    assert explorer.session_state["ex_path"] == list(target)

    next(b for b in at.button if b.label == "⟲ Close").click().run()
    assert url(at, "node") is None and len(nodes(tree(at))) < len(shown)


def test_a_refusal_draws_no_tree():
    at = open_page("pages/tree.py", {"prompt": "   ", "mode": "beams", "d": "3"})
    assert not at.exception
    assert [e.value for e in at.error] == ["The prompt is empty: type some text for the model to continue."]
    assert not at.get("plotly_chart")


def test_presentation_mode_has_larger_type_and_fewer_controls():
    at = open_page("pages/tree.py", {"prompt": PROMPT, "mode": "samples", "n": "4", "d": "2"})
    assert any(s.key == "tr_min_p" for s in at.slider) and at.get("download_button")
    at.sidebar.toggle(key="presentation").set_value(True).run()
    assert not any(s.key == "tr_min_p" for s in at.slider)
    assert not at.get("download_button") and not any(s.key == "tr_example" for s in at.selectbox)
    spec = tree(at)
    assert spec["layout"]["font"]["size"] == 20 and trace(spec, "markers+text")["textfont"]["size"] == 20
    assert url(at, "present") == "1"


@pytest.mark.slow  # saves a LoRA and grows two trees
def test_with_an_adapter_the_base_and_tuned_trees_stand_side_by_side(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    tuned = lm.with_adapter(resolve_adapter(saved_adapter_job(lm, "tree-lora", random_weights=True).path))
    at = open_page("pages/tree.py", {"prompt": PROMPT, "d": "3", "kids": "2"})
    at.sidebar.selectbox(key="adapter").set_value("tree-lora").run()
    assert not at.exception and not at.error
    assert any("Fine-tuned: SmolLM2-135M-Instruct + tree-lora" in m.value for m in at.markdown)
    base_spec, tuned_spec = tree(at, 0), tree(at, 1)
    for spec, model in ((base_spec, lm), (tuned_spec, tuned)):
        greedy = beam_search(model, PROMPT, 1, 3).greedy
        assert trace(spec, "text")["text"] == [f"greedy  {greedy.logprob:.2f}"]
        assert node_name(greedy.ids) in nodes(spec)
    assert trace(tuned_spec, "text")["text"] != trace(base_spec, "text")["text"]
