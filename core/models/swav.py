"""SwAV: self-supervised features and label-free clusters by swapping cluster assignments.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
NeurIPS 2020; official code facebookresearch/swav (``main_swav.py``, ``distributed_sinkhorn``).

Every image is cut into 2 global crops (28 px) and several small crops (14 px). Each global crop's
L2-normalised projection z is scored against K prototypes (a bias-free linear layer whose rows are
kept on the unit sphere); Sinkhorn-Knopp turns the scores of the batch into soft codes Q that use
every prototype equally (ε = 0.05, 3 iterations). Each crop then predicts the code of the *other*
global crop: cross-entropy between Q and softmax(zᵀC / τ), τ = 0.1 (the "swapped prediction").
The prototypes stay frozen for the first epoch, as in the paper, so that the codes do not chase
randomly initialised prototypes. A queue of past global-crop projections joins Sinkhorn when the
batch is small (fewer than ``QUEUE_BELOW`` images), so the equal partition is over enough samples.

A prototype's index is the image's cluster: ``assign`` gives it with the softmax confidence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from core.models.inference import inference

QUEUE_BELOW = 256  # batches smaller than this get a queue of past projections for Sinkhorn
KNN_K = 20
KNN_TEMPERATURE = 0.07  # the weighted vote of Wu et al. 2018, as DINO's and SwAV's kNN evaluations
READOUT_GRIDS = (1, 2, 4, 7)  # kNN read-outs tried: the last feature map pooled to g×g (7: unpooled)
VALIDATION_SHARE = 1 / 6  # of the training images, to choose the read-out (10k of fashion-mnist's 60k)
MAP_GRID = 2  # the read-out of maps and neighbours (see SwAV.encode)
OPTIMIZERS = ("adamw", "lars")
LARS_TRUST = 0.001  # the official code's LARC trust coefficient


@dataclass
class SwAVConfig:
    width: int = 32  # channels of the first conv stage; the next two have 2× and 4× as many
    # 3×3 stages at 4·width channels on the 7×7 map. Each after the first widens the receptive
    # field by 8 px of the image (18 px with one stage, 26 with two): a 28 px image needs more
    # than 18 to relate its parts, and this is the network's depth knob.
    top_stages: int = 1
    # 3×3 stages at 4·width channels after those, the first with stride 2 (7×7 → 4×4 for a 28 px
    # image). Each adds 8 px and then 16 px to the receptive field: two give every feature the
    # whole image (42 px), which a global pool over local 18 px features never has.
    coarse_stages: int = 0
    # Fields added after checkpoints were shipped, with the value those checkpoints were trained
    # with (not a guess at a default): checkpoint.build_model fills in these and nothing else.
    ADDED_FIELDS: ClassVar[dict[str, object]] = {"top_stages": 1, "coarse_stages": 0, "optimizer": "adamw"}
    hidden_dim: int = 256  # projection head's hidden layer
    proj_dim: int = 64  # the space prototypes live in
    prototypes: int = 50  # K: several per class, as the paper uses more prototypes than classes
    temperature: float = 0.1  # τ of the swapped prediction
    epsilon: float = 0.05  # ε of Sinkhorn-Knopp
    sinkhorn_iterations: int = 3
    global_crops: int = 2
    local_crops: int = 4
    global_size: int = 28
    local_size: int = 14
    global_scale: tuple[float, float] = (0.3, 1.0)  # area share of the image a crop covers
    local_scale: tuple[float, float] = (0.1, 0.4)
    flip: bool = True  # horizontal flips (one config for both datasets; a mirrored digit stays near its class)
    freeze_prototypes_epochs: int = 1
    queue_length: int = 3840  # projections kept per global crop, used only below QUEUE_BELOW
    queue_start_epoch: int = 1
    batch_size: int = 256
    # "adamw", or "lars": SGD with momentum 0.9 whose step for each weight tensor is scaled to its
    # norm (LARC), as the official code trains (there at lr 0.6 for a batch of 256: set lr too).
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-6

    def __post_init__(self):  # a config read back from a checkpoint has lists, not tuples
        self.global_scale, self.local_scale = tuple(self.global_scale), tuple(self.local_scale)
        if self.global_crops != 2:
            raise ValueError("SwAV swaps the codes of exactly 2 global crops")
        if self.top_stages < 1:
            raise ValueError(f"top_stages must be at least 1, got {self.top_stages}")
        if self.coarse_stages < 0:
            raise ValueError(f"coarse_stages must be at least 0, got {self.coarse_stages}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


def conv_stage(c_in: int, c_out: int, pool: bool, stride: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
              nn.ReLU()]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class LARS(torch.optim.SGD):
    """SGD with momentum whose step for each weight tensor is scaled by trust · ‖w‖ / (‖g‖ + λ‖w‖),
    weight decay λ included in the gradient first: You et al. 2017's layer-wise rate, as apex's
    LARC without clipping, which the official SwAV wraps around SGD. A tensor moves by about the
    same fraction of its norm each step, whatever its gradient's scale."""

    def __init__(self, params, lr: float, weight_decay: float, trust: float = LARS_TRUST,
                 momentum: float = 0.9, eps: float = 1e-8):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=0.0)
        self.decay, self.trust, self.eps = weight_decay, trust, eps

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                weight_norm, grad_norm = p.norm(), p.grad.norm()
                if weight_norm > 0 and grad_norm > 0:  # as LARC: a zero tensor or gradient keeps plain SGD
                    scale = self.trust * weight_norm / (grad_norm + self.decay * weight_norm + self.eps)
                    p.grad.add_(p, alpha=self.decay).mul_(scale)
        return super().step(closure)


@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """Soft codes (B, K) from prototype scores (B, K): each row sums to 1, and every prototype
    receives about B / K of the mass (the equal partition, SwAV Eq. 3 and its Sinkhorn solver)."""
    q = torch.exp((scores - scores.max()) / epsilon).t()  # (K, B); the shift cancels when normalised
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)  # each prototype gets 1/K of the mass
        q /= k
        q /= q.sum(dim=0, keepdim=True)  # each sample gets 1/B
        q /= b
    return (q * b).t()  # (B, K), rows sum to 1


def random_crops(x: Tensor, n: int, size: int, scale: tuple[float, float], flip: bool,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), generator=None) -> Tensor:
    """n random resized crops of every image, (n * B, 1, size, size), crop-major.

    RandomResizedCrop's sampling (area share in ``scale``, log-uniform aspect ratio), with its own
    box for every image: torchvision's ``roi_align`` cuts and resizes all boxes in one call, where
    a transforms.v2 call on a batch would draw a single box for the whole batch. Brightness and
    contrast change a little, per crop, as a small colour jitter for grey images.
    """
    b, _, h, w = x.shape
    m = n * b
    area = torch.empty(m).uniform_(*scale, generator=generator) * h * w
    log_r = torch.empty(m).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(log_r)
    cw = torch.sqrt(area * r).clamp(2, w)
    ch = torch.sqrt(area / r).clamp(2, h)
    x0 = torch.rand(m, generator=generator) * (w - cw)
    y0 = torch.rand(m, generator=generator) * (h - ch)
    owner = torch.arange(b).repeat(n).float()  # crop j of image i sits at j * B + i
    # Drawn on the CPU whatever the device, so that a GPU run sees the same crops as a CPU one.
    boxes = torch.stack([owner, x0, y0, x0 + cw, y0 + ch], dim=1).to(x)  # (m, 5): image, x1, y1, x2, y2
    from torchvision.ops import roi_align  # here, not at the top: it imports torch._dynamo (3 s)

    crops = roi_align(x, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    if flip:
        mirrored = (torch.rand(m, generator=generator) < 0.5).to(x.device)
        crops = torch.where(mirrored[:, None, None, None], crops.flip(-1), crops)
    contrast = torch.empty(m, 1, 1, 1).uniform_(0.7, 1.3, generator=generator).to(x)
    brightness = torch.empty(m, 1, 1, 1).uniform_(-0.1, 0.1, generator=generator).to(x)
    mean = crops.mean(dim=(1, 2, 3), keepdim=True)
    return ((crops - mean) * contrast + mean + brightness).clamp(0, 1)


class SwAV(nn.Module):
    family = "swav"
    Config = SwAVConfig
    # Trains on a GPU where one is lent: crops are drawn on the CPU and moved; what the app and
    # the evaluator call takes and returns CPU tensors.
    runs_on_any_device = True
    TABLE_COLUMNS = (
        ("20-NN accuracy", "knn_accuracy", "{:.4f}"),
        ("read-out grid", "knn_readout_grid", "{}"),
        ("untrained 20-NN", "knn_accuracy_untrained", "{:.4f}"),
        ("pixels 20-NN", "knn_accuracy_pixels", "{:.4f}"),
        ("vae 20-NN", "knn_accuracy_vae", "{:.4f}"),
        ("exemplar_vae 20-NN", "knn_accuracy_exemplar_vae", "{:.4f}"),
        ("NMI", "nmi", "{:.3f}"),
        ("ARI", "ari", "{:.3f}"),
        ("prototypes", "prototypes", "{}"),
        ("largest cluster", "largest_cluster_share", "{:.3f}"),
        ("test images", "test_images", "{}"),
    )

    def __init__(self, config: SwAVConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = nn.Sequential(
            # A strided first conv: no full-resolution activations, the costliest part on a CPU.
            nn.Conv2d(1, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            # (B, w, 14, 14) for a 28-px crop, (B, w, 7, 7) for a 14-px one
            conv_stage(w, 2 * w, pool=True),  # (B, 2w, 7, 7)
            conv_stage(2 * w, 4 * w, pool=False),
            *(conv_stage(4 * w, 4 * w, pool=False) for _ in range(config.top_stages - 1)),
            *(conv_stage(4 * w, 4 * w, pool=False, stride=2 if i == 0 else 1)
              for i in range(config.coarse_stages)),  # (B, 4w, 4, 4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 4w): any crop size gives one vector
        )
        self.features_dim = 4 * w
        self.head = nn.Sequential(
            nn.Linear(4 * w, config.hidden_dim), nn.BatchNorm1d(config.hidden_dim), nn.ReLU(),
            nn.Linear(config.hidden_dim, config.proj_dim),
        )
        self.prototypes = nn.Linear(config.proj_dim, config.prototypes, bias=False)
        self.normalize_prototypes()
        # Past projections of the 2 global crops; not saved (it is refilled within an epoch).
        self.register_buffer("queue", torch.zeros(2, config.queue_length, config.proj_dim),
                             persistent=False)
        self.queue_filled = 0

    @property
    def uses_queue(self) -> bool:
        return self.config.batch_size < QUEUE_BELOW and self.config.queue_length > 0

    @property
    def device(self) -> torch.device:
        return self.prototypes.weight.device

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def project(self, x: Tensor) -> Tensor:
        """L2-normalised projections (B, proj_dim) of crops of any size."""
        return F.normalize(self.head(self.encoder(x)), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Prototype scores zᵀC (B, K) of images (B, 1, H, W) in [0, 1]."""
        return self.prototypes(self.project(x))

    def crops(self, x: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        """The multi-crop views of a batch: global (2B, 1, 28, 28) and local (nB, 1, 14, 14)."""
        c = self.config
        return (random_crops(x, c.global_crops, c.global_size, c.global_scale, c.flip, generator=generator),
                random_crops(x, c.local_crops, c.local_size, c.local_scale, c.flip, generator=generator))

    def swav_loss(self, x: Tensor, *, epoch: int = 0) -> Tensor:
        c = self.config
        b = len(x)
        global_views, local_views = self.crops(x)
        z_global, z_local = self.project(global_views), self.project(local_views)
        scores = self.prototypes(torch.cat([z_global, z_local]))  # (2B + nB, K), crop-major
        views = scores.split(b)  # one (B, K) block per crop
        loss = 0.0
        for i in range(2):
            with torch.no_grad():
                s = views[i].detach()
                if self.uses_queue and epoch >= c.queue_start_epoch and self.queue_filled >= c.queue_length:
                    s = torch.cat([s, self.prototypes(self.queue[i])])  # only B rows are used
                q = sinkhorn(s, c.epsilon, c.sinkhorn_iterations)[:b]
            others = [v for j, v in enumerate(views) if j != i]
            loss = loss + sum(-(q * F.log_softmax(v / c.temperature, dim=1)).sum(1).mean()
                              for v in others) / len(others)
        if self.uses_queue:  # newest first; the oldest batch falls off the end
            with torch.no_grad():
                z = z_global.detach().view(2, b, -1)
                self.queue[:, b:] = self.queue[:, :-b].clone()
                self.queue[:, :b] = z
                self.queue_filled = min(c.queue_length, self.queue_filled + b)
        return loss / 2

    # --- training, through core.train.train_family ---
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        if c.optimizer == "lars":
            return {"lars": LARS(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)}
        return {"adam": torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)}

    def on_epoch_start(self, images: Tensor) -> None:
        self.queue_filled = 0  # start each epoch's queue afresh, like the official code

    def train_step(self, x, y, optimizers, *, epoch: int) -> dict[str, float]:
        self.normalize_prototypes()
        loss = self.swav_loss(x, epoch=epoch)
        (opt,) = optimizers.values()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if epoch < self.config.freeze_prototypes_epochs:
            self.prototypes.weight.grad = None  # both optimisers skip a parameter without a gradient
        opt.step()
        self.normalize_prototypes()
        return {"loss": loss.item()}

    def curve_point(self, test) -> dict[str, float]:
        """Cluster balance on the first 2,000 test images: a collapse shows as one big cluster."""
        cluster, _ = self.assign(test.images[:2000])
        counts = np.bincount(cluster.numpy(), minlength=self.config.prototypes)
        return {"largest_cluster_share": float(counts.max() / counts.sum()),
                "empty_clusters": int((counts == 0).sum())}

    # --- inference ---
    @property
    def map_size(self) -> int:
        """Side of the encoder's last feature map for a 28 px image: 7, or 4 after coarse stages."""
        return 4 if self.config.coarse_stages else 7

    @inference
    def feature_map(self, x: Tensor, grid: int | None = None, batch_size: int = 2000) -> Tensor:
        """The encoder's last feature map (4·width channels, ``map_size``² positions), average-pooled
        to ``grid``×``grid`` (None: unpooled) and flattened: (N, 4·width·grid²). ``grid`` 1 is the
        globally pooled vector the projection head sees; larger grids keep where in the image a
        feature fired."""
        grid = grid or self.map_size
        return self.feature_maps(x, (grid,), batch_size)[grid]

    @inference
    def feature_maps(self, x: Tensor, grids: tuple[int, ...], batch_size: int = 2000) -> dict[int, Tensor]:
        """``feature_map`` at several grids from one pass of the trunk: {grid: (N, 4·width·grid²)}."""
        trunk = self.encoder[:-2]  # everything before the global average pool
        pieces = {grid: [] for grid in grids}
        for i in range(0, len(x), batch_size):
            last = trunk(x[i : i + batch_size].to(self.device))
            for grid in grids:
                pieces[grid].append(F.adaptive_avg_pool2d(last, grid).flatten(1).cpu())
        return {grid: torch.cat(parts) for grid, parts in pieces.items()}

    @torch.no_grad()
    def encode(self, x: Tensor, batch_size: int = 2000) -> Tensor:
        """Codes for maps and neighbours (N, 4·4·width): the feature map pooled to 2×2. Compact on
        purpose: the app keeps every image's code in memory (70k × 512 floats is 143 MB; the 7×7
        map would be 1.8 GB). The kNN evaluation chooses its own read-out (``measure``)."""
        return self.feature_map(x, MAP_GRID, batch_size)

    @inference
    def embed(self, x: Tensor, batch_size: int = 2000) -> Tensor:
        """L2-normalised projections (N, proj_dim), the space the prototypes live in."""
        return torch.cat([self.project(x[i : i + batch_size].to(self.device)).cpu()
                          for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def assign(self, x: Tensor, batch_size: int = 2000) -> tuple[Tensor, Tensor]:
        """Each image's cluster (its highest-scoring prototype) (N,) and the softmax(zᵀC/τ)
        probability of that prototype (N,), its confidence."""
        scores = self.prototypes(self.embed(x, batch_size).to(self.device)).cpu()
        p = torch.softmax(scores / self.config.temperature, dim=1)
        confidence, cluster = p.max(dim=1)
        return cluster, confidence

    def map_arrays(self, images: Tensor) -> dict[str, np.ndarray]:
        """What a shipped map of this model carries besides coordinates: every image's cluster."""
        cluster, confidence = self.assign(images)
        return {"cluster": cluster.numpy().astype(np.int16),
                "confidence": confidence.numpy().astype(np.float32)}

    def measure(self, dataset: str, *, limit: int | None = None, progress: bool = True,
                compare_with: dict[str, nn.Module] | None = None) -> dict:
        """kNN accuracy of the read-out chosen on training images, beside its controls (the
        untrained network, pooled features, the projection, pixels) and the encoders in
        ``compare_with`` (``core.evaluate.measure`` passes the shipped VAEs); NMI, ARI and
        cluster sizes of the prototypes."""
        from core import data

        began = time.perf_counter()
        train, test = data.load(dataset, "train"), data.load(dataset, "test")
        images, labels = test.images[:limit], test.labels[:limit]
        # One pass of the trunk over each image set gives every pooling the read-outs need.
        grids = tuple(sorted({*self.readout_grids, 1, MAP_GRID}))
        train_maps, test_maps = self.feature_maps(train.images, grids), self.feature_maps(images, grids)
        grid, validation = self.choose_readout(train.images, train.labels, train_maps)
        with torch.random.fork_rng():  # the control: same architecture, seed 0, never trained
            torch.manual_seed(0)
            untrained = type(self)(self.config).eval()
        features = {
            "knn_accuracy": (train_maps[grid], test_maps[grid]),
            "knn_accuracy_untrained": (untrained.feature_map(train.images, grid),
                                       untrained.feature_map(images, grid)),
            "knn_accuracy_map_codes": (train_maps[MAP_GRID], test_maps[MAP_GRID]),  # what encode gives
            "knn_accuracy_pooled": (train_maps[1], test_maps[1]),
            "knn_accuracy_projection": (self.embed(train.images), self.embed(images)),
            "knn_accuracy_pixels": (train.images.flatten(1), images.flatten(1)),
        }
        for other, net in (compare_with or {}).items():
            features[f"knn_accuracy_{other}"] = (net.encode(train.images), net.encode(images))
        result = {"dataset": dataset, "test_images": len(labels), "knn_k": KNN_K,
                  "knn_readout_grid": grid, "knn_readout_validation": validation}
        for key, (base, query) in tqdm(features.items(), desc="kNN", disable=not progress):
            result[key] = cosine_knn_accuracy(base, train.labels, query, labels)
        result.update(self.cluster_agreement(images, labels), prototypes=self.config.prototypes,
                      uniform_share=1.0 / self.config.prototypes,
                      seconds=round(time.perf_counter() - began, 1))
        return result

    def cluster_agreement(self, images: Tensor, labels: Tensor) -> dict[str, float | int]:
        """How the prototype clusters of ``images`` agree with their ``labels`` (NMI, ARI), and
        their sizes: the largest cluster's share and how many prototypes no image chose."""
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        cluster = self.assign(images)[0].numpy()
        counts = np.bincount(cluster, minlength=self.config.prototypes)
        return {"nmi": float(normalized_mutual_info_score(labels.numpy(), cluster)),
                "ari": float(adjusted_rand_score(labels.numpy(), cluster)),
                "largest_cluster_share": float(counts.max() / counts.sum()),
                "empty_clusters": int((counts == 0).sum())}

    @property
    def readout_grids(self) -> tuple[int, ...]:
        return tuple(g for g in READOUT_GRIDS if g <= self.map_size)  # a larger grid only repeats cells

    def choose_readout(self, images: Tensor, labels: Tensor,
                       maps: dict[int, Tensor] | None = None) -> tuple[int, dict[str, float]]:
        """The pooling grid of the kNN read-out, chosen on the training images alone: the last
        ``VALIDATION_SHARE`` of them query the rest. Returns the grid with the best validation
        accuracy and every candidate's accuracy; the test images play no part. (Probing conv
        features pooled to a small grid, not only globally, is the protocol of Zhang et al. 2016
        and Noroozi & Favaro 2016 for self-supervised conv layers.) ``maps``: the images'
        ``feature_maps`` at these grids, where the caller has them already."""
        n_val = max(1, int(len(images) * VALIDATION_SHARE))
        base, query = slice(0, len(images) - n_val), slice(len(images) - n_val, len(images))
        validation = {}
        grids = self.readout_grids
        for grid in grids:
            z = maps[grid] if maps is not None else self.feature_map(images, grid)
            validation[str(grid)] = cosine_knn_accuracy(z[base], labels[base], z[query], labels[query])
        best = max(grids, key=lambda g: validation[str(g)])  # ties go to the smaller grid
        return best, validation


def cosine_knn_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor,
                        k: int = KNN_K, temperature: float = KNN_TEMPERATURE) -> float:
    """k-NN accuracy with cosine similarity (faiss inner product on L2-normalised rows) and the
    weighted vote of the SwAV/DINO kNN protocol: each neighbour votes exp(similarity / 0.07)."""
    import faiss

    def unit(z: Tensor) -> np.ndarray:
        return np.ascontiguousarray(F.normalize(z.float(), dim=1).numpy(), dtype=np.float32)

    index = faiss.IndexFlatIP(train_z.shape[1])
    index.add(unit(train_z))
    sim, idx = index.search(unit(test_z), k)
    weights = torch.exp(torch.from_numpy(sim) / temperature)  # (Q, k)
    classes = int(train_y.max()) + 1
    votes = torch.zeros(len(test_z), classes).scatter_add_(1, train_y[torch.from_numpy(idx)], weights)
    return float((votes.argmax(1) == test_y).float().mean())


def cluster_table(cluster: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                  prototypes: int) -> list[dict]:
    """One row per non-empty cluster, largest first: its size, majority label and purity (the
    majority label's share of the cluster)."""
    rows = []
    for c in range(prototypes):
        members = labels[cluster == c]
        if len(members) == 0:
            continue
        counts = np.bincount(members, minlength=len(classes))
        rows.append({"cluster": c, "size": len(members), "majority label": classes[counts.argmax()],
                     "purity": float(counts.max() / len(members))})
    return sorted(rows, key=lambda r: -r["size"])


def confident_members(cluster: np.ndarray, confidence: np.ndarray, c: int, n: int) -> np.ndarray:
    """Indices of cluster ``c``'s ``n`` most confident members, most confident first."""
    members = np.flatnonzero(cluster == c)
    return members[np.argsort(-confidence[members], kind="stable")[:n]]
