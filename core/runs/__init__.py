"""Runs: the store every page, the CLI and the tests share, and what is built on it.

    store     every run's config, status and metrics in one SQLite file
    runner    each run in its own process, behind a queue
    curves    a step curve in bounded memory, for live views
    compare   curves of several runs, seed groups, config differences, exports
    verdict   is a difference larger than seed noise?
    presets   the course's experiments as one-click sets of runs
    recipes   named, tuned training configs
    predict   a finished run's model, rebuilt to classify pictures
"""
