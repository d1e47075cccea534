"""Identity preservation: is the edited face still the same person?

Input and edit are compared by the cosine similarity of their face descriptors and by dlib's rule that
descriptors closer than 0.6 (Euclidean) are the same person. The descriptors come from
:class:`l2sae.evaluation.face_descriptor.FaceDescriber` (dlib's face-recognition ResNet). Pairs where
no face was found in the input or in the edit are counted, not scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold: descriptors closer than this are the same person


class IdentityScores:
    """Accumulates the identity of (input, edit) pairs from their face descriptors (1-d arrays)."""

    def __init__(self) -> None:
        self.similarities: list[float] = []
        self.distances: list[float] = []
        self.missed_inputs = 0  # pairs whose input has no detected face
        self.missed_edits = 0  # pairs whose input has a face but whose edit has none

    def add(self, inputs: Sequence[np.ndarray | None], edits: Sequence[np.ndarray | None]) -> None:
        """The descriptors of B inputs and of their B edits (None: no face found)."""
        if len(inputs) != len(edits):
            raise ValueError(f"{len(inputs)} input descriptors but {len(edits)} edit descriptors")
        for before, after in zip(inputs, edits, strict=True):
            if before is None:
                self.missed_inputs += 1
            elif after is None:
                self.missed_edits += 1
            else:
                self.similarities.append(float(before @ after / (np.linalg.norm(before) * np.linalg.norm(after))))
                self.distances.append(float(np.linalg.norm(before - after)))

    def compute(self) -> dict[str, float | int | None]:
        """``identity_similarity`` (mean cosine), ``identity_distance`` (mean Euclidean), ``identity_match``
        (share of pairs under :data:`SAME_PERSON_DISTANCE`), ``identity_pairs`` (scored) and the pairs not
        scored: ``identity_missed_inputs`` and ``identity_missed_edits``."""
        scored = len(self.distances)
        return {
            "identity_similarity": float(np.mean(self.similarities)) if scored else None,
            "identity_distance": float(np.mean(self.distances)) if scored else None,
            "identity_match": float(np.mean(np.asarray(self.distances) < SAME_PERSON_DISTANCE)) if scored else None,
            "identity_pairs": scored,
            "identity_missed_inputs": self.missed_inputs,
            "identity_missed_edits": self.missed_edits,
        }
