"""What "large" buys: a ladder of tiny models of growing size, trained alike, and the law their losses follow.

What a page or the CLI uses (training itself, ``core.ladder.train``, is
imported by the job process and by the CLI's foreground run)::

    LadderConfig(corpus="python-docs", rungs=3).plan(vocab)   # the rungs, smallest first, with parameter counts
    check_ladder(config, text)                                # every refusal, before anything is written
    job_dir = start_ladder_job(config, corpus)                # a separate process; JobBusy if any job runs
    read_ladder(job_dir)                                      # finished rungs, fit, reference, job state
    list_ladders(); delete_ladder(name); request_stop(job_dir)
    fit_power_law(parameters, losses, offset=False); bits_per_char(loss, tokens, characters)
    core.ladder.task.score_across_sizes(models, dataset, n)   # one task on every size (built on core.compare)
"""

from core.ladder.config import MAX_RUNGS, MIN_RUNGS, LadderConfig, RungPlan
from core.ladder.fit import PowerLawFit, bits_per_char, fit_power_law
from core.ladder.jobs import check_ladder, start_ladder_job
from core.ladder.library import (
    LADDER,
    Ladder,
    LadderResult,
    ReferenceScore,
    RungResult,
    delete_ladder,
    find_ladder_job,
    fit_rungs,
    ladders_root,
    list_ladders,
    read_ladder,
)

__all__ = [
    "LADDER",
    "MAX_RUNGS",
    "MIN_RUNGS",
    "Ladder",
    "LadderConfig",
    "LadderResult",
    "PowerLawFit",
    "ReferenceScore",
    "RungPlan",
    "RungResult",
    "bits_per_char",
    "check_ladder",
    "delete_ladder",
    "find_ladder_job",
    "fit_power_law",
    "fit_rungs",
    "ladders_root",
    "list_ladders",
    "read_ladder",
    "start_ladder_job",
]
