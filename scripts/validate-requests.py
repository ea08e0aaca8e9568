#!/usr/bin/env python3
"""Validates request bodies against the providers' official SDK types, unknown fields
forbidden: `validate-requests.py [--responses] PROTOCOL FILE...` (PROTOCOL:
openai-responses, openai-chat, anthropic, gemini). With --responses the files are
response bodies, read with the SDKs' response models (every required field present).
Prints one line per file; exits 1 if any is refused.

OpenAI's and Anthropic's request types are TypedDicts: each one reachable from the
request type is marked extra="forbid", and its Iterable fields read as lists (which
pydantic checks at once, item by item), before the adapter is built. Gemini's SDK types
are pydantic models that already forbid extras; a REST body is checked part by part
(contents, systemInstruction, tools, generationConfig) in JSON mode, as the API reads it.
"""
import collections.abc
import json
import sys
import types
import typing

import pydantic
import typing_extensions


def listify(hint):
    """`hint` with every Iterable[X] as List[X]: pydantic validates iterables lazily, so
    a union of a string and an iterable would take any string, and nested items would
    go unchecked."""
    origin, args = typing_extensions.get_origin(hint), typing_extensions.get_args(hint)
    if origin is None or not args:
        return hint
    if origin in (typing.Annotated, typing_extensions.Annotated):
        return typing.Annotated[(listify(args[0]), *args[1:])]
    if origin in (typing.Literal, typing_extensions.Literal):
        return hint
    new = tuple(listify(a) for a in args)
    if origin is collections.abc.Iterable:
        return typing.List[new[0]]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new]
    return hint.copy_with(new) if hasattr(hint, "copy_with") else hint


def strict_typed_dicts(tp, seen):
    """Makes every TypedDict reachable from `tp` forbid unknown keys and take lists."""
    if id(tp) in seen:
        return
    seen.add(id(tp))
    # The SDKs' TypedDicts come from typing_extensions, which typing does not recognise.
    if typing_extensions.is_typeddict(tp):
        hints = typing_extensions.get_type_hints(tp, include_extras=True)
        tp.__annotations__ = {k: listify(v) for k, v in hints.items()}
        tp.__pydantic_config__ = pydantic.ConfigDict(
            extra="forbid", arbitrary_types_allowed=True  # file uploads are IO[bytes]
        )
        for hint in hints.values():
            strict_typed_dicts(hint, seen)
        return
    for arg in typing_extensions.get_args(tp):
        strict_typed_dicts(arg, seen)


def typed_dict_checker(tp):
    strict_typed_dicts(tp, set())
    adapter = pydantic.TypeAdapter(tp)

    def check(body):
        adapter.validate_json(json.dumps(body))

    return check


def gemini_checker():
    from google.genai import types

    parts = {
        "contents": (types.Content, True),
        "systemInstruction": (types.Content, False),
        "tools": (types.Tool, True),
        "toolConfig": (types.ToolConfig, False),
        "safetySettings": (types.SafetySetting, True),
        "generationConfig": (types.GenerationConfig, False),
        "cachedContent": (None, False),
    }

    def check(body):
        unknown = set(body) - set(parts)
        if unknown:
            raise ValueError(f"unknown top-level fields: {sorted(unknown)}")
        if "contents" not in body:
            raise ValueError("contents is required")
        for key, value in body.items():
            model, is_list = parts[key]
            if model is None:
                continue
            for item in value if is_list else [value]:
                model.model_validate_json(json.dumps(item))

    return check


def checker(protocol):
    if protocol == "openai-responses":
        from openai.types.responses import response_create_params as p

        return typed_dict_checker(p.ResponseCreateParamsNonStreaming)
    if protocol == "openai-chat":
        from openai.types.chat import completion_create_params as p

        return typed_dict_checker(p.CompletionCreateParamsNonStreaming)
    if protocol == "anthropic":
        from anthropic.types import message_create_params as p

        return typed_dict_checker(p.MessageCreateParamsNonStreaming)
    if protocol == "gemini":
        return gemini_checker()
    raise SystemExit(f"unknown protocol {protocol!r}")


def response_checker(protocol):
    if protocol == "openai-responses":
        from openai.types.responses import Response as model
    elif protocol == "openai-chat":
        from openai.types.chat import ChatCompletion as model
    elif protocol == "anthropic":
        from anthropic.types import Message as model
    elif protocol == "gemini":
        from google.genai.types import GenerateContentResponse as model
    else:
        raise SystemExit(f"unknown protocol {protocol!r}")

    def check(body):
        model.model_validate_json(json.dumps(body))

    return check


def main():
    args = sys.argv[1:]
    responses = bool(args) and args[0] == "--responses"
    if responses:
        args = args[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    check = response_checker(args[0]) if responses else checker(args[0])
    failed = 0
    for path in args[1:]:
        with open(path) as f:
            body = json.load(f)
        try:
            check(body)
            print(f"ok {path}")
        except (pydantic.ValidationError, ValueError) as e:
            failed += 1
            # A union's failure lists every branch: the first lines say enough.
            text = "\n".join(str(e).splitlines()[:12])
            print(f"REFUSED {path}: {text}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
