"""What the warm worker relies on in Prefect (and in Python's forkserver) beyond documented API.

Prefect is pinned exactly in pyproject.toml; an upgrade that changes any of these fails here, loudly,
before it can change how flow runs start, get cancelled or crash.
"""

from __future__ import annotations

import inspect
import multiprocessing.forkserver
from multiprocessing import popen_forkserver

import prefect
from prefect.runner import _flow_run_executor, _process_manager
from prefect.workers.base import BaseWorker
from prefect.workers.process import ProcessWorker


def test_prefect_is_the_pinned_version():
    assert prefect.__version__ == "3.9.1"


def test_the_worker_type_is_registered_through_the_collections_entry_point():
    from importlib.metadata import entry_points

    [ep] = [ep for ep in entry_points(group="prefect.collections") if ep.name == "eotasks_warm"]
    assert ep.value == "eotasks.warm.worker"
    cls = BaseWorker.get_worker_class_from_type("eotasks-warm")
    assert cls is not None and cls.__name__ == "WarmProcessWorker"
    # Same job template as Prefect's process worker: a pool can switch between the two.
    assert cls.get_default_base_job_template() == ProcessWorker.get_default_base_job_template()


def test_flow_run_executor_context_and_starter_contract():
    params = inspect.signature(_flow_run_executor.FlowRunExecutorContext.create_executor).parameters
    assert list(params) == ["self", "flow_run", "starter", "resolve_flow", "propose_submitting", "hook_runner"]
    assert set(inspect.signature(_flow_run_executor.ProcessStarter.start).parameters) == {"self", "flow_run", "task_status"}
    for name in ("control_channel", "process_manager", "client"):
        assert name in inspect.getsource(_flow_run_executor.FlowRunExecutorContext.__aenter__)
    result = _flow_run_executor.FlowRunExecutionResult
    assert {"handle", "status_code", "crash_unreported"} <= set(result.__dataclass_fields__)


def test_process_handle_reads_a_multiprocessing_child():
    source = inspect.getsource(_process_manager.ProcessHandle)
    assert 'getattr(self._process, "exitcode", None)' in source  # our child is a multiprocessing Process
    assert "os.kill(pid, signal.SIGTERM)" in inspect.getsource(_process_manager._SingleProcessTerminationScope)


def test_engine_entry_reads_the_run_id_and_control_channel_from_the_environment():
    import prefect.engine

    source = inspect.getsource(prefect.engine)
    assert 'if __name__ == "__main__":' in source
    assert "configure_from_env()" in source and "PREFECT__FLOW_RUN_ID" in source
    from prefect._internal import control_listener

    assert "PREFECT__CONTROL_PORT" in inspect.getsource(control_listener)


def test_heartbeats_are_the_event_we_send_and_can_be_disabled_per_process():
    import prefect.flow_engine as fe

    source = inspect.getsource(fe._send_heartbeats)
    assert "if heartbeat_seconds is None:" in source and "thread.join(timeout=2)" in source
    assert 'event="prefect.flow-run.heartbeat"' in inspect.getsource(fe.BaseFlowRunEngine._emit_flow_run_heartbeat)
    from prefect.settings.models.flows import FlowsSettings

    assert FlowsSettings(heartbeat_frequency=None).heartbeat_frequency is None


def test_scheduled_runs_emit_an_event_related_to_their_work_pool():
    from prefect.server.models import events

    source = inspect.getsource(events)
    assert "f\"prefect.{kind}.{data['id']}\"" in source and '"work-pool": (' in source


def test_base_worker_hooks_we_use():
    for name in ("get_and_submit_flow_runs", "_give_worker_labels_to_flow_run", "kill_infrastructure", "setup", "teardown"):
        assert hasattr(BaseWorker, name), name
    assert "infrastructure_pid=str(readiness_result)" in inspect.getsource(BaseWorker._submit_run)


def test_forkserver_internals_our_launch_copies():
    source = inspect.getsource(popen_forkserver.Popen._launch)
    for fragment in (
        "spawn.get_preparation_data(process_obj._name)",
        "forkserver.connect_to_new_process(self._fds)",
        "forkserver.read_signed(self.sentinel)",
    ):
        assert fragment in source
    assert hasattr(multiprocessing.forkserver._forkserver, "_forkserver_pid")


def test_clients_use_a_given_tls_context_and_children_share_one(monkeypatch):
    """Prefect's clients take ``httpx_settings["verify"]`` as given when it is an SSLContext (what
    share_prefect_tls_context relies on); with the preload, building clients builds no context, a
    caller's own ``verify`` is kept, and PREFECT_API_TLS_INSECURE_SKIP_VERIFY still turns checks off."""
    import ssl

    from prefect.client.orchestration import PrefectClient, SyncPrefectClient
    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    import eotasks.warm.child  # noqa: F401  (the preload installs the shared context)

    for cls in (PrefectClient, SyncPrefectClient):
        original = cls.__init__.__kwdefaults__["_original"]
        assert "isinstance(tls_verify, ssl.SSLContext)" in inspect.getsource(original)
        assert 'httpx_settings.setdefault("verify", ctx)' in inspect.getsource(original)

    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(k) or real(*a, **k))

    def context_of(client) -> ssl.SSLContext:
        return client._client._transport._pool._ssl_context

    a, b = SyncPrefectClient("http://127.0.0.1:9/api"), PrefectClient("http://127.0.0.1:9/api")
    assert made == [] and context_of(a) is context_of(b) and context_of(a).verify_mode == ssl.CERT_REQUIRED
    own = real()
    assert context_of(SyncPrefectClient("http://127.0.0.1:9/api", httpx_settings={"verify": own})) is own
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        assert context_of(SyncPrefectClient("http://127.0.0.1:9/api")).verify_mode == ssl.CERT_NONE
