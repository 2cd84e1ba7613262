"""The deployment files in deploy/ agree with the config parser, with Ray's own cluster-config checks,
with each other (versions, paths, GPU counts, memory) and with deploy/constraints.txt."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import PipelineConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


# ---- helpers ----------------------------------------------------------------------------------
def pinned(package: str) -> str:
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        match = re.fullmatch(rf"\s*{re.escape(package)}==([^\s#]+)\s*(#.*)?", line, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    raise AssertionError(f"{package}== is not pinned in deploy/constraints.txt")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def dockerfile_value(name: str, instruction: str) -> str:
    for word, args in dockerfile_instructions():
        if word == instruction:
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                if key == name:
                    return value
    raise AssertionError(f"no {instruction} {name}=... in deploy/Dockerfile")


def image_python() -> str:
    base = next(args for word, args in dockerfile_instructions() if word == "FROM")
    match = re.fullmatch(r"python:(3\.1[12])(?:\.\d+)?-slim(?:-\w+)?(?:@sha256:[0-9a-f]{64})?(?:\s+AS\s+\w+)?", base,
                         flags=re.IGNORECASE)
    assert match, f"FROM {base}: expected a python:3.11/3.12 slim base"
    return match.group(1)


def quantity(text: str | int) -> int:
    """Kubernetes quantities (16Gi, 4G, 3000000000) and docker sizes (6g, 512m) in bytes."""
    match = re.fullmatch(r"'?(\d+(?:\.\d+)?)\s*([KMGT]i?|[kmgt]b?|b)?'?", str(text))
    assert match, f"not a size: {text!r}"
    number, unit = float(match.group(1)), match.group(2) or ""
    factors = {"": 1, "b": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
               "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}
    return int(number * factors[unit])


def cli_flag(command: str, flag: str) -> str | None:
    match = re.search(rf"{re.escape(flag)}[= ]([^\s;&]+)", command)
    return match.group(1) if match else None


def check_image_tag(image: str, where: str) -> None:
    ray_version = pinned("ray")
    assert f"ray{ray_version}" in image, f"{where}: image {image} does not carry ray{ray_version} (constraints.txt)"
    assert f"py{image_python()}" in image, f"{where}: image {image} does not carry py{image_python()} (Dockerfile FROM)"


@pytest.fixture(scope="module")
def cluster_config() -> PipelineConfig:
    return load_config(DEPLOY / "pipeline.cluster.yaml")


@pytest.fixture(scope="module")
def pipeline_text() -> str:
    return (DEPLOY / "pipeline.cluster.yaml").read_text()


@pytest.fixture(scope="module")
def kuberay_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kuberay.yaml").read_text()) if d is not None]


@pytest.fixture(scope="module")
def raycluster(kuberay_docs: list[dict[str, Any]]) -> dict[str, Any]:
    clusters = [d for d in kuberay_docs if d.get("kind") == "RayCluster"]
    assert len(clusters) == 1, "deploy/kuberay.yaml must hold exactly one RayCluster"
    assert clusters[0]["apiVersion"] == "ray.io/v1"
    return clusters[0]


@pytest.fixture(scope="module")
def launcher() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "cluster.yaml").read_text())


# ---- pipeline.cluster.yaml ------------------------------------------------------------------------
def test_cluster_pipeline_parses_and_targets_a_cluster(cluster_config: PipelineConfig) -> None:
    c = cluster_config
    assert c.ray.address == "auto"
    assert len(c.streams) == 8
    assert all(s.url.startswith("rtsp://") and not s.realtime and not s.loop for s in c.streams)
    assert c.model.arch == "maskrcnn_resnet50_fpn_v2"
    assert c.model.weights == "DEFAULT"
    assert c.model.precision == "fp16"
    assert c.inference.replicas == 4 and c.inference.num_gpus == 1
    assert c.sinks.redis is not None and c.sinks.redis.history_maxlen > 0
    host = c.sinks.redis.url.split("//", 1)[1].split("/", 1)[0].split(":")[0]
    assert host not in ("127.0.0.1", "localhost"), "sinks run on any node: Redis must be reachable from all of them"


def test_cluster_pipeline_output_paths_are_absolute(pipeline_text: str) -> None:
    # Relative paths would resolve against the driver's folder, which other nodes do not have.
    raw = yaml.safe_load(pipeline_text)
    for sink in ("video", "jsonl"):
        assert Path(raw["sinks"][sink]["dir"]).is_absolute(), f"sinks.{sink}.dir must be absolute on a cluster"


def test_gpu_comments_match_the_values(cluster_config: PipelineConfig, pipeline_text: str) -> None:
    inference = cluster_config.inference
    used = inference.replicas * inference.num_gpus
    match = re.search(r"replicas x num_gpus = (\d+) x ([\d.]+) = ([\d.]+)", pipeline_text)
    assert match, "the inference section must state replicas x num_gpus = R x G = N"
    replicas, gpus, total = int(match.group(1)), float(match.group(2)), float(match.group(3))
    assert (replicas, gpus) == (inference.replicas, inference.num_gpus)
    assert replicas * gpus == total == used
    # The fractional example: "num_gpus: 0.5 puts 2 replicas ... replicas: 8, num_gpus: 0.5 also uses 4 GPUs".
    frac = re.search(r"num_gpus: (0\.\d+) puts (\d+) replicas", pipeline_text)
    assert frac and 1 / float(frac.group(1)) == int(frac.group(2))
    alt = re.search(r"replicas: (\d+), num_gpus: ([\d.]+) also uses (\d+) GPUs", pipeline_text)
    assert alt and int(alt.group(1)) * float(alt.group(2)) == int(alt.group(3)) == used


def test_object_store_comment_matches_the_values(cluster_config: PipelineConfig, pipeline_text: str) -> None:
    match = re.search(r"= (\d+) x (\d+) x 6\.2 MB \(1080p RGB\) = ([\d.]+) GB", pipeline_text)
    assert match
    assert int(match.group(1)) == cluster_config.backpressure.max_in_flight_per_stream
    assert int(match.group(2)) == len(cluster_config.streams)
    assert round(1920 * 1080 * 3 / 1e6, 1) == 6.2
    assert abs(int(match.group(1)) * int(match.group(2)) * 1920 * 1080 * 3 / 1e9 - float(match.group(3))) < 0.05


# ---- kuberay.yaml ---------------------------------------------------------------------------------
def _pod(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]


def _ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return _pod(group)["containers"][0]


def test_kuberay_head_has_no_gpu_and_exposes_dashboard_and_client(raycluster: dict[str, Any]) -> None:
    head = raycluster["spec"]["headGroupSpec"]
    container = _ray_container(head)
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert head["rayStartParams"].get("num-gpus") == "0"
    ports = {p["containerPort"] for p in container["ports"]}
    assert {8265, 10001} <= ports


def test_kuberay_gpu_worker_group_autoscales(raycluster: dict[str, Any], cluster_config: PipelineConfig) -> None:
    spec = raycluster["spec"]
    assert spec.get("enableInTreeAutoscaling") is True
    gpu_groups = [g for g in spec["workerGroupSpecs"]
                  if "nvidia.com/gpu" in _ray_container(g)["resources"].get("limits", {})]
    assert len(gpu_groups) == 1
    group = gpu_groups[0]
    resources = _ray_container(group)["resources"]
    gpus = int(resources["limits"]["nvidia.com/gpu"])
    assert gpus >= 1
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] and group["minReplicas"] < group["maxReplicas"]
    # Enough GPUs at start for the example pipeline: the driver waits only 600 s for its replicas.
    inference = cluster_config.inference
    assert group["minReplicas"] * gpus >= inference.replicas * inference.num_gpus
    # Each GPU pod holds the CPUs its replicas request.
    assert quantity(resources["limits"]["cpu"]) >= (gpus / inference.num_gpus) * inference.num_cpus


def test_kuberay_pods_mount_shm_larger_than_the_object_store(raycluster: dict[str, Any]) -> None:
    spec = raycluster["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams values are strings"
        container = _ray_container(group)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "/dev/shm" in mounts
        volume = next(v for v in _pod(group)["volumes"] if v["name"] == mounts["/dev/shm"])
        assert volume["emptyDir"]["medium"] == "Memory"
        shm = quantity(volume["emptyDir"]["sizeLimit"])
        store = quantity(group["rayStartParams"]["object-store-memory"])
        assert store < shm, "Ray's object store must fit in /dev/shm"
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert quantity(limits["memory"]) > shm, "the memory-backed /dev/shm counts against the memory limit"
        for key in ("cpu", "memory"):
            assert quantity(requests[key]) == quantity(limits[key])


def test_kuberay_volumes_exist_and_match_the_pipeline_paths(kuberay_docs: list[dict[str, Any]], raycluster: dict[str, Any],
                                                            cluster_config: PipelineConfig) -> None:
    claims = {d["metadata"]["name"] for d in kuberay_docs if d.get("kind") == "PersistentVolumeClaim"}
    spec = raycluster["spec"]
    torch_home = dockerfile_value("TORCH_HOME", "ENV")
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        pod = _pod(group)
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        paths = [m["mountPath"] for m in _ray_container(group)["volumeMounts"]]
        # Sinks run on any node: every pod sees the output folders.
        for out in (cluster_config.sinks.video.dir, cluster_config.sinks.jsonl.dir):
            assert any(Path(out).is_relative_to(p) for p in paths), f"{out} is not mounted in {group.get('groupName', 'head')}"
    for group in spec["workerGroupSpecs"]:
        paths = [m["mountPath"] for m in _ray_container(group)["volumeMounts"]]
        assert any(Path(torch_home).is_relative_to(p) for p in paths), "GPU workers must mount TORCH_HOME"


def test_kuberay_versions_match_constraints(raycluster: dict[str, Any]) -> None:
    spec = raycluster["spec"]
    assert spec["rayVersion"] == pinned("ray")
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        check_image_tag(_ray_container(group)["image"], "kuberay.yaml")


# ---- cluster.yaml (Ray cluster launcher) ---------------------------------------------------------
def test_launcher_config_passes_rays_own_checks(launcher: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    assert launcher["provider"]["type"] == "local"
    assert launcher["provider"]["head_ip"] and launcher["provider"]["worker_ips"]
    assert "available_node_types" not in launcher, "the local provider refuses available_node_types"
    prepared = prepare_config(launcher)  # what `ray up` does first
    validate_config(prepared)
    node_type = prepared["available_node_types"][prepared["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == len(launcher["provider"]["worker_ips"])


def test_launcher_head_is_cpu_and_workers_advertise_gpus(launcher: dict[str, Any]) -> None:
    head = " ".join(launcher["head_start_ray_commands"])
    worker = " ".join(launcher["worker_start_ray_commands"])
    assert "ray start --head" in head and cli_flag(head, "--num-gpus") == "0"
    assert cli_flag(head, "--dashboard-host") == "0.0.0.0" and cli_flag(head, "--ray-client-server-port") == "10001"
    assert "--address=$RAY_HEAD_IP:6379" in worker and cli_flag(worker, "--num-gpus") not in (None, "0")
    assert any(opt.startswith("--gpus") for opt in launcher["docker"]["worker_run_options"])
    assert not any(opt.startswith("--gpus") for opt in launcher["docker"].get("head_run_options", []))


def test_launcher_shm_holds_the_object_store(launcher: dict[str, Any]) -> None:
    docker = launcher["docker"]
    for role, commands in (("head", launcher["head_start_ray_commands"]), ("worker", launcher["worker_start_ray_commands"])):
        options = docker["run_options"] + docker[f"{role}_run_options"]
        shm = next(cli_flag(o, "--shm-size") for o in options if o.startswith("--shm-size"))
        store = cli_flag(" ".join(commands), "--object-store-memory")
        assert store is not None and quantity(store) < quantity(shm), f"{role}: --object-store-memory must fit in --shm-size"


def test_launcher_mounts_outputs_and_models(launcher: dict[str, Any], cluster_config: PipelineConfig) -> None:
    targets = [o.split()[1].split(":")[1] for o in launcher["docker"]["run_options"] if o.startswith("-v ")]
    for out in (cluster_config.sinks.video.dir, cluster_config.sinks.jsonl.dir):
        assert any(Path(out).is_relative_to(t) for t in targets)
    assert any(Path(dockerfile_value("TORCH_HOME", "ENV")).is_relative_to(t) for t in targets)
    check_image_tag(launcher["docker"]["image"], "cluster.yaml")


# ---- Dockerfile ---------------------------------------------------------------------------------------
def test_dockerfile_installs_with_the_constraints() -> None:
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    assert re.search(r"pip install (?:[^&|;]*\s)?-c deploy/constraints\.txt \.(?:\s|$)", runs)
    assert not re.search(r"pip install(?![^&|;]*-c deploy/constraints\.txt)[^&|;]*", runs), \
        "every pip install must use -c deploy/constraints.txt"
    assert "redis-server" not in runs and not re.search(r"apt-get install[^&|;]*\bffmpeg\b", runs)


def test_dockerfile_ray_and_python_versions_match() -> None:
    assert dockerfile_value("RAY_VERSION", "ARG") == pinned("ray")
    assert image_python() in ("3.11", "3.12")


def test_dockerfile_runs_as_a_non_root_user_with_home() -> None:
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert dockerfile_value("HOME", "ENV").startswith("/home/")  # the launcher reads HOME from the image
    assert not any(word == "ENTRYPOINT" for word, _ in dockerfile_instructions())


def test_dockerfile_copies_only_what_the_build_context_keeps() -> None:
    ignore = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from" not in args:
            sources = shlex.split(args)[:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing in the repo"
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by deploy/Dockerfile.dockerignore"
