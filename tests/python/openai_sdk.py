"""Drives the gateway with the official `openai` Python SDK: chat completions (streamed and not),
responses (streamed and not, then continued with `previous_response_id`), and a conversation the
client keeps itself, replaying earlier output by `item_reference`, with each input item type and
the stored input items listed page by page, for each model given.

    python openai_sdk.py BASE_URL MODEL [MODEL...]     (the API key is read from OPENAI_API_KEY)

A model is checked against the fake upstream's or the echo provider's behaviour: the reply is the
last user message. Exits 1, naming the failed check, on the first wrong answer; any SDK exception
(an HTTP error, a malformed event) also ends the run with a traceback.
"""

import sys

import openai


def check(cond, what, got):
    if not cond:
        print(f"FAIL: {what}: got {got!r}", file=sys.stderr)
        sys.exit(1)


def chat(client, model):
    prompt = "hello from the openai sdk"
    r = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "you echo"},
        {"role": "user", "content": prompt},
    ])
    check(r.choices[0].message.content == prompt, f"{model}: chat completion text", r)
    check(r.choices[0].finish_reason == "stop", f"{model}: chat finish_reason", r.choices[0].finish_reason)
    check(r.usage is not None and r.usage.completion_tokens > 0, f"{model}: chat usage", r.usage)

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True,
        stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    check(text == prompt, f"{model}: streamed chat text", text)
    check(finish == "stop", f"{model}: streamed finish_reason", finish)
    check(usage is not None and usage.completion_tokens > 0, f"{model}: streamed usage", usage)


def responses(client, model):
    first = client.responses.create(model=model, input="first question", instructions="be brief")
    check(first.status == "completed", f"{model}: response status", first.status)
    check(first.output_text == "first question", f"{model}: response output_text", first.output_text)

    second = client.responses.create(model=model, input="second question", previous_response_id=first.id)
    check(second.output_text == "second question", f"{model}: continued output_text", second.output_text)
    check(second.previous_response_id == first.id, f"{model}: previous_response_id", second.previous_response_id)

    events, text, done = [], "", None
    with client.responses.stream(model=model, input="streamed question") as stream:
        for event in stream:
            events.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        done = stream.get_final_response()
    check(events[0] == "response.created", f"{model}: first stream event", events[:3])
    check(events[-1] == "response.completed", f"{model}: last stream event", events[-3:])
    check(text == "streamed question", f"{model}: streamed deltas", text)
    check(done.output_text == "streamed question", f"{model}: streamed final response", done.output_text)

    # The raw iterator too (create(stream=True)), continued from the streamed response.
    text = ""
    for event in client.responses.create(model=model, input="raw stream", stream=True,
                                         previous_response_id=done.id):
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            check(event.response.previous_response_id == done.id, f"{model}: raw stream continuation",
                  event.response.previous_response_id)
    check(text == "raw stream", f"{model}: raw streamed deltas", text)


def replayed_items(client, model):
    first = client.responses.create(model=model, input="my name is Ada")
    answer = first.output[0]
    second = client.responses.create(model=model, input=[
        {"role": "user", "content": "my name is Ada"},
        {"type": "item_reference", "id": answer.id},
        {"role": "user", "content": "what is my name?"},
    ])
    check(second.output_text == "what is my name?", f"{model}: replayed output_text", second.output_text)

    # The SDK's auto-paging iterator, one item a page, oldest first.
    items = list(client.responses.input_items.list(second.id, order="asc", limit=1))
    check(len(items) == 3, f"{model}: input items", items)
    check(items[1].id == answer.id, f"{model}: the referenced item in input_items", items[1])
    check(items[1].content[0].text == "my name is Ada", f"{model}: the referenced item's text", items[1])
    check(items[2].content[0].text == "what is my name?", f"{model}: the last input item", items[2])
    newest = client.responses.input_items.list(second.id, limit=1)
    check(newest.data[0].id == items[2].id and newest.has_more, f"{model}: newest first", newest)

    # Every input item type a client replays.
    third = client.responses.create(model=model, input=[
        {"type": "message", "role": "developer", "content": "answer briefly"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "may I?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot"}]},
        {"type": "reasoning", "id": "rs_replayed", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        {"role": "user", "content": "and now?"},
    ])
    check(third.output_text == "and now?", f"{model}: every item type", third.output_text)

    for bad, says in [
        ([{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.invalid/a.png"}]}],
         "text only"),
        ([{"type": "item_reference", "id": "msg_from_elsewhere"}], "msg_from_elsewhere"),
    ]:
        try:
            client.responses.create(model=model, input=bad)
            check(False, f"{model}: refused input {bad}", "a response")
        except openai.BadRequestError as e:
            check(says in str(e), f"{model}: the refusal names {says}", str(e))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    client = openai.OpenAI(base_url=sys.argv[1], max_retries=0, timeout=60)
    for model in sys.argv[2:]:
        chat(client, model)
        responses(client, model)
        replayed_items(client, model)
        print(f"ok: {model}")
    print(f"openai {openai.__version__}: all checks passed")


if __name__ == "__main__":
    main()
