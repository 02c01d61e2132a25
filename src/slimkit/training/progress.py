"""A rich progress bar showing the epoch's loss and validation metric."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from slimkit.core.console import err_console
from slimkit.measure.format import fmt_metric

BAR_WIDTH = 20
TIME_WIDTH = 7  # 0:00:00


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
            # the label, the bar, the counts and the time keep their width; the status gets
            # the rest of the line and is the one cut (with an ellipsis) in a narrow terminal
            counts = 2 * len(str(self.epochs)) + 1
            fixed = len(self.description) + BAR_WIDTH + counts + TIME_WIDTH + 4  # + gaps
            self._progress = Progress(
                TextColumn("[bold]{task.description}", table_column=Column(
                    no_wrap=True, min_width=len(self.description))),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=counts)),
                TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=TIME_WIDTH)),
                TextColumn("{task.fields[status]}", table_column=Column(
                    no_wrap=True, overflow="ellipsis",
                    max_width=max(err_console.width - fixed, 10))),
                console=err_console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.epochs, status="")
        return self

    def update(self, record: dict[str, float], metric: str) -> None:
        if self._progress is None:
            return
        status = (f"loss {record['train_loss']:.4f}, val {metric} "
                  f"{fmt_metric(record[f'val_{metric}'], metric)}")
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
