"""HTTP: AHP measurement models (``/v1/measurement/models``) and the indices computed with them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.errors import Conflict, InconsistentJudgements, NotFound, ValidationFailed
from core.http.deps import Db
from core.measurement import ahp, service
from core.measurement.defaults import DEFAULTS, default_spec
from core.measurement.models import MeasurementModel
from core.measurement.spec import CODE, FactorIn, Inconsistent, Judgement, Kind, ModelSpec, SpecError, build


class ModelIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=60)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    kind: Kind
    factors: list[FactorIn]
    judgements: list[list[Judgement]] = []
    active: bool = True


class ModelUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    factors: list[FactorIn] | UnsetType = UNSET
    judgements: list[list[Judgement]] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class CopyIn(msgspec.Struct, forbid_unknown_fields=True):
    default: Literal["loyalty", "satisfaction"]
    code: Annotated[str, Meta(min_length=1, max_length=60)] | None = None
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    active: bool = True


class ModelOut(msgspec.Struct):
    id: uuid.UUID | None
    code: str
    name: str
    kind: str
    active: bool
    factors: list[FactorIn]
    judgements: list[list[Judgement]]
    #: Per node with children: lambda_max, ci, ri, cr and its children's local and global weights.
    consistency: list[dict[str, Any]]
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, m: MeasurementModel) -> ModelOut:
        spec = msgspec.convert(m.spec, ModelSpec)
        return cls(
            m.id, m.code, m.name, m.kind, m.active, spec.factors, spec.judgements, m.weights, m.created_at, m.updated_at
        )


class FactorResult(msgspec.Struct, forbid_unknown_fields=True):
    """One survey factor's result: its standardised value (0-100) and how many answers it rests on."""

    value: Annotated[float, Meta(ge=0, le=100)]
    count: Annotated[int, Meta(ge=0)]


class ResultGroup(msgspec.Struct, forbid_unknown_fields=True):
    #: What the group is: ``program``, ``tier:gold``, ``segment:lapsing``, ``2026-11``...
    group: Annotated[str, Meta(min_length=1, max_length=120)]
    factors: dict[str, FactorResult]


class SatisfactionIn(msgspec.Struct, forbid_unknown_fields=True):
    groups: Annotated[list[ResultGroup], Meta(min_length=1, max_length=500)]


class GroupIndex(msgspec.Struct):
    group: str
    #: The satisfaction index (0-100), null when no factor of the model has an answer.
    index: float | None
    #: Share of the model's weight carried by answered factors (0-1).
    coverage: float
    answers: int
    #: Every node's score (criteria and factors).
    scores: dict[str, float]


class SatisfactionOut(msgspec.Struct):
    model: str
    groups: list[GroupIndex]


class LoyaltyIndexIn(msgspec.Struct, forbid_unknown_fields=True):
    """A member's facts by source name, e.g. ``{"member.attributes.customer_nature": "government",
    "loyalty.frequency": 5}``."""

    facts: dict[str, Any]


class LoyaltyIndexOut(msgspec.Struct):
    model: str
    index: float
    scores: dict[str, float]


def _weighed(kind: Kind, spec: ModelSpec) -> list[dict[str, Any]]:
    try:
        return service.weigh(spec, kind)
    except SpecError as exc:
        raise ValidationFailed(exc.detail, field=exc.field) from None
    except Inconsistent as exc:
        raise InconsistentJudgements(
            str(exc),
            field=exc.field,
            node=exc.node,
            consistency_ratio=round(exc.result.cr, 4),
            lambda_max=round(exc.result.lambda_max, 4),
            judgement=exc.judgement,
        ) from None


async def _model(db: AsyncSession, model_id: uuid.UUID) -> MeasurementModel:
    model = (await db.execute(select(MeasurementModel).where(MeasurementModel.id == model_id))).scalar_one_or_none()
    if model is None:
        raise NotFound("No such measurement model.", field="model_id")
    return model


async def _refuse_second_active(db: AsyncSession, kind: str, but: uuid.UUID | None = None) -> None:
    query = select(MeasurementModel.code).where(MeasurementModel.kind == kind, MeasurementModel.active.is_(True))
    if but is not None:
        query = query.where(MeasurementModel.id != but)
    other = (await db.execute(query)).scalar_one_or_none()
    if other is not None:
        raise Conflict(
            f"Model '{other}' is the active {kind} model; switch it off (PATCH active=false) first.", field="active"
        )


async def _create(db: AsyncSession, code: str, name: str, kind: Kind, spec: ModelSpec, active: bool) -> ModelOut:
    if not CODE.match(code):
        raise ValidationFailed("code: lower-case letters, digits, - and _.", field="code")
    weights = _weighed(kind, spec)
    if (await db.execute(select(MeasurementModel.id).where(MeasurementModel.code == code))).first():
        raise Conflict("Another measurement model already has this code.", field="code")
    if active:
        await _refuse_second_active(db, kind)
    model = MeasurementModel(
        id=uuid.uuid4(),
        code=code,
        name=name,
        kind=kind,
        spec=msgspec.to_builtins(spec),
        weights=weights,
        active=active,
    )
    db.add(model)
    await db.flush()
    await service.model_changed(db, model)
    return ModelOut.of(model)


class MeasurementController(Controller):
    path = "/v1/measurement"
    tags = ["measurement"]

    @get("/defaults", operation_id="listMeasurementDefaults")
    async def defaults(self) -> list[ModelOut]:
        """The models Fealty ships, with their weights and consistency: copy one with
        ``POST /v1/measurement/models/copy`` and tune it."""
        out = []
        for name in DEFAULTS:
            kind, title, spec = default_spec(name)
            out.append(ModelOut(None, name, title, kind, False, spec.factors, spec.judgements, _weighed(kind, spec)))
        return out

    @post("/models", operation_id="createMeasurementModel")
    async def create(self, db: Db, data: JSONBody[ModelIn]) -> ModelOut:
        """An AHP model: a factor hierarchy with the upper triangle of each node's pairwise judgements (Saaty's 1-9
        scale, reciprocals implied). Refused with 422 ``inconsistent-judgements`` when a node's CR is 0.10 or more,
        naming the CR and the judgement that disagrees most with the weights."""
        spec = ModelSpec(data.factors, data.judgements)
        return await _create(db, data.code, data.name, data.kind, spec, data.active)

    @post("/models/copy", operation_id="copyMeasurementDefault")
    async def copy(self, db: Db, data: JSONBody[CopyIn]) -> ModelOut:
        """A copy of one of Fealty's default models (``loyalty`` or ``satisfaction``) as the tenant's own."""
        kind, title, spec = default_spec(data.default)
        return await _create(db, data.code or data.default, data.name or title, kind, spec, data.active)

    @get("/models", operation_id="listMeasurementModels")
    async def list_models(self, db: Db) -> list[ModelOut]:
        rows = (await db.execute(select(MeasurementModel).order_by(MeasurementModel.code))).scalars()
        return [ModelOut.of(m) for m in rows]

    @get("/models/{model_id:uuid}", operation_id="getMeasurementModel")
    async def get_model(self, db: Db, model_id: FromPath[uuid.UUID]) -> ModelOut:
        return ModelOut.of(await _model(db, model_id))

    @patch("/models/{model_id:uuid}", operation_id="updateMeasurementModel")
    async def update(self, db: Db, model_id: FromPath[uuid.UUID], data: JSONBody[ModelUpdate]) -> ModelOut:
        """Change the name, the hierarchy or judgements (weighed again, and refused whole if inconsistent), or
        switch the model on or off. The indices it feeds are recomputed."""
        model = await _model(db, model_id)
        spec = msgspec.convert(model.spec, ModelSpec)
        if data.factors is not UNSET or data.judgements is not UNSET:
            spec = ModelSpec(
                spec.factors if isinstance(data.factors, UnsetType) else data.factors,
                spec.judgements if isinstance(data.judgements, UnsetType) else data.judgements,
            )
            model.weights = _weighed(model.kind, spec)  # type: ignore[arg-type]
            model.spec = msgspec.to_builtins(spec)
        if not isinstance(data.active, UnsetType):
            if data.active and not model.active:
                await _refuse_second_active(db, model.kind, but=model.id)
            model.active = data.active
        if not isinstance(data.name, UnsetType):
            model.name = data.name
        model.updated_at = utcnow()
        await db.flush()
        await service.model_changed(db, model)
        return ModelOut.of(model)

    @delete("/models/{model_id:uuid}", operation_id="deleteMeasurementModel", status_code=204)
    async def delete_model(self, db: Db, model_id: FromPath[uuid.UUID]) -> None:
        model = await _model(db, model_id)
        await db.delete(model)
        await db.flush()
        model.active = False
        await service.model_changed(db, model)

    @post("/models/{model_id:uuid}/satisfaction-index", operation_id="computeSatisfactionIndex", status_code=200)
    async def satisfaction_index(
        self, db: Db, model_id: FromPath[uuid.UUID], data: JSONBody[SatisfactionIn]
    ) -> SatisfactionOut:
        """The satisfaction index (0-100) of each group of survey results (the program, a tier, a segment, a
        period): each leaf factor's standardised value weighted by the model. Factors with no answers are left out
        and the weights of their siblings renormalised; ``coverage`` says how much of the model was answered."""
        model = await _model(db, model_id)
        if model.kind != "satisfaction":
            raise ValidationFailed("This is not a satisfaction model.", field="model_id")
        root, leaves = build(msgspec.convert(model.spec, ModelSpec), "satisfaction")
        out = []
        for i, group in enumerate(data.groups):
            unknown = sorted(set(group.factors) - set(leaves))
            if unknown:
                raise ValidationFailed(
                    f"'{unknown[0]}' is not a leaf factor of this model.", field=f"groups[{i}].factors.{unknown[0]}"
                )
            answered = {code: r.value for code, r in group.factors.items() if r.count > 0}
            scores = ahp.scores(root, answered)
            out.append(
                GroupIndex(
                    group.group,
                    None if "goal" not in scores else round(scores["goal"], 4),
                    round(ahp.coverage(root, answered), 6),
                    sum(r.count for r in group.factors.values()),
                    {k: round(v, 4) for k, v in scores.items() if k != "goal"},
                )
            )
        return SatisfactionOut(model.code, out)

    @post("/models/{model_id:uuid}/loyalty-index", operation_id="previewLoyaltyIndex", status_code=200)
    async def loyalty_index(
        self, db: Db, model_id: FromPath[uuid.UUID], data: JSONBody[LoyaltyIndexIn]
    ) -> LoyaltyIndexOut:
        """The loyalty index (0-100) a member with these facts would get, and every factor's score: to check a
        model's mappings by hand before members are scored with it."""
        model = await _model(db, model_id)
        if model.kind != "loyalty":
            raise ValidationFailed("This is not a loyalty model.", field="model_id")
        scored = service.score_member(model, data.facts)
        return LoyaltyIndexOut(model.code, round(scored["goal"], 4), {k: round(v, 4) for k, v in scored.items()})
