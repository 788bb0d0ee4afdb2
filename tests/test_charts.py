"""The charts built without plotly's validation (ui.charts.unchecked) are exactly what validation accepts."""

import plotly.graph_objects as go
import pytest

from core.distributions import SamplingSettings, next_token_distribution, reshape
from ui.charts import distribution_figure


@pytest.mark.parametrize(
    ("settings", "shown", "presentation"),
    [
        (SamplingSettings(), 10, False),
        (SamplingSettings(temperature=1.5, top_k=3), 8, True),  # a cut line and its label
        (SamplingSettings(temperature=0), 5, False),  # greedy: everything but one pruned
        (SamplingSettings(top_p=0.5, min_p=0.1), 40, False),
    ],
)
def test_the_distribution_chart_passes_plotly_s_validation_unchanged(lm, settings, shown, presentation):
    shaped = reshape(next_token_distribution(lm, lm.tokenizer("The capital of France is")["input_ids"]), settings)
    spec = distribution_figure(shaped, shown, presentation).to_dict()
    validated = go.Figure(spec).to_dict()  # raises on any property plotly does not know
    assert validated == spec
    assert len(spec["data"]) == 2 and len(spec["data"][0]["y"]) == shown
    assert ("shapes" in spec["layout"]) == (0 < sum(t.kept for t in shaped.top(shown)) < shown)
