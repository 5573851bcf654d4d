"""ResNet-50 image classification handler for TorchServe.

The entry class lives in ``resnet50_handler.py`` (the worker's lifecycle and the three stages);
``wire_formats.py`` says how each kind of request is read and answered, ``responses.py`` writes
the JSON bodies, ``observability.py`` the logs and metrics. Everything but the entry class is
plain Python (no ``ts`` import at module level) so it can be tested and benchmarked without a server.
"""
