"""quickstudy: how quickly do instruction-tuned models learn new tasks?"""

__version__ = "0.1.0"
