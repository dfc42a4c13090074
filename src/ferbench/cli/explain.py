"""``ferbench explain``: Grad-CAM / saliency overlays per face, or per-class mean maps on a dataset split."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ferbench.errors import FerbenchError

METHOD_CHOICES = "gradcam, gradcam++, scorecam, saliency, integrated-gradients"


def _note(msg: str) -> None:
    typer.secho(f"note: {msg}", fg="yellow", err=True)


def _progress():  # noqa: ANN202  (rich type, imported lazily)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True, disable=not sys.stderr.isatty())


def _png_name(source: str, method: str) -> str:
    stem, _, face = source.partition("#")
    name = Path(stem).stem + (f"_{face}" if face else "")
    return f"{name}_{method.replace('+', 'p')}.png"


def explain(
    model: str = typer.Argument(..., help="'default' (shipped model), a run dir, a .safetensors checkpoint "
                                          "or an ensemble JSON."),
    inputs: list[Path] = typer.Argument(None, help="Face crops or photos; folders are walked recursively."),
    method: str = typer.Option("gradcam", "--method", help=f"One of: {METHOD_CHOICES}."),
    target: str = typer.Option("predicted", "--target",
                               help="Class to explain: 'predicted' (each face's top class) or a class name/index."),
    out: Path = typer.Option(Path("explanations"), "--out", "-o",
                             help="Folder for the PNGs (--per-class: a folder or a .png path)."),
    detector: str = typer.Option(
        "auto", "--detector",
        help="auto: images up to 2x the model input are face crops, larger ones go through the blazeface detector; "
             "none: every image is a face crop; blazeface|blazeface-accurate|blazeface-full|haar|mediapipe|mtcnn: always detect."),
    data: str = typer.Option(None, "--data", help="Dataset for --per-class (fer2013, ferplus, ckplus, "
                                                  "folder:PATH)."),
    split: str = typer.Option(None, "--split", help="Split for --per-class (default: the checkpoint's test "
                                                    "split, e.g. FER2013 PrivateTest)."),
    per_class: bool = typer.Option(False, "--per-class", help="Average the maps of correctly classified "
                                                             "images per class into one figure."),
    limit: int = typer.Option(200, "--limit", min=1, help="--per-class: at most N images per class."),
    data_root: Path = typer.Option(None, "--data-root", help="Where the datasets are (default: $FERBENCH_DATA, "
                                                             "./data, ../shared/data)."),
    layer: str = typer.Option(None, "--layer", help="Override the CAM layer (dotted module path)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per backward pass."),
) -> None:
    """Show where a model looks: Grad-CAM, Grad-CAM++, Score-CAM, saliency or integrated gradients.

    One PNG per face: the model's view of the face, the map over it and the top-3 classes.
    With --data NAME --per-class, one figure of mean maps over the correctly classified images of each class.

    CAM methods hook the layer declared with each model in the registry (see `ferbench models info NAME`),
    chosen so its map is larger than 1x1 at 48 px: resnets use layer3 (3x3 at 48 px; layer4 would be 2x2),
    shallow_cnn_s002 its third conv block (12x12). A model without a declaration uses the last conv layer
    whose map is larger than 1x1, and the command says so. Ensembles and ESR: mean over members/branches.
    """
    from ferbench.explain.cam import METHODS

    if method not in METHODS:
        raise FerbenchError(f"--method {method!r}: choose one of {METHOD_CHOICES}")
    if per_class or data:
        _per_class(model, data, split, method, out, limit, data_root, batch_size, per_class, inputs)
        return
    if not inputs:
        raise FerbenchError("nothing to explain: pass images/folders, or --data NAME --per-class")
    _images(model, inputs, method, target, out, detector, layer, batch_size)


def _images(model_ref: str, inputs: list[Path], method: str, target: str, out: Path, detector: str,
            layer: str | None, batch_size: int) -> None:
    from rich.table import Table

    from ferbench.explain.explainer import explain_images, load_model, parse_target, read_faces
    from ferbench.explain.plot import save_panel
    from ferbench.loader import preprocessing_of
    from ferbench.progress import console as _console

    model, meta = load_model(model_ref)
    parse_target(target, meta["classes"])  # a bad --target fails before any work
    notes: list[str] = []
    faces = read_faces(inputs, preprocessing_of(meta), detector, notes)
    uniq = list(dict.fromkeys(notes))
    if not faces and len(uniq) == 1:  # one line naming the one problem
        raise FerbenchError(f"no face to explain: {uniq[0].removesuffix('; skipped')}")
    for n in uniq:
        _note(n)
    if not faces:
        raise FerbenchError("no face to explain in the given inputs")
    table = Table("source", "explained", "top-3", "png")
    used: set[str] = set()
    layers_said = False
    with _progress() as bar:
        task = bar.add_task(f"{method}", total=len(faces))
        for i in range(0, len(faces), batch_size):
            chunk = faces[i:i + batch_size]
            expl = explain_images(model, meta, [f.image for f in chunk], method, target,
                                  sources=[f.source for f in chunk], target_layer=layer, batch_size=batch_size)
            if not layers_said and expl.layers:
                for lay in dict.fromkeys(lay.describe() for lay in expl.layers):
                    _note(f"CAM layer: {lay}")
                layers_said = True
            for j in range(len(chunk)):
                name = _png_name(expl.sources[j], method)
                k = 1
                while name in used:
                    name = f"{Path(_png_name(expl.sources[j], method)).stem}_{k}.png"
                    k += 1
                used.add(name)
                path = save_panel(expl, j, out / name)
                top = ", ".join(f"{c} {p:.0%}" for c, p in expl.top(j))
                table.add_row(Path(expl.sources[j]).name, expl.classes[int(expl.targets[j])], top, path.name)
            bar.advance(task, len(chunk))
    _console().print(table)
    typer.echo(f"{len(faces)} panel(s) written to {out}")


def _per_class(model_ref: str, data: str | None, split: str | None, method: str, out: Path, limit: int,
               data_root: Path | None, batch_size: int, per_class: bool, inputs: list[Path] | None) -> None:
    from ferbench.explain.per_class import per_class_figure

    if not data:
        raise FerbenchError("--per-class needs --data NAME (and optionally --split SPLIT)")
    if not per_class:
        raise FerbenchError("--data is used with --per-class (the per-class mean maps of a dataset split)")
    if inputs:
        raise FerbenchError("--per-class takes a dataset (--data), not image paths")
    with _progress() as bar:
        task = bar.add_task(f"{method} per class", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        path, cm = per_class_figure(model_ref, data, split, out, method, limit, data_root, batch_size,
                                    on_batch=tick)
    for lay in dict.fromkeys(cm.layers):
        _note(f"CAM layer: {lay}")
    counts = ", ".join(f"{c} {n} ({k}/{t})" for c, n, k, t in zip(cm.classes, cm.counts, cm.correct, cm.totals,
                                                                   strict=True))
    typer.echo(f"per-class {method} on {cm.dataset}/{cm.split}, images averaged (correct/total): {counts}")
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``explain`` to ``app``."""
    app.command("explain")(explain)
