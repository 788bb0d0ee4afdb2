"""Class mode in a real Chromium: a teacher and three students, each in a browser context of their own.

The teacher opens a room from the explorer; the students open the join link
(one on a phone's viewport, 390 x 844), type a name and a guess; one changes
their guess, one types HTML. The teacher's count follows, the reveal sets the
class beside the model, every phone shows its own result, and the next round
reaches every phone without a reload. The server has a teacher secret, as
``make run HOST=0.0.0.0`` gives it: the teacher types it, the students do not.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from core.access import TEACHER_SECRET_ENV
from tests.e2e.conftest import app_server, assert_no_app_errors, shot, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = "tea-cher-4242"
WAIT = 120_000  # a cold model and a busy machine: as long as the other browser tests wait
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
STUDENTS = (  # (name, first guess, second guess or None, context options)
    ("Ada", "Paris", None, PHONE),
    ("Bob", "London", "Lyon", {"viewport": {"width": 1024, "height": 900}}),
    ("<b>Mallory</b>", "<img src=x onerror=alert(1)>", None, {"viewport": {"width": 800, "height": 900}}),
)


@pytest.fixture(scope="module")
def class_url(tmp_path_factory):
    """A server started for a class: with a teacher secret, so the students are not the teacher."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TEACHER_SECRET_ENV, SECRET)
        with app_server("class-server.log", data=tmp_path_factory.mktemp("class") / "data") as url:
            yield url


def send_guess(page, name: str, guess: str) -> None:
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Your guess").fill(guess)
    page.get_by_role("button", name=re.compile("(Send|Change) my guess")).click()
    page.locator(".lab-room-mine", has_text="Your guess").wait_for(timeout=WAIT)


def answers_shown(teacher, n: int) -> None:
    teacher.locator('[data-testid="stMetric"]', has_text="Answers to round 1").filter(
        has=teacher.locator('[data-testid="stMetricValue"]', has_text=re.compile(rf"^{n}$"))
    ).wait_for(timeout=WAIT)


def test_a_teacher_and_three_students_play_two_rounds(browser, class_url):
    teacher_context = browser.new_context(viewport={"width": 1280, "height": 1600})
    teacher = watched_page(teacher_context)
    teacher.goto(f"{class_url}/explorer?prompt=The+capital+of+France+is", wait_until="domcontentloaded")
    teacher.locator(".stPlotlyChart").wait_for(timeout=WAIT)
    secret = teacher.get_by_role("textbox", name="🔑 Teacher")
    secret.fill(SECRET)
    secret.press("Enter")
    teacher.get_by_text("Teacher: you can").wait_for(timeout=WAIT)
    teacher.get_by_role("button", name="🙋 Ask the class").click()
    teacher.wait_for_url(re.compile(r"/room\?room=[A-Z2-9]{8}$"), timeout=WAIT)
    code = parse_qs(urlsplit(teacher.url).query)["room"][0]
    qr = teacher.locator(".lab-room-qr svg")
    qr.wait_for(timeout=WAIT)
    assert qr.bounding_box()["width"] >= 300, "the QR code must be big enough for a projector"
    assert teacher.locator(".lab-room-code").inner_text().replace(" ", "") == code
    assert teacher.get_by_text("Teacher: you can").count() == 1, "the page switch keeps the teacher's secret"
    link = re.search(r"http://\S+/join\?room=" + code, teacher.get_by_text("or open").inner_text()).group(0)
    answers_shown(teacher, 0)
    shot(teacher, "class-1-teacher-open")

    contexts, phones = [], []
    for name, first, second, options in STUDENTS:
        context = browser.new_context(**options)
        student = watched_page(context)
        student.goto(link, wait_until="domcontentloaded")
        student.get_by_text("what comes next?").wait_for(timeout=WAIT)
        send_guess(student, name, first)
        if second:
            send_guess(student, name, second)  # replaces the first
        contexts.append(context)
        phones.append(student)
    ada, bob, mallory = phones

    answers_shown(teacher, 3)  # three students, four guesses: the live count follows, the change replaces
    assert teacher.locator(".lab-room-mine").count() == 0  # no one's guess on the board before the reveal
    page_text = ada.locator("body").inner_text()
    assert "Bob" not in page_text and "Mallory" not in page_text and "Lyon" not in page_text
    assert ada.locator('[data-testid="stSidebar"]').count() == 0
    assert ada.evaluate("document.documentElement.scrollWidth") <= 390, "the join page must fit a phone's width"
    assert "waiting for the reveal" in page_text.lower()
    shot(ada, "class-2-phone-guessed")
    assert "<img src=x" in mallory.locator(".lab-room-mine").inner_text()  # shown as text, not as an image
    assert mallory.locator(".lab-room-mine img").count() == 0

    teacher.get_by_role("button", name="👁 Reveal").click()
    teacher.get_by_text("Each guess, and how likely the model found it").wait_for(timeout=WAIT)
    teacher.locator(".stPlotlyChart").first.wait_for(timeout=WAIT)
    assert "Agreed with the model" in teacher.locator("body").inner_text()
    shot(teacher, "class-3-teacher-reveal")

    for student, guess in ((ada, "Paris"), (bob, "Lyon")):
        result = student.locator(".lab-room-mine", has_text="You guessed")
        result.wait_for(timeout=WAIT)  # the page polls the room: no reload
        assert re.search(rf"You guessed {guess}: the model gave it \d+\.\d%", result.inner_text())
    assert "the model's first choice too" in ada.locator(".lab-room-mine").inner_text()
    assert "first choice too" not in bob.locator(".lab-room-mine").inner_text()
    ada.locator(".stPlotlyChart").wait_for(timeout=WAIT)
    assert ada.evaluate("document.documentElement.scrollWidth") <= 390
    shot(ada, "class-4-phone-result")

    teacher.get_by_text("The model's choice", exact=True).click()
    teacher.get_by_role("button", name="▶ Next round").click()
    teacher.get_by_text("Round 2: what comes next?").wait_for(timeout=WAIT)
    # a rerun may briefly show the summary twice (the old element beside the new): either will do
    teacher.get_by_text("The class against the model").first.wait_for(timeout=WAIT)
    shot(teacher, "class-5-teacher-round-2")
    for student, (name, *_) in zip(phones, STUDENTS, strict=True):
        student.get_by_text("Round 2: what comes next?").wait_for(timeout=WAIT)
        student.get_by_role("button", name="Send my guess").wait_for(timeout=WAIT)
        assert student.get_by_label("Your name").input_value() == name, "the name stays for the next round"
    shot(ada, "class-6-phone-round-2")

    for page in (teacher, *phones):
        assert_no_app_errors(page)
    for context in (teacher_context, *contexts):
        context.close()
