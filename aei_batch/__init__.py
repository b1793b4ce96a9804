"""aei_batch: batch emotion recognition from speech and faces, fanned out with Ray.

Importing the package is cheap on purpose: heavy libraries load inside the functions that need them.
"""

__version__ = "0.1.0"
