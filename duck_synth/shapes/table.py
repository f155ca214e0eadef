"""The table shape: one network learns the rows; target counts rows."""

from __future__ import annotations

from safetensors.torch import load as load_tensors

from ..catalog import ModelRecord
from ..conditions import CompiledFilter
from ..encoding import Encoder, analyze, from_json
from ..errors import SynthError
from ..models import METHODS, restore_model
from ..models.base import SessionModel
from ..options import GenerateOptions, TrainOptions
from .base import Loaded, Training, TrainingPlan, read_sql, rows_part
from .rows import RowSampler
from .text import load_texts, main_tensors, stored_texts, text_parts

NO_TEXT_UNDER_DP = "a text model is not trained under differential privacy (epsilon)"


class TableShape:
    name = "table"
    tabular = True

    def claims(self, method: str, options: TrainOptions) -> bool:
        return options.session_key is None

    def owns(self, record: ModelRecord) -> bool:
        return "sessions" not in record.statistics

    def check(self, method: str, options: TrainOptions) -> None:
        if options.order_by or options.metadata:
            raise SynthError(
                "train(): order_by and metadata describe sessions; give session_key too"
            )
        if issubclass(METHODS.get(method, object), SessionModel):
            raise SynthError(
                f"train(): method '{method}' models sessions; give session_key => and order_by =>"
            )

    def plan(self, con, relation: str, columns: list[tuple[str, str]], training: Training):
        options, method, protection = training.options, training.method, training.protection
        if options.engine == "ray":  # the rows in blocks, never in one process's memory
            from ..distributed.blocks import plan_in_blocks

            return plan_in_blocks(con, relation, columns, training)
        table = con.execute(read_sql(relation, columns, options, training.seed)).to_arrow_table()
        refusal = NO_TEXT_UNDER_DP if training.budget is not None else None
        encoders = analyze(table, dict(columns), options.encoding, protection, refusal)
        texts = text_parts(encoders, table, protection)  # fitted first: the summary is the main's
        plan = TrainingPlan(
            encoders=encoders,
            columns=[
                {"name": e.name, "type": t, "kind": e.kind}
                for e, (_, t) in zip(encoders, columns, strict=True)
            ],
            parts=[
                *texts,
                rows_part("", method, encoders, table, 1.0, hyper=model_options(method, options)),
            ],
            training_rows=table.num_rows,
            rows=table.num_rows,
        )
        if training.budget is not None:  # what is stored is read through DP too
            noisy = table.num_rows + float(protection.budget.laplace(1)[0])
            plan.training_rows = max(int(round(noisy)), 1)
            plan.facts = private_facts(encoders)
        return plan

    def stored(self, plan: TrainingPlan, params: dict[str, dict]) -> dict:
        return stored_texts(params)

    def load(self, record: ModelRecord) -> Loaded:
        encoders = [from_json(spec) for spec in record.statistics["encoders"]]
        modelled = [i for i, e in enumerate(encoders) if e.n_tokens > 0]
        tensors = load_tensors(record.weights)
        model = restore_model(record.method, record.statistics["model"], main_tensors(tensors))
        texts = load_texts(record.statistics, tensors)
        return Loaded(record, self, encoders, model, modelled, texts)

    def refuse(self, options: GenerateOptions) -> None:
        pass  # every generate() option draws rows

    def filter_scope(self, loaded: Loaded) -> tuple[list[Encoder], list[str]]:
        return loaded.encoders, []

    def sampler(
        self, loaded: Loaded, options: GenerateOptions, compiled: CompiledFilter, seed: int
    ) -> RowSampler:
        return RowSampler(loaded, options, compiled, seed)


def model_options(method: str, options: TrainOptions) -> dict:
    """The train() options a method's constructor takes."""
    if method == "privbayes":
        return {"n_parents": options.n_parents, "sample_parents": options.sample_parents}
    return {}


def private_facts(encoders: list[Encoder]) -> dict[str, dict]:
    """column_facts from what DP released: no uniqueness claim; the longest kept category."""
    return {
        e.name: {
            "unique": False,
            "max_length": max((len(str(c)) for c in e.stats.get("categories", [])), default=None)
            if e.duck_type == "VARCHAR"
            else None,
        }
        for e in encoders
    }
