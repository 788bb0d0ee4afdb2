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


def _point(k: int, accuracy: float | None, p: float | None):
    from core.promptlab import ShotPoint

    low = None if accuracy is None else max(0.0, accuracy - 0.1)
    return ShotPoint(k, accuracy, low, accuracy, p, None if p is None else p / 2, p, orders=2)


@pytest.mark.parametrize(("random_labels", "scored", "presentation"), [(True, True, False), (False, False, True)])
def test_the_shot_curve_passes_plotly_s_validation_unchanged(random_labels, scored, presentation):
    from core.promptlab import PromptVariant, ShotCurve
    from ui.promptlab_charts import shot_curve_figure

    points = tuple(_point(k, k / 10, k / 20 if scored else None) for k in (0, 1, 2, 4, 8))
    curve = ShotCurve("sentiment", "a model", PromptVariant(), 8, 0, 2, points, points if random_labels else None, ())
    spec = shot_curve_figure(curve, presentation).to_dict()
    assert go.Figure(spec).to_dict() == spec
    lines = [t for t in spec["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == (4 if random_labels else 2) and lines[0]["x"] == ["0", "1", "2", "4", "8"]
    bands = [t for t in spec["data"] if t.get("fill") == "tonexty"]
    assert bands[0]["y"] == [p.accuracy_min for p in points]
    assert ("an API does not say" in spec["layout"]["yaxis2"]["title"]["text"]) == (not scored)
