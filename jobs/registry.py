"""The job-type registry: what each job type runs, what it accepts, where and how long.

Pipelines register themselves with ``@register("name", params=Model, ...)``. Functions
decorated with Django's ``@task`` (or ``jobs.background``) become job types named by
their module path the first time a worker or the task backend meets them: the backend
adds them here, and finds them for names the table lacks (``add_finder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from pydantic import BaseModel, ValidationError

from jobs.errors import InvalidInput, UnknownJobType
from jobs.queues import Queue

if TYPE_CHECKING:
    from jobs.runtime import Progress

Runner = Callable[[dict[str, Any], "Progress"], Any]
# At create time, with the owner: checks params cannot express alone (a collection the
# caller owns, a file or a URL). Gets (owner, validated params, whether a file came).
Check = Callable[[Any, dict[str, Any], bool], None]

DEFAULT_MAX_RETRIES = 3
DEFAULT_TIME_LIMIT = 600


def default_memory_limit_mb() -> int:
    """The per-job memory limit of a job type that names none (``JOBSITE_JOB_MEMORY_LIMIT_MB``)."""
    return settings.JOBSITE_JOB_MEMORY_LIMIT_MB


@dataclass(frozen=True)
class JobType:
    name: str
    run: Runner
    params_model: type[BaseModel] | None = None
    queue: str = Queue.DEFAULT
    max_retries: int = DEFAULT_MAX_RETRIES
    time_limit: int = DEFAULT_TIME_LIMIT
    accepts_file: bool = False
    check: Check | None = None
    # Extra memory one attempt may allocate (MB; 0 = only the worker's own limit). On by
    # default: a shared worker must not be one job's to exhaust.
    memory_limit_mb: int = field(default_factory=default_memory_limit_mb)
    # Creatable through the REST API (Django task functions are enqueued from code only).
    public: bool = True
    description: str = ""
    example: dict[str, Any] = field(default_factory=dict)

    def validate(self, params: Any) -> dict[str, Any]:
        return validate_params(self.params_model, params, self.name)

    def params_schema(self) -> dict[str, Any]:
        if self.params_model is None:
            return {"type": "object"}
        return self.params_model.model_json_schema()


def validate_params(model: type[BaseModel] | None, params: Any, type_name: str) -> dict[str, Any]:
    """Check params against a schema; the error names each bad field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be a JSON object", details={"params": ["not an object"]})
    if model is None:
        return params
    try:
        value = model.model_validate(params)
    except ValidationError as exc:
        raise InvalidInput(
            f"Invalid params for job type '{type_name}'", details=pydantic_errors(exc)
        ) from None
    return value.model_dump(mode="json")


def pydantic_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(part) for part in ("params", *err["loc"]))
        errors.setdefault(loc, []).append(err["msg"])
    return errors


_types: dict[str, JobType] = {}
# Where a name the table lacks is looked for (``jobs.taskbackend`` finds a Django task by
# its module path): the table itself knows no backend.
_finders: list[Callable[[str], JobType | None]] = []


def add_finder(find: Callable[[str], JobType | None]) -> None:
    """Look names the table lacks up with ``find`` too (first registered, first asked)."""
    if find not in _finders:
        _finders.append(find)


def register(
    name: str,
    *,
    params: type[BaseModel] | None = None,
    queue: str = Queue.DEFAULT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    time_limit: int = DEFAULT_TIME_LIMIT,
    accepts_file: bool = False,
    check: Check | None = None,
    memory_limit_mb: int | None = None,
    description: str = "",
    example: dict[str, Any] | None = None,
    public: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a pipeline ``func(params, progress) -> result`` as a job type, public
    (creatable through the API) unless ``public=False``
    (``memory_limit_mb=None``: ``JOBSITE_JOB_MEMORY_LIMIT_MB``)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        def run(raw: dict[str, Any], progress: Progress) -> Any:
            value = params.model_validate(raw) if params else raw
            return func(value, progress)

        add(
            JobType(
                name=name,
                run=run,
                params_model=params,
                queue=queue,
                max_retries=max_retries,
                time_limit=time_limit,
                accepts_file=accepts_file,
                check=check,
                memory_limit_mb=(
                    default_memory_limit_mb() if memory_limit_mb is None else memory_limit_mb
                ),
                description=description or first_line(func.__doc__),
                example=example or {},
                public=public,
            )
        )
        return func

    return decorator


def first_line(doc: str | None) -> str:
    """A docstring's first line, or "" for a function that has none."""
    return next(iter((doc or "").strip().splitlines()), "")


def add(job_type: JobType) -> None:
    if job_type.queue not in Queue.values:
        raise ValueError(f"Job type {job_type.name!r}: unknown queue {job_type.queue!r}")
    _types[job_type.name] = job_type


def get(name: str, *, public_only: bool = False) -> JobType:
    """The job type called ``name``; unknown or non-public names raise ``UnknownJobType``."""
    job_type = _types.get(name)
    if job_type is None and not public_only:
        job_type = next((found for find in _finders if (found := find(name)) is not None), None)
    if job_type is None or (public_only and not job_type.public):
        raise UnknownJobType(
            f"Unknown job type '{name}'",
            details={"type": [f"must be one of: {', '.join(sorted(public_names()))}"]},
        )
    return job_type


def find(name: str) -> JobType | None:
    """The job type registered as ``name``, if any (no finder asked)."""
    return _types.get(name)


def public_names() -> list[str]:
    return [name for name, jt in _types.items() if jt.public]


def public_types() -> list[JobType]:
    return [jt for jt in _types.values() if jt.public]
