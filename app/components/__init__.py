"""Custom Streamlit components: what Streamlit's own widgets cannot do, in inline HTML/JS/CSS."""
