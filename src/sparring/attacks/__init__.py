"""Who speaks the human side of an automated run: replay of red-team datasets and goal lists, generated attacks."""

from sparring.attacks import crescendo, generated, paraphrase, replay, tree  # noqa: F401  (register)
from sparring.attacks.base import Attack, AttackItem, HumanTurn, attacks

__all__ = ["Attack", "AttackItem", "HumanTurn", "attacks"]
