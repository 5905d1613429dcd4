"""Plotly figures that pages show and reports reuse."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly import colors as px_colors


CURVES = {  # key a model records per epoch: (axis title, margin around the settled part of the y range)
    "test_elbo": ("test ELBO (nats, higher is better)", 1.0),
    "test_recon_mse": ("test reconstruction error (sum over pixels, lower is better)", 0.5),
}


def learning_curves(entries: list[dict], key: str = "test_elbo") -> go.Figure:
    """``key`` per epoch (on the first test images, as ``curve_point`` records it) of each
    shipped model, one line per model."""
    title, margin = CURVES[key]
    fig = go.Figure()
    for e in entries:
        curve = e.get("curve", [])
        fig.add_trace(go.Scatter(x=[c["epoch"] for c in curve], y=[c[key] for c in curve],
                                 mode="lines", name=e["model"]))
    # The first epochs (a KL warm-up, or a decoder still learning the mean image) sit far from the
    # rest; leave them out of the y range so the part worth comparing fills the plot.
    settled = [c[key] for e in entries for c in e.get("curve", [])[len(e["curve"]) // 10 :]]
    if settled:
        fig.update_yaxes(range=[min(settled) - margin, max(settled) + margin])
    fig.update_layout(xaxis_title="epoch", yaxis_title=title,
                      height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


COLOURINGS = {"label": "class", "recon_error": "reconstruction error (nats)", "split": "train / test",
              "swav_cluster": "SwAV cluster"}
# Ten distinct hues for ten classes (D3's category10 with its grey swapped for indigo): no class is
# a pale tint of another's colour, and none vanishes on a white page.
CLASS_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#3b3eac",
                 "#bcbd22", "#17becf"]
# 24 + 24 distinct colours, cycled: enough that neighbouring clusters rarely share one.
CLUSTER_PALETTE = px_colors.qualitative.Dark24 + px_colors.qualitative.Light24


def latent_map(coords: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
               colour: str = "label", values: np.ndarray | None = None,
               highlight: list[int] | None = None, height: int = 640) -> go.Figure:
    """Every image as one WebGL point at its map coordinates; ``customdata`` is its index.

    ``colour``: "label" (one trace per class, so the legend names the classes), "split",
    "recon_error" (a colour scale over ``values``), or "swav_cluster" (one trace per SwAV
    prototype, ``values`` holding each image's cluster).
    """
    if colour not in COLOURINGS:
        raise ValueError(f"unknown colouring {colour!r}; choose one of: {', '.join(COLOURINGS)}")
    index = np.arange(len(coords))
    fig = go.Figure()
    marker = dict(size=3, opacity=0.7)
    if colour == "recon_error":
        if values is None:
            raise ValueError("colouring by recon_error needs the per-image values")
        fig.add_trace(go.Scattergl(
            x=coords[:, 0], y=coords[:, 1], mode="markers", customdata=index, name="images",
            marker=dict(marker, color=values, colorscale="Viridis", showscale=True,
                        colorbar=dict(title="nats")),
            hovertemplate="#%{customdata}<br>%{marker.color:.1f} nats<extra></extra>"))
    elif colour == "swav_cluster":
        if values is None:
            raise ValueError("colouring by SwAV cluster needs every image's cluster (a shipped swav map)")
        for c in np.unique(values):
            mask = values == c
            fig.add_trace(go.Scattergl(
                x=coords[mask, 0], y=coords[mask, 1], mode="markers", customdata=index[mask],
                name=f"cluster {c}", marker=dict(marker, color=CLUSTER_PALETTE[c % len(CLUSTER_PALETTE)]),
                hovertemplate=f"#%{{customdata}} cluster {c}<extra></extra>"))
    else:
        groups = ([(name, labels == c) for c, name in enumerate(class_names)] if colour == "label"
                  else [("train", ~values.astype(bool)), ("test", values.astype(bool))])
        for name, mask in groups:
            fig.add_trace(go.Scattergl(
                x=coords[mask, 0], y=coords[mask, 1], mode="markers", customdata=index[mask],
                name=name, marker=dict(marker, color=CLASS_PALETTE[len(fig.data) % len(CLASS_PALETTE)]),
                hovertemplate=f"#%{{customdata}} {name}<extra></extra>"))
    if highlight:
        h = np.asarray(highlight)
        fig.add_trace(go.Scattergl(
            x=coords[h, 0], y=coords[h, 1], mode="markers", customdata=h, name="selected",
            marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(width=3, color="#e4002b")),
            hoverinfo="skip"))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0), dragmode="pan",
                      legend=dict(itemsizing="constant"), xaxis=dict(visible=False),
                      yaxis=dict(visible=False, scaleanchor="x"))
    return fig


def exemplars_on_map(map_coords: np.ndarray, placed: np.ndarray, yours: np.ndarray,
                     height: int = 480) -> go.Figure:
    """Placed exemplars over the map's density: the map's images as one grey 2-D histogram (a
    small image, whatever the map's size), the shared store's exemplars as dots and this
    session's own ringed. ``yours`` is a boolean mask over ``placed``."""
    bins = int(np.clip(np.sqrt(len(map_coords)), 60, 200))  # finer where there are more images
    (x0, y0), (x1, y1) = map_coords.min(axis=0), map_coords.max(axis=0)
    counts, x_edges, y_edges = np.histogram2d(map_coords[:, 0], map_coords[:, 1], bins=bins,
                                              range=[[x0, x1], [y0, y1]])
    density = np.log1p(counts.T)
    shade = (255 * density / max(density.max(), 1e-9)).astype(np.uint8)  # one byte a cell, sent as binary
    fig = go.Figure(go.Heatmap(
        z=shade, x=(x_edges[:-1] + x_edges[1:]) / 2, y=(y_edges[:-1] + y_edges[1:]) / 2,
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(60,60,60,0.9)"]], showscale=False, hoverinfo="skip",
        zsmooth="best",
        name="the map's images"))
    for name, mask, marker in (
            ("from the shared store", ~yours, dict(size=5, color="#1f77b4", opacity=0.6)),
            ("yours", yours, dict(size=12, color="rgba(0,0,0,0)", line=dict(width=2.5, color="#e4002b")))):
        if mask.any():
            fig.add_trace(go.Scattergl(x=placed[mask, 0].astype(np.float32), y=placed[mask, 1].astype(np.float32),
                                       mode="markers", name=name,
                                       marker=marker, hoverinfo="skip"))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0), plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0), xaxis=dict(visible=False),
                      yaxis=dict(visible=False, scaleanchor="x"))
    return fig


def selected_indices(points: list[dict]) -> list[int]:
    """Image indices of a Plotly selection (each point's ``customdata``), in order, no repeats."""
    seen: dict[int, None] = {}
    for p in points:
        data = p.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data is not None:
            seen[int(data)] = None
    return list(seen)


def label_histogram(labels: np.ndarray, class_names: tuple[str, ...], large: bool = False) -> go.Figure:
    """Images per class, every class named on the axis (digits too: a category axis, not numbers)."""
    counts = np.bincount(labels, minlength=len(class_names))
    fig = go.Figure(go.Bar(x=list(class_names), y=counts, text=counts, textposition="outside",
                           marker_color=[CLASS_PALETTE[c % len(CLASS_PALETTE)] for c in range(len(class_names))]))
    font = 24 if large else 13
    fig.update_layout(height=420 if large else 280, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="images",
                      font=dict(size=font), xaxis=dict(type="category", tickmode="linear"))
    return fig


def acceptance_histogram(f_hat: np.ndarray) -> go.Figure:
    """F̂ = F − γ of every drawn sample; right of 0 a sample is accepted with probability > ½."""
    fig = go.Figure(go.Histogram(x=f_hat, nbinsx=60, marker_color="#4c78a8"))
    fig.add_vline(x=0.0, line_dash="dash", annotation_text="acceptance ½")
    fig.update_layout(xaxis_title="F̂ = F − γ", yaxis_title="samples", height=280,
                      margin=dict(l=10, r=10, t=30, b=10), bargap=0.02)
    return fig


def point_clouds(clouds: dict[str, np.ndarray], titles: dict[str, str], size: int = 320,
                 bins: int = 120) -> go.Figure:
    """The density of each cloud of 2-D points, side by side on shared axes (the DRS toy; the
    paper's Figure 3 shows densities too). A 2-D histogram is one small image per panel, whatever
    the number of points, and one figure needs one chart in the browser instead of three."""
    from plotly.subplots import make_subplots

    everything = np.concatenate(list(clouds.values()))
    low, high = np.percentile(everything, [0.5, 99.5], axis=0).min() - 0.2, np.percentile(everything, [0.5, 99.5], axis=0).max() + 0.2
    step = (high - low) / bins
    fig = make_subplots(rows=1, cols=len(clouds), subplot_titles=[titles.get(k, k) for k in clouds],
                        horizontal_spacing=0.04)
    for column, points in enumerate(clouds.values(), start=1):
        fig.add_trace(go.Histogram2d(x=points[:, 0], y=points[:, 1], showscale=False, colorscale="Blues",
                                     xbins=dict(start=low, end=high, size=step),
                                     ybins=dict(start=low, end=high, size=step),
                                     hovertemplate="%{z} points<extra></extra>"), row=1, col=column)
        fig.update_xaxes(range=[low, high], row=1, col=column)
        fig.update_yaxes(range=[low, high], scaleanchor=f"x{column if column > 1 else ''}", row=1, col=column)
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white")
    return fig


def class_shares(class_names: tuple[str, ...], shares: dict[str, list[float]]) -> go.Figure:
    """Grouped bars: each sample set's share of each class (by the yardstick classifier's labels)."""
    fig = go.Figure([go.Bar(x=list(class_names), y=values, name=name) for name, values in shares.items()])
    fig.add_hline(y=1 / len(class_names), line_dash="dot", annotation_text="uniform")
    # Every class named (digits too: a category axis), and the legend below the plot, where the
    # toolbar that appears on hover cannot cover it.
    fig.update_layout(barmode="group", height=320, yaxis_tickformat=".0%", yaxis_title="share of samples",
                      xaxis=dict(type="category", tickmode="linear"), margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.15))
    return fig


def fd_by_percentile(curves: dict[str, dict[str, float | None]], chosen: float) -> go.Figure:
    """FD change against γ's percentile, one line per curve ({name: {percentile: FD}}; None where
    not measured), with the chosen percentile marked. Each curve is relative to its own lowest
    percentile measured (the 0th, where DRS accepts almost everything), since curves in different
    feature spaces have FDs of different scales."""
    fig = go.Figure()
    for name, fds in curves.items():
        points = sorted((float(p), fd) for p, fd in fds.items() if fd is not None)
        if not points:
            continue
        base = points[0][1]
        fig.add_trace(go.Scatter(x=[p for p, _ in points], y=[fd / base - 1 for _, fd in points],
                                 mode="lines+markers", name=name))
    fig.add_vline(x=chosen, line_dash="dot", annotation_text=f"chosen: {chosen:g}th")
    fig.update_layout(height=300, xaxis_title="γ percentile", yaxis_title="FD change from the 0th (lower is better)",
                      yaxis_tickformat="+.0%",
                      margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02))  # above: below, it covers the axis title
    return fig
