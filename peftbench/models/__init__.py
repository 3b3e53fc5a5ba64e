"""Backbones: their family, their anatomy (roles a method speaks in) and how to load them."""
