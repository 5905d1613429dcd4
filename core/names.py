"""The names the command line accepts (datasets, model families), importable without torch, so a
mistyped argument is answered at once. ``core.data`` and ``core.models`` use these same names;
a test keeps ``MODEL_FAMILIES`` equal to the families ``core.models`` builds."""

DATASETS = ("fashion-mnist", "mnist")
DEFAULT_DATASET = "fashion-mnist"
MODEL_FAMILIES = ("vae", "exemplar_vae", "classifier", "probe", "swav", "gan", "gon", "implicit_gon", "gon_ae",
                  "implicit_gon_ae")


def cuda_index(device: str) -> int | None:
    """N for a device named cuda or cuda:N (0 for cuda), None for cpu; ValueError for any other."""
    kind, colon, index = device.partition(":")
    if device == "cpu":
        return None
    if kind == "cuda" and (not colon or index.isdigit()):
        return int(index or 0)
    raise ValueError(f"expected cpu, cuda or cuda:N, got {device!r}")
