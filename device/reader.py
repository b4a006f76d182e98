"""The reader: one frame in, one Reading out (segment, normalise, classify, then the verdict).

The reader is built from its parts (a classifier, a segmenter, the model's preprocessing), so
tests can hand it fakes; ``Reader.from_model`` wires the real ones from a model file.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from device import looks
from device.classifier import Classifier, Floats, LiteRTClassifier
from device.contract import DEFAULT_MODEL, NOT_A_DIGIT, POLARITIES, Preprocessing
from device.errors import ConfigError
from device.lifecycle import Closeable
from device.normalize import normalize_batch
from device.reading import Box, DigitResult, Reading

logger = logging.getLogger(__name__)

# Used when neither the config nor the model's manifest (extra["recommended_threshold"]) says.
DEFAULT_THRESHOLD = 0.9
MAX_EXPECTED_COUNT = 64
MAX_THREADS = 16
# Log-score head start of the segmenter's own reading of an ambiguous blob over its
# alternatives (split vs whole): an alternative must be clearly more confident to win.
ALTERNATIVE_PRIOR = 0.02
# A one-digit reading of a blob wider than it is tall loses this much log score per unit of
# w/h above 1: the model is as sure of a touching "72" read as one "2" as of the split
# (both saturate near 0.996), but single digits are rarely that wide. Tuned with
# ALTERNATIVE_PRIOR on 600 rendered frames (seeds 101, 202).
WIDE_SINGLE_PENALTY = 0.1
# An alternative that beats the segmenter's own reading of a blob by less than this makes
# the reading unsure: choosing the best of several readings inflates confidence (on 900
# rendered frames, seeds 101/202/303: confident readings right 89% of the time without this,
# 92-94% with it, as without alternatives at all).
AMBIGUITY_MARGIN = 0.2
# A blob with alternatives whose own reading has every digit at least this confident (and
# none rejected) is not read the other ways: on 900 rendered frames (seeds 101/202/303) no
# alternative beat such a reading (0 of 2,572 with the one-more/one-fewer cuts included), and
# skipping them more than halves the crops per frame (17.5 -> 7.9). 0.95 since the model
# trained on 20,000 frames' crops: it reads a narrow touching "17" whole as a "7" at 0.905 (the
# split reads 0.96 / 0.996); 0.9 / 0.95 / 0.97 read 3,016 / 3,016 / 3,016 of 3,400 rendered
# frames and 1,561 / 1,562 / 1,562 of the 1,800 held-out ones.
ALTERNATIVES_BELOW = 0.95
# Of two unsure readings of a frame (read both ways when its polarity is unsure), the other
# polarity's wins only if its mean log confidence is this much higher. On the 140 frames with
# polarity evidence closer than 1.5 among 3,950 rendered ones: 86 right read one way, 100
# with this rule (101 either way), and 4 digits more than the truth where comparing
# sure-digit counts added 155. (0 / 0.05 / 0.2 / 0.3 read as many frames right.) The same
# rule picks between the first reading and a second look's (device.looks) when both are
# unsure (before session 16 only a confident second look was kept): exact 3,075 -> 3,077 /
# 1,607 -> 1,609 / 260 -> 261 on the 3,400 / held-out 1,800 / 300 HD rendered frames; with the
# fine look 3,084 -> 3,090 / 1,617 -> 1,622; confident readings unchanged.
POLARITY_MARGIN = 0.1
# A blob the model reads as one digit is read as several only if the model is at least this
# sure of every part. Cutting a digit leaves stroke pieces the model reads fairly well (a lone
# stroke of an 8 or a 6 passes for a "1", the rest for a "5" or a "3"), and two such middling
# parts can out-score a middling whole. On 3,400 rendered frames (seeds 101, 202, 303, 707,
# 808, 20260): 2,873 -> 2,887 read exactly, 45 more digits right; 0.9 / 0.97 / 0.99 read
# 2,888 / 2,885 / 2,887. On 1,800 frames not used to tune it (seeds 909-911): 1,475 -> 1,484.
# Touching digits the model reads as one are still split: their parts read surely.
SPLIT_SURE = 0.95
# A crop the model reads as no digit with less than this confidence, inside a number and shaped like
# its digits (height within NONE_HEIGHTS of their median, at most NONE_MAX_ASPECT times as wide as
# tall), is read as its most likely digit where that digit has at least NONE_DIGIT_AT_LEAST. Such a
# digit is a guess: it adds a doubt, so the reading stays unsure whatever the threshold (it is
# shown, not trusted). The model rejects some real digits (faint, broken or restyled) that the
# number plainly needs. On 3,400 rendered frames: 2,887 -> 2,900 exact (missed digits 270 -> 223,
# misread 371 -> 389); on 1,800 held-out frames 1,484 -> 1,495; on 550 HD frames 422 -> 422. Without
# the digit floor the HD frames lost 2 (paper texture read as digits); none below 0.8 / 0.85 / 0.93
# read 2,895 / 2,898 / 2,899 of the 3,400 (prototype).
NONE_READ_BELOW = 0.9
NONE_DIGIT_AT_LEAST = 0.1
NONE_HEIGHTS = (0.8, 1.25)
# Until session 17 a needed crop had to be no wider than tall, which left out wide single digits
# (a 6 or a 2 widened by perspective or a broad hand, w/h 1.2-1.4). At 1.4: 3,400 rendered frames
# 3,077 -> 3,082 exact (7 readings changed, 5 to right, none to wrong, all unsure before and
# after), held-out 1,800 1,609 -> 1,611, 800 HD 687 -> 687; confident readings unchanged. 2.0
# read the same 3,082: a touching pair the guess reads as one digit was wrong either way.
NONE_MAX_ASPECT = 1.4
# A crop the model reads below this confidence is read again shifted one pixel each way and
# its probabilities averaged over the five views (LiteRTClassifier's views_below). On 3,400
# rendered frames (seeds 101, 202, 303, 707, 808, 20260): 2,914 -> 2,938 read exactly, right
# among confident readings 98.5 -> 98.6%; on 1,800 held-out frames (909-911) 1,501 -> 1,520
# (98.6 -> 98.9%); on 550 HD frames 424 -> 422. Below 0.9 / 0.97 instead: 2,933 / 2,937 and
# 1,516 / 1,519, with confident readings right less often (98.3%). Two views (left, right):
# 2,928 / 1,521; eight (diagonals too): 2,938 / 1,519.
VIEWS_BELOW = 0.99
# Confidences are floored here before the log (a quantised model can output exactly 0).
_MIN_CONFIDENCE = 1e-6


class SegmentLike(Protocol):
    """What the reader needs of one segmented digit (device.segment.Segment provides it)."""

    @property
    def box(self) -> Box: ...

    @property
    def ink(self) -> npt.NDArray[Any]: ...

    @property
    def group(self) -> int: ...


class _Pass(NamedTuple):
    """One read of a frame by one segmenter (both polarities, where in doubt)."""

    digits: tuple[DigitResult, ...]
    text: str
    reason: str  # why it is not confident ("" when it is)
    tallest: int  # px: the tallest blob found, whether the model took it for a digit or not


class SegmenterLike(Protocol):
    """Finds digits in a frame, ordered by group (top to bottom, left to right), then by x.

    It may also have ``last_doubts``: why the last frame's numbers may be incomplete (each
    makes the reading unsure); and ``last_polarity`` / ``last_polarity_sure`` /
    ``last_polarity_auto``: when the polarity it detected was unsure, or it detected one and
    nothing was read, the reader calls ``segment(frame, polarity=other)``.
    """

    def segment(self, frame: npt.NDArray[np.uint8]) -> Sequence[SegmentLike]: ...


class _Look(NamedTuple):
    """A second look at a frame (device.looks): its name for the log, the segmenter that
    reads it, and how the frame is resized for it."""

    name: str
    segmenter: SegmenterLike
    view: Callable[[npt.NDArray[np.uint8], Box | None], looks.ScaledView]


@dataclass(frozen=True)
class ReaderConfig:
    """What makes a reading confident, and where and how to look for digits."""

    # Lowest confidence every digit needs, in (0, 1]; None = the model's recommended threshold.
    threshold: float | None = None
    # Digits a confident reading must have, 1..64; None (or 0) = any number.
    expected_count: int | None = None
    # Regular expression the whole text must match (re.fullmatch); None (or "") = anything.
    pattern: str | None = None
    # Region of interest (x, y, w, h) in frame pixels; None (or ()) = the whole frame.
    roi: tuple[int, int, int, int] | None = None
    # Ink relative to paper: "auto", "dark_on_light" (pen on paper) or "light_on_dark".
    polarity: str = "auto"
    # CPU threads for the interpreter, 1..16 (one is fastest per frame on a Pi for this model).
    num_threads: int = 1
    # Digits read below this confidence are read again a pixel off each way; 0 = once only.
    views_below: float = VIEWS_BELOW
    # Read an unsure frame again enlarged (device.looks): more readings confident, about 9 ms
    # more per such 640x480 frame. For one-shot reads; a stream's next frame is its second look.
    fine_look: bool = False

    def __post_init__(self) -> None:
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and 0.0 < self.threshold <= 1.0
        ):
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if self.expected_count == 0:
            object.__setattr__(self, "expected_count", None)
        if self.expected_count is not None and not 1 <= self.expected_count <= MAX_EXPECTED_COUNT:
            raise ConfigError(
                f"expected_count must be 1..{MAX_EXPECTED_COUNT} or None, got {self.expected_count}"
            )
        if self.pattern == "":
            object.__setattr__(self, "pattern", None)
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ConfigError(f"pattern {self.pattern!r} is not a valid regex: {e}") from e
        if self.roi is not None and len(self.roi) == 0:
            object.__setattr__(self, "roi", None)
        if self.roi is not None:
            if len(self.roi) != 4 or any(int(v) != v or v < 0 for v in self.roi):
                raise ConfigError(f"roi must be four whole numbers x, y, w, h; got {self.roi}")
            if self.roi[2] == 0 or self.roi[3] == 0:
                raise ConfigError(f"roi width and height must be above 0; got {self.roi}")
            object.__setattr__(self, "roi", tuple(int(v) for v in self.roi))
        if self.polarity not in POLARITIES:
            raise ConfigError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if not 1 <= self.num_threads <= MAX_THREADS:
            raise ConfigError(f"num_threads must be 1..{MAX_THREADS}, got {self.num_threads}")
        if not (isinstance(self.views_below, int | float) and 0.0 <= self.views_below <= 1.0):
            raise ConfigError(f"views_below must be in [0, 1], got {self.views_below!r}")
        if not isinstance(self.fine_look, bool):
            raise ConfigError(f"fine_look must be true or false, got {self.fine_look!r}")


def threshold_from_manifest(extra: dict[str, Any]) -> float:
    """The manifest's recommended_threshold if it is a sane number, else DEFAULT_THRESHOLD."""
    value = extra.get("recommended_threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    if value is not None:
        logger.warning(
            "ignoring recommended_threshold %r in the manifest; using %s", value, DEFAULT_THRESHOLD
        )
    return DEFAULT_THRESHOLD


def _add_ms(timings: dict[str, float], stage: str, start: float) -> None:
    """Add the milliseconds since ``start`` to ``timings[stage]`` (a stage may run twice)."""
    timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


class Reader(Closeable):
    """Reads the digits in one frame and decides whether the reading is confident."""

    def __init__(
        self,
        classifier: Classifier,
        segmenter: SegmenterLike,
        config: ReaderConfig,
        preprocessing: Preprocessing,
        default_threshold: float = DEFAULT_THRESHOLD,
        coarse_segmenter: SegmenterLike | None = None,
        fine_segmenter: SegmenterLike | None = None,
    ) -> None:
        self.classifier = classifier
        self.segmenter = segmenter
        # Read the shrunk frame of the coarse look at large digits and the enlarged one of the
        # fine look (device.looks); none: no such look. Their own instances: the frame sizes
        # differ, and so do their buffers.
        self.coarse_segmenter = coarse_segmenter
        self.fine_segmenter = fine_segmenter
        self.config = config
        self.preprocessing = preprocessing
        self.threshold = config.threshold if config.threshold is not None else default_threshold
        self._pattern = re.compile(config.pattern) if config.pattern is not None else None
        self._owned: list[Any] = []  # parts built by from_model, closed with the reader

    @classmethod
    def from_model(
        cls, model_path: str | Path = DEFAULT_MODEL, config: ReaderConfig | None = None
    ) -> Reader:
        """A reader with the LiteRT classifier for ``model_path`` and the OpenCV segmenter."""
        from device.segment import Segmenter, SegmenterConfig

        config = config if config is not None else ReaderConfig()
        classifier = LiteRTClassifier(
            model_path, num_threads=config.num_threads, views_below=config.views_below
        )
        segmenter = Segmenter(SegmenterConfig(roi=config.roi, polarity=config.polarity))
        reader = cls(
            classifier,
            segmenter,
            config,
            classifier.contract.preprocessing,
            default_threshold=threshold_from_manifest(classifier.contract.extra),
            # The views are cut to the roi already.
            coarse_segmenter=Segmenter(SegmenterConfig(polarity=config.polarity)),
            fine_segmenter=(
                Segmenter(SegmenterConfig(polarity=config.polarity)) if config.fine_look else None
            ),
        )
        reader._owned.append(classifier)
        return reader

    @property
    def model_version(self) -> str:
        return str(getattr(self.classifier, "model_version", ""))

    def read(self, frame: npt.NDArray[np.uint8]) -> Reading:
        """Segment, normalise and classify all digits of ``frame`` (in one interpreter call).

        Where the segmenter offers alternative readings of a blob (whole or split) and the
        model is unsure of the segmenter's own reading, the alternatives' crops are classified
        in a second call (one batch for the whole frame) and the most confident reading of
        the blob is kept. Where the segmenter was unsure of the frame's polarity (dark ink on
        paper or light on dark) and the reading is unsure, or it detected the polarity and
        nothing was read, the frame is also read the other way and the better reading kept.
        A crop the model takes for no digit, unsurely, that is shaped like the digits of its
        number is shown as its likeliest digit, and the reading is then unsure
        (NONE_READ_BELOW). An unsure reading of a frame holding a large blob gets a coarse
        look: the frame shrunk is read too, and that reading kept if it reads better (as the
        other polarity's: confident, or unsure but surer by POLARITY_MARGIN); if the reader
        has a fine segmenter, an unsure reading of smaller digits in a frame of at most 480
        rows gets a fine look, the frame enlarged, kept the same way (device.looks).
        ``timings_ms`` has "segment", "normalize" and "classify" (all passes); a caller that
        decoded the frame adds "decode".
        """
        timings: dict[str, float] = {}
        digits, text, reason, tallest = self._read_frame(frame, self.segmenter, timings)
        look = self._second_look(frame, tallest, bool(digits)) if reason else None
        if look is not None:
            # Read the frame at another scale too; keep that reading if it is confident, or
            # unsure as the first but much surer of its digits (as for the other polarity).
            name, segmenter, make_view = look
            start = time.perf_counter()
            view = make_view(frame, self.config.roi)
            _add_ms(timings, "segment", start)
            other = self._read_frame(view.image, segmenter, timings)
            logger.debug("%s look: %r read %r", name, text, other.text)
            if _reads_better(other.digits, other.reason, digits, reason):
                digits, text, reason = view.to_frame(other.digits), other.text, other.reason
        return Reading(
            text=text,
            digits=digits,
            confident=not reason,
            reason=reason,
            timings_ms=timings,
            frame_shape=tuple(frame.shape),
        )

    def _second_look(
        self, frame: npt.NDArray[np.uint8], tallest: int, anything_read: bool
    ) -> _Look | None:
        """Which second look an unsure reading of ``frame`` gets: the coarse one where its
        tallest blob is large (strokes the background filter may have taken for paper), else
        the fine one where something was read and the reader has a fine segmenter; None for
        neither (device.looks)."""
        rows = looks.rows_read(frame, self.config.roi)
        if self.coarse_segmenter is not None and looks.coarse_wanted(tallest, rows):
            return _Look("coarse", self.coarse_segmenter, looks.coarse_view)
        if self.fine_segmenter is not None and anything_read and looks.fine_wanted(tallest, rows):
            return _Look("fine", self.fine_segmenter, looks.fine_view)
        return None

    def _read_frame(
        self, frame: npt.NDArray[np.uint8], segmenter: SegmenterLike, timings: dict[str, float]
    ) -> _Pass:
        """``frame`` read by ``segmenter`` (the other polarity too, where in doubt); adds to
        ``timings``."""
        digits, doubts, tallest = self._read_once(frame, segmenter, timings, None)
        text = text_of(digits)
        reason = self._verdict(text, digits, doubts)
        # (A confident reading is kept whatever the other way reads: no need to look.)
        if reason and _polarity_in_doubt(segmenter, digits):
            first = getattr(segmenter, "last_polarity", "")
            other = "light_on_dark" if first == "dark_on_light" else "dark_on_light"
            other_digits, other_doubts, other_tallest = self._read_once(
                frame, segmenter, timings, other
            )
            other_text = text_of(other_digits)
            other_reason = self._verdict(other_text, other_digits, other_doubts)
            logger.debug("polarity unsure: read as %s and as %s", first, other)
            if _reads_better(other_digits, other_reason, digits, reason):
                digits, text, reason = other_digits, other_text, other_reason
                tallest = other_tallest
            else:
                segmenter.last_polarity = first  # type: ignore[attr-defined]
        return _Pass(digits, text, reason, tallest)

    def _read_once(
        self,
        frame: npt.NDArray[np.uint8],
        segmenter: SegmenterLike,
        timings: dict[str, float],
        polarity: str | None,
    ) -> tuple[tuple[DigitResult, ...], list[str], int]:
        """The digits of one pass over ``frame`` (``polarity`` None: the segmenter's own),
        the doubts about them and the height of its tallest blob, read as a digit or not;
        adds to ``timings``."""
        start = time.perf_counter()
        if polarity is None:
            segments = list(segmenter.segment(frame))
        else:
            segments = list(segmenter.segment(frame, polarity=polarity))  # type: ignore[call-arg]
        _add_ms(timings, "segment", start)
        # The normalised crops the model read as no digit, in case the number needs them.
        rejected: dict[DigitResult, Floats] = {}
        results = self._classify(segments, timings, rejected)
        # Only a blob whose own reading is doubtful is worth reading another way: on 900
        # rendered frames no alternative ever beat a reading at >= ALTERNATIVES_BELOW, and
        # they were over half of all crops.
        doubtful = [
            i
            for i, s in enumerate(segments)
            # (Unsure first: a segmenter may make its alternatives only when asked.)
            if _unsure(results[i : i + _span(segments, i)]) and _alternatives(s)
        ]
        start = time.perf_counter()
        crops = [part for i in doubtful for alt in _alternatives(segments[i]) for part in alt]
        # A segmenter may cut the alternatives only now, when asked: that is segmenting too.
        _add_ms(timings, "segment", start)
        extra = self._classify(crops, timings, rejected) if crops else []
        # The alternatives' results, per doubtful segment, in the order they were offered.
        others: dict[int, list[list[DigitResult]]] = {}
        at = 0
        for i in doubtful:
            for alternative in _alternatives(segments[i]):
                others.setdefault(i, []).append(extra[at : at + len(alternative)])
                at += len(alternative)
        chosen, doubts = self._choose(segments, results, others)
        chosen = self._read_rejected(chosen, rejected, timings, doubts)
        chosen = _drop_rejected(chosen, doubts)
        # What the segmenter saw but could not read (faint ink beside a number).
        doubts += list(getattr(segmenter, "last_doubts", ()))
        return tuple(chosen), doubts, max((int(s.box[3]) for s in segments), default=0)

    def _classify(
        self,
        crops: Sequence[SegmentLike],
        timings: dict[str, float],
        rejected: dict[DigitResult, Floats] | None = None,
    ) -> list[DigitResult]:
        """Normalise and classify ``crops`` in one interpreter call; add to ``timings``.

        ``rejected`` gets the normalised crop of each result labelled NOT_A_DIGIT.
        """
        start = time.perf_counter()
        batch = normalize_batch([s.ink for s in crops], self.preprocessing)
        _add_ms(timings, "normalize", start)
        start = time.perf_counter()
        if crops:
            labels, confidences = self.classifier.classify(batch)
        else:
            labels = np.zeros(0, dtype=np.int64)
            confidences = np.zeros(0, dtype=np.float32)
        _add_ms(timings, "classify", start)
        results = [
            DigitResult(
                label=int(label),
                confidence=float(conf),
                box=tuple(int(v) for v in s.box),  # type: ignore[arg-type]
                group=int(s.group),
            )
            for s, label, conf in zip(crops, labels, confidences, strict=True)
        ]
        if rejected is not None:
            rejected.update(
                (r, row) for r, row in zip(results, batch, strict=True) if r.label == NOT_A_DIGIT
            )
        return results

    def _read_rejected(
        self,
        chosen: list[DigitResult],
        rejected: dict[DigitResult, Floats],
        timings: dict[str, float],
        doubts: list[str],
    ) -> list[DigitResult]:
        """``chosen`` with each crop the number needs read as its most likely digit instead of
        no digit (see NONE_READ_BELOW); one more interpreter call, only when there are any.
        Each such digit adds a doubt: it is a guess whatever the confidence threshold."""
        needed = [i for i, r in enumerate(chosen) if r in rejected and _needed(r, chosen)]
        if not needed:
            return chosen
        start = time.perf_counter()
        labels, probabilities = self.classifier.best_digits(
            np.stack([rejected[chosen[i]] for i in needed])
        )
        _add_ms(timings, "classify", start)
        out = list(chosen)
        for i, label, p in zip(needed, labels, probabilities, strict=True):
            if p >= NONE_DIGIT_AT_LEAST:
                r = chosen[i]
                out[i] = DigitResult(int(label), float(p), r.box, r.group)
                doubts.append(f"'{label}' is a guess: the model took that blob for no digit")
        return out

    def _choose(
        self,
        segments: Sequence[SegmentLike],
        results: list[DigitResult],
        others: dict[int, list[list[DigitResult]]],
    ) -> tuple[list[DigitResult], list[str]]:
        """The segmenter's digits, with each ambiguous blob read the most confident way.

        ``results`` holds the segments' results; ``others[i]`` the results of segment i's
        alternatives (only for those that were classified). A reading's score is the mean
        log confidence of its digits (the geometric mean, so one digit and two compare
        fairly); the segmenter's own choice gets a head start. Also returns the doubts:
        blobs where an alternative beat the segmenter's reading by less than
        AMBIGUITY_MARGIN (picking the best of several inflates confidence).
        """
        chosen: list[DigitResult] = []
        doubts: list[str] = []
        i = 0
        while i < len(segments):
            span = _span(segments, i)
            own = results[i : i + span]
            if span > 1:
                # A later part of a split may offer its own readings (two touching digits the
                # width estimate took for one): the split is read with each part's best.
                own = [own[0]] + [
                    r
                    for k in range(1, span)
                    for r in _most_confident([own[k]], others.get(i + k, ()), doubts)
                ]
            chosen.extend(_most_confident(own, others.get(i, ()), doubts))
            i += span
        return chosen, doubts

    def _verdict(
        self, text: str, digits: tuple[DigitResult, ...], doubts: Sequence[str] = ()
    ) -> str:
        """Why the reading is not confident ("" when it is); every failed rule is named."""
        if not digits:
            return "no digits found"
        reasons = list(doubts[:2])
        weak = [(i, d) for i, d in enumerate(digits) if not d.confidence >= self.threshold]
        if weak:
            listed = ", ".join(f"#{i + 1} '{d.label}' {d.confidence:.2f}" for i, d in weak[:3])
            more = f" and {len(weak) - 3} more" if len(weak) > 3 else ""
            reasons.append(f"low confidence (< {self.threshold:.2f}): {listed}{more}")
        expected = self.config.expected_count
        if expected is not None and len(digits) != expected:
            reasons.append(f"{len(digits)} digits found, {expected} expected")
        if self._pattern is not None and not self._pattern.fullmatch(text):
            reasons.append(f"'{text}' does not match the pattern {self._pattern.pattern!r}")
        return "; ".join(reasons)

    def close(self) -> None:
        while self._owned:
            part = self._owned.pop()
            close = getattr(part, "close", None)
            if close is not None:
                close()


def _polarity_in_doubt(segmenter: SegmenterLike, digits: Sequence[DigitResult]) -> bool:
    """Whether the frame's polarity may be wrong: the segmenter was unsure of it, or it
    detected it and found no digit at all. A bold marker digit wider than the background
    kernel looks like light paper framed by dark "ink". On 3,400 rendered frames 2 more
    read right (both confidently); see _reads_better for what an empty reading yields to."""
    if not getattr(segmenter, "last_polarity_sure", True):
        return True
    return not digits and bool(getattr(segmenter, "last_polarity_auto", False))


def _needed(r: DigitResult, chosen: Sequence[DigitResult]) -> bool:
    """Whether ``r``, read as no digit but unsurely, is shaped like a digit of its number."""
    if r.label != NOT_A_DIGIT or r.confidence >= NONE_READ_BELOW:
        return False
    heights = sorted(d.box[3] for d in chosen if d.group == r.group and d.label != NOT_A_DIGIT)
    if not heights:
        return False
    median = heights[len(heights) // 2]
    _, _, w, h = r.box
    return NONE_HEIGHTS[0] * median <= h <= NONE_HEIGHTS[1] * median and w <= NONE_MAX_ASPECT * h


def _drop_rejected(chosen: list[DigitResult], doubts: list[str]) -> list[DigitResult]:
    """``chosen`` without the crops read as no digit; one inside a number adds a doubt."""
    rejected = [r for r in chosen if r.label == NOT_A_DIGIT]
    if not rejected:
        return chosen
    kept = [r for r in chosen if r.label != NOT_A_DIGIT]
    groups = {r.group for r in kept}
    # A blob inside a number that is no digit may hide one (touching digits the model could
    # not separate): the number is then unsure. Lone specks elsewhere are not.
    inside = [r for r in rejected if r.group in groups]
    if inside:
        doubts.append(f"{len(inside)} blob(s) in the number not read as a digit")
    logger.debug("dropped %d blob(s) the model reads as no digit", len(rejected))
    return kept


def _alternatives(segment: SegmentLike) -> tuple[tuple[SegmentLike, ...], ...]:
    """Other readings a segment offers; a segmenter without them offers none."""
    return tuple(getattr(segment, "alternatives", ()))


def _span(segments: Sequence[SegmentLike], i: int) -> int:
    """How many segments, from i on, segment i's alternatives replace (1 without any).

    A segment without alternatives that spans several is read as those segments would be
    one by one: none of its parts has another reading to lose to.
    """
    return max(1, min(int(getattr(segments[i], "span", 1)), len(segments) - i))


def _unsure(own: Sequence[DigitResult]) -> bool:
    """Whether the segmenter's reading of a blob is worth checking against its alternatives."""
    return any(r.label == NOT_A_DIGIT or r.confidence < ALTERNATIVES_BELOW for r in own)


def _most_confident(
    own: list[DigitResult], candidates: Sequence[list[DigitResult]], doubts: list[str]
) -> list[DigitResult]:
    """The segmenter's reading of a blob (with a head start), or the best of its other
    readings; a narrow win of another reading is added to ``doubts``. A blob read as one digit
    is read as several only where every part reaches SPLIT_SURE."""
    own_score = _score(own) + ALTERNATIVE_PRIOR
    best, best_score = own, own_score
    one_digit = len(own) == 1 and own[0].label != NOT_A_DIGIT
    for candidate in candidates:
        if one_digit and len(candidate) > 1 and min(r.confidence for r in candidate) < SPLIT_SURE:
            continue  # a digit cut into unsure parts (see SPLIT_SURE)
        score = _score(candidate)
        if score > best_score:
            best, best_score = candidate, score
    if best is not own and best_score - own_score < AMBIGUITY_MARGIN:
        doubts.append(f"touching digits read '{_labels(best)}' could be '{_labels(own)}'")
    return best


def _reads_better(
    digits: Sequence[DigitResult], reason: str, than: Sequence[DigitResult], than_reason: str
) -> bool:
    """Whether a frame read one way (``digits``, its verdict's ``reason``) beats the same frame
    read another way: a confident reading beats an unsure one; of two unsure readings, the
    one whose mean log confidence is POLARITY_MARGIN higher; a tie keeps the first. An unsure
    reading never replaces an empty one: read the wrong way, a 1080p frame that held nothing
    readable gave "1 1 1 1 1 1 1 222222222".

    The other polarity of a frame finds paper texture and stroke edges, often many digits
    read with middling confidence: comparing counts of sure digits let such junk win.
    """
    if bool(reason) != bool(than_reason):
        return not reason
    if not reason or not than:
        return False
    mean_log = _mean_log([d.confidence for d in digits])
    return mean_log > _mean_log([d.confidence for d in than]) + POLARITY_MARGIN


def _mean_log(probabilities: Sequence[float]) -> float:
    """Mean log of ``probabilities`` (floored at _MIN_CONFIDENCE); -inf for none."""
    if not probabilities:
        return -math.inf
    return sum(math.log(max(p, _MIN_CONFIDENCE)) for p in probabilities) / len(probabilities)


def _labels(results: Sequence[DigitResult]) -> str:
    return "".join(str(r.label) for r in results)


def _score(results: Sequence[DigitResult]) -> float:
    """Mean log confidence (log of the geometric mean), less the wide-single penalty.

    A crop the model reads as no digit scores the probability left for all digits together
    (an upper bound on its best digit's), so a reading with a rejected piece rarely wins.
    """
    score = _mean_log(
        [1.0 - r.confidence if r.label == NOT_A_DIGIT else r.confidence for r in results]
    )
    if len(results) == 1:
        _, _, w, h = results[0].box
        score -= WIDE_SINGLE_PENALTY * max(0.0, w / max(1, h) - 1.0)
    return score


def text_of(digits: Sequence[DigitResult]) -> str:
    """Digits joined into text: one number per group, groups separated by single spaces."""
    groups: list[str] = []
    current: int | None = None
    for d in digits:
        if current is None or d.group != current:
            groups.append("")
            current = d.group
        groups[-1] += str(d.label)
    return " ".join(groups)
