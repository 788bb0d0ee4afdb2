"""``python -m core bench``: what each capability costs, as ratios against a baseline measured in the same run.

Timings on shared machines are noisy, so every figure is paired with a
baseline measured moments before in the same process: ``single`` sets one
student's next-token view and generation against plain transformers;
``batching`` sets a class's requests sent together against the same
requests one at a time.
"""
