#!/usr/bin/env python3
"""The official `openai` Python client against a running `herd serve`.

  test-openai-client.py BASE_URL API_KEY      (BASE_URL like http://127.0.0.1:8080/v1)

Checks models (list, retrieve, a 404 for another id), chat (whole and streamed, which must
agree for one seed), completions (one prompt and several), n, logprobs, usage, 400s raised as
openai.BadRequestError (structured output and tools refused by name), and a wrong key raised as
openai.AuthenticationError. Prints one line per check; exits non-zero on the first failure.
Talks only to BASE_URL. Needs `pip install openai`.
"""
import sys

import openai


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok   {name}")


def main():
    base, key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)

    models = client.models.list().data
    check("models.list gives the one model", len(models) == 1 and models[0].id, models)
    model = models[0].id
    card = client.models.retrieve(model)
    check("models.retrieve gives the model", card.id == model and card.object == "model", card)
    try:
        client.models.retrieve("no-such-model")
        check("models.retrieve of another model is refused", False, "no error")
    except openai.NotFoundError as e:
        check("models.retrieve of another model is a NotFoundError", e.status_code == 404 and "no-such-model" in str(e), e)

    messages = [{"role": "user", "content": "What is a GPU?"}]
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=20, seed=5, temperature=0.7)
    choice = whole.choices[0]
    check("chat: an assistant message", choice.message.role == "assistant" and isinstance(choice.message.content, str) and choice.message.content, whole)
    check("chat: finish_reason stop or length", choice.finish_reason in ("stop", "length"), choice.finish_reason)
    check("chat: id and object", whole.id.startswith("chatcmpl-") and whole.object == "chat.completion", whole)
    u = whole.usage
    check("chat: usage adds up", u.prompt_tokens > 0 and u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens, u)

    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=20, seed=5, temperature=0.7, stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    check("chat stream: the same text as the whole response", text == choice.message.content, (text, choice.message.content))
    check("chat stream: the same finish_reason", finish == choice.finish_reason, finish)
    check("chat stream: usage at the end", usage is not None and usage.completion_tokens == u.completion_tokens, usage)

    two = client.chat.completions.create(model=model, messages=messages, max_tokens=8, n=2, logprobs=True, top_logprobs=2)
    check("chat n=2: two choices", [c.index for c in two.choices] == [0, 1], two.choices)
    lp = two.choices[0].logprobs.content
    check("chat logprobs: one entry per token, two alternatives", len(lp) > 0 and all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in lp), lp)

    parts = client.chat.completions.create(model=model, max_tokens=4, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    check("chat: content as text parts", parts.choices[0].message.content is not None, parts)

    comp = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    check("completions: text", comp.object == "text_completion" and isinstance(comp.choices[0].text, str) and comp.choices[0].text, comp)
    many = client.completions.create(model=model, prompt=["One, two,", "Red, green,"], max_tokens=4, logprobs=1)
    check("completions: one choice per prompt", [c.index for c in many.choices] == [0, 1], many.choices)
    check("completions: logprobs lists", all(len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) > 0 for c in many.choices), many.choices)
    streamed = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if c.choices)
    check("completions stream: the same text", streamed == comp.choices[0].text, (streamed, comp.choices[0].text))

    try:
        client.chat.completions.create(model=model, messages=messages, temperature=5)
        check("temperature 5 is refused", False, "no error")
    except openai.BadRequestError as e:
        check("temperature 5 is a BadRequestError naming the field", e.status_code == 400 and "temperature" in str(e), e)
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=10**6)
        check("a request over the context is refused", False, "no error")
    except openai.BadRequestError as e:
        check("over the context: a BadRequestError with the counts", "over the context" in str(e), e)

    # Not there yet, so refused by name rather than answered with free text.
    refused = [
        ("response_format json_schema", "response_format", dict(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}})),
        ("tools", "tools", dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])),
    ]
    for name, field, extra in refused:
        try:
            client.chat.completions.create(model=model, messages=messages, max_tokens=4, **extra)
            check(f"{name} is refused", False, "no error")
        except openai.BadRequestError as e:
            check(f"{name} is a BadRequestError naming the field", e.status_code == 400 and e.body.get("param") == field, e)

    wrong = openai.OpenAI(base_url=base, api_key="not-the-key", max_retries=0)
    try:
        wrong.models.list()
        check("a wrong key is refused", False, "no error")
    except openai.AuthenticationError as e:
        check("a wrong key is an AuthenticationError", e.status_code == 401, e)


if __name__ == "__main__":
    main()
