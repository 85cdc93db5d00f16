"""Loading an uploaded skops file without trusting anything its author chose.

skops builds objects from a schema the uploader wrote: every node names a module and a class (or
a function), and skops imports and calls it. Trusting names by prefix (``numpy.``, ``builtins.``)
trusted ``builtins.eval`` and ``numpy.full_like`` too: a Pipeline of ``FunctionTransformer`` steps
holding them ran any Python at load or score time. So govern reads the schema itself, before
skops instantiates anything, and admits only an explicit list of concrete classes: the
estimators and transformers govern supports, the scikit-learn internals their fitted state
holds, and the NumPy types of their arrays. No function object of any kind is ever admitted
(``FunctionTransformer`` is a class; its ``func`` must be empty, as in the passthrough step a
ColumnTransformer creates, because a function node is refused wherever it appears).

Pure: no database, no HTTP.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

# The fitted state of the estimators and transformers govern supports, read off skops dumps of
# every combination (see tests/lineage/test_external.py, which checks each still loads).
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "builtins.slice",
        # NumPy arrays, dtypes and the scalar types a dtype parameter names
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.uint8",
        "numpy.uint32",
        "numpy.uint64",
        "numpy.bool_",
        "numpy.str_",
        "numpy.object_",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        # composition
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        # transformers
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.RobustScaler",
        "sklearn.preprocessing._data.MaxAbsScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        # estimators (the spec's allowlist) and what their fitted state holds
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.dummy.DummyClassifier",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
    }
)

# How skops builds each node. Function, method, partial, operator and generic reduce nodes call
# something the file names; none of them is ever needed by the types above.
TRUSTED_LOADERS: frozenset[str] = frozenset(
    {
        "DictNode",
        "ListNode",
        "TupleNode",
        "JsonNode",
        "TypeNode",
        "SliceNode",
        "NdArrayNode",
        "DTypeNode",
        "ObjectNode",
        "CachedNode",
        "RandomStateNode",
        "RandomGeneratorNode",
        "TreeNode",
        "LossNode",
    }
)

# numpy rebuilds a Generator by calling numpy.random.<name>, the name stored as plain text.
BIT_GENERATORS: frozenset[str] = frozenset({"PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"})

MAX_MEMBERS = 100_000
MAX_NODES = 2_000_000


class UntrustedArtifact(ValueError):
    """The upload names something govern does not load; ``refused`` lists what."""

    def __init__(self, refused: list[str]) -> None:
        super().__init__(", ".join(refused))
        self.refused = refused


class UnreadableArtifact(ValueError):
    """Not a skops file govern can read (not a zip, no schema, too large when unpacked)."""


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every node of the schema, iteratively (a deep schema cannot exhaust the stack)."""
    stack = [schema]
    seen = 0
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "__loader__" in value or "__class__" in value:
                seen += 1
                if seen > MAX_NODES:
                    raise UnreadableArtifact(f"more than {MAX_NODES} objects")
                yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _bit_generator(node: dict[str, Any]) -> str | None:
    try:
        named = node["content"]["bit_generator"]["content"]["bit_generator"]
        name = json.loads(named["content"])
    except (KeyError, TypeError, ValueError):
        return None
    return name if isinstance(name, str) else None


def untrusted_types(schema: dict[str, Any]) -> list[str]:
    """What the schema would make skops import or call that govern does not trust, sorted."""
    refused: set[str] = set()
    for node in _nodes(schema):
        loader = node.get("__loader__")
        module, name = node.get("__module__"), node.get("__class__")
        if loader == "CachedNode" and module is None and name is None:
            continue  # a reference to an object already checked
        if not isinstance(module, str) or not isinstance(name, str):
            refused.add(f"<node without a type, loader {str(loader)[:40]}>")
            continue
        type_name = f"{module}.{name}"[:200]
        if type_name not in TRUSTED_TYPES:
            refused.add(type_name)
        elif loader not in TRUSTED_LOADERS:
            refused.add(f"{type_name} (built by {str(loader)[:40]})")
        elif loader == "RandomGeneratorNode":
            generator = _bit_generator(node)
            if generator not in BIT_GENERATORS:
                refused.add(f"numpy.random.{str(generator)[:40]}")
    return sorted(refused)


def read_schema(content: bytes, max_unpacked: int) -> dict[str, Any]:
    """The skops schema, with the archive's unpacked size bounded before anything is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise UnreadableArtifact(f"more than {MAX_MEMBERS} files in the archive")
            if sum(m.file_size for m in members) > max_unpacked:
                raise UnreadableArtifact(f"unpacks to more than {max_unpacked} bytes")
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError) as exc:
        if isinstance(exc, UnreadableArtifact):
            raise
        raise UnreadableArtifact("not a skops file") from None
    if not isinstance(schema, dict):
        raise UnreadableArtifact("the skops schema is not an object")
    return schema


def load_trusted(content: bytes, max_unpacked: int) -> Any:
    """Instantiate the upload only when every type it names is trusted; else raise
    ``UntrustedArtifact`` naming them, before skops constructs anything."""
    schema = read_schema(content, max_unpacked)
    refused = untrusted_types(schema)
    if refused:
        raise UntrustedArtifact(refused)
    import skops.io as sio

    present = sorted(
        {f"{n['__module__']}.{n['__class__']}" for n in _nodes(schema) if "__class__" in n}
    )
    model = sio.loads(content, trusted=present)
    check_trees(model)
    return model


def _objects(value: Any, seen: set[int], depth: int = 0) -> Iterator[Any]:
    """Every object the loaded model holds, through attributes, lists, tuples and dicts."""
    if depth > 30 or id(value) in seen or isinstance(value, str | bytes | int | float):
        return
    seen.add(id(value))
    yield value
    if isinstance(value, dict):
        children: Any = list(value.values())
    elif isinstance(value, list | tuple):
        children = value
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    else:
        return
    for child in children:
        yield from _objects(child, seen, depth + 1)


def _check_nodes(
    kind: str, left: Any, right: Any, feature: Any, leaf: Any, n_features: int
) -> None:
    """A split's children come after it and inside the array (so every walk ends at a leaf),
    and it splits on a feature the model has. scikit-learn's predict trusts both."""
    import numpy as np

    n = len(left)
    split = ~leaf
    index = np.arange(n)
    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    bad = split & (
        (left <= index)
        | (left >= n)
        | (right <= index)
        | (right >= n)
        | (feature < 0)
        | (feature >= n_features)
    )
    if n == 0 or bad.any():
        raise UnreadableArtifact(
            f"a {kind}'s nodes point outside the tree or at a feature the model lacks"
        )


def check_trees(model: Any) -> None:
    """Refuse a model whose trees scikit-learn would walk out of bounds at predict time.

    A skops file sets a tree's node arrays freely, and scikit-learn indexes into them without
    bounds checks when it predicts (skops 0.16 names ``TreePredictor`` for this: a crafted file
    can crash the process or read memory outside the array). So govern checks every tree of a
    loaded model before it is used: a decision tree's ``Tree`` and a histogram gradient
    boosting model's ``TreePredictor``."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    for found in list(_objects(model, seen)):
        if isinstance(found, Tree):
            leaf = found.children_left == -1
            _check_nodes(
                "decision tree",
                found.children_left,
                found.children_right,
                found.feature,
                leaf,
                int(found.n_features),
            )
        predictors = getattr(found, "_predictors", None)
        if isinstance(predictors, list):
            n_features = int(getattr(found, "n_features_in_", 0))
            for trees in predictors:
                for tree in trees if isinstance(trees, list) else [trees]:
                    if not isinstance(tree, TreePredictor):
                        raise UnreadableArtifact("a gradient boosting model holds a non-tree")
                    nodes = tree.nodes
                    leaf = nodes["is_leaf"].astype(bool)
                    _check_nodes(
                        "gradient boosting tree",
                        nodes["left"],
                        nodes["right"],
                        nodes["feature_idx"],
                        leaf,
                        n_features,
                    )
                    categorical = ~leaf & nodes["is_categorical"].astype(bool)
                    limit = min(len(tree.raw_left_cat_bitsets), len(tree.binned_left_cat_bitsets))
                    if categorical.any() and (nodes["bitset_idx"][categorical] >= limit).any():
                        raise UnreadableArtifact(
                            "a gradient boosting tree's categorical split points outside its "
                            "bitsets"
                        )
