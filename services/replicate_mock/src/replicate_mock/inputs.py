"""flux-schnell's input schema (cog-flux SchnellPredictor), validated like Replicate does.

Errors come back as `invalid_fields` entries: {"type", "field", "description"}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
OUTPUT_FORMATS = ("webp", "jpg", "png")
MEGAPIXELS = ("1", "0.25")
OutputFormat = Literal["webp", "jpg", "png"]
CONTENT_TYPES: dict[str, str] = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}

_INT_RANGES: dict[str, tuple[int, int]] = {
    "num_outputs": (1, 4),
    "num_inference_steps": (1, 4),
    "output_quality": (0, 100),
}
_ENUMS: dict[str, tuple[str, ...]] = {
    "aspect_ratio": tuple(ASPECT_SIZES),
    "output_format": OUTPUT_FORMATS,
    "megapixels": MEGAPIXELS,
}
_BOOLS = ("disable_safety_checker", "go_fast")
KNOWN_KEYS = frozenset({"prompt", "seed", *_INT_RANGES, *_ENUMS, *_BOOLS})


@dataclass(frozen=True)
class FluxParams:
    """The input with defaults filled in (the prediction itself keeps the input as sent)."""

    prompt: str
    seed: int | None
    num_outputs: int
    output_format: OutputFormat
    output_quality: int
    width: int
    height: int
    num_inference_steps: int = 4


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _wrong_type(name: str, expected: str, value: Any) -> dict[str, str]:
    return {
        "type": "invalid_type",
        "field": f"input.{name}",
        "description": f"Invalid type. Expected: {expected}, given: {json_type(value)}",
    }


def validate_flux_input(data: Any) -> tuple[FluxParams | None, list[dict[str, str]]]:
    """Return the parsed parameters, or None and every problem found."""
    if not isinstance(data, dict):
        return None, [_wrong_type("", "object", data) | {"field": "input"}]
    errors: list[dict[str, str]] = []
    for key in data:
        if key not in KNOWN_KEYS:
            errors.append(
                {
                    "type": "additional_property_not_allowed",
                    "field": "input",
                    "description": f"Additional property {key} is not allowed",
                }
            )
    prompt = data.get("prompt")
    if "prompt" not in data:
        errors.append({"type": "required", "field": "input", "description": "prompt is required"})
    elif not isinstance(prompt, str):
        errors.append(_wrong_type("prompt", "string", prompt))
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        errors.append(_wrong_type("seed", "integer", seed))
    for name, (low, high) in _INT_RANGES.items():
        value = data.get(name)
        if name not in data:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(_wrong_type(name, "integer", value))
        elif value < low:
            errors.append(
                {
                    "type": "number_gte",
                    "field": f"input.{name}",
                    "description": f"Must be greater than or equal to {low}",
                }
            )
        elif value > high:
            errors.append(
                {
                    "type": "number_lte",
                    "field": f"input.{name}",
                    "description": f"Must be less than or equal to {high}",
                }
            )
    for name, choices in _ENUMS.items():
        if name in data and data[name] not in choices:
            listed = ", ".join(f'"{c}"' for c in choices)
            errors.append(
                {
                    "type": "enum",
                    "field": f"input.{name}",
                    "description": f"{name} must be one of the following: {listed}",
                }
            )
    for name in _BOOLS:
        if name in data and not isinstance(data[name], bool):
            errors.append(_wrong_type(name, "boolean", data[name]))
    if errors:
        return None, errors
    width, height = ASPECT_SIZES[data.get("aspect_ratio", "1:1")]
    if data.get("megapixels", "1") == "0.25":
        width, height = width // 2, height // 2
    return (
        FluxParams(
            prompt=str(prompt),
            seed=seed,
            num_outputs=data.get("num_outputs", 1),
            output_format=data.get("output_format", "webp"),
            output_quality=data.get("output_quality", 80),
            width=width,
            height=height,
            num_inference_steps=data.get("num_inference_steps", 4),
        ),
        [],
    )
