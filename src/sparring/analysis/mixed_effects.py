"""The paper's linear mixed-effects model: size x intervention, covariates, a random intercept per red teamer.

Size enters as log10(parameters / 1e9) when every size is a parameter count (so
intervention main effects are read at 1B parameters), else as a categorical.
Covariates that do not vary are dropped and the note says so; with fewer than
``MIN_GROUPS`` red teamers there is no random intercept to estimate and an
ordinary least-squares fit stands in, also said in the note.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sparring.analysis.cells import model_type_rank

MIN_GROUPS = 3
# BFGS first: statsmodels' L-BFGS can stop at a zero group variance with an infinite likelihood.
METHODS = ("bfgs", "powell")
MAX_ITER = 200
COEFFICIENT_COLUMNS = ["term", "estimate", "std_error", "p_value", "ci_lo", "ci_hi"]
_TERM = re.compile(r"C\((\w+)(?:, Treatment\([^)]*\))?\)\[T\.([^\]]*)\]")


@dataclass
class MixedEffectsResult:
    formula: str
    coefficients: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COEFFICIENT_COLUMNS))
    group_variance: float = float("nan")
    n_obs: int = 0
    n_groups: int = 0
    converged: bool = False
    note: str = ""

    def coefficient(self, term: str) -> pd.Series:
        """The row of one term, e.g. ``"log10_params_b:model_type[rlhf]"``."""
        rows = self.coefficients[self.coefficients["term"] == term]
        if rows.empty:
            raise KeyError(f"no term {term!r}; terms: {', '.join(self.coefficients['term'])}")
        return rows.iloc[0]


def fit_mixed_effects(attempts: pd.DataFrame, outcome: str = "min_harmlessness") -> MixedEffectsResult:
    """Fit ``outcome ~ size * model_type + task_harmlessness + platform`` with (1 | red_team_member_id)."""
    notes: list[str] = []
    data, terms = _design(attempts, outcome, notes)
    formula = f"{outcome} ~ " + (" + ".join(terms) if terms else "1")
    n_groups = int(data["red_team_member_id"].nunique())
    n_fixed = _n_fixed(data, terms)
    if len(data) < n_fixed + 2:
        notes.append(f"not fitted: {len(data)} usable rows for {n_fixed} fixed effects")
        return MixedEffectsResult(formula, n_obs=len(data), n_groups=n_groups, note="; ".join(notes))
    if n_groups < MIN_GROUPS:
        notes.append(f"only {n_groups} red teamer(s): no random intercept to estimate; ordinary least squares instead")
        return _fit_ols(data, formula, n_groups, notes)
    return _fit_mixed(data, formula, n_groups, notes)


def _design(attempts: pd.DataFrame, outcome: str, notes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The usable rows and the fixed-effect terms that vary among them."""
    data = pd.DataFrame({
        outcome: attempts[outcome].astype(float), "params": attempts["params"].astype(float),
        "size": attempts["size"].astype(str), "model_type": attempts["model_type"].astype(str),
        "task_harmlessness": attempts["task_harmlessness"].astype(float),
        "platform": attempts["platform"].astype(str), "red_team_member_id": attempts["red_team_member_id"].astype(str),
    })
    missing = data[outcome].isna()
    if missing.any():
        notes.append(f"{int(missing.sum())} rows without {outcome} dropped")
        data = data[~missing]
    use_task = data["task_harmlessness"].notna().any()
    if use_task and data["task_harmlessness"].isna().any():
        notes.append(f"{int(data['task_harmlessness'].isna().sum())} rows without task_harmlessness dropped")
        data = data[data["task_harmlessness"].notna()]
    elif not use_task:
        notes.append("task_harmlessness dropped: no values")
    terms = []
    size_term = ""
    if data["size"].nunique() > 1:
        if data["params"].notna().all() and (data["params"] > 0).all():
            data = data.assign(log10_params_b=np.log10(data["params"] / 1e9))
            size_term = "log10_params_b"
        else:
            size_term = "C(size)"
            notes.append("size entered as a categorical: not every size is a parameter count")
    else:
        notes.append("size dropped: one size only")
    type_term = ""
    types = data["model_type"].unique()
    if len(types) > 1:
        reference = "plain lm" if "plain lm" in types else min(types, key=lambda m: (model_type_rank(m), m))
        type_term = f"C(model_type, Treatment(reference={reference!r}))"
    else:
        notes.append("model_type dropped: one intervention only")
    if size_term and type_term:
        terms.append(f"{size_term} * {type_term}")
    else:
        terms += [t for t in (size_term, type_term) if t]
    if use_task:
        if data["task_harmlessness"].std() > 0:
            terms.append("task_harmlessness")
        else:
            notes.append("task_harmlessness dropped: no variance")
    if data["platform"].nunique() > 1:
        terms.append("C(platform)")
    else:
        notes.append(f"platform dropped: every row is {data['platform'].iloc[0]!r}" if len(data) else "platform dropped")
    return data.reset_index(drop=True), terms


def _n_fixed(data: pd.DataFrame, terms: list[str]) -> int:
    """Columns of the fixed-effects design, counted from the levels instead of building it."""
    levels = {"log10_params_b": 1, "C(size)": data["size"].nunique() - 1, "task_harmlessness": 1,
              "C(platform)": data["platform"].nunique() - 1}
    count = 1
    for term in terms:
        parts = [p.strip() for p in term.split("*")]
        widths = [levels.get(p, data["model_type"].nunique() - 1) for p in parts]
        count += sum(widths) + (int(np.prod(widths)) if len(widths) > 1 else 0)
    return count


def _fit_mixed(data: pd.DataFrame, formula: str, n_groups: int, notes: list[str]) -> MixedEffectsResult:
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    model = smf.mixedlm(formula, data, groups=data["red_team_member_id"])
    for method in METHODS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = model.fit(reml=True, method=method, maxiter=MAX_ITER)
            except (np.linalg.LinAlgError, ValueError) as error:
                notes.append(f"mixed model could not be fitted ({error}); ordinary least squares instead")
                return _fit_ols(data, formula, n_groups, notes)
        problems = sorted({str(w.message).split("\n")[0] for w in caught
                           if issubclass(w.category, ConvergenceWarning)})
        if fit.converged and np.isfinite(fit.llf) and not problems:
            break
    notes += problems
    names = [n for n in fit.fe_params.index]
    ci = fit.conf_int().loc[names]
    table = pd.DataFrame({
        "term": [_clean(n) for n in names], "estimate": fit.fe_params.to_numpy(),
        "std_error": fit.bse_fe.to_numpy(), "p_value": fit.pvalues.loc[names].to_numpy(),
        "ci_lo": ci.iloc[:, 0].to_numpy(), "ci_hi": ci.iloc[:, 1].to_numpy(),
    })
    notes.append(f"REML fit ({method}); random intercept per red_team_member_id")
    return MixedEffectsResult(formula=formula, coefficients=table, group_variance=float(fit.cov_re.iloc[0, 0]),
                              n_obs=int(fit.nobs), n_groups=n_groups, converged=bool(fit.converged) and not problems,
                              note="; ".join(notes))


def _fit_ols(data: pd.DataFrame, formula: str, n_groups: int, notes: list[str]) -> MixedEffectsResult:
    import statsmodels.formula.api as smf

    fit = smf.ols(formula, data).fit()
    ci = fit.conf_int()
    table = pd.DataFrame({
        "term": [_clean(n) for n in fit.params.index], "estimate": fit.params.to_numpy(),
        "std_error": fit.bse.to_numpy(), "p_value": fit.pvalues.to_numpy(),
        "ci_lo": ci.iloc[:, 0].to_numpy(), "ci_hi": ci.iloc[:, 1].to_numpy(),
    })
    return MixedEffectsResult(formula=formula, coefficients=table, group_variance=float("nan"),
                              n_obs=int(fit.nobs), n_groups=n_groups, converged=True, note="; ".join(notes))


def _clean(term: str) -> str:
    """``C(model_type, Treatment(reference='plain lm'))[T.rlhf]`` -> ``model_type[rlhf]``."""
    return _TERM.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", term)
