"""The harm judge behind the ``pm`` scorer: MiniLM sentence embeddings of a response under a trained head, higher score = more harmless.

Public API (used by the ``pm`` scorer, the CLI and evaluation):

- ``PreferenceModel.load(directory) -> PreferenceModel``: an artifact from ``sparring pm train``
  (``judge.onnx``, ``tokenizer.json``, ``pm.json``); scoring runs on ONNX Runtime, without torch.
- ``PreferenceModel.score(contexts, responses) -> numpy array`` where ``contexts[i]`` is the
  conversation before the response in raw HH text (``Conversation.to_hh()``, may be "") and
  ``responses[i]`` the assistant utterance; higher = more harmless.
- ``PreferenceModel.threshold``: scores below it are judged harmful (chosen on training data only).
- ``default_pm_path()``: the judge shipped in the package (``sparring/data/pm``).
- Training (the ``train`` extra, torch): ``sparring.scoring.pm.build.train_judge`` and ``build_default``;
  leave-one-source-out cross-validation in ``sparring.scoring.pm.crossval``.
"""

from sparring.scoring.pm.model import PreferenceModel, default_pm_path

__all__ = ["PreferenceModel", "default_pm_path"]
