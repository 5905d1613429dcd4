"""The upload page, headless (AppTest): several files at once, each added or shown its error; the
upload's neighbours, samples and place on the map; endpoints for interpolation; the shared store."""

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import upload_images as ui
from conftest import ROOT
from core import paths, pretrained
from core.store import ExemplarStore

MAIN = str(ROOT / "app" / "main.py")
PAGE = "views/upload.py"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STORE_DIR", tmp_path / "store")
    return ExemplarStore(tmp_path / "store")


def open_page(dataset: str = "mnist") -> AppTest:
    if not any(e["model"] == "exemplar_vae" and e["dataset"] == dataset for e in pretrained.read_manifest()):
        pytest.skip(f"no exemplar_vae shipped for {dataset}")
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.query_params["dataset"] = dataset
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def buttons(at: AppTest, prefix: str) -> list:
    return [b for b in at.button if (b.key or "").startswith(prefix)]


def test_upload_add_inspect_share_and_hand_to_interpolation(store):
    at = open_page()
    assert not at.error and any("Nothing added yet" in i.value for i in at.info)
    at.file_uploader[0].set_value([
        ("seven.png", ui.encode(ui.printed_digit(7)), "image/png"),
        ("photo.jpg", ui.exif_rotated_jpeg(ui.photographed(ui.printed_digit(3))), "image/jpeg"),
        ("fake.png", ui.SVG, "image/png"),
        ("cut.png", ui.encode(ui.photographed(ui.printed_digit(2)))[:3000], "image/png"),
    ]).run()
    assert not at.exception, at.exception
    errors = [unescape(e.value) for e in at.error]
    assert len(errors) == 2 and errors[0].startswith("fake.png: this is SVG")
    assert errors[1].startswith("cut.png:") and "truncated" in errors[1]
    assert [s.value for s in at.subheader] == ["Preprocessed, not added yet"]
    assert len(at.image) == 2  # the 28x28 previews, before anything is added
    [add] = [b for b in at.button if b.label.startswith("Add 2")]
    add.click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "2 exemplars: 2 yours, 0 from the shared store"
    assert any("Where they land on the map" == s.value for s in at.subheader)
    [chart] = at.main.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    yours = next(t for t in spec["data"] if t.get("name") == "yours")  # the uploads, ringed
    assert len(plotly_array(yours["x"])) == 2 and not any(t.get("name") == "from the shared store" for t in spec["data"])
    assert len(chart.proto.spec) < 100_000  # the map as a density image, not its 70k points
    assert len(at.expander) == 2
    captions = [c for im in at.image for c in im.captions]
    [near_seven] = [c for c in captions if c.startswith("Nearest exemplars")][-1:]  # oldest last
    assert near_seven.count(" 7 ") >= 3, near_seven  # a printed 7 among mnist's 7s
    assert any(c.startswith("16 samples around it") for c in captions)

    buttons(at, "endpoint:")[0].click().run()
    buttons(at, "endpoint:")[1].click().run()
    buttons(at, "endpoint:")[0].click().run()
    ends = at.session_state["interpolation_endpoints"]
    assert len(ends) == 2  # the newest two are kept
    assert all(e["image"].shape == (28, 28) and e["image"].dtype == np.float32 for e in ends)
    assert all(e["caption"].startswith("upload ") for e in ends)

    at.toggle[0].set_value(True).run()  # the prior over my exemplars alone
    assert not at.exception, at.exception

    [remove, _] = buttons(at, "remove:")
    remove.click().run()
    assert at.subheader[0].value == "1 exemplar: 1 yours, 0 from the shared store"
    assert len(store.load("mnist")["labels"]) == 0  # nothing shared until the user says so
    [save] = [b for b in at.button if b.label.startswith("Save 1")]
    save.click().run()
    assert not at.exception and any("Saved 1" in s.value for s in at.success)
    assert at.subheader[0].value == "1 exemplar: 0 yours, 1 from the shared store"  # in the same run
    assert len(store.load("mnist")["labels"]) == 1

    other = open_page()  # another user's session starts with the shared exemplar only
    assert other.subheader[0].value == "1 exemplar: 0 yours, 1 from the shared store"
    assert not buttons(other, "remove:")  # shared exemplars are not removed from a session


def unescape(markdown: str) -> str:
    """What a reader sees of text escaped with ``app.text.plain``."""
    from app.text import WORD_JOINER

    return re.sub(r"\\(.)", r"\1", markdown).replace(WORD_JOINER, "")


def test_names_are_shown_as_text_never_as_markdown():
    """Issue 22, item 2: a file name with Markdown links and images stays literal."""
    from app.text import plain
    from streamlit.testing.v1 import AppTest

    names = ["![t](http://HOST/pixel.png).png", "[click me](http://HOST/phish).png", "**bold** :red[x] $x^2$.png",
             "<img src=x onerror=alert(1)>.png", "a\nb.png", "see http://HOST/x and www.HOST.org or me@HOST.org"]
    script = "import streamlit as st\nfrom app.text import plain\n" + "".join(
        f"st.markdown(plain({n!r}))\n" for n in names)
    at = AppTest.from_string(script).run()
    for name, shown in zip(names, at.markdown):
        assert unescape(shown.value) == " ".join(name.split())
        assert "](" not in shown.value.replace("\\]\\(", "")  # no link or image syntax survives unescaped
        assert not re.search(r"https?:/|www\.|@\w", shown.value.replace("\\", ""))  # nor a bare URL or address
    assert plain("x") == "x"


def test_each_exemplar_is_placed_on_the_map_once_per_session(store, monkeypatch):
    """The map never moves, so a rerun reuses the places already found; only a new upload is
    placed, and where it lands is what a fresh placement gives."""
    import torch

    from app import state
    from core import projection

    placed = []
    place = projection.place

    def counting(new_codes, *args, **kwargs):
        placed.append(len(new_codes))
        return place(new_codes, *args, **kwargs)

    monkeypatch.setattr(projection, "place", counting)
    at = open_page()
    at.file_uploader[0].set_value([("seven.png", ui.encode(ui.printed_digit(7)), "image/png")]).run()
    [add] = [b for b in at.button if b.label.startswith("Add 1")]
    add.click().run()
    at.toggle[0].set_value(True).run()  # a rerun that adds nothing
    assert not at.exception, at.exception
    assert placed == [1]
    at.file_uploader[0].set_value([("three.png", ui.encode(ui.printed_digit(3)), "image/png")]).run()
    [add] = [b for b in at.button if b.label.startswith("Add 1")]
    add.click().run()
    assert not at.exception, at.exception
    assert placed == [1, 1]  # the second upload alone
    [chart] = at.main.get("plotly_chart")
    yours = next(t for t in json.loads(chart.proto.spec)["data"] if t.get("name") == "yours")
    session = at.session_state["upload_session:mnist"]
    latents, coords = state.latents("exemplar_vae", "mnist"), state.load_map("exemplar_vae", "mnist")["coords"]
    fresh = place(torch.stack([u.code for u in session.uploads.values()]), latents["codes"], coords,
                  index=latents["index"])
    np.testing.assert_allclose(np.c_[plotly_array(yours["x"]), plotly_array(yours["y"])], fresh, rtol=1e-5)


def plotly_array(values) -> np.ndarray:
    """A trace's coordinates as plotly.js reads them: a list, or typed-array bytes."""
    import base64

    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)
