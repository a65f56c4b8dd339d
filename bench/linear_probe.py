"""How far ImageNet features go on the fine-tuning preset's photos: a linear classifier on them.

The fine-tuning preset (core/runs/presets.py, "finetune_imagenet") trains MobileNetV2 from ImageNet
weights on 1,000 flowers5 photos at 128 px. To tell a weak fine-tuning recipe from weak features,
this fits scikit-learn's logistic regression on the frozen network's pooled features (eval mode, no
augmentation) of the same training images and scores it on the same test split, at the preset's
128 px and with the photos upscaled to 160 and 224 px.

    python bench/linear_probe.py                 # about 3 minutes on 2 cores
    python bench/linear_probe.py --sizes 128
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common as common  # noqa: E402  (puts the project root on sys.path)
import torch
import torch.nn.functional as F

DATA = common.ROOT.parent / "shared" / "data" / "flowers5.zip"


def features(model: torch.nn.Module, images: torch.Tensor, normalise, size: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            x = images[start : start + 64].float() / 255
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            out.append(model(normalise(x).contiguous(memory_format=torch.channels_last)))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 224])
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"{DATA} is missing: this benchmark needs the shared flowers5 photos")
    os.environ.setdefault("AUGLAB_HOME", tempfile.mkdtemp(prefix="auglab_probe_"))
    from sklearn.linear_model import LogisticRegression

    from core.runs import presets
    from core.training import weights
    from core.training.batches import load_data
    from core.training.models import build_model

    print(common.machine_line(), flush=True)
    plan = presets.plan_preset("finetune_imagenet", "cpu", dataset=f"zip:{DATA}")
    cfg = dict(plan.runs)[f"{plan.title} · fine-tuned, head lr x10"]
    data = load_data(cfg, torch.device("cpu"))
    bundle = data.bundle
    if not weights.availability("mobilenet_v2").present:
        raise SystemExit("MobileNetV2's ImageNet weights are not installed: python -m core.training.weights install")
    model = build_model("tv_mobilenet_v2", in_channels=3, num_classes=bundle.num_classes, pretrained=True)
    model.classifier = torch.nn.Identity()  # the pooled 1,280 features
    model = model.eval().to(memory_format=torch.channels_last)
    print(f"{len(bundle.train_y)} training photos, {len(bundle.test_y)} test photos, {bundle.image_size} px; "
          "logistic regression on MobileNetV2's ImageNet features")
    for size in args.sizes:
        start = time.perf_counter()
        train = features(model, bundle.train_x, data.normalise, size).numpy()
        test = features(model, bundle.test_x, data.normalise, size).numpy()
        probe = LogisticRegression(max_iter=2000).fit(train, bundle.train_y.numpy())
        accuracy = probe.score(test, bundle.test_y.numpy())
        print(f"  {size} px: test accuracy {accuracy:.1%} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
