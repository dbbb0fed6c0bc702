"""Closing the paper's loop: preference pairs from red teaming tune the target, which is red teamed again."""
