"""Moving probabilities between nnU-Net's original image space and its preprocessed space.

nnU-Net preprocesses ``transpose -> crop to the non-zero box -> resample to the target spacing`` and
exports in reverse (``resample -> uncrop -> transpose back``). The same steps, with nnU-Net's own
resampling function for probabilities and the case's properties (``bbox_used_for_cropping``,
``shape_before_cropping``, ``shape_after_cropping_and_before_resampling``, ``spacing``), move a
prior into the space the refiners work in and a correction back.
"""

from __future__ import annotations

import numpy as np


def _spacings(properties: dict, plans_manager, configuration_manager) -> tuple[list[float], list[float]]:
    """(original spacing in transposed axis order, the configuration's target spacing)."""
    original = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    target = list(configuration_manager.spacing)
    if len(target) != len(properties["shape_after_cropping_and_before_resampling"]):
        target = [original[0], *target]  # 2d configurations keep the first axis
    return original, target


def _bbox_slices(properties: dict) -> tuple[slice, ...]:
    return tuple(slice(int(lo), int(hi)) for lo, hi in properties["bbox_used_for_cropping"])


def original_to_preprocessed(
    probabilities: np.ndarray,
    properties: dict,
    plans_manager,
    configuration_manager,
    target_shape: tuple[int, ...],
) -> np.ndarray:
    """``(C, Z, Y, X)`` probabilities in the original image grid -> ``(C, *target_shape)`` preprocessed grid."""
    transposed = probabilities.transpose([0, *[i + 1 for i in plans_manager.transpose_forward]])
    if tuple(transposed.shape[1:]) != tuple(properties["shape_before_cropping"]):
        raise ValueError(
            f"probabilities of shape {tuple(probabilities.shape[1:])} do not match the image "
            f"(shape {tuple(properties['shape_before_cropping'])} after nnU-Net's transpose)"
        )
    cropped = np.ascontiguousarray(transposed[(slice(None), *_bbox_slices(properties))], dtype=np.float32)
    if tuple(cropped.shape[1:]) == tuple(target_shape):
        return cropped
    original, target = _spacings(properties, plans_manager, configuration_manager)
    resampled = configuration_manager.resampling_fn_probabilities(
        cropped, list(target_shape), original, target
    )
    return np.asarray(resampled, dtype=np.float32)


def preprocessed_to_original(
    values: np.ndarray,
    properties: dict,
    plans_manager,
    configuration_manager,
    outside: np.ndarray | None = None,
) -> np.ndarray:
    """``(C, z, y, x)`` values in the preprocessed grid -> original image grid; outside nnU-Net's crop box
    each channel holds ``outside`` (``(C,)``; default 0)."""
    shape_cropped = tuple(properties["shape_after_cropping_and_before_resampling"])
    if tuple(values.shape[1:]) != shape_cropped:
        original, target = _spacings(properties, plans_manager, configuration_manager)
        values = np.asarray(
            configuration_manager.resampling_fn_probabilities(values, list(shape_cropped), target, original),
            dtype=np.float32,
        )
    full = np.zeros((values.shape[0], *properties["shape_before_cropping"]), dtype=np.float32)
    if outside is not None:
        full += np.asarray(outside, dtype=np.float32).reshape(-1, *[1] * (full.ndim - 1))
    full[(slice(None), *_bbox_slices(properties))] = values
    return full.transpose([0, *[i + 1 for i in plans_manager.transpose_backward]])
