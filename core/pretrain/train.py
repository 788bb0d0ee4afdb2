"""Running a pretraining job: a tiny Llama from random weights, trained on raw text by transformers' ``Trainer``.

The same Trainer and the same job machinery as fine-tuning (``core.jobs``:
the lock, the stop request, the ``JobProgress`` callback and the
evaluate → train → save → record skeleton), so a pretraining job is a job of
another kind: one at a time per machine, a live loss curve in
``metrics.jsonl``, Cancel through a STOP file, a truthful "failed" for a dead
process. What is its own: the model starts from random weights
(``LlamaForCausalLM(config)``), the data is random windows of a text with no
labels but the text itself, a ``TextSamples`` callback writes what the model
would write every few steps, and the model and its tokenizer are saved with
``save_pretrained`` (safetensors), atomically.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from core.jobs.folder import JobFolder
from core.jobs.launcher import run_in_job_folder
from core.jobs.progress import JobProgress
from core.jobs.stop import StopRequest
from core.jobs.training import TrainingResult, TrainingRun, run_training, trainer_scratch
from core.models import resolve_device
from core.pretrain.architecture import llama_config
from core.pretrain.config import PretrainConfig
from core.pretrain.corpus import first_word
from core.pretrain.jobs import CORPUS_FILE
from core.pretrain.library import PRETRAIN, save_tiny_model
from core.pretrain.samples import TextSamples
from core.pretrain.sizes import parameter_breakdown, training_flops
from core.pretrain.tokenizer import CHAR
from core.pretrain.windows import PreparedCorpus, RandomWindows, held_out_windows, prepare_corpus


def cpu_threads() -> int:
    """Every core but one: the app keeps a core for its answers while a job trains.

    A tiny model's matrices are too small for many threads to pay, and
    threads that wait for a core taken by another process spin: measured
    here on 2 busy cores, one thread took 0.13 s per default step, two
    threads 1.5 to 2.4 s.
    """
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class PretrainSetup:
    """A Trainer ready to run on a fresh tiny model, with what the job reports about it."""

    trainer: Any
    tokenizer: Any
    parameters: int
    device: str

    @property
    def model(self) -> Any:
        return self.trainer.accelerator.unwrap_model(self.trainer.model)


def build_trainer(
    config: PretrainConfig, prepared: PreparedCorpus, output_dir: Path, callbacks: list[Any]
) -> PretrainSetup:
    """A Llama of ``config.size`` with random weights (from the seed), and a Trainer on random windows."""
    from transformers import (
        LlamaForCausalLM,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    device = resolve_device(config.device)
    set_seed(config.seed)  # before the weights are drawn
    model = LlamaForCausalLM(llama_config(config.size, prepared.tokenizer))
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a fraction: the first 5% of steps warm up, so random weights do not blow up
        logging_steps=1,  # every step on the live curve
        eval_strategy="steps" if config.sample_every else "no",
        eval_steps=config.sample_every or None,  # held-out loss beside each sample
        save_strategy="no",  # the job saves the model itself, atomically, at the end
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        include_num_input_tokens_seen="all",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=RandomWindows(
            prepared.split.train, config.context, config.max_steps * config.batch_size, config.seed
        ),
        eval_dataset=held_out_windows(prepared.split.held_out, config.context),
        data_collator=default_data_collator,
        processing_class=prepared.tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw dicts; JobProgress reports instead
    return PretrainSetup(trainer, prepared.tokenizer, parameter_breakdown(model).total, str(args.device))


def run_pretrain_job(job_dir: Path, echo: bool = True) -> TrainingResult:
    """Run the pretraining job in ``job_dir`` in this process and return its result."""
    folder = JobFolder(Path(job_dir))
    echo_to = sys.stderr if echo else None
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads())  # on a GPU only the data and the samples run here
    try:
        return run_in_job_folder(folder, PRETRAIN, lambda stop, started: _train(folder, stop, started, echo_to))
    finally:
        torch.set_num_threads(threads)  # a job run inside another program (a test) gives its threads back


def model_dir_of(folder: JobFolder) -> Path:
    """Where the job saves its model: recorded when the job was created, else ``<job>/model``."""
    recorded = folder.status().get("model_dir")
    return Path(recorded) if recorded else folder.path / "model"


def _train(folder: JobFolder, stop: StopRequest, started: float, echo: Any) -> TrainingResult:
    config = PretrainConfig.from_dict(folder.config_dict())
    text = folder.file(CORPUS_FILE).read_text(encoding="utf-8")
    corpus = folder.status().get("corpus") or {}
    folder.update_status(phase="tokenizing")
    prepared = prepare_corpus(config, text)
    progress = JobProgress(folder, stop, started, echo)
    with trainer_scratch() as scratch:
        setup = build_trainer(config, prepared, scratch, [progress])
        samples = TextSamples(
            folder,
            setup.tokenizer,
            config.sample_prompt or first_word(text, then_space=config.tokenizer == CHAR),
            config.sample_chars,
            config.context,
            config.sample_every,
            config.seed,
            echo,
        )
        setup.trainer.add_callback(samples)  # after JobProgress, which has already logged the step
        folder.update_status(vocabulary=len(setup.tokenizer))

        def save(result: TrainingResult) -> Path:
            name = corpus.get("name", config.corpus)
            info = model_info(config, name, len(text), prepared, setup, result, samples.rows)
            return save_tiny_model(setup.model, setup.tokenizer, model_dir_of(folder), info)

        def last_sample(steps: int) -> None:
            samples.write(setup.model, steps)  # the last sample, also for a run stopped between samples

        run = TrainingRun(setup.trainer, config.max_steps, save, setup.parameters, after_train=last_sample)
        return run_training(folder, run, progress, stop, started)


def model_info(
    config: PretrainConfig,
    corpus_name: str,
    corpus_characters: int,
    prepared: PreparedCorpus,
    setup: PretrainSetup,
    result: TrainingResult,
    samples: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a saved tiny model's ``training.json`` and model card say: its text, shape, training and samples."""
    return {
        "corpus": corpus_name,
        "corpus_characters": corpus_characters,
        "corpus_tokens": prepared.split.total,
        "tokenizer": config.tokenizer,
        "vocabulary": len(setup.tokenizer),
        "size": config.size.to_json(),
        "training": {k: getattr(config, k) for k in ("max_steps", "batch_size", "learning_rate", "seed")},
        **pretrain_summary(result),
        "max_steps": result.max_steps,
        "train_seconds": result.train_seconds,
        "device": setup.device,
        "samples": samples,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def pretrain_summary(result: TrainingResult) -> dict[str, Any]:
    """The CLI's ``--json`` for a pretraining run, with its compute (6·N·D)."""
    flops = training_flops(result.parameters or 0, result.tokens_seen)
    return {**result.summary({"output_dir": "model_dir"}), "training_flops": flops}
