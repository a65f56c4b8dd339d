"""Augmentation Lab: entry point. `streamlit run app.py`

Sets the page up, declares the session state every page relies on, and hands over to the
page the user picked. The pages only draw and call `core/`, which holds all the logic.
"""
import streamlit as st
import torch

from core.i18n import _
from core.runs.database import StoreError
from pages.ui.state import freeze_startup_heap, init_state, through_the_app

# The server's own tensor work (the preview grid) is small; one thread keeps it fast and leaves
# the other cores to a training run in the background, which on a 2-core laptop matters more.
torch.set_num_threads(1)

with through_the_app():  # every run is this script's, whatever page the URL names (run_through_the_app)
    init_state()  # first: the language comes from the session (?lang=, the browser, the switch)
    st.set_page_config(page_title=_("Augmentation Lab"), page_icon=":material/science:", layout="wide")
    page = st.navigation(
        [
            st.Page("pages/lab.py", title=_("Augmentation Lab"), icon=":material/science:", default=True),
            st.Page("pages/train.py", title=_("Train"), icon=":material/model_training:"),
            st.Page("pages/compare.py", title=_("Compare"), icon=":material/compare:"),
        ]
    )
    try:
        page.run()
    except StoreError as exc:  # a damaged or unreachable run store: say so, and keep the server up
        st.error(_("The run store cannot be used: {reason}").format(reason=exc), icon=":material/database:")
    finally:
        # Once per server, after the first page run has imported what the pages need: keeps
        # Streamlit's collection after every (fragment) run from rescanning all of it.
        freeze_startup_heap()
