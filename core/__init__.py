"""Latent Lab's core: data, models, training, evaluation and artifacts. Never imports streamlit."""
