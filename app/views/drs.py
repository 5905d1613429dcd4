import streamlit as st
import torch

from app import state
from core import drs, drs_calibration, figures, images, pretrained, splits

name = state.dataset()
st.title("Discriminator Rejection Sampling")
st.caption("Azadi et al., ICLR 2019. The GAN's calibrated discriminator scores every sample; a sample "
           "is kept with probability sigmoid(F − γ), where γ is a percentile of the scores F.")

entry = next((e for e in state.manifest()
              if e["kind"] == "checkpoint" and e["model"] == "gan" and e["dataset"] == name), None)
if entry is None:
    st.info(f"No GAN is shipped for {name} yet. Train one with `python -m core train gan --dataset {name}`, "
            f"then `python -m core ship gan --dataset {name}`.")
    st.stop()
gan, _ = state.model_or_stop("gan", name)

m = entry["metrics"]
st.subheader("Measured on the shipped GAN")
cols = st.columns(4)
cols[0].metric("FD, GAN", f"{m['fd_gan']:.2f}", help="Fréchet distance to the test set in the features "
               "of the project's own classifier (lower is better)")
cols[1].metric("FD, GAN + DRS", f"{m['fd_drs']:.2f}", f"{m['fd_change']:+.1%}", delta_color="inverse")
cols[2].metric("Acceptance rate", f"{m['acceptance_rate']:.1%}", help=f"at the {m['gamma_percentile']:g}th percentile")
cols[3].metric("Real training images", f"{m['fd_train_images']:.2f}", help="FD of real images: the floor")
st.caption(f"{m['samples']:,} samples each; classifier test accuracy {m['classifier_accuracy']:.2%}. "
           f"Rebuilt with `{entry['command']}`.")
refit = (entry.get("curve") or [{}])[-1].get("last_layer")
calibration = ("D was calibrated as in the paper: it kept training on held-out real images against fresh "
               "fakes, with early stopping on a validation split")
if refit:
    grid = refit["pooled_grid"]
    whole = grid == max(int(tried.split("x")[0]) for tried in refit["val_log_loss"])
    chosen_by = ("by the FD of DRS's accepted samples against the GAN's own training images in the VAE's "
                 "features, together with γ's percentile" if refit.get("chosen_by") == "validation_fd"
                 else "by validation log loss")
    held_out = splits.held_out_count(gan, len(state.dataset_or_stop(name, "train")))
    sizes = drs_calibration.head_fit_sizes(held_out, gan.config.refit_min_fakes)
    calibration += (f"; then its last layer was refitted on the same split, a logistic regression on its "
                    f"last feature map pooled to {grid}×{grid}, with penalty C = {refit['penalty_c']:g} "
                    f"(both chosen {chosen_by}{f'; {grid}×{grid} is the whole map' if whole else ''}). "
                    f"Each head was fitted on {sizes.real:,} held-out real images against {sizes.fakes:,} "
                    f"fakes, and validated on {sizes.validation:,} more against as many")
st.caption(calibration + ".")
validation = m.get("gamma_percentile_validation")
if validation:
    st.markdown(
        f"**How γ was set.** The {m['gamma_percentile']:g}th percentile, chosen on the GAN's own training "
        f"images in the features of the shipped VAE (its posterior means), never on the test set nor in a "
        f"space a figure here is measured in: of the percentiles 0 to 95 in steps of 5, the one whose "
        f"{validation['samples']:,} accepted samples (from one scored pool of {validation['pool']:,}) had "
        f"the lowest FD against those images. The test set's FD in the classifier's features, at a few "
        f"percentiles, is beside it.")
    st.plotly_chart(figures.fd_by_percentile(
        {"VAE features, training images (chooses γ)": validation["fd"],
         "classifier features, test set (reported)": {p: point["fd"] for p, point in m["sweep"].items()}},
        m["gamma_percentile"]))
if "fd_change_by_draw" in m:
    draws = ", ".join(f"{c:+.1%}" for c in m["fd_change_by_draw"])
    st.markdown(f"**One draw is noisy.** The FD change above is the first of {len(m['fd_change_by_draw'])} "
                f"independent draws (BurnIn, plain samples and DRS samples each time): {draws}; "
                f"median **{m['fd_change_median']:+.1%}**.")
# The same draws in the other reported spaces; no space a figure is measured in chose anything.
INDEPENDENT_SPACES = {"probe": "an MLP probe's features", "swav_pooled": "SwAV's pooled features"}
judged = [(label, m["independent"][space]) for space, label in INDEPENDENT_SPACES.items()
          if space in m.get("independent", {})]
if judged:
    changes = "; ".join(f"**{j['fd_change_median']:+.1%}** in {label} (draws "
                        f"{', '.join(f'{c:+.1%}' for c in j['fd_change_by_draw'])})" for label, j in judged)
    st.markdown(f"**In features that chose nothing.** D's head and γ were chosen by FD in the VAE's features, "
                f"so neither the change above nor these are in the measure that was optimised. The same "
                f"draws change the FD by {changes}.")
if "fd_feature_ratio" in m:
    st.markdown(
        f"**What selection could do.** The same rule driven by a ratio fitted on the "
        f"classifier's own features (real against fake) would take the FD to "
        f"**{m['fd_feature_ratio']:.2f}** ({m['fd_feature_ratio'] / m['fd_gan'] - 1:+.1%}, "
        f"{m['acceptance_rate_feature_ratio']:.1%} accepted): that is not DRS, only how far selection "
        f"alone can go. The discriminator's ranking of the same samples has a rank correlation of "
        f"**{m['rank_correlation_d_feature_ratio']:.2f}** with that ratio: it tells real from fake by "
        f"other cues than the ones the FD measures.")
classes = state.dataset_or_stop(name, "test").classes
st.plotly_chart(figures.class_shares(classes, {"GAN": m["class_shares_gan"], "GAN + DRS": m["class_shares_drs"]}))
st.caption("Mode coverage: how the samples spread over the classes, by the classifier's labels.")

st.subheader("Your draw")
left, middle, right = st.columns(3)
n = left.select_slider("Samples to draw", options=[200, 500, 1000, 2000, 5000], value=state.DRS_FIRST_DRAW[0])
seed = middle.number_input("Seed", min_value=0, max_value=2**31 - 1, value=state.DRS_FIRST_DRAW[1], step=1)
percentile = right.slider("γ percentile", 0, 99, int(m["gamma_percentile"]),
                          help="γ is this percentile of F over the draw: higher keeps fewer, better samples")
try:
    draw = state.drs_draw(name, int(n), int(seed))
except ValueError as exc:
    st.error(str(exc))
    st.stop()
gamma = draw.gamma(percentile)
probability = drs.acceptance_probability(draw.f, gamma)
accepted = draw.accepted(percentile)
st.metric("Accepted in this draw", f"{int(accepted.sum()):,} of {n:,} ({accepted.float().mean():.1%})")

order = torch.argsort(probability, descending=True)
per_row = 8
best, worst = order[:per_row * 2], order[-per_row * 2:].flip(0)
high, low = st.columns(2)
for col, picks, title in ((high, best, "Highest acceptance"), (low, worst, "Lowest acceptance")):
    with col:
        st.markdown(f"**{title}**")
        st.image([draw.images[i, 0].numpy() for i in picks], width=64,
                 caption=[f"{probability[i]:.2f}" for i in picks])

st.plotly_chart(figures.acceptance_histogram((draw.f - gamma).numpy()))
kept, dropped = st.columns(2)
for col, mask, title in ((kept, accepted, "Accepted"), (dropped, ~accepted, "Rejected")):
    chosen = draw.images[mask.nonzero()[:64, 0]]
    col.markdown(f"**{title}** ({int(mask.sum()):,}; first 64 shown)")
    if len(chosen):
        col.image(images.grid(chosen, nrow=8))

st.subheader("The 25-Gaussians toy (the paper's Figure 3)")
try:
    clouds, toy = state.load_study("drs-toy", "toy")
except pretrained.ArtifactError as exc:
    st.info(str(exc))
    st.stop()
t = toy["metrics"]
titles = {"real": "Real: 25 Gaussians, σ = 0.05",
          "gan": f"GAN: {t['hq_gan']:.0%} high quality, {t['modes_gan']} modes",
          "drs": f"GAN + DRS: {t['hq_drs']:.0%} high quality, {t['modes_drs']} modes"}
st.plotly_chart(figures.point_clouds({k: clouds[k] for k in ("real", "gan", "drs")}, titles))
st.caption(f"High quality: within 4σ of a centre. Acceptance rate {t['acceptance_rate']:.1%} at the "
           f"{t['gamma_percentile']:g}th percentile; std of the high-quality points "
           f"{t['hq_std_gan']:.3f} → {t['hq_std_drs']:.3f}. Rebuilt with `{toy['command']}`.")
