"""The less discriminatory alternative search's pure core: the grid, the Pareto frontier
(against a brute-force check over random points, ties included) and the alternatives."""

from __future__ import annotations

import numpy as np
import pytest

from governance.lda.frontier import Point, grid, less_discriminatory, pareto


def test_the_grid_is_every_combination_with_the_base_features_first() -> None:
    found = grid({"max_depth": [2, 3], "learning_rate": [0.1]}, [["credit_history_months"]])
    assert [(c.params, c.dropped) for c in found] == [
        ({"learning_rate": 0.1, "max_depth": 2}, ()),
        ({"learning_rate": 0.1, "max_depth": 2}, ("credit_history_months",)),
        ({"learning_rate": 0.1, "max_depth": 3}, ()),
        ({"learning_rate": 0.1, "max_depth": 3}, ("credit_history_months",)),
    ]
    assert [c.index for c in found] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="has 8 candidates; at most 5"):
        grid({"a": [1, 2], "b": [1, 2]}, [["x"]], limit=5)


def test_the_grid_takes_coarsenings_and_reductions_after_the_plain_candidates() -> None:
    reduction = {"constraint": "demographic_parity", "eps": 0.01}
    found = grid(
        {"max_depth": [2]},
        [["zip"]],
        coarsen=[{"history": 4, "age": 3}, {}],
        reductions=[reduction],
    )
    assert [(c.dropped, c.coarsened, c.mitigation) for c in found] == [
        ((), (), None),
        ((), (), reduction),
        (("zip",), (), None),
        (("zip",), (), reduction),
        ((), (("age", 3), ("history", 4)), None),
        ((), (("age", 3), ("history", 4)), reduction),
    ]
    with pytest.raises(ValueError, match="has 6 candidates; at most 5"):
        grid({}, [["zip"]], limit=5, coarsen=[{"history": 4}], reductions=[reduction])


@pytest.mark.parametrize("seed", range(30))
def test_the_frontier_is_exactly_the_undominated_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 25))
    # Rounded, so that ties on one axis or both happen.
    points = [
        Point(f"c{i}", float(np.round(rng.random(), 1)), float(np.round(rng.random(), 1)))
        for i in range(n)
    ]

    def dominated(p: Point) -> bool:
        return any(
            q.accuracy >= p.accuracy
            and q.fairness >= p.fairness
            and (q.accuracy > p.accuracy or q.fairness > p.fairness)
            for q in points
        )

    assert sorted(pareto(points)) == sorted(p.key for p in points if not dominated(p))


def test_an_alternative_is_fairer_and_loses_no_more_than_declared() -> None:
    base = Point("base", 0.80, 0.70)
    points = [
        base,
        Point("fairer-cheap", 0.795, 0.85),
        Point("fairer-costly", 0.75, 0.95),
        Point("less-fair", 0.81, 0.60),
        Point("fairest-free", 0.80, 0.90),
    ]
    assert less_discriminatory(base, points, 0.01) == ["fairest-free", "fairer-cheap"]
    assert less_discriminatory(base, points, 0.1)[0] == "fairer-costly"
    assert less_discriminatory(base, [base], 0.1) == []
