"""`aei-batch demo`: the whole job on an embedded default, with nothing to fetch.

1. writes a small synthetic RAVDESS-named corpus (8 actors x 8 emotions x 2 statements = 128 clips),
2. trains the seed models on actors 17-20 and measures them on actors 21-24,
3. scores the whole corpus through embedded local Ray into an Iceberg table (embedded sqlite catalog),
4. prints the run summary and a few rows read back from the table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def run_demo(workdir: Path, *, runner: str = "ray") -> int:
    from aei_batch.io.sinks import read_predictions
    from aei_batch.records import COL
    from aei_batch.report import print_run_summary, print_train_summary
    from aei_batch.scoring.job import ScoreOptions, run_score
    from aei_batch.synth import make_corpus
    from aei_batch.training.train import TrainOptions, run_train

    corpus, model_dir, table = workdir / "corpus", workdir / "model", workdir / "predictions"
    for d in (corpus, model_dir, table):  # a fresh table each time: the demo shows one run
        shutil.rmtree(d, ignore_errors=True)
    console.rule("1. corpus")
    files = make_corpus(corpus)
    console.print(f"wrote {len(files)} synthetic RAVDESS-named clips to {corpus}")
    console.rule("2. train (hold out actors 21-24)")
    card = run_train(
        TrainOptions(
            data=str(corpus),
            model_dir=str(model_dir),
            holdout_actors=[21, 22, 23, 24],
            runner=runner,
            progress=False,
        )
    )
    print_train_summary(card, str(model_dir))
    console.rule(f"3. score through {'local Ray' if runner == 'ray' else 'the in-process runner'}")
    summary = run_score(
        ScoreOptions(
            source=str(corpus), model_dir=str(model_dir), output=str(table), runner=runner, progress=True
        )
    )
    print_run_summary(summary)
    console.rule("4. the table")
    rows = read_predictions(str(table), "iceberg")
    show = Table(title=f"{rows.num_rows} rows in {table} (first 8 of this run)", title_justify="left")
    cols = [COL.uri, COL.label_emotion, COL.predicted_emotion, COL.confidence, COL.second_emotion, COL.status]
    for c in cols:
        show.add_column(c)
    this_run = [r for r in rows.to_pylist() if r[COL.run_id] == summary.run_id][:8]
    for r in this_run:
        show.add_row(
            Path(r[COL.uri]).name,
            str(r[COL.label_emotion]),
            str(r[COL.predicted_emotion]),
            f"{r[COL.confidence]:.2f}",
            str(r[COL.second_emotion]),
            r[COL.status],
        )
    console.print(show)
    console.print(
        f"query it: aei-batch query -o {table} "
        '"SELECT predicted_emotion, count(*) AS n FROM latest GROUP BY 1 ORDER BY n DESC"'
    )
    return int(summary.exit_code)
