"""A grid of targets x attacks, run concurrently, persisted turn by turn, resumable."""

from sparring.experiments.config import ExperimentConfig, load_config, parse_config
from sparring.experiments.runner import arun_experiment, run_experiment

__all__ = ["ExperimentConfig", "arun_experiment", "load_config", "parse_config", "run_experiment"]
