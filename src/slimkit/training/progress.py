"""A rich progress bar showing the epoch's loss and validation metric."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slimkit.core.console import err_console


class EpochProgress:
    """Context manager; a no-op when ``enabled`` is false (``--quiet``)."""

    def __init__(self, epochs: int, description: str, enabled: bool = True) -> None:
        self.epochs = epochs
        self.description = description
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.epochs, status="")
        return self

    def update(self, record: dict[str, float], metric: str) -> None:
        if self._progress is None:
            return
        status = (f"loss {record['train_loss']:.4f}  val_{metric} "
                  f"{record[f'val_{metric}']:.4f}")
        self._progress.update(self._task, completed=record["epoch"], status=status)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


class CountProgress(EpochProgress):
    """A bar over any count of units (trials, ...) with a free-form status."""

    def set(self, completed: int, status: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, status=status)
