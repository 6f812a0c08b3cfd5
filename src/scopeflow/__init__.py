"""scopeflow: raw microscopy data to quantitative maps, as one Snakemake DAG."""

__version__ = "0.1.0"
