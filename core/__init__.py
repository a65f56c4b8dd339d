"""Augmentation Lab core: augmentation, data, models and training. Never imports streamlit."""

__version__ = "0.10.0"
