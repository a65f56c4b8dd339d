"""The robustness probe (core.runs.robustness): corruptions from the augmentation ops, accuracy per strength."""
import pytest
import torch

from core import cli
from core.runs import robustness, store

pytestmark = pytest.mark.usefixtures("auglab_home")


def grey(n=4, size=32):
    return torch.full((n, 3, size, size), 0.5)


def test_every_corruption_is_an_augmentation_op_with_its_strength_pinned():
    from core.augment import Pipeline

    for name, corruption in robustness.CORRUPTIONS.items():
        assert corruption.strengths[0] == 0 and list(corruption.strengths) == sorted(corruption.strengths)
        for strength in corruption.strengths[1:]:
            Pipeline.from_list([corruption.step(strength)])  # a valid step of a declared op
        x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        assert robustness.corrupted(x, name, 0) is x  # strength 0: the clean images
        strong = corruption.strengths[-1]
        assert torch.equal(robustness.corrupted(x, name, strong), robustness.corrupted(x, name, strong))  # same draws
        assert not torch.equal(robustness.corrupted(x, name, strong), x)


def test_the_strengths_mean_what_they_say():
    noisy = robustness.corrupted(grey(8), "noise", 0.05)
    assert float((noisy - 0.5).std()) == pytest.approx(0.05, rel=0.1)
    holed = robustness.corrupted(grey(8), "occlusion", 0.5)
    holes = (holed == 0).all(dim=1).flatten(1).sum(1)
    assert int(holes.max()) <= 16 * 16 and int(holes.min()) > 0  # one 16x16 hole, clipped at the border
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    turned = robustness.corrupted(ramp, "rotation", 90)
    # a quarter turn: the horizontal ramp becomes a vertical one (the corners' fill aside)
    assert float(turned[0, 0, 4:-4, 16].std()) > 0.2 and float(turned[0, 0, 16, 4:-4].std()) < 0.02
    bright = robustness.corrupted(grey(200), "brightness", 0.4)
    factors = bright.mean(dim=(1, 2, 3)) / 0.5
    assert 0.6 - 1e-6 <= float(factors.min()) and float(factors.max()) <= 1.4 + 1e-6 and float(factors.std()) > 0.1
    with pytest.raises(ValueError, match="unknown corruption"):
        robustness.corrupted(grey(), "fog", 1.0)


def test_a_probe_gives_each_run_its_accuracy_at_each_strength():
    tiny = {"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
            "run": {"epochs": 1, "batch_size": 32, "threads": 1, "amp": "off"}}
    first, second = cli.run(tiny, "a"), cli.run({**tiny, "run": {**tiny["run"], "seed": 1}}, "b")
    assert all(robustness.probeable(store.get_run(r)) for r in (first, second))
    table = robustness.probe([first, second], "noise", strengths=[0, 0.1, 0.3])
    assert list(table.columns) == ["run_id", "strength", "accuracy", "images"]
    assert list(table["run_id"]) == [first] * 3 + [second] * 3 and list(table["strength"]) == [0, 0.1, 0.3] * 2
    for run_id in (first, second):
        record = store.get_run(run_id)
        clean = table[(table["run_id"] == run_id) & (table["strength"] == 0)].iloc[0]
        assert clean["images"] == record.summary["data"]["test_size"]
        # strength 0 is the test split itself: the run's own final accuracy
        assert clean["accuracy"] == pytest.approx(record.summary["final"]["test_acc"], abs=1e-6)  # float32 in the trainer
    assert table["accuracy"].between(0, 1).all()
