import numpy as np
import streamlit as st
import torch

from app import state
from app.text import plain
from core import figures, images, projection, uploads
from core.store import ExemplarStore, StoreError

MODEL = "exemplar_vae"  # the family whose prior is built from exemplars
K = 10
ON_MAP = 20  # an upload's nearest dataset images, selected on the latent map
AROUND = 16
MAX_SHOWN = 12  # uploads shown in detail: each costs a search and 17 decodes per rerun
TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]

name = state.dataset()
st.title("Your exemplars")
st.caption("Upload photos or drawings: each is preprocessed the way MNIST was made, encoded, and "
           "becomes an exemplar of the Exemplar VAE's prior, without retraining. Your uploads stay "
           "in your session until you save them to the shared store.")
if not any(e["kind"] == "checkpoint" and e["model"] == MODEL and e["dataset"] == name
           for e in state.manifest()):
    st.info(f"No {MODEL} is shipped for {name} yet: see the Home page for how to train one.")
    st.stop()
model, entry = state.model_or_stop(MODEL, name)
train, test = state.dataset_or_stop(name, "train"), state.dataset_or_stop(name, "test")
base = state.latent_index(MODEL, name)
store = ExemplarStore()

key = f"upload_session:{name}"
if key not in st.session_state:  # one session per dataset, holding only this user's uploads
    # Codes in the store are kept per exact model: a re-shipped model encodes the rows again.
    session = uploads.UploadSession(model, base, model_key=f"{MODEL}@{entry['sha256'][:16]}")
    session.join_store(store, name)  # a damaged store gives what can be read, and a problem
    if store.problem:
        st.warning(store.problem)
    st.session_state[key] = session
session: uploads.UploadSession = st.session_state[key]
prepared: dict = st.session_state.setdefault(f"upload_prepared:{name}", {})  # file id -> result
added: set = st.session_state.setdefault(f"upload_added:{name}", set())  # file ids already added


def exemplar_image(i: int) -> torch.Tensor:
    """(1, 28, 28) image of an exemplar id: a map index (train then test) or a session upload."""
    if i in session.uploads:
        return session.uploads[i].image
    return train.images[i] if i < len(train) else test.images[i - len(train)]


def label_name(label: int) -> str:
    return train.classes[label] if label >= 0 else "no label"


files = st.file_uploader(f"Images: PNG, JPEG, WebP, BMP or GIF (first frame), up to {uploads.MAX_BYTES // 2**20} MB each",
                         type=TYPES, accept_multiple_files=True, key=f"files:{name}",
                         max_upload_size=uploads.MAX_BYTES // 2**20)
st.caption(f"A file over {uploads.MAX_BYTES // 2**20} MB is refused by your browser: its chip turns red "
           "and it is not sent.")
ready = []
for file in files or []:
    if file.file_id not in prepared:
        try:
            prepared[file.file_id] = uploads.preprocess(file.getvalue())
        except uploads.UploadError as exc:
            prepared[file.file_id] = str(exc)
    result = prepared[file.file_id]
    if isinstance(result, str):
        st.error(f"{plain(file.name)}: {plain(result)}")
    elif file.file_id not in added:
        ready.append((file, result))

if ready:
    st.subheader("Preprocessed, not added yet")
    columns = st.columns(min(len(ready), 6))
    labels = {}
    for i, (file, image) in enumerate(ready):
        with columns[i % len(columns)]:
            st.image(images.grid(image[None], nrow=1, scale=4), caption=plain(file.name))  # captions are Markdown
            labels[file.file_id] = st.selectbox("Label", [-1, *range(len(train.classes))],
                                                format_func=label_name, key=f"label:{file.file_id}")
    if st.button(f"Add {len(ready)} as exemplars", type="primary"):
        for file, image in ready:
            session.add(image, file.name, labels[file.file_id])
            added.add(file.file_id)
        st.rerun()

if not session.uploads:
    st.info("Nothing added yet.")
    st.stop()

ids = list(session.uploads)
own = [session.uploads[i] for i in ids]
mine = sum(not u.shared for u in own)
left, right = st.columns([3, 1])
heading = left.empty()  # filled after the save button, so that it counts what the save just shared
if right.button(f"Save {mine} to the shared store", disabled=not mine,
                help="Other people's sessions will start with them"):
    try:
        saved = len(session.save_to_store(store, name))
        st.success(f"Saved {saved} exemplars to the shared store.")
    except StoreError as exc:  # a limit, or a store that cannot be written: plain, no paths
        st.error(f"Could not save: {exc}")
shared = sum(u.shared for u in own)
heading.subheader(f"{len(own)} exemplar{'s' * (len(own) != 1)}: {len(own) - shared} yours, "
                  f"{shared} from the shared store")

seed = 0
if len(own) > MAX_SHOWN:
    st.caption(f"The newest {MAX_SHOWN} are shown in detail; all of them are on the map and in the prior.")
for upload in reversed(own[-MAX_SHOWN:]):
    with st.expander(f"{plain(upload.name)} ({label_name(upload.label)})", expanded=upload is own[-1]):
        found = session.neighbors(upload.code, K, exclude=upload.id)
        a, b, c = st.columns([1, 3, 2])
        pair = torch.stack([upload.image, session.reconstruction(upload.id)])
        a.image(images.grid(pair, nrow=1, scale=3), caption="Upload, then its reconstruction")
        b.image(images.grid(torch.stack([exemplar_image(f["index"]) for f in found]), nrow=K, scale=2),
                caption="Nearest exemplars: " + ", ".join(
                    f"{'yours' if f['upload'] else label_name(f['label'])} {f['distance']:.2f}" for f in found))
        around = session.around(upload.id, AROUND, generator=torch.Generator().manual_seed(seed))
        c.image(images.grid(around, nrow=8, scale=2),
                caption=f"{AROUND} samples around it: z ~ N(μ(upload), σ²I), decoded")
        one, on_map, two = st.columns(3)
        if on_map.button(f"Show its {ON_MAP} nearest images on the map", key=f"onmap:{name}:{upload.id}",
                         disabled=not state.shipped("map", MODEL, name)):
            nearest = [int(f["index"]) for f in session.neighbors(upload.code, ON_MAP + len(own), exclude=upload.id)
                       if not f["upload"]][:ON_MAP]
            # The map page takes these as its selection, in the space they were found in.
            st.session_state.update(map_selection=nearest, map_point=None, map_model_request=MODEL,
                                    map_focus={"index": nearest[0], "token": upload.id + 1_000_000})
            st.switch_page("views/latent_map.py", query_params={"dataset": name, "model": MODEL})
        if one.button("Use as interpolation endpoint", key=f"endpoint:{name}:{upload.id}"):
            ends = list(st.session_state.get("interpolation_endpoints", []))
            ends.append({"image": upload.image[0].numpy().astype(np.float32), "caption": f"upload {upload.name}"})
            st.session_state["interpolation_endpoints"] = ends[-2:]
            one.page_link("views/interpolate.py", label="Interpolate between the last two kept",
                          icon=":material/linear_scale:")
        if not upload.shared and two.button("Remove", key=f"remove:{name}:{upload.id}"):
            session.remove(upload.id)
            st.rerun()

maps = [e for e in state.manifest() if e["kind"] == "map" and e["model"] == MODEL and e["dataset"] == name]
if maps:
    st.subheader("Where they land on the map")
    arrays, latents = state.load_map(MODEL, name), state.latents(MODEL, name)
    # The map never moves, so an exemplar's place never changes: each is placed once per session
    # and map, and a large shared store costs its search on the first visit, not on every rerun.
    places: dict = st.session_state.setdefault(f"upload_places:{name}:{maps[0]['sha256']}", {})
    unplaced = [u for u in own if u.id not in places]
    if unplaced:
        places.update(zip((u.id for u in unplaced),
                          projection.place(torch.stack([u.code for u in unplaced]), latents["codes"],
                                           arrays["coords"], index=latents["index"])))
    placed = np.stack([places[u.id] for u in own])
    yours = np.array([not u.shared for u in own])
    st.plotly_chart(figures.exemplars_on_map(arrays["coords"], placed, yours), key=f"upload-map:{name}")
    st.caption("Over the map's images (grey, darker where they are dense): your exemplars ringed, the "
               "shared store's as dots, each placed by the map positions of its nearest exemplars.")

st.subheader("Samples from the prior, now with your exemplars")
only = st.toggle("Only around my exemplars", value=False,
                 help=f"The full prior picks each of its {len(session.exemplar_means()):,} exemplars "
                      "equally often, so yours are rarely drawn")
samples = session.sample_prior(32, generator=torch.Generator().manual_seed(seed), own_only=only)
st.image(images.grid(samples, nrow=16, scale=2), caption="Pick an exemplar, draw z ~ N(μ, σ²I), decode")
