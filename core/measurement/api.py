"""HTTP: AHP measurement models (``/v1/measurement/models``) and the indices computed with them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import Conflict, InconsistentJudgements, NotFound, ValidationFailed
from core.http.deps import CurrentPrincipal, Db
from core.measurement import ahp, service
from core.measurement import settings as measurement_settings
from core.measurement.defaults import DEFAULTS, default_spec
from core.measurement.models import MeasurementModel, MeasurementSettings, MemberLoyalty
from core.measurement.settings import MeasurementConfig
from core.measurement.spec import CODE, FactorIn, Inconsistent, Judgement, Kind, ModelSpec, SpecError, build
from core.members.models import Member


class ModelIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=60, pattern=CODE.pattern)]
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
    code: Annotated[str, Meta(min_length=1, max_length=60, pattern=CODE.pattern)] | None = None
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
    model = await one_or_404(
        db,
        select(MeasurementModel).where(MeasurementModel.id == model_id),
        "No such measurement model.",
        field="model_id",
    )
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


# --- member loyalty, settings and runs ------------------------------------------------------------------------------


class Rfm(msgspec.Struct):
    r: int
    f: int
    m: int
    #: ``"545"``: R, F and M scores (1-5 by the tenant's quintiles; 0 when not active in the window).
    code: str
    segment: str


class LoyaltyType(msgspec.Struct):
    type: str | None
    reasons: list[str]


class Churn(msgspec.Struct):
    #: Probability the member is still active (BG/NBD), and its complement.
    p_alive: float | None
    churn_probability: float | None
    #: Over the next ``horizon_days``: expected purchases (active days), spend per purchase (Gamma-Gamma) and value.
    expected_purchases: float | None
    expected_spend: float | None
    expected_value: float | None
    horizon_days: int


class MemberMetrics(msgspec.Struct):
    recency_days: int | None
    frequency: int
    monetary: str
    repeat_purchases: int
    return_rate: float | None
    churned: bool
    tenure_days: int
    price_sensitivity: float | None
    incident_tolerance: float | None
    share_of_need: float | None


class MemberLoyaltyOut(msgspec.Struct):
    member_id: uuid.UUID
    #: When the nightly run computed these figures (null: not computed yet).
    computed_at: datetime | None
    window_days: int | None = None
    metrics: MemberMetrics | None = None
    rfm: Rfm | None = None
    loyalty_type: LoyaltyType | None = None
    loyalty_index: float | None = None
    churn: Churn | None = None


class MemberLoyaltyController(Controller):
    path = "/v1/members/{member_id:uuid}/loyalty"
    tags = ["measurement"]
    opt = {"scope": "members:read"}

    @get(operation_id="getMemberLoyalty")
    async def get_loyalty(
        self, db: Db, principal: CurrentPrincipal, member_id: FromPath[uuid.UUID]
    ) -> MemberLoyaltyOut:
        """The member's loyalty as of the last nightly run: metrics over the window, RFM scores and segment, loyalty
        type with the reasons that decided it, loyalty index (0-100, the active loyalty model) and churn and value
        (BG/NBD, Gamma-Gamma)."""
        assert principal.tenant_id is not None
        if (await db.execute(select(Member.id).where(Member.id == member_id))).first() is None:
            raise NotFound("No such member.", field="member_id")
        row = (await db.execute(select(MemberLoyalty).where(MemberLoyalty.member_id == member_id))).scalar_one_or_none()
        if row is None:
            return MemberLoyaltyOut(member_id, None)
        config, _ = await measurement_settings.load(db, principal.tenant_id)
        return MemberLoyaltyOut(
            member_id,
            row.computed_at,
            row.window_days,
            MemberMetrics(
                row.recency_days,
                row.frequency,
                str(row.monetary),
                row.repeat_purchases,
                row.return_rate,
                row.churned,
                row.tenure_days,
                row.price_sensitivity,
                row.incident_tolerance,
                row.share_of_need,
            ),
            Rfm(row.r_score, row.f_score, row.m_score, f"{row.r_score}{row.f_score}{row.m_score}", row.rfm_segment),
            LoyaltyType(row.loyalty_type, list(row.type_reasons or [])),
            row.loyalty_index,
            Churn(
                row.p_alive,
                row.churn_probability,
                row.expected_purchases,
                row.expected_spend,
                row.expected_value,
                config.horizon_days,
            ),
        )


class SettingsOut(msgspec.Struct):
    settings: MeasurementConfig
    #: The last nightly run: when, how many members, the fitted model parameters, timings.
    last_run: dict[str, Any]


class RunQueued(msgspec.Struct):
    queued: bool


class MeasurementSettingsController(Controller):
    path = "/v1/measurement"
    tags = ["measurement"]

    @get("/settings", operation_id="getMeasurementSettings")
    async def get_settings(self, db: Db, principal: CurrentPrincipal) -> SettingsOut:
        """Windows, thresholds (loyalty types, churn risk, key members) and the point value, with their defaults;
        and what the last run found."""
        assert principal.tenant_id is not None
        config, last_run = await measurement_settings.load(db, principal.tenant_id)
        return SettingsOut(config, last_run)

    @put("/settings", operation_id="putMeasurementSettings")
    async def put_settings(self, db: Db, principal: CurrentPrincipal, data: JSONBody[MeasurementConfig]) -> SettingsOut:
        """Replace the settings (anything left out takes its default). The next run uses them; a run is queued."""
        assert principal.tenant_id is not None
        if not data.point_value.is_finite() or data.point_value < 0:
            raise ValidationFailed("point_value is a value in the program's currency, 0 or more.", field="point_value")
        row = (await db.execute(select(MeasurementSettings))).scalar_one_or_none()
        stored = msgspec.to_builtins(data)
        if row is None:
            db.add(MeasurementSettings(settings=stored, last_run={}, updated_at=utcnow()))
        else:
            row.settings = stored
            row.updated_at = utcnow()
        await db.flush()
        await service.request_run(db, principal.tenant_id)
        config, last_run = await measurement_settings.load(db, principal.tenant_id)
        return SettingsOut(config, last_run)

    @post("/runs", operation_id="requestMeasurementRun", status_code=202)
    async def request_run(self, db: Db, principal: CurrentPrincipal) -> RunQueued:
        """Queue the loyalty run now (it also runs every night): the worker recomputes every member."""
        assert principal.tenant_id is not None
        await service.request_run(db, principal.tenant_id)
        return RunQueued(True)
