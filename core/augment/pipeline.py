"""A pipeline is an ordered list of steps (Compose semantics), stored as plain JSON.

The same object drives the preview grid, the training loop and both code exports, so what a
user previews is exactly what a run trains with.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import torch
from torchvision.transforms.v2 import functional as F

from core.i18n import _, tr

from . import ops as _ops  # noqa: F401  (registers every augmentation)
from .kernels import as_unit_float
from .schema import AugmentError, get_op

del _ops  # imported for its registrations only

STEP_KEYS = {"op", "params", "enabled"}
JSON_KEYS = {"steps", "seed"}


@dataclass(frozen=True)
class Step:
    op: str
    params: dict = field(default_factory=dict)  # validated and complete (defaults filled in)
    enabled: bool = True

    @classmethod
    def make(cls, op: str, params: dict | None = None, enabled: bool = True) -> "Step":
        return cls(op, get_op(op).validate(params or {}), enabled)

    def to_dict(self) -> dict:
        return {"op": self.op, "params": _jsonable(self.params), "enabled": self.enabled}


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...] = ()

    # ---- building and editing (each returns a new pipeline) -----------------------------------

    @classmethod
    def empty(cls) -> "Pipeline":
        return cls()

    @classmethod
    def of(cls, *items: tuple[str, dict] | str) -> "Pipeline":
        """Pipeline.of("hflip", ("pad_crop", {"padding": 4}))"""
        return cls(tuple(Step.make(i) if isinstance(i, str) else Step.make(*i) for i in items))

    @classmethod
    def from_list(cls, items) -> "Pipeline":
        if not isinstance(items, (list, tuple)):
            raise AugmentError(
                _("a pipeline must be a list of steps, got {type}").format(type=type(items).__name__)
            )
        steps = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or "op" not in item:
                raise AugmentError(
                    _("step {n} must be an object with an 'op' key, got {item!r}").format(n=n, item=item)
                )
            unknown = sorted(set(item) - STEP_KEYS)
            if unknown:
                raise AugmentError(
                    _("step {n} ({op}): unknown key(s) {unknown}; allowed: {allowed}").format(
                        n=n, op=item["op"], unknown=unknown, allowed=sorted(STEP_KEYS)
                    )
                )
            enabled = item.get("enabled", True)
            if not isinstance(enabled, bool):
                raise AugmentError(_("step {n} ({op}): 'enabled' must be true or false").format(n=n, op=item["op"]))
            steps.append(Step.make(item["op"], item.get("params"), enabled))
        return cls(tuple(steps))

    def to_list(self) -> list[dict]:
        return [s.to_dict() for s in self.steps]

    def to_json(self, seed: int | None = None) -> str:
        doc = {"steps": self.to_list()}
        if seed is not None:
            doc["seed"] = seed
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Pipeline":
        return load_json(text)[0]

    def added(self, op: str, params: dict | None = None) -> "Pipeline":
        return Pipeline(self.steps + (Step.make(op, params),))

    def removed(self, index: int) -> "Pipeline":
        return Pipeline(self.steps[:index] + self.steps[index + 1:])

    def moved(self, index: int, offset: int) -> "Pipeline":
        target = index + offset
        if not 0 <= target < len(self.steps):
            return self
        steps = list(self.steps)
        steps[index], steps[target] = steps[target], steps[index]
        return Pipeline(tuple(steps))

    def updated(self, index: int, params: dict | None = None, enabled: bool | None = None) -> "Pipeline":
        step = self.steps[index]
        new = replace(
            step,
            params=get_op(step.op).validate(params) if params is not None else step.params,
            enabled=step.enabled if enabled is None else enabled,
        )
        return Pipeline(self.steps[:index] + (new,) + self.steps[index + 1:])

    @property
    def active(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.enabled)

    # ---- running -------------------------------------------------------------------------------

    def apply(self, x: torch.Tensor, generator: torch.Generator, context: dict | None = None):
        """Augment a batch [N,C,H,W]; every image draws its own parameters.

        x is float in [0, 1], or uint8 (as a trainer keeps its data): then the leading steps
        that only move pixels (flips, padded crops) run on the bytes, a quarter of the memory
        traffic, and the batch turns into float / 255 before the first step that computes (or
        inside it, for a step that takes bytes: ColorJitter gathers them first); the result is
        the same as converting first, to the bit. The images returned are float.
        Returns (images, records): one record per enabled step with what was drawn.
        Each step draws for the whole batch before anything is applied, in step order, so the
        draws (and the images) do not depend on how the work is split; see _chunk_size.
        """
        if x.dim() != 4:
            raise AugmentError(_("expected a batch [N, C, H, W], got shape {shape}").format(shape=tuple(x.shape)))
        context = context or {}
        steps = [(get_op(step.op), step.params) for step in self.active]
        on_bytes = 0  # how many leading steps run on uint8
        if x.dtype == torch.uint8:
            while on_bytes < len(steps) and steps[on_bytes][0].moves_pixels:
                on_bytes += 1
        n, chunk = x.shape[0], _chunk_size(x)

        def run(part: torch.Tensor, step: int, drawn: dict, start: int) -> torch.Tensor:
            op, params = steps[step]
            if step == on_bytes and not op.takes_bytes:
                part = as_unit_float(part)
            return op.apply(part, _rows(drawn, start, start + len(part), n), params, context)

        # the first chunk goes through every step first: its shape after a step is the shape
        # every image has there, which the next step's draws need
        head = x[:chunk]
        draws = []
        for k, (op, params) in enumerate(steps):
            drawn = op.sample(n, tuple(head.shape[1:]), params, generator, context)
            head = run(head, k, drawn, 0)
            draws.append(drawn)
        parts = [as_unit_float(head)]
        for start in range(chunk, n, chunk):
            part = x[start:start + chunk]
            for k, drawn in enumerate(draws):
                part = run(part, k, drawn, start)
            parts.append(as_unit_float(part))
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        records = [{"op": step.op, "label": op.label, "drawn": drawn}
                   for step, (op, unused), drawn in zip(self.active, steps, draws)]
        return out, records

    def scaled(self, factor: float) -> "Pipeline":
        """The same pipeline for pictures `factor` times the size: values in pixels (a crop's
        output side, padding, a blur's kernel and sigma) are scaled; fractions stay as they are."""
        return Pipeline(tuple(replace(s, params=get_op(s.op).scaled(s.params, factor)) for s in self.steps))

    def preview(self, image: torch.Tensor, n: int = 8, seed: int = 0, context: dict | None = None,
                side: int | None = None):
        """n augmented copies of one image [C,H,W]; the same seed gives the same grid.

        side: compute the tiles at this size on the long side (the size a page shows them at)
        rather than at the image's own: the image is shrunk first and the values in pixels with
        it, so each tile draws what preview_tile draws at full size, at a fraction of the work.
        """
        image, pipeline = self._at_side(image, side)
        # n views of one image: every step writes a new tensor, so no copy is needed
        batch = image.unsqueeze(0).expand(n, *image.shape)
        grid, records = pipeline.apply(batch, torch.Generator().manual_seed(seed), context)
        if grid.data_ptr() == image.data_ptr():  # no step changed anything: still the shared views
            grid = grid.contiguous()
        return grid, records

    def preview_tile(self, image: torch.Tensor, n: int, seed: int, index: int, context: dict | None = None):
        """Tile `index` of preview(image, n, seed), computed alone at the image's full size.

        Every step still draws for all n tiles, in the same order, so the draws are the grid's;
        only this tile's pixels are computed. Returns (tile [C,H,W], records).
        """
        if not 0 <= index < n:
            raise AugmentError(_("tile {index} is not in a grid of {n}").format(index=index + 1, n=n))
        context = context or {}
        generator = torch.Generator().manual_seed(seed)
        tile, records = image.unsqueeze(0), []
        for step in self.active:
            op = get_op(step.op)
            drawn = op.sample(n, tuple(tile.shape[1:]), step.params, generator, context)
            tile = op.apply(tile, _rows(drawn, index, index + 1, n), step.params, context)
            records.append({"op": step.op, "label": op.label, "drawn": drawn})
        return tile[0].clone() if tile.data_ptr() == image.data_ptr() else tile[0], records

    def _at_side(self, image: torch.Tensor, side: int | None) -> tuple[torch.Tensor, "Pipeline"]:
        long_side = max(image.shape[-2:])
        if side is None or side >= long_side:
            return image, self
        small = shrink(image, side)
        return small, self.scaled(max(small.shape[-2:]) / long_side)

    @staticmethod
    def describe(records: list[dict], i: int) -> list[str]:
        """What image i drew at each step, one line a step."""
        return [f"{tr(r['label'])}: {get_op(r['op']).describe(r['drawn'], i)}" for r in records]

    # ---- export --------------------------------------------------------------------------------

    def to_torchvision_code(self, input_size: tuple[int, int]) -> str:
        """A standalone torchvision v2 Compose with the same ops and parameters.

        Each image gets its own draws, as in our pipeline, but from torch's global generator, so
        the samples differ from the preview's.
        """
        helpers = sorted({get_op(s.op).torchvision_helper for s in self.active} - {""})
        lines = [f"        {get_op(s.op).torchvision_code(s.params, tuple(input_size))}," for s in self.active]
        body = "\n".join(lines) if lines else "        v2.Identity(),"
        return (
            "import torch\nfrom torchvision.transforms import v2\n"
            + "".join(helpers)
            + "\n\ntransform = v2.Compose([\n"
            "        v2.ToImage(),\n        v2.ToDtype(torch.float32, scale=True),\n"
            f"{body}\n])\n\n"
            "# augmented = transform(pil_image)  # a float tensor [C, H, W] in [0, 1]\n"
        )

    def to_core_code(self, seed: int, n: int, image_path: str = "photo.jpg", max_side: int = 512,
                     side: int | None = None) -> str:
        """Python that reproduces the preview grid exactly with this project's core package
        (side: the size the tiles are computed at, as in preview)."""
        at_side = "" if side is None else f", side={side}"
        return (
            "from core.augment import Pipeline\n"
            "from core.data.images import load_image\n\n"
            f"pipeline = Pipeline.from_json('''{self.to_json()}''')\n"
            f"image = load_image({image_path!r}, max_side={max_side}).tensor  # as the page loads it\n"
            f"grid, records = pipeline.preview(image, n={n}, seed={seed}{at_side})  # float [{n}, C, H, W]\n"
            "for i in range(len(grid)):\n"
            "    print(i, Pipeline.describe(records, i))\n"
        )


# On CPU a pipeline runs a few large images (the preview: 8 copies of a 512 px photo) one at a
# time through all its steps: the temporaries of each step then stay in cache and are recycled
# by the allocator instead of being fresh 20 MB buffers, which roughly halves the preview's
# time. Training batches of small images (256 x 3 x 32 x 32 is under the limit) stay whole, and
# so do batches on a GPU.
CHUNK_ELEMENTS = 1 << 20


def _chunk_size(x: torch.Tensor) -> int:
    n = x.shape[0]
    if x.device.type != "cpu" or n == 0:
        return max(n, 1)
    return min(n, max(1, CHUNK_ELEMENTS // max(1, x[0].numel())))


def shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    """image [C,H,W] (or a batch) scaled down to `side` pixels on its long side, aspect kept
    (torchvision's antialiased bilinear resize, as a page would shrink a photo to show it)."""
    height, width = image.shape[-2:]
    scale = side / max(height, width)
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    return F.resize(image, size, interpolation=F.InterpolationMode.BILINEAR, antialias=True).clamp_(0, 1)


def _rows(drawn: dict, start: int, stop: int, n: int) -> dict:
    """The draws of images start..stop-1 (every per-image tensor has the batch as dimension 0)."""
    if start == 0 and stop >= n:
        return drawn
    return {k: v[start:stop] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n else v
            for k, v in drawn.items()}


def load_json(text: str | bytes) -> tuple[Pipeline, int | None]:
    """Parse a saved pipeline ({"steps": [...], "seed": 0} or a bare list of steps)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise AugmentError(_("this file is not valid JSON ({error})").format(error=e)) from None
    seed = None
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - JSON_KEYS)
        if unknown:
            raise AugmentError(
                _("unknown key(s) {unknown} in the pipeline file; allowed: {allowed}").format(
                    unknown=unknown, allowed=sorted(JSON_KEYS)
                )
            )
        if "steps" not in doc:
            raise AugmentError(_("the pipeline file has no 'steps' list"))
        seed = doc.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise AugmentError(_("'seed' must be a non-negative whole number, got {seed!r}").format(seed=seed))
        doc = doc["steps"]
    return Pipeline.from_list(doc), seed
