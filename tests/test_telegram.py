"""The Telegram connector's parser: what a customer sends becomes a normalized message."""

from __future__ import annotations

import pytest

from channels.telegram import Start, parse
from tests.fakes.telegram import text_update

CHAT = 5550001


def test_text_message():
    message = parse(text_update(1, CHAT, "Hello there", message_id=9))
    assert (message.channel, message.customer_id, message.platform_id) == ("telegram", str(CHAT), f"{CHAT}:9")
    assert (message.text, message.name) == ("Hello there", "Ada Lovelace")


@pytest.mark.parametrize("text", ["/start", "/start campaign42", "/start@support_bot"])
def test_start_is_a_greeting_request_not_a_message(text):
    assert parse(text_update(1, CHAT, text)) == Start(str(CHAT))


def test_photo_caption_and_largest_file_id_are_kept():
    photos = [
        {"file_id": "small-id", "file_unique_id": "s", "width": 90, "height": 90},
        {"file_id": "large-id", "file_unique_id": "l", "width": 1280, "height": 960},
    ]
    message = parse(text_update(2, CHAT, None, photo=photos, caption="The box arrived broken"))
    assert message.text == "The box arrived broken"
    assert [(a.kind, a.ref) for a in message.attachments] == [("photo", "large-id")]


def test_document_with_caption():
    document = {"file_id": "doc-id", "file_unique_id": "d", "file_name": "invoice.pdf", "mime_type": "application/pdf"}
    message = parse(text_update(3, CHAT, None, document=document, caption="Wrong invoice"))
    assert message.text == "Wrong invoice"
    attachment = message.attachments[0]
    assert (attachment.kind, attachment.ref, attachment.name, attachment.content_type) == (
        "document", "doc-id", "invoice.pdf", "application/pdf")


def test_photo_without_caption_is_still_relayed():
    photos = [{"file_id": "only-id", "file_unique_id": "o", "width": 10, "height": 10}]
    message = parse(text_update(4, CHAT, None, photo=photos))
    assert message.text == "" and message.attachments[0].ref == "only-id"


def test_shared_location_goes_to_the_profile():
    message = parse(text_update(5, CHAT, None, location={"latitude": 52.520008, "longitude": 13.404954}))
    assert message.location == "52.52001, 13.40495"
    assert "52.52001, 13.40495" in message.text


def test_shared_venue_names_the_place():
    venue = {"location": {"latitude": 48.8584, "longitude": 2.2945}, "title": "Eiffel Tower",
             "address": "Champ de Mars"}
    message = parse(text_update(6, CHAT, None, location=venue["location"], venue=venue))
    assert message.location.startswith("Eiffel Tower, Champ de Mars")


def test_shared_contact_goes_to_the_profile_phone():
    contact = {"phone_number": "441234567890", "first_name": "Ada", "user_id": CHAT}
    message = parse(text_update(7, CHAT, None, contact=contact))
    assert message.phone == "+441234567890"
    assert "+441234567890" in message.text


def test_updates_without_a_customer_message_are_ignored():
    assert parse({"update_id": 8, "edited_message": text_update(8, CHAT, "edited")["message"]}) is None
    assert parse(text_update(9, CHAT, None, dice={"emoji": "🎲", "value": 3})) is None


def test_voice_notes_and_stickers_reach_the_agent_as_attachments():
    voice = parse(text_update(10, CHAT, None, voice={"file_id": "voice-id", "file_unique_id": "v", "duration": 4,
                                                    "mime_type": "audio/ogg"}))
    assert [(a.kind, a.ref, a.content_type) for a in voice.attachments] == [("voice", "voice-id", "audio/ogg")]
    sticker = parse(text_update(11, CHAT, None, sticker={"file_id": "st-id", "file_unique_id": "x", "width": 1,
                                                        "height": 1, "is_animated": False, "is_video": False,
                                                        "type": "regular"}))
    assert [(a.kind, a.ref) for a in sticker.attachments] == [("sticker", "st-id")]


@pytest.mark.parametrize("body", [[], "text", {"message": {}}, {"update_id": "1"}, None])
def test_malformed_updates_are_refused(body):
    with pytest.raises(ValueError):
        parse(body)


def test_a_message_missing_required_fields_is_refused():
    with pytest.raises(ValueError):
        parse({"update_id": 1, "message": {"message_id": 1, "text": "no chat, no date"}})
