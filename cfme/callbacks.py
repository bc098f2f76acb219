"""Two-phase early stopping with a best checkpoint per phase."""

from __future__ import annotations

import logging
import math
import os

from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class PhaseSchedule(Callback):
    """Early stopping counted in validations, moving through the model's phases.

    In each phase (``fixed`` then ``update`` for meta-embeddings; one ``train`` phase for
    a full table) the best validation ``monitor`` value is tracked and its checkpoint saved
    as ``<dirpath>/<stage>-<phase>-best.ckpt``. After ``patience`` validations without
    improvement the next phase begins (continuing from the current model, as the authors'
    code does); after the last phase training stops. ``phase_patience`` overrides
    ``patience`` for the phases it names (e.g. ``{"update": 8}``). The stage's result is the best
    checkpoint of the last phase entered (of the one before, if training ended before the
    last phase validated).
    """

    def __init__(self, phases, dirpath: str, stage: str, monitor: str = "val/ndcg@5",
                 patience: int = 5, phase_patience: dict[str, int] | None = None):
        self.phase_patience = {p: n for p, n in (phase_patience or {}).items() if n is not None}
        for name, value in [("patience", patience), *self.phase_patience.items()]:
            if value < 1:
                raise ValueError(f"patience ({name})={value} must be >= 1")
        self.phases, self.dirpath, self.stage = tuple(phases), dirpath, stage
        self.monitor, self.patience = monitor, patience
        self.phase_index, self.wait, self.best = 0, 0, -math.inf
        self.best_paths: dict[str, str] = {}
        self.best_metrics: dict[str, dict] = {}
        self.history: list[dict] = []
        self.stopped = False

    @property
    def phase(self) -> str:
        return self.phases[self.phase_index]

    def _result_phase(self) -> str | None:
        """The last phase entered that has a best checkpoint (training may end right after a
        phase change, before that phase validated)."""
        done = [p for p in self.phases[:self.phase_index + 1] if p in self.best_paths]
        return done[-1] if done else None

    @property
    def result_path(self) -> str | None:
        phase = self._result_phase()
        # in dirpath, wherever the run directory is now (a resumed run may have moved)
        return None if phase is None else os.path.join(self.dirpath,
                                                       os.path.basename(self.best_paths[phase]))

    @property
    def result_metrics(self) -> dict:
        phase = self._result_phase()
        return {} if phase is None else {"phase": phase, **self.best_metrics[phase]}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            raise KeyError(f"eval.monitor={self.monitor!r} is not a logged metric; logged: "
                           f"{sorted(k for k in trainer.callback_metrics if k.startswith('val/'))}")
        value = float(trainer.callback_metrics[self.monitor])
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/")}
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step,
                             "phase": self.phase, **metrics})
        if value > self.best:
            self.best, self.wait = value, 0
            path = os.path.join(self.dirpath, f"{self.stage}-{self.phase}-best.ckpt")
            trainer.save_checkpoint(path)
            self.best_paths[self.phase] = path
            self.best_metrics[self.phase] = {"epoch": trainer.current_epoch, **metrics}
        else:
            self.wait += 1
        if self.wait >= self.phase_patience.get(self.phase, self.patience):
            if self.phase_index + 1 < len(self.phases):
                self.phase_index += 1
                self.wait, self.best = 0, -math.inf
                pl_module.enter_phase(self.phase)
                log.info("%s: entering phase '%s' after epoch %d", self.stage, self.phase,
                         trainer.current_epoch)
            else:
                trainer.should_stop = self.stopped = True
        if trainer.logger is not None:
            trainer.logger.log_metrics({"phase": self.phase_index}, step=trainer.global_step)

    def on_train_start(self, trainer, pl_module) -> None:
        # a run resumed after its last phase ended early must not train on
        if self.stopped:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"phase_index": self.phase_index, "wait": self.wait, "best": self.best,
                "stopped": self.stopped,
                "best_paths": self.best_paths, "best_metrics": self.best_metrics,
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
