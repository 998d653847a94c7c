"""CoTracker3 online model: sliding windows of window_len frames with step window_len/2 (spec section 11)."""
from __future__ import annotations

import torch

from .base import CoTracker3Base
from .outputs import TrackerOutput, TrainOutput


def _pad_frames(video: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat the last frame until the clip has `length` frames: (B, T, ...) -> (B, length, ...)."""
    missing = length - video.shape[1]
    if missing <= 0:
        return video
    return torch.cat([video, video[:, -1:].expand(-1, missing, *video.shape[2:])], dim=1)


class CoTracker3Online(CoTracker3Base):
    """Causal tracker. `forward(..., is_online=False)` runs all windows over a whole clip (training, evaluation);
    `is_online=True` processes one chunk per call (streaming; call `reset_online()` first for every new video)."""

    kind = "online"

    def __init__(self, window_len: int = 16, **arch) -> None:
        super().__init__(window_len, **arch)
        if window_len % 2:
            raise ValueError("window_len must be even (step = window_len / 2)")
        self.step = window_len // 2
        self.reset_online()

    def reset_online(self) -> None:
        """Forget the streaming state (start a new video)."""
        self.online_ind = 0
        self._online_support: list[torch.Tensor] | None = None
        self._online_state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    init_video_online_processing = reset_online  # the official method name

    # ----------------------------------------------------------------------------------------------------------

    def _window(self, pyramid, support, frames, xy, ind, running, iters):
        """One window starting at absolute frame `ind`.

        pyramid: per level (B, S, C, h, w) features of the window's frames; support: per level (B, P*P, N, C);
        frames (B, N) query frames; xy (B, N, 2) query positions (feature units); running: accumulated
        (coords px (B, T, N, 2), vis logits, conf logits (B, T, N)) for the copy-over.
        """
        S, step = self.window_len, self.step
        overlap = S - step
        B, N = frames.shape
        coords = xy[:, None].expand(B, S, N, 2)
        vis, conf = self.initial_vis_conf(xy, (B, S, N))
        if ind > 0:
            # Tracks already started in the overlap continue from the previous window's predictions; the
            # second half of the window repeats the last overlap frame (spec 11.1 step 5; pitfall 14).
            copy = (frames < ind + overlap)[:, None, :]
            r_c, r_v, r_w = (_pad_frames(r[:, ind : ind + overlap], S) for r in running)
            coords = torch.where(copy[..., None], r_c / self.stride, coords)
            vis = torch.where(copy, r_v, vis)
            conf = torch.where(copy, r_w, conf)
        started = (frames < ind + S).to(xy.dtype)[:, None, :, None]  # later tracks get zero support features
        support = [s * started for s in support]
        return self.refine(pyramid, support, coords, vis, conf, iters, self.time_emb)

    @staticmethod
    def _write(running, values, ind: int, length: int):
        """Functional `running[:, ind:ind+length] = values[:, :length]` (keeps autograd simple)."""
        return tuple(
            torch.cat([r[:, :ind], v[:, :length], r[:, ind + length :]], dim=1) for r, v in zip(running, values)
        )

    def forward(
        self,
        video: torch.Tensor,
        queries: torch.Tensor,
        iters: int = 4,
        is_train: bool = False,
        is_online: bool = False,
    ) -> TrackerOutput:
        """video (B, T, 3, H, W) float 0..255; queries (B, N, 3) (t, x, y), t absolute frame index.

        Sliding-window mode returns all T frames. Streaming mode takes a chunk of at most window_len frames that
        starts at frame `self.online_ind` and returns everything processed so far.
        """
        self._check_inputs(video, queries)
        if is_online:
            return self._forward_streaming(video, queries, iters, is_train)
        return self._forward_windows(video, queries, iters, is_train)

    def _forward_windows(self, video, queries, iters, is_train) -> TrackerOutput:
        B, T = video.shape[:2]
        N = queries.shape[1]
        S, step = self.window_len, self.step
        queries = queries.to(video.dtype)
        frames = queries[..., 0].long()
        xy = queries[..., 1:3] / self.stride
        padded = _pad_frames(video, -(-T // S) * S)
        pyramid = self.encode(padded)
        support = self.support_features(pyramid, frames, xy)
        # Official count of windows; we always run at least one so that clips of <= step frames still work
        # (the official model returns zeros for them).
        starts = [step * k for k in range(max((T - S + step - 1) // step + 1, 1))]
        running = (video.new_zeros(B, T, N, 2), video.new_zeros(B, T, N), video.new_zeros(B, T, N))
        win_c, win_v, win_w = [], [], []
        for ind in starts:
            pyr = self.window_of(pyramid, ind, S)
            cs, vs, ws = self._window(pyr, support, frames, xy, ind, running, iters)
            length = min(T - ind, S)
            running = self._write(running, (cs[-1], vs[-1], ws[-1]), ind, length)
            if is_train:
                win_c.append(torch.stack(cs)[:, :, :length])
                win_v.append(torch.sigmoid(torch.stack(vs)[:, :, :length]))
                win_w.append(torch.sigmoid(torch.stack(ws)[:, :, :length]))
        train = None
        if is_train:
            t = torch.arange(T, device=video.device)
            valid = frames[:, None, :] <= t[None, :, None]
            train = TrainOutput(win_c, win_v, win_w, starts, valid)
        return TrackerOutput(running[0], torch.sigmoid(running[1]), torch.sigmoid(running[2]), train)

    def _forward_streaming(self, video, queries, iters, is_train) -> TrackerOutput:
        B, Tc = video.shape[:2]
        N = queries.shape[1]
        S, step = self.window_len, self.step
        overlap = S - step
        ind = self.online_ind
        if Tc > S:
            raise ValueError(f"streaming chunks must have at most {S} frames, got {Tc}")
        if ind > 0 and Tc <= overlap:
            raise ValueError(f"streaming chunks after the first must have more than {overlap} frames, got {Tc}")
        queries = queries.to(video.dtype)
        frames = queries[..., 0].long()
        xy = queries[..., 1:3] / self.stride
        pyramid = self.encode(_pad_frames(video, S))

        if ind == 0 or self._online_state is None:
            running = (video.new_zeros(B, Tc, N, 2), video.new_zeros(B, Tc, N), video.new_zeros(B, Tc, N))
            self._online_support = None
        else:
            extra = min(step, Tc - step)
            running = tuple(
                torch.cat([r, r.new_zeros(B, extra, *r.shape[2:])], dim=1) for r in self._online_state
            )
            if running[0].shape[2] != N:
                raise ValueError("the number of queries changed during streaming; call reset_online() first")
        # Each query's support patch comes from the first chunk whose newly revealed frames contain its frame.
        left = 0 if ind == 0 else ind + overlap
        revealed = ((frames >= left) & (frames < ind + S)).to(xy.dtype)[:, None, :, None]
        new = self.support_features(pyramid, frames - ind, xy)
        if self._online_support is None:
            self._online_support = [f * revealed for f in new]
        else:
            self._online_support = [acc + f * revealed for acc, f in zip(self._online_support, new)]

        cs, vs, ws = self._window(pyramid, self._online_support, frames, xy, ind, running, iters)
        running = self._write(running, (cs[-1], vs[-1], ws[-1]), ind, Tc)
        self._online_state = tuple(r.detach() for r in running) if not is_train else running
        self.online_ind = ind + step
        train = None
        if is_train:
            T = running[0].shape[1]
            t = torch.arange(T, device=video.device)
            train = TrainOutput(
                [torch.stack(cs)[:, :, :Tc]],
                [torch.sigmoid(torch.stack(vs)[:, :, :Tc])],
                [torch.sigmoid(torch.stack(ws)[:, :, :Tc])],
                [ind],
                frames[:, None, :] <= t[None, :, None],
            )
        return TrackerOutput(running[0], torch.sigmoid(running[1]), torch.sigmoid(running[2]), train)
