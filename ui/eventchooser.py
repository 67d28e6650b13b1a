"""The event chooser pop-up: which event this till is at, when the till must ask.

It offers what the core offers (:mod:`ui.eventpick`): the events covering the clock, or
all of the stall's when the clock is not confirmed, or the nearest ones when none is on,
and "No event". A tap records the answer through the core (``event.chosen``); a refusal
is shown in the pop-up as the core words it. When the confirmed clock names the event
there is nothing to choose: the pop-up shows the event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.modalview import ModalView

from appliance import schedule as sched
from appliance.errors import TillError
from ui import eventpick
from ui import widgets as _widgets  # noqa: F401 - the buttons and labels it holds
from ui.context import N_

if TYPE_CHECKING:
    from appliance.formats.region import ScheduledEvent
    from ui.context import KioskContext

Builder.load_file(str(Path(__file__).with_suffix(".kv")))

REASONS = {
    sched.CLOCK_UNCONFIRMED: N_("The clock is not confirmed by a time source."),
    sched.OVERLAP: N_("Two events are on now."),
    sched.NONE_CURRENT: N_("No event of the schedule is on now."),
}


def event_pill(ctx: KioskContext) -> tuple[bool, str, bool]:
    """(shown, text, ok) of the status bar's event pill: the event's name, "No event"
    when the cashier chose none, "Choose event" (red) when the till must ask."""
    try:
        status = ctx.session.event_status()
    except TillError:
        return True, ctx.t("Event ?"), False
    if status.asking:
        return True, ctx.t("Choose event"), False
    return status.scheduled, status.event.name if status.event else ctx.t("No event"), True


class EventChooser(ModalView):
    title = StringProperty("")
    reason = StringProperty("")
    asking = BooleanProperty(False)

    def __init__(self, ctx: KioskContext, then: Callable[[], None] | None, **kw: Any) -> None:
        self.ctx = ctx
        self.then = then
        super().__init__(**kw)
        self.fill()

    def fill(self) -> None:
        t = self.ctx.t
        box = self.ids.choices
        box.clear_widgets()
        try:
            status = self.ctx.session.event_status()
            offered = self.ctx.session.event_choices()
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        self.asking = status.asking
        self.reason = t(REASONS[status.reason]) if status.reason in REASONS else ""
        if status.how == sched.CLOCK and status.event is not None:
            self.title = t("The clock says this is the event:")
            facts = f"{self.describe(status.event)}\n{t('Permit')} {status.event.permit}"
            label = Factory.TLabel(text=facts, size_hint_y=None)
            label.height = self.ctx.shell.k * 90
            box.add_widget(label)
            return
        self.title = t("Which event is this till at?")
        current = status.event.id if status.event else ("" if status.how == sched.CHOSEN else None)
        for event in offered:
            button = Factory.TButton(
                text=self.describe(event),
                probe=f"ev-{event.id}",
                size_hint_y=None,
                state="down" if event.id == current else "normal",
            )
            button.bind(on_release=lambda _b, e=event.id: self.choose(e))
            box.add_widget(button)
        none = Factory.GreyButton(text=t("No event"), probe="ev-none", size_hint_y=None)
        none.bind(on_release=lambda _b: self.choose(""))
        box.add_widget(none)
        for child in box.children:
            child.height = self.ctx.shell.k * 54

    def describe(self, event: ScheduledEvent) -> str:
        return f"[b]{event.name}[/b]  {eventpick.when(event)}\n{event.address}"

    def choose(self, event_id: str) -> None:
        try:
            self.ctx.session.choose_event(event_id)
        except TillError as exc:
            self.ids.message.text = str(exc)
            self.ctx.mark_dirty()
            return
        self.ctx.announce("event_chosen", event_id=event_id)
        self.dismiss()
        if self.then:
            self.then()
