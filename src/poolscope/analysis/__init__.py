"""Analysis: metrics and statistics over trials, classification and recommendation."""
