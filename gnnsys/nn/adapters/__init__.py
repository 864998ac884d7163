"""Adapters that run other libraries' unmodified graph convolutions as gnnsys layers."""
