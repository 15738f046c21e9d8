"""The progress bar of ``fit`` (rich)."""

from __future__ import annotations


class _Progress:
    """A rich progress bar showing epoch, loss, accuracy and samples/s (or nothing)."""

    def __init__(self, *, enabled: bool, total: int):
        self.enabled = enabled and total > 0
        self.done_in_epoch = 0
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[rate]:,.0f} samples/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._task = self._p.add_task("train", total=total, epoch=0, loss=float("nan"), acc=float("nan"), rate=0.0)
        self._p.start()

    def advance(self, epoch: int, loss: float, acc: float, rate: float, steps: int) -> None:
        self.done_in_epoch += steps
        self._p.update(self._task, advance=steps, epoch=epoch, loss=loss, acc=acc, rate=rate)

    def epoch_done(self, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.4f}"]
        for key in ("train_accuracy", "eval_loss", "eval_accuracy"):
            if key in record:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{record['samples_per_s']:,.0f} samples/s")
        self._p.console.log("  ".join(parts))

    def close(self) -> None:
        if self.enabled:
            self._p.stop()
