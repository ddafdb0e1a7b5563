"""DARTS: a one-shot supernet with continuous architecture weights, searched bilevel.

A torch port of Katib's DARTS trial (``darts-cnn-cifar10``: ``model.py``, ``operations.py``,
``search_space.py``, ``architect.py``, ``run_trial.py``), with its settings and defaults:

* Supernet: a stem (3x3 conv, ``stem_multiplier * init_channels`` channels), ``num_layers``
  cells, reduction cells (stride 2, doubled channels) at 1/3 and 2/3 of the depth (the second
  cell of a 2-cell network; none in a 1-cell one); each cell has ``num_nodes`` nodes, each node
  sums a mixed operation on every earlier state, weighted by the softmax of ``alpha``.
* Bilevel optimisation: per step, the architecture weights take an Adam step on the validation
  loss of the one-step-unrolled weights (second-order, with the finite-difference Hessian-vector
  product of the paper), then the weights take an SGD step on the training loss.
* Derivation: per node, the best non-``none`` operation of each incoming edge, then the two
  strongest edges; the genotype of the epoch with the best validation accuracy is returned.
"""

from __future__ import annotations

import ast
import copy
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TextIO, cast

import torch
import torch.nn.functional as F
from torch import nn

from automl.errors import SpecError, SpecIssue
from nas._data import ImageData
from nas._ops import FactorizedReduce, StdConv, make_darts_op, parse_darts_primitive
from nas._train import accuracy, device_for, loader, report_epoch
from search._nas_settings import NAS_ALGORITHMS
from search._nas_space import NasSpace

__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "DartsNetwork",
    "DartsSettings",
    "Genotype",
    "SearchNetwork",
    "build_darts_network",
    "darts_search",
    "darts_search_space",
    "reduction_cells",
]

#: Katib's DARTS example (``darts-gpu.yaml``) search space.
DEFAULT_SEARCH_SPACE = (
    "separable_convolution_3x3",
    "dilated_convolution_3x3",
    "dilated_convolution_5x5",
    "avg_pooling_3x3",
    "max_pooling_3x3",
    "skip_connection",
)

Gene = tuple[tuple[tuple[str, int], ...], ...]


@dataclass(frozen=True)
class DartsSettings:
    """Katib's DARTS algorithm settings, with Katib's names and defaults.

    ``batch_size`` None means one batch per split (Katib's ``"None"``); ``num_workers`` is
    accepted for Katib compatibility (the data is in memory; loading is single-process).
    """

    num_epochs: int = 50
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    batch_size: int | None = 128
    num_workers: int = 4
    init_channels: int = 16
    print_step: int = 50
    num_nodes: int = 4
    stem_multiplier: int = 3

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], path: str = "algorithm.settings"
    ) -> DartsSettings:
        """Parse settings as Katib writes them (strings allowed), defaults for the rest.

        Raises:
            SpecError: Unknown setting or a value that breaks Katib's rule, all at once, with
                paths ``algorithm.settings.<name>``.
        """
        rules = NAS_ALGORITHMS["darts"].settings
        issues: list[SpecIssue] = []
        values: dict[str, Any] = {}
        for key, raw in settings.items():
            rule = rules.get(key)
            if rule is None:
                issues.append(
                    SpecIssue(
                        f"{path}.{key}",
                        f"is not a setting of 'darts'; valid settings: {sorted(rules)}",
                    )
                )
                continue
            if raw is None and rule.allow_none:
                values[key] = None
                continue
            try:
                values[key] = rule.parse(raw, f"{path}.{key}")
            except SpecError as exc:
                issues.extend(exc.issues)
        if issues:
            raise SpecError(issues)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings by Katib name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _gene_repr(gene: Gene) -> str:
    return repr([[tuple(edge) for edge in node] for node in gene])


def _concat_repr(concat: tuple[int, ...]) -> str:
    if concat and list(concat) == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return repr(list(concat))


@dataclass(frozen=True)
class Genotype:
    """A derived DARTS cell pair, in Katib's (and the DARTS paper's) format.

    Attributes:
        normal: Per intermediate node, its ``(operation, input state)`` edges; states 0 and 1
            are the cell's inputs, state ``2 + i`` is node ``i``.
        normal_concat: States concatenated into the normal cell's output.
        reduce: The same for the reduction cell (empty for a 1-cell network).
        reduce_concat: States concatenated into the reduction cell's output.
    """

    normal: Gene
    normal_concat: tuple[int, ...]
    reduce: Gene
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(problems)

    def problems(self) -> list[SpecIssue]:
        """Rules this genotype breaks (known operations, edges to earlier states)."""
        out: list[SpecIssue] = []
        for part, gene, concat in (
            ("normal", self.normal, self.normal_concat),
            ("reduce", self.reduce, self.reduce_concat),
        ):
            for i, node in enumerate(gene):
                if not node:
                    out.append(SpecIssue(f"genotype.{part}[{i}]", "must have at least one edge"))
                for j, (op, src) in enumerate(node):
                    p = f"genotype.{part}[{i}][{j}]"
                    if op == "none":
                        out.append(SpecIssue(p, "must not be 'none' in a derived genotype"))
                    else:
                        try:
                            parse_darts_primitive(op, p)
                        except SpecError as exc:
                            out.extend(exc.issues)
                    if not 0 <= src < 2 + i:
                        out.append(SpecIssue(p, f"input state must be in [0, {2 + i}); got {src}"))
            if gene and (not concat or any(not 0 <= c < 2 + len(gene) for c in concat)):
                out.append(
                    SpecIssue(
                        f"genotype.{part}_concat",
                        f"must list states in [0, {2 + len(gene)}); got {list(concat)}",
                    )
                )
        if not self.normal:
            out.append(SpecIssue("genotype.normal", "must have at least one node"))
        return out

    def __str__(self) -> str:
        return (
            f"Genotype(normal={_gene_repr(self.normal)}, "
            f"normal_concat={_concat_repr(self.normal_concat)}, "
            f"reduce={_gene_repr(self.reduce)}, "
            f"reduce_concat={_concat_repr(self.reduce_concat)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: edges as ``[operation, state]`` pairs."""
        return {
            "normal": [[[op, src] for op, src in node] for node in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[[op, src] for op, src in node] for node in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genotype:
        """Inverse of :meth:`to_dict`.

        Raises:
            SpecError: Missing keys or malformed edges.
        """
        try:
            return cls(
                _gene(d["normal"]),
                tuple(int(c) for c in d["normal_concat"]),
                _gene(d.get("reduce") or []),
                tuple(int(c) for c in d.get("reduce_concat") or []),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(
                f"must have normal, normal_concat, reduce, reduce_concat; {exc}", path="genotype"
            ) from None

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Read the string form (Katib's trial prints it after ``Best-Genotype=``, unspaced).

        Raises:
            SpecError: Not a genotype string.
        """
        s = text.strip()
        if "=" in s and not s.startswith("Genotype("):
            s = s.split("=", 1)[1].strip()
        if not s.startswith("Genotype(") or not s.endswith(")"):
            raise SpecError(f"must look like Genotype(normal=..., ...); got {text!r}", "genotype")
        body = re.sub(
            r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)",
            lambda m: repr(list(range(int(m.group(1)), int(m.group(2))))),
            s[len("Genotype(") : -1],
        )
        body = re.sub(r"\b(normal|normal_concat|reduce|reduce_concat)\s*=", r"'\1':", body)
        try:
            d = ast.literal_eval("{" + body + "}")
        except (ValueError, SyntaxError):
            raise SpecError(f"is not a readable genotype: {text!r}", path="genotype") from None
        if not isinstance(d, dict):
            raise SpecError(f"is not a readable genotype: {text!r}", path="genotype")
        return cls.from_dict(d)


def _gene(raw: Any) -> Gene:
    return tuple(tuple((str(op), int(src)) for op, src in node) for node in raw)


def reduction_cells(num_layers: int) -> list[bool]:
    """Which cells reduce (Katib's rule): the 2nd of 2; at 1/3 and 2/3 of 3 or more."""
    if num_layers == 1:
        return [False]
    if num_layers == 2:
        return [False, True]
    return [i in (num_layers // 3, 2 * num_layers // 3) for i in range(num_layers)]


def darts_search_space(space: NasSpace) -> list[str]:
    """Katib's DARTS primitive names for a space's operations (``<type>_<k>x<k>``)."""
    out: list[str] = []
    for i, op in enumerate(space.operations):
        if op.type == "skip_connection":
            name = "skip_connection"
        elif op.type in (
            "separable_convolution",
            "dilated_convolution",
            "avg_pooling",
            "max_pooling",
        ):
            k = op.int_value("filter_size")
            name = f"{op.type}_{k}x{k}"
        else:
            raise SpecError(
                f"must be a DARTS operation (separable_convolution, dilated_convolution, "
                f"avg_pooling, max_pooling, skip_connection); got {op.type!r}",
                path=f"nas_config.operations[{i}].operationType",
            )
        if name not in out:
            out.append(name)
    return out


def _tsum(xs: Iterable[torch.Tensor]) -> torch.Tensor:
    it = iter(xs)
    out = next(it)
    for x in it:
        out = out + x
    return out


# -- supernet ------------------------------------------------------------------------------


class MixedOp(nn.Module):
    """One edge of the supernet: every primitive, summed with the given weights."""

    def __init__(self, channels: int, stride: int, primitives: Sequence[str]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_darts_op(p, channels, stride) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _tsum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class SearchCell(nn.Module):
    """A supernet cell: every node mixes all earlier states."""

    def __init__(
        self,
        num_nodes: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction_prev: bool,
        reduction: bool,
        primitives: Sequence[str],
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0: nn.Module = (
            FactorizedReduce(c_pp, c) if reduction_prev else StdConv(c_pp, c, 1, 1, 0)
        )
        self.pre1 = StdConv(c_p, c, 1, 1, 0)
        self.dag = nn.ModuleList()
        for i in range(num_nodes):
            self.dag.append(
                nn.ModuleList(
                    MixedOp(c, 2 if reduction and j < 2 else 1, primitives) for j in range(2 + i)
                )
            )

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for edges, w in zip(self.dag, weights, strict=True):
            mixed = cast(nn.ModuleList, edges)
            states.append(_tsum(e(states[j], w[j]) for j, e in enumerate(mixed)))
        return torch.cat(states[2:], dim=1)


class SearchNetwork(nn.Module):
    """Katib's DARTS supernet (``NetworkCNN``) with its architecture weights ``alpha``."""

    def __init__(
        self,
        primitives: Sequence[str],
        *,
        in_channels: int,
        num_classes: int,
        init_channels: int,
        num_layers: int,
        num_nodes: int,
        stem_multiplier: int,
    ) -> None:
        super().__init__()
        # Katib appends 'none' last; derivation ignores it.
        self.primitives = [*primitives, "none"]
        self.num_nodes = num_nodes
        c = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        c_pp, c_p, c = c, c, init_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for reduction in reduction_cells(num_layers):
            if reduction:
                c *= 2
            self.cells.append(
                SearchCell(num_nodes, c_pp, c_p, c, reduction_prev, reduction, self.primitives)
            )
            reduction_prev = reduction
            c_pp, c_p = c_p, c * num_nodes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        n_ops = len(self.primitives)
        self.alpha_normal = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(i + 2, n_ops)) for i in range(num_nodes)
        )
        self.alpha_reduce = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(i + 2, n_ops))
            for i in range(num_nodes if num_layers > 1 else 0)
        )

    def weights(self) -> list[nn.Parameter]:
        """The network weights (everything but ``alpha``)."""
        return [p for n, p in self.named_parameters() if "alpha" not in n]

    def alphas(self) -> list[nn.Parameter]:
        """The architecture weights."""
        return [p for n, p in self.named_parameters() if "alpha" in n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wn = [F.softmax(a, dim=-1) for a in self.alpha_normal]
        wr = [F.softmax(a, dim=-1) for a in self.alpha_reduce]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, wr if cell.reduction else wn)
        return self.classifier(torch.flatten(self.pool(s1), 1))  # type: ignore[no-any-return]

    def _parse(self, alphas: Sequence[torch.Tensor], k: int = 2) -> Gene:
        gene = []
        for edges in alphas:
            best, idx = torch.topk(edges[:, :-1], 1)  # leave out 'none' (last)
            top = torch.topk(best.view(-1), min(k, edges.shape[0])).indices
            gene.append(tuple((self.primitives[int(idx[e])], int(e)) for e in top))
        return tuple(gene)

    @torch.no_grad()
    def genotype(self) -> Genotype:
        """The derived genotype: per node, the two strongest edges' best operations."""
        concat = tuple(range(2, 2 + self.num_nodes))
        reduce = self._parse(list(self.alpha_reduce))
        return Genotype(
            self._parse(list(self.alpha_normal)),
            concat,
            reduce,
            concat if reduce else (),
        )


class Architect:
    """The architecture step: alpha's gradient through one unrolled weight step (2nd order)."""

    def __init__(self, model: SearchNetwork, w_momentum: float, w_weight_decay: float) -> None:
        self.model = model
        self.v_model = copy.deepcopy(model)
        self.w_momentum, self.w_weight_decay = w_momentum, w_weight_decay
        self.loss = nn.CrossEntropyLoss()

    def _virtual_step(
        self, x: torch.Tensor, y: torch.Tensor, xi: float, w_optim: torch.optim.Optimizer
    ) -> None:
        loss = self.loss(self.model(x), y)
        grads = torch.autograd.grad(loss, self.model.weights())
        with torch.no_grad():
            for w, vw, g in zip(self.model.weights(), self.v_model.weights(), grads, strict=True):
                buf = w_optim.state[w].get("momentum_buffer")
                m = buf * self.w_momentum if buf is not None else 0.0
                vw.copy_(w - xi * (m + g + self.w_weight_decay * w))
            for a, va in zip(self.model.alphas(), self.v_model.alphas(), strict=True):
                va.copy_(a)

    def unrolled_backward(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        valid: tuple[torch.Tensor, torch.Tensor],
        xi: float,
        w_optim: torch.optim.Optimizer,
    ) -> None:
        """Set ``alpha.grad`` to the gradient of the validation loss at the unrolled weights."""
        self._virtual_step(*train, xi, w_optim)
        loss = self.loss(self.v_model(valid[0]), valid[1])
        v_alphas = tuple(self.v_model.alphas())
        v_weights = tuple(self.v_model.weights())
        grads = torch.autograd.grad(loss, v_alphas + v_weights, allow_unused=True)
        dalpha = grads[: len(v_alphas)]
        dws = [
            g if g is not None else torch.zeros_like(w)
            for g, w in zip(grads[len(v_alphas) :], v_weights, strict=True)
        ]
        hessian = self._hessian(dws, *train)
        with torch.no_grad():
            for a, da, h in zip(self.model.alphas(), dalpha, hessian, strict=True):
                base = da if da is not None else torch.zeros_like(a)
                a.grad = base - xi * h

    def _hessian(
        self, dws: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> list[torch.Tensor]:
        norm = torch.cat([d.reshape(-1) for d in dws]).norm()
        eps = 0.01 / max(norm.item(), 1e-12)
        weights = self.model.weights()
        alphas = self.model.alphas()
        with torch.no_grad():
            for p, d in zip(weights, dws, strict=True):
                p.add_(d, alpha=eps)
        pos = torch.autograd.grad(self.loss(self.model(x), y), alphas)
        with torch.no_grad():
            for p, d in zip(weights, dws, strict=True):
                p.add_(d, alpha=-2.0 * eps)
        neg = torch.autograd.grad(self.loss(self.model(x), y), alphas)
        with torch.no_grad():
            for p, d in zip(weights, dws, strict=True):
                p.add_(d, alpha=eps)
        return [(a - b) / (2.0 * eps) for a, b in zip(pos, neg, strict=True)]


def _check_primitives(search_space: Sequence[str]) -> list[str]:
    if not search_space:
        raise SpecError("must list at least one operation", path="search_space")
    prims: list[str] = []
    for i, name in enumerate(search_space):
        if name == "none":
            raise SpecError("must not list 'none' (it is always added)", f"search_space[{i}]")
        parse_darts_primitive(name, f"search_space[{i}]")
        if name not in prims:
            prims.append(name)
    return prims


def darts_search(
    data: ImageData,
    settings: DartsSettings,
    *,
    search_space: Sequence[str] | None = None,
    num_layers: int = 3,
    seed: int = 0,
    device: torch.device | str | None = None,
    report: bool = True,
    unrolled: bool = True,
    log: TextIO | None = sys.stderr,
) -> Genotype:
    """Run the DARTS search and return the genotype of the best validation epoch.

    The training split trains the weights, the validation split the architecture weights (as
    Katib splits its training set in two); each epoch's supernet accuracy on the validation
    split is reported as ``Validation-Accuracy`` inside a trial, and the derived genotype is
    stored with the trial (``outputs.json["nas"]``, kind ``darts``, with ``genotype_str`` in
    Katib's format).

    Args:
        data: Images.
        settings: Katib's DARTS settings.
        search_space: Primitive names (``separable_convolution_3x3``...); Katib's example's
            by default.
        num_layers: Cells in the supernet (Katib's ``num-layers``).
        seed: Seed for initialisation and shuffling.
        device: Torch device (default: CUDA when visible).
        report: Report epochs to the current trial.
        unrolled: Second-order architecture gradient (Katib's); False uses the first-order
            approximation (validation loss at the current weights), about 3x cheaper.
        log: Where progress lines go (None: silent).

    Raises:
        SpecError: Unknown primitive or bad sizes, before any training.
    """
    prims = _check_primitives(search_space or DEFAULT_SEARCH_SPACE)
    if num_layers < 1:
        raise SpecError(f"must be >= 1; got {num_layers}", path="num_layers")
    dev = device if isinstance(device, torch.device) else device_for(device)
    torch.manual_seed(seed)
    model = SearchNetwork(
        prims,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        init_channels=settings.init_channels,
        num_layers=num_layers,
        num_nodes=settings.num_nodes,
        stem_multiplier=settings.stem_multiplier,
    ).to(dev)
    w_optim = torch.optim.SGD(
        model.weights(),
        settings.w_lr,
        momentum=settings.w_momentum,
        weight_decay=settings.w_weight_decay,
    )
    a_optim = torch.optim.Adam(
        model.alphas(),
        settings.alpha_lr,
        betas=(0.5, 0.999),
        weight_decay=settings.alpha_weight_decay,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        w_optim, settings.num_epochs, eta_min=settings.w_lr_min
    )
    architect = (
        Architect(model, settings.w_momentum, settings.w_weight_decay) if unrolled else None
    )
    loss_fn = nn.CrossEntropyLoss()
    best_acc, best = -1.0, model.genotype()
    bs = settings.batch_size
    for epoch in range(1, settings.num_epochs + 1):
        lr = float(sched.get_last_lr()[0])
        model.train()
        tl = loader(data.train, bs, True, seed + epoch)
        vl = loader(data.val, bs, True, seed + 1000 + epoch)
        for step, ((tx, ty), (vx, vy)) in enumerate(zip(tl, vl, strict=False)):
            tx, ty, vx, vy = tx.to(dev), ty.to(dev), vx.to(dev), vy.to(dev)
            a_optim.zero_grad()
            if architect is not None:
                architect.unrolled_backward((tx, ty), (vx, vy), lr, w_optim)
            else:
                loss_fn(model(vx), vy).backward()
            a_optim.step()
            w_optim.zero_grad()
            loss = loss_fn(model(tx), ty)
            loss.backward()
            nn.utils.clip_grad_norm_(model.weights(), settings.w_grad_clip)
            w_optim.step()
            if log is not None and step % settings.print_step == 0:
                print(
                    f"Train: [{epoch}/{settings.num_epochs}] step {step} loss {loss.item():.4f}",
                    file=log,
                )
        sched.step()
        acc = accuracy(model, data.val, dev)
        genotype = model.genotype()
        if log is not None:
            print(
                f"Valid: [{epoch}/{settings.num_epochs}] accuracy {acc:.4f}\n"
                f"Model genotype = {genotype}",
                file=log,
            )
        if acc > best_acc:
            best_acc, best = acc, genotype
        if report_epoch(epoch, acc, report):
            break
    if report:
        from nas._export import record_result

        record_result(
            {
                "kind": "darts",
                "genotype": best.to_dict(),
                "in_channels": data.in_channels,
                "num_classes": data.num_classes,
                "init_channels": settings.init_channels,
                "num_layers": num_layers,
                "stem_multiplier": settings.stem_multiplier,
            },
            genotype_str=str(best),
            search_space=prims,
            validation_accuracy=best_acc,
        )
    return best


# -- derived network -----------------------------------------------------------------------


class DerivedCell(nn.Module):
    """A cell of the derived network: each node sums its genotype edges."""

    def __init__(
        self,
        gene: Gene,
        concat: tuple[int, ...],
        c_pp: int,
        c_p: int,
        c: int,
        reduction_prev: bool,
        reduction: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.gene, self.concat = gene, concat
        self.pre0: nn.Module = (
            FactorizedReduce(c_pp, c, affine=True)
            if reduction_prev
            else StdConv(c_pp, c, 1, 1, 0, affine=True)
        )
        self.pre1 = StdConv(c_p, c, 1, 1, 0, affine=True)
        self.ops = nn.ModuleList(
            nn.ModuleList(
                make_darts_op(op, c, 2 if reduction and src < 2 else 1, affine=True)
                for op, src in node
            )
            for node in gene
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node, ops in zip(self.gene, self.ops, strict=True):
            edges = cast(nn.ModuleList, ops)
            states.append(_tsum(op(states[src]) for (_, src), op in zip(node, edges, strict=True)))
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(nn.Module):
    """The network a genotype describes, ready to train from scratch."""

    def __init__(
        self,
        genotype: Genotype,
        *,
        in_channels: int,
        num_classes: int,
        init_channels: int,
        num_layers: int,
        stem_multiplier: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "init_channels": init_channels,
            "num_layers": num_layers,
            "stem_multiplier": stem_multiplier,
        }
        c = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        c_pp, c_p, c = c, c, init_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for reduction in reduction_cells(num_layers):
            if reduction:
                c *= 2
            gene, concat = (
                (genotype.reduce, genotype.reduce_concat)
                if reduction
                else (genotype.normal, genotype.normal_concat)
            )
            self.cells.append(DerivedCell(gene, concat, c_pp, c_p, c, reduction_prev, reduction))
            reduction_prev = reduction
            c_pp, c_p = c_p, c * len(concat)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_p, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """What rebuilds this network: the genotype and the sizes."""
        return {"kind": "darts", "genotype": self.genotype.to_dict(), **self.config}


def build_darts_network(
    genotype: Genotype,
    *,
    in_channels: int,
    num_classes: int,
    init_channels: int = 16,
    num_layers: int = 3,
    stem_multiplier: int = 3,
    dropout: float = 0.0,
) -> DartsNetwork:
    """Build the network ``genotype`` describes (Katib's cell layout, trainable BN).

    Raises:
        SpecError: The network needs reduction cells but the genotype has none, or a size is
            below 1.
    """
    for name, v in (
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("init_channels", init_channels),
        ("num_layers", num_layers),
        ("stem_multiplier", stem_multiplier),
    ):
        if v < 1:
            raise SpecError(f"must be >= 1; got {v}", path=name)
    if any(reduction_cells(num_layers)) and not genotype.reduce:
        raise SpecError(
            f"is empty, but a {num_layers}-cell network has reduction cells",
            path="genotype.reduce",
        )
    return DartsNetwork(
        genotype,
        in_channels=in_channels,
        num_classes=num_classes,
        init_channels=init_channels,
        num_layers=num_layers,
        stem_multiplier=stem_multiplier,
        dropout=dropout,
    )
