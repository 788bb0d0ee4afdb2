"""The front door: what LLM Lab is and what each page teaches."""

from ui.router import require_router

require_router()

import streamlit as st

# (page, icon, title, what it teaches, link label)
CARDS = [
    (
        "pages/explorer.py",
        "🎲",
        "Next-token explorer",
        "A language model's one task is to predict **the next token**. See the probability of every candidate, "
        "reshape the distribution with temperature, top-k, top-p and min-p, and steer the text one token at a time.",
        "Open the explorer",
    ),
    (
        "pages/tree.py",
        "🌳",
        "Generation tree",
        "Every token is a fork. See the paths a model could take as a **tree**: open any node for its likeliest next "
        "tokens, watch beam search beat greedy, and draw N samples to see how often each branch is taken.",
        "Grow a tree",
    ),
    (
        "pages/score.py",
        "🌡️",
        "Surprise: score a text",
        "Colour any text by how surprising each token was to the model — the rank and probability of what was "
        "actually written — and read its perplexity.",
        "Score a text",
    ),
    (
        "pages/finetune.py",
        "🛠️",
        "Fine-tune",
        "Adjust the pre-trained model with examples of a task — sentiment labels, a pirate's voice, a made-up "
        "persona — with LoRA, in a couple of minutes on a laptop. Watch the loss fall and keep the adapter.",
        "Fine-tune a model",
    ),
    (
        "pages/build.py",
        "🧱",
        "Build your own",
        "See how raw text becomes its own training data, **pretrain a tiny model from scratch** in about a minute — "
        "its samples turn from noise into words — and compare its size with GPT-2, GPT-3 and Llama on one scale.",
        "Build a tiny model",
    ),
    (
        "pages/ladder.py",
        "📈",
        "Scaling ladder",
        "What does *large* buy? Train a **ladder of tiny models** of growing size on the same text and watch "
        "their loss fall as a power law; then put one task to every size and see how an ability's *emergence* "
        "depends on how it is scored.",
        "Climb a ladder",
    ),
    (
        "pages/compare.py",
        "⚖️",
        "Compare",
        "Was fine-tuning worth it, or would a better prompt have done? Zero-shot, few-shot and fine-tuned answers "
        "to the same prompts side by side, their accuracy as a chart, and the adapter's effect on the next token.",
        "Compare answers",
    ),
    (
        "pages/prompt_lab.py",
        "🧪",
        "Prompt lab",
        "Steer the model only with what it reads: **two to four prompt variants** side by side on the same items, "
        "and **the shot curve** — accuracy against the number of examples in the prompt, their order, random labels.",
        "Try prompts",
    ),
    (
        "pages/inside.py",
        "🔍",
        "Inside the model",
        "Watch the answer form layer by layer with the **logit lens** — ␣Paris surfaces only in the last layers — "
        "and see which earlier tokens each attention head reads. Switch on an adapter to see what fine-tuning changed.",
        "Look inside",
    ),
    (
        "pages/join.py",
        "🙋",
        "Class mode",
        "The class guesses the next word on their phones, then sees itself **beside the model**. The teacher opens "
        "a room from the explorer (🙋 Ask the class) and shows its QR code; students join with the room's code.",
        "Join a class",
    ),
]

st.title("🔬 LLM Lab")
st.markdown(
    "An instrument for seeing what a language model does. Everything here runs on a real model — by default "
    "**SmolLM2-135M-Instruct**, embedded with the app and running on your CPU, offline."
)
for row in range(0, len(CARDS), 2):
    for column, (page, icon, title, text, link) in zip(st.columns(2), CARDS[row : row + 2], strict=False):
        with column:
            st.subheader(f"{icon} {title}")
            st.markdown(text)
            st.page_link(page, label=link, icon=icon)

st.divider()
st.caption(
    "Choose another model in the sidebar — any Hugging Face id or local folder, or a model behind an "
    "OpenAI-compatible API. Presentation mode enlarges everything for a projector."
)
