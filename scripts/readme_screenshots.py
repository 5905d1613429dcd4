"""Copy the README's screenshots from the browser tests' output (tests/artifacts/, written by
`make test` and `make test-slow`) to docs/screenshots/, scaled to 960 px wide. Run it after both."""

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# README name <- the browser test's screenshot
SHOTS = {
    "latent-map.png": "map-box-fashion-mnist.png",
    "home.png": "page-home.png",
    "clusters.png": "page-clusters.png",
    "generate.png": "page-generate.png",
    "drs.png": "page-drs.png",
    "interpolate.png": "page-interpolate.png",
    "super-resolution.png": "interpolate-super-resolution.png",
    "upload.png": "upload-hostile-names.png",
    **{f"present-{page}.png": f"present-{page}.png"
       for page in ("home", "latent_map", "clusters", "generate", "drs", "interpolate", "upload")},
}
WIDTH = 960

missing = [source for source in SHOTS.values() if not (ROOT / "tests" / "artifacts" / source).exists()]
if missing:
    sys.exit(f"run the browser tests first (make test and make test-slow): missing {', '.join(missing)}")
out = ROOT / "docs" / "screenshots"
out.mkdir(parents=True, exist_ok=True)
for name, source in SHOTS.items():
    im = Image.open(ROOT / "tests" / "artifacts" / source).convert("RGB")
    im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.Resampling.LANCZOS)
    # 256 colours: screenshots of flat UI keep their look at a third of the size
    im.quantize(256, dither=Image.Dither.NONE).save(out / name, optimize=True)
print(f"{len(SHOTS)} screenshots in {out.relative_to(ROOT)}")
