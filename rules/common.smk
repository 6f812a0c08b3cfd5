# Helpers shared by every technique's rules: config validation, result paths, stage parameters.
# Named functions only (no lambdas), so rules read as declarations.
import json

from snakemake.utils import validate


def validate_sections():
    """Validate each technique section against workflow/schemas/<technique>.schema.yaml."""
    for technique in config:
        validate(config[technique], f"../workflow/schemas/{technique}.schema.yaml")


validate_sections()


def samples(technique, source=None):
    """Sample names of a technique, optionally only those with the given source stage."""
    section = config.get(technique, {}).get("samples", {})
    return [s for s, cfg in section.items() if source is None or source in cfg]


def sample_pattern(technique, source=None):
    """Regex for the {sample} wildcard matching exactly these samples (no match if none)."""
    names = samples(technique, source)
    return "|".join(names) if names else "(?!x)x"


def result(technique, name):
    """Path pattern of a per-sample result, e.g. results/ltem/{sample}/reconstruct.zarr."""
    return f"results/{technique}/{{sample}}/{name}"


def store(technique, stage):
    return result(technique, f"{stage}.zarr")


def log_file(technique, stage):
    return f"logs/{technique}/{{sample}}/{stage}.log"


def bench_file(technique, stage):
    return f"benchmarks/{technique}/{{sample}}/{stage}.tsv"


def env_file(technique):
    return f"../envs/{technique}.yaml"


def source_store(technique):
    """Input function: the sample's first store (simulate.zarr or ingest.zarr)."""

    def first_store(wildcards):
        cfg = config[technique]["samples"][wildcards.sample]
        stage = "simulate" if "simulate" in cfg else "ingest"
        return store(technique, stage).format(sample=wildcards.sample)

    return first_store


def model_store(technique):
    """Input function: the sample's trained-model store.

    A sample's `model:` key (e.g. committed weights in resources/) wins over its own train stage.
    """

    def sample_model(wildcards):
        cfg = config[technique]["samples"][wildcards.sample]
        if cfg.get("model"):
            return cfg["model"]
        return store(technique, "train").format(sample=wildcards.sample)

    return sample_model


def linked_store(technique, other, stage):
    """Input function: the `stage` store of the `other`-technique sample this sample names.

    A correlative sample names the samples it compares, e.g. `polar4d: stripes`.
    """

    def other_store(wildcards):
        name = config[technique]["samples"][wildcards.sample][other]
        return store(other, stage).format(sample=name)

    return other_store


def stage_params(technique, stage):
    """Params function: the stage's options for this sample as canonical JSON.

    Passing them through `params:` makes Snakemake's params rerun trigger rerun exactly this
    stage (and its dependents) when they are edited.
    """

    def options_json(wildcards):
        cfg = config[technique]["samples"][wildcards.sample].get(stage, {})
        return json.dumps(cfg, sort_keys=True, separators=(",", ":"))

    return options_json


def technique_targets(technique):
    """Final outputs of every sample of a technique: metrics and figures."""
    return [
        path
        for s in samples(technique)
        for path in (
            f"results/{technique}/{s}/metrics.json",
            f"results/{technique}/{s}/figures",
        )
    ]


def all_targets():
    return [t for technique in config for t in technique_targets(technique)]
