"""What a planned study will cost before it runs: tokens, FLOPs and GPU-hours per run and arm.

`quickstudy study plan CONFIG --estimate [--device NAME|calibrate] [--gpus N]` reads the
plan (it runs nothing) and, per run:

- tokens from the actual prompts: each task's prompts are built with the run's encoding and
  budget and counted with the start model's tokenizer (the mean over up to
  `SAMPLE_PER_TASK` instances of the task's train pool, or of its test instances, times the
  instances the run uses). When the tokenizer cannot be loaded (a hub model, offline), a
  prompt is taken as UTF-8 bytes / BYTES_PER_TOKEN, and the output says so;
- training FLOPs = 6 x parameters x (source + target tokens) x epochs (4 x for a LoRA run,
  which computes no weight gradients of the base; for an encoder-decoder model the 6 x is an
  upper bound: each token passes through about half the parameters);
- generation FLOPs (evaluate runs) = 2 x parameters x (prompt + generated tokens), the
  generated length being the references' mean token length, capped at max_new_tokens;
- seconds = FLOPs / sustained FLOP/s of the device profile (peak x an assumed MFU, stated in
  the output) or measured by `calibrate` (a few real training steps and a generation batch
  of the start model on this machine's device).

Compute only: model loading, saving and scoring are not counted. The wall time on N GPUs is
max(total / N, the longest chain of dependent runs).

The estimate is recorded in the study directory (`ESTIMATE_FILE`, `record_estimate`), where the
report reads it (`recorded_estimate`) and shows it beside the hours the runs took.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.data.sampling import parse_size
from quickstudy.data.splits import SplitConfig, task_split
from quickstudy.errors import ConfigError, ModelError, StudyError, first_line
from quickstudy.files import write_json_atomic
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.encoding import PromptBuilder, encoding_from_options
from quickstudy.study.config import PrefinetunedRole, StudyConfig, model_role
from quickstudy.study.devices import CALIBRATE, DEVICE_PROFILES, DeviceKind, DeviceProfile
from quickstudy.study.layout import ESTIMATE_FILE, RunKind, RunSpec
from quickstudy.study.plan import StudyPlan, arm_label

SAMPLE_PER_TASK = 200  # instances per task whose prompts are built and counted
BYTES_PER_TOKEN = 4.0  # when the tokenizer is not at hand: about 4 bytes per SentencePiece token of English


@dataclass(frozen=True)
class ModelSize:
    """A start model's parameter count and how it was found."""

    parameters: int
    source: str


@dataclass(frozen=True)
class RunEstimate:
    run_id: str
    kind: str
    arm: str
    depends_on: tuple[str, ...]
    parameters: int
    train_tokens: float  # source + target tokens of one epoch
    epochs: float
    prompt_tokens: float  # evaluate runs: prompt tokens generated from
    generated_tokens: float
    train_flops: float
    generate_flops: float
    seconds: float


@dataclass(frozen=True)
class StudyEstimate:
    runs: list[RunEstimate]
    device: DeviceProfile
    sizes: dict[str, ModelSize]  # model role -> size
    token_notes: list[str] = field(default_factory=list)

    def arm_hours(self) -> dict[str, float]:
        hours: dict[str, float] = {}
        for run in self.runs:
            hours[run.arm] = hours.get(run.arm, 0.0) + run.seconds / 3600
        return hours

    def total_hours(self) -> float:
        return sum(run.seconds for run in self.runs) / 3600

    def critical_path_hours(self) -> float:
        """The longest chain of runs that wait on each other."""
        by_id = {run.run_id: run for run in self.runs}
        finish: dict[str, float] = {}

        def finished(run_id: str) -> float:
            if run_id not in finish:
                run = by_id[run_id]
                finish[run_id] = run.seconds + max((finished(d) for d in run.depends_on if d in by_id), default=0.0)
            return finish[run_id]

        return max((finished(run_id) for run_id in by_id), default=0.0) / 3600

    def wall_hours(self, gpus: int) -> float:
        return max(self.total_hours() / gpus, self.critical_path_hours())

    def to_json(self, gpus: int) -> dict[str, Any]:
        return {
            "device": {"name": self.device.name, "assumption": self.device.assumption, "kind": self.device.kind},
            "models": {role: {"parameters": s.parameters, "source": s.source} for role, s in self.sizes.items()},
            "tokens": self.token_notes,
            "gpu_hours_by_arm": self.arm_hours(),
            "gpu_hours_total": self.total_hours(),
            "gpus": gpus,
            "wall_hours": self.wall_hours(gpus),
            "runs": [vars(run) for run in self.runs],
        }


@dataclass(frozen=True)
class RecordedEstimate:
    """What the report needs of a recorded estimate: the device, when, and each run's seconds."""

    device: str
    assumption: str
    kind: DeviceKind  # the runs it can be compared with: on a CPU or on GPUs
    recorded_at: datetime | None  # None: recorded by an older version
    run_seconds: dict[str, float]  # run id -> seconds of compute


def record_estimate(study_dir: Path, estimate: StudyEstimate, gpus: int) -> Path:
    """Write the estimate into the study directory (atomically), with the time; the path written."""
    path = Path(study_dir) / ESTIMATE_FILE
    write_json_atomic(path, estimate.to_json(gpus) | {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds")})
    return path


def recorded_estimate(study_dir: Path) -> RecordedEstimate | None:
    """The estimate recorded in the study directory, or None when there is none."""
    import json

    path = Path(study_dir) / ESTIMATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        device = data["device"]
        seconds = {str(run["run_id"]): float(run["seconds"]) for run in data["runs"]}
        bad = next((run_id for run_id, value in seconds.items() if not 0 <= value < math.inf), None)
        if bad is not None:
            raise ValueError(f"run {bad}: seconds {seconds[bad]} is not a finite, non-negative number")
        kind = device.get("kind", "cpu" if "cpu" in str(device["name"]) else "gpu")
        if kind not in ("cpu", "gpu"):
            raise ValueError(f"device kind {kind!r} is neither 'cpu' nor 'gpu'")
        recorded_at = datetime.fromisoformat(data["recorded_at"]) if data.get("recorded_at") else None
        if recorded_at is not None and recorded_at.tzinfo is None:
            recorded_at = recorded_at.replace(tzinfo=UTC)
        return RecordedEstimate(str(device["name"]), str(device["assumption"]), kind, recorded_at, seconds)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StudyError(
            f"{path}: not an estimate written by `study plan --estimate` ({first_line(error, with_type=True)}); "
            "delete it or estimate again"
        ) from None


# --- parameters --------------------------------------------------------------------------

_T5_SIZES = {"small": 60_506_624, "base": 222_903_552, "large": 737_668_096, "xl": 2_849_757_184, "xxl": 11_307_321_344}


def model_size(spec: ModelSpec) -> ModelSize:
    """Parameters of the model a spec names: counted from its config (no weights loaded),
    else read from its name (`3b`, `770m`, T5's `xl`...), else a ConfigError."""
    import torch

    from quickstudy.models.tiny import is_tiny_name

    if is_tiny_name(spec.name_or_path):
        from quickstudy.models.loading import load_model

        model = load_model(spec).model
        return ModelSize(sum(p.numel() for p in model.parameters()), "built from its config")
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        if not on_this_machine(spec.name_or_path):
            raise OSError("not on this machine")
        config = AutoConfig.from_pretrained(
            spec.name_or_path, local_files_only=True, trust_remote_code=spec.trust_remote_code
        )
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        with torch.device("meta"):
            model = auto.from_config(config, trust_remote_code=spec.trust_remote_code)
        return ModelSize(sum(p.numel() for p in model.parameters()), "counted from its config")
    except (OSError, ValueError) as error:
        guessed = parameters_from_name(spec.name_or_path)
        if guessed is None:
            raise ConfigError(
                f"model {spec.name_or_path!r}: cannot count its parameters ({first_line(error)})"
            ) from None
        return ModelSize(guessed, "read from its name: its config is not on this machine")


def parameters_from_name(name: str) -> int | None:
    """`3b` -> 3e9, `770m` -> 7.7e8; T5's size words (`t5-xl-lm-adapt`) -> T5's counts."""
    lowered = name.lower().rsplit("/", 1)[-1]
    match = re.search(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bm])(?![a-z])", lowered)
    if match:
        return int(float(match.group(1)) * (1e9 if match.group(2) == "b" else 1e6))
    for word in sorted(_T5_SIZES, key=len, reverse=True):
        if re.search(rf"(?<![a-z]){word}(?![a-z])", lowered) and "t5" in lowered:
            return _T5_SIZES[word]
    return None


# --- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenMeans:
    """Mean tokens per instance of a task's instances under one encoding and budget."""

    source: float
    target: float


class TokenCounts:
    """Per-task token means, counted once per (role, task, encoding, lengths, instances)."""

    def __init__(self, config: StudyConfig):
        self.config = config
        self.collection = Collection(config.collection)
        self.split = SplitConfig(**config.splits.model_dump())
        self._tokenizers: dict[str, Any] = {}
        self._means: dict[tuple, TokenMeans] = {}
        self.notes: list[str] = []

    def tokenizer(self, role: str) -> Any:
        """The role's tokenizer, or None when it is not on this machine (then bytes / BYTES_PER_TOKEN)."""
        spec = role_spec(self.config, role)
        name = spec.tokenizer or spec.name_or_path
        if name not in self._tokenizers:
            self._tokenizers[name] = None
            try:
                self._tokenizers[name] = local_tokenizer(spec)
            except ModelError as error:
                reason = str(error)
            else:
                reason = "not on this machine (nothing is downloaded for an estimate)"
            if self._tokenizers[name] is None:
                self.notes.append(f"tokenizer {name!r}: {reason}; prompts counted as UTF-8 bytes / {BYTES_PER_TOKEN:g}")
        return self._tokenizers[name]

    def task(self, name: str) -> Task:
        return self.collection.task(name)

    def train_pool(self, name: str) -> list[Instance]:
        return task_split(self.task(name), self.split).train

    def means(self, role: str, run: RunSpec, task: str, instances: str) -> TokenMeans:
        """Mean prompt and target tokens of `instances` ("train", "test" or "all") of `task`."""
        training = run.training
        lengths = (training.get("max_source_length", 1024), training.get("max_target_length", 128))
        key = (role, task, tuple(sorted(run.encoding_options.items())), lengths, instances)
        if key not in self._means:
            chosen = {
                "train": lambda: self.train_pool(task),
                "test": lambda: task_split(self.task(task), self.split).test,
                "all": lambda: self.task(task).instances,
            }[instances]()[:SAMPLE_PER_TASK]
            encoding = encoding_from_options(run.encoding_options)
            self._means[key] = token_means(self.task(task), chosen, encoding, self.tokenizer(role), *lengths)
        return self._means[key]


def token_means(
    task: Task, instances: list[Instance], encoding: Any, tokenizer: Any, max_source: int, max_target: int
) -> TokenMeans:
    """Mean tokens of the instances' prompts (within the budget) and first references."""
    if not instances:
        return TokenMeans(0.0, 0.0)
    count: Callable[[str], float]
    if tokenizer is None:
        builder = PromptBuilder(task, encoding)

        def count(text: str) -> float:
            return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN) + 1

    else:
        builder = PromptBuilder(task, encoding, tokenizer, max_source)

        def count(text: str) -> float:
            return len(tokenizer(text)["input_ids"])

    sources = [min(count(builder.prompt(i.input)), max_source) for i in instances]
    targets = [min(count(i.references[0]), max_target) for i in instances]
    return TokenMeans(sum(sources) / len(sources), sum(targets) / len(targets))


def on_this_machine(name: str) -> bool:
    """Whether a model or tokenizer name is a local folder or in the Hugging Face cache (no network)."""
    if Path(name).is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str) or isinstance(
            try_to_load_from_cache(name, "tokenizer_config.json"), str
        )
    except ValueError:  # not a valid repo id
        return False


def local_tokenizer(spec: ModelSpec) -> Any:
    """The spec's tokenizer when it is on this machine, else None; never downloads."""
    from quickstudy.models.loading import load_tokenizer
    from quickstudy.models.tiny import is_tiny_name

    name = spec.tokenizer or spec.name_or_path
    if is_tiny_name(spec.name_or_path) or name == "byte":
        return load_tokenizer(spec)
    if not on_this_machine(name):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot be loaded ({first_line(error)})") from None


def role_spec(config: StudyConfig, role: str) -> ModelSpec:
    """The model spec a role's weights come from (a pre-finetuned role: the one it starts from)."""
    built = model_role(config, role)
    if isinstance(built, PrefinetunedRole):
        return ModelSpec.model_validate(config.models[built.prefinetune.from_role])
    return ModelSpec.model_validate(built)


# --- the estimate -----------------------------------------------------------------------


def estimate_study(
    config: StudyConfig, plan: StudyPlan, device: str, on_run: Callable[[RunSpec], None] | None = None
) -> StudyEstimate:
    """Tokens, FLOPs and seconds of every planned run on `device` (a profile name or `calibrate`)."""
    counts = TokenCounts(config)
    roles = sorted({run.start_role for run in plan.runs if run.start_role})
    sizes = {role: model_size(role_spec(config, role)) for role in roles}
    runs = []
    for run in plan.runs:
        runs.append(run_tokens(run, counts, sizes[run.start_role or roles[0]].parameters))
        if on_run is not None:
            on_run(run)
    profile = DEVICE_PROFILES[device] if device != CALIBRATE else calibrated_profile(config, runs, roles[0])
    estimates = [priced(run, profile) for run in runs]
    return StudyEstimate(estimates, profile, sizes, counts.notes)


def run_tokens(run: RunSpec, counts: TokenCounts, parameters: int) -> RunEstimate:
    """A run's tokens and FLOPs (seconds filled in by `priced`)."""
    role = run.start_role or ""
    training = run.training
    train_tokens = prompt_tokens = generated = 0.0
    epochs = float(training.get("num_epochs", 1.0))
    if run.kind == RunKind.EVALUATE:
        max_new = (run.generation or {}).get("max_new_tokens", 128)
        for task in run.tasks:
            means = counts.means(role, run, task, "test")
            n = len(task_split(counts.task(task), counts.split).test)
            prompt_tokens += n * means.source
            generated += n * min(means.target, max_new)
        epochs = 0.0
    else:
        examples = 0
        for task in run.tasks:
            if run.kind == RunKind.PREFINETUNE:
                n = min(run.per_task or int(run.size or 0), len(counts.task(task).instances))
                means = counts.means(role, run, task, "all")
            else:
                n = parse_size(run.size or "all").count_for(len(counts.train_pool(task)))
                means = counts.means(role, run, task, "train")
            train_tokens += n * (means.source + means.target)
            examples += n
        if training.get("max_steps") and examples:
            per_step = training.get("batch_size", 8) * training.get("gradient_accumulation_steps", 1)
            epochs = training["max_steps"] * per_step / examples
    factor = 4 if run.lora else 6
    return RunEstimate(
        run_id=run.id,
        kind=str(run.kind),
        arm=arm_label(run),
        depends_on=run.depends_on,
        parameters=parameters,
        train_tokens=train_tokens,
        epochs=epochs,
        prompt_tokens=prompt_tokens,
        generated_tokens=generated,
        train_flops=factor * parameters * train_tokens * epochs,
        generate_flops=2 * parameters * (prompt_tokens + generated),
        seconds=0.0,
    )


def priced(run: RunEstimate, profile: DeviceProfile) -> RunEstimate:
    from dataclasses import replace

    return replace(run, seconds=profile.seconds(run.train_flops, run.generate_flops))


def calibrated_profile(config: StudyConfig, runs: Iterable[RunEstimate], role: str) -> DeviceProfile:
    """FLOP/s measured here: 3 timed training steps and one generation batch of the role's
    model, at the plan's mean source / target lengths."""
    import torch

    from quickstudy.models.loading import load_model

    spec = role_spec(config, role)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_model(spec, device=device)
    model, parameters = loaded.model, sum(p.numel() for p in loaded.model.parameters())
    training = config.training
    source = min(int(training.get("max_source_length", 1024)), 256 if device == "cpu" else 1024)
    target = min(int(training.get("max_target_length", 128)), 32 if device == "cpu" else 128)
    batch = int(training.get("batch_size", 8))
    vocab = model.config.vocab_size
    inputs = torch.randint(3, vocab, (batch, source), device=device)
    labels = torch.randint(3, vocab, (batch, target), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def step() -> None:
        if loaded.is_seq2seq:
            loss = model(input_ids=inputs, labels=labels).loss
        else:
            joined = torch.cat([inputs, labels], dim=1)
            loss = model(input_ids=joined, labels=joined).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def timed(work: Callable[[], Any]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    model.train()
    step()  # warm-up
    train_seconds = min(timed(step) for _ in range(3))
    model.eval()
    new = max(1, min(config.generation.max_new_tokens, 16))
    prompts = torch.randint(3, vocab, (config.generation.batch_size, source), device=device)
    with torch.no_grad():
        generate_seconds = timed(lambda: model.generate(input_ids=prompts, max_new_tokens=new, min_new_tokens=new))
    train_rate = 6 * parameters * batch * (source + target) / train_seconds
    generate_rate = 2 * parameters * prompts.numel() * (source + new) / source / generate_seconds
    return DeviceProfile(
        f"calibrated ({device})",
        train_rate,
        generate_rate,
        f"measured on this machine's {device} with {role}'s model ({parameters:,} parameters), batch {batch}, "
        f"source {source}, target {target}, generation batch {config.generation.batch_size}: "
        f"{train_rate / 1e12:.3g} TFLOP/s training, {generate_rate / 1e12:.3g} TFLOP/s generation",
        "cpu" if device == "cpu" else "gpu",
    )
