"""Drives the runtime through the client openapi-python-client generated from
its document (`vwed_client`, on PYTHONPATH). Each call asserts the status, the
type the client parsed the answer into, that the parsed answer gives back the
JSON the runtime sent (nothing lost or misread), and that no typed object held
fields the document does not name. Prints `ok <endpoint>` per call."""

import json
import os
import sys
import time
import traceback

import attrs
from vwed_client import AuthenticatedClient
from vwed_client import models as m
from vwed_client.api.files import files_create, files_get, files_validate
from vwed_client.api.integration import integration_execute, integration_variables
from vwed_client.api.jobs import jobs_create, jobs_execute, jobs_execution
from vwed_client.api.logs import logs_list
from vwed_client.api.projects import projects_files, projects_list
from vwed_client.api.registry import (
    registry_integration_functions,
    registry_registry_status,
)
from vwed_client.api.scripts import (
    scripts_execute_function,
    scripts_output,
    scripts_running,
    scripts_start,
    scripts_stop,
)
from vwed_client.api.system import system_health_status, system_info

client = AuthenticatedClient(base_url=os.environ["VWED_URL"], token=os.environ["VWED_TOKEN"])


def undocumented(value, at="$"):
    """Fields of typed objects that the document does not name. A model whose
    only field is `additional_properties` is a map, whose keys are data."""
    out = []
    if attrs.has(type(value)):
        names = [f.name for f in attrs.fields(type(value))]
        extra = getattr(value, "additional_properties", {})
        if names != ["additional_properties"] and extra:
            out.append(f"{at} ({type(value).__name__}): {sorted(extra)}")
        for name in names:
            child = getattr(value, name)
            if name == "additional_properties":
                for k, v in child.items():
                    out += undocumented(v, f"{at}.{k}")
            else:
                out += undocumented(child, f"{at}.{name}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += undocumented(v, f"{at}[{i}]")
    return out


def check(name, resp, cls, status=200):
    """The answer to `name`: its status, parsed as `cls`, losslessly."""
    raw = resp.content.decode()
    assert resp.status_code == status, f"{name}: status {resp.status_code}, wanted {status}: {raw}"
    parsed = resp.parsed
    assert isinstance(parsed, cls), (
        f"{name}: parsed as {type(parsed).__name__}, not {cls.__name__}: {raw}"
    )
    again = parsed.to_dict()
    assert again == json.loads(raw), f"{name}: parsed and given back as {again}, sent {raw}"
    extra = undocumented(parsed)
    assert not extra, f"{name}: fields the document does not name: {extra}"
    print("ok", name)
    return parsed


def projects_and_files():
    """The sample project, its files, a new file, a syntax check; the sample's id."""
    h = check("GET /health", system_health_status.sync_detailed(client=client), m.EnvelopeHealth)
    assert h.data.status == "ok" and h.data.safe_mode is False

    projects = check(
        "GET /api/script/projects",
        projects_list.sync_detailed(client=client),
        m.EnvelopeVecProjectView,
    )
    sample = next(p for p in projects.data if p.project_name == "sample")
    assert isinstance(sample.id, int)

    files = check(
        "GET /api/script/projects/{id}/files",
        projects_files.sync_detailed(sample.id, client=client, include_content=True),
        m.EnvelopeProjectFiles,
    )
    assert [f.file_path for f in files.data.files] == ["main.py"]
    assert "def boot(" in files.data.files[0].content

    made = check(
        "POST /api/script/files",
        files_create.sync_detailed(
            client=client,
            body=m.CreateFile(project_id=sample.id, file_name="client.py", content="x = 1\n"),
        ),
        m.EnvelopeFileView,
    )
    assert made.data.file_name == "client.py" and made.data.version == 1
    got = check(
        "GET /api/script/files/{id}",
        files_get.sync_detailed(made.data.id, client=client),
        m.EnvelopeFileWithContent,
    )
    assert got.data.content == "x = 1\n"
    missing = check(
        "GET /api/script/files/{id} (missing)",
        files_get.sync_detailed(999_999, client=client),
        m.Failure,
        status=404,
    )
    assert missing.success is False and missing.error

    ok = check(
        "POST /api/script/validate-syntax",
        files_validate.sync_detailed(
            client=client, body=m.ValidateReq(content="def boot():\n    pass\n")
        ),
        m.EnvelopeSyntaxCheck,
    )
    assert ok.data.valid is True and ok.data.has_boot_function is True
    bad = check(
        "POST /api/script/validate-syntax (bad)",
        files_validate.sync_detailed(client=client, body=m.ValidateReq(content="def (:\n")),
        m.EnvelopeSyntaxCheck,
    )
    assert bad.data.valid is False and isinstance(bad.data.line, int)


def scripts():
    """Starts the sample, calls its functions directly and as a task's block,
    reads what it registered and wrote, and stops it."""
    started = check(
        "POST /api/script/scripts/start",
        scripts_start.sync_detailed(client=client, body=m.StartBody(script_path="sample/main.py")),
        m.Started,
    )
    sid = started.script_id
    assert started.data.registrations.functions == 4

    running = check(
        "GET /api/script/scripts/running", scripts_running.sync_detailed(client=client), m.Running
    )
    assert [r.script_id for r in running.data] == [sid]
    assert running.data[0].restart_policy.mode

    called = check(
        "POST /api/script/scripts/execute-function",
        scripts_execute_function.sync_detailed(
            client=client,
            body=m.FunctionCallBody(
                function_name="calculate_sum",
                function_args={"numbers": [1, 2, 3.5]},
                timeout_ms=5000,
            ),
        ),
        m.FunctionCalled,
    )
    assert called.result == {"sum": 6.5, "count": 3}
    nofn = check(
        "POST /api/script/scripts/execute-function (missing)",
        scripts_execute_function.sync_detailed(
            client=client, body=m.FunctionCallBody(function_name="nope")
        ),
        m.FunctionCalled,
        status=404,
    )
    assert nofn.success is False and nofn.error

    # The block has its own body: `timeout` and task variables, no `timeout_ms`.
    block = check(
        "POST /api/script/integration/execute",
        integration_execute.sync_detailed(
            client=client,
            body=m.TaskBlockBody(
                function_name="area",
                function_args={"width": 4, "height": 5},
                task_id="task-1",
                task_variables=m.TaskBlockBodyTaskVariablesType0.from_dict({"stage": "pick"}),
                timeout=5000,
            ),
        ),
        m.BlockRun,
    )
    assert block.result.data == 20 and block.data.task_id == "task-1"
    tv = check(
        "GET /api/script/integration/tasks/{id}/variables",
        integration_variables.sync_detailed("task-1", client=client),
        m.EnvelopeTaskVariables,
    )
    assert tv.data.variables == {"stage": "pick", "scriptResult": 20}, tv.to_dict()

    registry_logs_system(sid)

    stopped = check(
        "POST /api/script/scripts/{id}/stop",
        scripts_stop.sync_detailed(sid, client=client),
        m.Stopped,
    )
    assert stopped.data.script_id == sid


def registry_logs_system(sid):
    """What the running sample `sid` registered and wrote, and the system."""
    reg = check(
        "GET /api/script/registry/status",
        registry_registry_status.sync_detailed(client=client),
        m.EnvelopeRegistryStatus,
    )
    assert reg.data.registered_functions["calculate_sum"].script_id == sid
    assert reg.data.active_scripts[sid].script_path == "sample/main.py"
    fns = check(
        "GET /api/script/integration/functions",
        registry_integration_functions.sync_detailed(client=client, tags="math"),
        m.EnvelopeVecFunctionInfo,
    )
    assert sorted(f.function_name for f in fns.data) == ["area", "calculate_sum"]

    out = check(
        "GET /api/script/scripts/{id}/output",
        scripts_output.sync_detailed(sid, client=client),
        m.EnvelopeScriptOutput,
    )
    assert out.data.script_id == sid

    logs = check(
        "GET /api/script/logs", logs_list.sync_detailed(client=client, limit=5), m.EnvelopeLogPage
    )
    assert logs.data.count == len(logs.data.logs) <= 5

    info = check(
        "GET /api/system/info", system_info.sync_detailed(client=client), m.EnvelopeSystemInfo
    )
    assert info.data.board.cpus >= 1


def jobs():
    """A one-shot job: defined, executed, followed to its end."""
    job = check(
        "POST /api/v1/scripts",
        jobs_create.sync_detailed(
            client=client,
            body=m.JobInput(
                name="client-job",
                language=m.Language.PYTHON,
                content="print('hello from the job')\n",
                status=m.JobStatus.ACTIVE,
                parameters=[m.ParamSpec(name="n", type_=m.ParamType.INTEGER, required=False)],
            ),
        ),
        m.EnvelopeJobView,
    )
    assert job.data.status == "active" and job.data.content
    queued = check(
        "POST /api/v1/scripts/{id}/execute",
        jobs_execute.sync_detailed(
            job.data.id,
            client=client,
            body=m.ExecuteBody(input_parameters={"n": 3}, trigger="manual"),
        ),
        m.EnvelopeExecutionView,
        status=202,
    )
    exec_id = queued.data.execution_id
    deadline = time.time() + 60
    while True:
        e = check(
            "GET /api/v1/scripts/executions/{id}",
            jobs_execution.sync_detailed(exec_id, client=client),
            m.EnvelopeExecutionView,
        )
        if e.data.status not in ("queued", "running"):
            break
        assert time.time() < deadline, f"execution {exec_id} still {e.data.status}"
        time.sleep(0.1)
    assert e.data.status == "succeeded", e.to_dict()
    assert "hello from the job" in e.data.output


def main():
    projects_and_files()
    scripts()
    jobs()


if __name__ == "__main__":
    try:
        main()
    except AssertionError:
        # The line of the assertion says what was checked.
        traceback.print_exc()
        sys.exit(1)
