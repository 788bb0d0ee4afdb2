"""Pretraining a tiny model from scratch: self-supervised pairs, a size, a job, a saved model, and what "large" means.

What a page uses (training itself, ``core.pretrain.train``, is imported by
the job process, and by ``start_pretrain_job`` for its checks)::

    training_pairs(tokenizer, text, context)     # the (context -> next token) pairs a text yields
    parameter_count(TinyModelSize(2, 128, 4, 64), vocab)   # live, from the shape alone
    job_dir = start_pretrain_job(PretrainConfig())         # a separate process; JobBusy if any job runs
    read_job(job_dir); job_samples(job_dir); request_stop(job_dir)   # as for fine-tuning
    list_tiny_models(); delete_tiny_model(name)  # saved models, each a plain transformers folder
    parameter_breakdown(model); PUBLISHED_MODELS # what "large" means
"""

from core.pretrain.architecture import TinyModelSize, check_fits_in_memory, parameter_count, training_memory
from core.pretrain.config import PretrainConfig
from core.pretrain.corpus import BUILTIN_CORPORA, DEFAULT_CORPUS, Corpus, load_corpus, parse_text_upload
from core.pretrain.jobs import find_pretrain_job, job_samples, start_pretrain_job
from core.pretrain.library import TinyModelInfo, delete_tiny_model, list_tiny_models, models_root
from core.pretrain.pairs import training_pairs
from core.pretrain.sizes import PUBLISHED_MODELS, parameter_breakdown

__all__ = [
    "BUILTIN_CORPORA",
    "DEFAULT_CORPUS",
    "PUBLISHED_MODELS",
    "Corpus",
    "PretrainConfig",
    "TinyModelInfo",
    "TinyModelSize",
    "check_fits_in_memory",
    "delete_tiny_model",
    "find_pretrain_job",
    "job_samples",
    "list_tiny_models",
    "load_corpus",
    "models_root",
    "parameter_breakdown",
    "parameter_count",
    "parse_text_upload",
    "start_pretrain_job",
    "training_memory",
    "training_pairs",
]
