"""Constant-velocity Kalman filter on ``(cx, cy, aspect, height)`` boxes (SORT / DeepSORT / JDE).

State ``(cx, cy, a, h, vcx, vcy, va, vh)``; process and measurement noise scale with the box
height (``1/20`` for positions, ``1/160`` for velocities), as in DeepSORT and the JDE tracker
UniTrack builds on. ``gating_distance`` is the squared Mahalanobis distance of measurements to
the predicted box; :data:`CHI2_95` is the 95% gate for 4 degrees of freedom. Written out here
(~80 lines of NumPy) rather than pulled from ``filterpy``: the model is fixed and tiny, and the
noise schedule is what matters for the fusion with appearance.
"""

from __future__ import annotations

import numpy as np

CHI2_95 = 9.4877  # chi-square 0.95 quantile, 4 degrees of freedom
CHI2_95_2DOF = 5.9915  # the same, 2 degrees of freedom (centre only)


def xywh_to_xyah(box: np.ndarray) -> np.ndarray:
    """``(..., 4)`` ``(x, y, w, h)`` -> ``(cx, cy, w/h, h)``."""
    b = np.asarray(box, dtype=np.float64)
    return np.stack([b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2,
                     b[..., 2] / np.maximum(b[..., 3], 1e-6), b[..., 3]], -1)


def xyah_to_xywh(state: np.ndarray) -> np.ndarray:
    """``(..., >=4)`` ``(cx, cy, a, h, ...)`` -> ``(x, y, w, h)``."""
    s = np.asarray(state, dtype=np.float64)
    w = s[..., 2] * s[..., 3]
    return np.stack([s[..., 0] - w / 2, s[..., 1] - s[..., 3] / 2, w, s[..., 3]], -1)


class KalmanFilter:
    """Box motion model; every method is pure (state in, state out)."""

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160

    def __init__(self) -> None:
        self.motion = np.eye(8)
        self.motion[:4, 4:] = np.eye(4)  # dt = 1 frame
        self.observe = np.eye(4, 8)

    def _std(self, h: float, position: float, velocity: float) -> np.ndarray:
        sp, sv = position * self.std_position * h, velocity * self.std_velocity * h
        return np.array([sp, sp, 1e-2, sp, sv, sv, 1e-5, sv])

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track at measurement ``xyah``: zero velocity, wide velocity uncertainty."""
        mean = np.r_[np.asarray(xyah, dtype=np.float64), np.zeros(4)]
        std = self._std(mean[3], 2.0, 10.0)
        return mean, np.diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead."""
        q = np.diag(self._std(mean[3], 1.0, 1.0) ** 2)
        return self.motion @ mean, self.motion @ cov @ self.motion.T + q

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """State -> measurement space (with measurement noise)."""
        sp = self.std_position * mean[3]
        r = np.diag([sp, sp, 1e-1, sp]) ** 2
        return self.observe @ mean, self.observe @ cov @ self.observe.T + r

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Correct with measurement ``xyah``."""
        proj_mean, proj_cov = self.project(mean, cov)
        gain = np.linalg.solve(proj_cov, (cov @ self.observe.T).T).T  # (8, 4)
        innovation = np.asarray(xyah, dtype=np.float64) - proj_mean
        return mean + gain @ innovation, cov - gain @ proj_cov @ gain.T

    def gating_distance(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray,
                        only_position: bool = False) -> np.ndarray:
        """Squared Mahalanobis distance ``(N,)`` of measurements ``(N, 4)`` to the track (of the
        box centres alone with ``only_position``)."""
        proj_mean, proj_cov = self.project(mean, cov)
        d = np.asarray(xyah, dtype=np.float64).reshape(-1, 4) - proj_mean
        if only_position:
            d, proj_cov = d[:, :2], proj_cov[:2, :2]
        chol = np.linalg.cholesky(proj_cov)
        z = np.linalg.solve(chol, d.T)
        return (z * z).sum(0)
