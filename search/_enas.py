"""ENAS (Pham et al. 2018) as Katib runs it: an LSTM controller learns to sample architectures.

Each trial trains one sampled architecture, and the controller learns from the validation
accuracies (REINFORCE with a baseline).

The controller follows Katib's ``pkg/suggestion/v1beta1/nas/enas/Controller.py``:

* An LSTM cell (hidden size ``controller_hidden_size``) steps twice per layer. The first step's
  output goes through a linear layer to one logit per operation; the operation is sampled and
  its embedding is the next input. The second step's output attends over the earlier layers'
  outputs (``v . tanh(W1 h_j + W2 h_i)``) to give, per earlier layer, the logits ``[-q, q]`` of
  "no skip / skip"; the sampled skips average those layers' outputs into the next input.
* Every logit is divided by ``controller_temperature`` and squashed to
  ``controller_tanh_const * tanh(.)`` (either may be ``None``: skipped).
* The reward is the trial's objective value (negated when minimizing) plus
  ``controller_entropy_weight`` x the sample's entropy. The baseline moves toward each reward:
  ``b -= (1 - controller_baseline_decay) * (b - reward)``.
* The loss of a sampled architecture is ``-log p(arch) * (reward - baseline)`` plus
  ``controller_skip_weight`` x the KL divergence of the skip probabilities from
  ``[1 - controller_skip_target, controller_skip_target]``; Adam at
  ``controller_learning_rate`` takes ``controller_train_steps`` steps on the mean loss of each
  batch of new rewards, logging every ``controller_log_every_steps``.

Two deliberate differences from Katib's TensorFlow code: the loss uses the log-probability of the
architecture the trial actually trained (Katib's trainer draws a fresh sample at every step and
credits it with the average accuracy of all trials, which teaches the controller nothing about
which architecture earned it), and the baseline moves once per reward rather than once per
training step, starting at the first reward (Katib starts at 0, so with a loss to minimize every
early advantage is negative). The skip KL uses the softmax of the two skip logits (Katib applies
a sigmoid to each logit, which is not a distribution).

The suggester samples one architecture per requested trial (``parallelTrialCount`` at a time)
and gives each trial Katib's two assignments, ``architecture`` (``[[op], [op, skip], ...]``)
and ``nn_config`` (layers, sizes and the used operations), as JSON strings; the architecture is
also kept as data in the trial's attributes. The controller's weights, Adam state, baseline and
the ids of the trials it has learned from are the experiment's algorithm state: after a restart
it reloads them and learns from the trials that finished since the state was saved.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from automl.core import Direction, ExperimentSpec, Suggestion, TrialRecord, TrialState
from search._base import Suggester
from search._nas_space import Architecture, NasSpace
from search._registry import resolve_settings

__all__ = ["EnasController", "EnasSettings", "EnasSuggester", "katib_assignments"]

_log = logging.getLogger("search.enas")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread while the controller works.

    Its ops are tiny, and on a busy machine the intra-op thread pool's hand-offs cost
    milliseconds per op (20x slower with two threads).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class EnasSettings:
    """Katib's ENAS controller settings (``None`` disables temperature, tanh, entropy, skip KL)."""

    controller_hidden_size: int = 64
    controller_temperature: float | None = 5.0
    controller_tanh_const: float | None = 2.25
    controller_entropy_weight: float | None = 1e-5
    controller_baseline_decay: float = 0.999
    controller_learning_rate: float = 5e-5
    controller_skip_target: float = 0.4
    controller_skip_weight: float | None = 0.8
    controller_train_steps: int = 50
    controller_log_every_steps: int = 10

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EnasSettings:
        """Build from resolved settings (:func:`search.resolve_settings`); unknown keys ignored."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.items() if k in names})


@dataclass(frozen=True)
class Sample:
    """A sampled (or scored) architecture with the controller's view of it."""

    arch: Architecture
    log_prob: torch.Tensor  # sum of log-probabilities of every decision (with grad)
    entropy: torch.Tensor  # sum of the decisions' entropies (no grad)
    skip_penalty: torch.Tensor  # mean KL of skip probabilities from the target (with grad)
    skip_count: int


class EnasController(nn.Module):
    """Katib's ENAS LSTM controller (see the module docstring).

    Args:
        num_layers: Layers of the sampled networks.
        num_operations: Operations a layer chooses from.
        settings: Controller settings.
        seed: Seeds the weight initialisation.
    """

    def __init__(
        self, num_layers: int, num_operations: int, settings: EnasSettings, seed: int = 0
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.num_operations = num_operations
        self.settings = settings
        h = settings.controller_hidden_size
        self.g_emb = nn.Parameter(torch.empty(1, h))
        self.w_emb = nn.Embedding(num_operations, h)
        self.lstm = nn.LSTMCell(h, h)
        self.w_soft = nn.Linear(h, num_operations, bias=False)
        self.attn_w_1 = nn.Linear(h, h, bias=False)
        self.attn_w_2 = nn.Linear(h, h, bias=False)
        self.attn_v = nn.Linear(h, 1, bias=False)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():  # Katib: uniform(-0.01, 0.01) for every variable
                p.copy_(torch.rand(p.shape, generator=gen) * 0.02 - 0.01)
        t = settings.controller_skip_target
        # [no skip, skip]; a target of 1 (allowed) would make log(0): clamp it
        self.log_skip_targets = math.log(max(1.0 - t, 1e-12)), math.log(t)

    def _squash(self, logits: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if s.controller_temperature is not None:
            logits = logits / s.controller_temperature
        if s.controller_tanh_const is not None:
            logits = s.controller_tanh_const * torch.tanh(logits)
        return logits

    def forward(
        self, arch: Architecture | None = None, generator: torch.Generator | None = None
    ) -> Sample:
        """Sample an architecture, or (``arch`` given) score that one.

        Returns:
            The architecture with its log-probability, entropy and skip penalty.
        """
        h_size = self.settings.controller_hidden_size
        c = torch.zeros(1, h_size)
        h = torch.zeros(1, h_size)
        inputs: torch.Tensor = self.g_emb
        all_h: list[torch.Tensor] = []
        all_h_w: list[torch.Tensor] = []
        log_probs: list[torch.Tensor] = []
        entropies: list[torch.Tensor] = []
        penalties: list[torch.Tensor] = []
        ops: list[int] = []
        skips: list[tuple[int, ...]] = []
        skip_count = 0
        for layer in range(self.num_layers):
            h, c = self.lstm(inputs, (h, c))
            logits = self._squash(self.w_soft(h))  # (1, num_operations)
            logp = torch.log_softmax(logits, dim=-1)
            if arch is None:
                op = int(torch.multinomial(logp.exp(), 1, generator=generator).item())
            else:
                op = arch.ops[layer]
            ops.append(op)
            log_probs.append(logp[0, op])
            entropies.append(-(logp.exp() * logp).sum().detach())
            inputs = self.w_emb(torch.tensor([op]))
            h, c = self.lstm(inputs, (h, c))
            if layer > 0:
                query = torch.tanh(torch.cat(all_h_w, dim=0) + self.attn_w_2(h))
                q = self.attn_v(query)  # (layer, 1)
                sk_logits = self._squash(torch.cat([-q, q], dim=1))  # (layer, 2)
                sk_logp = torch.log_softmax(sk_logits, dim=-1)
                if arch is None:
                    bits = torch.multinomial(sk_logp.exp(), 1, generator=generator).view(-1)
                else:
                    bits = torch.tensor(arch.skips[layer], dtype=torch.long)
                skips.append(tuple(int(b) for b in bits.tolist()))
                log_probs.append(sk_logp.gather(1, bits.view(-1, 1)).sum())
                entropies.append(-(sk_logp.exp() * sk_logp).sum().detach())
                probs = sk_logp.exp()
                penalties.append((probs * (sk_logp - torch.tensor(self.log_skip_targets))).sum())
                chosen = bits.to(torch.float32).view(1, layer)
                skip_count += int(chosen.sum().item())
                inputs = chosen @ torch.cat(all_h, dim=0) / (1.0 + chosen.sum())
            else:
                skips.append(())
                inputs = self.g_emb
            all_h.append(h)
            all_h_w.append(self.attn_w_1(h))
        penalty = torch.stack(penalties).mean() if penalties else torch.zeros(())
        return Sample(
            Architecture(tuple(ops), tuple(skips)),
            torch.stack(log_probs).sum(),
            torch.stack(entropies).sum(),
            penalty,
            skip_count,
        )

    def probability(self, arch: Architecture) -> float:
        """The probability that the controller samples ``arch``."""
        with torch.no_grad(), one_thread():
            return math.exp(float(self(arch).log_prob))


class EnasSuggester(Suggester):
    """Katib's ``enas`` algorithm: the controller proposes, the trials' accuracies teach it.

    Args:
        spec: A validated spec with ``algorithm.name == "enas"`` and a ``nas_config``.
        history: Stored trials, in creation order.
        state: The state saved by :meth:`state` (controller, optimizer, baseline, learned ids).
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self.settings = EnasSettings.from_settings(settings)
        self.space = NasSpace.from_spec(spec)
        self._maximize = spec.objective.type is Direction.MAXIMIZE
        saved = dict(state or {})
        seed = saved.get("seed", spec.seed)
        self._seed: int | None = None if seed is None else int(seed)
        self.controller = EnasController(
            self.space.num_layers,
            len(self.space.operations),
            self.settings,
            seed=self._seed if self._seed is not None else 0,
        )
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(), lr=self.settings.controller_learning_rate
        )
        self.baseline = 0.0
        self.train_steps = 0
        self._sampled = 0
        self._learned: list[str] = []
        if "controller" in saved:
            self._load(saved)
        else:
            self._sampled = len(history)
        learned = set(self._learned)
        self._buffer: list[tuple[str, Architecture, float]] = []
        for t in history:
            if t.id not in learned and not t.state.is_active:
                self._take(t)
        self._state: dict[str, Any] = self._dump()

    # -- the interface ---------------------------------------------------------------------

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Learn from the rewards that came in, then sample one architecture per id."""
        with one_thread():
            return self._suggest(trial_ids)

    def _suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        if self._buffer:
            self._train()
        out: list[Suggestion] = []
        for _ in trial_ids:
            gen = None
            if self._seed is not None:
                gen = torch.Generator().manual_seed(_mix(self._seed, self._sampled))
            with torch.no_grad():
                arch = self.controller(generator=gen).arch
            self._sampled += 1
            out.append(
                Suggestion(
                    params=katib_assignments(self.space, arch),
                    attrs={"architecture": arch.to_dict(), "enas": {"sample": self._sampled}},
                )
            )
        self._state = self._dump()
        return out

    def tell(self, trial: TrialRecord) -> None:
        """Queue a finished trial's reward; the controller learns at the next :meth:`suggest`."""
        if trial.id not in self._learned:
            self._take(trial)

    def state(self) -> Mapping[str, Any]:
        """Controller weights and Adam state (zlib + base64), baseline, counters, learned ids."""
        return self._state

    # -- learning --------------------------------------------------------------------------

    def _take(self, trial: TrialRecord) -> None:
        if trial.state is not TrialState.SUCCEEDED or trial.value is None:
            return  # Katib's ENAS learns only from succeeded trials
        if not math.isfinite(trial.value):
            return
        arch = trial_architecture(trial)
        if arch is None:
            return
        reward = trial.value if self._maximize else -trial.value
        self._buffer.append((trial.id, arch, float(reward)))

    def _train(self) -> None:
        s = self.settings
        # Entropy bonus and baseline from the current policy, once per reward.
        targets: list[tuple[Architecture, float]] = []
        for _, arch, reward in self._buffer:
            if s.controller_entropy_weight is not None:
                with torch.no_grad():
                    reward += s.controller_entropy_weight * float(self.controller(arch).entropy)
            if not self._learned and not targets:
                # Start the baseline at the first reward, not at Katib's 0: with rewards far
                # from 0 (a loss to minimize) every early advantage would have the same sign.
                self.baseline = reward
            self.baseline -= (1 - s.controller_baseline_decay) * (self.baseline - reward)
            targets.append((arch, reward - self.baseline))
        self.controller.train()
        for step in range(1, s.controller_train_steps + 1):
            losses = []
            skip_rate = 0.0
            for arch, advantage in targets:
                sample = self.controller(arch)
                loss = -sample.log_prob * advantage
                if s.controller_skip_weight is not None:
                    loss = loss + s.controller_skip_weight * sample.skip_penalty
                losses.append(loss)
                skip_rate += sample.skip_count
            loss = torch.stack(losses).mean()
            self.optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            self.train_steps += 1
            if step % s.controller_log_every_steps == 0:
                pairs = max(self.space.num_layers * (self.space.num_layers - 1) / 2, 1)
                _log.info(
                    "controller step %d - loss %.4f - baseline %.4f - skip rate %.4f",
                    self.train_steps,
                    float(loss.detach()),
                    self.baseline,
                    skip_rate / len(targets) / pairs,
                )
        self._learned.extend(tid for tid, _, _ in self._buffer)
        self._buffer.clear()

    # -- persistence -----------------------------------------------------------------------

    def _dump(self) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.save(
            {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict()},
            buf,
        )
        return {
            "seed": self._seed,
            "controller": base64.b64encode(zlib.compress(buf.getvalue(), 6)).decode("ascii"),
            "baseline": self.baseline,
            "train_steps": self.train_steps,
            "sampled": self._sampled,
            "learned": list(self._learned),
        }

    def _load(self, saved: Mapping[str, Any]) -> None:
        raw = zlib.decompress(base64.b64decode(saved["controller"]))
        data = torch.load(io.BytesIO(raw), weights_only=True)
        self.controller.load_state_dict(data["controller"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.baseline = float(saved.get("baseline", 0.0))
        self.train_steps = int(saved.get("train_steps", 0))
        self._sampled = int(saved.get("sampled", 0))
        self._learned = [str(t) for t in saved.get("learned", [])]


def _mix(seed: int, n: int) -> int:
    """A sampling seed per (experiment seed, sample number): resumed runs draw the same stream."""
    return (seed * 1_000_003 + n * 7919 + 17) % (2**63 - 1)


def katib_assignments(space: NasSpace, arch: Architecture) -> dict[str, str]:
    """Katib's ENAS assignments for ``arch``: ``architecture`` and ``nn_config`` as strings.

    As Katib's service writes them: ``json.dumps`` with double quotes turned into single ones.
    """
    return {
        "architecture": json.dumps(arch.to_katib()).replace('"', "'"),
        "nn_config": json.dumps(space.nn_config(arch)).replace('"', "'"),
    }


def trial_architecture(trial: TrialRecord) -> Architecture | None:
    """The architecture a trial trained: its ``architecture`` attribute, else its assignment."""
    data = trial.attrs.get("architecture")
    try:
        if isinstance(data, Mapping):
            return Architecture.from_dict(data)
        raw = trial.params.get("architecture")
        if isinstance(raw, str):
            return Architecture.from_katib(raw)
    except Exception:  # a malformed stored value: the trial teaches nothing
        return None
    return None
