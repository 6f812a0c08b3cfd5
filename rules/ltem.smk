# ltem: Lorentz-TEM phase retrieval by automatic differentiation (Zhou et al. 2021,
# doi:10.1038/s41524-021-00600-x), TIE baseline. simulate|ingest -> reconstruct -> analyze -> figures


rule ltem_simulate:
    output:
        directory(store("ltem", "simulate")),
    log:
        log_file("ltem", "simulate"),
    benchmark:
        bench_file("ltem", "simulate")
    wildcard_constraints:
        sample=sample_pattern("ltem", "simulate"),
    conda:
        env_file("ltem")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("ltem", "simulate"),
    shell:
        "python -m scopeflow ltem simulate --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule ltem_ingest:
    output:
        directory(store("ltem", "ingest")),
    log:
        log_file("ltem", "ingest"),
    benchmark:
        bench_file("ltem", "ingest")
    wildcard_constraints:
        sample=sample_pattern("ltem", "ingest"),
    conda:
        env_file("ltem")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("ltem", "ingest"),
    shell:
        "python -m scopeflow ltem ingest --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule ltem_reconstruct:
    input:
        source_store("ltem"),
    output:
        directory(store("ltem", "reconstruct")),
    log:
        log_file("ltem", "reconstruct"),
    benchmark:
        bench_file("ltem", "reconstruct")
    conda:
        env_file("ltem")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        json=stage_params("ltem", "reconstruct"),
    shell:
        "python -m scopeflow ltem reconstruct --in {input} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule ltem_analyze:
    input:
        store("ltem", "reconstruct"),
    output:
        store=directory(store("ltem", "analyze")),
        metrics=report(
            result("ltem", "metrics.json"),
            caption="../workflow/report/ltem_metrics.rst",
            category="ltem",
            subcategory="{sample}",
        ),
    log:
        log_file("ltem", "analyze"),
    benchmark:
        bench_file("ltem", "analyze")
    conda:
        env_file("ltem")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("ltem", "analyze"),
    shell:
        "python -m scopeflow ltem analyze --in {input}"
        " --out {output.store} --metrics {output.metrics} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule ltem_figures:
    input:
        store("ltem", "analyze"),
    output:
        report(
            directory(result("ltem", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/ltem_figures.rst",
            category="ltem",
            subcategory="{sample}",
        ),
    log:
        log_file("ltem", "figures"),
    benchmark:
        bench_file("ltem", "figures")
    conda:
        env_file("ltem")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("ltem", "figures"),
    shell:
        "python -m scopeflow ltem figures --in {input} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"
