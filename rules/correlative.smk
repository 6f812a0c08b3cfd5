# correlative: one specimen (resources/specimens/) simulated by polar4d and fpxm; compare their
# polarization maps on a common grid (issue 7, point 6). compare -> figures.
# A sample names the two samples it compares: `polar4d: <sample>` and `fpxm: <sample>`
# (linked_store in rules/common.smk turns those names into their infer/analyze stores).


rule correlative_compare:
    input:
        pmap=linked_store("correlative", "polar4d", "infer"),
        analysis=linked_store("correlative", "fpxm", "analyze"),
    output:
        store=directory(store("correlative", "compare")),
        metrics=report(
            result("correlative", "metrics.json"),
            caption="../workflow/report/correlative_metrics.rst",
            category="correlative",
            subcategory="{sample}",
        ),
    log:
        log_file("correlative", "compare"),
    benchmark:
        bench_file("correlative", "compare")
    conda:
        env_file("correlative")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        json=stage_params("correlative", "compare"),
    shell:
        "python -m scopeflow correlative compare --in {input.pmap} --in {input.analysis}"
        " --out {output.store} --metrics {output.metrics} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule correlative_figures:
    input:
        store("correlative", "compare"),
    output:
        report(
            directory(result("correlative", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/correlative_figures.rst",
            category="correlative",
            subcategory="{sample}",
        ),
    log:
        log_file("correlative", "figures"),
    benchmark:
        bench_file("correlative", "figures")
    conda:
        env_file("correlative")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        json=stage_params("correlative", "figures"),
    shell:
        "python -m scopeflow correlative figures --in {input} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"
