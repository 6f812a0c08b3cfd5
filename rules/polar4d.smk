# polar4d: 3D polarization (incl. the along-beam component) from 4D-STEM by deep learning
# (Byun et al., arXiv:2506.06598). trainset -> train ; simulate|ingest -> infer -> analyze -> figures.
# A sample may set `model: <path to a polar4d.model store>` (e.g. the committed
# resources/polar4d/model_static.zarr) to skip trainset/train.


rule polar4d_trainset:
    output:
        directory(store("polar4d", "trainset")),
    log:
        log_file("polar4d", "trainset"),
    benchmark:
        bench_file("polar4d", "trainset")
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        json=stage_params("polar4d", "trainset"),
    shell:
        "python -m scopeflow polar4d trainset --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule polar4d_train:
    input:
        store("polar4d", "trainset"),
    output:
        directory(store("polar4d", "train")),
    log:
        log_file("polar4d", "train"),
    benchmark:
        bench_file("polar4d", "train")
    conda:
        env_file("polar4d")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        json=stage_params("polar4d", "train"),
    shell:
        "python -m scopeflow polar4d train --in {input} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule polar4d_simulate:
    output:
        directory(store("polar4d", "simulate")),
    log:
        log_file("polar4d", "simulate"),
    benchmark:
        bench_file("polar4d", "simulate")
    wildcard_constraints:
        sample=sample_pattern("polar4d", "simulate"),
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        json=stage_params("polar4d", "simulate"),
    shell:
        "python -m scopeflow polar4d simulate --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule polar4d_ingest:
    output:
        directory(store("polar4d", "ingest")),
    log:
        log_file("polar4d", "ingest"),
    benchmark:
        bench_file("polar4d", "ingest")
    wildcard_constraints:
        sample=sample_pattern("polar4d", "ingest"),
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        json=stage_params("polar4d", "ingest"),
    shell:
        "python -m scopeflow polar4d ingest --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule polar4d_infer:
    input:
        scan=source_store("polar4d"),
        model=model_store("polar4d"),
    output:
        directory(store("polar4d", "infer")),
    log:
        log_file("polar4d", "infer"),
    benchmark:
        bench_file("polar4d", "infer")
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        json=stage_params("polar4d", "infer"),
    shell:
        "python -m scopeflow polar4d infer --in {input.scan} --in {input.model} --out {output}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule polar4d_analyze:
    input:
        scan=source_store("polar4d"),
        pmap=store("polar4d", "infer"),
        model=model_store("polar4d"),
    output:
        store=directory(store("polar4d", "analyze")),
        metrics=report(
            result("polar4d", "metrics.json"),
            caption="../workflow/report/polar4d_metrics.rst",
            category="polar4d",
            subcategory="{sample}",
        ),
    log:
        log_file("polar4d", "analyze"),
    benchmark:
        bench_file("polar4d", "analyze")
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("polar4d", "analyze"),
    shell:
        "python -m scopeflow polar4d analyze --in {input.scan} --in {input.pmap}"
        " --in {input.model} --out {output.store} --metrics {output.metrics}"
        " --params {params.json:q} --threads {threads} > {log} 2>&1"


rule polar4d_figures:
    input:
        pmap=store("polar4d", "infer"),
        analysis=store("polar4d", "analyze"),
        model=model_store("polar4d"),
    output:
        report(
            directory(result("polar4d", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/polar4d_figures.rst",
            category="polar4d",
            subcategory="{sample}",
        ),
    log:
        log_file("polar4d", "figures"),
    benchmark:
        bench_file("polar4d", "figures")
    conda:
        env_file("polar4d")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("polar4d", "figures"),
    shell:
        "python -m scopeflow polar4d figures --in {input.pmap} --in {input.analysis}"
        " --in {input.model} --out {output} --params {params.json:q} --threads {threads}"
        " > {log} 2>&1"
