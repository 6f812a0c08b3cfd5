# defects: atoms and defects in STEM movies of Mo-doped WS2 (Maksov et al. 2019,
# doi:10.1038/s41524-019-0152-9): FCN detection (lattice-fit baseline), GMM classes, tracking,
# kinetics. simulate|ingest -> train -> detect -> classify -> track -> kinetics -> analyze -> figures


rule defects_simulate:
    output:
        directory(store("defects", "simulate")),
    log:
        log_file("defects", "simulate"),
    benchmark:
        bench_file("defects", "simulate")
    wildcard_constraints:
        sample=sample_pattern("defects", "simulate"),
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        json=stage_params("defects", "simulate"),
    shell:
        "python -m scopeflow defects simulate --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule defects_ingest:
    output:
        directory(store("defects", "ingest")),
    log:
        log_file("defects", "ingest"),
    benchmark:
        bench_file("defects", "ingest")
    wildcard_constraints:
        sample=sample_pattern("defects", "ingest"),
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        json=stage_params("defects", "ingest"),
    shell:
        "python -m scopeflow defects ingest --out {output} --params {params.json:q}"
        " --threads {threads} > {log} 2>&1"


rule defects_train:
    input:
        movie=source_store("defects"),
    output:
        directory(store("defects", "train")),
    log:
        log_file("defects", "train"),
    benchmark:
        bench_file("defects", "train")
    # the longest job, and six serial stages wait for it: started first, they overlap the
    # other techniques' jobs instead of running alone at the end of the DAG
    priority: 10
    conda:
        env_file("defects")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        json=stage_params("defects", "train"),
    shell:
        "python -m scopeflow defects train --in {input.movie}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_detect:
    input:
        movie=source_store("defects"),
        model=store("defects", "train"),
    output:
        directory(store("defects", "detect")),
    log:
        log_file("defects", "detect"),
    benchmark:
        bench_file("defects", "detect")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        json=stage_params("defects", "detect"),
    shell:
        "python -m scopeflow defects detect --in {input.movie} --in {input.model}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_classify:
    input:
        detections=store("defects", "detect"),
        movie=source_store("defects"),
    output:
        directory(store("defects", "classify")),
    log:
        log_file("defects", "classify"),
    benchmark:
        bench_file("defects", "classify")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        json=stage_params("defects", "classify"),
    shell:
        "python -m scopeflow defects classify --in {input.detections} --in {input.movie}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_track:
    input:
        classes=store("defects", "classify"),
    output:
        directory(store("defects", "track")),
    log:
        log_file("defects", "track"),
    benchmark:
        bench_file("defects", "track")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("defects", "track"),
    shell:
        "python -m scopeflow defects track --in {input.classes}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_kinetics:
    input:
        tracks=store("defects", "track"),
    output:
        directory(store("defects", "kinetics")),
    log:
        log_file("defects", "kinetics"),
    benchmark:
        bench_file("defects", "kinetics")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        json=stage_params("defects", "kinetics"),
    shell:
        "python -m scopeflow defects kinetics --in {input.tracks}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_analyze:
    input:
        movie=source_store("defects"),
        detections=store("defects", "detect"),
        classes=store("defects", "classify"),
        tracks=store("defects", "track"),
        kinetics=store("defects", "kinetics"),
    output:
        store=directory(store("defects", "analyze")),
        metrics=report(
            result("defects", "metrics.json"),
            caption="../workflow/report/defects_metrics.rst",
            category="defects",
            subcategory="{sample}",
        ),
    log:
        log_file("defects", "analyze"),
    benchmark:
        bench_file("defects", "analyze")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        json=stage_params("defects", "analyze"),
    shell:
        "python -m scopeflow defects analyze --in {input.movie} --in {input.detections} --in {input.classes} --in {input.tracks} --in {input.kinetics}"
        " --out {output.store} --metrics {output.metrics} --params {params.json:q} --threads {threads} > {log} 2>&1"


rule defects_figures:
    input:
        movie=source_store("defects"),
        detections=store("defects", "detect"),
        tracks=store("defects", "track"),
        kinetics=store("defects", "kinetics"),
    output:
        report(
            directory(result("defects", "figures")),
            patterns=["{name}.png"],
            caption="../workflow/report/defects_figures.rst",
            category="defects",
            subcategory="{sample}",
        ),
    log:
        log_file("defects", "figures"),
    benchmark:
        bench_file("defects", "figures")
    conda:
        env_file("defects")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        json=stage_params("defects", "figures"),
    shell:
        "python -m scopeflow defects figures --in {input.movie} --in {input.detections} --in {input.tracks} --in {input.kinetics}"
        " --out {output} --params {params.json:q} --threads {threads} > {log} 2>&1"
