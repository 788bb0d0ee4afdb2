"""This session's choices (model, backend, adapter, presentation), its role, and the sidebar that makes them.

Models are cached by ``core`` in-process and shared by every browser session
(each session is a thread of one server process); this module only remembers
which model *this* session chose and hands pages a ``Backend``. Pages decide
what to show from the backend's capabilities. Every model a page loads is
``restricted``: a local path typed here must lie in LLM Lab's own folders.

When the server was started with a teacher secret (``core.access``), the
session that types it into the sidebar's 🔑 Teacher box is the teacher's
(``is_teacher``); the others may explore but not change what the class shares.
The secret stays in this session's state: never in the URL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import streamlit as st

from core import access
from core.adapter_host import AdapterRef
from core.backends import OPENAI_BASE_URL, Backend, LocalBackend, OpenAIBackend, list_models
from core.backends.openai_api import (
    allowed_base_urls,
    configured_model,
    default_base_url,
    resolve_base_url,
    server_default_backend,
    shown_url,
    uses_server_key,
)
from core.embedded import EMBEDDED_DISPLAY_NAME, EMBEDDED_MODEL
from core.errors import InvalidInput, LabError
from core.finetune import list_adapters, saved_adapter
from core.models import (
    DEFAULT_DTYPE,
    DTYPES,
    ENGINES,
    LLAMACPP,
    TORCH,
    LoadedModel,
    ModelKey,
    default_engine,
    is_loaded,
    load_model,
    loaded_models,
    model_key,
    needs_conversion,
    why_not_llamacpp,
)
from ui.widgets import choice

P = ParamSpec("P")

TEACHER_SECRET = "teacher_secret"
LOADED_PICK = "loaded_model_pick"
MODEL_NAME = "model_name"
MODEL_DTYPE = "model_dtype"
MODEL_ENGINE = "model_engine"
PRESENTATION = "presentation"
BACKEND = "backend"
API_BASE_URL, API_KEY, API_MODEL, API_MODELS, API_PICK = (
    "api_base_url",
    "api_key",
    "api_model",
    "api_models",
    "api_pick",
)
ADAPTER, NO_ADAPTER = "adapter", ""  # not None: a selectbox shows None as "no choice made"
LOCAL, OPENAI = "local", "openai"
# The sidebar's choices outlive a page that does not draw the sidebar (the join page) and st.switch_page
# (the explorer's 🙋 Ask the class), which would otherwise reset them: the teacher would become a student.
KEPT = "session"


def _init() -> None:
    st.session_state.setdefault(MODEL_NAME, EMBEDDED_MODEL)
    st.session_state.setdefault(MODEL_DTYPE, DEFAULT_DTYPE)
    if MODEL_ENGINE not in st.session_state:
        try:
            st.session_state[MODEL_ENGINE] = default_engine()
        except LabError as exc:  # a misconfigured server: say so, and start on torch
            st.warning(str(exc), icon="⚙️")
            st.session_state[MODEL_ENGINE] = TORCH
    st.session_state.setdefault(PRESENTATION, st.query_params.get("present") == "1")
    if BACKEND not in st.session_state:
        try:
            st.session_state[BACKEND] = server_default_backend()
        except LabError as exc:  # a misconfigured server: say so, and start on the local model
            st.warning(str(exc), icon="🔌")
            st.session_state[BACKEND] = LOCAL
    if API_BASE_URL not in st.session_state:
        try:
            st.session_state[API_BASE_URL] = default_base_url()
        except LabError:  # a misconfigured server: the settings say so when they are used
            st.session_state[API_BASE_URL] = OPENAI_BASE_URL
    st.session_state.setdefault(API_KEY, "")  # typed keys live here, in this session only
    st.session_state.setdefault(API_MODEL, configured_model())
    st.session_state.setdefault(ADAPTER, NO_ADAPTER)


def is_teacher() -> bool:
    """Whether this session is the teacher's: it typed the teacher secret, or the server has none."""
    return access.is_teacher(st.session_state.get(TEACHER_SECRET))


def teacher_only(what: str) -> str | None:
    """None when this session may ``what``; else the sentence a disabled control's caption shows."""
    if is_teacher():
        return None
    return f"Only the teacher can {what}: type the teacher secret in the sidebar's 🔑 Teacher box."


def require_teacher(what: str) -> None:
    """Refuse ``what`` in a student's session: a callback's guard, behind the disabled control."""
    why = teacher_only(what)
    if why:
        raise InvalidInput(why)


def teacher_callback(
    what: str, report: Callable[[LabError], None]
) -> Callable[[Callable[P, object]], Callable[P, None]]:
    """Make a button's callback the teacher's alone: a student's click, or a ``LabError`` it raises, goes to ``report``.

    A callback runs before the page is drawn, so ``report`` keeps the sentence
    for the page to show where it draws (``ui.jobs.report_later``).
    """

    def decorate(action: Callable[P, object]) -> Callable[P, None]:
        @functools.wraps(action)
        def callback(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                require_teacher(what)
                action(*args, **kwargs)
            except LabError as exc:
                report(exc)

        return callback

    return decorate


def presenting() -> bool:
    return bool(st.session_state.get(PRESENTATION))


def using_api() -> bool:
    return st.session_state.get(BACKEND) == OPENAI


def choose_model(name: str) -> None:
    """Make ``name`` this session's model, with no adapter (adapters belong to the model they were trained on)."""
    st.session_state[MODEL_NAME] = name
    st.session_state[ADAPTER] = NO_ADAPTER


def choose_adapter(name: str) -> None:
    """Switch the saved adapter ``name`` on over this session's model (what the sidebar's choice does)."""
    st.session_state[ADAPTER] = name


def current_adapter() -> AdapterRef | None:
    """The adapter chosen in the sidebar, as the typed identity the caches key on; None for the base model."""
    _init()
    name = st.session_state[ADAPTER]
    return saved_adapter(name) if name else None


def current_api_backend() -> OpenAIBackend | None:
    """The OpenAI-compatible backend this session set up; None (with a message) when it is incomplete."""
    _init()
    try:
        return OpenAIBackend(
            st.session_state[API_MODEL],
            base_url=st.session_state[API_BASE_URL],
            api_key=st.session_state[API_KEY] or None,
            server_key=is_teacher(),
        )
    except LabError as exc:
        st.warning(str(exc), icon="🔌")
        return None


def _list_api_models() -> None:
    try:
        names = list_models(st.session_state[API_BASE_URL], st.session_state[API_KEY] or None, server_key=is_teacher())
    except LabError as exc:
        st.session_state[API_MODELS] = str(exc)
        return
    st.session_state[API_MODELS] = names
    if names and not st.session_state[API_MODEL]:
        st.session_state[API_MODEL] = names[0]


def _pick_api_model() -> None:
    st.session_state[API_MODEL] = st.session_state[API_PICK]


def _key_caption() -> str | None:
    """What happens to the key, in words that match what ``core`` will send (``uses_server_key``)."""
    base_url, typed = st.session_state[API_BASE_URL], st.session_state[API_KEY]
    if typed:
        return None
    try:
        if uses_server_key(base_url, None, is_teacher()):
            return f"Using the server's OPENAI_API_KEY: it goes to {shown_url(resolve_base_url(base_url))} only."
        server_has_key = uses_server_key(None, None, server_key=True)
    except LabError:
        return None  # a URL the settings will refuse, with their own sentence
    if not server_has_key:
        return None
    if not is_teacher():
        return "The server's own API key is the teacher's: type your own key, or use a server that needs none."
    return "The server's OPENAI_API_KEY goes only to the base URL it was started with: this one gets no key."


def _api_settings() -> None:
    st.text_input(
        "Base URL", key=API_BASE_URL, persist_state=KEPT, help="The API root, e.g. http://127.0.0.1:8000/v1 for vLLM."
    )
    try:
        allowed = allowed_base_urls()
    except LabError as exc:
        st.error(str(exc), icon="🔌")
        allowed = []
    if allowed:
        st.caption(f"This server may contact only {', '.join(shown_url(u) for u in allowed)}.")
    st.text_input(
        "API key",
        key=API_KEY,
        persist_state=KEPT,
        type="password",
        help="Kept in this browser session only: never saved, logged or put in the URL. "
        "Leave empty for servers that need no key, or, for the teacher, to use the server's OPENAI_API_KEY "
        "(sent only to the base URL the server was started with).",
    )
    caption = _key_caption()
    if caption:
        st.caption(caption)
    st.button("List the server's models", on_click=_list_api_models)
    listed = st.session_state.get(API_MODELS)
    if isinstance(listed, str):
        st.error(listed, icon="🔌")
    elif listed:
        st.selectbox("Models on the server", listed, index=None, key=API_PICK, on_change=_pick_api_model)
    st.text_input("Model", key=API_MODEL, persist_state=KEPT, help="The name the server knows the model by.")


def _load_base() -> LoadedModel:
    # Every check first, so that not even the spinner's words depend on whether a refused path exists.
    teacher = is_teacher()
    name, dtype, engine = (st.session_state[k] for k in (MODEL_NAME, MODEL_DTYPE, MODEL_ENGINE))
    key = model_key(name, dtype, restricted=True, may_load_new=teacher, engine=engine)

    def load() -> LoadedModel:
        return load_model(key.name, key.dtype, key.device, restricted=True, may_load_new=teacher, engine=key.engine)

    if key in loaded_models():
        return load()
    if needs_conversion(key.name):
        title = EMBEDDED_DISPLAY_NAME if key.name == EMBEDDED_MODEL else Path(key.name).name
        message = f"Converting {title} from GGUF once (a few seconds); later starts take a second…"
    else:
        message = f"Loading {key.name}…"
    with st.spinner(message):
        return load()


def current_base_model() -> LoadedModel | None:
    """The model this session chose, without any adapter, on torch (pages that put adapters on themselves).

    Adapters, the logit lens and attention need torch; such a page runs its
    base model there too, so that base and tuned differ only by the adapter,
    and says so with ``runs_on_torch_caption``.
    """
    _init()
    try:
        return _load_base().on_torch()
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
        return None


def runs_on_words(lm: LoadedModel) -> str:
    """``lm.runs_on``, and on a class server that the passes run in an engine process of their own (same numbers)."""
    return lm.runs_on + (", in an engine process of its own" if lm.runs_in_engine_process else "")


def runs_on_torch_caption(lm: LoadedModel, why: str) -> None:
    """On a page that runs on torch although this session chose llama.cpp: one line saying so, and ``why``."""
    if st.session_state.get(MODEL_ENGINE) == LLAMACPP and not why_not_llamacpp(lm.key.name, lm.key.device):
        st.caption(f"⚙️ This page runs on **{lm.runs_on}**, not llama.cpp: {why}")


def current_model() -> LoadedModel | None:
    """The model this session chose (with its LoRA adapter, if one is chosen), loading it with a spinner."""
    _init()
    try:
        base = _load_base()
        adapter = current_adapter()
        if adapter is None:
            return base
        with st.spinner(f"Putting the LoRA adapter {adapter.label!r} on {base.display_name}…"):
            return base.with_adapter(adapter)
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
        return None


def current_backend() -> Backend | None:
    """Where this session's answers come from: the local model (with its adapter) or the API it set up."""
    if using_api():
        return current_api_backend()
    lm = current_model()
    return None if lm is None else LocalBackend(lm)


def adapter_choice(label: str, key: str, none_label: str, help_text: str) -> None:
    """A choice of saved adapter (or none) under ``key``; one renamed or deleted meanwhile is said so, and reset."""
    adapters = [a.name for a in list_adapters()]
    chosen = st.session_state.get(key, NO_ADAPTER)
    if chosen not in (NO_ADAPTER, *adapters):  # deleted or renamed on the fine-tune page, maybe in another tab
        st.warning(f"The adapter {chosen!r} is gone (renamed or deleted): back to the base model.")
        st.session_state[key] = NO_ADAPTER
    st.selectbox(
        label,
        [NO_ADAPTER, *adapters],
        key=key,
        format_func=lambda a: a or none_label,
        help=help_text,
        persist_state=KEPT,
    )


def _pick_loaded() -> None:
    key: ModelKey | None = st.session_state[LOADED_PICK]
    if key is not None:
        choose_model(key.name)
        st.session_state[MODEL_DTYPE] = key.dtype
        st.session_state[MODEL_ENGINE] = key.engine


def _loaded_models_choice(why: str) -> None:
    """A student's way to another model: one the teacher loaded already (``why``: loading is the teacher's)."""
    loaded = loaded_models()
    st.selectbox(
        "Models loaded on this server",
        loaded,
        index=None,
        key=LOADED_PICK,
        on_change=_pick_loaded,
        format_func=lambda k: f"{k.name} ({ENGINES[k.engine]}, {k.dtype})",
        placeholder="Pick one" if loaded else "None yet",
    )
    st.caption(why)


def _local_settings() -> None:
    st.text_input(
        "Model",
        key=MODEL_NAME,
        persist_state=KEPT,
        help="'embedded' is SmolLM2-135M-Instruct, shipped with LLM Lab. Any Hugging Face id or local "
        "folder works too (downloads need internet).",
    )
    why = teacher_only("load another model")
    if why:
        _loaded_models_choice(why)
    st.selectbox(
        "Engine",
        list(ENGINES),
        key=MODEL_ENGINE,
        format_func=ENGINES.get,
        help="llama.cpp runs a GGUF model's own file, about four times faster on a CPU, with llama.cpp's own "
        "numbers. torch runs every model, adapters, the logit lens and attention; where llama.cpp cannot, "
        "torch does, and this panel says so.",
    )
    st.selectbox(
        "Precision",
        list(DTYPES),
        key=MODEL_DTYPE,
        persist_state=KEPT,
        help="For torch: float32 is exact; bfloat16 is about twice as fast on many CPUs. llama.cpp reads the "
        "GGUF's own (quantized) weights.",
    )
    adapter_choice("LoRA adapter", ADAPTER, "none: the base model", "Trained on the Fine-tune page, over the model.")
    name, dtype, engine = (st.session_state[k] for k in (MODEL_NAME, MODEL_DTYPE, MODEL_ENGINE))
    if is_loaded(name, dtype, engine=engine):  # loading itself happens on the pages that need a model, with a spinner
        lm = load_model(name, dtype, engine=engine)
        st.caption(f"**{lm.display_name}** · {lm.n_parameters / 1e6:,.0f}M parameters · context {lm.context_length:,}")
        _runs_on_caption(lm)
    else:
        st.caption("Not loaded yet: it loads when a page needs it.")


def _runs_on_caption(lm: LoadedModel) -> None:
    """What computes this session's numbers; when llama.cpp was chosen but cannot serve, why torch does."""
    adapter = st.session_state[ADAPTER]
    why = None
    if st.session_state[MODEL_ENGINE] == LLAMACPP:
        why = why_not_llamacpp(lm.key.name, lm.key.device)
        if why is None and adapter:
            why = "llama.cpp cannot run a LoRA adapter, so torch runs the model while one is on."
    runs_on = lm.on_torch().runs_on if adapter else runs_on_words(lm)
    st.caption(f"Runs on **{runs_on}**" + (f" — {why}" if why else ""))


def _teacher_box() -> None:
    """The 🔑 Teacher box, when the server has a teacher secret: typed once, kept in this session only."""
    if not access.teacher_secret_required():
        return
    st.text_input(
        "🔑 Teacher",
        key=TEACHER_SECRET,
        persist_state=KEPT,
        type="password",
        help="The teacher secret printed when the server started (LLM_LAB_TEACHER_SECRET). "
        "Kept in this browser session only: never saved or put in the URL.",
    )
    if is_teacher():
        st.caption("Teacher: you can start, cancel, rename and delete jobs, load models and use the server's key.")
    elif st.session_state.get(TEACHER_SECRET):
        st.error("That is not the teacher secret.", icon="🔑")
    else:
        st.caption("Exploring as a student: jobs, loading models and the server's API key are the teacher's.")


def sidebar(pages: list[Any]) -> None:
    """The page list (the router's ``st.Page`` objects, as links), then this session's model and presentation mode."""
    _init()
    with st.sidebar:
        for page in pages:
            st.page_link(page)
        st.divider()
        _teacher_box()
        st.subheader("Model")
        choice(
            "Where the model runs",
            {LOCAL: "Here", OPENAI: "OpenAI-compatible API"},
            BACKEND,
            persist_state=KEPT,
            help="Here: transformers in this process. API: OpenAI, or any server speaking its API "
            "(vLLM, llama.cpp, Ollama, LM Studio).",
        )
        if using_api():
            _api_settings()
        else:
            _local_settings()
        st.divider()
        st.toggle(
            "Presentation mode",
            key=PRESENTATION,
            persist_state=KEPT,
            help="Large type and fewer controls, for a projector.",
        )


def presentation_css() -> None:
    if not presenting():
        return
    st.markdown(
        """<style>
        [data-testid="stMain"] [data-testid="stMarkdown"] p { font-size: 1.35rem !important; }
        [data-testid="stMain"] textarea { font-size: 1.5rem !important; }
        [data-testid="stMain"] h1 { font-size: 3rem !important; }
        [data-testid="stMetricValue"] { font-size: 2.6rem !important; }
        .lab-tokens { font-size: 1.7rem !important; line-height: 2.8rem !important; }
        </style>""",
        unsafe_allow_html=True,
    )


def show_error(exc: LabError) -> None:
    st.error(str(exc), icon="⚠️")
