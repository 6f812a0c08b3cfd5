# scopeflow: raw microscopy data -> quantitative maps, one DAG for every technique.
# Wiring only: rules live in rules/*.smk, physics in src/scopeflow (called through its CLI).
from snakemake.utils import min_version, validate

min_version("9.5")


# The default run; `--configfile other.yaml` runs that config instead (not merged with this one).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/ltem.smk"
include: "rules/fpxm.smk"
include: "rules/defects.smk"
include: "rules/polar4d.smk"
include: "rules/tomo4d.smk"
include: "rules/correlative.smk"


rule all:
    default_target: True
    input:
        all_targets(),
