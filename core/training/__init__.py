"""Training: one config in, a stream of events out.

    config      the config tree (frozen dataclasses), each field declared with its Param
    models      every network, built by name from declared options; torchvision's included
    weights     pretrained ImageNet weights (torchvision's API, plus an offline copy)
    optim       SGD, Adam, AdamW, AdaBound, with per-group lr multipliers
    schedules   learning-rate schedules as pure functions of the step
    losses      cross-entropy (label smoothing, soft targets) and distillation
    seeds       independent generators for every random choice, from run.seed
    device      CPU/CUDA/MPS, threads, mixed precision where it pays
    batches     the data on the device; a batch of indices becomes augmented, mixed model input
    finetune    building the model, starting from another run, freezing, the teacher
    loop        setup, one step, and the loop that emits events; the LR finder and the
                time estimate take the same step
    events      the typed events and the sinks that render them
"""
