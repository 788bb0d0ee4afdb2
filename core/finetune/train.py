"""Running a fine-tuning job: transformers' ``Trainer`` with a peft LoRA, on a job folder.

The loop is the Trainer's, not ours, so the same job runs on a laptop CPU,
on one GPU, or on several GPUs or machines under ``accelerate launch`` or
``torchrun`` (``torchrun --nproc-per-node 2 -m core finetune ...``). In a
multi-process run every rank trains; rank 0 alone writes the job folder and
takes the machine's lock.

A job: load a private copy of the base model, wrap it in a LoRA, measure the
eval loss, train (the ``JobProgress`` callback reports each step and obeys
stop requests), measure the eval loss again, save the adapter. A job stopped
early still saves its adapter, marked partial; a job that fails records the
error in its status before the exception goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from core.errors import InvalidInput
from core.finetune.adapters import save_adapter
from core.finetune.callback import JobProgress, StepTimer, StopRequest, any_rank
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import FinetuneDataset, load_dataset
from core.finetune.formatting import IGNORE_INDEX, encode_examples
from core.finetune.jobfolder import FINETUNE, JobFolder, create_job
from core.finetune.launcher import run_in_job_folder
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


def build_trainer(
    config: FinetuneConfig, dataset: FinetuneDataset, output_dir: Path, callbacks: list[Any]
) -> TrainingSetup:
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


def create_or_join_job(config: FinetuneConfig, job_dir: Path, dataset: FinetuneDataset) -> None:
    """Rank 0 writes the job folder; the other ranks of a multi-process run wait until it is complete."""
    if is_main_process():
        create_job(config, job_dir, dataset)
        return
    deadline = time.monotonic() + RANK0_WAIT_S
    while not (job_dir / "status.json").is_file():  # create_job writes status.json last
        if time.monotonic() > deadline:
            raise InvalidInput(f"Rank 0 did not create the job folder {job_dir} within {RANK0_WAIT_S} s.")
        time.sleep(0.2)


def run_job(job_dir: Path, echo: bool = True) -> dict[str, Any]:
    """Run the job in ``job_dir`` in this process and return its summary (the CLI's ``--json``).

    Progress lines go to stderr when ``echo`` (a started job's stderr is its
    log). Any failure is recorded in status.json, then raised.
    """
    main = is_main_process()
    folder = JobFolder(Path(job_dir), writable=main)
    echo_to = sys.stderr if echo else None
    return run_in_job_folder(folder, FINETUNE, lambda stop, started: _train(folder, stop, started, echo_to), main=main)


def _train(folder: JobFolder, stop: StopRequest, started: float, echo: Any) -> dict[str, Any]:
    config = folder.config()
    dataset = folder.dataset()
    progress = JobProgress(folder, stop, started, echo)
    scratch = folder.path / ".trainer"
    setup = build_trainer(config, dataset, scratch, [progress])
    trainer = setup.trainer
    try:
        folder.update_status(phase="evaluating", max_steps=setup.steps, precision=setup.precision)
        eval_started = time.time()
        eval_loss_before = float(trainer.evaluate()["eval_loss"])
        folder.update_status(eval_seconds=time.time() - eval_started)
        train_metrics: dict[str, Any] = {}
        if not any_rank(stop.requested(), trainer.args.device):
            train_metrics = trainer.train().metrics
        steps = trainer.state.global_step
        partial = steps == 0 or progress.stopped_early
        last_eval = next((r for r in reversed(progress.rows) if r["eval_loss"] is not None), None)
        if steps == 0:
            eval_loss_after = None
        elif last_eval is not None and last_eval["step"] == steps:
            eval_loss_after = last_eval["eval_loss"]  # the Trainer already evaluated at the last step
        else:
            folder.update_status(phase="evaluating")
            eval_loss_after = float(trainer.evaluate()["eval_loss"])
        train_losses = [r["loss"] for r in progress.rows if r["loss"] is not None]
        train_seconds = float(train_metrics.get("train_runtime", 0.0)) - progress.eval_seconds_in_training
        info = {
            "base_model": config.model,
            "base_model_display": setup.base.display_name,
            "dataset": dataset.name,
            "train_examples": len(dataset.train),
            "eval_examples": len(dataset.eval),
            "hyperparameters": {
                k: v
                for k, v in config.to_dict().items()
                if k not in ("dataset", "model", "device", "precision", "eval_fraction", "evals_during_training")
            },
            "steps": steps,
            "max_steps": setup.steps,
            "partial": partial,
            "train_loss_first": train_losses[0] if train_losses else None,
            "train_loss_last": train_losses[-1] if train_losses else None,
            "eval_loss_before": eval_loss_before,
            "eval_loss_after": eval_loss_after,
            "train_tokens_per_second": trainer.state.num_input_tokens_seen / train_seconds
            if train_seconds > 0
            else None,
            "train_tokens": trainer.state.num_input_tokens_seen,
            "train_seconds": max(0.0, train_seconds),
            "precision": setup.precision,
            "device": setup.device,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        adapter_dir = None
        if steps > 0:
            folder.update_status(phase="saving")
            info["seconds"] = time.time() - started
            if folder.writable:
                adapter_dir = str(save_adapter(setup.peft_model, folder.adapter_dir, info))
        result = {
            "adapter_dir": adapter_dir,
            "steps": steps,
            "train_loss_first": info["train_loss_first"],
            "train_loss_last": info["train_loss_last"],
            "eval_loss_before": eval_loss_before,
            "eval_loss_after": eval_loss_after,
            "train_tokens_per_second": info["train_tokens_per_second"],
            "train_tokens": info["train_tokens"],
            "seconds": time.time() - started,
            "partial": partial,
            "job_dir": str(folder.path),
            "status": "cancelled" if partial else "done",
        }
        folder.update_status(
            status=result["status"],
            phase="finished",
            step=steps,
            partial=partial,
            result=result,
            finished_at=time.time(),
        )
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class DurationEstimate:
    """How long a job will take, from a step measured on this machine."""

    steps: int
    seconds_per_step: float
    eval_seconds: float  # one pass over the eval split
    evals: int  # before, during and after training
    load_seconds: float  # loading the model and building the Trainer
    total_seconds: float  # not counting the job process's start-up (a few seconds of imports)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_duration(config: FinetuneConfig, dataset: FinetuneDataset | None = None) -> DurationEstimate:
    """Time two real training steps (the second is measured) and one eval batch, and extrapolate.

    Runs in the calling process on a private copy of the model, for a few
    seconds of CPU. Like any Trainer, it seeds the global random generators.
    """
    config.validate()
    dataset = dataset or load_dataset(config.dataset, config.eval_fraction, config.seed)
    timer = StepTimer()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llm-lab-estimate-") as tmp:
        quick = replace(config, max_steps=2, epochs=None, evals_during_training=0)
        setup = build_trainer(quick, dataset, Path(tmp), [timer])
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
