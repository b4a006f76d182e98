"""Digit Reader device runtime: reads numbers from camera frames with an int8 LiteRT model.

Nothing in this package imports TensorFlow or Keras, and nothing probes hardware at import time.
"""

__version__ = "0.1.0"
