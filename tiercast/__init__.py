"""tiercast: customer tiering with measured, explained predictions."""

__version__ = "0.1.0"
