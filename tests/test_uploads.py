"""Uploads: MNIST-style preprocessing of any picture, refusal of every kind of bad input, and
printed or photographed digits landing among exemplars of their own class (shipped mnist model)."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import upload_images as ui
from core import uploads
from core.uploads import UploadError, preprocess


def ink_box(x: torch.Tensor) -> tuple[int, int]:
    rows, cols = torch.nonzero(x[0] > 0, as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    a = x[0]
    r = torch.arange(28.0)
    return float((a.sum(1) * r).sum() / a.sum()), float((a.sum(0) * r).sum() / a.sum())


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


# -- preprocessing ------------------------------------------------------------------------------


def test_output_is_mnist_shaped_light_ink_on_black_20px_box_centred_by_mass():
    x = preprocess(ui.encode(ui.printed_digit(7)))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() == pytest.approx(1.0)
    assert x[0, 0].abs().sum() == 0 and x[0, :, 0].abs().sum() == 0  # black background
    assert max(ink_box(x)) in (19, 20, 21)  # longest side 20 px (anti-aliased edge may add one)
    cy, cx = centre_of_mass(x)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


def test_aspect_ratio_is_kept():
    wide = Image.new("L", (400, 100), 255)
    from PIL import ImageDraw
    ImageDraw.Draw(wide).rectangle((20, 30, 380, 70), fill=0)  # a 9:1 bar
    x = preprocess(ui.encode(wide))
    h, w = ink_box(x)
    assert w in (19, 20, 21) and 2 <= h <= 4


def test_light_ink_on_dark_is_not_inverted():
    dark = Image.eval(ui.printed_digit(3), lambda v: 255 - v)
    assert similarity(preprocess(ui.encode(dark)), preprocess(ui.encode(ui.printed_digit(3)))) > 0.98


reference = preprocess(ui.encode(ui.printed_digit(5)))


@pytest.mark.parametrize("kind, content", [
    ("photo JPEG", ui.encode(ui.photographed(ui.printed_digit(5)), "JPEG", quality=85)),
    ("EXIF-rotated photo", ui.exif_rotated_jpeg(ui.photographed(ui.printed_digit(5)))),
    ("RGBA over white", ui.rgba_ink(ui.printed_digit(5))),
    ("CMYK JPEG", ui.cmyk_jpeg(ui.printed_digit(5))),
    ("16-bit PNG", ui.sixteen_bit_png(ui.printed_digit(5))),
    ("animated GIF", ui.animated_gif(ui.printed_digit(5))),
    ("WebP", ui.encode(ui.printed_digit(5).convert("RGB"), "WEBP", quality=90)),
    ("BMP", ui.encode(ui.printed_digit(5), "BMP")),
    ("palette PNG", ui.encode(ui.printed_digit(5).convert("P"))),
    ("1-bit PNG", ui.encode(ui.printed_digit(5).convert("1"))),
    ("huge photo", ui.encode(ui.photographed(ui.printed_digit(5, side=3000)), "JPEG", quality=80)),
    ("tiny 28x28", ui.encode(ui.printed_digit(5).resize((28, 28), Image.Resampling.LANCZOS))),
])
def test_every_mode_and_container_gives_the_same_digit(kind, content):
    x = preprocess(content)
    assert x.shape == (1, 28, 28)
    assert similarity(x, reference) > 0.85, kind


def test_exif_orientation_is_applied():
    upright = preprocess(ui.encode(ui.printed_digit(7), "JPEG", quality=92))
    rotated = preprocess(ui.exif_rotated_jpeg(ui.printed_digit(7)))
    ignored = preprocess(ui.encode(ui.printed_digit(7).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92))
    assert similarity(rotated, upright) > 0.95
    assert similarity(ignored, upright) < 0.8  # the test can tell a rotated 7 from an upright one


# -- bad input ----------------------------------------------------------------------------------

BAD = {
    "empty": (b"", "empty"),
    "text": (b"hello, this is not a picture at all\n" * 10, "not an image"),
    "random bytes": (np.random.default_rng(0).bytes(5000), "not an image"),
    "truncated PNG": (ui.encode(ui.photographed(ui.printed_digit(2)))[:3000], "truncated"),
    "truncated JPEG": (ui.encode(ui.photographed(ui.printed_digit(2)), "JPEG")[:2000], "truncated"),
    "blank white": (ui.encode(Image.new("L", (200, 200), 255)), "blank"),
    "blank black": (ui.encode(Image.new("RGB", (200, 200), (0, 0, 0))), "blank"),
    "blank transparent": (ui.encode(Image.new("RGBA", (200, 200), (0, 0, 0, 0))), "blank"),
    "blank noisy paper": (ui.encode(ui.photographed(Image.new("L", (300, 300), 255)), "JPEG"), "blank"),
    "over 5 MB": (ui.encode(Image.new("L", (8, 8), 255)) + b"\0" * (5 * 2**20), "5 MB"),
    "40+ megapixel header": (ui.png_with_size(8000, 6000), "megapixels"),
    "decompression bomb header": (ui.png_with_size(100_000, 100_000), "megapixels"),
    "SVG": (ui.SVG, "SVG"),
    "SVG with a BOM": (b"\xef\xbb\xbf" + ui.SVG, "SVG"),
    "HTML": (ui.HTML, "HTML"),
    "TIFF (not accepted)": (ui.encode(ui.printed_digit(1), "TIFF"), "not an image"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_is_refused_with_a_plain_message(kind):
    content, words = BAD[kind]
    with pytest.raises(UploadError) as caught:
        preprocess(content)
    assert isinstance(caught.value, ValueError)
    assert words in str(caught.value), str(caught.value)
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 200


def test_a_real_bomb_is_refused_before_decoding():
    content = ui.real_png_bomb(7000)  # 49 megapixels in a few kB; PIL's own limit (89M) lets it by
    assert len(content) < 200_000
    with pytest.raises(UploadError, match="megapixels"):
        preprocess(content)


def test_a_png_whose_text_chunk_mentions_html_is_read_as_the_picture_it_is():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><body>made by a web tool</body></html>")  # an early tEXt chunk
    buffer = io.BytesIO()
    ui.printed_digit(4).save(buffer, "PNG", pnginfo=info)
    assert b"<html>" in buffer.getvalue()[:200]
    assert similarity(preprocess(buffer.getvalue()), preprocess(ui.encode(ui.printed_digit(4)))) > 0.99


def test_a_palette_image_with_transparency_is_seen_over_white_paper():
    """Transparent palette entries become paper, whatever colour the palette gives them."""
    im = Image.new("P", (120, 120), 0)
    im.putpalette([0, 0, 0] + [255, 255, 255] + [0, 0, 0] * 254)
    im.paste(2, (50, 20, 70, 100))  # index 2: black ink
    im.info["transparency"] = 0  # index 0, the background, is black but transparent
    buffer = io.BytesIO()
    im.save(buffer, "PNG", transparency=0)
    x = preprocess(buffer.getvalue())
    assert max(ink_box(x)) in (19, 20, 21) and x[0, 0, 0] == 0  # the bar is the ink, not the paper


def test_nothing_is_added_after_an_error(session):
    before = (len(session.own), dict(session.uploads), session.own.next_id, len(session.base))
    for kind, (content, _) in BAD.items():
        with pytest.raises(UploadError):
            session.add_file(content, kind)
        assert (len(session.own), dict(session.uploads), session.own.next_id, len(session.base)) == before
    upload = session.add_file(ui.encode(ui.printed_digit(4)), "four.png")  # and it still works
    assert len(session.own) == 1 and upload.id >= session.base.next_id


# -- the shipped mnist model: do real digits land among their own class? ------------------------


@pytest.fixture(scope="module")
def mnist():
    from core import latent_index, pretrained

    try:
        model, _ = pretrained.load("exemplar_vae", "mnist")
    except (ValueError, OSError) as exc:
        pytest.skip(f"needs the shipped mnist exemplar_vae: {exc}")
    return model, latent_index.for_dataset(model, "mnist")


@pytest.fixture
def session(mnist):
    return uploads.UploadSession(*mnist)


def majority_correct(mnist, pictures: dict[int, bytes], k: int = 10) -> list[int]:
    model, index = mnist
    right = []
    for digit, content in pictures.items():
        _, _, labels = index.search(model.encode(preprocess(content)[None]), k)
        if np.bincount(labels[0], minlength=10).argmax() == digit:
            right.append(digit)
    return right


# Measured with the shipped model: printed 8/10 (6 and 9 miss: the font's closed loops read as 0),
# photographed 7/10 (1, 6 and 9 miss), drawn 4/4. Deterministic images; the bars are those counts
# (7 for printed too), so a regression of the preprocessing shows up.
def test_printed_digits_land_among_their_own_class(mnist):
    right = majority_correct(mnist, {d: ui.encode(ui.printed_digit(d)) for d in range(10)})
    assert len(right) >= 7, right


def test_photographed_digits_land_among_their_own_class(mnist):
    pictures = {d: ui.exif_rotated_jpeg(ui.photographed(ui.printed_digit(d, side=900), seed=d)) for d in range(10)}
    right = majority_correct(mnist, pictures)
    assert len(right) >= 7, right


def test_hand_drawn_thick_stroke_digits_land_among_their_own_class(mnist):
    right = majority_correct(mnist, {d: ui.encode(ui.photographed(ui.drawn_digit(d)), "JPEG")
                                     for d in ui.STROKES})
    assert len(right) >= 3, right


# -- the command line ---------------------------------------------------------------------------


def test_neighbors_cli_prints_one_json_line_per_image_and_fails_if_any_failed(tmp_path, capsys, mnist):
    from core.__main__ import main

    good = tmp_path / "seven.png"
    good.write_bytes(ui.encode(ui.printed_digit(7)))
    fake = tmp_path / "fake.png"
    fake.write_bytes(ui.SVG)
    rc = main(["neighbors", str(good), str(fake), str(tmp_path / "missing.png"),
               "--model", "exemplar_vae", "--dataset", "mnist", "-k", "5", "--json"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 2 and "Traceback" not in out + err and err.startswith("error: 2 of 3")
    assert [line["file"] for line in lines] == [str(good), str(fake), str(tmp_path / "missing.png")]
    found = lines[0]["neighbors"]
    assert len(found) == 5 and set(found[0]) == {"index", "label", "distance"}
    assert [n["distance"] for n in found] == sorted(n["distance"] for n in found)
    assert sum(n["label"] == "7" for n in found) >= 3
    assert "SVG" in lines[1]["error"] and lines[2]["error"] == "no such file"
    assert main(["neighbors", str(good), "--dataset", "mnist", "-k", "3", "--json"]) == 0


@pytest.mark.slow  # loads both shipped exemplar_vae models and encodes 70k images
def test_upload_benchmark_measures_both_paths_and_they_agree():
    from core.bench_uploads import bench_uploads

    result = bench_uploads(repeats=2)
    assert result["knn_exemplars"] == 70_000 and result["knn_agreement_with_bruteforce"] == 1.0
    for key in ("upload_pipeline_ms", "upload_pipeline_bruteforce_ms", "knn_query_ms", "knn_bruteforce_ms"):
        assert result[key] > 0
