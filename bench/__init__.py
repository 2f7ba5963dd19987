"""Load and scale benchmarks: `python -m bench [pets|report|generate]` (see bench/README.md)."""
