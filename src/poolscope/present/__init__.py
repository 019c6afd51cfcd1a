"""Presentation: terminal tables, progress, pictures. Reads results, never executors."""
