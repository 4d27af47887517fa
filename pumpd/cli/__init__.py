"""Command-line entry points (click + rich); thin layers over the layers below."""
