"""Ladder jobs: every check before anything starts, writing a ladder's folder, starting it, finding it again.

Everything that can be refused is refused before a folder is written or a
process started, each with one sentence: a rung count outside 3 to 5, a
corpus too short for a window of the context, a largest rung that would not
fit in the memory free now, and a corpus too small for the largest rung.

That last rule is about repetition. Every rung reads the same number of
tokens; when the text is shorter than that, it reads the text several times
over. Up to about four passes cost little (Muennighoff et al. 2023, "Scaling
Data-Constrained Language Models"); beyond that the largest rungs, which can
hold the most, learn the text by heart instead of the language, their
held-out loss stops falling, and the ladder would show a law that is not there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput
from core.jobs.folder import JobFolder
from core.jobs.launcher import start_job_process
from core.jobs.paths import claim_named_folder, claim_new_folder
from core.ladder.config import EVAL_FRACTION, LadderConfig, RungPlan
from core.ladder.library import LADDER, LadderResult, ladders_root, read_ladder
from core.models import resolve_device
from core.pretrain.architecture import gigabytes, training_memory
from core.pretrain.corpus import Corpus, first_word, load_corpus
from core.pretrain.jobs import new_corpus_job
from core.pretrain.sizes import short_count
from core.pretrain.tokenizer import CHAR, vocabulary_size
from core.pretrain.windows import PreparedCorpus, prepare_corpus

MAX_PASSES = 4  # how often a rung may read the same text before the largest ones start to memorise it


@dataclass(frozen=True)
class PreparedLadder:
    """A ladder checked against its corpus: the rungs it will train and the corpus cut for them."""

    plan: list[RungPlan]
    corpus: PreparedCorpus
    sample_prompt: str

    @property
    def largest(self) -> RungPlan:
        return self.plan[-1]


def check_ladder(config: LadderConfig, text: str) -> PreparedLadder:
    """Plan the rungs for ``text`` and refuse, in one sentence, a ladder that cannot be trained well here."""
    config.validate()
    vocab = vocabulary_size(CHAR, text)
    plan = config.plan(vocab)
    largest = plan[-1]
    memory = training_memory(largest.size, vocab, config.batch_size, resolve_device(config.device))
    if not memory.fits:
        raise InvalidInput(
            f"The largest rung ({short_count(largest.parameters)} parameters) would need about "
            f"{gigabytes(memory.total_bytes)} of memory to train, but only {gigabytes(memory.available_bytes)} is "
            "free. Fewer rungs would not help (every ladder climbs to the same largest rung): close other programs, "
            "or wait for another job to end, and start it again."
        )
    prompt = config.sample_prompt or first_word(text, then_space=True)
    prepared = prepare_corpus(config.rung_config(largest, prompt), text)
    train_tokens = len(prepared.split.train)
    passes = config.tokens_per_rung / train_tokens
    if passes > MAX_PASSES:
        need = math.ceil(config.tokens_per_rung / MAX_PASSES / (1 - EVAL_FRACTION))
        raise InvalidInput(
            f"The corpus is too small for the largest rung: it has {train_tokens:,} characters to train on, and "
            f"each rung reads {config.tokens_per_rung:,}, so the {short_count(largest.parameters)}-parameter rung "
            f"would go through it {passes:.0f} times and learn the text by heart instead of the language. Use a "
            f"text of at least {need:,} characters, or fewer steps per rung."
        )
    return PreparedLadder(plan, prepared, prompt)


def create_ladder_job(config: LadderConfig, job_dir: Path, corpus: Corpus, plan: list[RungPlan]) -> JobFolder:
    """Write a new ladder folder, status ``queued``: its config, its corpus, its plan."""
    # the plan, for a page to show before the first rung ends
    return new_corpus_job(job_dir, config.to_json(), corpus, LADDER, plan=[rung.row() for rung in plan])


def start_ladder_job(config: LadderConfig, corpus: Corpus | None = None, name: str | None = None) -> Path:
    """Check everything, write a ladder folder and start the job process; return the folder.

    Raises ``InvalidInput`` (nothing started, nothing left behind) for any
    refused setting or corpus, and ``JobBusy`` while another training job runs.
    """
    config.validate()
    corpus = corpus or load_corpus(config.corpus)
    root = ladders_root()
    label = f"{corpus.name.rsplit('.', 1)[0]}-{config.rungs}-rungs"
    job_dir = claim_named_folder(root, name, "ladder name") if name else claim_new_folder(root, label)

    def prepare(path: Path) -> JobFolder:
        checked = check_ladder(config, corpus.text)
        return create_ladder_job(config, path, corpus, checked.plan)

    return start_job_process(LADDER, job_dir, prepare)


def reopen_ladder(path: Path, config: LadderConfig) -> LadderResult | None:
    """The saved result when ``path`` already holds this very ladder, finished; None for a new or empty folder.

    Anything else in the way is refused, so a ladder never writes into a
    folder that holds something else: files that are not a ladder, a ladder
    still training, one that failed, or one trained with other settings.
    """
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if JobFolder(path).status().get("kind") != LADDER.name:
        raise InvalidInput(
            f"{str(path)!r} already holds files and is not a ladder: give the ladder a new (or empty) folder, "
            "so that nothing in it is overwritten."
        )
    ladder = read_ladder(path)
    if ladder.state.active:
        raise InvalidInput(f"The ladder in {str(path)!r} is still training: wait for it, or cancel it first.")
    if ladder.state.status == "failed":
        raise InvalidInput(f"The ladder in {str(path)!r} failed ({ladder.state.error}): give a new folder.")
    if ladder.config != config:
        differences = ", ".join(
            f"{key} {old!r} there, {new!r} asked"
            for key, old in ladder.config.to_json().items()
            if (new := config.to_json()[key]) != old
        )
        raise InvalidInput(
            f"{str(path)!r} holds a ladder trained with other settings ({differences}): give a new folder."
        )
    return ladder.result
