"""Text samples during training: the same prompt, continued every N steps, so a learner watches noise become words.

Each sample continues the same prompt with the same random draws (a private
generator seeded the same way every time, never the global one that training
uses), so two samples differ only by what the model learned in between. A
temperature below 1 keeps the rare characters of an untrained model from
drowning what it has learned, and special tokens (padding, unknown) are
never drawn: they never occur in the text, so they are not part of what is
being learned. Samples go to ``samples.jsonl`` in the job folder, one row
per sample: ``{"step", "prompt", "text"}``.
"""

from __future__ import annotations

from typing import Any, TextIO

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.jobs.folder import JobFolder
from core.pretrain.jobs import SAMPLES_FILE

SAMPLE_TEMPERATURE = 0.8


@torch.no_grad()
def sample_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    n_chars: int,
    context: int,
    seed: int,
    temperature: float = SAMPLE_TEMPERATURE,
) -> str:
    """Continue ``prompt`` by sampling until ``n_chars`` characters are written (or as many tokens drawn)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = list(prompt_ids)
    special = torch.tensor(sorted(tokenizer.all_special_ids), dtype=torch.long)
    text = ""
    try:
        for _ in range(n_chars):  # a token is at least one character, so this many draws always suffice
            window = torch.tensor([ids[-context:]], device=model.device)
            logits = model(input_ids=window, logits_to_keep=1).logits[0, -1].float().cpu()
            logits[special] = float("-inf")
            probs = torch.softmax(logits / temperature, dim=-1)
            ids.append(int(torch.multinomial(probs, 1, generator=generator)))
            text = tokenizer.decode(ids[len(prompt_ids) :])
            if len(text) >= n_chars:
                break
    finally:
        model.train(was_training)
    return text[:n_chars]


class TextSamples(TrainerCallback):
    """Writes a sample before training and every ``every`` steps; the job writes the last one (``write``)."""

    def __init__(
        self,
        folder: JobFolder,
        tokenizer: Any,
        prompt: str,
        n_chars: int,
        context: int,
        every: int,
        seed: int,
        echo: TextIO | None = None,
    ) -> None:
        self.folder, self.tokenizer, self.prompt = folder, tokenizer, prompt
        self.n_chars, self.context, self.every, self.seed = n_chars, context, every, seed
        self.echo = echo
        self.rows: list[dict[str, Any]] = []

    def write(self, model: Any, step: int) -> None:
        if self.rows and self.rows[-1]["step"] == step:
            return
        text = sample_text(model, self.tokenizer, self.prompt, self.n_chars, self.context, self.seed)
        row = {"step": step, "prompt": self.prompt, "text": text}
        self.rows.append(row)
        self.folder.append_line(SAMPLES_FILE, row)
        if self.echo is not None:
            print(f"step {step} sample: {self.prompt + text!r}", file=self.echo, flush=True)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.write(kwargs["model"], state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        if self.every and state.global_step % self.every == 0:
            self.write(kwargs["model"], state.global_step)
