"""The prompt box: filled from the layout's classes and the tissue until the user writes their own.

The filled text is the very prompt the pipeline builds for the layout and the run's seed (the class
order of the paper's prompt is shuffled by the pair's seed), so a run from the filled box draws the
same pair as ``cosynth generate --seed S`` with no ``--prompt``. The text stays editable. Once the
user changes it, the widget stops refilling it (clearing it hands it back); its token count is shown,
and a prompt longer than the text encoder's context is flagged before a run is started (the engine
refuses such a prompt rather than cutting it).
"""

from __future__ import annotations


class PromptBox:
    """Behaviour of the ``prompt`` TextEdit and its ``prompt_info`` label."""

    def __init__(self, text_edit, info_label):
        self.edit = text_edit
        self.info = info_label
        self.auto = ""  # the last text the widget filled in
        self._setting = False
        # magicgui's TextEdit never emits `changed` (QTextEdit.textChanged carries no value).
        self.edit.native.textChanged.connect(self._on_text_changed)
        self.refill = lambda: None  # set by the widget: fills the box from the current layout
        self.context_length = None  # set once a model is loaded

    @property
    def user_written(self) -> bool:
        return bool(self.edit.value.strip()) and self.edit.value != self.auto

    def text(self) -> str | None:
        """The prompt to send (None: let the engine build one)."""
        return self.edit.value.strip() or None

    def fill(self, points, card, tissue: str, seed: int) -> None:
        """Write the pipeline's prompt for ``points`` and a pair of ``seed`` unless the user wrote one.

        ``card`` is the loaded model's ModelCard (its classes, prompt style and stain). The seed stays
        the same while the user clicks, so the text does not jump around.
        """
        if not self.user_written:
            # The pipeline's own rule (ModelCard.prompt_for), not a copy of it; an empty tissue is the
            # model's first, as in generation.
            self.auto = card.prompt_for(points, tissue or None, seed)
            self._setting = True
            try:
                self.edit.value = self.auto
            finally:
                self._setting = False
        self.check()

    def check(self) -> None:
        """Show the token count; flag a prompt longer than the text encoder's context."""
        if self.context_length is None:
            return
        from ..engine.networks.text import count_tokens

        n, limit = count_tokens(self.edit.value), self.context_length
        if n > limit:
            self.info.value = f"TOO LONG: {n} tokens, the text encoder takes {limit}; shorten it"
        else:
            mine = "; written by you (clear it to refill)" if self.user_written else ""
            self.info.value = f"{n}/{limit} tokens{mine}"

    def _on_text_changed(self) -> None:
        if self._setting:
            return
        if not self.edit.value.strip():
            self.auto = ""
            self.refill()
        self.check()
