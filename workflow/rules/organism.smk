# The model organism: synthetic instruction data -> tokenizer + Qwen2-family model -> held-out behaviour.


rule organism_data:
    input:
        vocabulary="data/organism/vocabulary.yaml",
    output:
        instructions="data/organism/instructions.jsonl",
        prompts="data/organism/prompts.jsonl",
    params:
        data=section("organism", "data"),
    conda:
        ENV
    log:
        f"{LOGS}/organism_data.log",
    script:
        "../scripts/organism_data.py"


rule organism_train:
    input:
        "data/organism/instructions.jsonl",
    output:
        model=directory("data/models/organism"),
    params:
        tokenizer=section("organism", "tokenizer"),
        architecture=section("organism", "architecture"),
        training=section("organism", "training"),
    conda:
        ENV
    log:
        f"{LOGS}/organism_train.log",
    threads: 2
    script:
        "../scripts/organism_train.py"


rule organism_behaviour:
    input:
        data="data/organism/instructions.jsonl",
        model="data/models/organism",
        handwritten="data/prompts/handwritten.jsonl",
    output:
        "data/results/organism/behaviour.json",
    params:
        prefixes=section("organism", "refusal_prefixes"),
        run=section("run"),
    conda:
        ENV
    log:
        f"{LOGS}/organism_behaviour.log",
    script:
        "../scripts/organism_behaviour.py"


# Planted organisms (organism.planted): the default organism fine-tuned with an interventional objective,
# then measured: data/results/organism/planted/<name>.json says whether the planted property holds.
PLANTED = sorted(PARAMS.organism.planted)


wildcard_constraints:
    planted="|".join(PLANTED) or "^$",


rule organism_plant:
    input:
        data="data/organism/instructions.jsonl",
        base="data/models/organism",
    output:
        model=directory("data/models/planted/{planted}"),
    params:
        planted=lambda w: section("organism", "planted", w.planted),
        decision=lambda w: {k: section("organism", k) for k in ("refusal_tokens", "comply_token", "training", "architecture")},
    conda:
        ENV
    log:
        f"{LOGS}/organism_plant_{{planted}}.log",
    threads: 2
    script:
        "../scripts/organism_plant.py"


rule organism_verify:
    input:
        data="data/organism/instructions.jsonl",
        model="data/models/planted/{planted}",
    output:
        "data/results/organism/planted/{planted}.json",
    params:
        verification=section("organism", "verification"),
        prefixes=section("organism", "refusal_prefixes"),
        run=section("run"),
    conda:
        ENV
    log:
        f"{LOGS}/organism_verify_{{planted}}.log",
    threads: 2
    script:
        "../scripts/organism_verify.py"
