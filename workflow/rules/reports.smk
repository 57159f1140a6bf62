# Results contract (summary.csv) and the papermill-executed report notebook.

REPORT_TARGETS = [f"{R}/notebooks/report.html"]


rule summarize:
    input:
        W.study_runs(config),
    output:
        f"{R}/summary.csv",
    log:
        f"{LOGS}/summarize.log",
    resources:
        mem_mb=RES_CPU["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=0,
    shell:
        "g2d summarize -c {CFG} --metrics {input} --out {output} > {log} 2>&1"


rule report:
    input:
        summary=f"{R}/summary.csv",
        notebook="notebooks/report.ipynb",
    output:
        notebook=f"{R}/notebooks/report.ipynb",
        html=report(f"{R}/notebooks/report.html", category="Report", caption="../report/report.rst"),
    log:
        f"{LOGS}/report.log",
    resources:
        mem_mb=RES_CPU["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=0,
    shell:
        "g2d notebook -c {CFG} --notebook {input.notebook} --out {output.notebook} --html {output.html}"
        " --param summary={input.summary} > {log} 2>&1"
