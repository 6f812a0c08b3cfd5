# tomo4d: 4D-STEM tomography with object tracking (Gholam et al., arXiv:2602.09768):
# a sparse 4D-STEM tilt series -> tracked target -> summed frames -> cell, .hkl and PETS2 project.
# simulate | ingest -> track -> reduce -> index -> export / analyze -> figures


rule tomo4d_simulate:
    output:
        directory(store("tomo4d", "simulate")),
    log:
        log_file("tomo4d", "simulate"),
    benchmark:
        bench_file("tomo4d", "simulate")
    wildcard_constraints:
        sample=sample_pattern("tomo4d", "simulate"),
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "simulate"),
    shell:
        "python -m scopeflow tomo4d simulate --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_ingest:
    output:
        directory(store("tomo4d", "ingest")),
    log:
        log_file("tomo4d", "ingest"),
    benchmark:
        bench_file("tomo4d", "ingest")
    wildcard_constraints:
        sample=sample_pattern("tomo4d", "ingest"),
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        json=stage_params("tomo4d", "ingest"),
    shell:
        "python -m scopeflow tomo4d ingest --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_track:
    input:
        series=source_store("tomo4d"),
    output:
        directory(store("tomo4d", "track")),
    log:
        log_file("tomo4d", "track"),
    benchmark:
        bench_file("tomo4d", "track")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "track"),
    shell:
        "python -m scopeflow tomo4d track --in {input.series} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_reduce:
    input:
        series=source_store("tomo4d"),
        track=store("tomo4d", "track"),
    output:
        directory(store("tomo4d", "reduce")),
    log:
        log_file("tomo4d", "reduce"),
    benchmark:
        bench_file("tomo4d", "reduce")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "reduce"),
    shell:
        "python -m scopeflow tomo4d reduce --in {input.series} --in {input.track} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_index:
    input:
        frames=store("tomo4d", "reduce"),
    output:
        directory(store("tomo4d", "index")),
    log:
        log_file("tomo4d", "index"),
    benchmark:
        bench_file("tomo4d", "index")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "index"),
    shell:
        "python -m scopeflow tomo4d index --in {input.frames} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_export:
    input:
        frames=store("tomo4d", "reduce"),
        index=store("tomo4d", "index"),
    output:
        directory(result("tomo4d", "export")),
    log:
        log_file("tomo4d", "export"),
    benchmark:
        bench_file("tomo4d", "export")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "export"),
    shell:
        "python -m scopeflow tomo4d export --in {input.frames} --in {input.index} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_analyze:
    input:
        series=source_store("tomo4d"),
        track=store("tomo4d", "track"),
        index=store("tomo4d", "index"),
    output:
        store=directory(store("tomo4d", "analyze")),
        metrics=report(
            result("tomo4d", "metrics.json"),
            caption="../workflow/report/tomo4d_metrics.rst",
            category="tomo4d",
            subcategory="{sample}",
        ),
    log:
        log_file("tomo4d", "analyze"),
    benchmark:
        bench_file("tomo4d", "analyze")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "analyze"),
    shell:
        "python -m scopeflow tomo4d analyze --in {input.series} --in {input.track} --in {input.index} --out {output.store} --metrics {output.metrics}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule tomo4d_figures:
    input:
        track=store("tomo4d", "track"),
        frames=store("tomo4d", "reduce"),
        index=store("tomo4d", "index"),
        export=result("tomo4d", "export"),
    output:
        report(
            directory(result("tomo4d", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/tomo4d_figures.rst",
            category="tomo4d",
            subcategory="{sample}",
        ),
    log:
        log_file("tomo4d", "figures"),
    benchmark:
        bench_file("tomo4d", "figures")
    conda:
        env_file("tomo4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("tomo4d", "figures"),
    shell:
        "python -m scopeflow tomo4d figures --in {input.track} --in {input.frames} --in {input.index} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"
