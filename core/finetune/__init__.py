"""LoRA fine-tuning: a config, background jobs in folders, and the adapters they save.

What a page uses (training itself, ``core.finetune.train``, is imported only
by the job process, since it pulls in the Trainer)::

    config = FinetuneConfig(dataset="sentiment", max_steps=40)
    job_dir = start_job(config)              # a separate process; JobBusy if any job is running
    estimate_dir = start_estimate(config)    # a short job: times two real steps
    state = read_job(job_dir)                # core.jobs.folder: status, progress, ETA, metrics, error
    request_stop(job_dir)                    # core.jobs.stop: stops after the current step, saves a partial adapter
    list_adapters(); rename_adapter(a, b); delete_adapter(a); zip_adapter(a)
    base.with_adapter(saved_adapter(name))   # a view of the shared model with the LoRA on

Datasets live in ``core.datasets`` (compare and the prompt lab use them too),
prompt formatting in ``core.prompts``, the job machinery in ``core.jobs``.
"""

from core.finetune.adapters import (
    AdapterInfo,
    delete_adapter,
    list_adapters,
    rename_adapter,
    resolve_adapter,
    saved_adapter,
    zip_adapter,
)
from core.finetune.config import FinetuneConfig
from core.finetune.jobs import (
    ESTIMATE,
    FINETUNE,
    DurationEstimate,
    find_finetune_job,
    jobs_root,
    start_estimate,
    start_job,
)

__all__ = [
    "ESTIMATE",
    "FINETUNE",
    "AdapterInfo",
    "DurationEstimate",
    "FinetuneConfig",
    "delete_adapter",
    "find_finetune_job",
    "jobs_root",
    "list_adapters",
    "rename_adapter",
    "resolve_adapter",
    "saved_adapter",
    "start_estimate",
    "start_job",
    "zip_adapter",
]
