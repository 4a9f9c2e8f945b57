"""Maximum likelihood on weighted rows, with standard errors, shared by every CLV model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..sums import dot


@dataclass(frozen=True)
class MLEResult:
    params: np.ndarray
    log_likelihood: float
    cov: np.ndarray
    converged: bool
    message: str
    n_iter: int
    grad_norm: float
    #: The likelihood is not finite right next to the optimum (extreme parameters).
    unstable: bool = False
    #: The fit stopped at ``MAX_EVALUATIONS``; ``params`` is the best point it had seen.
    budget_reached: bool = False
    n_evaluations: int = 0


#: Above this many rows a fit starts from a fit on a sample of customers (see ``warm_start``).
WARM_START_ROWS = 50_000
WARM_START_CUSTOMERS = 20_000
#: With an exact gradient, BFGS stops at this gradient and Newton steps go on to ``tol``.
NEWTON_FROM = 1e-6
#: Likelihood evaluations one fit may make, warm start, BFGS, Newton and polish together. A
#: count, not a clock, so results do not depend on the machine, and one that does not grow
#: with the data: typical fits use 30-300 (CDNOW), the Nelder-Mead polish at extreme
#: parameters about 1,000.
MAX_EVALUATIONS = 2_500
#: Nelder-Mead polish evaluations (within the fit's budget).
POLISH_EVALUATIONS = 1_200
#: The gradient (per unit of weight, in log-parameters) above which a fit that BFGS left on
#: precision loss is polished by Nelder-Mead: 1e-6 without an exact gradient; with one,
#: Newton steps come first, and a point they leave below 1e-4 (a converged fit, see
#: ``MLEResult.converged``) is not polished: on the flat ridge of parameters running to
#: infinity Nelder-Mead spent its 1,200 evaluations (17 s for 1,500 customers) and ended on
#: a worse likelihood than BFGS's point.
POLISH_FROM = 1e-6
POLISH_FROM_EXACT = 1e-4


class _BudgetReached(Exception):
    """Raised inside an objective when the fit's evaluations are spent."""


class _Budget:
    """Counts a fit's likelihood evaluations across its phases and remembers the best point,
    so that a fit stopped at the bound ends at the best estimate it saw, never a worse one."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.forget_best()
        self.open = True  # closed for the checks and Hessians between and after the phases

    def forget_best(self) -> None:
        """Start the best point afresh (a warm start's sample values do not compare)."""
        self.best_value, self.best_x = np.inf, None

    def spend(self) -> None:
        if self.open:
            if self.used >= self.limit:
                raise _BudgetReached
            self.used += 1

    def seen(self, log_params: np.ndarray, value: float) -> None:
        if self.open and value < self.best_value:
            self.best_value, self.best_x = value, np.array(log_params, dtype=float)


def _minimize(*args, **kwargs):
    # imported on first use: only fits without an exact gradient, and the rare ones the
    # exact-gradient BFGS below hands over, need scipy's optimiser
    from scipy.optimize import minimize

    return minimize(*args, **kwargs)


class _Result(dict):
    """An optimiser's answer, as scipy's ``OptimizeResult`` reads (``result.x``): the models
    with exact gradients never import scipy's optimiser (a third of a second, 25 MiB)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


#: The line search's sufficient decrease (Armijo) constant, and the fewest it shrinks a step by.
_ARMIJO, _SHRINK = 1e-4, 0.1


def _bfgs_exact(objective_and_grad, start, gtol: float, max_iter: int, hess_inv0=None):
    """BFGS on an exact gradient, stopping when its largest component is below ``gtol``: the
    textbook method (Nocedal & Wright, algorithm 6.1) with a backtracking line search that
    interpolates. Without ``hess_inv0`` it starts from the identity, scaled after the first
    step. ``success`` is False when a step finds no decrease (then scipy's BFGS takes over)."""
    x = np.array(start, dtype=float)
    f, g = objective_and_grad(x)
    n = x.size
    hess_inv = np.eye(n) if hess_inv0 is None else np.array(hess_inv0, dtype=float)
    scaled = hess_inv0 is not None
    step0 = min(1.0, 1.01 / max(float(np.linalg.norm(g)), 1e-300)) if not scaled else 1.0
    message, success, nit = "the largest gradient component is below the tolerance", True, 0
    while np.max(np.abs(g)) >= gtol:
        if nit >= max_iter:
            message, success = "the iteration limit was reached", False
            break
        p = -hess_inv @ g
        slope = float(g @ p)
        if not slope < 0:  # not a descent direction: start the curvature afresh
            hess_inv, p, scaled = np.eye(n), -g, False
            slope = float(g @ p)
        t = step0 if nit == 0 else 1.0
        while True:
            f_new, g_new = objective_and_grad(x + t * p)
            if f_new <= f + _ARMIJO * t * slope and f_new < 1e90:
                break
            if f_new < 1e90:  # the minimum of the quadratic through f, the slope and f_new
                t_new = -slope * t * t / (2 * (f_new - f - slope * t))
                t = min(max(t_new, _SHRINK * t), 0.5 * t)
            else:
                t *= _SHRINK
            if t * np.max(np.abs(p)) < 1e-14:
                return _Result(
                    x=x, fun=f, jac=g, hess_inv=hess_inv, success=False, nit=nit,
                    message="the line search found no decrease",
                )  # fmt: skip
        s_k, y_k = t * p, g_new - g
        x, f, g = x + s_k, f_new, g_new
        nit += 1
        sy = float(s_k @ y_k)
        if sy > 1e-12 * float(np.linalg.norm(s_k) * np.linalg.norm(y_k)):
            if not scaled:  # Nocedal & Wright (6.20): the identity at the curvature's scale
                hess_inv, scaled = np.eye(n) * sy / float(y_k @ y_k), True
            rho = 1.0 / sy
            v = np.eye(n) - rho * np.outer(s_k, y_k)
            hess_inv = v @ hess_inv @ v.T + rho * np.outer(s_k, s_k)
    return _Result(
        x=x, fun=f, jac=g, hess_inv=hess_inv, success=success, nit=nit, message=message
    )  # fmt: skip


def warm_start(
    make_loglik: Callable[..., Callable], weights: np.ndarray, *columns: np.ndarray, seed: int = 0
) -> tuple[Callable, np.ndarray] | None:
    """The log-likelihood and weights of a seeded sample of customers, for ``fit_mle(warm=)``;
    None for few rows. ``make_loglik(*columns)`` builds a model's log-likelihood of its rows.

    A model first fits on the drawn rows (cheap), then on all of them from that optimum and
    that curvature: a few iterations instead of twenty over every row. The final estimate is
    the optimum of all the rows either way; only the path to it is shorter.
    """
    if len(weights) <= WARM_START_ROWS:
        return None
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(WARM_START_CUSTOMERS, weights / weights.sum()).astype(float)
    kept = drawn > 0
    return make_loglik(*(c[kept] for c in columns)), drawn[kept]


def fit_mle(
    loglik: Callable[[np.ndarray], np.ndarray],
    weights: np.ndarray,
    x0: np.ndarray,
    tol: float = 1e-8,
    max_iter: int = 2000,
    covariance: bool = True,
    warm: tuple[Callable[[np.ndarray], np.ndarray], np.ndarray] | None = None,
    max_evaluations: int | None = None,
) -> MLEResult:
    """Maximise ``sum(weights * loglik(params))`` over positive parameters.

    The optimiser works on log-parameters (positivity for free) and on the log-likelihood per
    unit of weight, so a compressed fit (one weighted row per distinct summary) follows the same
    path as an uncompressed one. Standard errors come from a central-difference Hessian of the
    total log-likelihood in the natural parameters. A ``loglik`` with a
    ``value_and_grad(params, weights)`` attribute (the weighted total and its gradient) is
    optimised with that exact gradient, else with central differences. ``warm``, the
    log-likelihood and weights of a sample (:func:`warm_start`), is fitted first and the full
    fit starts from its optimum and inverse Hessian.

    Every phase draws on one budget of ``max_evaluations`` likelihood evaluations (default
    :data:`MAX_EVALUATIONS`). A fit that
    spends it stops at the best point it has seen and says so (``budget_reached``, not
    ``converged``): a bounded time on any data, never an open-ended search.
    """
    start, hess_inv0 = np.log(np.asarray(x0, dtype=float)), None
    max_evaluations = MAX_EVALUATIONS if max_evaluations is None else max_evaluations
    budget = _Budget(max_evaluations)
    analytic = getattr(loglik, "value_and_grad", None)
    objective, objective_and_grad = _objectives(loglik, weights, budget)
    known = None  # a point whose exact gradient BFGS or Newton already computed
    curvature = None  # Newton's last Hessian: (point, gradient, Hessian) in log-parameters
    try:
        if warm is not None:
            pre = _bfgs(*_objectives(*warm, budget), start, tol=1e-6, max_iter=max_iter)
            if np.isfinite(pre.fun) and pre.fun < 1e90:
                start, hess_inv0 = pre.x, _positive_definite(pre.hess_inv)
            budget.forget_best()
        # With an exact gradient, BFGS stops at NEWTON_FROM and Newton steps finish: near the
        # optimum the objective changes by less than its rounding, so BFGS's line search spends
        # dozens of evaluations on the last digits, while the gradient still resolves them.
        bfgs_tol = max(tol, NEWTON_FROM) if analytic is not None else tol
        best = _bfgs(objective, objective_and_grad, start, bfgs_tol, max_iter, hess_inv0)
        if analytic is not None and np.isfinite(best.fun) and best.fun < 1e90:
            # also after BFGS stopped on precision loss: a step that does not shrink the
            # gradient is not taken
            best.x, best.fun, best.jac, curvature = _newton(
                objective_and_grad, best.x, best.fun, best.jac, tol
            )
            known = (best.x, best.jac)
        budget_reached = False
    except _BudgetReached:
        budget_reached = True
        x = budget.best_x if budget.best_x is not None else start
        best = _Result(
            x=x, fun=budget.best_value, success=False, nit=0,
            message=f"stopped at the bound of {max_evaluations:,} likelihood evaluations",
        )  # fmt: skip
    budget.open = False  # checking a point is not searching for one
    total = float(weights.sum())

    def gradient_norm(log_params: np.ndarray) -> float:
        if known is not None and log_params is known[0]:
            return float(np.max(np.abs(known[1])))
        if analytic is not None:
            value, g = objective_and_grad(log_params)
            return float(np.max(np.abs(g))) if value < 1e90 else np.inf
        g = _gradient(objective, log_params)
        return float(np.max(np.abs(g))) if np.all(np.abs(g) < 1e90) else np.inf

    polish_from = POLISH_FROM_EXACT if analytic is not None else POLISH_FROM
    if not budget_reached and not best.success and gradient_norm(best.x) > polish_from:
        # BFGS often stops on precision loss right at the optimum; Nelder-Mead then polishes,
        # within what is left of the budget.
        polish_evals = min(POLISH_EVALUATIONS, max_evaluations - budget.used)
        budget.open = True
        try:
            polish = _minimize(
                objective,
                best.x,
                method="Nelder-Mead",
                options={"xatol": 1e-10, "fatol": 1e-14, "maxfev": max(polish_evals, 1)},
            )
        except _BudgetReached:  # Nelder-Mead may overstep maxfev by a step's evaluations
            polish = _Result(x=budget.best_x, fun=budget.best_value, success=False)
        budget.open = False
        if polish.fun <= best.fun:
            best = polish
            if not polish.success:
                budget_reached = True
                best.message = (
                    f"the polish stopped at its bound of {polish_evals:,} likelihood evaluations"
                )
    params = np.exp(best.x)
    grad_norm = gradient_norm(best.x)
    finite = bool(np.isfinite(best.fun) and best.fun < 1e90)
    # Next to an optimum at extreme parameters some formulas (Pareto/NBD's hyp2f1) are not
    # finite: trust the optimiser's own verdict there, and give no standard errors.
    unstable = finite and not np.isfinite(grad_norm)
    converged = finite and (bool(best.success) if unstable else grad_norm < 1e-4)
    cov = np.full((params.size, params.size), np.nan)
    # the bootstrap needs only the estimates; a point that is not an optimum gets no errors
    if covariance and not unstable and finite and not budget_reached:
        if curvature is not None:
            hess = _natural_hessian(*curvature) * total
        elif analytic is not None:  # differences of the exact gradient: 2k evaluations, not 4k^2
            hess = _jacobian(lambda p: -analytic(p, weights)[1], params)
        else:
            hess = _hessian(lambda p: -dot(weights, loglik(p)), params)
        with np.errstate(all="ignore"):
            try:
                cov = np.linalg.inv(hess)
            except np.linalg.LinAlgError:
                pass
    return MLEResult(
        params=params,
        log_likelihood=-best.fun * total,
        cov=cov,
        converged=converged,
        message=str(best.message),
        n_iter=int(best.get("nit", 0)),
        grad_norm=grad_norm,
        unstable=unstable,
        budget_reached=budget_reached,
        n_evaluations=budget.used,
    )


def _objectives(loglik, weights: np.ndarray, budget: _Budget):
    """The objective per unit of weight in log-parameters, and with its gradient if exact;
    each evaluation is drawn from ``budget``."""
    total = float(weights.sum())
    analytic = getattr(loglik, "value_and_grad", None)

    def objective(log_params: np.ndarray) -> float:
        budget.spend()
        with np.errstate(all="ignore"):
            ll = loglik(np.exp(log_params))
        value = -dot(weights, ll) / total
        value = value if np.isfinite(value) else 1e100
        budget.seen(log_params, value)
        return value

    def objective_and_grad(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        budget.spend()
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            value, grad = analytic(params, weights)
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return 1e100, np.zeros_like(log_params)
        budget.seen(log_params, -value / total)
        return -value / total, -grad * params / total  # chain rule to log-parameters

    return objective, (objective_and_grad if analytic is not None else None)


def _bfgs(objective, objective_and_grad, start, tol, max_iter, hess_inv0=None):
    options = {"gtol": tol, "maxiter": max_iter, "hess_inv0": hess_inv0}
    if objective_and_grad is not None:
        best = _bfgs_exact(objective_and_grad, start, tol, max_iter, hess_inv0)
        if best.success or best.nit >= max_iter:
            return best
        # no decrease along a step (a likelihood that is not finite nearby, say): scipy's BFGS,
        # with its line search, from there
        options["hess_inv0"] = _positive_definite(best.hess_inv)
        best = _minimize(objective_and_grad, best.x, method="BFGS", jac=True, options=options)
    else:
        best = _minimize(objective, start, method="BFGS", jac="3-point", options=options)
    return best


def _newton(
    objective_and_grad, x: np.ndarray, value: float, g: np.ndarray, tol: float, steps: int = 4
):
    """Newton steps on the exact gradient (in log-parameters) from ``x``, where the objective
    is ``value`` and its gradient ``g``, until the gradient's largest component is below
    ``tol``; a step that does not shrink the gradient is not taken. Returns the last point,
    its objective and its gradient, and the last step's ``(point, gradient, Hessian)`` (None
    without a step)."""
    curvature = None
    for _ in range(steps):
        norm = np.max(np.abs(g))
        if norm < tol:
            break
        hess = _jacobian(lambda z: objective_and_grad(z)[1], x, floor=1.0)
        try:
            step = np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            break
        new_value, g_new = objective_and_grad(x - step)
        if not (new_value < 1e90 and np.max(np.abs(g_new)) < norm):
            break
        curvature = (x, g, hess)
        x, value, g = x - step, new_value, g_new
    return x, value, g, curvature


def _natural_hessian(z: np.ndarray, g: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """The Hessian in the natural parameters from the one in log-parameters ``z`` (with the
    gradient ``g`` there): d2f/dz_i dz_j = t_i t_j d2f/dt_i dt_j + [i = j] t_i df/dt_i.

    Newton's last Hessian is one step (a gradient below 1e-6) from the optimum: the standard
    errors it gives match those at the optimum to about 1e-6 of themselves, and cost no more
    gradient evaluations."""
    t = np.exp(z)
    return (hess - np.diag(g)) / np.outer(t, t)


def _positive_definite(matrix: np.ndarray) -> np.ndarray | None:
    sym = (matrix + matrix.T) / 2
    return sym if np.all(np.linalg.eigvalsh(sym) > 0) else None


def _gradient(f: Callable[[np.ndarray], float], x: np.ndarray, rel: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        h = rel * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _jacobian(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rel: float = 1e-5, floor: float = 1e-8
) -> np.ndarray:
    """Central differences of a gradient: the Hessian, symmetrised. Steps are ``rel`` times
    ``|x|``, at least ``rel * floor`` (log-parameters can be 0)."""
    h = rel * np.maximum(np.abs(x), floor)
    cols = []
    with np.errstate(all="ignore"):
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h[i]
            cols.append((grad(x + e) - grad(x - e)) / (2 * h[i]))
    jac = np.column_stack(cols)
    return (jac + jac.T) / 2


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    n = x.size
    h = rel * np.maximum(np.abs(x), 1e-8)
    hess = np.empty((n, n))
    with np.errstate(all="ignore"):
        for i in range(n):
            for j in range(i, n):
                ei = np.zeros(n)
                ej = np.zeros(n)
                ei[i], ej[j] = h[i], h[j]
                value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * h[i] * h[j]
                )
                hess[i, j] = hess[j, i] = value
    return hess
