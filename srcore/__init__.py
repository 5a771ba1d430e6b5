"""srcore: train, evaluate and serve small character CTC speech recognisers."""

__version__ = "0.1.0"
