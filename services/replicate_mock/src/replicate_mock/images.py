"""Real, deterministic images: the same prompt, seed and index always give the same bytes."""

from __future__ import annotations

import functools
import hashlib
import io
from collections import OrderedDict

import anyio
from PIL import Image, ImageDraw

from replicate_mock.inputs import OutputFormat

_PIL_FORMATS = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
# The mock shares a machine with the services it stands in for, so it spends as little CPU as
# it can: WebP's fastest effort is ~4x cheaper than Pillow's default (method 4), same format.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {"WEBP": {"method": 0}}


@functools.lru_cache(maxsize=16)
def _ramp(width: int, height: int) -> Image.Image:
    """A left-to-right grey ramp of the size (rendered once per size; callers never mutate it)."""
    return Image.linear_gradient("L").rotate(90).resize((width, height))


def render_image(
    *,
    prompt: str,
    seed: int,
    index: int,
    width: int,
    height: int,
    output_format: OutputFormat,
    quality: int,
) -> bytes:
    """A gradient with a few shapes, colours and layout taken from a hash of the inputs."""
    digest = hashlib.sha256(f"{prompt}\0{seed}\0{index}".encode()).digest()
    start, end = digest[0:3], digest[3:6]
    # Horizontal gradient from `start` to `end`, one channel at a time (fast, no Python loop).
    ramp = _ramp(width, height)
    channels = [
        ramp.point(lambda v, a=a, b=b: a + (b - a) * (255 - v) // 255)
        for a, b in zip(start, end, strict=True)
    ]
    image = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(image)
    for i in range(4):
        chunk = digest[6 + i * 6 : 12 + i * 6]
        x, y = chunk[0] * width // 256, chunk[1] * height // 256
        r = (chunk[2] % 64 + 16) * min(width, height) // 256
        box = (x - r, y - r, x + r, y + r)
        colour = (chunk[3], chunk[4], chunk[5])
        if i % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    draw.text((8, 8), prompt[:60], fill=(255, 255, 255))
    buffer = io.BytesIO()
    pil_format = _PIL_FORMATS[output_format]
    options = dict(_SAVE_OPTIONS.get(pil_format, {}))
    if output_format != "png":
        options["quality"] = max(1, quality)
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


class ImageCache:
    """Bounded LRU of rendered files; rendering runs in a worker thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self.renders = 0

    async def get(
        self,
        key: str,
        *,
        prompt: str,
        seed: int,
        index: int,
        width: int,
        height: int,
        output_format: OutputFormat,
        quality: int,
    ) -> bytes:
        if (hit := self._items.get(key)) is not None:
            self._items.move_to_end(key)
            return hit

        def work() -> bytes:
            return render_image(
                prompt=prompt,
                seed=seed,
                index=index,
                width=width,
                height=height,
                output_format=output_format,
                quality=quality,
            )

        data = await anyio.to_thread.run_sync(work)
        self.renders += 1
        if self.size:
            self._items[key] = data
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return data
