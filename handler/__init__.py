"""ResNet-50 image classification handler for TorchServe.

The entry class lives in ``resnet50_handler.py``; everything else in this package is
plain Python (no ``ts`` import) so it can be tested and benchmarked without a server.
"""
