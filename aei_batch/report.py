"""Human-facing summaries: what a run did, what training measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from aei_batch.models.card import ModelCard
    from aei_batch.scoring.summary import RunSummary

console = Console()


def print_run_summary(s: RunSummary) -> None:
    t = Table(title=f"run {s.run_id}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("source", s.source)
    t.add_row("model", s.model)
    licence = getattr(s, "model_licence", "")
    if licence:
        t.add_row("licence", licence)
    t.add_row("files", str(s.files))
    if s.skipped:
        t.add_row("skipped", f"{s.skipped} (already in the table with this model: --incremental)")
    if s.replaced:
        t.add_row("replaced", f"{s.replaced} rows of earlier runs (same uri, etag, model version)")
    t.add_row("scored", str(s.scored))
    t.add_row("errors", f"{s.errors} ({s.error_rate:.1%})")
    for code, n in sorted(s.error_codes.items()):
        t.add_row("", f"{code}: {n}")
    t.add_row("time", f"{s.seconds:.1f} s ({s.files_per_s:.1f} files/s)")
    if s.emotions:
        top = sorted(s.emotions.items(), key=lambda kv: -kv[1])
        t.add_row("predicted", ", ".join(f"{e} {n}" for e, n in top))
    t.add_row("table", s.destination)
    console.print(t)
    if s.error_rate > s.max_error_rate:
        console.print(
            f"[red]error share {s.error_rate:.1%} is over --max-error-rate "
            f"{s.max_error_rate:.1%}: exit 3[/red] "
            "(rows were committed; see error_code/error_message in the table)"
        )


def print_train_summary(card: ModelCard, model_dir: str) -> None:
    tr = card.training
    n_files = tr.get("n_train_files", tr["n_train"])
    rows = f" ({tr['n_train']} rows with augmented copies)" if tr["n_train"] != n_files else ""
    console.print(
        f"trained on {n_files} files{rows} from actors {tr['train_actors']}; "
        f"held out {tr['n_heldout']} files from actors {tr['holdout_actors'] or 'none'}"
    )
    t = Table(title="held-out accuracy (actors never seen in training)", title_justify="left")
    for col in ("model", "accuracy", "95% CI", "UAR", "macro-F1", "telephone", "noise floor", "fit s"):
        t.add_column(col)

    def cond(rep: dict[str, Any]) -> str:
        return f"{rep['accuracy']:.3f} (drop {rep['accuracy_drop_points']:.1f} pt)" if rep.get("n") else ""

    for name, art in card.models.items():
        h = art.heldout
        if h:
            lo, hi = h["accuracy_ci95"]
            t.add_row(
                name + (" *" if name == card.default_model else ""),
                f"{h['accuracy']:.3f}",
                f"{lo:.3f}-{hi:.3f}",
                f"{h['uar']:.3f}",
                f"{h['macro_f1']:.3f}",
                cond(h.get("telephone") or {}),
                cond(h.get("noise_floor") or {}),
                str(art.params.get("fit_seconds")),
            )
        else:
            t.add_row(name, "n/a", "", "", "", "", "", str(art.params.get("fit_seconds")))
    console.print(t)
    default = card.models.get(card.default_model)
    win = (default.heldout or {}).get("windows") if default else None
    if win:
        parts = [
            f"{win[f]['label']} {win[f]['share']:.3f} of {win[f]['n_counted']}"
            for f in ("mono16k", "stereo8k")
            if win.get(f, {}).get("n_counted")
        ]
        console.print(f"held-out call windows matching the clip under their centre: {'; '.join(parts)}")
    console.print(f"model directory: {model_dir} (version {card.model_version}; * = default model)")
    from aei_batch.models.model_card import MODEL_CARD_MD, licence_line

    licence = licence_line(card)
    if licence:
        console.print(f"licence: {licence}")
    if card.licence or card.use:
        console.print(f"model card: {model_dir.rstrip('/')}/{MODEL_CARD_MD} (intended use, limitations)")
