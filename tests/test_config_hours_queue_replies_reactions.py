"""``chatgate check-config`` on the keys of business hours, queue position, saved replies and reactions."""

from __future__ import annotations

from tests.test_config import check_config


def test_check_config_names_key_file_and_expectation_for_hours_queue_replies_reactions(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("""
[slack]
reactions = {eyes = "accept", fire = "explode"}
[routing]
queue_position = "yes"
queue_position_step = 0
queue_position_message = "You are next"
[business_hours]
timezone = "Europe/Atlantis"
monday = "9 to 5"
tuesday = "17:00-09:00"
holidays = ["25/12/2026"]
away_message_pigeon = "coo"
lunch = "12:00-13:00"
[[saved_replies]]
name = "Hi"
text = "Hello {customer}"
[[saved_replies]]
name = "hi"
text = "again"
[[saved_replies]]
name = "Empty"
""")
    result = check_config(path)
    assert result.returncode == 1
    problems = result.stderr
    expected = {
        "slack.reactions": "emoji names to controls",
        "routing.queue_position": "true or false",
        "routing.queue_position_step": "a whole number >= 1",
        "routing.queue_position_message": "{position}",
        "business_hours.timezone": "IANA time zone",
        "business_hours.monday": '"09:00-17:00"',
        "business_hours.tuesday": "opening hours",
        "business_hours.holidays": '"2026-12-25"',
        "business_hours.away_message_pigeon": "known channel",
        "business_hours.lunch": "unknown key",
        "saved_replies[0].text": "{customer_name} and {agent_name}",
        "saved_replies[1].name": "used twice",
        "saved_replies[2].text": "the reply's text",
    }
    for key, words in expected.items():
        line = next((l for l in problems.splitlines() if f"{path}: {key}:" in l), None)
        assert line is not None, f"no problem reported for {key}:\n{problems}"
        assert words in line, line


def test_good_hours_queue_replies_reactions_pass(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("""
[slack]
reactions = {eyes = "accept", white_check_mark = "resolve", wave = "leave"}
[routing]
queue_position = true
queue_position_step = 2
[business_hours]
timezone = "America/New_York"
monday = "09:00-12:00, 13:00-17:00"
saturday = "closed"
holidays = ["2026-12-25"]
away_message_sms = "Closed; back {next_opening}."
away_message_whatsapp = "Closed; back {next_opening}."
pause_auto_close = true
[[saved_replies]]
name = "Hi"
text = "Hello {customer_name}, {agent_name} here."
""")
    result = check_config(path)
    assert result.returncode == 0, result.stderr
