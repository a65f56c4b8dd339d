"""Augmentation Lab core: augmentation, data, models and training. Never imports streamlit."""
