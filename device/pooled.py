"""The half-resolution copy the segmenter labels: 2x2 max-pooled, a quarter of the pixels.

Labelling it is 4x cheaper and loses nothing a 12-px digit needs: every piece is cut back out
of the full-resolution image afterwards.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Components are labelled on a copy this many times smaller per side (max-pooled).
POOL = 2


def up2(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``image`` twice as large, each pixel repeated 2x2 (nearest neighbour).

    Several times faster than cv2.resize's nearest-neighbour path: a uint16 ``v * 257`` holds
    the byte ``v`` twice, which doubles the columns; broadcasting doubles the rows.
    """
    h, w = image.shape
    pairs = (image.astype(np.uint16) * 257).view(np.uint8)
    out = np.empty((h, POOL, POOL * w), np.uint8)
    out[:] = pairs[:, None, :]
    return out.reshape(POOL * h, POOL * w)
