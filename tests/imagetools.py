"""Test pictures: a colour pattern that survives JPEG, and its checks."""
import io
import random

from PIL import Image

LEFT, RIGHT = (220, 30, 30), (30, 30, 220)      # red | blue
TOP_MARK = (30, 200, 30)                        # green band along the top


def pattern_jpeg(width=4000, height=3000, noise=True, quality=92):
    """Left half red, right half blue, a green band at the top; with noise
    so that it does not compress well (a hard case for the size limit)."""
    img = Image.new("RGB", (width, height), LEFT)
    img.paste(RIGHT, (width // 2, 0, width, height))
    img.paste(TOP_MARK, (0, 0, width, height // 6))
    if noise:
        rnd = random.Random(7)
        grain = Image.frombytes("L", (width // 4, height // 4), bytes(
            rnd.getrandbits(8) for _ in range(width * height // 16)))
        grain = grain.resize((width, height)).convert("RGB")
        img = Image.blend(img, grain, 0.25)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def colour_at(jpeg, fx, fy):
    """Average colour around a point given as fractions of width/height."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    w, h = img.size
    box = (int(fx * w) - 3, int(fy * h) - 3, int(fx * w) + 3, int(fy * h) + 3)
    px = list(img.crop(box).getdata())
    return tuple(sum(p[i] for p in px) // len(px) for i in range(3))


def dominant(rgb):
    return "rgb"[max(range(3), key=lambda i: rgb[i])]
