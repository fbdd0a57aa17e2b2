"""The dashboard's pages, one module each; each has ``render(data)``."""
