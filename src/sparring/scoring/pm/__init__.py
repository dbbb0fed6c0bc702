"""The harmlessness preference model (PM): trained on comparison pairs, higher score = more harmless.

Public API (used by the ``pm`` scorer, the CLI and evaluation):

- ``PreferenceModel.load(directory) -> PreferenceModel`` and ``.save(directory)``
- ``PreferenceModel.score(contexts, responses) -> numpy array`` where ``contexts[i]`` is the
  conversation before the response in raw HH text (``Conversation.to_hh()``, may be "") and
  ``responses[i]`` the assistant utterance; higher = more harmless.
- ``PreferenceModel.threshold``: scores below it are judged harmful (chosen on training data only).
- ``default_pm_path()``: the PM shipped in the package (``sparring/data/pm``).
- ``train_preference_model(pairs, seed=0, ...) -> PreferenceModel`` in ``sparring.scoring.pm.train``.
"""

from sparring.scoring.pm.model import PreferenceModel, default_pm_path

__all__ = ["PreferenceModel", "default_pm_path"]
