"""Host (laptop) side of Digit Reader: MNIST data, training, conversion, evaluation, benchmarks.

TensorFlow and Keras are imported here and nowhere in ``device/``.
"""
