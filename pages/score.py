"""Surprise: colour every token of a text by how expected it was (GLTR, for any model).

One forward pass scores the whole text; the colours are the rank of the
real token among the model's guesses, or its probability.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import pandas as pd
import plotly.express as px
import streamlit as st

from core.distributions import score_text
from core.errors import LabError
from core.exports import safe_csv
from ui.charts import PLOTLY_CONFIG
from ui.render import RANK_BUCKETS, legend_html, rank_bucket, score_html
from ui.session import current_backend, presenting, runs_on_words, show_error
from ui.widgets import choice, examples_box

TEXT, MODE, SAMPLE = "sc_text", "sc_mode", "sc_sample"
SAMPLES = {
    "Well-known text": "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer "
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.",
    "Everyday prose": "I went to the market this morning to buy some bread, but they had run out, so I "
    "bought a bag of oranges and a newspaper instead.",
    "Surprising facts": "The capital of France is Madrid, and the largest ocean on Earth is the Atlantic.",
    "Made-up words": "The flimbertous groovle sprocketed across the zanthy vorp with mellifluous abandon.",
}

st.session_state.setdefault(TEXT, st.query_params.get("text", next(iter(SAMPLES.values()))))
st.session_state.setdefault(MODE, "rank")

st.title("🌡️ Surprise: score a text")
st.caption(
    "For each token, the model saw only the text before it. Green tokens were its first guess; purple ones "
    "were far down its list. Hover a token to see what the model expected instead."
)
backend = current_backend()
if backend is None:
    st.stop()
if not backend.can_score_prompt:
    st.info(
        "Scoring a text needs the probability of every token in it, and an OpenAI-compatible API gives "
        "log-probabilities only for the tokens it generates, not for a text you send. "
        "Choose **Here** under *Where the model runs* in the sidebar to score texts.",
        icon="🔌",
    )
    st.stop()
lm = backend.lm
st.caption(f"Model: **{lm.display_name}** · runs on {runs_on_words(lm)}")


def _load_sample() -> None:
    st.session_state[TEXT] = SAMPLES[st.session_state[SAMPLE]]


if not presenting():
    examples_box("Sample texts", SAMPLES, SAMPLE, _load_sample, noun="a sample text")
st.text_area("Text", key=TEXT, height=120)
choice("Colour by", {"rank": "rank of the real token (top-1 / 10 / 100 / beyond)", "probability": "probability"}, MODE)

try:
    score = score_text(lm, st.session_state[TEXT], alternatives=8)
except LabError as exc:
    show_error(exc)
    st.stop()

cols = st.columns(3)
cols[0].metric(
    "Perplexity", f"{score.perplexity:,.2f}", help="exp(mean negative log-likelihood); lower = less surprised"
)
cols[1].metric(
    "Tokens scored", f"{score.n_scored:,}", help="The first token has nothing before it, so it is not scored."
)
top1 = sum(t.rank == 1 for t in score.tokens if t.rank is not None)
cols[2].metric("Model's first guess", f"{top1 / max(1, score.n_scored):.0%}")

if st.session_state[MODE] == "rank":
    st.markdown(legend_html(presenting()), unsafe_allow_html=True)
st.markdown(score_html(score, st.session_state[MODE], presenting()), unsafe_allow_html=True)

scored = [t for t in score.tokens if t.rank is not None]
buckets = pd.DataFrame({"bucket": [rank_bucket(t.rank)[0] for t in scored]})
counts = buckets.value_counts("bucket").reindex([b[1] for b in RANK_BUCKETS], fill_value=0).reset_index()
fig = px.bar(
    counts,
    x="bucket",
    y="count",
    color="bucket",
    color_discrete_sequence=[c for _, _, c in RANK_BUCKETS],
    title="How often the real token was in the model's top 1 / 10 / 100",
)
fig.update_layout(showlegend=False, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
st.plotly_chart(fig, config=PLOTLY_CONFIG, width="stretch")

if not presenting():
    rows = [
        {"position": n, "token": t.token, "id": t.id, "prob": t.prob, "logprob": t.logprob, "rank": t.rank}
        for n, t in enumerate(score.tokens)
    ]
    st.download_button("⬇ Scores as CSV", safe_csv(rows), "token-scores.csv", "text/csv")
