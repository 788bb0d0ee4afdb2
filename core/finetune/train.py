"""Running a fine-tuning job: transformers' ``Trainer`` with a peft LoRA, on a job folder.

The loop is the Trainer's, not ours, so the same job runs on a laptop CPU,
on one GPU, or on several GPUs or machines under ``accelerate launch`` or
``torchrun`` (``torchrun --nproc-per-node 2 -m core finetune ...``). In a
multi-process run every rank trains; rank 0 alone writes the job folder and
takes the machine's lock.

What is fine-tuning's own: a private copy of the base model wrapped in a
LoRA, and the adapter it saves with a model card. The rest (evaluate, train,
evaluate, save atomically, record the result) is every training job's
skeleton, ``core.jobs.training``. An estimate times two real steps of the
same setup, as a short job of its own.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from core.datasets import Dataset, load_dataset
from core.errors import InvalidInput
from core.finetune.adapters import save_adapter
from core.finetune.config import FinetuneConfig
from core.finetune.encoding import IGNORE_INDEX, encode_examples
from core.finetune.jobs import ADAPTER_SUBDIR, ESTIMATE, FINETUNE, DurationEstimate, create_job, job_dataset
from core.jobs.folder import JobFolder
from core.jobs.launcher import run_in_job_folder
from core.jobs.progress import JobProgress, StepTimer
from core.jobs.stop import StopRequest
from core.jobs.training import TrainingResult, TrainingRun, run_training, trainer_scratch
from core.models import LoadedModel, ModelKey, _load_uncached, resolve_device

RANK0_WAIT_S = 600


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate run, or a plain single process (read before the Trainer sets up)."""
    return os.environ.get("RANK", "0") == "0"


def resolve_precision(precision: str, device: str) -> str:
    """'auto' becomes bfloat16 (or float16) mixed precision on a CUDA GPU, float32 on a CPU."""
    cuda = device.startswith("cuda")
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return ("bfloat16" if bf16_ok else "float16") if cuda else "float32"
    if precision != "float32" and not cuda:
        raise InvalidInput(f"{precision} training needs a CUDA GPU; on a CPU LLM Lab trains in float32.")
    if precision == "bfloat16" and not bf16_ok:
        raise InvalidInput("This GPU cannot train in bfloat16: choose float16 or auto.")
    return precision


def planned_steps(config: FinetuneConfig, n_train: int) -> int:
    """How many optimizer steps the run will take (the Trainer's own count for an epoch-based run)."""
    if config.max_steps is not None:
        return config.max_steps
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_epoch = max(1, math.ceil(math.ceil(n_train / world) / config.batch_size))
    return max(1, math.ceil(per_epoch * (config.epochs or 1)))


@dataclass
class TrainingSetup:
    """A Trainer ready to run, with what the job reports about it."""

    trainer: Any
    base: LoadedModel  # the private copy the LoRA wraps; never the shared, cached model
    precision: str
    device: str
    steps: int
    train_rows: list[dict[str, list[int]]]
    eval_rows: list[dict[str, list[int]]]

    @property
    def peft_model(self) -> Any:
        return self.trainer.accelerator.unwrap_model(self.trainer.model)


def _lora_model(model: Any, config: FinetuneConfig) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type=TaskType.CAUSAL_LM,
        bias="none",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        if "not found in the base model" not in str(exc):
            raise
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)} - {"lm_head"}
        )
        raise InvalidInput(
            f"The target modules {', '.join(config.target_modules)} are not layers of this model. "
            f"Its linear layers are: {', '.join(linear)}."
        ) from None


def build_trainer(config: FinetuneConfig, dataset: Dataset, output_dir: Path, callbacks: list[Any]) -> TrainingSetup:
    """Load a private copy of the base model, wrap it in a LoRA and build the Trainer."""
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    config.validate()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    base = _load_uncached(ModelKey(config.model, "float32", "cpu"))  # the Trainer moves it to its device
    tokenizer = base.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # positions count from the left, as at inference
    train_rows = encode_examples(tokenizer, dataset.train, config.max_length, "training")
    eval_rows = encode_examples(tokenizer, dataset.eval, config.max_length, "evaluation")
    set_seed(config.seed)  # before the LoRA matrices are initialised
    model = _lora_model(base.model, config)
    steps = planned_steps(config, len(train_rows))
    evals = config.evals_during_training
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=config.max_steps if config.max_steps is not None else -1,
        num_train_epochs=config.epochs or 1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        logging_steps=1,  # every step on the live curve: runs here are tens of steps, not thousands
        eval_strategy="steps" if evals else "no",
        eval_steps=max(1, math.ceil(steps / (evals + 1))) if evals else None,
        save_strategy="no",  # the job saves the adapter itself, atomically, at the end
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        bf16=precision == "bfloat16",
        fp16=precision == "float16",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw dicts to stdout; JobProgress reports instead
    return TrainingSetup(trainer, base, precision, str(args.device), steps, train_rows, eval_rows)


def create_or_join_job(config: FinetuneConfig, job_dir: Path, dataset: Dataset) -> None:
    """Rank 0 writes the job folder; the other ranks of a multi-process run wait until it is complete."""
    if is_main_process():
        create_job(config, job_dir, dataset)
        return
    deadline = time.monotonic() + RANK0_WAIT_S
    while not (job_dir / "status.json").is_file():  # create_job writes status.json last
        if time.monotonic() > deadline:
            raise InvalidInput(f"Rank 0 did not create the job folder {job_dir} within {RANK0_WAIT_S} s.")
        time.sleep(0.2)


def run_job(job_dir: Path, echo: bool = True) -> TrainingResult:
    """Run the fine-tuning job in ``job_dir`` in this process and return its result.

    Progress lines go to stderr when ``echo`` (a started job's stderr is its
    log). Any failure is recorded in status.json, then raised.
    """
    main = is_main_process()
    folder = JobFolder(Path(job_dir), writable=main)
    echo_to = sys.stderr if echo else None
    return run_in_job_folder(folder, FINETUNE, lambda stop, started: _train(folder, stop, started, echo_to), main=main)


def _train(folder: JobFolder, stop: StopRequest, started: float, echo: Any) -> TrainingResult:
    config = FinetuneConfig.from_dict(folder.config_dict())
    dataset = job_dataset(folder)
    progress = JobProgress(folder, stop, started, echo)
    with trainer_scratch() as scratch:
        setup = build_trainer(config, dataset, scratch, [progress])
        folder.update_status(precision=setup.precision)
        trainable = sum(p.numel() for p in setup.peft_model.parameters() if p.requires_grad)

        def save(result: TrainingResult) -> Path:
            card = adapter_card_facts(config, dataset, setup, result)
            return save_adapter(setup.peft_model, folder.path / ADAPTER_SUBDIR, card)

        run = TrainingRun(setup.trainer, setup.steps, save, parameters=trainable)
        return run_training(folder, run, progress, stop, started)


# A fine-tune's result fields as its ``--json`` has always named them (the README documents the shape).
SUMMARY_RENAMES = {
    "output_dir": "adapter_dir",
    "loss_first": "train_loss_first",
    "loss_last": "train_loss_last",
    "tokens_per_second": "train_tokens_per_second",
    "tokens_seen": "train_tokens",
}


def finetune_summary(result: TrainingResult) -> dict[str, Any]:
    """The CLI's ``--json`` for a fine-tune."""
    return result.summary(SUMMARY_RENAMES)


def adapter_card_facts(
    config: FinetuneConfig, dataset: Dataset, setup: TrainingSetup, result: TrainingResult
) -> dict[str, Any]:
    """What the model card and ``training.json`` say about an adapter: how it was made, and what training did."""
    hidden = ("dataset", "model", "device", "precision", "eval_fraction", "evals_during_training")
    return {
        "base_model": config.model,
        "base_model_display": setup.base.display_name,
        "dataset": dataset.name,
        "train_examples": len(dataset.train),
        "eval_examples": len(dataset.eval),
        "hyperparameters": {k: v for k, v in config.to_json().items() if k not in hidden},
        **finetune_summary(result),
        "precision": setup.precision,
        "device": setup.device,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def estimate_duration(config: FinetuneConfig, dataset: Dataset | None = None) -> DurationEstimate:
    """Time two real training steps (the second is measured) and one eval batch, and extrapolate.

    Runs in the calling process on a private copy of the model, for a few
    seconds of CPU: the command line calls it, a page starts it as a job
    (``start_estimate``). Like any Trainer, it seeds the global random generators.
    """
    config.validate()
    dataset = dataset or load_dataset(config.dataset, config.eval_fraction, config.seed)
    timer = StepTimer()
    began = time.perf_counter()
    with trainer_scratch() as scratch:
        quick = replace(config, max_steps=2, epochs=None, evals_during_training=0)
        setup = build_trainer(quick, dataset, scratch, [timer])
        load_seconds = time.perf_counter() - began
        setup.trainer.train()
        batch = setup.eval_rows[: config.batch_size]
        eval_began = time.perf_counter()
        setup.trainer.evaluate(eval_dataset=batch)
        eval_seconds = (time.perf_counter() - eval_began) * math.ceil(len(setup.eval_rows) / len(batch))
    steps = planned_steps(config, len(dataset.train))
    evals = 2 + min(config.evals_during_training, steps - 1)
    seconds_per_step = timer.durations[-1]
    return DurationEstimate(
        steps=steps,
        seconds_per_step=seconds_per_step,
        eval_seconds=eval_seconds,
        evals=evals,
        load_seconds=load_seconds,
        total_seconds=load_seconds + steps * seconds_per_step + evals * eval_seconds,
    )


def run_estimate_job(job_dir: Path) -> DurationEstimate:
    """Run the estimate job in ``job_dir`` in this process: time the steps, record the estimate."""
    folder = JobFolder(Path(job_dir))

    def work(stop: StopRequest, started: float) -> DurationEstimate:
        folder.update_status(phase="timing two training steps")
        estimate = estimate_duration(FinetuneConfig.from_dict(folder.config_dict()), job_dataset(folder))
        folder.finish("done", result=estimate.to_json())
        return estimate

    return run_in_job_folder(folder, ESTIMATE, work)
