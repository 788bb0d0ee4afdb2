"""LoRA fine-tuning: datasets, a config, background jobs in folders, and the adapters they save.

What a page uses (training itself, ``core.finetune.train``, is imported only
by the job process and by ``estimate_duration``, since it pulls in the
Trainer)::

    config = FinetuneConfig(dataset="sentiment", max_steps=40)
    job_dir = start_job(config)              # a separate process; JobBusy if one is running
    state = read_job(job_dir)                # poll: status, progress, ETA, metrics, error
    request_stop(job_dir)                    # stops after the current step, saves a partial adapter
    list_adapters(); rename_adapter(a, b); delete_adapter(a); zip_adapter(a)
    load_adapter(base_lm, state.adapter_dir)  # a LoadedModel with the LoRA on
"""

from core.finetune.adapters import AdapterInfo, delete_adapter, list_adapters, rename_adapter, zip_adapter
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import BUILTIN_DATASETS, Example, FinetuneDataset, load_dataset, parse_upload
from core.finetune.inference import adapter_next_token_distribution, load_adapter
from core.finetune.jobfolder import JobState, find_job, list_jobs, read_job
from core.finetune.launcher import JobBusy, request_stop, running_job, start_job
from core.finetune.paths import check_name, data_root, jobs_root

__all__ = [
    "BUILTIN_DATASETS",
    "AdapterInfo",
    "Example",
    "FinetuneConfig",
    "FinetuneDataset",
    "JobBusy",
    "JobState",
    "adapter_next_token_distribution",
    "check_name",
    "data_root",
    "delete_adapter",
    "find_job",
    "jobs_root",
    "list_adapters",
    "list_jobs",
    "load_adapter",
    "load_dataset",
    "parse_upload",
    "read_job",
    "rename_adapter",
    "request_stop",
    "running_job",
    "start_job",
    "zip_adapter",
]
