"""UI helpers the page scripts share. The import direction is pages -> pages.ui -> core.

    state            session state declared in one place (STATE) and init_state
    messages         errors in words, flashes left by callbacks
    widgets          a widget per declared parameter (core.params.Param)
    images, links    the working picture; pipelines in links and JSON files
    pipeline_editor  the one pipeline editor of the Lab and the Train page
    config_form      the Train page's fields, from the config's declarations, and the state <-> config bridge
    cost_panel, lr_finder_panel, preset_panel, dataset_picker
                     the Train page's panels
    run_view         a run's progress, curves and report (Train and Compare)
    run_monitor      the Train page's queue and live run
"""
