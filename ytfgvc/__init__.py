"""ytfgvc: dataset toolkit and benchmark harness for YouTube-Birds and YouTube-Cars."""

__version__ = "0.1.0"
