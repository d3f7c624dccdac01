"""The product version; the recipe and protocol schemas are versioned on their own."""

__version__ = "0.1.0"
