"""``jobsite``: the command line over the API (so it works from a laptop against a remote
server). Click for the commands, Rich for the progress bar and tables.

Exit codes tell scripts how a waited-for job ended: 0 completed, 1 failed, 3 cancelled,
4 an error talking to the server (2 is Click's own: a usage error). ``--json`` on any
command prints the API's JSON instead of tables.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobsite_client import Jobsite, JobsiteError
from jobsite_client.client import _Call

EXIT = {"completed": 0, "failed": 1, "cancelled": 3}
ERROR_EXIT = 4
out = Console()
err = Console(stderr=True)


class Context:
    def __init__(self, url: str | None, api_key: str | None, as_json: bool) -> None:
        self.url, self.api_key, self.as_json = url, api_key, as_json
        self._client: Jobsite | None = None

    @property
    def client(self) -> Jobsite:
        if self._client is None:
            self._client = Jobsite(self.url, self.api_key)
        return self._client


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="JOBSITE_URL", help="The server (default http://127.0.0.1:8000).")
@click.option("--api-key", envvar="JOBSITE_API_KEY", help="Your key (or JOBSITE_API_KEY).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def main(ctx: click.Context, url: str | None, api_key: str | None, as_json: bool) -> None:
    """Submit, follow and steer Jobsite jobs."""
    ctx.obj = Context(url, api_key, as_json)


def _json_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_object(Context).as_json = True
    return value


# ``--json`` after the command too (``jobsite list --json``), as well as before it.
json_option = click.option(
    "--json",
    "as_json_here",
    is_flag=True,
    expose_value=False,
    callback=_json_flag,
    help="Print the API's JSON.",
)


def _params(pairs: tuple[str, ...], raw: str | None) -> dict[str, Any]:
    """``--params '{...}'`` and ``-p key=value`` (a value that is JSON is read as JSON)."""
    try:
        params = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--params") from None
    if not isinstance(params, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--params")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="-p")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@main.command()
@json_option
@click.argument("source", required=False)
@click.option("--type", "job_type", help="Default: document_processing (a file or URL).")
@click.option("--collection", help="The collection's id.")
@click.option("-p", "--param", "pairs", multiple=True, help="key=value, repeatable.")
@click.option("--params", "raw_params", help="All params as JSON.")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar until it ends.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after seconds.")
@click.pass_obj
def submit(
    obj: Context,
    source: str | None,
    job_type: str | None,
    collection: str | None,
    pairs: tuple[str, ...],
    raw_params: str | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Create a job from a FILE or URL (or from params alone)."""
    params = _params(pairs, raw_params)
    job_type = job_type or "document_processing"
    file = None
    if source and source.startswith(("http://", "https://")):
        params["url" if job_type == "web_extraction" else "file_url"] = source
    elif source:
        file = Path(source)
        if not file.is_file():
            raise click.BadParameter(f"no such file: {source}", param_hint="SOURCE")
    job = _call(lambda: obj.client.jobs.create(
        type=job_type, params=params, file=file, collection_id=collection
    ))  # fmt: skip
    if not wait:
        _print(obj, job.raw, lambda: out.print(f"{job.id}  {job.status}"))
        return
    final = _follow(obj, job.id, timeout)
    _print(obj, final.raw, lambda: _show_job(final.raw))
    sys.exit(EXIT.get(final.status, ERROR_EXIT))


class _GaveUp(Exception):
    """``--timeout`` ran out while waiting."""


@contextlib.contextmanager
def _deadline(timeout: float | None) -> Iterator[None]:
    """``_GaveUp`` after ``timeout`` seconds, even in the middle of a read: a job that
    sits still sends no event to check the time on (keepalives do not reach the caller).
    Where there is no SIGALRM (Windows), the time is checked at each change instead."""
    if timeout is None or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _GaveUp

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _follow(obj: Context, job_id: str, timeout: float | None) -> Any:
    """Follow the job's stream: a live bar on a terminal, a line per change elsewhere."""
    try:
        with _deadline(timeout):
            return _stream(obj, job_id, timeout)
    except _GaveUp:
        err.print(f"gave up waiting after {timeout:g} s; the job goes on")
        sys.exit(ERROR_EXIT)


def _stream(obj: Context, job_id: str, timeout: float | None) -> Any:
    started = time.monotonic()
    terminal = err.is_terminal
    columns = (
        TextColumn("[bold]{task.fields[status]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=not terminal) as bar:
        task = bar.add_task(job_id, total=100, status="pending", step="")
        try:
            for state in obj.client.jobs.stream(job_id):
                step = state.get("current_step") or ""
                progress = state.get("progress") or 0
                bar.update(task, completed=progress, status=state["status"], step=step)
                if not terminal:
                    err.print(f"{state['status']:<10} {progress:5.1f}%  {step}".rstrip())
                if timeout is not None and time.monotonic() - started > timeout:
                    raise _GaveUp
        except JobsiteError as exc:
            err.print(f"[red]{exc}[/]")
            sys.exit(ERROR_EXIT)
    return _call(lambda: obj.client.jobs.get(job_id))


@main.command("list")
@json_option
@click.option("--status", help="e.g. running,failed")
@click.option("--type", "job_type")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def list_jobs(obj: Context, status: str | None, job_type: str | None, limit: int) -> None:
    """Your jobs, newest first."""
    jobs = _call(lambda: _first(obj.client.jobs.list(status=status, type=job_type,
                                                     limit=min(limit, 500)), limit))  # fmt: skip
    _print(obj, [j.raw for j in jobs], lambda: out.print(_jobs_table(jobs)))


@main.command()
@json_option
@click.argument("job_id")
@click.pass_obj
def show(obj: Context, job_id: str) -> None:
    """One job: status, progress, result or error."""
    job = _call(lambda: obj.client.jobs.get(job_id))
    _print(obj, job.raw, lambda: _show_job(job.raw))


@main.command()
@json_option
@click.argument("job_id")
@click.pass_obj
def cancel(obj: Context, job_id: str) -> None:
    """Cancel a job that has not ended."""
    job = _call(lambda: obj.client.jobs.cancel(job_id))
    _print(obj, job.raw, lambda: out.print(f"{job.id}  {job.status}  (cancel requested)"))


@main.command()
@json_option
@click.argument("job_id")
@click.pass_obj
def restart(obj: Context, job_id: str) -> None:
    """Run a failed or cancelled job again."""
    job = _call(lambda: obj.client.jobs.restart(job_id))
    _print(obj, job.raw, lambda: out.print(f"{job.id}  {job.status}"))


@main.command()
@json_option
@click.option("--interval", type=float, default=2.0, show_default=True)
@click.option("--once", is_flag=True, help="Print the table once and exit.")
@click.pass_obj
def watch(obj: Context, interval: float, once: bool) -> None:
    """A live table of your running and pending jobs (Ctrl-C to stop)."""

    def going() -> list[Any]:
        return _first(obj.client.jobs.list(status="running,pending,retrying", limit=50), 50)

    def table(jobs: list[Any], trouble: str = "") -> Table:
        title = f"{len(jobs)} going" + (f" [red](as of before: {trouble})[/]" if trouble else "")
        return _jobs_table(jobs, title=title)

    if obj.as_json:
        click.echo(json.dumps([job.raw for job in _call(going)], indent=2))
        return
    jobs = _call(going)
    if once or not out.is_terminal:
        out.print(table(jobs))
        return
    with Live(table(jobs), console=out, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                try:  # the server may blip: say so and keep the last table, then try again
                    jobs = going()
                    live.update(table(jobs))
                except JobsiteError as exc:
                    live.update(table(jobs, trouble=exc.code or str(exc.status)))
        except KeyboardInterrupt:
            pass


@main.command()
@json_option
@click.pass_obj
def stats(obj: Context) -> None:
    """Queue depths, workers and job counts."""
    body = _call(lambda: obj.client.send(_Call("GET", "/api/v1/jobs/queue/stats")))

    def render() -> None:
        table = Table(title="queues")
        for name in ("figure", "value"):
            table.add_column(name)
        for key, value in body.items():
            table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        out.print(table)

    _print(obj, body, render)


@main.command()
@json_option
@click.argument("query")
@click.option("--collection", help="Search one collection (default: all yours).")
@click.option("--limit", type=int, default=10, show_default=True)
@click.pass_obj
def search(obj: Context, query: str, collection: str | None, limit: int) -> None:
    """Search your memories."""
    hits = _call(lambda: obj.client.memories.search(query, collection_id=collection, limit=limit))

    def render() -> None:
        table = Table()
        for name in ("score", "source", "page", "text"):
            table.add_column(name)
        for hit in hits:
            text = " ".join(hit["text"].split())
            table.add_row(f"{hit['score']:.3f}", hit["source"], str(hit.get("page") or ""),
                          text[:100])  # fmt: skip
        out.print(table)

    _print(obj, hits, render)


def _first(jobs: Iterator[Any], limit: int) -> list[Any]:
    return list(itertools.islice(jobs, limit))


def _jobs_table(jobs: list[Any], title: str | None = None) -> Table:
    table = Table(title=title)
    for name in ("id", "type", "status", "progress", "step", "created"):
        table.add_column(name)
    for job in jobs:
        table.add_row(job.id, job.type, job.status, f"{job.progress:.0f}%",
                      job.current_step or "", job.created_at or "")  # fmt: skip
    return table


def _show_job(raw: dict[str, Any]) -> None:
    out.print(f"[bold]{raw.get('job_id')}[/]  {raw.get('type')}  {raw.get('status')}  "
              f"{raw.get('progress', 0):.0f}%  {raw.get('current_step') or ''}")  # fmt: skip
    if raw.get("error"):
        out.print(f"error: {raw['error'].get('code')}: {raw['error'].get('message')}")
    if raw.get("result") is not None:
        out.print_json(json.dumps(raw["result"]))


def _print(obj: Context, data: Any, render: Any) -> None:
    if obj.as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render()


def _call(action: Any) -> Any:
    """The call's value, or its error on stderr and exit 4."""
    try:
        return action()
    except JobsiteError as exc:
        err.print(f"[red]{exc}[/]")
        sys.exit(ERROR_EXIT)


if __name__ == "__main__":
    main()
