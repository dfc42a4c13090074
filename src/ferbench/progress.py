"""Terminal-aware progress and log lines, shared by the trainer, sweeps and the video loop (and the silencing of
native libraries that print to stderr).

On a terminal: a rich progress bar. When the output is redirected (``ferbench train … > log``, CI, a
job scheduler): no bar, one plain, timestamped line per unit of work (epoch, N video frames, trial), so
the log file shows progress while the job runs. Rich tables printed through :func:`console` are never
cut or wrapped when the output is not a terminal.

This module imports only ``rich`` (lazily) and the standard library: every layer may use it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

__all__ = ["EpochProgress", "FrameProgress", "LineLog", "console", "epoch_line", "is_terminal", "silenced_stderr"]

#: Width of a console that writes to a file or a pipe: wide enough that no table column is cut.
PIPE_WIDTH = 1000


def is_terminal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default: stdout) is an interactive terminal."""
    s = stream if stream is not None else sys.stdout
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):  # closed or stream-like objects without isatty
        return False


def console(stderr: bool = False) -> Any:
    """A ``rich.console.Console``; when not writing to a terminal, one wide enough that tables keep every digit.

    Rich falls back to 80 columns when the output is a pipe, which folds or truncates (``25,0…``) wide
    tables; here the width is :data:`PIPE_WIDTH` instead (tables still take only their natural width).
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 to ``/dev/null`` for the block, then restore it.

    For native libraries that print to the process's stderr where Python cannot catch it: FFmpeg's
    messages while OpenCV probes a codec, TFLite's ``INFO: Created TensorFlow Lite XNNPACK delegate``
    on every interpreter. Python exceptions raised in the block still propagate. The redirection is
    process-wide, so keep the block to the one native call.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LineLog:
    """Plain, timestamped log lines (``2026-12-02 01:02:03 epoch 3/30 …``), flushed at once.

    Args:
        stream: where to write (default: stdout at call time, so pytest's capture sees it).
        enabled: when False, :meth:`line` does nothing.
    """

    def __init__(self, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled

    def line(self, msg: str) -> None:
        """Write one line with a local timestamp."""
        if not self.enabled:
            return
        s = self.stream if self.stream is not None else sys.stdout
        s.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        s.flush()


class EpochProgress:
    """Epoch + batch progress of a training run: a rich bar on a terminal, else one plain line per epoch.

    Args:
        enabled: False = silent (sweep workers); True = bar on a terminal, lines when redirected; ``"lines"`` =
            lines even on a terminal (a sweep, whose own bar is live, prints them above it through ``say``).
        epochs: the run's epoch budget; start: epochs already done (resume).
        say: where plain lines go (the trainer's ``log``; default: timestamped lines on stdout); each line gets a
            timestamp unless ``say`` is a :class:`LineLog`'s ``line``, which adds its own.
        stream: the stream whose terminal-ness decides (default: stdout).

    The trainer calls :meth:`new_epoch`, :meth:`step` per batch, :meth:`epoch_done` per epoch, :meth:`close`.
    """

    def __init__(self, enabled: bool | Literal["lines"], epochs: int, start: int, say: Any = None,
                 stream: IO[str] | None = None) -> None:
        self.bar = enabled is True and is_terminal(stream)
        self.lines = bool(enabled) and not self.bar
        self.epochs = epochs
        self.enabled = self.bar  # kept for callers that test it
        log = LineLog(stream)
        if say is None or say is print:
            self.say = log.line
        elif isinstance(getattr(say, "__self__", None), LineLog):  # a LineLog's line stamps its own time
            self.say = say
        else:
            self.say = lambda msg: say(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
        if self.bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.p.start()
            self.ep = self.p.add_task("epochs", total=epochs, completed=start, info="")
            self.bt = self.p.add_task("batches", total=1, info="")

    def new_epoch(self, epoch: int, steps: int) -> None:
        """Epoch ``epoch`` (0-based) with ``steps`` batches starts."""
        if self.bar:
            self.p.reset(self.bt, total=steps, description=f"epoch {epoch + 1}")

    def step(self, info: str) -> None:
        """One batch done; ``info`` is shown beside the bar (e.g. the running loss)."""
        if self.bar:
            self.p.update(self.bt, advance=1, info=info)

    def epoch_done(self, row: dict[str, Any], info: str = "") -> None:
        """An epoch is committed; ``row`` is its ``metrics.jsonl`` entry (epoch, time_s, losses, accuracies,
        lr, images_per_s)."""
        if self.bar:
            self.p.update(self.ep, advance=1, info=info)
        elif self.lines:
            self.say(epoch_line(row, self.epochs) + (f" | {info}" if info else ""))

    def close(self) -> None:
        """Stop the bar (no-op in line mode)."""
        if self.bar:
            self.p.stop()


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """``epoch 3/30 12.3s train_loss 1.2345 train_acc 0.5123 val_loss … val_acc … lr 0.001 1450 img/s``."""
    def num(k: str, fmt: str) -> str:
        v = row.get(k)
        return "–" if v is None else format(v, fmt)

    return (f"epoch {row['epoch']}/{epochs} {num('time_s', '.1f')}s train_loss {num('train_loss', '.4f')} "
            f"train_acc {num('train_accuracy', '.4f')} val_loss {num('val_loss', '.4f')} "
            f"val_acc {num('val_accuracy', '.4f')} lr {num('lr', '.3g')} {num('images_per_s', '.0f')} img/s")


class FrameProgress:
    """Progress of a video / stream: a rich bar on a terminal, else a plain line every ``every_n`` frames.

    Use as the ``on_frame(index, time_s, faces)`` callback of the frame loop; :meth:`close` when done.
    """

    def __init__(self, name: str, total: int | None = None, every_n: int = 100, enabled: bool = True,
                 stream: IO[str] | None = None) -> None:
        self.name, self.total, self.every_n = name, total, max(1, every_n)
        self.n = self.with_face = 0
        self.t0 = time.perf_counter()
        self.mode = "off" if not enabled else ("bar" if is_terminal(stream if stream else sys.stderr) else "lines")
        self.log = LineLog(stream, enabled=self.mode == "lines")
        if self.mode == "bar":
            from rich.progress import Progress

            self.p = Progress(console=console(stderr=True), transient=True)
            self.p.start()
            self.task = self.p.add_task(name, total=total)

    def __call__(self, index: int, time_s: float, faces: list[Any]) -> None:
        self.n += 1
        self.with_face += bool(faces)
        if self.mode == "bar":
            self.p.update(self.task, advance=1)
        elif self.mode == "lines" and self.n % self.every_n == 0:
            self.log.line(self.status(index, time_s))

    def status(self, index: int, time_s: float) -> str:
        """``NAME: frame 200/1000 t=8.0s, 200 frames in 9.1 s (22.0 frames/s), 180 with a face``."""
        el = time.perf_counter() - self.t0
        of = f"/{self.total}" if self.total else ""
        return (f"{self.name}: frame {index + 1}{of} t={time_s:.1f}s, {self.n} frames in {el:.1f} s "
                f"({self.n / max(el, 1e-9):.1f} frames/s), {self.with_face} with a face")

    def close(self) -> None:
        """Stop the bar."""
        if self.mode == "bar":
            self.p.stop()
