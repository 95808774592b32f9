"""The Handrail lab: a simulated security estate served over HTTP (`python -m lab`)."""
