"""LSTM forecaster: a point the recent past did not predict is anomalous.

A small LSTM (Hochreiter & Schmidhuber, 1997) reads the last ``window`` values, taken relative
to the newest of them and divided by the training series' step-to-step deviation, and predicts
the next step; the anomaly statistic is the absolute prediction error. Relative windows make it
blind to the level, so a series that wanders (a random walk, a slow drift) stays in the range
the network was trained on. It trains on CPU in seconds on a few thousand points. Unfitted, it
fits itself on its first ``train_size`` finite points (which score 0.0), so ``score`` and
``update`` still agree. Inference builds every window with stride tricks and runs them in
batches of 16,384 under ``torch.inference_mode``; a batch of windows and one window must
give the same numbers: oneDNN's float32 kernels give a row the same bits in blocks of 8 rows,
but not alone or in a ragged tail, so every batch (the streaming window too) is padded to a
multiple of 8 rows.

Calibration: the model learns the first 80 % of the training windows; its absolute errors on
all of them (the last 20 % unseen) fit a :class:`~detectors.calibration.TailCalibrator`, so a score of
0.99 is exceeded by about 1 % of points as predictable as the training data (measured 1.0 to
1.7 % on Gaussian noise, AR(1), a noisy wave, a random walk and Laplace noise).
"""

from __future__ import annotations

import os
import pickle  # nosec B403 - model files the user saved with save()
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from aiops.errors import DetectorError

from .calibration import TailCalibrator
from .params import FloatArray, check_float, check_int, check_optional_int
from .refit import RefitDetector
from .registry import register

__all__ = ["LSTMDetector"]

_BATCH_ROWS = 16384  # windows per inference batch: large enough to amortise, small in memory
_BIG_BATCH = 4096  # from this many windows on, inference uses all of torch's threads
_MIN_ROWS = 8  # batches are padded to a multiple of 8 rows: rows of a ragged tail take
# another kernel with other rounding
_HOLDOUT = 0.2


class _Net(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, window)
        out, _ = self.lstm(x.unsqueeze(-1))
        y: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return y


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` threads (None: as set). Small batches (training steps, one streaming
    window) gain nothing from more threads, and on a busy machine OpenMP's spinning threads
    made them 30x slower, so they run on one."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@register
class LSTMDetector(RefitDetector):
    """LSTM next-value forecaster; score = calibrated absolute prediction error.

    Args:
        window: past points the LSTM reads (32..64 works well).
        hidden: LSTM hidden units.
        threshold: score at or above which a point is an anomaly.
        train_size: finite points learned before the first fit (they score 0.0).
        epochs: passes over the training windows.
        lr: Adam learning rate.
        batch_size: training windows per step.
        refit_every: retrain after this many further points (None or 0: never).
        train_window: trailing points a retrain learns from.
        seed: seeds torch's initialisation and shuffling.
        threads: torch threads for batch inference of 4,096 windows or more (None: torch's
            setting, all cores by default). Smaller jobs, training included, use one thread.
        smooth: score the trailing mean of the last ``smooth`` finite values (1: off); see
            :class:`detectors.alarms.TrailingMean`.
        refractory: points after a positive decision that are not decided positive (0: off;
            scores are not changed); see :class:`detectors.alarms.Refractory`.

    Examples:
        >>> x = np.sin(np.arange(400) / 4.0)
        >>> x[380] += 3.0
        >>> det = LSTMDetector(window=16, hidden=8, train_size=300, epochs=5, seed=1)
        >>> s = det.score(x)
        >>> bool(s[380] >= det.threshold), float(s[:300].max())
        (True, 0.0)
    """

    name = "lstm"

    def __init__(self, window: int = 32, hidden: int = 32, threshold: float = 0.999, train_size: int = 1000,
                 epochs: int = 10, lr: float = 0.01, batch_size: int = 64, refit_every: int | None = None,
                 train_window: int = 5000, seed: int = 0, threads: int | None = None,
                 smooth: int = 1, refractory: int = 0) -> None:
        self.window = check_int(self.name, "window", window, 2)
        self.hidden = check_int(self.name, "hidden", hidden, 1)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.train_size = check_int(self.name, "train_size", train_size, 1)
        self.epochs = check_int(self.name, "epochs", epochs, 1)
        self.lr = check_float(self.name, "lr", lr, 0.0, 1.0, low_open=True)
        self.batch_size = check_int(self.name, "batch_size", batch_size, 1)
        self.refit_every = check_optional_int(self.name, "refit_every", refit_every, 0)
        self.train_window = check_int(self.name, "train_window", train_window, 1)
        self.seed = check_int(self.name, "seed", seed, 0)
        self.threads = check_optional_int(self.name, "threads", threads, 1)
        self._init_alarm_options(smooth, refractory)
        self._context = int(window)
        for key, value in (("train_size", train_size), ("train_window", train_window)):
            if value < self._min_train():
                raise DetectorError(f"lstm: {key} must be >= window + 8 ({self._min_train()}), got: {value!r}")
        self._net: _Net | None = None
        self._mean = 0.0
        self._scale = 1.0
        self._reset()

    def _min_train(self) -> int:
        return self._context + 8

    # --- model -----------------------------------------------------------------------------

    def _windows(self, z: FloatArray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (windows of ``window`` standardised values) and next-value targets, float32."""
        view = sliding_window_view(z, self._context + 1)
        last = view[:, -2:-1]  # each window is taken relative to its newest value (in float64)
        inputs = np.ascontiguousarray(view[:, :-1] - last, dtype=np.float32)
        return torch.from_numpy(inputs), torch.from_numpy((view[:, -1] - last[:, 0]).astype(np.float32))

    def _standardise(self, x: FloatArray) -> FloatArray:
        z: FloatArray = (x - self._mean) / self._scale
        return z

    def _fit_model(self, train: FloatArray) -> FloatArray:
        x = train[:, 0]
        self._mean = float(x.mean())
        spread = float(np.diff(x).std()) if x.size > 2 else 0.0
        # a flat training series: any unit will do, as long as it is not 0
        self._scale = spread if spread > 1e-12 * abs(self._mean) and spread > 0.0 else max(abs(self._mean), 1e-300)
        z = self._standardise(x)
        inputs, targets = self._windows(z)
        n = inputs.shape[0]
        n_fit = n - max(1, int(n * _HOLDOUT)) if n >= 20 else n
        with _threads(1):
            self._net = self._train(inputs[:n_fit], targets[:n_fit])
        # Errors of every training window: the last 20 % were never learned; the rest were,
        # but a small network after a few epochs barely overfits, and five times the
        # reference points steady the tail fit (tried on noise, AR(1), waves, random walks).
        return self._errors(z)

    def _train(self, inputs: torch.Tensor, targets: torch.Tensor) -> _Net:
        n_fit = inputs.shape[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _Net(int(self.hidden))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            gen = torch.Generator().manual_seed(self.seed)
            for _ in range(int(self.epochs)):
                order = torch.randperm(n_fit, generator=gen)
                for lo in range(0, n_fit, int(self.batch_size)):
                    idx = order[lo: lo + self.batch_size]
                    opt.zero_grad()
                    loss = nn.functional.mse_loss(net(inputs[idx]), targets[idx])
                    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
                    opt.step()
        net.eval()
        return net

    def _errors(self, z: FloatArray) -> FloatArray:
        """Absolute prediction error of every full window of the standardised series ``z``.

        Windows are built per batch of ``_BATCH_ROWS``, so memory stays bounded however long
        the series.
        """
        assert self._net is not None
        w = self._context
        total = z.size - w
        out = np.empty(max(total, 0))
        big = total >= _BIG_BATCH
        with torch.inference_mode(), _threads(self.threads if big else 1):
            for lo in range(0, total, _BATCH_ROWS):
                inputs, targets = self._windows(z[lo: lo + _BATCH_ROWS + w])
                m = inputs.shape[0]
                pad = -m % _MIN_ROWS
                if pad:
                    inputs = torch.cat([inputs, inputs.new_zeros((pad, w))])
                pred = self._net(inputs)[:m]
                out[lo: lo + m] = (pred - targets).abs().double().numpy()
        return out

    def _raw_score(self, context: FloatArray, new: FloatArray) -> FloatArray:
        w = self._context
        ext = np.concatenate([context[-w:, 0], new[:, 0]])
        out = np.full(new.shape[0], np.nan)
        short = w - (ext.size - new.shape[0])  # points without a full window before them (after load)
        if ext.size <= w:
            return out
        with np.errstate(all="ignore"):
            errors = self._errors(self._standardise(ext))
        out[max(short, 0):] = errors
        return out

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write parameters, weights, standardisation and calibration to ``path`` (torch format)."""
        cal = self.calibrator_
        if self._net is None or not isinstance(cal, TailCalibrator):
            raise DetectorError(f"lstm: cannot save an unfitted detector to {path}")
        torch.save({
            "params": self.get_params(),
            "state_dict": self._net.state_dict(),
            "mean": self._mean, "scale": self._scale,
            "cal": {"probs": torch.from_numpy(cal.probs_), "quantiles": torch.from_numpy(cal.quantiles_),
                    "u": cal.u_, "beta": cal.beta_, "tail_q": cal.tail_q},
        }, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LSTMDetector:
        """A fitted detector from :meth:`save`; its first ``window`` points rebuild the context (score 0.0)."""
        try:
            blob: dict[str, Any] = torch.load(Path(path), weights_only=True)
            det = cls(**blob["params"])
            net = _Net(int(det.hidden))
            net.load_state_dict(blob["state_dict"])
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise DetectorError(f"lstm: cannot load {path}: {str(exc)[:200]}") from exc
        net.eval()
        c = blob["cal"]
        det._net, det._mean, det._scale = net, float(blob["mean"]), float(blob["scale"])
        det.calibrator_ = TailCalibrator(probs_=c["probs"].numpy(), quantiles_=c["quantiles"].numpy(),
                                  u_=float(c["u"]), beta_=float(c["beta"]), tail_q=float(c["tail_q"]))
        det._ensure_width(1)
        det._fitted = True
        det._count = 0
        det._next_fit = det.refit_every or float("inf")
        return det
