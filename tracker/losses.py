"""Training loss terms of the CoTracker3 Kubric recipe (spec section 16.1).

Every function takes lists over supervision windows j:
    predictions: coords[j] (I, B, S_j, N, 2) px; vis[j], conf[j] (I, B, S_j, N) probabilities (after the sigmoid)
    ground truth: tracks[j] (B, S_j, N, 2) px; visibility[j], valid[j] (B, S_j, N) in {0, 1} (float or bool)
Stacked tensors (leading window axis) work too, since they iterate the same way. This is exactly the layout of
the model's `TrainOutput` (per-window lists).

Everything is computed in float32 with autocast disabled: under bf16 autocast the predictions may arrive in bf16,
and torch's binary_cross_entropy refuses to run under autocast.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GAMMA = 0.8
HUBER_DELTA = 6.0
CONF_DIST_THRESH = 12.0
EPS = 1e-6
# Weights of the four terms in the Kubric recipe total.
W_VISIBLE_TRACK = 0.05
W_OCCLUDED_TRACK = 0.01

TensorSeq = Sequence[torch.Tensor] | torch.Tensor


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float32)


def _no_autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, enabled=False)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * mask) / (1e-6 + sum(mask)) over all elements, as the official reduce_masked_mean."""
    return (x * mask).sum() / (EPS + mask.sum())


def huber(err: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    """Element-wise Huber: 0.5 e^2 if |e| <= delta else delta (|e| - delta / 2)."""
    a = err.abs()
    return torch.where(a <= delta, 0.5 * err * err, delta * (a - 0.5 * delta))


def _bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise binary cross-entropy on probabilities (log clamped at -100 like PyTorch), float32."""
    return F.binary_cross_entropy(prob, target, reduction="none")


def _window_mean(term, *seqs: TensorSeq) -> torch.Tensor:
    """Mean over windows j of term(*window-j tensors), each cast to float32 and evaluated with autocast off."""
    total = None
    num_windows = 0
    for items in zip(*seqs, strict=True):
        with _no_autocast(items[0].device):
            window = term(*(_f32(x) for x in items))
        total = window if total is None else total + window
        num_windows += 1
    if total is None:
        raise ValueError("no windows given")
    return total / num_windows


def sequence_track_loss(
    coords: TensorSeq,
    gt_tracks: TensorSeq,
    valid: TensorSeq,
    visibility: TensorSeq,
    *,
    visible_term: bool,
    gamma: float = GAMMA,
) -> torch.Tensor:
    """Track loss over windows and iterations -> scalar.

    visible_term=True: Huber (delta 6) with mask valid x visible; False: L1 with mask valid x (1 - visible).
    Per element the loss is averaged over x and y, masked-mean reduced over (B, S, N), weighted by
    gamma^(I-1-i), summed over iterations i and divided by I, then averaged over windows.
    """

    def term(pred_j, gt_j, valid_j, vis_j):
        mask = valid_j * (vis_j if visible_term else 1.0 - vis_j)  # (B, S, N)
        err = pred_j - gt_j.unsqueeze(0)  # (I, B, S, N, 2)
        per_elem = (huber(err) if visible_term else err.abs()).mean(dim=-1)  # (I, B, S, N)
        num_iters = per_elem.shape[0]
        window = 0.0
        for i in range(num_iters):  # accumulate in the official order (bitwise-reproducible sums)
            window = window + gamma ** (num_iters - 1 - i) * _masked_mean(per_elem[i], mask)
        return window / num_iters

    return _window_mean(term, coords, gt_tracks, valid, visibility)


def visibility_bce_loss(vis: TensorSeq, visibility: TensorSeq, *, visible_weight: float = 1.0) -> torch.Tensor:
    """BCE between predicted visibility probabilities and GT visibility -> scalar.

    Plain mean over (B, S, N) (no validity mask, as in the official recipe), mean over iterations and windows.
    visible_weight: the weight of visible entries' terms (the recipe's 1). A weight w moves the minimiser from the
    probability p of being visible to odds w x p / (1 - p): calling a point occluded then takes w times the evidence.
    """

    def term(prob_j, gt_j):
        weight = 1.0 if visible_weight == 1.0 else 1.0 + (visible_weight - 1.0) * gt_j
        window = 0.0
        for i in range(prob_j.shape[0]):
            window = window + (_bce(prob_j[i], gt_j) * weight).mean()
        return window / prob_j.shape[0]

    return _window_mean(term, vis, visibility)


def confidence_loss(
    coords: TensorSeq,
    conf: TensorSeq,
    gt_tracks: TensorSeq,
    visibility: TensorSeq,
    *,
    dist_thresh: float = CONF_DIST_THRESH,
) -> torch.Tensor:
    """Confidence BCE -> per-batch vector (B,).

    Target = 1[|p_hat - p|^2 <= thresh^2] with p_hat gradient-stopped; the BCE is multiplied by GT visibility and
    averaged over all S x N entries (not over the visible count), then averaged over iterations and windows.
    """

    def term(pred_j, prob_j, gt_j, vis_j):
        pred_j = pred_j.detach()
        window = 0.0
        for i in range(prob_j.shape[0]):
            sq_err = ((pred_j[i] - gt_j) ** 2).sum(dim=-1)  # (B, S, N)
            target = (sq_err <= dist_thresh**2).to(torch.float32)
            window = window + (_bce(prob_j[i], target) * vis_j).mean(dim=(1, 2))  # (B,)
        return window / prob_j.shape[0]

    return _window_mean(term, coords, conf, gt_tracks, visibility)


@dataclass
class KubricLoss:
    """The four recipe terms and their weighted total (all scalars except `confidence`, which is (B,))."""

    total: torch.Tensor
    visible_track: torch.Tensor
    occluded_track: torch.Tensor
    visibility: torch.Tensor
    confidence: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Scalar terms for logging (confidence averaged over the batch)."""
        return {
            "loss": self.total,
            "loss_visible_track": self.visible_track,
            "loss_occluded_track": self.occluded_track,
            "loss_visibility": self.visibility,
            "loss_confidence": self.confidence.mean(),
        }


def kubric_loss(
    coords: TensorSeq,
    vis: TensorSeq,
    conf: TensorSeq,
    gt_tracks: TensorSeq,
    gt_visibility: TensorSeq,
    valid: TensorSeq,
    *,
    with_vis_conf: bool = True,
    conf_dist_thresh: float = CONF_DIST_THRESH,
    visible_weight: float = 1.0,
) -> KubricLoss:
    """Total = 0.05 visible-track + 0.01 occluded-track + visibility BCE + confidence BCE (mean over batch).

    with_vis_conf=False drops the visibility and confidence terms (they are then zeros), as in the pseudo-label
    fine-tuning recipe (spec 16.2). conf_dist_thresh: the confidence target's radius (px of the loss coordinates;
    the recipe's 12). visible_weight: the visibility BCE's weight of visible entries (visibility_bce_loss; recipe 1).
    """
    coords, vis, conf = list(coords), list(vis), list(conf)
    gt_tracks, gt_visibility, valid = list(gt_tracks), list(gt_visibility), list(valid)
    visible = sequence_track_loss(coords, gt_tracks, valid, gt_visibility, visible_term=True)
    occluded = sequence_track_loss(coords, gt_tracks, valid, gt_visibility, visible_term=False)
    total = W_VISIBLE_TRACK * visible + W_OCCLUDED_TRACK * occluded
    if with_vis_conf:
        vis_term = visibility_bce_loss(vis, gt_visibility, visible_weight=visible_weight)
        conf_term = confidence_loss(coords, conf, gt_tracks, gt_visibility, dist_thresh=conf_dist_thresh)
        total = total + vis_term + conf_term.mean()
    else:
        vis_term = torch.zeros((), device=total.device)
        conf_term = torch.zeros(gt_tracks[0].shape[0], device=total.device)
    return KubricLoss(total, visible, occluded, vis_term, conf_term)
