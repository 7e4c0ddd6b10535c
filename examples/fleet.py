"""A rolling release over a fleet: region after region, every host drained, upgraded and
verified, then the region's smoke test; the next region starts only when the previous one
passed. About 5,000 tasks with the defaults: the web UI draws it as a graph of groups.

    cd examples && dalsegno run fleet:rollout -p broken=eu-west-3/web-042

The host named by `broken` fails its verification, so its region's smoke test never runs
and the regions after it stay pending: open the execution in the web UI and click "Go to
failed task". After a fix (run it again without `broken`: `dalsegno executions resume ID`
re-runs the failed verification and goes on from there).
"""

from __future__ import annotations

from dalsegno import NonRecoverableError, operation, workflow

REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "ap-south-1", "ap-northeast-1",
)  # fmt: skip


@operation(resumable=True)
def build_image(ctx, version: str) -> dict:
    ctx.logger.info("image web:%s built", version)
    return {"image": f"registry.example.test/web:{version}"}


@operation(resumable=True)
def open_region(ctx, region: str) -> dict:
    ctx.logger.info("rolling out to %s", region)
    return {"region": region}


@operation(resumable=True, retries=2, retry_interval=0.1)
def drain(ctx, host: str) -> dict:
    return {"host": host, "connections": 0}


@operation(resumable=True, retries=2, retry_interval=0.1)
def upgrade(ctx, host: str, version: str) -> dict:
    return {"host": host, "version": version}


@operation(retries=1, retry_interval=0.1)
def verify(ctx, host: str, broken: str = "") -> dict:
    if host == broken:
        ctx.logger.error("health check of %s: HTTP 503 from /healthz", host)
        raise NonRecoverableError(f"{host} does not answer its health check after the upgrade")
    return {"host": host, "healthy": True}


@operation(resumable=True)
def smoke_test(ctx, region: str) -> dict:
    ctx.logger.info("smoke test of %s passed", region)
    return {"region": region, "passed": True}


@workflow(resumable=True)
def rollout(
    ctx, version: str = "2.4.1", regions: int = 12, hosts: int = 135, broken: str = ""
) -> None:
    g = ctx.graph("rollout")
    gate = g.add(build_image, key="build-image", version=version)
    for region in REGIONS[:regions]:
        opened = g.add(open_region, key=f"{region}/open", region=region)
        g.depend(opened, on=gate)
        verified = []
        for index in range(hosts):
            host = f"{region}/web-{index:03d}"
            steps = [
                g.add(drain, key=f"{host}/drain", host=host),
                g.add(upgrade, key=f"{host}/upgrade", host=host, version=version),
                g.add(verify, key=f"{host}/verify", host=host, broken=broken),
            ]
            g.sequence(*steps)
            g.depend(steps[0], on=opened)
            verified.append(steps[-1])
        gate = g.add(smoke_test, key=f"{region}/smoke-test", region=region)
        g.depend(gate, on=verified)
    g.execute()


@operation(resumable=True)
def collect_logs(ctx, host: str, seconds: float = 30.0) -> dict:
    """Runs on an agent of the queue `ops` (the agents page shows it held there)."""
    import time

    ctx.logger.info("collecting the logs of %s", host)
    time.sleep(seconds)
    return {"host": host, "lines": 1200}


@workflow(resumable=True)
def audit(ctx, hosts: int = 3, seconds: float = 30.0) -> None:
    g = ctx.graph("audit")
    for index in range(hosts):
        host = f"eu-west-3/web-{index:03d}"
        g.add(collect_logs, key=f"{host}/logs", agent="ops", host=host, seconds=seconds)
    g.execute()
