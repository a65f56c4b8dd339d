"""The datasets the lab knows by name, with the label and help the pages show, and the prefixes
for one's own images."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    label: str
    help: str
    variants: tuple[str, ...] = ()  # accepted values of `variant` besides None
    needs_files: bool = False  # True: usable only once its files are under home()/datasets
    train_size: int | None = None  # training images of the whole set (before any subset), when fixed
    package: str | None = None  # a Python package the set ships in; listed only when it is installed


DATASETS: dict[str, DatasetInfo] = {
    "shapes": DatasetInfo(
        label="Shapes (generated, 10 classes)",
        help=(
            "Ten simple shapes (circle, square, triangle, plus, ring, star, diamond, horizontal bar, "
            "vertical bar, x) in random colours, sizes, positions and small rotations on a light "
            "textured background; 32x32 RGB, 5,000 train / 1,000 test, generated from the seed in "
            "under a second, no files needed. Variants make the TRAIN split narrower than the test "
            "split, so that the right augmentation visibly pays off: "
            "'left' = train objects only in the left half, test objects anywhere (flips and crops help "
            "position-sensitive models such as the MLP and LeNet a lot; a CNN with global pooling barely "
            "notices the shift, which is a lesson of its own); "
            "'few_colours' = train objects only red or green, test objects any colour (colour jitter "
            "and grayscale help). Note: the bars and the triangle are not rotation- or vflip-invariant, "
            "so those augmentations can hurt here."
        ),
        variants=("left", "few_colours"),
        train_size=5000,
    ),
    "digits": DatasetInfo(
        label="Digits (scikit-learn, real handwriting, 10 classes)",
        help=(
            "1,797 real handwritten digits 0-9 (UCI optical recognition of handwritten digits, shipped "
            "inside scikit-learn, so no download): 8x8 grayscale, 16 grey levels scaled to 0-255. A "
            "seeded, stratified 20% of each class is the test split (1,438 train / 359 test). The "
            "embedded stand-in for MNIST; set the image size to 28 to train MNIST-sized models on it."
        ),
        train_size=1438,
        package="sklearn",
    ),
    "cifar10": DatasetInfo(
        label="CIFAR-10 (torchvision)",
        help="60,000 32x32 colour photos in 10 classes (50,000 train / 10,000 test).",
        needs_files=True,
        train_size=50_000,
    ),
    "mnist": DatasetInfo(
        label="MNIST (torchvision)",
        help="70,000 28x28 grayscale handwritten digits (60,000 train / 10,000 test).",
        needs_files=True,
        train_size=60_000,
    ),
    "fashion_mnist": DatasetInfo(
        label="Fashion-MNIST (torchvision)",
        help="70,000 28x28 grayscale clothing images in 10 classes (60,000 train / 10,000 test).",
        needs_files=True,
        train_size=60_000,
    ),
}

# Your own images, by prefix. Listed for the UI; they are not in DATASETS because they need a path.
PATH_PREFIXES = {
    "folder:": "A folder of class folders: <folder>/<class>/<image>, or <folder>/train/<class>/... "
    "with <folder>/test/<class>/... (or val/).",
    "zip:": "A zip of class folders in the same layout (one wrapping folder is fine). Read without "
    "extracting; images are decoded once and cached.",
}

IMAGE_SIZE_RANGE = (8, 256)
