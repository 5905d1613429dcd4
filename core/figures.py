"""Plotly figures that pages show and reports reuse."""

from __future__ import annotations

import plotly.graph_objects as go


def learning_curves(entries: list[dict]) -> go.Figure:
    """Test ELBO per epoch (on the first 1,000 test images) of each shipped model."""
    fig = go.Figure()
    for e in entries:
        curve = e.get("curve", [])
        fig.add_trace(go.Scatter(x=[c["epoch"] for c in curve], y=[c["test_elbo"] for c in curve],
                                 mode="lines", name=e["model"]))
    # The first epochs (KL warm-up) sit far below the rest; leave them out of the y range so the
    # part worth comparing fills the plot.
    settled = [c["test_elbo"] for e in entries for c in e.get("curve", [])[len(e["curve"]) // 10 :]]
    if settled:
        fig.update_yaxes(range=[min(settled) - 1.0, max(settled) + 1.0])
    fig.update_layout(xaxis_title="epoch", yaxis_title="test ELBO (nats, higher is better)",
                      height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig
