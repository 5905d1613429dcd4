"""The names the command line accepts (datasets, model families), importable without torch, so a
mistyped argument is answered at once. ``core.data`` and ``core.models`` use these same names;
a test keeps ``MODEL_FAMILIES`` equal to the families ``core.models`` builds."""

DATASETS = ("fashion-mnist", "mnist")
DEFAULT_DATASET = "fashion-mnist"
MODEL_FAMILIES = ("vae", "exemplar_vae", "classifier", "probe", "swav", "gan", "gon", "implicit_gon", "gon_ae",
                  "implicit_gon_ae")
