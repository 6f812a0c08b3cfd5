# fpxm: Fourier-ptychographic dark-field X-ray microscopy (Carlsen et al. 2022,
# doi:10.1364/OE.447657): Bragg field and Zernike pupil -> strain -> polarization (LGD).
# simulate|ingest -> reconstruct -> analyze -> figures


rule fpxm_simulate:
    output:
        directory(store("fpxm", "simulate")),
    log:
        log_file("fpxm", "simulate"),
    benchmark:
        bench_file("fpxm", "simulate")
    wildcard_constraints:
        sample=sample_pattern("fpxm", "simulate"),
    conda:
        env_file("fpxm")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("fpxm", "simulate"),
    shell:
        "python -m scopeflow fpxm simulate --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule fpxm_ingest:
    output:
        directory(store("fpxm", "ingest")),
    log:
        log_file("fpxm", "ingest"),
    benchmark:
        bench_file("fpxm", "ingest")
    wildcard_constraints:
        sample=sample_pattern("fpxm", "ingest"),
    conda:
        env_file("fpxm")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("fpxm", "ingest"),
    shell:
        "python -m scopeflow fpxm ingest --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule fpxm_reconstruct:
    input:
        source_store("fpxm"),
    output:
        directory(store("fpxm", "reconstruct")),
    log:
        log_file("fpxm", "reconstruct"),
    benchmark:
        bench_file("fpxm", "reconstruct")
    conda:
        env_file("fpxm")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        json=stage_params("fpxm", "reconstruct"),
    shell:
        "python -m scopeflow fpxm reconstruct --in {input} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule fpxm_analyze:
    input:
        stack=source_store("fpxm"),
        field=store("fpxm", "reconstruct"),
    output:
        store=directory(store("fpxm", "analyze")),
        metrics=report(
            result("fpxm", "metrics.json"),
            caption="../workflow/report/fpxm_metrics.rst",
            category="fpxm",
            subcategory="{sample}",
        ),
    log:
        log_file("fpxm", "analyze"),
    benchmark:
        bench_file("fpxm", "analyze")
    conda:
        env_file("fpxm")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("fpxm", "analyze"),
    shell:
        "python -m scopeflow fpxm analyze --in {input.stack} --in {input.field}"
        " --out {output.store} --metrics {output.metrics} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule fpxm_figures:
    input:
        field=store("fpxm", "reconstruct"),
        analysis=store("fpxm", "analyze"),
    output:
        report(
            directory(result("fpxm", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/fpxm_figures.rst",
            category="fpxm",
            subcategory="{sample}",
        ),
    log:
        log_file("fpxm", "figures"),
    benchmark:
        bench_file("fpxm", "figures")
    conda:
        env_file("fpxm")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("fpxm", "figures"),
    shell:
        "python -m scopeflow fpxm figures --in {input.field} --in {input.analysis}"
        " --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"
