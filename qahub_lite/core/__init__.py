"""The canonical model and everything done with it. Nothing here knows of HTTP."""
