"""Datasets and pictures: every source of images ends up as a `DatasetBundle` of uint8 tensors.

    catalogue         the datasets known by name (labels, help, sizes) and the path prefixes
    load              load_dataset(name, ...): the one entry point, with subsets and checks
    bundle            DatasetBundle, DatasetError, and the seeded stratified picks
    embedded          shapes (generated) and digits (scikit-learn): no files needed
    torchvision_sets  CIFAR-10, MNIST, Fashion-MNIST under home()/datasets
    folders           one's own class folders or zips, decoded once and cached
    sources           where each real dataset comes from on this machine, and getting it
    uploads           zips uploaded through the page, kept by content hash
    images, samples   single pictures: decoding uploads, drawing previews, the built-in photos
    permute           the permuted-pixels experiment's fixed shuffle
"""
from core.data.bundle import DatasetBundle, DatasetError
from core.data.catalogue import DATASETS, IMAGE_SIZE_RANGE, PATH_PREFIXES, DatasetInfo
from core.data.embedded import DIGIT_CLASSES, SHAPE_CLASSES, generate_shapes
from core.data.folders import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, ImagesOverview, describe_images
from core.data.load import available_datasets, load_dataset, load_for_config
from core.data.torchvision_sets import (
    datasets_root,
    has_torchvision_files,
    torchvision_dataset_class,
    torchvision_files,
    torchvision_folder,
)

__all__ = [
    "DATASETS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "DIGIT_CLASSES", "IMAGE_SIZE_RANGE", "PATH_PREFIXES",
    "SHAPE_CLASSES", "DatasetBundle", "DatasetError", "DatasetInfo", "ImagesOverview", "available_datasets",
    "datasets_root", "describe_images", "generate_shapes", "has_torchvision_files", "load_dataset", "load_for_config",
    "torchvision_dataset_class", "torchvision_files", "torchvision_folder",
]
