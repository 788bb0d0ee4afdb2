"""The front door: what LLM Lab is and what each page teaches."""

import streamlit as st

from ui.session import require_router

require_router()

st.title("🔬 LLM Lab")
st.markdown(
    """
An instrument for seeing what a language model does. Everything here runs on a real model —
by default **SmolLM2-135M-Instruct**, embedded with the app and running on your CPU, offline.
"""
)

left, right = st.columns(2)
with left:
    st.subheader("🎲 Next-token explorer")
    st.markdown(
        "A language model's one task is to predict **the next token**. See the probability of every "
        "candidate, reshape the distribution with temperature, top-k, top-p and min-p, and steer the "
        "text one token at a time."
    )
    st.page_link("pages/explorer.py", label="Open the explorer", icon="🎲")
with right:
    st.subheader("🌡️ Surprise: score a text")
    st.markdown(
        "Colour any text by how surprising each token was to the model — the rank and probability of "
        "what was actually written — and read its perplexity."
    )
    st.page_link("pages/score.py", label="Score a text", icon="🌡️")

left, right = st.columns(2)
with left:
    st.subheader("🛠️ Fine-tune")
    st.markdown(
        "Adjust the pre-trained model with examples of a task — sentiment labels, a pirate's voice, a made-up "
        "persona — with LoRA, in a minute on a laptop. Watch the loss fall and keep the adapter."
    )
    st.page_link("pages/finetune.py", label="Fine-tune a model", icon="🛠️")

st.divider()
st.caption(
    "Choose another model in the sidebar: any Hugging Face id or local folder works the same way. "
    "Presentation mode enlarges everything for a projector."
)
