"""Prefect automations that notice runs nothing is executing, and start ``flows/recover.py``.

Two proactive triggers, per flow run, on events Prefect already emits:
- "eotasks: run not started": a run entered PENDING (a worker took it) and neither RUNNING nor an
  end followed within ``EOTASKS_STALE_PENDING_S``: the worker died in between.
- "eotasks: run lost its heartbeat": a run's heartbeat (the warm child sends one every
  PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds) was followed by neither another nor an end within
  ``EOTASKS_STALE_HEARTBEAT_S``: its process or host died.
Each runs the ``recover/eotasks`` deployment for that run, which resubmits it (up to
``EOTASKS_MAX_RESUBMITS`` times) or fails it with a sentence the client can act on.

``ensure_recovery_automations`` is idempotent (replaces automations of the same names); ``make up``
calls it after deploying, production runs ``eotasks automations setup``.
"""

from __future__ import annotations

from datetime import timedelta

from eotasks.settings import get_settings

NOT_STARTED = "eotasks: run not started"
NO_HEARTBEAT = "eotasks: run lost its heartbeat"
ENDS = {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Cancelling",
    "prefect.flow-run.Scheduled",
    "prefect.flow-run.TimedOut",
}


def automations(recover_deployment_id) -> list:
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    settings = get_settings()

    def action(reason: str) -> RunDeployment:
        return RunDeployment(
            source="selected",
            deployment_id=recover_deployment_id,
            parameters={"flow_run_id": {"__prefect_kind": "jinja", "template": "{{ event.resource.id }}"}, "reason": reason},
        )

    # Only our task types' runs (tagged "eotasks"), never the recovery flow's own.
    match_related = {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.eotasks"}
    return [
        Automation(
            name=NOT_STARTED,
            description="A PENDING run that no process started: resubmit or fail it.",
            trigger=EventTrigger(
                posture=Posture.Proactive,
                after={"prefect.flow-run.Pending"},
                expect={"prefect.flow-run.Running", *ENDS},
                for_each={"prefect.resource.id"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=match_related,
                threshold=1,
                within=timedelta(seconds=settings.stale_pending_s),
            ),
            actions=[action("not started")],
        ),
        Automation(
            name=NO_HEARTBEAT,
            description="A RUNNING run whose heartbeats stopped: resubmit or fail it.",
            trigger=EventTrigger(
                posture=Posture.Proactive,
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", *ENDS},
                for_each={"prefect.resource.id"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                threshold=1,
                within=timedelta(seconds=settings.stale_heartbeat_s),
            ),
            actions=[action("no heartbeat")],
        ),
    ]


def _definition(automation) -> dict:
    trigger = automation.trigger.model_dump(mode="json", exclude={"id"})
    for key in ("after", "expect", "for_each"):  # sets: their JSON order changes with the process's hash seed
        trigger[key] = sorted(trigger.get(key) or [])
    return {
        "description": automation.description,
        "enabled": automation.enabled,
        "trigger": trigger,
        "actions": [a.model_dump(mode="json") for a in automation.actions],
    }


async def ensure_recovery_automations(deployment_name: str = "recover/eotasks") -> None:
    """Save the automations; one already saved as wanted is left alone. Replacing it would drop the
    server's open windows for it, and this runs again each time a worker restarts: exactly when
    the windows of the runs that worker stranded must survive."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        existing: dict[str, list] = {}
        for a in await client.read_automations():
            existing.setdefault(a.name, []).append(a)
        for automation in automations(deployment.id):
            same = [a for a in existing.get(automation.name, []) if _definition(a) == _definition(automation)]
            for stale in existing.get(automation.name, []):
                if not same or stale.id != same[0].id:
                    await client.delete_automation(stale.id)
            if not same:
                await automation.acreate()
